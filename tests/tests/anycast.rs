//! The multi-PoP anycast lab: a router namespace running BIRD with eBGP
//! sessions to two PoP namespaces, each running BIRD, dns-xdp (its own
//! NSID) and `dns-xdp announce` for the same anycast address; a client
//! behind the router probes it. PoP A is preferred (local preference;
//! this kernel has no netem for path delays). Each case measures how long the
//! client was answered by B and what it lost. BGP timers are short (hold
//! 3 s) so the test takes seconds.

use std::{path::Path, time::Duration};

use dns_xdp_tests::{ChildGuard, NetNs, NetNsExt as _, daemon_bin, require_root, spawn, temp_dir, wait_until};
use serde_json::Value;

const ANYCAST: &str = "198.18.53.1";
const ZONE: &str = "example.test";

struct Pop {
    ns: NetNs,
    name: &'static str,
    addr: String,
    dir: std::path::PathBuf,
}

fn link(a: &NetNs, a_if: &str, a_addr: &str, b: &NetNs, b_if: &str, b_addr: &str) {
    a.exec_ok("ip", &["link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", b.name()]);
    for (ns, dev, addr) in [(a, a_if, a_addr), (b, b_if, b_addr)] {
        ns.exec_ok("ip", &["addr", "add", addr, "dev", dev]);
        // Final checksums on the wire: XDP reads and rewrites them.
        ns.exec_ok("ethtool", &["-K", dev, "tx", "off"]);
        ns.exec_ok("ip", &["link", "set", "dev", dev, "up"]);
    }
}

fn bird(ns: &NetNs, dir: &Path, conf: &str) -> ChildGuard {
    std::fs::write(dir.join("bird.conf"), conf).expect("bird.conf");
    let (conf, sock) = (dir.join("bird.conf"), dir.join("bird.ctl"));
    let child = ns.spawn("bird", &["-f", "-c", conf.to_str().expect("utf-8"), "-s", sock.to_str().expect("utf-8")]);
    assert!(wait_until(Duration::from_secs(5), || sock.exists()), "bird did not start:\n{}", child.stderr());
    child
}

fn daemon(pop: &Pop, extra: &[&str]) -> ChildGuard {
    let mut cmd = pop.ns.command(daemon_bin());
    let sock = pop.dir.join("control.sock");
    cmd.args(["run", "--zone", "zones/example.test.zone", "--listen", &format!("{ANYCAST}:53")]);
    cmd.args(["--iface", "tor", "--xdp-mode", "native", "--nsid", pop.name, "--metrics", "127.0.0.1:9153"]);
    cmd.arg("--control-socket").arg(&sock).args(extra);
    cmd.current_dir(dns_xdp_tests::workspace_root()).env("RUST_LOG", "info");
    let mut child = spawn(cmd, pop.name);
    assert!(child.wait_for_output("serving", Duration::from_secs(20)).is_ok(), "{}", child.stderr());
    child
}

fn announce(pop: &Pop) -> ChildGuard {
    let mut cmd = pop.ns.command(daemon_bin());
    cmd.args(["announce", "--service", ANYCAST, "--zone", ZONE, "--health-url", "http://127.0.0.1:9153/health"]);
    cmd.args(["--interval", "0.5", "--timeout", "0.3", "--rise", "2", "--fall", "2"]);
    cmd.arg("--include").arg(pop.dir.join("anycast.conf")).arg("--bird-socket").arg(pop.dir.join("bird.ctl"));
    cmd.env("RUST_LOG", "info");
    spawn(cmd, "announce")
}

/// Which PoP's address the router's route to the anycast address points at.
fn route_via(router: &NetNs) -> String {
    String::from_utf8_lossy(&router.exec("ip", &["route", "show", &format!("{ANYCAST}/32")]).stdout).into_owned()
}

/// Now as seconds of the UTC day, as [`seconds`] reads the probe's times.
fn now_of_day() -> f64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock");
    (since.as_secs() % 86_400) as f64 + f64::from(since.subsec_millis()) / 1000.0
}

