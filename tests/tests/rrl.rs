//! Response rate limiting under a flood (root, a veth pair): kxdpgun sends
//! from one IPv4 /24 at 5x `--rrl-rate`; that prefix must get at most the
//! rate (plus its one-second burst) and the slips, counted by verdict,
//! while a client in another prefix (the IPv6 /56 of the client veth) is
//! answered with no loss throughout, and so is a client in the flooded
//! prefix that sends a valid DNS server cookie (its source is proven).

use std::{net::SocketAddr, time::Duration};

use dns_xdp_tests::{
    CLI_V4, CLI_V6, ChildGuard, NetNsExt as _, SRV_V4, SRV_V6, Topology, TopologyExt as _,
    daemon::{Daemon, EXAMPLE_ZONE, PUBLISH_WAIT, ask, client_pass, counter, query},
    require_root, temp_dir, udp_exchange, udp_socket,
};
use hickory_proto::{
    op::{Edns, Message, Query, ResponseCode},
    rr::{
        Name, RecordType,
        rdata::opt::{EdnsCode, EdnsOption},
    },
};

/// `www.example.test. A` with a COOKIE option.
fn cookie_query(cookie: &[u8], id: u16) -> Vec<u8> {
    let mut msg = Message::query();
    msg.metadata.id = id;
    msg.add_query(Query::query(Name::from_ascii("www.example.test.").expect("name"), RecordType::A));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    edns.options_mut().insert(EdnsOption::Unknown(10, cookie.to_vec()));
    msg.set_edns(edns);
    msg.to_vec().expect("encode")
}

/// The COOKIE option of a full answer with ID `id`, if it is one.
fn answered_cookie(reply: Option<Vec<u8>>, id: u16) -> Option<Vec<u8>> {
    let msg = Message::from_vec(&reply?).ok()?;
    if msg.metadata.id != id || msg.metadata.truncation || msg.answers.is_empty() {
        return None;
    }
    match msg.edns.as_ref()?.option(EdnsCode::Cookie)? {
        EdnsOption::Unknown(_, data) => Some(data.clone()),
        _ => None,
    }
}

const RATE: u64 = 100;
const SLIP: u64 = 2;
/// kxdpgun's offered load and how long it sends.
const FLOOD_QPS: u64 = 5 * RATE;
const FLOOD_SECS: u64 = 3;

