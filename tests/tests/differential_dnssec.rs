//! DNSSEC differential test: dns-xdp against NSD 4.6, both serving the same
//! zone, generated here and signed here with `ldns-signzone`: once with
//! NSEC, once with NSEC3, once with NSEC3 opt-out (the insecure delegation
//! then has no NSEC3 of its own).
//!
//! Every name of the zone, plus nonexistent names, wildcard expansions,
//! empty non-terminals and names below a secure and an insecure
//! delegation, times a set of types, with and without DO, over UDP and
//! TCP: each reply must be the same as NSD's in rcode, AA and TC, the OPT
//! record's presence and DO bit, and each section record for record, in
//! order (RRSIGs and NSECs included). There are no allowed differences.
//!
//! The daemon path only (`--xdp-mode off`): the fast path does not serve
//! signed zones (their DO and non-DO answers differ, and the program does
//! not tell them apart).

use std::{net::SocketAddr, path::Path, time::Duration};

use dns_xdp_tests::{NetNs, NetNsExt as _, daemon_bin, in_netns, require_root, tcp_exchange, udp_socket};
use hickory_proto::{
    op::{Edns, Message, Query},
    rr::{DNSClass, Name, Record, RecordType},
};

const NSD_ADDR: &str = "127.0.0.1:5311";
const XDP_ADDR: &str = "127.0.0.1:5312";
const TIMEOUT: Duration = Duration::from_secs(2);

const ORIGIN: &str = "sig.test.";

const ZONE: &str = "$ORIGIN sig.test.\n$TTL 300\n\
@ SOA ns hostmaster 1 7200 3600 1209600 60\n\
@ NS ns\n\
@ MX 10 mail\n\
ns A 198.18.0.1\n\
www A 198.18.0.2\n\
www AAAA 2001:db8::2\n\
www TXT \"hello\"\n\
mail A 198.18.0.3\n\
*.wild TXT \"wildcard\"\n\
*.wild MX 10 mail\n\
a.b.ent A 198.18.0.4\n\
alias CNAME www\n\
dangling CNAME nx\n\
wildalias CNAME x.wild\n\
insecure NS ns.insecure\n\
ns.insecure A 198.18.0.5\n\
secure NS ns.secure\n\
ns.secure A 198.18.0.6\n\
secure DS 12345 13 2 3AE9F3C82FA55D0E1F2B8B21BA1B4D2D2A4B7E2F0C1D2E3F4A5B6C7D8E9F0A1B\n\
srv._tcp SRV 0 5 443 www\n";

/// Owners of the zone and names that are not in it (relative to the
/// origin; `@` is the apex).
const NAMES: &[&str] = &[
    "@",
    "ns",
    "www",
    "WWW",
    "mail",
    "alias",
    "dangling",
    "wildalias",
    "srv._tcp",
    "_tcp",
    // Wildcard: the literal owner, expansions one and two labels deep.
    "*.wild",
    "x.wild",
    "x.y.wild",
    "wild",
    // Empty non-terminals and below them.
    "ent",
    "b.ent",
    "a.b.ent",
    "nx.b.ent",
    "nx.ent",
    // Nonexistent, before, between and after the owners.
    "a",
    "nx",
    "zzz",
    "www.www",
    // Delegations: insecure (no DS) and secure.
    "insecure",
    "ns.insecure",
    "www.insecure",
    "secure",
    "ns.secure",
    "www.secure",
];

const TYPES: &[RecordType] = &[
    RecordType::A,
    RecordType::AAAA,
    RecordType::MX,
    RecordType::TXT,
    RecordType::NS,
    RecordType::SOA,
    RecordType::DS,
    RecordType::DNSKEY,
    RecordType::NSEC,
    RecordType::RRSIG,
    RecordType::CNAME,
    RecordType::SRV,
    RecordType::ANY,
];

fn absolute(name: &str) -> String {
    match name {
        "@" => ORIGIN.to_owned(),
        name => format!("{name}.{ORIGIN}"),
    }
}

