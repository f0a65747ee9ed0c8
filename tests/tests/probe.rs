//! `dns-xdp probe` against real instances: two daemons with different
//! `--nsid` (one answering from XDP), asked from a client namespace the
//! way a vantage point would.

use std::{io::Read as _, io::Write as _, net::TcpStream, time::Duration};

use dns_xdp_tests::{
    NetNs, NetNsExt as _, SRV_V4, Topology, TopologyExt as _,
    daemon::{Daemon, EXAMPLE_ZONE, client_pass},
    daemon_bin, in_netns, require_root, spawn, wait_until,
};
use serde_json::Value;

/// The second service address, on the server veth beside SRV_V4.
const OTHER_V4: &str = "198.18.0.3";
const SERIAL: u64 = 2026112901;

fn probe(ns: &NetNs, args: &[&str]) -> String {
    let out = ns.exec(daemon_bin().to_str().expect("utf-8"), &[&["probe"], args].concat());
    assert!(out.status.success(), "probe failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json_lines(out: &str) -> Vec<Value> {
    out.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect()
}

fn second_daemon(topo: &Topology, nsid: &str) -> Daemon {
    let listen = format!("{OTHER_V4}:53");
    Daemon::start(
        topo.srv(),
        &[
            "--zone",
            EXAMPLE_ZONE,
            "--listen",
            &listen,
            "--xdp-mode",
            "off",
            "--nsid",
            nsid,
            "--control-socket",
            "off",
            "--metrics",
            "off",
        ],
    )
}

#[test]
fn probe_reports_the_answering_instance_rtt_loss_serial_and_changes() {
    require_root();
    let topo = Topology::new();
    topo.srv().exec_ok("ip", &["addr", "add", &format!("{OTHER_V4}/24"), "dev", topo.srv_if()]);
    let _pass = client_pass(&topo);
    let pop_a =
        Daemon::on_veth(&topo, EXAMPLE_ZONE, &["--nsid", "pop-a", "--control-socket", "off", "--metrics", "off"]);
    let mut pop_b = second_daemon(&topo, "pop-b");
    let a = SRV_V4.to_string();

    // The text summary: one line per target.
    let out = probe(topo.cli(), &[&a, OTHER_V4, "--name", "example.test", "--count", "5", "--interval", "0.1"]);
    let line = |target: &str| {
        out.lines().find(|l| l.starts_with(&format!("{target}:53 "))).unwrap_or_else(|| panic!("no {target}:\n{out}"))
    };
    for (target, nsid) in [(a.as_str(), "pop-a"), (OTHER_V4, "pop-b")] {
        let l = line(target);
        assert!(l.contains(&format!("nsid {nsid} serial {SERIAL} rcode NOERROR sent 5 lost 0 (0.0%)")), "{l}");
        assert!(l.contains("rtt min/median/p99 "), "{l}");
    }
    // pop-a answered at least the later queries from XDP, NSID included.
    std::thread::sleep(dns_xdp_tests::daemon::PUBLISH_WAIT);
    let (xdp, _) = pop_a.stats();
    assert!(dns_xdp_tests::daemon::counter(&xdp, "tx_answer") >= 3, "not answered by XDP: {xdp}");

    // Over TCP.
    let out = probe(topo.cli(), &[OTHER_V4, "--name", "example.test", "--count", "2", "--interval", "0.1", "--tcp"]);
    assert!(out.contains("nsid pop-b serial 2026112901 rcode NOERROR sent 2 lost 0"), "{out}");

    // Another instance takes over the address mid-run: losses while none
    // answers, then an event naming both instances, with the RTTs.
    let mut cmd = topo.cli().command(daemon_bin());
    cmd.args(["probe", OTHER_V4, "--name", "example.test", "--count", "40", "--interval", "0.1", "--json"]);
    cmd.args(["--metrics", "127.0.0.1:9190"]);
    let mut running = spawn(cmd, "probe");
    assert!(wait_until(Duration::from_secs(3), || running.stdout().contains("\"pop-b\"")), "{}", running.stdout());
    pop_b.child.stop().expect("stopping pop-b");
    std::thread::sleep(Duration::from_millis(400));
    let _pop_c = second_daemon(&topo, "pop-c");
    // The metrics while it runs.
    let scrape = in_netns(topo.cli(), || {
        let mut stream = TcpStream::connect("127.0.0.1:9190").expect("probe metrics endpoint");
        stream.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").expect("request");
        let mut text = String::new();
        stream.read_to_string(&mut text).expect("response");
        text
    });
    assert!(scrape.starts_with("HTTP/1.0 200"), "{scrape}");
    assert!(scrape.contains(&format!("dnsxdp_probe_serial{{target=\"{OTHER_V4}:53\"}} {SERIAL}")), "{scrape}");
    assert!(scrape.contains("dnsxdp_probe_lost_total{target=\"198.18.0.3:53\"} "), "{scrape}");
    assert!(scrape.contains("dnsxdp_probe_rtt_seconds{"), "{scrape}");
    running.wait_success(Duration::from_secs(10)).expect("probe ends after --count");
    let records = json_lines(&running.stdout());
    let events: Vec<&Value> = records.iter().filter(|r| r["type"] == "event").collect();
    assert_eq!(events.len(), 1, "one change of instance: {events:?}");
    let event = events[0];
    assert_eq!(
        (event["event"].as_str(), event["from"].as_str(), event["to"].as_str()),
        (Some("instance"), Some("pop-b"), Some("pop-c")),
        "{event}"
    );
    assert!(event["time"].as_str().is_some_and(|t| t.ends_with('Z')) && event["rtt_ms"].as_f64().is_some(), "{event}");
    let summary = records.iter().find(|r| r["type"] == "summary").expect("summary");
    let lost = summary["lost"].as_u64().expect("lost");
    assert!((2..40).contains(&lost), "the queries while nobody answered are lost: {summary}");
    assert_eq!(records.iter().filter(|r| r["type"] == "lost").count() as u64, lost, "every loss is a line");
    assert_eq!((summary["sent"].as_u64(), summary["nsid"].as_str()), (Some(40), Some("pop-c")), "{summary}");
    assert_eq!(summary["instance_changes"].as_u64(), Some(1), "{summary}");

    // Bad input is refused with a message, not a panic.
    let out = topo.cli().exec(daemon_bin().to_str().expect("utf-8"), &["probe", "pop-a.example"]);
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("expected IP or IP:PORT"),
        "{out:?}"
    );
}
