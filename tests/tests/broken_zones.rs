//! One broken zone never takes the others down, and the errors a resolver
//! sees say why (RFC 8914 Extended DNS Errors), as NSD 4.6 and Knot 3.2
//! answer:
//!
//! * three zones, one with a syntax error: the two others serve (from XDP
//!   too), the broken one answers SERVFAIL with EDE 14 "Not Ready" (NSD's
//!   code and text), the log names its file and line, `/health`-relevant
//!   state aside; after the file is fixed, SIGHUP serves it;
//! * names outside every zone get REFUSED with EDE 20 "Not Authoritative";
//! * QCLASS * is answered from the class IN data with AA clear and no
//!   authority data, referrals excepted (what NSD 4.6 does);
//! * neither SERVFAIL nor REFUSED is ever served by the fast path (the XDP
//!   answer counter does not move for them);
//! * `dns-xdp check-config` fails on the broken zone, and `dns-xdp run`
//!   exits non-zero when no zone loads at all.

use std::{net::SocketAddr, path::Path, time::Duration};

use dns_xdp_tests::{
    NetNs, NetNsExt as _, SRV_V4, Topology, TopologyExt as _,
    daemon::{Daemon, PUBLISH_WAIT, client_pass, counter},
    daemon_bin, raw_query, require_root,
};
use hickory_proto::{
    op::{Edns, Message, Query, ResponseCode},
    rr::{
        DNSClass, Name, RecordType,
        rdata::opt::{EdnsCode, EdnsOption},
    },
};

const GOOD: &str = "$TTL 300\n@ SOA ns hostmaster 1 7200 3600 1209600 300\n@ NS ns\nns A 198.18.0.1\n\
                    www A 198.18.0.2\nsub NS ns.sub\nns.sub A 198.18.0.3\n";

/// Line 5 is the bad one (line 6 of the file, after its `$ORIGIN`).
const BROKEN: &str = "$TTL 300\n@ SOA ns hostmaster 1 7200 3600 1209600 300\n@ NS ns\nns A 198.18.0.1\n\
                      www A 198.18.0.999\n";

/// EDE code 15 (RFC 8914 §2).
const OPTION_EDE: u16 = 15;

fn write_zones(dir: &Path) -> [String; 3] {
    let mut paths = Vec::new();
    for (name, text) in [("a.test", GOOD), ("b.test", GOOD), ("c.test", BROKEN)] {
        let path = dir.join(format!("{name}.zone"));
        std::fs::write(&path, format!("$ORIGIN {name}.\n{text}")).expect("writing a zone");
        paths.push(path.display().to_string());
    }
    paths.try_into().expect("three paths")
}

fn edns_query(name: &str, qtype: RecordType, class: DNSClass, id: u16) -> Vec<u8> {
    let mut msg = Message::query();
    msg.metadata.id = id;
    let mut question = Query::query(Name::from_ascii(name).expect("name"), qtype);
    question.set_query_class(class);
    msg.add_query(question);
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    msg.set_edns(edns);
    msg.to_vec().expect("encode query")
}

fn ask(ns: &NetNs, server: SocketAddr, name: &str, qtype: RecordType, class: DNSClass, id: u16) -> Message {
    let reply = raw_query(ns, server, &edns_query(name, qtype, class, id), Duration::from_secs(2))
        .unwrap_or_else(|| panic!("no reply to {name} {class} {qtype}"));
    let msg = Message::from_vec(&reply).expect("reply parses");
    assert_eq!(msg.metadata.id, id, "reply ID");
    msg
}

/// The (INFO-CODE, EXTRA-TEXT) of the reply's Extended DNS Error.
fn ede(msg: &Message) -> Option<(u16, String)> {
    let edns = msg.edns.as_ref()?;
    match edns.option(EdnsCode::Unknown(OPTION_EDE))? {
        EdnsOption::Unknown(_, data) => {
            let (code, text) = data.split_first_chunk::<2>()?;
            Some((u16::from_be_bytes(*code), String::from_utf8_lossy(text).into_owned()))
        }
        _ => None,
    }
}