struct Lab {
    ns: NetNs,
    udp: std::net::UdpSocket,
    tcp: [Option<std::net::TcpStream>; 2],
    _nsd: dns_xdp_tests::ChildGuard,
    _daemon: dns_xdp_tests::ChildGuard,
}

impl Lab {
    fn start(dir: &Path, zone: &Path) -> Lab {
        let ns = NetNs::with_role("dnssec");
        let d = dir.display();
        let nsd_port = NSD_ADDR.rsplit(':').next().expect("port");
        let nsd_ip = NSD_ADDR.split(':').next().expect("address");
        let conf = format!(
            "server:\n  ip-address: {nsd_ip}@{nsd_port}\n  port: {nsd_port}\n  username: \"\"\n  chroot: \"\"\n  \
             pidfile: \"{d}/nsd.pid\"\n  zonelistfile: \"{d}/zone.list\"\n  xfrdfile: \"{d}/xfrd.state\"\n  \
             xfrdir: \"{d}\"\n  database: \"\"\n  logfile: \"{d}/nsd.log\"\n  server-count: 1\n  \
             ipv4-edns-size: 1232\n  rrl-ratelimit: 0\n  rrl-whitelist-ratelimit: 0\n\
             remote-control:\n  control-enable: no\nzone:\n  name: {ORIGIN}\n  zonefile: \"{}\"\n",
            zone.display()
        );
        let conf_path = dir.join("nsd.conf");
        std::fs::write(&conf_path, conf).expect("writing nsd.conf");
        let mut cmd = ns.command("nsd");
        cmd.args(["-d", "-c", conf_path.to_str().expect("utf-8")]);
        let nsd = dns_xdp_tests::spawn(cmd, "nsd");

        let mut cmd = ns.command(daemon_bin().to_str().expect("utf-8 path"));
        cmd.args(["run", "--xdp-mode", "off", "--metrics", "off", "--listen", XDP_ADDR, "--zone"])
            .arg(format!("{ORIGIN}={}", zone.display()))
            .env("RUST_LOG", "info");
        let mut daemon = dns_xdp_tests::spawn(cmd, "dns-xdp");
        assert!(
            daemon.wait_for_output("serving", Duration::from_secs(20)).is_ok(),
            "dns-xdp did not start:\n{}",
            daemon.stderr()
        );
        let udp = udp_socket(&ns, "127.0.0.1:0".parse().expect("literal"));
        let lab = Lab { ns, udp, tcp: [None, None], _nsd: nsd, _daemon: daemon };
        let probe = query(ORIGIN, RecordType::SOA, 1, false);
        let ready = dns_xdp_tests::wait_until(Duration::from_secs(20), || {
            lab.exchange_udp(NSD_ADDR, &probe, Duration::from_millis(200)).is_some()
        });
        assert!(ready, "NSD did not answer: {}", std::fs::read_to_string(dir.join("nsd.log")).unwrap_or_default());
        lab
    }

    fn exchange_udp(&self, server: &str, query: &[u8], timeout: Duration) -> Option<Vec<u8>> {
        let server: SocketAddr = server.parse().expect("literal");
        netlab::udp::exchange(&self.udp, server, query, timeout, netlab::udp::same_id(query)).expect("UDP exchange")
    }

    fn exchange_tcp(&mut self, slot: usize, server: &str, query: &[u8]) -> Option<Vec<u8>> {
        let server: SocketAddr = server.parse().expect("literal");
        for _ in 0..2 {
            if self.tcp[slot].is_none() {
                self.tcp[slot] =
                    in_netns(&self.ns, move || std::net::TcpStream::connect_timeout(&server, TIMEOUT)).ok();
            }
            let stream = self.tcp[slot].as_mut()?;
            match tcp_exchange(stream, query, TIMEOUT) {
                Some(reply) => return Some(reply),
                None => self.tcp[slot] = None,
            }
        }
        None
    }
}

