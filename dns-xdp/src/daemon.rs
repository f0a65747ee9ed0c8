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
    control,
    counters::Counters,
    fastpath::{FastPath, FastPathOptions},
    health,
    map_writer::{self, MapWriter, SyncReport},
    metrics, privileges,
    querylog::QueryLog,
    secondary::{self, Expired},
    server::{self, Live, Shared},
    wire::ReplySettings,
    zone::Zone,
};

/// Zones as loaded, keyed by file, with what tells an unchanged file (its
/// modification time and size, then its text's hash) so that a reload
/// reads and parses only the files that changed; and the zones that did
/// not load. One broken zone never takes the others down: it is logged,
/// and answered SERVFAIL (see [`Catalog::insert_failed`]).
#[derive(Default, Clone)]
struct LoadedZones {
    by_file: HashMap<PathBuf, LoadedFile>,
    failed: Vec<FailedZone>,
    /// Zone files this load read (the others were unchanged).
    files_read: usize,
}

/// One zone file as loaded.
#[derive(Clone)]
struct LoadedFile {
    /// What [`file_stamp`] said when it was read; `None`: always read.
    stamp: Option<FileStamp>,
    text_hash: u64,
    /// A file with $INCLUDE is always parsed again: the included files may
    /// have changed while it did not.
    includes: bool,
    zone: Arc<Zone>,
}

/// Modification time, size and inode: a file replaced by rename (as
/// editors and tooling do) gets a new inode even within one tick of the
/// clock.
type FileStamp = (std::time::SystemTime, u64, u64);

fn file_stamp(path: &std::path::Path) -> Option<FileStamp> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len(), meta.ino()))
}

/// A configured zone file that did not load.
#[derive(Clone)]
struct FailedZone {
    file: PathBuf,
    /// The zone it is for, when the configuration, the file or its name
    /// tells.
    origin: Option<Name>,
    /// The error, with file and line.
    error: String,
    /// A reload keeps serving the copy it had, as NSD and Knot do.
    kept_previous: bool,
}

impl LoadedZones {
    /// Loads every zone in `specs`; a zone that fails is recorded in
    /// `failed` and logged with file and line. With `previous`, a file
    /// whose modification time and size are unchanged is not read, one
    /// whose text is unchanged is not parsed, and a file that no longer
    /// loads keeps its previous copy.
    fn load(specs: &[ZoneSpec], previous: Option<&LoadedZones>) -> Self {
        let mut loaded = Self::default();
        for spec in specs {
            let previous_copy = previous
                .and_then(|p| p.by_file.get(&spec.file))
                .filter(|old| spec.origin.as_ref().is_none_or(|o| o == old.zone.origin()));
            let stamp = file_stamp(&spec.file);
            if let Some(old) = previous_copy.filter(|old| !old.includes && old.stamp.is_some() && old.stamp == stamp) {
                loaded.by_file.insert(spec.file.clone(), old.clone());
                continue;
            }
            loaded.files_read += 1;
            let text = match std::fs::read_to_string(&spec.file) {
                Ok(text) => text,
                Err(err) => {
                    let error = format!("reading zone file {}: {err}", spec.file.display());
                    loaded.fail(spec, None, error, previous_copy);
                    continue;
                }
            };
            let text_hash = crate::zone::text_fingerprint(&text);
            let includes = text.to_ascii_uppercase().contains("$INCLUDE");
            let reused =
                previous_copy.filter(|old| !includes && old.text_hash == text_hash).map(|old| Arc::clone(&old.zone));
            let zone = match reused {
                Some(zone) => zone,
                None => match Zone::parse_file_text(&text, &spec.file, spec.origin.as_ref()) {
                    Ok(zone) => Arc::new(zone),
                    Err(err) => {
                        loaded.fail(spec, Some(&text), err.to_string(), previous_copy);
                        continue;
                    }
                },
            };
            loaded.by_file.insert(spec.file.clone(), LoadedFile { stamp, text_hash, includes, zone });
        }
        loaded
    }

