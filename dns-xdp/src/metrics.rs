//! `GET /metrics` in the Prometheus text format, on the daemon's tokio
//! runtime: for the monitoring an operator already runs, each PoP says how
//! it is doing.
//!
//! Nothing is kept twice: every value is read at scrape time from where it
//! lives (the XDP program's maps, through [`stats::read_program`] as
//! `dns-xdp stats` reads them; the daemon's [`Counters`]; the live
//! catalog). The endpoint listens on localhost by default and answers only a
//! GET of `/metrics`; anything else gets 404 or 405 and a debug log line.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, UNIX_EPOCH},
};

use anyhow::Context as _;
use axum::{
    Router,
    extract::{Request, State},
    http::{StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric as _},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
    registry::{Registry, Unit},
};

use crate::{health, secondary, server::Shared, stats, wire};

/// What the endpoint reads from.
pub struct Source {
    pub shared: Arc<Shared>,
    /// What health checks against (and the XDP program's ID, `None` with
    /// the fast path off).
    pub expected: health::Expected,
    /// The secondary zones' time to expiry.
    pub secondaries: Arc<secondary::Status>,
}

/// Binds the endpoint (a port already taken fails the start, with the
/// address in the error) and returns the listener to serve.
pub fn bind(addr: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr)
        .with_context(|| format!("binding the metrics endpoint {addr} (set --metrics ADDR:PORT, or --metrics off)"))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Serves the endpoint until the runtime stops.
pub async fn serve(listener: std::net::TcpListener, source: Source) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let app = Router::new()
        .route("/metrics", get(metrics).fallback(wrong_method))
        .route("/health", get(health).fallback(wrong_method))
        .fallback(unknown_path)
        .with_state(Arc::new(source));
    axum::serve(listener, app).await.context("serving metrics")
}

async fn metrics(State(source): State<Arc<Source>>) -> impl IntoResponse {
    // The maps are read with syscalls: keep them off the async threads.
    let rendered = tokio::task::spawn_blocking(move || render(source)).await;
    match rendered {
        Ok(Ok(text)) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response(),
        Ok(Err(err)) => {
            tracing::warn!("rendering metrics: {err:#}");
            (StatusCode::INTERNAL_SERVER_ERROR, format!("{err:#}\n")).into_response()
        }
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{err}\n")).into_response(),
    }
}

async fn health(State(source): State<Arc<Source>>) -> impl IntoResponse {
    let checked = tokio::task::spawn_blocking(move || health::check(&source.shared, &source.expected)).await;
    let (status, body) = match checked {
        Ok(health) => {
            let status = if health.healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
            if !health.healthy {
                tracing::warn!(reasons = ?health.reasons, "health check failing");
            }
            (status, serde_json::to_string_pretty(&health).unwrap_or_default())
        }
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{{\"healthy\": false, \"reasons\": [\"{err}\"]}}")),
    };
    (status, [(header::CONTENT_TYPE, "application/json")], body + "\n")
}

async fn unknown_path(request: Request) -> impl IntoResponse {
    tracing::debug!(method = %request.method(), uri = %request.uri(), "metrics endpoint: unknown path refused");
    (StatusCode::NOT_FOUND, "only GET /metrics and GET /health are served here\n")
}

async fn wrong_method(request: Request) -> impl IntoResponse {
    tracing::debug!(method = %request.method(), uri = %request.uri(), "metrics endpoint: method refused");
    (StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, "GET")], "only GET is served here\n")
}

fn render(source: Arc<Source>) -> anyhow::Result<String> {
    let mut registry = Registry::with_prefix("dnsxdp");
    registry.register_collector(Box::new(Snapshot::take(&source)?));
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)?;
    Ok(text)
}

