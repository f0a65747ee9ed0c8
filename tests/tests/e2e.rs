//! End to end, as a user runs it: the daemon under `ip netns exec` in a
//! server namespace, real clients (kdig, sockets) in a client namespace,
//! joined by a veth pair with the XDP program in native mode.

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use dns_xdp_tests::{
    NetNs, NetNsExt as _, SRV_V4, SRV_V6, Topology, TopologyExt as _,
    daemon::{Daemon, EXAMPLE_ZONE, PUBLISH_WAIT, ask, client_pass, counter, query},
    daemon_bin, kdig, raw_query, raw_query_tcp, require_root,
};
use hickory_proto::{
    op::{Message, ResponseCode},
    rr::{
        DNSClass, Name, RData, RecordType,
        rdata::opt::{EdnsOption, NSIDPayload},
    },
};
use serde_json::Value;

const ZONE: &str = EXAMPLE_ZONE;

fn start_daemon(ns: &NetNs, args: &[&str]) -> Daemon {
    Daemon::start(ns, args)
}

/// Answers the program sent: dig sends a client cookie by default, and
/// those answers are counted by their cookie.
fn xdp_answers(xdp: &Value) -> u64 {
    counter(xdp, "tx_answer") + counter(xdp, "tx_cookie") + counter(xdp, "tx_cookie_client_only")
}

fn serve_on_veth(topo: &Topology, extra: &[&str]) -> Daemon {
    Daemon::on_veth(topo, ZONE, extra)
}

fn stats(daemon: &Daemon) -> (Value, Value) {
    daemon.stats()
}

fn addresses(msg: &Message) -> Vec<IpAddr> {
    msg.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect()
}

#[test]
fn answers_come_from_xdp_over_ipv4_and_ipv6() {
    require_root();
    let topo = Topology::new();
    let _pass = client_pass(&topo);
    let daemon = serve_on_veth(&topo, &[]);

    for (server, qtype, expected) in [
        (SocketAddr::from((SRV_V4, 53)), RecordType::A, vec!["198.18.10.80", "198.18.10.81"]),
        (SocketAddr::from((SRV_V6, 53)), RecordType::AAAA, vec!["2001:db8:10::80"]),
    ] {
        std::thread::sleep(PUBLISH_WAIT);
        let (xdp_before, daemon_before) = stats(&daemon);
        let reply = ask(topo.cli(), server, "WwW.Example.TEST.", qtype, 0x4242);
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        assert!(reply.metadata.authoritative, "AA set");
        assert_eq!(reply.queries[0].name().to_ascii(), "WwW.Example.TEST.", "question echoed as asked");
        let got: Vec<String> = addresses(&reply).iter().map(ToString::to_string).collect();
        assert_eq!(got, expected);
        std::thread::sleep(PUBLISH_WAIT);
        let (xdp_after, daemon_after) = stats(&daemon);
        assert_eq!(
            counter(&xdp_after, "tx_answer"),
            counter(&xdp_before, "tx_answer") + 1,
            "answered by XDP over {server}"
        );
        assert_eq!(
            counter(&daemon_after, "udp_queries"),
            counter(&daemon_before, "udp_queries"),
            "the daemon's socket saw the query over {server}"
        );
    }
}

#[test]
fn misses_go_to_the_daemon_and_are_cached_for_next_time() {
    require_root();
    let topo = Topology::new();
    let _pass = client_pass(&topo);
    let daemon = serve_on_veth(&topo, &[]);
    let server = SocketAddr::from((SRV_V4, 53));

    std::thread::sleep(PUBLISH_WAIT);
    let (xdp0, daemon0) = stats(&daemon);
    let reply = ask(topo.cli(), server, "nosuch.example.test.", RecordType::A, 1);
    assert_eq!(reply.metadata.response_code, ResponseCode::NXDomain);
    assert!(reply.metadata.authoritative);
    assert!(reply.answers.is_empty());
    assert_eq!(reply.authorities.len(), 1, "SOA in authority");
    assert_eq!(reply.authorities[0].record_type(), RecordType::SOA);
    assert_eq!(reply.authorities[0].ttl, 300, "negative TTL = min(SOA TTL, MINIMUM)");
    std::thread::sleep(PUBLISH_WAIT);
    let (xdp1, daemon1) = stats(&daemon);
    assert_eq!(counter(&daemon1, "udp_queries"), counter(&daemon0, "udp_queries") + 1, "the daemon answered the miss");
    assert_eq!(counter(&xdp1, "pass_miss"), counter(&xdp0, "pass_miss") + 1);

    // The daemon put its answer in the map: the same question again is
    // answered by XDP, identically (apart from the ID).
    let again = ask(topo.cli(), server, "nosuch.example.test.", RecordType::A, 2);
    std::thread::sleep(PUBLISH_WAIT);
    let (xdp2, daemon2) = stats(&daemon);
    assert_eq!(counter(&xdp2, "tx_answer"), counter(&xdp1, "tx_answer") + 1, "second query answered by XDP");
    assert_eq!(counter(&daemon2, "udp_queries"), counter(&daemon1, "udp_queries"));
    let mut first = reply.to_vec().expect("encode");
    let second = again.to_vec().expect("encode");
    first[..2].copy_from_slice(&second[..2]);
    assert_eq!(first, second, "XDP and daemon answers differ");

    // kdig, as an operator would ask, with its defaults (EDNS).
    let out = kdig(topo.cli(), &["@198.18.0.1", "example.test", "MX", "+norec"]);
    assert!(out.contains("status: NOERROR") && out.contains("Flags: qr aa"), "kdig output:\n{out}");
    assert!(out.contains("10 mail.example.test.") && out.contains("20 mail2.example.test."), "kdig output:\n{out}");
}

