//! Restarts and upgrades: the program, its links and maps stay pinned across
//! a daemon restart and the next daemon adopts them (or replaces the
//! program on the same links); `dns-xdp detach` removes everything.
//!
//! Each test pins into a bpffs of its own, mounted on a temporary directory
//! of the host (visible in the server namespace's `ip netns exec` mount
//! namespace, so one daemon's pins are there for the next) and unmounted
//! when the test ends, which frees whatever is still pinned.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use dns_xdp_tests::{
    NetNsExt as _, SRV_V4, Topology, TopologyExt as _,
    daemon::{Daemon, EXAMPLE_ZONE, PUBLISH_WAIT, ask, client_pass, counter},
    daemon_bin, dnsperf_count, host_exec_ok, require_root,
};
use hickory_proto::{
    op::ResponseCode,
    rr::{RData, RecordType},
};
use serde_json::Value;

/// A bpffs mounted on a temporary directory; unmounted on drop.
struct BpfFs {
    dir: tempfile::TempDir,
}

impl BpfFs {
    fn mount() -> Self {
        let dir = dns_xdp_tests::temp_dir("bpffs");
        host_exec_ok("mount", &["-t", "bpf", "bpf", dir.path().to_str().expect("utf-8")]);
        Self { dir }
    }

    fn pin_dir(&self) -> PathBuf {
        self.dir.path().join("dns-xdp")
    }
}

impl Drop for BpfFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

fn stop(daemon: Daemon, signal: libc::c_int) -> String {
    let mut child = daemon.child;
    child.signal(signal).expect("signalling the daemon");
    let status = child.wait_timeout(Duration::from_secs(10)).expect("waiting").expect("daemon exits");
    if signal == libc::SIGTERM {
        assert!(status.success(), "exit status {status:?}:\n{}", child.stderr());
    }
    child.stderr()
}

fn program_ids() -> Vec<u64> {
    let out = std::process::Command::new(daemon_bin()).args(["stats", "--json"]).output().expect("stats");
    let all: Value = serde_json::from_slice(&out.stdout).expect("stats JSON");
    all.as_array().map(|a| a.iter().filter_map(|i| i["program_id"].as_u64()).collect()).unwrap_or_default()
}

fn a_records(topo: &Topology, name: &str, id: u16) -> (ResponseCode, Vec<String>) {
    let reply = ask(topo.cli(), SocketAddr::from((SRV_V4, 53)), name, RecordType::A, id);
    let addrs = reply
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0.to_string()),
            _ => None,
        })
        .collect();
    (reply.metadata.response_code, addrs)
}

/// Asks `name` A and checks XDP answered it (its hit counter moved, the
/// daemon's socket saw nothing).
fn a_from_xdp(topo: &Topology, daemon: &Daemon, name: &str, id: u16) -> Vec<String> {
    std::thread::sleep(PUBLISH_WAIT);
    let (xdp0, daemon0) = daemon.stats();
    let (rcode, addrs) = a_records(topo, name, id);
    std::thread::sleep(PUBLISH_WAIT);
    let (xdp1, daemon1) = daemon.stats();
    assert_eq!(rcode, ResponseCode::NoError, "{name}");
    assert_eq!(counter(&xdp1, "tx_answer"), counter(&xdp0, "tx_answer") + 1, "{name} answered by XDP");
    assert_eq!(counter(&daemon1, "udp_queries"), counter(&daemon0, "udp_queries"), "{name} reached the daemon");
    addrs
}

