//! `dns-xdp run`: load zones, open sockets, attach XDP, serve, reload on
//! SIGHUP, and take everything down on SIGINT/SIGTERM.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, RwLock},
    time::Instant,
};

use anyhow::{Context as _, anyhow};
use hickory_proto::rr::Name;

use crate::{
    authority::Catalog,
    config::{AttachMode, Preload, RunArgs, Settings, ZoneSpec},
    counters::Counters,
    fastpath::{FastPath, FastPathOptions},
    health,
    map_writer::{MapWriter, SyncReport},
    metrics,
    server::{self, Live, Shared},
    wire::ReplySettings,
    zone::Zone,
};

/// Zones as loaded, keyed by file, with the text they were parsed from so an
/// unchanged file is not parsed again on reload.
#[derive(Default)]
struct LoadedZones {
    by_file: HashMap<PathBuf, (String, Arc<Zone>)>,
}

impl LoadedZones {
    /// Loads every zone in `specs`. On error, names the file (and line).
    /// With `previous`, unchanged files reuse the zone already parsed.
    fn load(specs: &[ZoneSpec], previous: Option<&LoadedZones>) -> anyhow::Result<Self> {
        let mut by_file = HashMap::new();
        for spec in specs {
            let text = std::fs::read_to_string(&spec.file)
                .with_context(|| format!("reading zone file {}", spec.file.display()))?;
            // A file with $INCLUDE is always parsed again: the included
            // files may have changed while it did not.
            let includes = text.to_ascii_uppercase().contains("$INCLUDE");
            let reused = previous
                .and_then(|p| p.by_file.get(&spec.file))
                .filter(|(old_text, zone)| {
                    !includes && *old_text == text && spec.origin.as_ref().is_none_or(|o| o == zone.origin())
                })
                .map(|(_, zone)| Arc::clone(zone));
            let zone = match reused {
                Some(zone) => zone,
                None => Arc::new(Zone::parse_file_text(&text, &spec.file, spec.origin.as_ref())?),
            };
            by_file.insert(spec.file.clone(), (text, zone));
        }
        Ok(Self { by_file })
    }

    fn catalog(&self) -> anyhow::Result<Catalog> {
        let mut catalog = Catalog::default();
        for (file, (_, zone)) in &self.by_file {
            if catalog.zone(zone.origin()).is_some() {
                return Err(anyhow!("zone {} is defined twice (again in {})", zone.origin(), file.display()));
            }
            catalog.insert(Arc::clone(zone));
        }
        Ok(catalog)
    }
}

