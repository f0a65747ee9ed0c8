//! Secondary zones against Knot DNS as the hidden primary, in a namespace of
//! their own: AXFR with TSIG, following the primary's serial, a wrong key
//! refused, the copy on disk served after a restart with the primary down,
//! and a zone past EXPIRE answered SERVFAIL.

use std::{
    io::{Read as _, Write as _},
    net::SocketAddr,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use dns_xdp_tests::{
    ChildGuard, NetNs, NetNsExt as _,
    daemon::{Daemon, ask},
    in_netns, require_root, udp_exchange, udp_socket,
};
use hickory_proto::{
    op::{Message, MessageType, OpCode, Query, ResponseCode},
    rr::{Name, RData, RecordType},
};

const PRIMARY: &str = "127.0.0.1:5310";
const SERVER: &str = "127.0.0.1:5311";
const SECRET: &str = "q7A0bVe4xO+1N0J8QbXxKXk0Ho8hMqSqFJ1D8RWaD3w=";
const OTHER_SECRET: &str = "AAAAbVe4xO+1N0J8QbXxKXk0Ho8hMqSqFJ1D8RWaD3w=";

/// knotd serving `sec.test.` to holders of the key `xfr`.
struct Knot {
    dir: PathBuf,
    proc: Option<ChildGuard>,
}

impl Knot {
    fn zone(serial: u32, last_octet: u8) -> String {
        format!(
            "$ORIGIN sec.test.\n$TTL 300\n@ SOA ns hostmaster {serial} 3600 600 604800 300\n@ NS ns\n\
             ns A 198.18.40.53\nwww A 198.18.40.{last_octet}\nmail MX 10 mx.other.test.\ntxt TXT \"hello\" \"world\"\n"
        )
    }

    fn start(ns: &NetNs, dir: &Path) -> Knot {
        let conf = format!(
            "server:\n  rundir: {d}\n  listen: 127.0.0.1@5310\ndatabase:\n  storage: {d}\ncontrol:\n  listen: {d}/knot.sock\n\
             key:\n  - id: xfr\n    algorithm: hmac-sha256\n    secret: {SECRET}\n\
             acl:\n  - id: xfr\n    key: xfr\n    action: transfer\n\
             remote:\n  - id: dnsxdp\n    address: 127.0.0.1@5311\n\
             zone:\n  - domain: sec.test\n    file: {d}/sec.test.zone\n    storage: {d}\n    acl: xfr\n    notify: dnsxdp\n    journal-content: none\n    zonefile-load: whole\n",
            d = dir.display()
        );
        std::fs::write(dir.join("knot.conf"), conf).expect("knot.conf");
        if !dir.join("sec.test.zone").exists() {
            std::fs::write(dir.join("sec.test.zone"), Self::zone(1, 1)).expect("zone");
        }
        let mut cmd = ns.command("knotd");
        cmd.args(["-c", dir.join("knot.conf").to_str().expect("utf-8")]);
        let proc = dns_xdp_tests::spawn(cmd, "knotd");
        let knot = Knot { dir: dir.to_owned(), proc: Some(proc) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !dns_xdp_tests::kdig(ns, &["@127.0.0.1", "-p", "5310", "sec.test.", "SOA", "+short"])
            .contains("hostmaster")
        {
            assert!(Instant::now() < deadline, "knotd did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        knot
    }

    /// A new version of the zone, loaded by knotd.
    fn publish(&self, ns: &NetNs, serial: u32, last_octet: u8) {
        std::fs::write(self.dir.join("sec.test.zone"), Self::zone(serial, last_octet)).expect("zone");
        let out = ns
            .output("knotc", &["-c", self.dir.join("knot.conf").to_str().expect("utf-8"), "zone-reload", "sec.test"])
            .expect("knotc");
        assert!(out.status.success(), "knotc: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn stop(&mut self) {
        self.proc.take();
    }
}

const METRICS: &str = "127.0.0.1:9153";

/// The response (status line, headers and body) to `GET path` on the
/// metrics endpoint, from inside `ns`.
fn http_get(ns: &NetNs, path: &str) -> String {
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    in_netns(ns, move || {
        let mut stream = std::net::TcpStream::connect(METRICS).expect("connecting to the metrics endpoint");
        stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        stream.write_all(request.as_bytes()).expect("request");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("response");
        response
    })
}

/// `dnsxdp_zone_expiry_seconds{zone="sec.test."}` from `GET /metrics` in `ns`.
fn expiry_seconds(ns: &NetNs) -> Option<i64> {
    http_get(ns, "/metrics")
        .lines()
        .find_map(|line| line.strip_prefix("dnsxdp_zone_expiry_seconds{zone=\"sec.test.\"} "))
        .and_then(|value| value.trim().parse().ok())
}

fn config(dir: &Path, secret: &str, extra: &str) -> String {
    let path = dir.join("dns-xdp.toml");
    std::fs::write(
        &path,
        format!(
            "xdp_mode = \"off\"\nlisten = [\"{SERVER}\"]\nmetrics = \"off\"\ncontrol_socket = \"off\"\n\
             state_dir = \"{}\"\n[[tsig]]\nname = \"xfr\"\nalgorithm = \"hmac-sha256\"\nsecret = \"{secret}\"\n\
             [[zone]]\norigin = \"sec.test\"\nprimaries = [\"{PRIMARY}\"]\ntsig = \"xfr\"\n{extra}\n",
            dir.join("state").display()
        ),
    )
    .expect("config");
    path.to_str().expect("utf-8").to_owned()
}

fn www(ns: &NetNs) -> Message {
    ask(ns, SERVER.parse::<SocketAddr>().expect("addr"), "www.sec.test.", RecordType::A, 7)
}

fn last_octet(msg: &Message) -> Option<u8> {
    msg.answers.iter().find_map(|r| match &r.data {
        RData::A(a) => Some(a.0.octets()[3]),
        _ => None,
    })
}

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn transfers_from_knot_with_tsig_follow_the_serial_and_survive_a_restart() {
    require_root();
    let ns = NetNs::new();
    let dir = dns_xdp_tests::temp_dir("secondary");
    let mut knot = Knot::start(&ns, dir.path());
    let conf = config(dir.path(), SECRET, "refresh = 1");
    let daemon = Daemon::start(&ns, &["-c", &conf]);
    wait_for("the first transfer", Duration::from_secs(10), || last_octet(&www(&ns)) == Some(1));
    let txt = ask(&ns, SERVER.parse().expect("addr"), "txt.sec.test.", RecordType::TXT, 8);
    assert_eq!(txt.answers.len(), 1, "{txt:?}");

    knot.publish(&ns, 2, 2);
    wait_for("serial 2 to be served", Duration::from_secs(5), || last_octet(&www(&ns)) == Some(2));
    let log = daemon.child.stderr();
    let transfer = log.lines().find(|l| l.contains("transfer done") && l.contains("serial_to=2")).expect(&log);
    assert!(transfer.contains("kind=\"AXFR\"") || transfer.contains("kind=AXFR"), "{transfer}");
    assert!(transfer.contains("serial_from=Some(1)") && transfer.contains("bytes="), "{transfer}");

    // Restart with the primary down: the copy on disk is served at once.
    drop(daemon);
    knot.stop();
    let daemon = Daemon::start(&ns, &["-c", &conf]);
    assert_eq!(last_octet(&www(&ns)), Some(2), "{}", daemon.child.stderr());
}

#[test]
fn a_wrong_tsig_key_is_refused_and_nothing_is_served() {
    require_root();
    let ns = NetNs::new();
    let dir = dns_xdp_tests::temp_dir("secondary-badkey");
    let _knot = Knot::start(&ns, dir.path());
    let conf = config(dir.path(), OTHER_SECRET, "");
    let daemon = Daemon::start(&ns, &["-c", &conf]);
    wait_for("the refresh to fail", Duration::from_secs(10), || daemon.log_count("refresh failed") > 0);
    let reply = www(&ns);
    assert_eq!(reply.metadata.response_code, ResponseCode::ServFail, "{reply:?}");
    assert!(!dir.path().join("state/sec.test.zone").exists(), "a refused transfer left a copy");
}

#[test]
fn a_zone_past_expire_without_refresh_answers_servfail_until_it_refreshes() {
    require_root();
    let ns = NetNs::new();
    let dir = dns_xdp_tests::temp_dir("secondary-expire");
    let mut knot = Knot::start(&ns, dir.path());
    let conf = config(dir.path(), SECRET, "refresh = 1\nretry = 1\nexpire = 3");
    let daemon = Daemon::start(&ns, &["-c", &conf, "--metrics", METRICS]);
    wait_for("the first transfer", Duration::from_secs(10), || last_octet(&www(&ns)) == Some(1));
    let left = expiry_seconds(&ns).expect("dnsxdp_zone_expiry_seconds for sec.test. once transferred");
    assert!((0..=3).contains(&left), "seconds to expiry {left}, EXPIRE is 3");
    knot.stop();
    let stopped = Instant::now();
    wait_for("expiry", Duration::from_secs(8), || www(&ns).metadata.response_code == ResponseCode::ServFail);
    let left = expiry_seconds(&ns).expect("the expiry series stays once expired");
    assert!(left <= 0, "an expired zone shows no time left, not {left}");
    let health = http_get(&ns, "/health");
    assert!(health.starts_with("HTTP/1.1 503") && health.contains("expired"), "/health of an expired zone:\n{health}");
    assert!(stopped.elapsed() >= Duration::from_secs(1), "served SERVFAIL before EXPIRE");
    assert!(daemon.log_count("secondary zone expired") > 0, "{}", daemon.child.stderr());
    let _knot = Knot::start(&ns, dir.path());
    wait_for("the zone to be served again", Duration::from_secs(8), || last_octet(&www(&ns)) == Some(1));
}

#[test]
fn notify_from_the_primary_refreshes_at_once_and_from_anyone_else_is_refused() {
    require_root();
    let ns = NetNs::new();
    let dir = dns_xdp_tests::temp_dir("secondary-notify");
    let knot = Knot::start(&ns, dir.path());
    // The SOA's REFRESH (3600 s) is the only timer: only a NOTIFY can bring
    // serial 2 within the test.
    let conf = config(dir.path(), SECRET, "");
    let daemon = Daemon::start(&ns, &["-c", &conf]);
    wait_for("the first transfer", Duration::from_secs(10), || last_octet(&www(&ns)) == Some(1));
    knot.publish(&ns, 2, 2);
    let published = Instant::now();
    wait_for("serial 2 after the NOTIFY", Duration::from_secs(3), || last_octet(&www(&ns)) == Some(2));
    assert!(published.elapsed() < Duration::from_secs(3));
    assert!(daemon.log_count("NOTIFY from the primary") > 0, "{}", daemon.child.stderr());

    // The same NOTIFY from an address that is not the primary's.
    let mut notify = Message::new(0x4242, MessageType::Query, OpCode::Notify);
    notify.add_query(Query::query(Name::from_ascii("sec.test.").expect("name"), RecordType::SOA));
    let socket = udp_socket(&ns, "127.0.0.2:0".parse().expect("addr"));
    let reply =
        udp_exchange(&socket, SERVER.parse().expect("addr"), &notify.to_vec().expect("wire"), Duration::from_secs(2))
            .expect("a reply to the NOTIFY");
    let reply = Message::from_vec(&reply).expect("reply parses");
    assert_eq!(reply.metadata.response_code, ResponseCode::Refused, "{reply:?}");
    assert_eq!(reply.metadata.op_code, OpCode::Notify);
    assert!(daemon.log_count("NOTIFY refused: not from a primary") > 0, "{}", daemon.child.stderr());
}