/// Must-show: a restart, and an upgrade to another binary that replaces the
/// program on the pinned link, in the middle of a dnsperf run of queries
/// that hit: nothing lost, every answer NOERROR, the content right after.
#[test]
fn restart_and_upgrade_during_dnsperf_lose_nothing() {
    require_root();
    let topo = Topology::new();
    let _pass = client_pass(&topo);
    let bpffs = BpfFs::mount();
    let pin_dir = bpffs.pin_dir();
    let pin = pin_dir.to_str().expect("utf-8");
    let dir = dns_xdp_tests::temp_dir("restart-dnsperf");
    // "A rebuilt binary": another file, which this test makes replace the
    // program on the links as a binary with a changed program would.
    let upgraded = dir.path().join("dns-xdp-upgraded");
    std::fs::copy(daemon_bin(), &upgraded).expect("copying the binary");

    let first = Daemon::on_veth(&topo, EXAMPLE_ZONE, &["--pin-dir", pin]);
    let queries = dir.path().join("queries");
    // Answers small enough for the room a veth gives to grow a frame:
    // larger ones are passed to the daemon (pass_no_room), which is not
    // there during a restart.
    std::fs::write(&queries, "www.example.test A\nwww.example.test AAAA\n").expect("query file");
    let rate = 1000;
    let mut dnsperf = topo.cli().spawn(
        "dnsperf",
        &["-s", "198.18.0.1", "-d", queries.to_str().expect("utf-8"), "-l", "8", "-Q", &rate.to_string(), "-c", "1"],
    );
    let started = Instant::now();
    std::thread::sleep(Duration::from_millis(1500));

    // Restart: the same binary adopts program, links and maps as they are.
    let log = stop(first, libc::SIGTERM);
    assert!(log.contains("stopped"), "{log}");
    let second = Daemon::on_veth(&topo, EXAMPLE_ZONE, &["--pin-dir", pin]);
    let log = second.child.stderr();
    assert!(log.contains("adopted the pinned program, links and maps"), "restart did not adopt:\n{log}");
    assert!(log.contains("kept the pinned XDP link and program"), "{log}");
    std::thread::sleep(Duration::from_millis(1500));

    // Upgrade: the other binary replaces the program on the same link.
    let before = second.program_id;
    stop(second, libc::SIGTERM);
    let third = Daemon::on_veth_with(
        &topo,
        &upgraded,
        &[("DNS_XDP_LAB_REPLACE_PROGRAM", "1")],
        EXAMPLE_ZONE,
        &["--pin-dir", pin],
    );
    let log = third.child.stderr();
    assert!(log.contains("adopted the pinned maps, the program will be replaced"), "{log}");
    assert!(log.contains("replaced the program on the pinned XDP link"), "upgrade did not replace:\n{log}");
    assert_ne!(third.program_id, before, "a new program runs after the upgrade");

    let status = dnsperf.wait_timeout(Duration::from_secs(20)).expect("dnsperf").expect("dnsperf ends");
    let out = dnsperf.stdout();
    assert!(status.success(), "dnsperf failed:\n{out}");
    assert!(started.elapsed() >= Duration::from_secs(8), "the restarts happened during the run");
    let sent = dnsperf_count(&out, "Queries sent:");
    let completed = dnsperf_count(&out, "Queries completed:");
    let lost = dnsperf_count(&out, "Queries lost:");
    let noerror = dnsperf_count(&out, "Response codes:       NOERROR");
    let (xdp, _) = third.stats();
    assert!(sent >= 4 * rate, "dnsperf sent only {sent}:\n{out}");
    assert_eq!(lost, 0, "queries lost across the restart and the upgrade:\n{out}\n{xdp}\n{}", third.child.stderr());
    assert_eq!((completed, noerror), (sent, sent), "every answer NOERROR:\n{out}");

    // The content, from the upgraded program, after the run.
    assert_eq!(a_from_xdp(&topo, &third, "www.example.test.", 1), ["198.18.10.80", "198.18.10.81"]);
    // The replaced program is gone: no link or pin holds it any more.
    assert!(!program_ids().contains(&before.expect("id")), "the old program is still loaded");
    drop(third);
}

fn write_zone(path: &Path, www: &str, with_old: bool) {
    let old = if with_old { "old IN A 198.18.20.2\n" } else { "" };
    std::fs::write(
        path,
        format!(
            "$ORIGIN restart.test.\n$TTL 300\n@ IN SOA ns hostmaster 1 3600 900 604800 300\n  IN NS ns\n\
             ns IN A 198.18.0.1\nwww IN A {www}\n{old}"
        ),
    )
    .expect("writing the zone");
}