/// Runs a probe for `secs` at 20 queries per second; half a second in,
/// `during` acts. Returns the probe's JSON lines and when `during` acted.
fn probe_during(client: &NetNs, secs: u64, during: impl FnOnce()) -> (Vec<Value>, f64) {
    let mut cmd = client.command(daemon_bin());
    let count = (secs * 20).to_string();
    cmd.args(["probe", ANYCAST, "--name", ZONE, "--interval", "0.05", "--timeout", "0.5", "--json", "--count", &count]);
    let mut probe = spawn(cmd, "probe");
    std::thread::sleep(Duration::from_millis(500));
    let acted = now_of_day();
    during();
    probe.wait_success(Duration::from_secs(secs + 10)).expect("probe ends");
    (probe.stdout().lines().map(|l| serde_json::from_str(l).expect("probe JSON")).collect(), acted)
}

/// Seconds of the day of an RFC 3339 time (the lab runs for seconds).
fn seconds(time: &str) -> f64 {
    let clock = time.split('T').nth(1).expect("time").trim_end_matches('Z');
    clock.split(':').map(|p| p.parse::<f64>().expect("number")).fold(0.0, |acc, p| acc * 60.0 + p)
}

/// (seconds from the action to the client's first answer from B, lost).
fn failover((records, acted): &(Vec<Value>, f64), case: &str) -> (f64, u64) {
    let event = records
        .iter()
        .find(|r| r["type"] == "event" && r["to"] == "pop-b")
        .unwrap_or_else(|| panic!("{case}: the client never moved to pop-b: {records:?}"));
    assert_eq!(event["from"], "pop-a", "{case}: answered by A before: {event}");
    let lost = records.iter().filter(|r| r["type"] == "lost").count() as u64;
    let took = seconds(event["time"].as_str().expect("time")) - acted;
    println!("failover {case}: {took:.2} s, {lost} lost");
    (took, lost)
}

