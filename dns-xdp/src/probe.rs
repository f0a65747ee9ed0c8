//! `dns-xdp probe`: the vantage-point view of an anycast service. For each
//! target it asks the same question (a zone's SOA by default) with the
//! EDNS NSID option at a fixed interval and reports which instance answered
//! (NSID), how fast (RTT min/median/p99), how many queries were lost, the
//! serial and the rcode; every change of answering instance or serial is an
//! event line. Run at every vantage point it shows who answers whom and how
//! fast, and during a failover when the answering instance changed.
//!
//! Each target has a thread of its own (a lost query to one target does not
//! delay the others); the main thread prints and keeps the statistics,
//! which `--metrics` serves in the Prometheus text format.

use std::{
    collections::VecDeque,
    io::{Read as _, Write as _},
    net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, bail};
use hickory_proto::{
    op::{Edns, Message, Query},
    rr::{
        Name, RData, RecordType,
        rdata::opt::{EdnsCode, EdnsOption, NSIDPayload},
    },
};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric as _},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
    registry::Registry,
};

/// RTT samples kept per target for the median and p99: a window, so a
/// long-running probe's memory stays bounded and its percentiles recent.
const RTT_WINDOW: usize = 1024;

#[derive(clap::Args, Debug)]
pub struct ProbeArgs {
    /// Addresses to probe: IP or IP:PORT (port 53 by default; IPv6 with a
    /// port as [ADDR]:PORT).
    #[arg(required = true, value_name = "TARGET")]
    pub targets: Vec<String>,
    /// The name to ask for: a zone the targets serve (its SOA gives the
    /// serial).
    #[arg(long, value_name = "NAME", default_value = ".")]
    pub name: String,
    /// The type to ask for.
    #[arg(long, value_name = "TYPE", default_value = "SOA")]
    pub qtype: RecordType,
    /// Seconds between queries to each target.
    #[arg(long, value_name = "S", default_value_t = 1.0)]
    pub interval: f64,
    /// Stop after N queries to each target [default: until Ctrl-C].
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Seconds to wait for a reply before it counts as lost [default: the
    /// interval, at most 2].
    #[arg(long, value_name = "S")]
    pub timeout: Option<f64>,
    /// Ask over TCP (one connection per query) instead of UDP.
    #[arg(long)]
    pub tcp: bool,
    /// One JSON object per line: every reply and loss, every event, and a
    /// summary per target at the end.
    #[arg(long)]
    pub json: bool,
    /// Serve the per-target statistics as Prometheus metrics at
    /// http://ADDR:PORT/metrics while probing.
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics: Option<SocketAddr>,
}

/// What one query to one target gave.
#[derive(Debug, Clone)]
enum Outcome {
    Reply { rtt: Duration, nsid: Option<String>, rcode: String, serial: Option<u32> },
    Lost { why: String },
}

/// Everything known about one target.
#[derive(Debug, Default, Clone)]
struct TargetStats {
    target: String,
    sent: u64,
    lost: u64,
    rtts: VecDeque<f64>,
    rtt_min: Option<f64>,
    nsid: Option<String>,
    serial: Option<u32>,
    rcode: Option<String>,
    last_rtt: Option<f64>,
    instance_changes: u64,
    serial_changes: u64,
}

impl TargetStats {
    fn percentile(&self, p: f64) -> Option<f64> {
        let mut sorted: Vec<f64> = self.rtts.iter().copied().collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        // Nearest rank: the smallest sample with at least p of them at or below.
        let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        Some(sorted[rank - 1])
    }

    fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "type": "summary", "time": now_rfc3339(), "target": self.target,
            "sent": self.sent, "lost": self.lost,
            "rtt_ms": {"min": self.rtt_min, "median": self.percentile(0.5), "p99": self.percentile(0.99)},
            "nsid": self.nsid, "serial": self.serial, "rcode": self.rcode,
            "instance_changes": self.instance_changes, "serial_changes": self.serial_changes,
        })
    }
}

/// Parses TARGET: an IP (port 53) or a socket address.
pub fn parse_target(text: &str) -> anyhow::Result<SocketAddr> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    text.parse().with_context(|| format!("target {text:?}: expected IP or IP:PORT ([IPv6]:PORT)"))
}