fn preload_plan(settings: &Settings, zones: &LoadedZones) -> Vec<(Name, Preload)> {
    settings
        .zones
        .iter()
        .filter_map(|spec| zones.by_file.get(&spec.file).map(|(_, zone)| (zone.origin().clone(), spec.preload)))
        .collect()
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let settings = Settings::resolve(&args)?;
    let zones = LoadedZones::load(&settings.zones, None)?;
    let catalog = Arc::new(zones.catalog()?);
    for (file, (_, zone)) in &zones.by_file {
        tracing::info!(zone = %zone.origin(), file = %file.display(), serial = zone.serial(), "zone loaded");
    }

    // Sockets before XDP: a port already taken should fail before anything
    // is attached.
    let mut sockets = Vec::new();
    for addr in &settings.listen {
        sockets.push(server::bind(*addr)?);
    }
    let listen: Vec<_> = sockets.iter().map(|(udp, _)| udp.local_addr()).collect::<Result<_, _>>()?;
    let metrics_listener = settings.metrics.map(metrics::bind).transpose()?;

    let counters = Arc::new(Counters::default());
    let mut writer_thread = None;
    let mut map_feed = None;
    let mut program_id = None;
    if settings.xdp_mode != AttachMode::Off {
        let fast_path = FastPath::load(&FastPathOptions {
            ifaces: settings.ifaces.clone(),
            mode: settings.xdp_mode,
            map_entries: settings.map_entries,
            pin_dir: Some(settings.pin_dir.clone()),
            heartbeat_timeout: settings.heartbeat_timeout,
            edns_udp_payload: settings.edns_udp_payload,
            services: listen.clone(),
            nsid: settings.nsid.clone().map(String::into_bytes),
        })?;
        let mut writer = MapWriter::new(fast_path, Arc::clone(&counters));
        // Preload before attaching, so the first packets find their answers.
        let report = writer.sync(&catalog, 0, &preload_plan(&settings, &zones));
        writer.attach(settings.xdp_mode)?;
        tracing::info!(
            ifaces = ?settings.ifaces, mode = ?settings.xdp_mode, program_id = writer.fast_path().program_id().unwrap_or(0),
            adopted = ?writer.fast_path().adoption(), preloaded = report.preloaded, updated = report.updated,
            removed = report.removed, pin_dir = %settings.pin_dir.display(), "XDP fast path attached",
        );
        program_id = writer.fast_path().program_id();
        let (feed, thread) = writer.spawn()?;
        writer_thread = Some(thread);
        map_feed = Some(feed);
    }

    let shared = Arc::new(Shared {
        live: RwLock::new(Live::new(catalog, 0)),
        settings: ReplySettings {
            edns_udp_payload: settings.edns_udp_payload,
            // Lives as long as the process; reloads do not change it.
            nsid: settings.nsid.clone().map(|id| &*Box::leak(id.into_bytes().into_boxed_slice())),
        },
        counters,
        map_feed: map_feed.clone(),
        tcp: settings.tcp,
        zone_problem: RwLock::new(None),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let mut tcp_listeners = Vec::new();
    for (udp, tcp) in sockets {
        server::spawn_udp(Arc::clone(&shared), udp, settings.udp_threads)?;
        tcp_listeners.push(tcp);
    }
    if let Some(pid_file) = &settings.pid_file {
        std::fs::write(pid_file, format!("{}\n", std::process::id()))
            .with_context(|| format!("writing {}", pid_file.display()))?;
    }

    let result = runtime.block_on(async {
        for tcp in tcp_listeners {
            let listener = tokio::net::TcpListener::from_std(tcp)?;
            tokio::spawn(server::serve_tcp(Arc::clone(&shared), listener));
        }
        if let Some(listener) = metrics_listener {
            let addr = listener.local_addr()?;
            let expected = health::Expected {
                program_id,
                ifaces: settings.ifaces.clone(),
                heartbeat_timeout: settings.heartbeat_timeout,
                services: listen.clone(),
            };
            let source = metrics::Source { shared: Arc::clone(&shared), expected };
            tokio::spawn(async move {
                if let Err(err) = metrics::serve(listener, source).await {
                    tracing::error!("the metrics endpoint stopped: {err:#}");
                }
            });
            tracing::info!(%addr, "metrics at http://{addr}/metrics");
        }
        let serving = move || {
            tracing::info!(listen = ?listen, elapsed_ms = started.elapsed().as_millis() as u64, "serving");
        };
        serve_signals(&args, settings.clone(), zones, &shared, serving).await
    });

    // Stop the writer before the process goes. The program, its links and
    // maps stay pinned and answer until our last heartbeat is stale, so a
    // restart is hitless; `dns-xdp detach` removes them.
    if let Some(feed) = &map_feed {
        feed.shutdown();
    }
    if let Some(handle) = writer_thread
        && handle.join().is_err()
    {
        tracing::error!("the map writer panicked");
    }
    if let Some(pid_file) = &settings.pid_file {
        let _ = std::fs::remove_file(pid_file);
    }
    runtime.shutdown_background();
    tracing::info!("stopped");
    result
}

/// Waits for signals: SIGHUP reloads, SIGINT/SIGTERM return.
async fn serve_signals(
    args: &RunArgs,
    mut settings: Settings,
    mut zones: LoadedZones,
    shared: &Arc<Shared>,
    serving: impl FnOnce(),
) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    // Only now: a supervisor (or a test) that stops the daemon as soon as
    // it reports serving must reach these handlers, not the default action.
    serving();
    loop {
        tokio::select! {
            _ = hup.recv() => {
                match reload(args, &settings, &zones, shared).await {
                    Ok((new_settings, new_zones, report, elapsed)) => {
                        settings = new_settings;
                        zones = new_zones;
                        *shared.zone_problem.write().unwrap_or_else(|p| p.into_inner()) = None;
                        tracing::info!(
                            updated = report.updated, removed = report.removed, preloaded = report.preloaded,
                            left_out = report.left_out, elapsed_ms = elapsed.as_millis() as u64, "reload done",
                        );
                    }
                    Err(err) => {
                        tracing::error!("reload failed, still serving the previous data: {err:#}");
                        *shared.zone_problem.write().unwrap_or_else(|p| p.into_inner()) =
                            Some(format!("the last reload failed: {err:#}"));
                    }
                }
            }
            _ = int.recv() => return Ok(()),
            _ = term.recv() => return Ok(()),
        }
    }
}

/// Settings that differ between `old` and `new` and that only a restart
/// applies.
fn restart_needed(old: &Settings, new: &Settings) -> Vec<&'static str> {
    let mut changed = Vec::new();
    let mut check = |name, differs: bool| {
        if differs {
            changed.push(name);
        }
    };
    check("listen", old.listen != new.listen);
    check("iface", old.ifaces != new.ifaces);
    check("xdp_mode", old.xdp_mode != new.xdp_mode);
    check("map_entries", old.map_entries != new.map_entries);
    check("edns_udp_payload", old.edns_udp_payload != new.edns_udp_payload);
    check("heartbeat_timeout", old.heartbeat_timeout != new.heartbeat_timeout);
    check("pin_dir", old.pin_dir != new.pin_dir);
    check("pid_file", old.pid_file != new.pid_file);
    check("udp_threads", old.udp_threads != new.udp_threads);
    check("tcp_idle_timeout/tcp_max_connections", old.tcp != new.tcp);
    check("nsid", old.nsid != new.nsid);
    check("metrics", old.metrics != new.metrics);
    changed
}