    /// These zones with a secondary's new version in place of its file's.
    fn with_update(&self, update: &secondary::ZoneUpdate) -> Self {
        let mut zones = self.clone();
        zones.files_read = 0;
        zones.failed.retain(|failed| failed.file != update.file);
        let file = LoadedFile {
            stamp: file_stamp(&update.file),
            text_hash: update.text_hash,
            includes: false,
            zone: Arc::clone(&update.zone),
        };
        zones.by_file.insert(update.file.clone(), file);
        zones
    }

    fn fail(&mut self, spec: &ZoneSpec, text: Option<&str>, error: String, previous: Option<&LoadedFile>) {
        let origin = Zone::file_origin(text, &spec.file, spec.origin.as_ref());
        let kept_previous = previous.is_some();
        match &origin {
            Some(origin) if kept_previous => {
                tracing::error!(zone = %origin, "zone failed to load, still serving its previous copy: {error}")
            }
            Some(origin) => tracing::error!(zone = %origin, "zone failed to load, answering SERVFAIL for it: {error}"),
            None => tracing::error!("zone failed to load and its origin is unknown: {error}"),
        }
        if let Some(old) = previous {
            // Its stamp is not kept: the file is read again at the next
            // reload, and loads once it is fixed.
            self.by_file.insert(spec.file.clone(), LoadedFile { stamp: None, ..old.clone() });
        }
        self.failed.push(FailedZone { file: spec.file.clone(), origin, error, kept_previous });
    }

    /// What `/health` reports while some zone did not load, or `None`.
    fn problem(&self) -> Option<String> {
        if self.failed.is_empty() {
            return None;
        }
        let each: Vec<String> = self
            .failed
            .iter()
            .map(|failed| {
                let zone = failed.origin.as_ref().map_or_else(|| failed.file.display().to_string(), Name::to_string);
                let serving = if failed.kept_previous { "serving its previous copy" } else { "answering SERVFAIL" };
                format!("zone {zone} failed to load ({serving}): {}", failed.error)
            })
            .collect();
        Some(each.join("; "))
    }

    /// The catalog of what loaded; an `expired` secondary zone is in it
    /// as failed (SERVFAIL, nothing in the answer table) whatever its copy.
    fn catalog(&self, expired: &Expired) -> anyhow::Result<Catalog> {
        let mut catalog = Catalog::default();
        for (file, LoadedFile { zone, .. }) in &self.by_file {
            if catalog.zone(zone.origin()).is_some() {
                return Err(anyhow!("zone {} is defined twice (again in {})", zone.origin(), file.display()));
            }
            if expired.contains(zone.origin()) {
                catalog.insert_failed(zone.origin());
            } else {
                catalog.insert(Arc::clone(zone));
            }
        }
        for failed in &self.failed {
            if let Some(origin) = &failed.origin
                && !failed.kept_previous
            {
                catalog.insert_failed(origin);
            }
        }
        Ok(catalog)
    }
}