/// Everything one scrape shows, read at once.
#[derive(Debug, Default)]
struct Snapshot {
    /// XDP verdict counters, summed over CPUs, by name.
    xdp: Vec<(&'static str, u64)>,
    table_slots: Option<u32>,
    table_answers: Option<u64>,
    table_inserts: Option<u64>,
    table_left_out: Option<u64>,
    heartbeat_age_ms: Option<u64>,
    queries: [(&'static str, u64); 2],
    /// (zone, transport, rcode, count).
    replies: Vec<(String, &'static str, String, u64)>,
    truncated: u64,
    dropped: u64,
    tcp_refused: u64,
    shed: u64,
    /// UDP answers over the rate limit: (action, count).
    rrl: [(&'static str, u64); 2],
    /// Queries with a COOKIE option: (server cookie verdict, count).
    cookies: [(&'static str, u64); 3],
    /// (zone, serial, seconds since the epoch of the load).
    zones: Vec<(String, u32, f64)>,
    /// (secondary zone, seconds until it expires; negative once expired).
    expiry: Vec<(String, i64)>,
}

impl Snapshot {
    fn take(source: &Source) -> anyhow::Result<Self> {
        use std::sync::atomic::Ordering::Relaxed;
        let counters = &source.shared.counters;
        let mut snap = Snapshot {
            queries: [("udp", counters.udp_queries.load(Relaxed)), ("tcp", counters.tcp_queries.load(Relaxed))],
            truncated: counters.truncated.load(Relaxed),
            dropped: counters.dropped.load(Relaxed),
            tcp_refused: counters.tcp_refused.load(Relaxed),
            shed: counters.udp_shed.load(Relaxed),
            rrl: [("drop", counters.rrl_dropped.load(Relaxed)), ("slip", counters.rrl_slipped.load(Relaxed))],
            cookies: [
                ("valid", counters.cookie_valid.load(Relaxed)),
                ("invalid", counters.cookie_invalid.load(Relaxed)),
                ("client_only", counters.cookie_client_only.load(Relaxed)),
            ],
            ..Default::default()
        };
        snap.replies = counters
            .replies()
            .into_iter()
            .map(|(zone, transport, rcode, count)| {
                let zone = zone.map_or_else(String::new, |z| z.to_ascii());
                (zone, transport, wire::rcode_mnemonic(rcode), count)
            })
            .collect();
        let catalog = source.shared.live.read().unwrap_or_else(|p| p.into_inner()).catalog.clone();
        snap.zones = catalog
            .zones()
            .map(|zone| {
                let loaded = zone.loaded_at().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs_f64();
                (zone.origin().to_ascii(), zone.serial(), loaded)
            })
            .collect();
        snap.expiry =
            source.secondaries.expiry().into_iter().filter_map(|(zone, secs)| Some((zone.to_ascii(), secs?))).collect();
        // The daemon's own figures are worth most when the fast path is in
        // trouble: a failed map read leaves out only the XDP families.
        let own = |id| stats::read_own(id, &source.expected.pin_dir);
        let inst = source.expected.program_id.map(own).transpose().unwrap_or_else(|err| {
            tracing::warn!("metrics: reading the XDP program's maps: {err:#}");
            None
        });
        if let Some(inst) = inst {
            snap.xdp = inst.xdp.into_iter().collect();
            snap.table_slots = Some(inst.answer_capacity);
            snap.table_answers = inst.daemon.get("map_entries").copied();
            snap.table_inserts = inst.daemon.get("map_inserts").copied();
            snap.table_left_out = inst.daemon.get("map_no_room").copied();
            snap.heartbeat_age_ms = inst.heartbeat_age_ms;
        }
        Ok(snap)
    }
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        gauge_family(
            &mut encoder,
            "build_info",
            "The dns-xdp build serving (always 1)",
            None,
            [(vec![("version", env!("CARGO_PKG_VERSION").to_owned())], 1)],
        )?;
        if !self.xdp.is_empty() {
            counter_family(
                &mut encoder,
                "xdp_verdicts",
                "Packets the XDP program handled, by verdict (tx_answer: answered at the driver), summed over CPUs",
                self.xdp.iter().map(|(verdict, n)| (vec![("verdict", verdict.to_string())], *n)),
            )?;
        }
        counter_family(
            &mut encoder,
            "daemon_queries",
            "Queries the daemon received, by transport",
            self.queries.iter().map(|(transport, n)| (vec![("transport", transport.to_string())], *n)),
        )?;
        counter_family(
            &mut encoder,
            "daemon_responses",
            "Replies the daemon sent, by rcode, transport and answering zone (empty: no zone's data)",
            self.replies.iter().map(|(zone, transport, rcode, n)| {
                (vec![("rcode", rcode.clone()), ("transport", transport.to_string()), ("zone", zone.clone())], *n)
            }),
        )?;
        counter_family(
            &mut encoder,
            "daemon_truncated",
            "UDP replies the daemon sent with TC set",
            [(vec![], self.truncated)],
        )?;
        counter_family(
            &mut encoder,
            "daemon_dropped",
            "Queries the daemon did not answer (responses, or too short for a header)",
            [(vec![], self.dropped)],
        )?;
        counter_family(
            &mut encoder,
            "daemon_rrl",
            "UDP answers over the rate limit the daemon dropped or slipped (sent truncated), by action; the XDP program's are xdp_verdicts drop_rrl and tx_rrl_slip",
            self.rrl.iter().map(|(action, n)| (vec![("action", action.to_string())], *n)),
        )?;
        counter_family(
            &mut encoder,
            "daemon_cookies",
            "Queries with a DNS COOKIE option the daemon answered, by their server cookie: valid, invalid (not ours or stale) or client_only; the XDP program's are xdp_verdicts tx_cookie and pass_cookie",
            self.cookies.iter().map(|(verdict, n)| (vec![("verdict", verdict.to_string())], *n)),
        )?;
        counter_family(
            &mut encoder,
            "daemon_shed",
            "UDP queries dropped unanswered because the daemon's workers were behind (miss floods)",
            [(vec![], self.shed)],
        )?;
        counter_family(
            &mut encoder,
            "daemon_tcp_refused",
            "TCP connections closed at accept, over --tcp-max-connections or its per-source limit",
            [(vec![], self.tcp_refused)],
        )?;
        gauge_family(
            &mut encoder,
            "zone_serial",
            "SOA serial of the zone data being served",
            None,
            self.zones.iter().map(|(zone, serial, _)| (vec![("zone", zone.clone())], i64::from(*serial))),
        )?;
        gauge_family(
            &mut encoder,
            "zone_loaded_timestamp",
            "When the zone data being served was loaded",
            Some(&Unit::Seconds),
            self.zones.iter().map(|(zone, _, loaded)| (vec![("zone", zone.clone())], *loaded)),
        )?;
        if !self.expiry.is_empty() {
            gauge_family(
                &mut encoder,
                "zone_expiry",
                "Seconds until a secondary zone expires (stops being served) without a successful refresh; negative once expired",
                Some(&Unit::Seconds),
                self.expiry.iter().map(|(zone, secs)| (vec![("zone", zone.clone())], *secs)),
            )?;
        }
        if let Some(age) = self.heartbeat_age_ms {
            gauge_family(
                &mut encoder,
                "heartbeat_age",
                "Time since the daemon's last heartbeat to the XDP program (it stops answering past the timeout)",
                Some(&Unit::Seconds),
                [(vec![], age as f64 / 1000.0)],
            )?;
        }
        if let Some(slots) = self.table_slots {
            gauge_family(
                &mut encoder,
                "answer_table_slots",
                "Slots of the XDP answer table",
                None,
                [(vec![], i64::from(slots))],
            )?;
        }
        if let Some(held) = self.table_answers {
            gauge_family(
                &mut encoder,
                "answer_table_answers",
                "Answers the XDP answer table holds",
                None,
                [(vec![], i64::try_from(held).unwrap_or(i64::MAX))],
            )?;
        }
        if let Some(inserts) = self.table_inserts {
            counter_family(&mut encoder, "answer_table_inserts", "Answers written to the table", [(vec![], inserts)])?;
        }
        if let Some(left_out) = self.table_left_out {
            counter_family(
                &mut encoder,
                "answer_table_left_out",
                "Answers to preload that found no room in the table (raise map_entries)",
                [(vec![], left_out)],
            )?;
        }
        Ok(())
    }
}

type Labels = Vec<(&'static str, String)>;

fn counter_family(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (Labels, u64)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in series {
        ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

fn gauge_family<N>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    series: impl IntoIterator<Item = (Labels, N)>,
) -> Result<(), std::fmt::Error>
where
    ConstGauge<N>: prometheus_client::encoding::EncodeMetric,
{
    let mut family = encoder.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    for (labels, value) in series {
        ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}