#[test]
fn tcp_is_answered_by_the_daemon() {
    require_root();
    let topo = Topology::new();
    let _pass = client_pass(&topo);
    let _daemon = serve_on_veth(&topo, &[]);
    let out = kdig(topo.cli(), &["@198.18.0.1", "+tcp", "www.example.test", "A"]);
    assert!(out.contains("status: NOERROR") && out.contains("198.18.10.80"), "kdig +tcp:\n{out}");
}

#[test]
fn stale_heartbeat_stops_the_fast_path() {
    require_root();
    let topo = Topology::new();
    let _pass = client_pass(&topo);
    let mut daemon = serve_on_veth(&topo, &["--heartbeat-timeout", "1"]);
    let server = SocketAddr::from((SRV_V4, 53));
    ask(topo.cli(), server, "www.example.test.", RecordType::A, 1);

    // A stopped daemon stops refreshing its heartbeat: after the timeout
    // the program must pass queries up instead of answering from a map
    // nobody keeps current (here the stopped daemon cannot answer at all).
    daemon.child.signal(libc::SIGSTOP).expect("signalling the process");
    std::thread::sleep(Duration::from_millis(1500));
    let (before, _) = stats(&daemon);
    let reply =
        raw_query(topo.cli(), server, &query("www.example.test.", RecordType::A, 2), Duration::from_millis(500));
    let (after, _) = stats(&daemon);
    daemon.child.signal(libc::SIGCONT).expect("signalling the process");
    assert!(reply.is_none(), "answered while the daemon was stopped");
    assert_eq!(counter(&after, "pass_stale"), counter(&before, "pass_stale") + 1);
    assert_eq!(counter(&after, "tx_answer"), counter(&before, "tx_answer"));

    // Alive again: the queued query is answered by the daemon, and within
    // a heartbeat XDP answers again.
    std::thread::sleep(PUBLISH_WAIT);
    let (before, _) = stats(&daemon);
    ask(topo.cli(), server, "www.example.test.", RecordType::A, 3);
    let (after, _) = stats(&daemon);
    assert_eq!(counter(&after, "tx_answer"), counter(&before, "tx_answer") + 1);
}

