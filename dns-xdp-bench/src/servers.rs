//! The servers under test: how each is configured, started in the server
//! namespace on CPU 1, and recognised as ready.

use std::fmt::Write as _;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use super::dnsq;
use super::procs::{self, Proc};
use netlab::netns::{SRV_V4, SRV_V6};
use netlab::{TempDir, Topology};

/// The rows of the comparison, in table order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServerKind {
    /// dns-xdp with its XDP fast path (native mode).
    DnsXdpXdp,
    /// dns-xdp, daemon only (`--xdp-mode off`).
    DnsXdpDaemon,
    /// Knot DNS with its XDP mode.
    KnotXdp,
    /// Knot DNS, UDP sockets only.
    KnotUdp,
    /// NSD.
    Nsd,
    /// dns-xdp's bounce program: every query turned around, no DNS work.
    Bounce,
}

impl ServerKind {
    pub const ALL: [ServerKind; 6] = [
        ServerKind::DnsXdpXdp,
        ServerKind::DnsXdpDaemon,
        ServerKind::KnotXdp,
        ServerKind::KnotUdp,
        ServerKind::Nsd,
        ServerKind::Bounce,
    ];

    pub fn id(self) -> &'static str {
        match self {
            ServerKind::DnsXdpXdp => "dns-xdp-xdp",
            ServerKind::DnsXdpDaemon => "dns-xdp-daemon",
            ServerKind::KnotXdp => "knot-xdp",
            ServerKind::KnotUdp => "knot-udp",
            ServerKind::Nsd => "nsd",
            ServerKind::Bounce => "bounce",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            ServerKind::DnsXdpXdp => "dns-xdp, XDP",
            ServerKind::DnsXdpDaemon => "dns-xdp, daemon only",
            ServerKind::KnotXdp => "Knot DNS, XDP",
            ServerKind::KnotUdp => "Knot DNS, UDP",
            ServerKind::Nsd => "NSD",
            ServerKind::Bounce => "bare XDP_TX bounce (ceiling)",
        }
    }

    /// dns-xdp's own rows: a failure there fails the bench.
    pub fn is_ours(self) -> bool {
        matches!(self, ServerKind::DnsXdpXdp | ServerKind::DnsXdpDaemon | ServerKind::Bounce)
    }

    /// Whether it answers with real DNS data (the bounce only echoes).
    pub fn is_dns(self) -> bool {
        self != ServerKind::Bounce
    }
}

/// What starting a server needs.
pub struct Env<'a> {
    pub topo: &'a Topology,
    /// The dns-xdp binary.
    pub daemon: &'a Path,
    /// Where process logs go (target/bench/logs).
    pub logs: &'a Path,
}

pub fn service() -> SocketAddr {
    SocketAddr::from((SRV_V4, 53))
}

/// A started server; stopping it is dropping it.
pub struct Running {
    pub kind: ServerKind,
    pub proc: Proc,
    /// dns-xdp's XDP program ID (from its log), to pick its counters out of
    /// `dns-xdp stats --json`.
    pub program_id: Option<u32>,
    /// Time from start to the daemon's "serving" log line (dns-xdp only).
    pub serving_after: Option<Duration>,
    /// Config and run directory (peers); removed after the process stops,
    /// since fields drop in declaration order.
    _dir: Option<TempDir>,
}

/// Starts `kind` serving `zone` (for the bounce: attaches it) in the server
/// namespace on CPU 1, and waits until its process reports readiness. The
/// caller then checks that it answers (for XDP servers that needs the client
/// veth's program first).
pub fn start(kind: ServerKind, env: &Env, zone: &Path, tag: &str, timeout: Duration) -> Result<Running> {
    start_with(kind, env, zone, tag, timeout, &[])
}

