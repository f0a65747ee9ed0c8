//! Self-test of the privileged test harness: namespaces, veths, addresses,
//! query helpers and cleanup (also on panic). Needs root.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::thread;
use std::time::Duration;

use dns_xdp_tests::{
    CLI_MAC, CLI_V4, CLI_V6, NetNs, NetNsExt as _, PacketSocket, SRV_MAC, SRV_V4, SRV_V6, Topology, TopologyExt as _,
    VLAN_SRV_V4, VLAN_SRV_V6, harness_namespaces, in_netns, ping, raw_query, raw_query_tcp, udp_socket, vlan_supported,
};

const TIMEOUT: Duration = Duration::from_secs(2);

fn assert_gone(names: &[String]) {
    let left = harness_namespaces();
    for name in names {
        assert!(!left.contains(name), "namespace {name} still exists after drop: {left:?}");
    }
}

#[test]
fn topology_pings_and_cleans_up() {
    let names;
    {
        let topo = Topology::new();
        names = vec![topo.srv().name().to_string(), topo.cli().name().to_string()];
        let existing = harness_namespaces();
        for name in &names {
            assert!(existing.contains(name), "namespace {name} missing: {existing:?}");
        }
        assert!(ping(topo.cli(), SRV_V4.into()), "cli cannot ping {SRV_V4}");
        assert!(ping(topo.cli(), SRV_V6.into()), "cli cannot ping {SRV_V6}");
        assert!(ping(topo.srv(), CLI_V4.into()), "srv cannot ping {CLI_V4}");

        // Static neighbours: the entries are PERMANENT, so no ARP was needed.
        let neigh = topo.cli().exec_ok("ip", &["neigh", "show", "dev", topo.cli_if()]);
        assert!(neigh.contains("198.18.0.1 lladdr 02:00:00:00:00:01 PERMANENT"), "{neigh}");
        assert!(neigh.contains("2001:db8::1 lladdr 02:00:00:00:00:01 PERMANENT"), "{neigh}");

        let features = topo.srv().exec_ok("ethtool", &["-k", topo.srv_if()]);
        assert!(features.contains("tx-checksumming: off"), "{features}");
    }
    assert_gone(&names);
}

#[test]
fn vlan_topology_pings_over_the_tagged_link() {
    if !vlan_supported() {
        // Kernels without CONFIG_VLAN_8021Q: with_vlan must say so and leak
        // nothing; tagged frames are covered by packet_socket_* below.
        let err = std::panic::catch_unwind(|| Topology::with_vlan(100))
            .expect_err("with_vlan panics without kernel VLAN support");
        let message = err
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| err.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        assert!(message.contains("CONFIG_VLAN_8021Q"), "unclear message: {message}");
        eprintln!("kernel has no 802.1Q support: VLAN sub-interfaces not tested");
        return;
    }
    let topo = Topology::with_vlan(100);
    let vlan = topo.vlan().expect("with_vlan has a VLAN");
    assert_eq!(vlan.srv_if, format!("{}.100", topo.srv_if()));
    assert!(ping(topo.cli(), VLAN_SRV_V4.into()), "cli cannot ping {VLAN_SRV_V4}");
    assert!(ping(topo.cli(), VLAN_SRV_V6.into()), "cli cannot ping {VLAN_SRV_V6}");
    let details = topo.srv().exec_ok("ip", &["-d", "link", "show", &vlan.srv_if]);
    assert!(details.contains("vlan protocol 802.1Q id 100"), "{details}");
}

/// An Ethernet frame from cli to srv with `ethertype_and_payload` after the
/// MAC addresses.
fn frame(ethertype_and_payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::new();
    frame.extend_from_slice(&SRV_MAC);
    frame.extend_from_slice(&CLI_MAC);
    frame.extend_from_slice(ethertype_and_payload);
    frame
}

#[test]
fn packet_socket_carries_crafted_frames_byte_for_byte() {
    let topo = Topology::new();
    let srv = PacketSocket::open(topo.srv(), topo.srv_if());
    let cli = PacketSocket::open(topo.cli(), topo.cli_if());

    // Local experimental ethertype (IEEE 802 0x88b5): nothing else sends it.
    let mut plain = frame(&[0x88, 0xb5]);
    plain.extend_from_slice(b"dns-xdp harness frame, padded past the 60-byte minimum.......");
    cli.send(&plain);
    let got = srv.recv_matching(TIMEOUT, |f| f.get(12..14) == Some(&[0x88, 0xb5]));
    assert_eq!(got.as_deref(), Some(&plain[..]), "untagged frame arrives unchanged");

    // 802.1Q, VLAN 100, priority 5: the kernel moves the tag into metadata
    // before packet sockets see it; recv must put it back.
    let mut tagged = frame(&[0x81, 0x00, 0xa0, 0x64, 0x88, 0xb5]);
    tagged.extend_from_slice(b"tagged dns-xdp harness frame, padded past the minimum........");
    cli.send(&tagged);
    let got = srv.recv_matching(TIMEOUT, |f| f.get(12..14) == Some(&[0x81, 0x00]));
    assert_eq!(got.as_deref(), Some(&tagged[..]), "tagged frame arrives with its tag");

    // Our own transmissions are not reported back to us.
    assert_eq!(cli.recv_matching(Duration::from_millis(200), |f| f.get(12..14) == Some(&[0x88, 0xb5])), None);
}

