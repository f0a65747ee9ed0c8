//! The control socket as an operator uses it: `dns-xdp cache list` shows
//! what was just asked, `cache flush` empties the table (the next query is
//! the daemon's, the one after XDP's again), a wrong zone is a clear error,
//! `dns-xdp reload` returns the outcome, `dns-xdp stats` shows the health,
//! and the socket refuses what it does not know and who it does not know.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    net::SocketAddr,
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    process::Output,
    time::Duration,
};

use dns_xdp_tests::{
    NetNsExt as _, SRV_V4, Topology, TopologyExt as _,
    daemon::{Daemon, EXAMPLE_ZONE, PUBLISH_WAIT, ask, client_pass, counter},
    daemon_bin, require_root,
};
use hickory_proto::{
    op::ResponseCode,
    rr::{RData, RecordType},
};

/// A daemon on the veth topology with its control socket in a temp dir and
/// nothing preloaded, so the table holds exactly what was asked.
struct Setup {
    daemon: Daemon,
    _pass: aya::Ebpf,
    topo: Topology,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Setup {
    fn new(zone: &str) -> Self {
        Self::with(zone, &[])
    }

    fn with(zone: &str, extra: &[&str]) -> Self {
        require_root();
        let dir = dns_xdp_tests::temp_dir("control");
        let socket = dir.path().join("control.sock");
        let topo = Topology::new();
        let pass = client_pass(&topo);
        let mut args =
            vec!["--preload", "none", "--metrics", "off", "--control-socket", socket.to_str().expect("utf-8")];
        args.extend_from_slice(extra);
        let daemon = Daemon::on_veth(&topo, zone, &args);
        Setup { daemon, _pass: pass, topo, socket, _dir: dir }
    }

    fn server(&self) -> SocketAddr {
        SocketAddr::from((SRV_V4, 53))
    }

    /// `dns-xdp ARGS --control-socket SOCKET`, run as a user would.
    fn cli(&self, args: &[&str]) -> Output {
        std::process::Command::new(daemon_bin())
            .args(args)
            .arg("--control-socket")
            .arg(&self.socket)
            .output()
            .expect("running dns-xdp")
    }

    fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(out.status.success(), "dns-xdp {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("utf-8")
    }

    /// Asks for `name` A, which must be NOERROR, and says who answered: the
    /// XDP program (its tx_answer counter moved) or the daemon.
    fn answered_by_xdp(&self, name: &str, id: u16) -> bool {
        let before = counter(&self.daemon.stats().0, "tx_answer");
        let reply = ask(self.topo.cli(), self.server(), name, RecordType::A, id);
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError, "{name}");
        // The insert is asynchronous and the counters are published every
        // 200 ms.
        std::thread::sleep(PUBLISH_WAIT);
        counter(&self.daemon.stats().0, "tx_answer") > before
    }
}

/// `NAME TYPE` of each line `cache list` printed.
fn listed(out: &str) -> Vec<String> {
    out.lines().map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" ")).collect()
}

#[test]
fn cache_list_shows_what_was_asked_and_flush_empties_the_table() {
    let s = Setup::new(EXAMPLE_ZONE);
    assert!(s.cli_ok(&["cache", "list"]).is_empty(), "nothing preloaded, nothing asked: the table is empty");
    assert!(!s.answered_by_xdp("www.example.test.", 1), "the first query is the daemon's");
    assert!(!s.answered_by_xdp("mail.example.test.", 2));

    let out = s.cli_ok(&["cache", "list"]);
    assert_eq!(listed(&out), ["mail.example.test. A", "www.example.test. A"], "{out}");
    assert!(out.lines().all(|l| l.ends_with(" example.test.") && l.contains(" NOERROR ")), "{out}");
    assert_eq!(listed(&s.cli_ok(&["cache", "list", "--limit", "1"])), ["mail.example.test. A"]);
    assert_eq!(listed(&s.cli_ok(&["cache", "list", "--zone", "example.test"])).len(), 2);
    assert!(s.answered_by_xdp("www.example.test.", 3), "a listed answer is served by XDP");

    let out = s.cli_ok(&["cache", "flush"]);
    assert!(out.contains("flushed 2 answers"), "{out}");
    assert!(s.cli_ok(&["cache", "list"]).is_empty(), "flush empties the table");
    assert!(!s.answered_by_xdp("www.example.test.", 4), "after a flush the daemon answers");
    assert!(s.answered_by_xdp("www.example.test.", 5), "and puts the answer back: XDP answers again");
    assert!(s.daemon.child.stderr().contains("answer table flushed"), "the flush is logged");
}