fn preload_plan(settings: &Settings, zones: &LoadedZones) -> Vec<(Name, Preload)> {
    settings
        .zones
        .iter()
        .filter_map(|spec| zones.by_file.get(&spec.file).map(|file| (file.zone.origin().clone(), spec.preload)))
        .collect()
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let settings = Settings::resolve(&args)?;
    let zones = LoadedZones::load(&settings.zones, None);
    // A secondary zone without a copy yet waits for its first transfer.
    if zones.by_file.is_empty() && !zones.failed.is_empty() && settings.secondaries.is_empty() {
        let errors: Vec<&str> = zones.failed.iter().map(|failed| failed.error.as_str()).collect();
        return Err(anyhow!("no zone loaded: {}", errors.join("; ")));
    }
    let expired = Arc::new(Expired::default());
    let catalog = Arc::new(zones.catalog(&expired)?);
    for (file, LoadedFile { zone, .. }) in &zones.by_file {
        tracing::info!(zone = %zone.origin(), file = %file.display(), serial = zone.serial(), "zone loaded");
    }

    server::raise_open_file_limit(&settings.tcp);
    // Sockets before XDP: a port already taken should fail before anything
    // is attached.
    let mut sockets = Vec::new();
    for addr in &settings.listen {
        sockets.push(server::bind(*addr, &settings.tcp).map_err(with_missing_capabilities)?);
    }
    let listen: Vec<_> = sockets.iter().map(|(udp, _)| udp.local_addr()).collect::<Result<_, _>>()?;
    let metrics_listener = settings.metrics.map(metrics::bind).transpose()?;
    let control_listener = settings.control_socket.as_deref().map(control::bind).transpose()?;

    let cookie_secrets = settings.cookies.as_ref().map(crate::cookies::secrets).transpose()?;
    let counters = Arc::new(Counters::default());
    let mut writer_thread = None;
    let mut map_feed = None;
    let mut program_id = None;
    let mut writer_to_start = None;
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
            rrl: settings.rrl.clone(),
            cookies: cookie_secrets,
        })
        .map_err(with_missing_capabilities)?;
        let mut writer = MapWriter::new(fast_path, Arc::clone(&counters));
        // Preload before attaching, so the first packets find their answers.
        let report = writer.sync(&catalog, 0, &preload_plan(&settings, &zones));
        let own = writer.fast_path().program_id();
        writer
            .attach(settings.xdp_mode)
            .map_err(|err| with_other_xdp_program(err, &settings.ifaces, own))
            .map_err(with_missing_capabilities)?;
        tracing::info!(
            ifaces = ?settings.ifaces, mode = ?settings.xdp_mode, program_id = writer.fast_path().program_id().unwrap_or(0),
            adopted = ?writer.fast_path().adoption(), preloaded = report.preloaded, updated = report.updated,
            removed = report.removed, pin_dir = %settings.pin_dir.display(), "XDP fast path attached",
        );
        program_id = writer.fast_path().program_id();
        writer_to_start = Some(writer);
    }
    // Everything that needs a capability is done; no thread has started.
    let dropped = privileges::drop_all().context("dropping capabilities after attaching")?;
    if !dropped.is_empty() {
        tracing::info!(dropped = ?dropped, "capabilities dropped: none is needed from here on");
    }
    // Still before any thread starts, so every thread inherits it.
    let nice = privileges::lower_priority(settings.nice)?;
    tracing::info!(nice, "daemon threads run below the kernel's packet processing");
    if let Some(writer) = writer_to_start {
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
            cookies: cookie_secrets,
        },
        counters,
        map_feed: map_feed.clone(),
        tcp: server::TcpGate::new(settings.tcp),
        zone_problem: RwLock::new(zones.problem()),
        missed: Default::default(),
        query_log: QueryLog::new(settings.query_log_sample),
        draining: Default::default(),
        rrl: settings.rrl.clone().map(crate::rrl::RateLimiter::new),
        notifier: (!settings.secondaries.is_empty()).then(|| Arc::new(secondary::Notifier::new(&settings.secondaries))),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let mut tcp_listeners = Vec::new();
    for (udp, tcp) in sockets {
        server::spawn_udp(Arc::clone(&shared), udp, settings.udp_threads, settings.udp_queue)?;
        tcp_listeners.push(tcp);
    }
    if let Some(pid_file) = &settings.pid_file {
        std::fs::write(pid_file, format!("{}\n", std::process::id()))
            .with_context(|| format!("writing {}", pid_file.display()))?;
    }

    let expected = health::Expected {
        program_id,
        ifaces: settings.ifaces.clone(),
        heartbeat_timeout: settings.heartbeat_timeout,
        services: listen.clone(),
        pin_dir: settings.pin_dir.clone(),
    };
    let (reload_requests, control_reloads) =
        tokio::sync::mpsc::channel::<tokio::sync::oneshot::Sender<control::ReloadReply>>(4);
    let (zone_updates, updates) = tokio::sync::mpsc::channel::<ZoneUpdateRequest>(4);
    let secondary_status = Arc::new(secondary::Status::default());
    let stop = Arc::new(tokio::sync::Notify::new());
    let result = runtime.block_on(async {
        if !settings.secondaries.is_empty() {
            let requests = reload_requests.clone();
            let updates = zone_updates.clone();
            let apply: secondary::ApplyFn = Arc::new(move |update| {
                let (requests, updates) = (requests.clone(), updates.clone());
                Box::pin(async move {
                    let stopping = "the daemon is stopping".to_owned();
                    let (reply, outcome) = tokio::sync::oneshot::channel();
                    let sent = match update {
                        Some(update) => updates.send((update, reply)).await.is_ok(),
                        None => requests.send(reply).await.is_ok(),
                    };
                    if !sent {
                        return Err(stopping);
                    }
                    outcome.await.map_err(|_| stopping)?.map(|_| ())
                })
            });
            let notifier = shared.notifier.clone().unwrap_or_default();
            secondary::spawn(
                settings.secondaries.clone(),
                &notifier,
                Arc::clone(&expired),
                Arc::clone(&secondary_status),
                apply,
            );
        }
        for tcp in tcp_listeners {
            let listener = tokio::net::TcpListener::from_std(tcp)?;
            tokio::spawn(server::serve_tcp(Arc::clone(&shared), listener));
        }
        // Kept until the runtime stops: removes the socket file.
        let mut _control_bound = None;
        if let (Some((listener, bound)), Some(path)) = (control_listener, &settings.control_socket) {
            tracing::info!(path = %path.display(), "control socket");
            _control_bound = Some(bound);
            let context = Arc::new(control::Context {
                shared: Arc::clone(&shared),
                expected: expected.clone(),
                reloads: reload_requests,
                stop: Arc::clone(&stop),
            });
            tokio::spawn(async move {
                if let Err(err) = control::serve(listener, context).await {
                    tracing::error!(error = %format!("{err:#}"), "the control socket stopped");
                }
            });
        }
        if let Some(listener) = metrics_listener {
            let addr = listener.local_addr()?;
            let expected = expected.clone();
            let source =
                metrics::Source { shared: Arc::clone(&shared), expected, secondaries: Arc::clone(&secondary_status) };
            tokio::spawn(async move {
                if let Err(err) = metrics::serve(listener, source).await {
                    tracing::error!(error = %format!("{err:#}"), "the metrics endpoint stopped");
                }
            });
            tracing::info!(%addr, "metrics at http://{addr}/metrics");
        }
        let serving = move || {
            tracing::info!(listen = ?listen, elapsed_ms = started.elapsed().as_millis() as u64, "serving");
            notify_systemd(&[sd_notify::NotifyState::Ready, sd_notify::NotifyState::Status("serving")]);
        };
        let requests = ControlRequests { reloads: control_reloads, updates, stop: &stop };
        serve_signals(&args, settings.clone(), zones, &shared, &expired, requests, serving).await
    });

    notify_systemd(&[sd_notify::NotifyState::Stopping]);
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