/// The zone changed while the daemon was down (here: it crashed): the next
/// daemon adopts the table, rewrites what changed and removes what is gone
/// before it serves, so the first answers are the new zone's, from XDP.
#[test]
fn after_a_crash_the_next_daemon_adopts_and_serves_the_changed_zone() {
    require_root();
    let topo = Topology::new();
    let _pass = client_pass(&topo);
    let bpffs = BpfFs::mount();
    let pin = bpffs.pin_dir();
    let pin = pin.to_str().expect("utf-8");
    let dir = dns_xdp_tests::temp_dir("restart-zone");
    let zone = dir.path().join("restart.test.zone");
    let zone_arg = zone.to_str().expect("utf-8");
    write_zone(&zone, "198.18.20.1", true);

    let first = Daemon::on_veth(&topo, zone_arg, &["--pin-dir", pin]);
    assert_eq!(a_from_xdp(&topo, &first, "www.restart.test.", 1), ["198.18.20.1"]);
    assert_eq!(a_from_xdp(&topo, &first, "old.restart.test.", 2), ["198.18.20.2"]);
    stop(first, libc::SIGKILL);

    write_zone(&zone, "198.18.20.9", false);
    let second = Daemon::on_veth(&topo, zone_arg, &["--pin-dir", pin]);
    let log = second.child.stderr();
    assert!(log.contains("adopted the pinned program, links and maps"), "{log}");
    // www rewritten in its slot, old now answered NXDOMAIN (which the fast
    // path serves too): each as its non-DO and its DO entry.
    assert!(log.contains("updated=4"), "the sync rewrote www and old, with and without DO:\n{log}");
    assert_eq!(a_from_xdp(&topo, &second, "www.restart.test.", 3), ["198.18.20.9"]);
    let (rcode, addrs) = a_records(&topo, "old.restart.test.", 4);
    assert_eq!((rcode, addrs.len()), (ResponseCode::NXDomain, 0), "a name gone from the zone is not served");
}

/// Pins that do not fit (here a table of another size) are not adopted:
/// the next daemon makes new maps, puts its program on the same link, and
/// the old program and maps are freed.
#[test]
fn pins_of_another_layout_are_replaced_on_the_same_link() {
    require_root();
    let topo = Topology::new();
    let _pass = client_pass(&topo);
    let bpffs = BpfFs::mount();
    let pin = bpffs.pin_dir();
    let pin = pin.to_str().expect("utf-8");

    let first = Daemon::on_veth(&topo, EXAMPLE_ZONE, &["--pin-dir", pin, "--map-entries", "1024"]);
    let old = first.program_id.expect("id");
    stop(first, libc::SIGKILL);
    let second = Daemon::on_veth(&topo, EXAMPLE_ZONE, &["--pin-dir", pin, "--map-entries", "2048"]);
    let log = second.child.stderr();
    assert!(
        log.contains("not adopting the pinned maps") && log.contains("DNS_ANSWERS is defined differently"),
        "{log}"
    );
    assert!(log.contains("replaced the program on the pinned XDP link"), "{log}");
    assert_eq!(a_from_xdp(&topo, &second, "www.example.test.", 1), ["198.18.10.80", "198.18.10.81"]);
    assert!(!program_ids().contains(&old), "the old program is still loaded");
}

/// `dns-xdp detach` after the daemon stopped: program, link, maps and pins
/// are gone, and the interface has no XDP program.
#[test]
fn detach_removes_program_link_maps_and_pins() {
    require_root();
    let topo = Topology::new();
    let _pass = client_pass(&topo);
    let bpffs = BpfFs::mount();
    let pin_dir = bpffs.pin_dir();
    let pin = pin_dir.to_str().expect("utf-8");

    let daemon = Daemon::on_veth(&topo, EXAMPLE_ZONE, &["--pin-dir", pin]);
    let id = daemon.program_id.expect("id");
    stop(daemon, libc::SIGTERM);
    let link = topo.srv().exec_ok("ip", &["link", "show", topo.srv_if()]);
    assert!(link.contains("prog/xdp"), "stopping left no program for the next start:\n{link}");
    assert!(pin_dir.join("DNS_ANSWERS").exists() && pin_dir.join("program").exists(), "pins kept");
    assert!(program_ids().contains(&id));

    let out = std::process::Command::new(daemon_bin()).args(["detach", "--pin-dir", pin]).output().expect("detach");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "detach failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("detached XDP from {}", topo.srv_if())), "{stdout}");
    let link = topo.srv().exec_ok("ip", &["link", "show", topo.srv_if()]);
    assert!(!link.contains("prog/xdp"), "XDP still attached after detach:\n{link}");
    assert!(!pin_dir.exists(), "pins left in {}", pin_dir.display());
    assert!(!program_ids().contains(&id), "the program is still loaded");

    let out = std::process::Command::new(daemon_bin()).args(["detach", "--pin-dir", pin]).output().expect("detach");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing pinned"), "a second detach finds nothing");
}