fn query(name: &str, qtype: RecordType, id: u16, dnssec_ok: bool) -> Vec<u8> {
    let mut msg = Message::query();
    msg.metadata.id = id;
    let mut question = Query::query(Name::from_ascii(name).expect("name"), qtype);
    question.set_query_class(DNSClass::IN);
    msg.add_query(question);
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    edns.set_dnssec_ok(dnssec_ok);
    msg.set_edns(edns);
    msg.to_vec().expect("encode")
}

/// What the comparison looks at, printable.
fn summary(reply: &[u8]) -> String {
    let msg = match Message::from_vec(reply) {
        Ok(msg) => msg,
        Err(err) => return format!("unparsable reply: {err}"),
    };
    let section =
        |records: &[Record]| -> String { records.iter().map(|record| format!("    {record}\n")).collect::<String>() };
    format!(
        "  rcode {:?} aa {} tc {} opt {:?}\n  answer:\n{}  authority:\n{}  additional:\n{}",
        msg.metadata.response_code,
        msg.metadata.authoritative,
        msg.metadata.truncation,
        msg.edns.as_ref().map(|edns| (edns.max_payload(), edns.flags().dnssec_ok)),
        section(&msg.answers),
        section(&msg.authorities),
        section(&msg.additionals),
    )
}

#[test]
fn nsec_signed_answers_match_nsd() {
    compare_with_nsd(&[], "\tNSEC\t");
}

#[test]
fn nsec3_signed_answers_match_nsd() {
    compare_with_nsd(&["-n", "-t", "3", "-s", "c0ffee"], "\tNSEC3\t1 0 3 c0ffee");
}

#[test]
fn nsec3_opt_out_signed_answers_match_nsd() {
    compare_with_nsd(&["-n", "-p"], "\tNSEC3\t1 1 ");
}

/// `marker` is text the signed zone must hold (the denial records wanted).
fn compare_with_nsd(sign_args: &[&str], marker: &str) {
    require_root();
    let dir = dns_xdp_tests::temp_dir("dnssec");
    let zone = dns_xdp_tests::dnssec::sign_zone(dir.path(), ORIGIN, ZONE, sign_args).path;
    let signed_text = std::fs::read_to_string(&zone).expect("reading the signed zone");
    assert!(signed_text.contains(marker), "no {marker:?} in the signed zone:\n{signed_text}");
    let mut lab = Lab::start(dir.path(), &zone);
    let mut id: u16 = 0x200;
    let (mut compared, mut with_rrsig) = (0, 0);
    let mut differences = Vec::new();
    for name in NAMES {
        let qname = absolute(name);
        for &qtype in TYPES {
            for dnssec_ok in [false, true] {
                for tcp in [false, true] {
                    id = id.wrapping_add(1);
                    let bytes = query(&qname, qtype, id, dnssec_ok);
                    let (ours, nsd) = if tcp {
                        (lab.exchange_tcp(0, XDP_ADDR, &bytes), lab.exchange_tcp(1, NSD_ADDR, &bytes))
                    } else {
                        (lab.exchange_udp(XDP_ADDR, &bytes, TIMEOUT), lab.exchange_udp(NSD_ADDR, &bytes, TIMEOUT))
                    };
                    let (Some(ours), Some(nsd)) = (ours, nsd) else {
                        panic!("no reply to {qname} {qtype} DO={dnssec_ok} TCP={tcp} from one of the servers");
                    };
                    compared += 1;
                    let (ours, nsd) = (summary(&ours), summary(&nsd));
                    if dnssec_ok && nsd.contains("RRSIG") {
                        with_rrsig += 1;
                    }
                    if ours != nsd {
                        differences.push(format!(
                            "== {qname} {qtype} DO={dnssec_ok} {}\n dns-xdp:\n{ours} NSD:\n{nsd}",
                            if tcp { "TCP" } else { "UDP" }
                        ));
                    }
                }
            }
        }
    }
    assert!(compared >= 1000, "only {compared} queries");
    assert!(with_rrsig > 200, "only {with_rrsig} DO answers carried RRSIGs: is the zone signed?");
    assert!(
        differences.is_empty(),
        "{} of {compared} replies differ from NSD's:\n{}",
        differences.len(),
        differences.join("\n")
    );
}