#[test]
fn namespaces_are_removed_when_a_test_panics() {
    let mut names = Vec::new();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let topo = Topology::new();
        names.push(topo.srv().name().to_string());
        names.push(topo.cli().name().to_string());
        panic!("deliberate panic inside a test body");
    }));
    assert!(result.is_err(), "the closure panics");
    assert_eq!(names.len(), 2);
    assert_gone(&names);
}

#[test]
fn raw_udp_and_tcp_queries_cross_the_veth() {
    let topo = Topology::new();

    // A UDP echo server in srv, run by a thread of this process.
    let server = udp_socket(topo.srv(), SocketAddr::from((SRV_V4, 5353)));
    server.set_read_timeout(Some(TIMEOUT)).expect("setting echo read timeout");
    let echo = thread::spawn(move || {
        let mut buf = [0u8; 512];
        let (len, from) = server.recv_from(&mut buf).expect("echo server receives the query");
        server.send_to(&buf[..len], from).expect("echo server replies");
    });
    let query = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00";
    let reply = raw_query(topo.cli(), SocketAddr::from((SRV_V4, 5353)), query, TIMEOUT);
    assert_eq!(reply.as_deref(), Some(&query[..]), "UDP echo over the veth");
    echo.join().expect("echo thread");

    // Nothing listens on 5354: no answer, no hang.
    assert_eq!(raw_query(topo.cli(), SocketAddr::from((SRV_V4, 5354)), query, Duration::from_millis(300)), None);

    // A TCP echo server over IPv6, echoing one length-prefixed message.
    let listener = in_netns(topo.srv(), || TcpListener::bind((SRV_V6, 5353))).expect("binding TCP in srv");
    let tcp_echo = thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accepting");
        let mut len = [0u8; 2];
        conn.read_exact(&mut len).expect("reading length");
        let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
        conn.read_exact(&mut msg).expect("reading message");
        conn.write_all(&len).expect("writing length");
        conn.write_all(&msg).expect("writing message");
    });
    let reply = raw_query_tcp(topo.cli(), SocketAddr::from((SRV_V6, 5353)), query, TIMEOUT);
    assert_eq!(reply.as_deref(), Some(&query[..]), "TCP echo over the veth");
    tcp_echo.join().expect("TCP echo thread");
    assert_eq!(raw_query_tcp(topo.cli(), SocketAddr::from((CLI_V6, 1)), query, TIMEOUT), None);

    // Sockets made by in_netns live in the namespace, not on the host.
    let inside = in_netns(topo.cli(), || UdpSocket::bind((CLI_V4, 0)));
    assert!(inside.is_ok(), "CLI_V4 is bindable inside cli");
    assert!(UdpSocket::bind((CLI_V4, 0)).is_err(), "CLI_V4 is not a host address");
}

#[test]
fn child_guard_stops_its_process_and_captures_output() {
    let ns = NetNs::new();
    let pid;
    {
        let mut child = ns.spawn("sh", &["-c", "echo ready; echo oops >&2; exec sleep 30"]);
        pid = child.pid();
        assert!(child.wait_for_output("ready", TIMEOUT).is_ok(), "child printed ready");
        assert!(child.wait_for_output("oops", TIMEOUT).is_ok(), "stderr is captured too");
        assert!(child.try_wait().expect("checking on the process").is_none(), "sleep is still running");
    }
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "pid {pid} survived the guard");

    // A process that ignores SIGTERM is killed after the grace period.
    let mut child = ns.spawn("sh", &["-c", "trap '' TERM; echo ready; while :; do sleep 0.1; done"]);
    let status = child.stop().expect("stopping the process");
    assert!(!status.success(), "killed, not exited: {status}");
}

#[test]
fn keep_mounts_command_enters_only_the_network_namespace() {
    let ns = NetNs::new();
    let inside = ns
        .command_keep_mounts("sh")
        .expect("opening the namespace")
        .args(["-c", "ip -o link show; echo ---; cat /proc/self/mounts"])
        .output()
        .expect("running sh in the namespace");
    assert!(inside.status.success(), "sh failed: {inside:?}");
    let inside = String::from_utf8_lossy(&inside.stdout).into_owned();
    let (links, mounts) = inside.split_once("---").expect("marker in output");
    assert_eq!(links.lines().count(), 1, "a fresh namespace has only lo: {links}");
    let bpffs = |mounts: &str| mounts.lines().any(|l| l.contains(" /sys/fs/bpf bpf "));
    let host_mounts = std::fs::read_to_string("/proc/self/mounts").expect("reading host mounts");
    assert_eq!(bpffs(mounts), bpffs(&host_mounts), "bpffs visibility differs from the host");
}