#[test]
fn flush_of_one_zone_keeps_the_others_and_a_wrong_zone_is_a_clear_error() {
    let dir = dns_xdp_tests::temp_dir("control-zones");
    let other = dir.path().join("other.test.zone");
    std::fs::write(&other, "$ORIGIN other.test.\n$TTL 300\n@ SOA ns hostmaster 1 7200 3600 1209600 300\n@ NS ns\nns A 198.18.0.1\nwww A 198.18.40.1\n")
        .expect("zone file");
    let s = Setup::with(EXAMPLE_ZONE, &["--zone", other.to_str().expect("utf-8")]);
    s.answered_by_xdp("www.example.test.", 1);
    s.answered_by_xdp("www.other.test.", 2);
    assert_eq!(listed(&s.cli_ok(&["cache", "list", "--zone", "other.test."])), ["www.other.test. A"]);

    let out = s.cli(&["cache", "flush", "--zone", "nosuch.test"]);
    assert!(!out.status.success(), "a zone not served must fail");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("zone nosuch.test. is not served here") && err.contains("other.test."), "{err}");
    let out = s.cli(&["cache", "list", "--zone", "nosuch.test"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("not served here"));
    assert_eq!(listed(&s.cli_ok(&["cache", "list"])).len(), 2, "a failed flush removes nothing");

    assert!(s.cli_ok(&["cache", "flush", "--zone", "example.test"]).contains("flushed 1 answers"));
    assert_eq!(listed(&s.cli_ok(&["cache", "list"])), ["www.other.test. A"], "the other zone stays");
    assert!(s.answered_by_xdp("www.other.test.", 3));
    assert!(!s.answered_by_xdp("www.example.test.", 4));
}

#[test]
fn reload_over_the_control_socket_returns_the_outcome() {
    let dir = dns_xdp_tests::temp_dir("control-reload");
    let zone = dir.path().join("reload.test.zone");
    let text = |serial: u32, octet: u32| {
        format!(
            "$ORIGIN reload.test.\n$TTL 300\n@ SOA ns hostmaster {serial} 7200 3600 1209600 300\n@ NS ns\nns A 198.18.0.1\nwww A 198.18.20.{octet}\n"
        )
    };
    std::fs::write(&zone, text(1, 1)).expect("zone");
    let s = Setup::new(zone.to_str().expect("utf-8"));
    let a = |id| {
        let reply = ask(s.topo.cli(), s.server(), "www.reload.test.", RecordType::A, id);
        reply.answers.iter().find_map(|r| match &r.data {
            RData::A(a) => Some(a.0.octets()[3]),
            _ => None,
        })
    };
    assert_eq!(a(1), Some(1));

    std::fs::write(&zone, text(2, 2)).expect("zone");
    let out = s.cli_ok(&["reload"]);
    assert!(out.starts_with("reload done:"), "{out}");
    // The command returns once the new data is served, by XDP and daemon.
    assert_eq!(a(2), Some(2));

    std::fs::write(&zone, "$ORIGIN reload.test.\n@ SOA ns hostmaster 3 1 1 1 1\nwww A 198.18.20.999\n").expect("zone");
    let out = s.cli(&["reload"]);
    assert!(!out.status.success(), "a failed reload fails the command");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("serving its previous copy") && err.contains("reload.test.zone:3"), "{err}");
    assert_eq!(a(3), Some(2));
}

#[test]
fn stats_shows_the_health_of_the_daemon() {
    let s = Setup::new(EXAMPLE_ZONE);
    let out = s.cli_ok(&["stats"]);
    let own = out
        .split("dns-xdp program id ")
        .find(|block| block.starts_with(&format!("{}\n", s.daemon.program_id.expect("program id"))))
        .unwrap_or_else(|| panic!("this daemon's program is not in {out}"));
    assert!(own.contains("  health: healthy (fast path attached)"), "{own}");
    let json: serde_json::Value = serde_json::from_str(&s.cli_ok(&["stats", "--json"])).expect("stats JSON");
    let inst = json
        .as_array()
        .and_then(|all| all.iter().find(|i| i["program_id"].as_u64() == s.daemon.program_id))
        .expect("this daemon in stats --json");
    assert_eq!(inst["health"]["healthy"], true, "{inst}");

    // Detached behind the daemon's back: stats says unhealthy, and why.
    let link = s.topo.srv().exec_ok("bpftool", &["-j", "link", "show"]);
    let links: serde_json::Value = serde_json::from_str(&link).expect("bpftool JSON");
    let id = links
        .as_array()
        .and_then(|all| all.iter().find(|l| l["prog_id"].as_u64() == s.daemon.program_id))
        .and_then(|l| l["id"].as_u64())
        .expect("the daemon's XDP link");
    s.topo.srv().exec_ok("bpftool", &["link", "detach", "id", &id.to_string()]);
    let out = s.cli_ok(&["stats"]);
    assert!(out.contains("  health: UNHEALTHY") && out.contains("not attached to"), "{out}");
}