/// [`start`], with `extra` arguments appended to dns-xdp's `run` command
/// line (ignored for the other servers).
pub fn start_with(
    kind: ServerKind,
    env: &Env,
    zone: &Path,
    tag: &str,
    timeout: Duration,
    extra: &[&str],
) -> Result<Running> {
    let topo = env.topo;
    let label = format!("{}{tag}", kind.id());
    let daemon_run = |xdp: bool| {
        let mut cmd = topo.srv().command(env.daemon);
        cmd.arg("run").arg("--zone").arg(zone);
        cmd.args(["--listen", &format!("{SRV_V4}:53"), "--listen", &format!("[{SRV_V6}]:53")]);
        if xdp {
            // A pin directory of our own: the daemon pins inside the mount
            // namespace `ip netns exec` gives it, but never share one.
            let pin_dir = format!("/sys/fs/bpf/dxbench-{}", std::process::id());
            cmd.args(["--iface", topo.srv_if(), "--xdp-mode", "native", "--map-entries", "131072"]);
            cmd.args(["--pin-dir", &pin_dir]);
        } else {
            cmd.args(["--xdp-mode", "off"]);
        }
        cmd.args(extra);
        cmd
    };
    let mut running = match kind {
        ServerKind::DnsXdpXdp | ServerKind::DnsXdpDaemon => {
            let cmd = daemon_run(kind == ServerKind::DnsXdpXdp);
            let mut proc = procs::spawn(cmd, &label, 1, env.logs)?;
            let serving_after = proc.wait_for_output("serving", timeout)?;
            let program_id = parse_program_id(&proc.stderr());
            Running { kind, proc, program_id, serving_after: Some(serving_after), _dir: None }
        }
        ServerKind::Bounce => {
            let mut cmd = topo.srv().command(env.daemon);
            cmd.args(["attach", "bounce", "--iface", topo.srv_if(), "--xdp-mode", "native"]);
            cmd.args(["--listen", &format!("{SRV_V4}:53"), "--listen", &format!("[{SRV_V6}]:53")]);
            let mut proc = procs::spawn(cmd, &label, 1, env.logs)?;
            proc.wait_for_output("attached", timeout)?;
            Running::peer(kind, proc, None)
        }
        ServerKind::KnotXdp | ServerKind::KnotUdp => {
            let dir = netlab::temp_dir(&label)?;
            let xdp_iface = (kind == ServerKind::KnotXdp).then_some(topo.srv_if());
            let conf = dir.path().join("knot.conf");
            fs::write(&conf, knot_config(dir.path(), zone, xdp_iface)).context("writing knot.conf")?;
            let mut cmd = topo.srv().command("knotd");
            cmd.arg("-c").arg(&conf);
            let mut proc = procs::spawn(cmd, &label, 1, env.logs)?;
            proc.wait_for_output("server started", timeout)?;
            Running::peer(kind, proc, Some(dir))
        }
        ServerKind::Nsd => {
            let dir = netlab::temp_dir(&label)?;
            let conf = dir.path().join("nsd.conf");
            fs::write(&conf, nsd_config(dir.path(), zone)).context("writing nsd.conf")?;
            // -d: stay in the foreground (it still forks its server and xfrd
            // processes, which the process guard tracks).
            let mut cmd = topo.srv().command("nsd");
            cmd.arg("-d").arg("-c").arg(&conf);
            let proc = procs::spawn(cmd, &label, 1, env.logs)?;
            Running::peer(kind, proc, Some(dir))
        }
    };
    running.proc.ensure_running()?;
    Ok(running)
}

impl Running {
    /// A server started without dns-xdp's own readings (program ID, time to
    /// "serving"), keeping its config directory, if any, until it stops.
    fn peer(kind: ServerKind, proc: Proc, dir: Option<TempDir>) -> Running {
        Running { kind, proc, program_id: None, serving_after: None, _dir: dir }
    }

    /// Waits until the server answers `name` (for the bounce: any reply),
    /// asked from the client namespace.
    pub fn wait_answers(&mut self, topo: &Topology, name: &str, timeout: Duration) -> Result<Duration> {
        let sock = dnsq::socket_in(topo.cli())?;
        let is_dns = self.kind.is_dns();
        let proc = &mut self.proc;
        dnsq::wait_for_reply(
            &sock,
            service(),
            (name, dnsq::TYPE_A),
            timeout,
            |r| !is_dns || dnsq::answered(r),
            || proc.ensure_running(),
        )
        .with_context(|| format!("{} does not answer", self.kind.label()))
    }
}

