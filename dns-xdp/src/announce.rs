//! `dns-xdp announce`: health-driven route control through the operator's
//! BIRD 2, in the way of anycast-healthchecker and ExaBGP's healthcheck.
//!
//! It runs as its own process (its own service), so it notices a daemon
//! that is dead or hung by itself: each check is a query for each zone's
//! SOA to each service address (NOERROR with AA, within the timeout), and,
//! with `--health-url`, a GET of the daemon's `/health` that must answer
//! 200 (which fails while draining or with a zone that cannot be served).
//! `--rise` passing checks in a row announce, `--fall` failing ones
//! withdraw, so one flapping check does not flap the route.
//!
//! The mechanism: a generated BIRD include file with one `static` protocol
//! per address family, holding the service prefixes (/32, /128) while
//! announced and nothing while withdrawn, applied with `birdc configure`
//! (written aside and renamed, so BIRD never reads half a file). The
//! service addresses themselves stay configured: withdrawing never stops
//! the daemon answering what still reaches it.
//!
//! When this process stops on a signal it withdraws first. Killed
//! (SIGKILL), it leaves BIRD with the last state it wrote; its service
//! unit's `ExecStopPost` (see `dist/`) runs `dns-xdp announce --withdraw`.
//! When BIRD dies, its BGP sessions drop and the peers remove the PoP's
//! routes within their hold time.

use std::{
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use hickory_proto::rr::Name;

use crate::health;

#[derive(clap::Args, Debug)]
pub struct AnnounceArgs {
    /// A service address the daemon answers on, IP or IP:PORT (port 53 by
    /// default), repeatable; its /32 or /128 is the prefix announced.
    #[arg(long = "service", value_name = "ADDR", required = true)]
    pub services: Vec<String>,
    /// A zone whose SOA each check asks for, repeatable.
    #[arg(long = "zone", value_name = "ZONE", required_unless_present = "withdraw")]
    pub zones: Vec<String>,
    /// The daemon's health endpoint, which must answer 200 too
    /// (e.g. http://127.0.0.1:9153/health).
    #[arg(long, value_name = "URL")]
    pub health_url: Option<String>,
    /// Seconds between checks.
    #[arg(long, value_name = "S", default_value_t = 1.0)]
    pub interval: f64,
    /// Seconds a check may take (each query, the health request).
    #[arg(long, value_name = "S", default_value_t = 0.5)]
    pub timeout: f64,
    /// Passing checks in a row before the prefixes are announced.
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub rise: u32,
    /// Failing checks in a row before the prefixes are withdrawn.
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub fall: u32,
    /// The BIRD include file to generate (bird.conf includes it).
    #[arg(long, value_name = "FILE", default_value = "/run/dns-xdp-announce/bird-anycast.conf")]
    pub include: PathBuf,
    /// The name of the static protocols, with `4`/`6` appended (bird.conf's
    /// BGP export filter selects them).
    #[arg(long, value_name = "NAME", default_value = "dns_xdp_anycast")]
    pub protocol: String,
    /// The birdc binary.
    #[arg(long, value_name = "PATH", default_value = "birdc")]
    pub birdc: PathBuf,
    /// BIRD's control socket [default: birdc's own].
    #[arg(long, value_name = "PATH")]
    pub bird_socket: Option<PathBuf>,
    /// Write the withdrawn state, reconfigure BIRD and exit (for
    /// ExecStopPost, and by hand).
    #[arg(long)]
    pub withdraw: bool,
}

/// What BIRD is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Announced,
    Withdrawn,
}

/// Rise/fall hysteresis: the state changes only after `rise` passes or
/// `fall` failures in a row.
#[derive(Debug)]
pub struct Hysteresis {
    rise: u32,
    fall: u32,
    run: u32,
    state: State,
}

impl Hysteresis {
    /// Starts withdrawn: a PoP earns its route.
    pub fn new(rise: u32, fall: u32) -> Self {
        Hysteresis { rise, fall, run: 0, state: State::Withdrawn }
    }