/// Re-reads the configuration's zone list and the zone files, swaps the new
/// catalog in, and waits until the answer map agrees with it.
async fn reload(
    args: &RunArgs,
    old_settings: &Settings,
    old_zones: &LoadedZones,
    shared: &Arc<Shared>,
) -> anyhow::Result<(Settings, LoadedZones, SyncReport, std::time::Duration)> {
    let started = Instant::now();
    let new_settings = Settings::resolve(args)?;
    let unapplied = restart_needed(old_settings, &new_settings);
    if !unapplied.is_empty() {
        tracing::warn!(settings = ?unapplied, "changed settings need a restart; a reload applies the zone list and zones only");
    }
    // Only the zone part is applied, so only it is remembered: the next
    // reload compares against what is really in effect.
    let settings = Settings { zones: new_settings.zones, preload: new_settings.preload, ..old_settings.clone() };
    let zones = LoadedZones::load(&settings.zones, Some(old_zones))?;
    let catalog = Arc::new(zones.catalog()?);
    let generation = {
        let mut live = shared.live.write().unwrap_or_else(|p| p.into_inner());
        *live = Live::new(Arc::clone(&catalog), live.generation + 1);
        live.generation
    };
    let mut report = SyncReport::default();
    if let Some(feed) = shared.map_feed.clone() {
        let preload = preload_plan(&settings, &zones);
        report = tokio::task::spawn_blocking(move || feed.sync(catalog, generation, preload)).await??;
    }
    Ok((settings, zones, report, started.elapsed()))
}
