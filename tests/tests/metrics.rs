//! The Prometheus endpoint as a monitoring server scrapes it: the daemon in a
//! server namespace with XDP on its veth, queries from the client namespace,
//! `GET /metrics` on the server namespace's loopback, and every figure
//! compared with `dns-xdp stats --json` read at the same moment.

use std::{
    collections::BTreeMap,
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

use dns_xdp_tests::{
    NetNs, NetNsExt as _, SRV_V4, Topology, TopologyExt as _,
    daemon::{Daemon, EXAMPLE_ZONE, PUBLISH_WAIT, ask, client_pass, counter},
    in_netns, require_root,
};
use hickory_proto::{op::ResponseCode, rr::RecordType};

const METRICS: &str = "127.0.0.1:9153";

/// The status line and body of an HTTP/1.1 request to the endpoint, from
/// inside `ns`.
fn http(ns: &NetNs, request: &str) -> (String, String) {
    let request = request.to_owned();
    in_netns(ns, move || {
        let mut stream = TcpStream::connect(METRICS).expect("connecting to the metrics endpoint");
        stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        stream.write_all(request.as_bytes()).expect("sending the request");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("reading the response");
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        (head.lines().next().unwrap_or_default().to_owned(), body.to_owned())
    })
}

/// `GET /metrics` parsed into `series -> value`, series written as the text
/// format writes them (`name{label="value",...}`).
fn scrape(ns: &NetNs) -> BTreeMap<String, f64> {
    let (status, body) = http(ns, "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert!(status.contains(" 200 "), "GET /metrics: {status}\n{body}");
    body.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad metrics line {line:?}"));
            (series.to_owned(), value.parse().unwrap_or_else(|_| panic!("bad value in {line:?}")))
        })
        .collect()
}