    /// Folds one check in; returns the new state when it changes.
    pub fn check(&mut self, passed: bool) -> Option<State> {
        let (towards, needed) = match self.state {
            State::Withdrawn => (passed, self.rise),
            State::Announced => (!passed, self.fall),
        };
        self.run = if towards { self.run + 1 } else { 0 };
        if self.run < needed {
            return None;
        }
        self.run = 0;
        self.state = if self.state == State::Announced { State::Withdrawn } else { State::Announced };
        Some(self.state)
    }
}

/// The include file's text for `state`.
pub fn include_text(protocol: &str, prefixes: &[IpAddr], state: State) -> String {
    let mut text = format!(
        "# Generated by dns-xdp announce: {}. Do not edit; bird.conf includes it.\n",
        if state == State::Announced { "announced" } else { "withdrawn" }
    );
    for (suffix, channel, len) in [("4", "ipv4", 32), ("6", "ipv6", 128)] {
        text.push_str(&format!("protocol static {protocol}{suffix} {{\n  {channel};\n"));
        if state == State::Announced {
            for ip in prefixes.iter().filter(|ip| ip.is_ipv4() == (len == 32)) {
                text.push_str(&format!("  route {ip}/{len} unreachable;\n"));
            }
        }
        text.push_str("}\n");
    }
    text
}

fn parse_service(text: &str) -> anyhow::Result<SocketAddr> {
    crate::probe::parse_target(text).with_context(|| format!("--service {text:?}"))
}

/// Writes the include file for `state` and has BIRD apply it.
fn apply(args: &AnnounceArgs, prefixes: &[IpAddr], state: State) -> anyhow::Result<()> {
    let text = include_text(&args.protocol, prefixes, state);
    let dir = args.include.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let aside = dir.join(format!(
        ".{}.tmp",
        args.include.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    ));
    std::fs::write(&aside, text).with_context(|| format!("writing {}", aside.display()))?;
    std::fs::rename(&aside, &args.include).with_context(|| format!("replacing {}", args.include.display()))?;
    let mut birdc = Command::new(&args.birdc);
    if let Some(socket) = &args.bird_socket {
        birdc.arg("-s").arg(socket);
    }
    let out = birdc.arg("configure").output().with_context(|| format!("running {}", args.birdc.display()))?;
    let said = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    // birdc exits 0 even when BIRD rejects the configuration: read what it said.
    if !out.status.success() || !said.contains("Reconfigur") {
        bail!("birdc configure failed: {}", said.trim());
    }
    Ok(())
}

/// One check: every zone's SOA from every service address, then /health.
fn check(services: &[SocketAddr], zones: &[Name], health_url: Option<&str>, timeout: Duration) -> Vec<String> {
    let mut failures = Vec::new();
    for addr in services {
        for zone in zones {
            if let Err(problem) = health::answers_soa_within(*addr, zone, timeout) {
                failures.push(format!("{addr}: SOA {zone}: {problem}"));
            }
        }
    }
    if let Some(url) = health_url
        && let Err(problem) = http_ok(url, timeout)
    {
        failures.push(format!("{url}: {problem}"));
    }
    failures
}

/// GET `url` (http://HOST:PORT/PATH) and require status 200.
fn http_ok(url: &str, timeout: Duration) -> Result<(), String> {
    use std::io::{Read as _, Write as _};
    let rest = url.strip_prefix("http://").ok_or("only http:// URLs")?;
    let (host, path) = rest.split_once('/').map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    let addr: SocketAddr = host.parse().map_err(|_| format!("{host}: expected IP:PORT"))?;
    let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect: {e}"))?;
    stream.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    stream.set_write_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").map_err(|e| format!("send: {e}"))?;
    let mut head = [0u8; 64];
    let len = stream.read(&mut head).map_err(|e| format!("no answer within {timeout:?}: {e}"))?;
    let head = String::from_utf8_lossy(&head[..len]);
    match head.split_whitespace().nth(1) {
        Some("200") => Ok(()),
        Some(status) => Err(format!("status {status}")),
        None => Err("no HTTP status line".to_owned()),
    }
}