pub fn run(args: ProbeArgs) -> anyhow::Result<()> {
    if !(args.interval.is_finite() && args.interval >= 0.01) {
        bail!("--interval must be at least 0.01 seconds");
    }
    let timeout = args.timeout.unwrap_or(args.interval.min(2.0));
    if !(timeout.is_finite() && timeout > 0.0) {
        bail!("--timeout must be a positive number of seconds");
    }
    let targets = args.targets.iter().map(|t| parse_target(t)).collect::<anyhow::Result<Vec<_>>>()?;
    let name = Name::from_ascii(&args.name).with_context(|| format!("--name {:?}", args.name))?;
    let question = Question {
        name,
        qtype: args.qtype,
        tcp: args.tcp,
        timeout: Duration::from_secs_f64(timeout),
        interval: Duration::from_secs_f64(args.interval),
        count: args.count,
    };
    let stats: Arc<Mutex<Vec<TargetStats>>> = Arc::new(Mutex::new(
        targets.iter().map(|t| TargetStats { target: t.to_string(), ..Default::default() }).collect(),
    ));
    if let Some(addr) = args.metrics {
        let listener =
            TcpListener::bind(addr).with_context(|| format!("binding the probe's metrics endpoint {addr}"))?;
        let stats = stats.clone();
        std::thread::spawn(move || serve_metrics(&listener, &stats));
    }
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone()).context("installing the signal handler")?;
    }
    let (results, received) = mpsc::channel();
    for (index, target) in targets.iter().enumerate() {
        let (question, results, stop, target) = (question.clone(), results.clone(), stop.clone(), *target);
        std::thread::spawn(move || probe_target(index, target, &question, &results, &stop));
    }
    drop(results);
    // Ends when every target thread is done (count reached or stopped).
    for (index, outcome) in received {
        let mut all = stats.lock().unwrap_or_else(|p| p.into_inner());
        let lines = record(&mut all[index], &outcome, args.json);
        drop(all);
        for line in lines {
            println!("{line}");
        }
    }
    let all = stats.lock().unwrap_or_else(|p| p.into_inner());
    for target in all.iter() {
        if args.json {
            println!("{}", target.summary());
        } else {
            println!("{}", summary_line(target));
        }
    }
    Ok(())
}

#[derive(Clone, Debug)]
struct Question {
    name: Name,
    qtype: RecordType,
    tcp: bool,
    timeout: Duration,
    interval: Duration,
    count: Option<u64>,
}

fn probe_target(
    index: usize,
    target: SocketAddr,
    question: &Question,
    results: &mpsc::Sender<(usize, Outcome)>,
    stop: &AtomicBool,
) {
    let start = Instant::now();
    let mut sent = 0u64;
    while question.count.is_none_or(|n| sent < n) && !stop.load(Ordering::Relaxed) {
        let id = (std::process::id() as u16).wrapping_add(sent as u16).wrapping_mul(31).wrapping_add(index as u16);
        let outcome = ask(target, question, id);
        sent += 1;
        if results.send((index, outcome)).is_err() {
            return;
        }
        // A fixed schedule from the start, so a slow reply does not shift
        // the next query.
        let next = start + question.interval.mul_f64(sent as f64);
        while Instant::now() < next && !stop.load(Ordering::Relaxed) {
            std::thread::sleep((next - Instant::now()).min(Duration::from_millis(50)));
        }
    }
}

fn query_bytes(question: &Question, id: u16) -> anyhow::Result<Vec<u8>> {
    let mut query = Message::query();
    query.metadata.id = id;
    query.add_query(Query::query(question.name.clone(), question.qtype));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    edns.options_mut().insert(EdnsOption::NSID(NSIDPayload::new(Vec::new())?));
    query.set_edns(edns);
    Ok(query.to_vec()?)
}