#[test]
fn loopback_demo_answers_from_xdp_and_leaves_nothing_behind() {
    require_root();
    // What `cargo xtask run` does, inside a namespace of its own so the
    // host's loopback is untouched.
    let ns = NetNs::new();
    ns.exec_ok("ip", &["link", "set", "lo", "up"]);
    let pin_dir = format!("/sys/fs/bpf/dns-xdp-test-{}", std::process::id());
    let daemon = start_daemon(
        &ns,
        &[
            "--zone",
            ZONE,
            "--listen",
            "127.0.0.1:5300",
            "--iface",
            "lo",
            "--xdp-mode",
            "generic",
            "--pin-dir",
            &pin_dir,
        ],
    );
    let out = dns_xdp_tests::dig(&ns, &["@127.0.0.1", "-p", "5300", "www.example.test", "A"]);
    assert!(out.contains("status: NOERROR") && out.contains("flags: qr aa"), "dig:\n{out}");
    assert!(out.contains("198.18.10.80"), "dig:\n{out}");
    std::thread::sleep(PUBLISH_WAIT);
    let (xdp, _) = stats(&daemon);
    assert!(xdp_answers(&xdp) >= 1, "dig's query was not answered by XDP: {xdp}");
    let out = dns_xdp_tests::dig(&ns, &["@127.0.0.1", "-p", "5300", "nosuch.example.test"]);
    assert!(out.contains("status: NXDOMAIN") && out.contains("SOA"), "dig:\n{out}");

    let program_id = daemon.program_id;
    let mut child = daemon.child;
    child.signal(libc::SIGINT).expect("signalling the process");
    let status =
        child.wait_timeout(Duration::from_secs(5)).expect("waiting for the process").expect("daemon exits on SIGINT");
    assert!(status.success(), "exit status {status:?}");
    // The daemon leaves its program, link and maps pinned for the next
    // start, but here they were pinned in the bpffs of its own mount
    // namespace (ip netns exec), which goes with it; the kernel then frees
    // links and programs from a work queue, so allow it a moment.
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    let (link, all) = loop {
        let link = ns.exec_ok("ip", &["link", "show", "lo"]);
        let out = std::process::Command::new(daemon_bin()).args(["stats", "--json"]).output().expect("stats");
        let all: Value = serde_json::from_slice(&out.stdout).expect("json");
        let loaded = all.as_array().is_some_and(|a| a.iter().any(|i| i["program_id"].as_u64() == program_id));
        if (!link.contains("prog/xdp") && !loaded) || std::time::Instant::now() > deadline {
            break (link, all);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!link.contains("prog/xdp"), "XDP still attached after exit:\n{link}");
    assert!(
        !all.as_array().is_some_and(|a| a.iter().any(|i| i["program_id"].as_u64() == program_id)),
        "program still loaded: {all}"
    );
    // The daemon pinned inside its own mount namespace (ip netns exec); in
    // ours the directory never existed, and after exit it must not either.
    assert!(!std::path::Path::new(&pin_dir).exists(), "pins left in {pin_dir}");
}

#[test]
fn malformed_zone_fails_with_file_and_line_and_attaches_nothing() {
    require_root();
    let ns = NetNs::new();
    ns.exec_ok("ip", &["link", "set", "lo", "up"]);
    let dir = dns_xdp_tests::temp_dir("badzone");
    let zone = dir.path().join("bad.test.zone");
    std::fs::write(
        &zone,
        "$ORIGIN bad.test.\n$TTL 300\n@ IN SOA ns hostmaster 1 2 3 4 5\n  IN NS ns\nns IN A 198.18.0.1\nwww IN A 198.18.0.300\n",
    )
    .expect("write zone");
    let mut cmd = ns.command(daemon_bin().to_str().expect("utf-8"));
    cmd.args([
        "run",
        "--zone",
        zone.to_str().expect("utf-8"),
        "--listen",
        "127.0.0.1:5300",
        "--iface",
        "lo",
        "--xdp-mode",
        "generic",
    ]);
    let out = cmd.output().expect("run daemon");
    assert!(!out.status.success(), "daemon accepted a broken zone");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("{}:6:", zone.display())), "error names file and line:\n{stderr}");
    let link = ns.exec_ok("ip", &["link", "show", "lo"]);
    assert!(!link.contains("xdp"), "XDP attached despite the error:\n{link}");
}

/// An 802.1Q-tagged query over the veth (sent as a raw frame: this kernel
/// has no VLAN devices) is answered by XDP with the tag kept, over IPv4 and
/// IPv6, and the answer equals the daemon's.
#[test]
fn vlan_tagged_queries_are_answered_with_the_tag() {
    use dns_xdp::lab::frame::{Endpoints, parse_udp_frame, udp_frame};
    use dns_xdp_tests::{CLI_MAC, CLI_V4, CLI_V6, PacketSocket, SRV_MAC};
    require_root();
    let topo = Topology::new();
    let _pass = client_pass(&topo);
    let daemon = serve_on_veth(&topo, &[]);
    let socket = PacketSocket::open(topo.cli(), topo.cli_if());
    for (src, dst, qtype) in [
        (IpAddr::V4(CLI_V4), IpAddr::V4(SRV_V4), RecordType::A),
        (IpAddr::V6(CLI_V6), IpAddr::V6(SRV_V6), RecordType::AAAA),
    ] {
        let ep = Endpoints { src_mac: CLI_MAC, dst_mac: SRV_MAC, src, dst, sport: 40_053, dport: 53 };
        let q = query("www.EXAMPLE.test.", qtype, 0x7777);
        std::thread::sleep(PUBLISH_WAIT);
        let (before, _) = stats(&daemon);
        socket.send(&udp_frame(&ep, &q, Some(42), 0));
        let reply = socket
            .recv_matching(Duration::from_secs(2), |f| {
                parse_udp_frame(f).is_some_and(|p| p.dport == 40_053 && p.src == dst)
            })
            .unwrap_or_else(|| panic!("no tagged reply over {dst}"));
        let reply = parse_udp_frame(&reply).expect("parses");
        assert_eq!(reply.vlan, Some(42), "VLAN tag kept");
        assert!(reply.udp_checksum_ok && reply.ip_checksum_ok, "checksums");
        let msg = Message::from_vec(&reply.payload).expect("DNS reply");
        assert_eq!(msg.metadata.id, 0x7777);
        assert!(!addresses(&msg).is_empty(), "addresses in the answer");
        std::thread::sleep(PUBLISH_WAIT);
        let (after, _) = stats(&daemon);
        assert_eq!(counter(&after, "tx_answer"), counter(&before, "tx_answer") + 1, "answered by XDP over {dst}");
        // The same question untagged, answered by the daemon over its socket.
        let plain =
            raw_query(topo.cli(), SocketAddr::new(dst, 53), &q, Duration::from_secs(2)).expect("untagged reply");
        assert_eq!(reply.payload, plain, "tagged XDP answer differs from the untagged one");
    }
}