/// Tells systemd (Type=notify) where the daemon is; nothing when not
/// started by systemd.
fn notify_systemd(states: &[sd_notify::NotifyState]) {
    if let Err(err) = sd_notify::notify(false, states) {
        tracing::warn!(error = %err, "could not notify systemd");
    }
}

/// Names the XDP program already attached to one of `ifaces` (not ours),
/// the usual reason an attach fails: the kernel allows one per interface.
fn with_other_xdp_program(err: anyhow::Error, ifaces: &[String], own: Option<u32>) -> anyhow::Error {
    for iface in ifaces {
        if let Some(id) = health::attached_program(iface).filter(|id| Some(*id) != own) {
            return err.context(format!(
                "{iface} already has XDP program {id} attached (`ip link show {iface}`, `xdp-loader status`); \
                 an interface takes one XDP program: detach it, or see the README on coexisting with other XDP programs"
            ));
        }
    }
    err
}

/// Adds which of the capabilities the daemon needs it lacks, if any, to a
/// start-up error.
fn with_missing_capabilities(err: anyhow::Error) -> anyhow::Error {
    let missing = privileges::missing();
    if missing.is_empty() {
        return err;
    }
    err.context(format!(
        "this process lacks {} (dns-xdp run needs CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN and CAP_NET_BIND_SERVICE)",
        missing.join(", ")
    ))
}