#[test]
fn anycast_failover_withdraws_before_the_daemon_stops_and_returns() {
    require_root();
    let work = temp_dir("anycast");
    let router = NetNs::with_role("rtr");
    let client = NetNs::with_role("vp1");
    let mut pops = Vec::new();
    for (n, name) in [(1, "pop-a"), (2, "pop-b")] {
        let dir = work.path().join(name);
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("anycast.conf"), "").expect("include");
        let pop = Pop { ns: NetNs::with_role(name), name, addr: format!("198.18.30.{}", 4 * n - 2), dir };
        link(
            &router,
            &format!("p{n}"),
            &format!("198.18.30.{}/30", 4 * n - 3),
            &pop.ns,
            "tor",
            &format!("{}/30", pop.addr),
        );
        pop.ns.exec_ok("ip", &["route", "add", "default", "via", &format!("198.18.30.{}", 4 * n - 3)]);
        pop.ns.exec_ok("ip", &["addr", "add", &format!("{ANYCAST}/32"), "dev", "lo"]);
        pops.push(pop);
    }
    link(&router, "c1", "198.18.40.1/30", &client, "uplink", "198.18.40.2/30");
    client.exec_ok("ip", &["route", "add", "default", "via", "198.18.40.1"]);
    router.exec_ok("sysctl", &["-q", "-w", "net.ipv4.ip_forward=1"]);
    // XDP_TX on a veth reaches the peer only when the peer runs XDP.
    let _pass: Vec<aya::Ebpf> = ["p1", "p2"]
        .iter()
        .map(|dev| {
            let dev = dev.to_string();
            dns_xdp_tests::in_netns(&router, move || {
                dns_xdp::lab::attach_pass_program(&dev, dns_xdp::config::AttachMode::Native)
            })
            .expect("pass program")
        })
        .collect();
    let timers = "hold time 3; keepalive time 1; connect retry time 1; error wait time 1, 2;";
    let router_conf = format!(
        "router id 198.18.30.1;\nprotocol device {{ scan time 1; }}\n\
         protocol kernel {{ ipv4 {{ export all; }}; }}\n\
         protocol bgp pop_a {{ local 198.18.30.1 as 64500; neighbor 198.18.30.2 as 64501; {timers}\n\
           ipv4 {{ import filter {{ bgp_local_pref = 200; accept; }}; export none; }}; }}\n\
         protocol bgp pop_b {{ local 198.18.30.5 as 64500; neighbor 198.18.30.6 as 64502; {timers}\n\
           ipv4 {{ import filter {{ bgp_local_pref = 100; accept; }}; export none; }}; }}\n"
    );
    let rdir = work.path().join("router");
    std::fs::create_dir_all(&rdir).expect("dir");
    let _router_bird = bird(&router, &rdir, &router_conf);
    let mut guards = Vec::new();
    for (n, pop) in pops.iter().enumerate() {
        let peer = format!("198.18.30.{}", 4 * n + 1);
        let conf = format!(
            "router id {addr};\nprotocol device {{ scan time 1; }}\ninclude \"{include}\";\n\
             protocol bgp upstream {{ local {addr} as {asn}; neighbor {peer} as 64500; {timers}\n\
               ipv4 {{ import none; export where proto = \"dns_xdp_anycast4\"; }}; }}\n",
            addr = pop.addr,
            include = pop.dir.join("anycast.conf").display(),
            asn = 64501 + n,
            peer = peer,
        );
        guards.push((bird(&pop.ns, &pop.dir, &conf), daemon(pop, &["--drain-delay", "3"]), announce(pop)));
    }
    assert!(
        wait_until(Duration::from_secs(15), || route_via(&router).contains("198.18.30.2")),
        "PoP A's route never came: {}",
        route_via(&router)
    );
    let (a, b) = (&pops[0], &pops[1]);
    let _ = b;
    let mut results = Vec::new();

    // SIGKILL: the pinned program keeps answering hits while announce
    // notices the dead daemon (its queries reach the socket) and withdraws.
    let records = probe_during(&client, 6, || guards[0].1.signal(libc::SIGKILL).expect("kill"));
    results.push(("sigkill", failover(&records, "sigkill")));
    assert!(!route_via(&router).contains("198.18.30.2"), "A still announced: {}", route_via(&router));
    // Back: A's clients return to A.
    guards[0].1 = daemon(a, &["--drain-delay", "3"]);
    assert!(wait_until(Duration::from_secs(10), || route_via(&router).contains("198.18.30.2")), "A never returned");
    let (back, _) = probe_during(&client, 1, || {});
    assert!(back.iter().filter(|r| r["type"] == "reply").all(|r| r["nsid"] == "pop-a"), "{back:?}");

    // SIGTERM with a drain delay: withdrawn first, answering meanwhile.
    let records = probe_during(&client, 6, || guards[0].1.signal(libc::SIGTERM).expect("term"));
    let (took, lost) = failover(&records, "sigterm");
    assert_eq!(lost, 0, "a clean stop loses nothing");
    results.push(("sigterm", (took, lost)));
    guards[0].1 = daemon(a, &["--drain-delay", "3"]);
    assert!(wait_until(Duration::from_secs(10), || route_via(&router).contains("198.18.30.2")), "A never returned");

    // dns-xdp drain: withdraw, keep answering until the traffic moved, stop.
    let mut drain = a.ns.command(daemon_bin());
    drain.args(["drain", "--quiet", "1", "--timeout", "20", "--control-socket"]).arg(a.dir.join("control.sock"));
    let mut drain = Some(drain);
    let mut running = None;
    let records = probe_during(&client, 6, || running = Some(spawn(drain.take().expect("drain"), "drain")));
    let (took, lost) = failover(&records, "drain");
    assert_eq!(lost, 0, "a drain loses nothing");
    let mut drain = running.take().expect("drain");
    drain.wait_success(Duration::from_secs(20)).expect("drain ends");
    assert!(drain.stdout().contains("traffic has moved"), "{}", drain.stdout());
    assert!(guards[0].1.wait_timeout(Duration::from_secs(5)).expect("wait").is_some(), "the daemon stopped");
    results.push(("drain", (took, lost)));
    for (case, (took, _)) in &results {
        assert!(*took <= 3.0, "{case}: failover took {took:.2} s, over the 3 s bound");
    }
}