fn ask(target: SocketAddr, question: &Question, id: u16) -> Outcome {
    let bytes = match query_bytes(question, id) {
        Ok(bytes) => bytes,
        Err(err) => return Outcome::Lost { why: format!("encoding the query: {err}") },
    };
    let sent_at = Instant::now();
    let reply = if question.tcp {
        exchange_tcp(target, &bytes, question.timeout)
    } else {
        exchange_udp(target, &bytes, id, question.timeout)
    };
    let rtt = sent_at.elapsed();
    match reply.and_then(|bytes| Message::from_vec(&bytes).map_err(|e| format!("unreadable reply: {e}"))) {
        Ok(reply) if reply.metadata.id != id => Outcome::Lost { why: "reply with another ID".into() },
        Ok(reply) => Outcome::Reply {
            rtt,
            nsid: nsid_of(&reply),
            rcode: crate::wire::rcode_mnemonic(u16::from(reply.metadata.response_code)),
            serial: reply.answers.iter().chain(&reply.authorities).find_map(|r| match &r.data {
                RData::SOA(soa) => Some(soa.serial),
                _ => None,
            }),
        },
        Err(why) => Outcome::Lost { why },
    }
}

fn nsid_of(reply: &Message) -> Option<String> {
    match reply.edns.as_ref()?.option(EdnsCode::NSID)? {
        EdnsOption::NSID(payload) => Some(String::from_utf8_lossy(payload.as_ref()).into_owned()),
        _ => None,
    }
}

fn exchange_udp(target: SocketAddr, query: &[u8], id: u16, timeout: Duration) -> Result<Vec<u8>, String> {
    let bind: SocketAddr = if target.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let socket = UdpSocket::bind(bind).map_err(|e| format!("socket: {e}"))?;
    socket.connect(target).map_err(|e| format!("connect: {e}"))?;
    socket.send(query).map_err(|e| format!("send: {e}"))?;
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; 65535];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("no reply within {timeout:?}"));
        }
        socket.set_read_timeout(Some(left)).map_err(|e| format!("{e}"))?;
        match socket.recv(&mut buf) {
            // A late reply to an earlier query on a reused port is not ours.
            Ok(len) if len >= 2 && u16::from_be_bytes([buf[0], buf[1]]) == id => return Ok(buf[..len].to_vec()),
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return Err(format!("no reply within {timeout:?}"));
            }
            // ICMP unreachable (connection refused), no route, ...
            Err(e) => return Err(format!("{e}")),
        }
    }
}

fn exchange_tcp(target: SocketAddr, query: &[u8], timeout: Duration) -> Result<Vec<u8>, String> {
    let deadline = Instant::now() + timeout;
    let mut stream = TcpStream::connect_timeout(&target, timeout).map_err(|e| format!("connect: {e}"))?;
    let left = || deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
    stream.set_write_timeout(Some(left())).map_err(|e| format!("{e}"))?;
    let mut framed = (query.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(query);
    stream.write_all(&framed).map_err(|e| format!("send: {e}"))?;
    stream.set_read_timeout(Some(left())).map_err(|e| format!("{e}"))?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).map_err(|e| format!("no reply within {timeout:?}: {e}"))?;
    let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.set_read_timeout(Some(left())).map_err(|e| format!("{e}"))?;
    stream.read_exact(&mut reply).map_err(|e| format!("short reply: {e}"))?;
    Ok(reply)
}

/// Folds one outcome into the target's statistics; returns the lines to
/// print (events always; with JSON also every reply and loss).
fn record(stats: &mut TargetStats, outcome: &Outcome, json: bool) -> Vec<String> {
    let time = now_rfc3339();
    let mut lines = Vec::new();
    stats.sent += 1;
    match outcome {
        Outcome::Lost { why } => {
            stats.lost += 1;
            if json {
                lines.push(
                    serde_json::json!({"type": "lost", "time": time, "target": stats.target, "why": why}).to_string(),
                );
            }
        }
        Outcome::Reply { rtt, nsid, rcode, serial } => {
            let rtt_ms = rtt.as_secs_f64() * 1000.0;
            if json {
                lines.push(
                    serde_json::json!({"type": "reply", "time": time, "target": stats.target, "rtt_ms": rtt_ms,
                        "nsid": nsid, "rcode": rcode, "serial": serial})
                    .to_string(),
                );
            }
            let previous_rtt = stats.last_rtt;
            // The first reply sets the baseline; a change from it is an event.
            let first = stats.rcode.is_none();
            if !first && stats.nsid != *nsid {
                stats.instance_changes += 1;
                lines.push(event_line(&time, stats, "instance", &stats.nsid, nsid, previous_rtt, rtt_ms, json));
            }
            if !first && serial.is_some() && stats.serial != *serial {
                stats.serial_changes += 1;
                lines.push(event_line(&time, stats, "serial", &stats.serial, serial, previous_rtt, rtt_ms, json));
            }
            stats.nsid.clone_from(nsid);
            if serial.is_some() {
                stats.serial = *serial;
            }
            stats.rcode = Some(rcode.clone());
            stats.last_rtt = Some(rtt_ms);
            stats.rtt_min = Some(stats.rtt_min.map_or(rtt_ms, |m| m.min(rtt_ms)));
            if stats.rtts.len() == RTT_WINDOW {
                stats.rtts.pop_front();
            }
            stats.rtts.push_back(rtt_ms);
        }
    }
    lines
}