type ZoneUpdateRequest = (secondary::ZoneUpdate, tokio::sync::oneshot::Sender<control::ReloadReply>);

/// Waits for signals and control requests: SIGHUP or a control `reload`
/// reloads, SIGINT/SIGTERM return.
/// What the control socket asks of the signal loop: reloads (each with
/// the channel its outcome goes back on) and a stop (`dns-xdp drain`).
struct ControlRequests<'a> {
    reloads: tokio::sync::mpsc::Receiver<tokio::sync::oneshot::Sender<control::ReloadReply>>,
    /// New versions of secondary zones (and where to say they are served).
    updates: tokio::sync::mpsc::Receiver<ZoneUpdateRequest>,
    stop: &'a tokio::sync::Notify,
}

async fn serve_signals(
    args: &RunArgs,
    mut settings: Settings,
    mut zones: LoadedZones,
    shared: &Arc<Shared>,
    expired: &Expired,
    requests: ControlRequests<'_>,
    serving: impl FnOnce(),
) -> anyhow::Result<()> {
    let ControlRequests { mut reloads, mut updates, stop } = requests;
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    // Only now: a supervisor (or a test) that stops the daemon as soon as
    // it reports serving must reach these handlers, not the default action.
    serving();
    loop {
        let (reply, update) = tokio::select! {
            _ = hup.recv() => (None, None),
            Some(reply) = reloads.recv() => (Some(reply), None),
            Some((update, reply)) = updates.recv() => (Some(reply), Some(update)),
            _ = int.recv() => return drain_then_stop(&settings, shared).await,
            _ = term.recv() => return drain_then_stop(&settings, shared).await,
            // `dns-xdp drain` has already waited for the traffic to move.
            () = stop.notified() => return Ok(()),
        };
        // systemd shows "reloading" until READY=1 again.
        let mut reloading = vec![sd_notify::NotifyState::Reloading];
        reloading.extend(sd_notify::NotifyState::monotonic_usec_now().ok());
        notify_systemd(&reloading);
        let applied = match update {
            Some(update) => apply_update(&settings, &zones, update, shared, expired).await,
            None => reload(args, &settings, &zones, shared, expired).await,
        };
        let outcome = match applied {
            Ok((new_settings, new_zones, report, elapsed)) => {
                settings = new_settings;
                let problem = match (new_zones.problem(), expired.problem()) {
                    (Some(failed), Some(expired)) => Some(format!("{failed}; {expired}")),
                    (failed, expired) => failed.or(expired),
                };
                *shared.zone_problem.write().unwrap_or_else(|p| p.into_inner()) = problem.clone();
                let files_read = new_zones.files_read;
                zones = new_zones;
                tracing::info!(
                    updated = report.updated,
                    removed = report.removed,
                    preloaded = report.preloaded,
                    left_out = report.left_out,
                    checked = report.checked,
                    table_writes = report.table_writes(),
                    zone_files_read = files_read,
                    elapsed_ms = elapsed.as_millis() as u64,
                    "reload done: {} entries rewritten",
                    report.table_writes(),
                );
                match problem {
                    None => Ok(serde_json::json!({
                        "updated": report.updated, "removed": report.removed, "preloaded": report.preloaded,
                        "left_out": report.left_out, "checked": report.checked,
                        "table_writes": report.table_writes(), "zone_files_read": files_read,
                        "elapsed_ms": elapsed.as_millis() as u64,
                    })),
                    // The other zones took their new data, but whoever asked
                    // for the reload must learn that one did not.
                    Some(problem) => Err(format!("reload done, but {problem}")),
                }
            }
            Err(err) => {
                tracing::error!(error = %format!("{err:#}"), "reload failed, still serving the previous data");
                *shared.zone_problem.write().unwrap_or_else(|p| p.into_inner()) =
                    Some(format!("the last reload failed: {err:#}"));
                Err(format!("reload failed, still serving the previous data: {err:#}"))
            }
        };
        let status = if outcome.is_ok() { "serving" } else { "serving the previous data: the last reload failed" };
        notify_systemd(&[sd_notify::NotifyState::Ready, sd_notify::NotifyState::Status(status)]);
        if let Some(reply) = reply {
            let _ = reply.send(outcome);
        }
    }
}