/// `dns-xdp detach` under a running daemon takes XDP off the interface at
/// once (the daemon's own handle on the link does not keep it), and the
/// daemon goes on answering over its socket.
#[test]
fn detach_under_a_running_daemon_leaves_it_answering() {
    require_root();
    let topo = Topology::new();
    let _pass = client_pass(&topo);
    let bpffs = BpfFs::mount();
    let pin_dir = bpffs.pin_dir();
    let pin = pin_dir.to_str().expect("utf-8");

    let daemon = Daemon::on_veth(&topo, EXAMPLE_ZONE, &["--pin-dir", pin]);
    let out = std::process::Command::new(daemon_bin()).args(["detach", "--pin-dir", pin]).output().expect("detach");
    assert!(out.status.success(), "detach failed: {}", String::from_utf8_lossy(&out.stderr));
    let link = topo.srv().exec_ok("ip", &["link", "show", topo.srv_if()]);
    assert!(!link.contains("prog/xdp"), "XDP still attached after detach:\n{link}");
    std::thread::sleep(PUBLISH_WAIT);
    let (_, before) = daemon.stats();
    let (rcode, addrs) = a_records(&topo, "www.example.test.", 1);
    std::thread::sleep(PUBLISH_WAIT);
    let (_, after) = daemon.stats();
    assert_eq!((rcode, addrs.len()), (ResponseCode::NoError, 2));
    assert_eq!(counter(&after, "udp_queries"), counter(&before, "udp_queries") + 1, "the daemon answered");
    stop(daemon, libc::SIGTERM);
    assert!(!pin_dir.exists(), "pins left in {}", pin_dir.display());
}

/// The program's rare diagnostic events reach the daemon's log (aya-log):
/// a slot with an impossible length, written here into the pinned table as
/// a bug in the daemon would, makes the program drop the query as an
/// internal error, and the daemon logs it.
#[test]
fn program_diagnostics_reach_the_daemon_log() {
    use aya::maps::{Array, Map, MapData};
    use dns_xdp_common::AnswerSlot;
    require_root();
    let topo = Topology::new();
    let _pass = client_pass(&topo);
    let bpffs = BpfFs::mount();
    let pin_dir = bpffs.pin_dir();
    let mut daemon = Daemon::on_veth(&topo, EXAMPLE_ZONE, &["--pin-dir", pin_dir.to_str().expect("utf-8")]);

    let data = MapData::from_pin(pin_dir.join("DNS_ANSWERS")).expect("the pinned answer table");
    let mut table: Array<MapData, AnswerSlot> = Map::Array(data).try_into().expect("an array of slots");
    let www = b"\x03www\x07example\x04test\x00";
    let (index, mut slot) = (0..table.len())
        .filter_map(|i| table.get(&i, 0).ok().map(|s| (i, s)))
        .find(|(_, s)| s.key.qtype == 1 && s.key.dnssec_ok == 0 && s.qname() == www)
        .expect("www.example.test A (the non-DO entry the query below finds) in the table");
    slot.body_len = 0;
    table.set(index, slot, 0).expect("writing the slot");

    std::thread::sleep(PUBLISH_WAIT);
    let (before, _) = daemon.stats();
    let query = dns_xdp_tests::daemon::query("www.example.test.", RecordType::A, 9);
    let reply =
        dns_xdp_tests::raw_query(topo.cli(), SocketAddr::from((SRV_V4, 53)), &query, Duration::from_millis(500));
    assert!(reply.is_none(), "a slot of length 0 was answered");
    let logged = daemon.child.wait_for_output("internal error, query dropped", Duration::from_secs(3));
    assert!(logged.is_ok(), "the program's event is not in the daemon's log:\n{}", daemon.child.stderr());
    std::thread::sleep(PUBLISH_WAIT);
    let (after, _) = daemon.stats();
    assert_eq!(counter(&after, "drop_internal"), counter(&before, "drop_internal") + 1);
}