#[expect(clippy::too_many_arguments, reason = "one event line, its fields spelled out")]
fn event_line<T: serde::Serialize + std::fmt::Debug>(
    time: &str,
    stats: &TargetStats,
    event: &str,
    from: &Option<T>,
    to: &Option<T>,
    previous_rtt: Option<f64>,
    rtt_ms: f64,
    json: bool,
) -> String {
    if json {
        return serde_json::json!({"type": "event", "event": event, "time": time, "target": stats.target,
            "from": from, "to": to, "previous_rtt_ms": previous_rtt, "rtt_ms": rtt_ms})
        .to_string();
    }
    let show = |v: &Option<T>| v.as_ref().map_or_else(|| "-".to_owned(), |v| format!("{v:?}"));
    let previous = previous_rtt.map_or_else(|| "-".to_owned(), |r| format!("{r:.2}"));
    format!("{time} {} event {event}: {} -> {} (rtt {previous} -> {rtt_ms:.2} ms)", stats.target, show(from), show(to))
}

fn summary_line(stats: &TargetStats) -> String {
    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"));
    let loss = if stats.sent == 0 { 0.0 } else { 100.0 * stats.lost as f64 / stats.sent as f64 };
    format!(
        "{} nsid {} serial {} rcode {} sent {} lost {} ({loss:.1}%) rtt min/median/p99 {}/{}/{} ms",
        stats.target,
        stats.nsid.as_deref().unwrap_or("-"),
        stats.serial.map_or_else(|| "-".to_owned(), |s| s.to_string()),
        stats.rcode.as_deref().unwrap_or("-"),
        stats.sent,
        stats.lost,
        ms(stats.rtt_min),
        ms(stats.percentile(0.5)),
        ms(stats.percentile(0.99)),
    )
}

/// Now as RFC 3339 UTC with milliseconds (no time-zone database needed).
fn now_rfc3339() -> String {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = crate::zone::civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// A plain HTTP/1.0 responder: GET /metrics, anything else 404. One
/// connection at a time is enough for a scraper.
fn serve_metrics(listener: &TcpListener, stats: &Mutex<Vec<TargetStats>>) {
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let mut request = [0u8; 1024];
        let len = stream.read(&mut request).unwrap_or(0);
        let head = String::from_utf8_lossy(&request[..len]);
        let response = if head.starts_with("GET /metrics ") || head.starts_with("GET /metrics?") {
            let snapshot = stats.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let mut registry = Registry::with_prefix("dnsxdp_probe");
            registry.register_collector(Box::new(Snapshot(snapshot)));
            let mut text = String::new();
            match prometheus_client::encoding::prometheus_text::encode(&mut text, &registry) {
                Ok(()) => format!(
                    "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\n\r\n{text}",
                    text.len()
                ),
                Err(err) => format!("HTTP/1.0 500 Internal Server Error\r\n\r\n{err}\n"),
            }
        } else {
            tracing::debug!(request = %head.lines().next().unwrap_or_default(), "probe metrics: refused");
            "HTTP/1.0 404 Not Found\r\n\r\nonly GET /metrics is served here\n".to_owned()
        };
        let _ = stream.write_all(response.as_bytes());
    }
}