/// A stop signal with `drain_delay`: fail health so the route controller
/// withdraws the prefixes, keep answering while the routes move, then stop.
/// Withdrawing first, never after, is what keeps clients answered.
async fn drain_then_stop(settings: &Settings, shared: &Shared) -> anyhow::Result<()> {
    if !settings.drain_delay.is_zero() {
        shared.draining.store(true, std::sync::atomic::Ordering::Relaxed);
        tracing::info!(drain_delay_s = settings.drain_delay.as_secs(), "stopping: draining first, still answering");
        notify_systemd(&[sd_notify::NotifyState::Status("draining")]);
        tokio::time::sleep(settings.drain_delay).await;
    }
    Ok(())
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
    check("udp_queue", old.udp_queue != new.udp_queue);
    check("nice", old.nice != new.nice);
    check("tcp_* limits", old.tcp != new.tcp);
    check("nsid", old.nsid != new.nsid);
    check("metrics", old.metrics != new.metrics);
    check("control_socket", old.control_socket != new.control_socket);
    check("query_log_sample", old.query_log_sample != new.query_log_sample);
    check("cookies, cookie_secret*", old.cookies != new.cookies);
    changed
}

/// Re-reads the configuration's zone list and the zone files, swaps the new
/// catalog in, and waits until the answer map agrees with it.
async fn reload(
    args: &RunArgs,
    old_settings: &Settings,
    old_zones: &LoadedZones,
    shared: &Arc<Shared>,
    expired: &Expired,
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
    let zones = LoadedZones::load(&settings.zones, Some(old_zones));
    let report = publish(&settings, &zones, shared, expired, None).await?;
    Ok((settings, zones, report, started.elapsed()))
}

/// Serves a secondary zone's new version: the other zones keep their
/// copies (no file is read), and the table re-checks only what the
/// difference can have changed.
async fn apply_update(
    settings: &Settings,
    old_zones: &LoadedZones,
    update: secondary::ZoneUpdate,
    shared: &Arc<Shared>,
    expired: &Expired,
) -> anyhow::Result<(Settings, LoadedZones, SyncReport, std::time::Duration)> {
    let started = Instant::now();
    let zones = old_zones.with_update(&update);
    let known = update.diff.as_ref().map(|diff| (update.zone.origin(), diff));
    let report = publish(settings, &zones, shared, expired, known).await?;
    Ok((settings.clone(), zones, report, started.elapsed()))
}

/// Builds the catalog of `zones`, swaps it in, and waits until the answer
/// table agrees: only the entries the zones' changes can affect are
/// re-checked (`known`: a zone's difference when the caller has it).
async fn publish(
    settings: &Settings,
    zones: &LoadedZones,
    shared: &Arc<Shared>,
    expired: &Expired,
    known: Option<(&Name, &crate::zone::ZoneDiff)>,
) -> anyhow::Result<SyncReport> {
    let catalog = Arc::new(zones.catalog(expired)?);
    let (old_catalog, generation) = {
        let mut live = shared.live.write().unwrap_or_else(|p| p.into_inner());
        let old = Arc::clone(&live.catalog);
        *live = Live::new(Arc::clone(&catalog), live.generation + 1);
        (old, live.generation)
    };
    let mut report = SyncReport::default();
    if let Some(feed) = shared.map_feed.clone() {
        let changes = map_writer::changes_between(&old_catalog, &catalog, known);
        let preload = preload_plan(settings, zones);
        report =
            tokio::task::spawn_blocking(move || feed.sync_changed(catalog, generation, changes, preload)).await??;
    }
    Ok(report)
}
