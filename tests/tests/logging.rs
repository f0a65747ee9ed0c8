//! The daemon's log as an operator's pipeline reads it: with `--log-format
//! json` every line is one JSON object with the event's fields at the top
//! level; query logging is off by default, and with `--query-log-sample N`
//! one query in N that reaches the daemon is one `query` event naming the
//! client, the question, the rcode and the zone.

use std::net::SocketAddr;

use dns_xdp_tests::{
    CLI_V4, SRV_V4, Topology, TopologyExt as _,
    daemon::{Daemon, EXAMPLE_ZONE, ask, client_pass},
    require_root,
};
use hickory_proto::{op::ResponseCode, rr::RecordType};
use serde_json::Value;

/// Every line of the log, parsed; panics on one that is not JSON.
fn events(log: &str) -> Vec<Value> {
    log.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect()
}

/// Names outside every zone: REFUSED by the daemon, never by XDP.
fn ask_refused(topo: &Topology, count: u16) {
    for id in 0..count {
        let name = format!("q{id}.example.org.");
        let reply = ask(topo.cli(), SocketAddr::from((SRV_V4, 53)), &name, RecordType::A, id);
        assert_eq!(reply.metadata.response_code, ResponseCode::Refused);
    }
}

#[test]
fn json_log_lines_and_a_sampled_query_log() {
    require_root();
    let topo = Topology::new();
    let _pass = client_pass(&topo);
    let mut daemon =
        Daemon::on_veth(&topo, EXAMPLE_ZONE, &["--log-format", "json", "--query-log-sample", "4", "--metrics", "off"]);
    ask_refused(&topo, 20);
    // A hit from XDP is not the daemon's to log.
    ask(topo.cli(), SocketAddr::from((SRV_V4, 53)), "www.example.test.", RecordType::A, 100);
    daemon.child.stop().expect("stop");

    let all = events(&daemon.child.stderr());
    for event in &all {
        for key in ["timestamp", "level", "message", "target"] {
            assert!(event.get(key).is_some(), "{key} in {event}");
        }
    }
    let serving = all.iter().find(|e| e["message"] == "serving").expect("a serving event");
    assert!(serving["listen"].as_str().is_some_and(|l| l.contains(&SRV_V4.to_string())), "{serving}");
    assert!(all.iter().any(|e| e["message"] == "XDP fast path attached" && e["program_id"].as_u64().is_some()));
    assert!(all.iter().any(|e| e["message"] == "stopped"));

    let queries: Vec<&Value> = all.iter().filter(|e| e["message"] == "query").collect();
    assert_eq!(queries.len(), 5, "one in 4 of the 20 queries that reached the daemon: {queries:#?}");
    for q in &queries {
        assert!(q["client"].as_str().is_some_and(|c| c.starts_with(&format!("{CLI_V4}:"))), "{q}");
        assert!(q["qname"].as_str().is_some_and(|n| n.ends_with(".example.org.")), "{q}");
        assert_eq!(q["qtype"], "A");
        assert_eq!(q["rcode"], "REFUSED");
        assert_eq!(q["transport"], "udp");
    }
}

#[test]
fn query_logging_is_off_by_default() {
    require_root();
    let topo = Topology::new();
    let _pass = client_pass(&topo);
    let mut daemon = Daemon::on_veth(&topo, EXAMPLE_ZONE, &["--metrics", "off"]);
    ask_refused(&topo, 20);
    daemon.child.stop().expect("stop");
    let log = daemon.child.stderr();
    assert!(log.contains("serving"), "{log}");
    assert!(!log.contains(" query ") && !log.contains("dns_xdp::query"), "no query lines by default:\n{log}");
}