/// Sends one raw line to the socket and returns the answer line.
fn raw(socket: &Path, line: &str) -> String {
    let stream = UnixStream::connect(socket).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    (&stream).write_all(line.as_bytes()).expect("write");
    let mut answer = String::new();
    BufReader::new(&stream).read_line(&mut answer).expect("read");
    answer
}

#[test]
fn the_socket_refuses_unknown_requests_and_other_users() {
    let s = Setup::new(EXAMPLE_ZONE);
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&s.socket).expect("socket").permissions());
    assert_eq!(mode & 0o777, 0o600, "the socket is for its owner only");

    let answer = raw(&s.socket, "{\"command\":\"shutdown\"}\n");
    assert!(answer.contains("\"error\"") && answer.contains("unknown"), "{answer}");
    assert!(raw(&s.socket, "not json\n").contains("\"error\""));
    assert!(s.daemon.child.stderr().contains("refused an unknown or malformed request"), "the refusal is logged");

    // Another user cannot use it (nobody, uid 65534).
    let out = std::process::Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .arg(daemon_bin())
        .args(["cache", "flush", "--control-socket"])
        .arg(&s.socket)
        .output()
        .expect("setpriv");
    assert!(!out.status.success(), "nobody flushed the table: {}", String::from_utf8_lossy(&out.stdout));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("control socket"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The daemon still serves its owner.
    assert!(s.cli_ok(&["cache", "list"]).is_empty());
}

#[test]
fn stats_watch_shows_rates_hits_and_the_most_missed_questions() {
    let s = Setup::new(EXAMPLE_ZONE);
    // Names outside every zone are REFUSED, which the fast path never
    // serves: each one reaches the daemon. 96 of them, sampled 1 in 8.
    for id in 0..96 {
        let reply = ask(s.topo.cli(), s.server(), "www.example.org.", RecordType::A, id);
        assert_eq!(reply.metadata.response_code, ResponseCode::Refused);
    }
    ask(s.topo.cli(), s.server(), "www.example.test.", RecordType::A, 100);
    std::thread::sleep(PUBLISH_WAIT);

    let mut cmd = std::process::Command::new(daemon_bin());
    cmd.args(["stats", "--watch", "--count", "3", "--control-socket"]).arg(&s.socket);
    let mut watch = dns_xdp_tests::spawn(cmd, "stats --watch");
    // Hits during the view, bounded in count and time.
    let started = std::time::Instant::now();
    for id in 200..450u16 {
        if started.elapsed() > Duration::from_secs(3) {
            break;
        }
        ask(s.topo.cli(), s.server(), "www.example.test.", RecordType::A, id);
        std::thread::sleep(Duration::from_millis(5));
    }
    let status = watch.wait(Duration::from_secs(10)).expect("stats --watch --count 3 ends by itself");
    assert!(status.success(), "stats --watch failed: {}", watch.stderr());
    let out = watch.stdout();
    let frames: Vec<&str> = out.split("dns-xdp program ").skip(1).collect();
    assert_eq!(frames.len(), 3, "three frames:\n{out}");
    for frame in &frames {
        assert!(frame.contains("health: healthy"), "{frame}");
        assert!(frame.contains("XDP answers/s by CPU: cpu0 "), "{frame}");
        let missed = frame.split("most missed questions").nth(1).unwrap_or_else(|| panic!("no missed list: {frame}"));
        let top = missed.lines().nth(1).unwrap_or_default();
        assert!(top.ends_with("www.example.org. A"), "the most missed question first: {frame}");
        let estimate: u64 = top.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0);
        assert!((8..=200).contains(&estimate), "about 96 queries, sampled: {top}");
    }
    let rate = |frame: &str| -> f64 {
        let line = frame.lines().find(|l| l.starts_with("queries/s:")).expect("rates line");
        line.split(", ")
            .nth(1)
            .and_then(|p| p.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .expect("answered rate")
    };
    assert!(frames.iter().any(|f| rate(f) >= 20.0), "XDP answered the hits during the view:\n{out}");
    assert!(frames.iter().any(|f| f.contains("hit ratio 9") || f.contains("hit ratio 100")), "{out}");
}