/// Which anycast instance answered: `dig +nsid` and `dig CH TXT id.server`
/// name it, answered by XDP (the hit counter moves, the daemon's socket sees
/// nothing), with the bytes the daemon sends over TCP for the same query.
#[test]
fn nsid_names_the_instance() {
    require_root();
    let topo = Topology::new();
    let _pass = client_pass(&topo);
    let daemon = serve_on_veth(&topo, &["--nsid", "pop-test-1"]);
    let server = SocketAddr::from((SRV_V4, 53));

    let out = kdig(topo.cli(), &["@198.18.0.1", "+nsid", "www.example.test", "A"]);
    assert!(out.contains("pop-test-1") && out.contains("198.18.10.80"), "kdig +nsid:\n{out}");
    for (args, expected) in [
        (&["@198.18.0.1", "+nsid", "+norec", "www.example.test", "A"][..], "NSID: 70 6f 70 2d 74 65 73 74 2d 31"),
        (&["@198.18.0.1", "+norec", "id.server", "CH", "TXT"][..], "\"pop-test-1\""),
        (&["@198.18.0.1", "+norec", "hostname.bind", "CH", "TXT"][..], "\"pop-test-1\""),
    ] {
        std::thread::sleep(PUBLISH_WAIT);
        let (xdp0, daemon0) = stats(&daemon);
        let out = dns_xdp_tests::dig(topo.cli(), args);
        std::thread::sleep(PUBLISH_WAIT);
        let (xdp1, daemon1) = stats(&daemon);
        assert!(out.contains("status: NOERROR") && out.contains(expected), "dig {args:?}:\n{out}");
        assert_eq!(xdp_answers(&xdp1), xdp_answers(&xdp0) + 1, "dig {args:?} answered by XDP");
        assert_eq!(
            counter(&daemon1, "udp_queries"),
            counter(&daemon0, "udp_queries"),
            "dig {args:?} reached the daemon"
        );
    }

    // The same queries as bytes: XDP's UDP answer equals the daemon's TCP one.
    let nsid_query = {
        let mut msg = Message::from_vec(&query("www.example.test.", RecordType::A, 0x3131)).expect("parse");
        let mut edns = hickory_proto::op::Edns::new();
        edns.set_max_payload(1232);
        edns.options_mut().insert(EdnsOption::NSID(NSIDPayload::new(Vec::new()).expect("empty")));
        msg.set_edns(edns);
        msg.to_vec().expect("encode")
    };
    let chaos_query = {
        let mut msg = Message::query();
        msg.metadata.id = 0x3232;
        let mut q = hickory_proto::op::Query::query(Name::from_ascii("id.server.").expect("name"), RecordType::TXT);
        q.set_query_class(DNSClass::CH);
        msg.add_query(q);
        msg.to_vec().expect("encode")
    };
    for q in [nsid_query, chaos_query] {
        std::thread::sleep(PUBLISH_WAIT);
        let (xdp0, _) = stats(&daemon);
        let udp = raw_query(topo.cli(), server, &q, Duration::from_secs(2)).expect("UDP reply");
        std::thread::sleep(PUBLISH_WAIT);
        let (xdp1, _) = stats(&daemon);
        assert_eq!(counter(&xdp1, "tx_answer"), counter(&xdp0, "tx_answer") + 1, "answered by XDP");
        let tcp = raw_query_tcp(topo.cli(), server, &q, Duration::from_secs(2)).expect("TCP reply");
        assert_eq!(udp, tcp, "XDP and daemon answers differ");
    }
}