/// `total replies:     399800 (199900 pps) (99%)` -> 399800.
fn kxdpgun_total(out: &str, key: &str) -> u64 {
    out.lines()
        .find_map(|l| l.trim_start().strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {key:?} in kxdpgun output:\n{out}"))
}

#[test]
fn a_flooded_prefix_gets_its_rate_and_slips_while_another_prefix_is_answered() {
    require_root();
    let topo = Topology::new();
    let rate = RATE.to_string();
    let slip = SLIP.to_string();
    let daemon = Daemon::on_veth(&topo, EXAMPLE_ZONE, &["--rrl-rate", &rate, "--rrl-slip", &slip]);
    // Put the answer in the table (asked over IPv6, so the flooded prefix's
    // budget is untouched), with the pass program the XDP_TX replies need.
    {
        let _pass = client_pass(&topo);
        let msg = ask(topo.cli(), SocketAddr::from((SRV_V6, 53)), "www.example.test.", RecordType::A, 1);
        assert_eq!(msg.metadata.response_code, ResponseCode::NoError);
        std::thread::sleep(PUBLISH_WAIT);
    }
    // A real client in the flooded prefix learns a server cookie first
    // (a client cookie alone is rate limited like any query: one answer of
    // the prefix's budget, before the flood).
    let cookie_socket = udp_socket(topo.cli(), SocketAddr::from((CLI_V4, 0)));
    let server4 = SocketAddr::from((SRV_V4, 53));
    let mut cookie = {
        let _pass = client_pass(&topo);
        let reply = udp_exchange(&cookie_socket, server4, &cookie_query(b"realclnt", 0x4000), Duration::from_secs(1));
        answered_cookie(reply, 0x4000).expect("a server cookie for the flooded prefix's client")
    };
    assert_eq!(cookie.len(), 24);
    topo.detach_client_xdp().expect("detaching the pass program");
    let (xdp_before, _) = daemon.stats();

    let dir = temp_dir("rrl");
    let queries = dir.path().join("queries");
    std::fs::write(&queries, "www.example.test A\n").expect("query file");
    let mut cmd = topo.cli().command("kxdpgun");
    cmd.args(["-t", &FLOOD_SECS.to_string(), "-Q", &FLOOD_QPS.to_string(), "-F", "0", "-I", topo.cli_if(), "-i"]);
    cmd.arg(&queries).arg(SRV_V4.to_string());
    let mut gun = ChildGuard::spawn(cmd, "kxdpgun", &netlab::ProcOptions::default()).expect("starting kxdpgun");
    // kxdpgun sets up for about a second (its XDP program, which passes
    // what is not its own, then lets XDP_TX replies reach the client
    // socket too); the other prefix asks every 20 ms while it floods.
    let socket = udp_socket(topo.cli(), SocketAddr::from((CLI_V6, 0)));
    let server6 = SocketAddr::from((SRV_V6, 53));
    let mut id = 0u16;
    let mut answered_once = || {
        id += 1;
        let reply =
            udp_exchange(&socket, server6, &query("www.example.test.", RecordType::A, id), Duration::from_millis(300));
        reply
            .and_then(|r| Message::from_vec(&r).ok())
            .is_some_and(|msg| msg.metadata.id == id && !msg.metadata.truncation && !msg.answers.is_empty())
    };
    // Until kxdpgun's program is attached, XDP_TX replies do not reach the
    // client namespace; from the first answer on, none may be lost.
    assert!(
        (0..30).any(|_| answered_once()),
        "the other prefix got no answer once kxdpgun was up:\n{}",
        daemon.child.stderr()
    );
    // kxdpgun's program is up before it sends: ask only once the flood
    // is over the limit, so every query below meets the limited prefix.
    let flooding = (0..40).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        counter(&daemon.stats().0, "drop_rrl") > counter(&xdp_before, "drop_rrl")
    });
    assert!(flooding, "the flood never went over the limit");
    let (mut asked, mut answered, mut with_cookie) = (0u16, 0u16, 0u16);
    for i in 0..40u16 {
        asked += 1;
        if answered_once() {
            answered += 1;
        }
        // The flooded prefix's own client, with its valid cookie (renewed
        // from each answer, as a resolver does).
        let id = 0x4100 + i;
        let reply = udp_exchange(&cookie_socket, server4, &cookie_query(&cookie, id), Duration::from_millis(300));
        if let Some(fresh) = answered_cookie(reply, id) {
            with_cookie += 1;
            cookie = fresh;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    gun.wait_success(Duration::from_secs(FLOOD_SECS + 10)).expect("kxdpgun");
    topo.detach_client_xdp().expect("detaching kxdpgun's program");
    let out = gun.stdout();
    let sent = kxdpgun_total(&out, "total queries:");
    let replies = kxdpgun_total(&out, "total replies:");
    let (xdp_after, _) = daemon.stats();
    let delta = |name: &str| counter(&xdp_after, name) - counter(&xdp_before, name);
    let (tx, dropped, slipped) = (delta("tx_answer"), delta("drop_rrl"), delta("tx_rrl_slip"));
    let cookie_answers = delta("tx_cookie");
    eprintln!(
        "kxdpgun sent {sent}, got {replies} replies; XDP answered {tx}, dropped {dropped}, slipped {slipped}; \
         the other prefix: {answered}/{asked}; the flooded prefix's client with a cookie: {with_cookie}/{asked} \
         ({cookie_answers} from XDP)"
    );
    assert!(sent >= FLOOD_QPS * FLOOD_SECS * 9 / 10, "kxdpgun sent only {sent}");
    assert_eq!(answered, asked, "the client in another prefix lost answers during the flood");
    assert_eq!(with_cookie, asked, "the flooded prefix's client with a valid cookie lost answers during the flood");
    assert_eq!(cookie_answers, u64::from(asked), "its answers came from XDP, exempt from the limit");
    // The flooded prefix: the rate for the flood's length plus a second's
    // burst, and its slips; the rest dropped.
    // The other prefix's answers (and its warm-up) came from XDP too.
    let flood_answers = tx - u64::from(id);
    // A fifth of a second's worth of slack: kxdpgun's last queries may
    // arrive a little after its 3 s, and the program's clock is coarse.
    assert!(flood_answers <= RATE * (FLOOD_SECS + 1) + RATE / 5, "the flooded prefix got {flood_answers} full answers");
    assert!(dropped > 0, "nothing dropped by the rate limit");
    let over = dropped + slipped;
    assert!(slipped.abs_diff(over / SLIP) <= 1, "slipped {slipped} of {over} over the limit, slip {SLIP}");
    assert!(replies <= flood_answers + slipped, "kxdpgun got {replies} replies, more than XDP sent");
    assert!(replies + over >= sent * 9 / 10, "kxdpgun got {replies} replies to {sent} queries");
}

/// The daemon's own answers (no XDP) under the same policy: a burst of
/// queries from one source gets the burst's worth of full answers, every
/// second one over it comes back truncated with the question only, and
/// an exempt source is answered in full.
#[test]
fn the_daemon_limits_its_answers_and_slips_truncated_ones() {
    require_root();
    let ns = dns_xdp_tests::NetNs::with_role("rrl-daemon");
    let zone = format!("example.test={}", dns_xdp_tests::workspace_root().join(EXAMPLE_ZONE).display());
    let daemon = Daemon::start(
        &ns,
        &[
            "--zone",
            &zone,
            "--listen",
            "127.0.0.1:5300",
            "--xdp-mode",
            "off",
            "--rrl-rate",
            "10",
            "--rrl-slip",
            "2",
            "--rrl-exempt",
            "127.0.0.2/32",
            "--metrics",
            "off",
            "--control-socket",
            "off",
        ],
    );
    let server: SocketAddr = "127.0.0.1:5300".parse().expect("literal");
    let count = |bind: &str| {
        let socket = udp_socket(&ns, bind.parse().expect("literal"));
        let (mut full, mut slipped, mut lost) = (0u32, 0u32, 0u32);
        let started = std::time::Instant::now();
        for id in 1..=60u16 {
            match udp_exchange(
                &socket,
                server,
                &query("www.example.test.", RecordType::A, id),
                Duration::from_millis(200),
            )
            .map(|r| Message::from_vec(&r).expect("reply parses"))
            {
                Some(msg) if msg.metadata.truncation => {
                    assert!(msg.answers.is_empty() && msg.authorities.is_empty() && msg.queries.len() == 1);
                    slipped += 1;
                }
                Some(msg) => {
                    assert!(!msg.answers.is_empty());
                    full += 1;
                }
                None => lost += 1,
            }
        }
        (full, slipped, lost, started.elapsed())
    };
    let (full, slipped, dropped, took) = count("127.0.0.1:0");
    eprintln!("limited source: {full} full, {slipped} slipped, {dropped} dropped in {took:?}");
    // 10/s over the time taken (each drop waits out the timeout), plus a
    // second of burst and the first answer.
    let most = 11 + (10.0 * took.as_secs_f64()).ceil() as u32;
    assert!((10..=most).contains(&full), "{full} full answers in {took:?}, at most {most}");
    assert!(slipped.abs_diff(dropped) <= 1 && slipped > 0, "slipped {slipped}, dropped {dropped}");
    let (full, slipped, dropped, _) = count("127.0.0.2:0");
    assert_eq!((full, slipped, dropped), (60, 0, 0), "the exempt source was limited");
    drop(daemon);
}
