//! DNS cookies end to end (RFC 7873, RFC 9018 server cookies), with BIND's
//! `dig +cookie` as the client: the server cookie from a first query is
//! accepted on the second, answered from XDP; a second PoP with the same
//! secret (here the daemon alone, XDP off) accepts it too and answers with
//! the same bytes.

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

use dns_xdp_tests::{
    NetNs, SRV_V4, Topology, TopologyExt as _,
    daemon::{Daemon, EXAMPLE_ZONE, PUBLISH_WAIT, client_pass, counter},
    dig, in_netns, raw_query, require_root,
};

/// The secret every "PoP" of the test shares.
const SECRET: &str = "0123456789abcdef0123456789abcdef";

/// The COOKIE line of dig's output: the cookie in hex and dig's verdict
/// on it (`good` when the server echoed dig's client cookie).
fn dig_cookie(out: &str) -> (String, String) {
    let line = out.lines().find(|l| l.starts_with("; COOKIE: ")).unwrap_or_else(|| panic!("no COOKIE in:\n{out}"));
    let mut words = line.trim_start_matches("; COOKIE: ").split_whitespace();
    let hex = words.next().expect("cookie hex").to_owned();
    let verdict = words.next().unwrap_or("").trim_matches(|c| c == '(' || c == ')').to_owned();
    (hex, verdict)
}

fn ask_dig(ns: &NetNs, cookie: &str) -> String {
    let server = format!("@{SRV_V4}");
    let out = dig(ns, &[&server, "+norec", "+tries=1", "+time=2", cookie, "www.example.test.", "A"]);
    assert!(out.contains("status: NOERROR") && out.contains("198.18.10.80"), "dig got:\n{out}");
    out
}

/// A query for `www.example.test. A` with EDNS and the COOKIE option
/// `cookie` (hex), as raw bytes.
fn cookie_query(cookie: &[u8], id: u16) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 1]);
    q.extend_from_slice(b"\x03www\x07example\x04test\x00\x00\x01\x00\x01");
    q.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0]);
    q.extend_from_slice(&((cookie.len() + 4) as u16).to_be_bytes());
    q.extend_from_slice(&10u16.to_be_bytes());
    q.extend_from_slice(&(cookie.len() as u16).to_be_bytes());
    q.extend_from_slice(cookie);
    q
}

/// `dnsxdp_daemon_cookies_total{verdict="VERDICT"}` from the daemon's
/// /metrics in `ns` (the default 127.0.0.1:9153).
fn cookie_metric(ns: &NetNs, verdict: &str) -> f64 {
    let body = in_netns(ns, || {
        let mut stream = TcpStream::connect("127.0.0.1:9153").expect("connecting to /metrics");
        stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").expect("request");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("response");
        response
    });
    let series = format!("dnsxdp_daemon_cookies_total{{verdict=\"{verdict}\"}} ");
    let line = body.lines().find(|l| l.starts_with(&series)).unwrap_or_else(|| panic!("no {series}in:\n{body}"));
    line[series.len()..].parse().expect("a number")
}

fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex")).collect()
}

#[test]
fn dig_cookie_twice_is_answered_from_xdp_and_by_another_pop_with_the_same_bytes() {
    require_root();
    let topo = Topology::new();
    let _pass = client_pass(&topo);
    let daemon = Daemon::on_veth(&topo, EXAMPLE_ZONE, &["--cookie-secret", SECRET]);
    std::thread::sleep(PUBLISH_WAIT);

    // First query: dig's client cookie alone; the answer (from XDP) has a
    // server cookie dig calls good.
    let (xdp0, _) = daemon.stats();
    let (first, verdict) = dig_cookie(&ask_dig(topo.cli(), "+cookie"));
    assert_eq!(verdict, "good", "dig's verdict on the first answer's cookie");
    assert_eq!(first.len(), 2 * 24, "client cookie and an RFC 9018 server cookie: {first}");
    // Second query: dig sends that server cookie back.
    let (second, verdict) = dig_cookie(&ask_dig(topo.cli(), &format!("+cookie={first}")));
    assert_eq!(verdict, "good", "dig's verdict on the second answer's cookie");
    assert_eq!(second[..16], first[..16], "the same client cookie");
    std::thread::sleep(PUBLISH_WAIT);
    let (xdp1, daemon1) = daemon.stats();
    let moved = |name: &str| counter(&xdp1, name) - counter(&xdp0, name);
    assert_eq!(moved("tx_cookie_client_only"), 1, "the first answer came from XDP: {xdp1}");
    assert_eq!(moved("tx_cookie"), 1, "the second answer came from XDP with a valid cookie: {xdp1}");
    assert_eq!(counter(&daemon1, "cookie_valid"), 0, "the daemon saw neither: {daemon1}");

    // Another PoP with the same secret, XDP off: the daemon accepts the
    // cookie XDP issued and answers with the same bytes as XDP does, in
    // the same second.
    let pop_b = Topology::new();
    let listen = format!("{SRV_V4}:53");
    let _pop_b_daemon = Daemon::start(
        pop_b.srv(),
        &["--zone", EXAMPLE_ZONE, "--listen", &listen, "--xdp-mode", "off", "--cookie-secret", SECRET],
    );
    let server = SocketAddr::from((SRV_V4, 53));
    let query = cookie_query(&unhex(&second), 0x7777);
    let mut compared = false;
    for _ in 0..5 {
        let from_xdp = raw_query(topo.cli(), server, &query, Duration::from_secs(2)).expect("XDP PoP answers");
        let from_daemon = raw_query(pop_b.cli(), server, &query, Duration::from_secs(2)).expect("daemon PoP answers");
        // The server cookie's timestamp (seconds) sits 12 bytes into the
        // 24 of option data at the end of each reply.
        let stamp = |reply: &[u8]| reply[reply.len() - 12..reply.len() - 8].to_vec();
        if stamp(&from_xdp) != stamp(&from_daemon) {
            continue; // a second boundary fell between the two
        }
        assert_eq!(from_xdp, from_daemon, "the same answer from XDP and from the daemon");
        compared = true;
        break;
    }
    assert!(compared, "never two answers in the same second");
    let valid = cookie_metric(pop_b.srv(), "valid");
    assert!(valid >= 1.0, "the other PoP accepted the cookie XDP issued (dnsxdp_daemon_cookies_total: {valid})");

    let (third, verdict) = dig_cookie(&dig(
        pop_b.cli(),
        &[&format!("@{SRV_V4}"), "+norec", "+tries=1", "+time=2", &format!("+cookie={second}"), "www.example.test."],
    ));
    assert_eq!(verdict, "good", "dig's verdict on the daemon's cookie");
    assert_eq!(third[..16], first[..16]);
    assert!(cookie_metric(pop_b.srv(), "valid") > valid, "and the one its daemon issued");
    let (xdp2, _) = daemon.stats();
    assert!(counter(&xdp2, "tx_cookie") > counter(&xdp1, "tx_cookie"), "XDP answered the raw queries too");
}