pub fn run(args: AnnounceArgs) -> anyhow::Result<()> {
    let services = args.services.iter().map(|s| parse_service(s)).collect::<anyhow::Result<Vec<_>>>()?;
    let prefixes: Vec<IpAddr> = services.iter().map(SocketAddr::ip).collect();
    if let Some(ip) = prefixes.iter().find(|ip| ip.is_unspecified()) {
        bail!("--service {ip}: announce needs the anycast address itself, not a wildcard");
    }
    if args.withdraw {
        // The file is what counts: a BIRD that is not running reads it
        // when it starts.
        match apply(&args, &prefixes, State::Withdrawn) {
            Ok(()) => tracing::info!(?prefixes, "withdrawn"),
            Err(err) => tracing::warn!(error = %format!("{err:#}"), "withdrawn in the include file; BIRD not told"),
        }
        return Ok(());
    }
    let zones = args
        .zones
        .iter()
        .map(|z| Name::from_ascii(z).with_context(|| format!("--zone {z:?}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if !(args.interval.is_finite() && args.interval >= 0.1 && args.timeout.is_finite() && args.timeout > 0.0) {
        bail!("--interval must be at least 0.1 seconds and --timeout positive");
    }
    let (interval, timeout) = (Duration::from_secs_f64(args.interval), Duration::from_secs_f64(args.timeout));
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone()).context("installing the signal handler")?;
    }
    // Withdrawn until the checks pass `rise` times: a restarted controller
    // never announces a PoP it has not checked.
    apply(&args, &prefixes, State::Withdrawn)?;
    tracing::info!(
        ?prefixes,
        rise = args.rise,
        fall = args.fall,
        interval_s = args.interval,
        "route control started, withdrawn"
    );
    let mut hysteresis = Hysteresis::new(args.rise, args.fall);
    // A state BIRD has not taken yet (birdc failed): retried every check.
    let mut pending: Option<State> = None;
    let start = Instant::now();
    let mut round = 0u32;
    while !stop.load(Ordering::Relaxed) {
        let failures = check(&services, &zones, args.health_url.as_deref(), timeout);
        if let Some(state) = hysteresis.check(failures.is_empty()) {
            match state {
                State::Announced => tracing::info!(?prefixes, "healthy: announcing"),
                State::Withdrawn => tracing::warn!(?prefixes, ?failures, "unhealthy: withdrawing"),
            }
            pending = Some(state);
        } else if !failures.is_empty() {
            tracing::info!(?failures, "check failed");
        }
        if let Some(state) = pending {
            match apply(&args, &prefixes, state) {
                Ok(()) => pending = None,
                Err(err) => tracing::error!(error = %format!("{err:#}"), "BIRD did not take the change; retrying"),
            }
        }
        round += 1;
        let next = start + interval * round;
        while Instant::now() < next && !stop.load(Ordering::Relaxed) {
            std::thread::sleep((next - Instant::now()).min(Duration::from_millis(50)));
        }
    }
    apply(&args, &prefixes, State::Withdrawn)?;
    tracing::info!(?prefixes, "stopped: withdrawn");
    Ok(())
}

/// `dns-xdp drain`: how to tell that the traffic has moved.
#[derive(clap::Args, Debug)]
pub struct DrainArgs {
    /// The daemon's control socket.
    #[arg(long, value_name = "PATH", default_value = crate::config::DEFAULT_CONTROL_SOCKET)]
    pub control_socket: PathBuf,
    /// Seconds the traffic must stay below --idle-qps before the daemon is
    /// stopped.
    #[arg(long, value_name = "S", default_value_t = 3.0)]
    pub quiet: f64,
    /// Queries per second (XDP answers and the daemon's own) still counted
    /// as no traffic: the route controller's and monitoring's checks.
    #[arg(long, value_name = "QPS", default_value_t = 5.0)]
    pub idle_qps: f64,
    /// Stop the daemon after this many seconds even if traffic still comes.
    #[arg(long, value_name = "S", default_value_t = 60.0)]
    pub timeout: f64,
    /// Withdraw and wait, but leave the daemon running (draining) instead
    /// of stopping it.
    #[arg(long)]
    pub no_stop: bool,
}