#[test]
fn broken_zone_answers_servfail_while_the_others_serve() {
    require_root();
    let dir = dns_xdp_tests::temp_dir("broken-zones");
    let [a, b, c] = write_zones(dir.path());
    let topo = Topology::new();
    let _pass = client_pass(&topo);
    let mut daemon = Daemon::on_veth(&topo, &a, &["--zone", &b, "--zone", &c]);
    let server = SocketAddr::from((SRV_V4, 53));
    let cli = topo.cli();

    let log = daemon.child.stderr();
    assert!(log.contains(&format!("{c}:6: ")), "the log names the broken file and line:\n{log}");

    // The good zones serve, the second time from XDP.
    for (id, zone) in [(1, "a.test."), (2, "b.test.")] {
        let msg = ask(cli, server, &format!("www.{zone}"), RecordType::A, DNSClass::IN, id);
        assert_eq!(msg.metadata.response_code, ResponseCode::NoError, "{zone}: {msg}");
        assert!(msg.metadata.authoritative, "{zone}: AA");
        assert_eq!(msg.answers.len(), 1, "{zone}: {msg}");
        assert_eq!(ede(&msg), None, "{zone}: no EDE on a good answer");
    }
    std::thread::sleep(PUBLISH_WAIT);
    let (before, _) = daemon.stats();
    let msg = ask(cli, server, "www.a.test.", RecordType::A, DNSClass::IN, 3);
    assert_eq!(msg.answers.len(), 1, "{msg}");
    std::thread::sleep(PUBLISH_WAIT);
    let (after, _) = daemon.stats();
    assert_eq!(counter(&after, "tx_answer"), counter(&before, "tx_answer") + 1, "good zones are served by XDP");

    // The broken zone: SERVFAIL + EDE 14, never from XDP, however often
    // asked; out-of-zone names: REFUSED + EDE 20, never from XDP either.
    let before = after;
    for id in 10..14 {
        let msg = ask(cli, server, "www.c.test.", RecordType::A, DNSClass::IN, id);
        assert_eq!(msg.metadata.response_code, ResponseCode::ServFail, "{msg}");
        assert!(!msg.metadata.authoritative, "SERVFAIL is not authoritative: {msg}");
        assert_eq!(ede(&msg), Some((14, "Zone is configured but not loaded".to_owned())), "{msg}");

        let msg = ask(cli, server, "www.elsewhere.example.", RecordType::A, DNSClass::IN, id + 100);
        assert_eq!(msg.metadata.response_code, ResponseCode::Refused, "{msg}");
        assert_eq!(ede(&msg), Some((20, String::new())), "{msg}");
    }
    std::thread::sleep(PUBLISH_WAIT);
    let (after, _) = daemon.stats();
    assert_eq!(counter(&after, "tx_answer"), counter(&before, "tx_answer"), "XDP served a SERVFAIL or REFUSED");

    // QCLASS *: the IN data, AA clear, no authority section...
    let msg = ask(cli, server, "www.a.test.", RecordType::A, DNSClass::ANY, 20);
    assert_eq!(msg.metadata.response_code, ResponseCode::NoError, "{msg}");
    assert!(!msg.metadata.authoritative, "class * is not answered authoritatively: {msg}");
    assert_eq!(msg.answers.len(), 1, "{msg}");
    assert!(msg.authorities.is_empty(), "no apex NS for class *: {msg}");
    let msg = ask(cli, server, "nosuch.a.test.", RecordType::A, DNSClass::ANY, 21);
    assert_eq!(msg.metadata.response_code, ResponseCode::NXDomain, "{msg}");
    assert!(msg.authorities.is_empty(), "no SOA for class *: {msg}");
    // ... except that a referral keeps its NS.
    let msg = ask(cli, server, "www.sub.a.test.", RecordType::A, DNSClass::ANY, 22);
    assert_eq!(msg.authorities.len(), 1, "a class * referral keeps its NS: {msg}");
    // Classes other than IN and * (and CH's identity names) are refused.
    let msg = ask(cli, server, "www.a.test.", RecordType::A, DNSClass::HS, 23);
    assert_eq!(msg.metadata.response_code, ResponseCode::Refused, "{msg}");

    // check-config gates on the broken zone.
    let config = dir.path().join("dns-xdp.toml");
    std::fs::write(
        &config,
        "[[zone]]\nfile = \"a.test.zone\"\n[[zone]]\nfile = \"b.test.zone\"\n[[zone]]\nfile = \"c.test.zone\"\n",
    )
    .expect("writing the config");
    let check =
        std::process::Command::new(daemon_bin()).arg("check-config").arg(&config).output().expect("check-config");
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(!check.status.success(), "check-config passed a broken zone");
    assert!(stderr.contains(&format!("{c}:6: ")), "check-config names file and line: {stderr}");

    // Fixed, and reloaded: served.
    std::fs::write(&c, format!("$ORIGIN c.test.\n{GOOD}")).expect("fixing the zone");
    daemon.child.signal(libc::SIGHUP).expect("SIGHUP");
    assert!(
        daemon.child.wait_for_output("reload done", Duration::from_secs(5)).is_ok(),
        "no reload:\n{}",
        daemon.child.stderr()
    );
    let msg = ask(cli, server, "www.c.test.", RecordType::A, DNSClass::IN, 30);
    assert_eq!(msg.metadata.response_code, ResponseCode::NoError, "the fixed zone serves: {msg}");
    assert!(msg.metadata.authoritative, "{msg}");
    assert_eq!(ede(&msg), None, "{msg}");
    check_config_passes(&config);
}

fn check_config_passes(config: &Path) {
    let check =
        std::process::Command::new(daemon_bin()).arg("check-config").arg(config).output().expect("check-config");
    assert!(check.status.success(), "check-config fails on good zones: {}", String::from_utf8_lossy(&check.stderr));
}

#[test]
fn no_zone_loading_at_all_is_fatal() {
    require_root();
    let dir = dns_xdp_tests::temp_dir("no-zone");
    let [_, _, c] = write_zones(dir.path());
    let ns = NetNs::new();
    let mut cmd = ns.command(daemon_bin().to_str().expect("utf-8 path"));
    cmd.args(["run", "--zone", &c, "--listen", "127.0.0.1:5399", "--xdp-mode", "off"]);
    let mut child = dns_xdp_tests::spawn(cmd, "dns-xdp");
    let status = child.wait(Duration::from_secs(10)).expect("dns-xdp exits");
    assert!(!status.success(), "started with no zone loaded:\n{}", child.stderr());
    let stderr = child.stderr();
    assert!(stderr.contains("no zone loaded") && stderr.contains(&format!("{c}:6: ")), "{stderr}");
}