/// Every `dnsxdp_*` metric name the dashboard's queries use.
fn dashboard_metrics() -> Vec<String> {
    fn walk(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(fields) => {
                for (key, field) in fields {
                    match field {
                        serde_json::Value::String(query) if key == "expr" || key == "query" => {
                            let mut rest = query.as_str();
                            while let Some(at) = rest.find("dnsxdp_") {
                                let name: String =
                                    rest[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                                rest = &rest[at + name.len()..];
                                out.push(name);
                            }
                        }
                        other => walk(other, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|item| walk(item, out)),
            _ => {}
        }
    }
    let path = dns_xdp_tests::workspace_root().join("dist/grafana-dashboard.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut names = Vec::new();
    walk(&dashboard, &mut names);
    names.sort();
    names.dedup();
    names
}

fn value(metrics: &BTreeMap<String, f64>, series: &str) -> u64 {
    *metrics.get(series).unwrap_or_else(|| panic!("no series {series} in {metrics:#?}")) as u64
}

#[test]
fn metrics_agree_with_stats_and_move_with_traffic() {
    require_root();
    let topo = Topology::new();
    let _pass = client_pass(&topo);
    let daemon = Daemon::on_veth(&topo, EXAMPLE_ZONE, &["--metrics", METRICS]);
    let server = SocketAddr::from((SRV_V4, 53));

    // Hits (preloaded, answered by XDP), a miss, and a name outside every
    // zone (REFUSED, which the fast path never serves).
    for id in 0..5 {
        let reply = ask(topo.cli(), server, "www.example.test.", RecordType::A, id);
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    }
    let reply = ask(topo.cli(), server, "nosuch.example.test.", RecordType::A, 10);
    assert_eq!(reply.metadata.response_code, ResponseCode::NXDomain);
    let reply = ask(topo.cli(), server, "www.example.org.", RecordType::A, 11);
    assert_eq!(reply.metadata.response_code, ResponseCode::Refused);

    std::thread::sleep(PUBLISH_WAIT);
    let metrics = scrape(topo.srv());
    let (xdp, daemon_stats) = daemon.stats();

    // Every XDP verdict agrees with `dns-xdp stats --json`.
    let verdicts = xdp.as_object().expect("xdp counters");
    assert!(!verdicts.is_empty());
    for name in verdicts.keys() {
        assert_eq!(
            value(&metrics, &format!("dnsxdp_xdp_verdicts_total{{verdict=\"{name}\"}}")),
            counter(&xdp, name),
            "verdict {name}"
        );
    }
    assert!(counter(&xdp, "tx_answer") >= 5, "the hits were answered by XDP: {xdp}");
    assert_eq!(
        value(&metrics, "dnsxdp_daemon_queries_total{transport=\"udp\"}"),
        counter(&daemon_stats, "udp_queries")
    );
    assert_eq!(value(&metrics, "dnsxdp_answer_table_answers"), counter(&daemon_stats, "map_entries"));
    assert_eq!(value(&metrics, "dnsxdp_answer_table_left_out_total"), counter(&daemon_stats, "map_no_room"));
    assert!(value(&metrics, "dnsxdp_answer_table_slots") >= 65_536);
    // The heartbeat is refreshed every 200 ms.
    let age = metrics.get("dnsxdp_heartbeat_age_seconds").copied().expect("heartbeat age on /metrics");
    assert!((0.0..2.0).contains(&age), "heartbeat age {age} s");

    // The daemon's replies by rcode, transport and zone: the miss and the
    // refusal, each once (no other query reached the daemon).
    assert_eq!(
        value(&metrics, "dnsxdp_daemon_responses_total{rcode=\"NXDOMAIN\",transport=\"udp\",zone=\"example.test.\"}"),
        1
    );
    assert_eq!(value(&metrics, "dnsxdp_daemon_responses_total{rcode=\"REFUSED\",transport=\"udp\",zone=\"\"}"), 1);
    assert_eq!(value(&metrics, "dnsxdp_zone_serial{zone=\"example.test.\"}"), 2_026_112_901);
    assert!(value(&metrics, "dnsxdp_zone_loaded_timestamp_seconds{zone=\"example.test.\"}") > 1_700_000_000);
    assert_eq!(value(&metrics, "dnsxdp_build_info{version=\"0.1.0\"}"), 1);

    // Every series the Grafana dashboard queries is on /metrics.
    let queried = dashboard_metrics();
    assert!(queried.len() >= 6, "the dashboard queries {queried:?}");
    // Series that exist only when the daemon has secondary zones; the
    // secondary-zone tests check them (tests/tests/secondary.rs).
    const WITH_SECONDARIES: [&str; 1] = ["dnsxdp_zone_expiry_seconds"];
    for name in queried.iter().filter(|name| !WITH_SECONDARIES.contains(&name.as_str())) {
        assert!(
            metrics.keys().any(|series| series.split('{').next() == Some(name.as_str())),
            "the dashboard queries {name}, which /metrics does not have"
        );
    }

    // More hits move the XDP counter by exactly as many, on the next scrape.
    for id in 20..23 {
        ask(topo.cli(), server, "www.example.test.", RecordType::A, id);
    }
    let again = scrape(topo.srv());
    assert_eq!(
        value(&again, "dnsxdp_xdp_verdicts_total{verdict=\"tx_answer\"}"),
        value(&metrics, "dnsxdp_xdp_verdicts_total{verdict=\"tx_answer\"}") + 3
    );
}

#[test]
fn the_metrics_endpoint_serves_only_get_metrics() {
    require_root();
    let topo = Topology::new();
    let daemon = Daemon::on_veth(&topo, EXAMPLE_ZONE, &["--metrics", METRICS]);
    let (status, _) = http(topo.srv(), "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert!(status.contains(" 404 "), "GET /: {status}");
    let (status, _) =
        http(topo.srv(), "POST /metrics HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    assert!(status.contains(" 405 "), "POST /metrics: {status}");
    assert!(daemon.child.stderr().contains("metrics at http://127.0.0.1:9153/metrics"), "{}", daemon.child.stderr());
}

#[test]
fn metrics_off_listens_nowhere_and_a_taken_port_fails_the_start_clearly() {
    require_root();
    let topo = Topology::new();
    {
        let _daemon = Daemon::on_veth(&topo, EXAMPLE_ZONE, &["--metrics", "off"]);
        let refused = in_netns(topo.srv(), || TcpStream::connect(METRICS).is_err());
        assert!(refused, "nothing may listen on {METRICS} with --metrics off");
    }
    // Someone else holds the port: the daemon says so and does not start.
    let _holder = in_netns(topo.srv(), || std::net::TcpListener::bind(METRICS).expect("holding the port"));
    let out = topo
        .srv()
        .command(dns_xdp_tests::daemon_bin().to_str().expect("path"))
        .current_dir(dns_xdp_tests::workspace_root())
        .args(["run", "--zone", EXAMPLE_ZONE, "--listen", "198.18.0.1:53", "--xdp-mode", "off"])
        .output()
        .expect("running the daemon");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the daemon started on a taken metrics port:\n{stderr}");
    assert!(stderr.contains("binding the metrics endpoint 127.0.0.1:9153"), "{stderr}");
}

/// `GET /health` parsed: the status line and the JSON body.
fn health(ns: &NetNs) -> (String, serde_json::Value) {
    let (status, body) = http(ns, "GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let body = serde_json::from_str(&body).unwrap_or_else(|e| panic!("health body {body:?}: {e}"));
    (status, body)
}

/// SIGHUP, then wait for the log line that ends the reload.
fn reload(daemon: &mut Daemon, needle: &str, count: usize) {
    daemon.child.signal(libc::SIGHUP).expect("signalling the daemon");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while daemon.log_count(needle) < count {
        assert!(std::time::Instant::now() < deadline, "no '{needle}' #{count}:\n{}", daemon.child.stderr());
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn health_turns_503_with_the_reason_on_a_broken_zone_or_a_detached_fast_path() {
    require_root();
    let dir = dns_xdp_tests::temp_dir("health");
    let zone = dir.path().join("health.test.zone");
    let good =
        "$ORIGIN health.test.\n$TTL 300\n@ SOA ns hostmaster 1 7200 3600 1209600 300\n@ NS ns\nns A 198.18.0.1\n";
    std::fs::write(&zone, good).expect("zone");
    let topo = Topology::new();
    let _pass = client_pass(&topo);
    let mut daemon =
        Daemon::on_veth(&topo, zone.to_str().expect("utf-8"), &["--metrics", METRICS, "--heartbeat-timeout", "5"]);

    let (status, body) = health(topo.srv());
    assert!(status.contains(" 200 "), "{status}: {body:#}");
    assert_eq!(body["healthy"], true, "{body:#}");
    assert_eq!(body["fast_path"], "attached", "{body:#}");
    assert_eq!(body["zones"], serde_json::json!(["health.test."]));

    // A reload that cannot load the zone: the old data still serves, and
    // health says why the configuration is not what is served.
    std::fs::write(&zone, format!("{good}bad A 192.0.2.500\n")).expect("zone");
    reload(&mut daemon, "reload done", 1);
    assert_eq!(daemon.log_count("still serving its previous copy"), 1, "{}", daemon.child.stderr());
    let (status, body) = health(topo.srv());
    assert!(status.contains(" 503 "), "{status}: {body:#}");
    let reasons = body["reasons"].to_string();
    assert!(
        reasons.contains("failed to load (serving its previous copy)") && reasons.contains("health.test.zone:6"),
        "{body:#}"
    );

    // Fixed: 200 again (the broken reload was the first "reload done").
    std::fs::write(&zone, good.replace(" 1 7200", " 2 7200")).expect("zone");
    reload(&mut daemon, "reload done", 2);
    let (status, body) = health(topo.srv());
    assert!(status.contains(" 200 "), "{status}: {body:#}");

    // The program's link detached from the interface behind the daemon's
    // back: the fast path no longer answers, and health says so.
    let links = std::process::Command::new("bpftool").args(["-j", "link", "show"]).output().expect("bpftool link show");
    let links: serde_json::Value = serde_json::from_slice(&links.stdout).expect("bpftool JSON");
    let program_id = daemon.program_id.expect("program id");
    let link = links
        .as_array()
        .and_then(|all| all.iter().find(|l| l["prog_id"].as_u64() == Some(program_id) && l["type"] == "xdp"))
        .unwrap_or_else(|| panic!("no XDP link of program {program_id} in {links}"));
    let link_id = link["id"].as_u64().expect("link id").to_string();
    let out = std::process::Command::new("bpftool").args(["link", "detach", "id", &link_id]).output().expect("bpftool");
    assert!(out.status.success(), "bpftool link detach: {}", String::from_utf8_lossy(&out.stderr));
    let (status, body) = health(topo.srv());
    assert!(status.contains(" 503 "), "{status}: {body:#}");
    assert!(body["fast_path"].as_str().is_some_and(|s| s.contains("not attached to")), "{body:#}");
}

#[test]
fn metrics_agree_with_stats_during_dnsperf() {
    require_root();
    let topo = Topology::new();
    let _pass = client_pass(&topo);
    let daemon = Daemon::on_veth(&topo, EXAMPLE_ZONE, &["--metrics", METRICS]);
    let dir = dns_xdp_tests::temp_dir("metrics-dnsperf");
    let queries = dir.path().join("queries");
    // Hits (answered at the driver) and misses (NXDOMAIN names the daemon
    // answers each time: a miss the fast path cannot keep is a new name).
    let mut text = String::from("www.example.test A\n");
    for i in 0..2000 {
        text.push_str(&format!("nosuch{i}.example.test A\n"));
        text.push_str("www.example.test A\n");
    }
    std::fs::write(&queries, text).expect("query file");
    let rate: u64 = 2000;
    let mut dnsperf = topo.cli().spawn(
        "dnsperf",
        &["-s", "198.18.0.1", "-d", queries.to_str().expect("utf-8"), "-l", "4", "-Q", &rate.to_string(), "-c", "1"],
    );
    std::thread::sleep(Duration::from_millis(1500));
    let (xdp, stats_daemon) = daemon.stats();
    let metrics = scrape(topo.srv());
    std::thread::sleep(Duration::from_millis(1000));
    let later = scrape(topo.srv());
    // Read at the same moment, within one scrape interval: the two reads
    // are a few ms apart, and the daemon's counters reach `stats` with the
    // heartbeat (every 200 ms), so they may trail by that much traffic.
    let slack = rate / 2;
    for (series, from_stats) in [
        ("dnsxdp_xdp_verdicts_total{verdict=\"tx_answer\"}", counter(&xdp, "tx_answer")),
        ("dnsxdp_xdp_verdicts_total{verdict=\"pass_miss\"}", counter(&xdp, "pass_miss")),
        ("dnsxdp_daemon_queries_total{transport=\"udp\"}", counter(&stats_daemon, "udp_queries")),
    ] {
        let scraped = value(&metrics, series);
        assert!(scraped.abs_diff(from_stats) <= slack, "{series}: /metrics {scraped}, stats --json {from_stats}");
        assert!(from_stats > 100, "{series} did not move under dnsperf: {from_stats}");
        assert!(value(&later, series) > scraped, "{series} stopped moving: {scraped}");
    }
    let status = dnsperf.wait_timeout(Duration::from_secs(10)).expect("dnsperf");
    assert!(status.is_some_and(|s| s.success()), "dnsperf failed:\n{}", dnsperf.stdout());
}

#[test]
fn health_with_the_default_listen_address_and_the_fast_path_off() {
    require_root();
    let ns = NetNs::new();
    // No --listen: the daemon binds 0.0.0.0:53, which the health check
    // must reach over loopback.
    let _daemon = Daemon::start(&ns, &["--zone", EXAMPLE_ZONE, "--xdp-mode", "off"]);
    let (status, body) = health(&ns);
    assert!(status.contains(" 200 "), "{status}: {body:#}");
    assert_eq!(body["fast_path"], "off", "{body:#}");
}