/// The queries an instance answered so far: XDP answers and the daemon's.
fn answered(program_id: Option<u64>) -> anyhow::Result<u64> {
    let instances = crate::stats::read_stats()?;
    let inst = instances
        .iter()
        .find(|i| Some(u64::from(i.program_id)) == program_id)
        .or_else(|| instances.first().filter(|_| program_id.is_none()));
    let Some(inst) = inst else { bail!("the daemon's XDP program {program_id:?} is not loaded") };
    let get = |map: &std::collections::BTreeMap<&'static str, u64>, name| map.get(name).copied().unwrap_or(0);
    Ok(get(&inst.xdp, "tx_answer") + get(&inst.daemon, "udp_queries") + get(&inst.daemon, "tcp_queries"))
}

/// Withdraws (health fails: the route controller withdraws), waits until
/// the traffic has moved, then stops the daemon through the control socket.
pub fn drain(args: &DrainArgs) -> anyhow::Result<()> {
    use crate::control::{Request, request};
    for (flag, value) in [("--quiet", args.quiet), ("--timeout", args.timeout), ("--idle-qps", args.idle_qps)] {
        if !(value.is_finite() && value >= 0.0) {
            bail!("{flag} must be a number of seconds (or queries per second) >= 0");
        }
    }
    let status = request(&args.control_socket, &Request::Drain {})?;
    let program_id = status["program_id"].as_u64();
    println!("draining: health fails, so the route controller withdraws the prefixes; still answering");
    let started = Instant::now();
    let (quiet, timeout) = (Duration::from_secs_f64(args.quiet), Duration::from_secs_f64(args.timeout));
    let step = Duration::from_millis(500);
    let mut last = answered(program_id)?;
    let mut quiet_since = Instant::now();
    loop {
        std::thread::sleep(step);
        let now = answered(program_id)?;
        let rate = now.saturating_sub(last) as f64 / step.as_secs_f64();
        last = now;
        if rate > args.idle_qps {
            quiet_since = Instant::now();
        }
        if quiet_since.elapsed() >= quiet {
            println!("traffic has moved: {rate:.0} queries/s for {:.1} s", quiet.as_secs_f64());
            break;
        }
        if started.elapsed() >= timeout {
            println!("still {rate:.0} queries/s after {:.0} s (--timeout): stopping anyway", timeout.as_secs_f64());
            break;
        }
    }
    if args.no_stop {
        println!("left running, draining (restart it to serve again)");
        return Ok(());
    }
    request(&args.control_socket, &Request::Stop {})?;
    println!("stopped after {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flapping_check_does_not_flap_the_route() {
        let mut h = Hysteresis::new(2, 3);
        assert_eq!(h.check(true), None);
        assert_eq!(h.check(true), Some(State::Announced));
        // Fail, pass, fail, fail, pass: never three failures in a row.
        for passed in [false, true, false, false, true, false, false] {
            assert_eq!(h.check(passed), None, "flapped on {passed}");
        }
        assert_eq!(h.check(false), Some(State::Withdrawn));
        assert_eq!(h.check(true), None);
        assert_eq!(h.check(false), None);
        assert_eq!(h.check(true), None);
        assert_eq!(h.check(true), Some(State::Announced));
    }

    #[test]
    fn the_include_holds_the_prefixes_only_while_announced() {
        let prefixes: Vec<IpAddr> = vec!["198.18.53.1".parse().expect("v4"), "2001:db8:53::1".parse().expect("v6")];
        let on = include_text("anycast", &prefixes, State::Announced);
        assert!(on.contains("protocol static anycast4 {\n  ipv4;\n  route 198.18.53.1/32 unreachable;\n}"), "{on}");
        assert!(on.contains("protocol static anycast6 {\n  ipv6;\n  route 2001:db8:53::1/128 unreachable;\n}"), "{on}");
        let off = include_text("anycast", &prefixes, State::Withdrawn);
        assert!(off.contains("protocol static anycast4 {\n  ipv4;\n}") && !off.contains("route"), "{off}");
    }
}