#[derive(Debug)]
struct Snapshot(Vec<TargetStats>);

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let target = |t: &TargetStats| vec![("target", t.target.clone())];
        let mut family = encoder.encode_descriptor("queries", "Queries sent, by target", None, MetricType::Counter)?;
        for t in &self.0 {
            ConstCounter::new(t.sent).encode(family.encode_family(&target(t))?)?;
        }
        let mut family =
            encoder.encode_descriptor("lost", "Queries with no reply in time, by target", None, MetricType::Counter)?;
        for t in &self.0 {
            ConstCounter::new(t.lost).encode(family.encode_family(&target(t))?)?;
        }
        let mut family = encoder.encode_descriptor(
            "rtt_seconds",
            "Round-trip time over the recent replies, by target and quantile (0 = min)",
            None,
            MetricType::Gauge,
        )?;
        for t in &self.0 {
            for (quantile, value) in [("0", t.rtt_min), ("0.5", t.percentile(0.5)), ("0.99", t.percentile(0.99))] {
                if let Some(ms) = value {
                    let mut labels = target(t);
                    labels.push(("quantile", quantile.to_owned()));
                    ConstGauge::new(ms / 1000.0).encode(family.encode_family(&labels)?)?;
                }
            }
        }
        let mut family = encoder.encode_descriptor(
            "answering_instance",
            "1 for the instance (NSID) that answered the target's last reply",
            None,
            MetricType::Gauge,
        )?;
        for t in &self.0 {
            if let Some(nsid) = &t.nsid {
                let mut labels = target(t);
                labels.push(("nsid", nsid.clone()));
                ConstGauge::new(1i64).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "serial",
            "The SOA serial of the last reply, by target",
            None,
            MetricType::Gauge,
        )?;
        for t in &self.0 {
            if let Some(serial) = t.serial {
                ConstGauge::new(i64::from(serial)).encode(family.encode_family(&target(t))?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "instance_changes",
            "Changes of answering instance seen, by target",
            None,
            MetricType::Counter,
        )?;
        for t in &self.0 {
            ConstCounter::new(t.instance_changes).encode(family.encode_family(&target(t))?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_take_a_default_port() {
        assert_eq!(parse_target("198.18.0.1").expect("ip"), "198.18.0.1:53".parse().expect("addr"));
        assert_eq!(parse_target("[2001:db8::1]:5300").expect("v6"), "[2001:db8::1]:5300".parse().expect("addr"));
        assert!(parse_target("pop-a").is_err());
    }

    #[test]
    fn a_change_of_instance_is_an_event_and_percentiles_are_nearest_rank() {
        let mut stats = TargetStats { target: "t".into(), ..Default::default() };
        let reply = |nsid: &str, ms: u64| Outcome::Reply {
            rtt: Duration::from_millis(ms),
            nsid: Some(nsid.into()),
            rcode: "NOERROR".into(),
            serial: Some(1),
        };
        assert!(record(&mut stats, &reply("a", 10), false).is_empty(), "the first reply is the baseline");
        assert!(record(&mut stats, &reply("a", 20), false).is_empty());
        assert!(record(&mut stats, &Outcome::Lost { why: "timeout".into() }, false).is_empty());
        let lines = record(&mut stats, &reply("b", 40), true);
        assert_eq!(lines.len(), 2, "{lines:?}");
        let event: serde_json::Value = serde_json::from_str(&lines[1]).expect("json");
        assert_eq!(
            (event["event"].as_str(), event["from"].as_str(), event["to"].as_str()),
            (Some("instance"), Some("a"), Some("b"))
        );
        assert_eq!((event["previous_rtt_ms"].as_f64(), event["rtt_ms"].as_f64()), (Some(20.0), Some(40.0)));
        assert_eq!((stats.sent, stats.lost, stats.instance_changes), (4, 1, 1));
        assert_eq!(
            (stats.rtt_min, stats.percentile(0.5), stats.percentile(0.99)),
            (Some(10.0), Some(20.0), Some(40.0))
        );
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let now = now_rfc3339();
        assert_eq!(now.len(), "2026-12-02T04:40:01.123Z".len(), "{now}");
        assert!(now.starts_with("20") && now.ends_with('Z'), "{now}");
    }
}