/// `program_id=NNN` from dns-xdp's "XDP fast path attached" log line.
fn parse_program_id(log: &str) -> Option<u32> {
    let rest = &log[log.find("program_id=")? + "program_id=".len()..];
    rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// Knot DNS config: our own dirs, bound to the namespace addresses, journal
/// and zone-file writing off (they would only add disk work), semantic
/// checks off (NSD and dns-xdp do not do Knot's extra checks either).
/// Thread counts are Knot's defaults; all threads end up on CPU 1.
fn knot_config(dir: &Path, zone: &Path, xdp_iface: Option<&str>) -> String {
    let d = dir.display();
    let mut c = String::new();
    let _ = writeln!(c, "server:\n    rundir: {d}\n    pidfile: {d}/knot.pid");
    let _ = writeln!(c, "    listen: {SRV_V4}@53\n    listen: {SRV_V6}@53");
    if let Some(iface) = xdp_iface {
        let _ = writeln!(c, "xdp:\n    listen: {iface}@53\n    udp: on\n    tcp: off");
    }
    let _ = writeln!(c, "control:\n    listen: {d}/knot.sock");
    let _ = writeln!(c, "database:\n    storage: {d}/db");
    let _ = writeln!(c, "log:\n  - target: stderr\n    any: info");
    let _ = writeln!(
        c,
        "template:\n  - id: default\n    storage: {d}\n    semantic-checks: off\n    zonefile-sync: -1\n    \
         zonefile-load: whole\n    journal-content: none"
    );
    let _ = writeln!(c, "zone:\n  - domain: {}\n    file: {}", super::workload::ORIGIN, zone.display());
    c
}

/// NSD config: our own dirs, no zone database (reads the zone text), no
/// privilege drop or chroot, no remote control. Response rate limiting is
/// compiled into Debian's NSD and on by default (200 q/s per client
/// prefix): off, since every benchmark query comes from one address.
fn nsd_config(dir: &Path, zone: &Path) -> String {
    let d = dir.display();
    format!(
        "server:\n    ip-address: {SRV_V4}\n    ip-address: {SRV_V6}\n    port: 53\n    server-count: 1\n    \
         username: \"\"\n    chroot: \"\"\n    zonesdir: \"{d}\"\n    database: \"\"\n    \
         zonelistfile: \"{d}/zone.list\"\n    xfrdfile: \"{d}/xfrd.state\"\n    xfrdir: \"{d}\"\n    \
         pidfile: \"{d}/nsd.pid\"\n    verbosity: 1\n    rrl-ratelimit: 0\n    rrl-whitelist-ratelimit: 0\n\
         remote-control:\n    control-enable: no\n\
         zone:\n    name: {}\n    zonefile: \"{}\"\n",
        super::workload::ORIGIN,
        zone.display()
    )
}

/// Versions of the peers and generators, for the report.
pub fn versions(daemon: &Path) -> Vec<(String, String)> {
    let probe = |program: &str, args: &[&str], want: &str| -> String {
        let path: PathBuf = netlab::cmd::find_executable(program).unwrap_or_else(|| program.into());
        match std::process::Command::new(&path).args(args).output() {
            Ok(out) => {
                let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
                text.lines().find(|l| l.contains(want)).map(|l| l.trim().to_owned()).unwrap_or_else(|| "unknown".into())
            }
            Err(err) => format!("not runnable: {err}"),
        }
    };
    vec![
        ("dns-xdp".into(), probe(&daemon.display().to_string(), &["--version"], "dns-xdp")),
        ("knotd".into(), probe("knotd", &["-V"], "version")),
        ("nsd".into(), probe("nsd", &["-v"], "version")),
        ("dnsperf".into(), probe("dnsperf", &["-h"], "Version")),
        ("kxdpgun".into(), probe("kxdpgun", &["-V"], "version")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_program_id() {
        let log = "INFO dns_xdp::daemon: XDP fast path attached iface=x mode=Native program_id=927 preloaded=1";
        assert_eq!(parse_program_id(log), Some(927));
        assert_eq!(parse_program_id("serving"), None);
    }

    #[test]
    fn configs_name_the_zone() {
        let k = knot_config(Path::new("/tmp/k"), Path::new("/z/zone"), Some("dxs1"));
        assert!(k.contains("listen: dxs1@53") && k.contains("file: /z/zone"), "{k}");
        assert!(!knot_config(Path::new("/tmp/k"), Path::new("/z"), None).contains("xdp:"));
        let n = nsd_config(Path::new("/tmp/n"), Path::new("/z/zone"));
        assert!(n.contains("rrl-ratelimit: 0") && n.contains("zonefile: \"/z/zone\""), "{n}");
    }
}
