//! A validating resolver accepts what dns-xdp serves from signed zones:
//! Unbound (Debian's), in its own network namespace with the zone's key as
//! trust anchor and a stub zone pointing at dns-xdp, resolves every
//! positive name with AD set and every nonexistent name as NXDOMAIN with
//! AD set, for a zone signed with NSEC, with NSEC3, and with NSEC3
//! opt-out. A bogus answer would be SERVFAIL instead, so a missing RRSIG or
//! a wrong denial proof fails the test. In the opt-out zone, answers whose
//! proof rests on an NSEC3 that covers a name (NXDOMAIN, wildcard
//! expansions, the opt-out delegation's DS) are insecure by design (RFC
//! 5155 §9.2: the covered span may hold unsigned delegations): there the
//! test asks for the right rcode without SERVFAIL, not for AD.
//!
//! The daemon answers (signed zones are not served by the fast path).

use std::{net::SocketAddr, time::Duration};

use dns_xdp_tests::{NetNs, NetNsExt as _, daemon_bin, raw_query, require_root};
use hickory_proto::{
    op::{Edns, Message, Query, ResponseCode},
    rr::{Name, RecordType},
};

const ORIGIN: &str = "val.test.";
const DAEMON: &str = "127.0.0.1:5322";
const RESOLVER: &str = "127.0.0.1:5323";

const ZONE: &str = "$ORIGIN val.test.\n$TTL 300\n\
@ SOA ns hostmaster 1 7200 3600 1209600 60\n\
@ NS ns\n\
ns A 198.18.0.1\n\
www A 198.18.0.2\n\
www AAAA 2001:db8::2\n\
mail MX 10 www\n\
*.wild TXT \"wildcard\"\n\
a.b.ent A 198.18.0.3\n\
alias CNAME www\n\
insecure NS ns.insecure\n\
ns.insecure A 198.18.0.4\n";

/// Names that exist (or match the wildcard), with a type they hold, and
/// whether the proof covers a name (a wildcard expansion).
const POSITIVE: &[(&str, RecordType, bool)] = &[
    ("val.test.", RecordType::SOA, false),
    ("www.val.test.", RecordType::A, false),
    ("www.val.test.", RecordType::AAAA, false),
    ("mail.val.test.", RecordType::MX, false),
    ("x.wild.val.test.", RecordType::TXT, true),
    ("a.b.ent.val.test.", RecordType::A, false),
    ("alias.val.test.", RecordType::A, false),
];

/// Names that do not exist, and names that exist without the type (NODATA,
/// also validated: NOERROR with AD and no answer).
const NEGATIVE: &[(&str, RecordType, ResponseCode, bool)] = &[
    ("nx.val.test.", RecordType::A, ResponseCode::NXDomain, true),
    ("zzz.val.test.", RecordType::A, ResponseCode::NXDomain, true),
    ("nx.b.ent.val.test.", RecordType::A, ResponseCode::NXDomain, true),
    ("www.val.test.", RecordType::TXT, ResponseCode::NoError, false),
    ("b.ent.val.test.", RecordType::A, ResponseCode::NoError, false),
    ("x.wild.val.test.", RecordType::A, ResponseCode::NoError, true),
    // The insecure delegation: its missing DS is proven (with NSEC3
    // opt-out, by the closest provable encloser).
    ("insecure.val.test.", RecordType::DS, ResponseCode::NoError, true),
];

fn query(name: &str, qtype: RecordType, id: u16) -> Vec<u8> {
    let mut msg = Message::query();
    msg.metadata.id = id;
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(Name::from_ascii(name).expect("name"), qtype));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    edns.set_dnssec_ok(true);
    msg.set_edns(edns);
    msg.to_vec().expect("encode")
}

fn resolve(ns: &NetNs, name: &str, qtype: RecordType, id: u16) -> Message {
    let server: SocketAddr = RESOLVER.parse().expect("literal");
    // Unbound may take a moment for its first lookups (the DNSKEY).
    let reply = raw_query(ns, server, &query(name, qtype, id), Duration::from_secs(5))
        .unwrap_or_else(|| panic!("Unbound did not answer {name} {qtype}"));
    Message::from_vec(&reply).expect("reply parses")
}

/// `opt_out`: the zone is signed with NSEC3 opt-out (see the module docs).
fn validate(sign_args: &[&str], opt_out: bool) {
    require_root();
    let dir = dns_xdp_tests::temp_dir("validation");
    let signed = dns_xdp_tests::dnssec::sign_zone(dir.path(), ORIGIN, ZONE, sign_args);
    let ns = NetNs::with_role("validate");

    let mut cmd = ns.command(daemon_bin().to_str().expect("utf-8 path"));
    cmd.args(["run", "--xdp-mode", "off", "--metrics", "off", "--listen", DAEMON, "--zone"])
        .arg(format!("{ORIGIN}={}", signed.path.display()))
        .env("RUST_LOG", "info");
    let mut daemon = dns_xdp_tests::spawn(cmd, "dns-xdp");
    assert!(daemon.wait_for_output("serving", Duration::from_secs(20)).is_ok(), "{}", daemon.stderr());

    let d = dir.path().display();
    let (resolver_ip, resolver_port) = RESOLVER.split_once(':').expect("address");
    let (daemon_ip, daemon_port) = DAEMON.split_once(':').expect("address");
    let conf = format!(
        "server:\n  interface: {resolver_ip}@{resolver_port}\n  port: {resolver_port}\n  \
         access-control: 127.0.0.0/8 allow\n  do-not-query-localhost: no\n  username: \"\"\n  \
         chroot: \"\"\n  directory: \"{d}\"\n  pidfile: \"{d}/unbound.pid\"\n  use-syslog: no\n  \
         logfile: \"\"\n  verbosity: 1\n  val-log-level: 2\n  num-threads: 1\n  \
         module-config: \"validator iterator\"\n  trust-anchor-file: \"{d}/{}.ds\"\n  \
         auto-trust-anchor-file: \"\"\n  root-hints: \"\"\n  \
         local-zone: \"test.\" nodefault\n\
         remote-control:\n  control-enable: no\n\
         stub-zone:\n  name: \"{ORIGIN}\"\n  stub-addr: {daemon_ip}@{daemon_port}\n",
        signed.ksk
    );
    let conf_path = dir.path().join("unbound.conf");
    std::fs::write(&conf_path, conf).expect("writing unbound.conf");
    let check = ns.exec("unbound-checkconf", &[conf_path.to_str().expect("utf-8")]);
    assert!(check.status.success(), "unbound-checkconf: {}", String::from_utf8_lossy(&check.stderr));
    let mut unbound = ns.spawn("unbound", &["-d", "-c", conf_path.to_str().expect("utf-8")]);
    let up = dns_xdp_tests::wait_until(Duration::from_secs(20), || {
        raw_query(
            &ns,
            RESOLVER.parse().expect("literal"),
            &query(ORIGIN, RecordType::SOA, 1),
            Duration::from_millis(500),
        )
        .is_some()
    });
    assert!(up, "Unbound did not start:\n{}", unbound.stderr());

    let mut id = 100;
    let (mut validated, mut insecure) = (0, 0);
    for (name, qtype, covers) in POSITIVE {
        id += 1;
        let msg = resolve(&ns, name, *qtype, id);
        assert_eq!(msg.metadata.response_code, ResponseCode::NoError, "{name} {qtype}: {msg}\n{}", unbound.stderr());
        if opt_out && *covers {
            insecure += 1;
        } else {
            validated += 1;
            assert!(
                msg.metadata.authentic_data,
                "{name} {qtype} not validated (AD clear): {msg}\n{}",
                unbound.stderr()
            );
        }
        assert!(msg.answers.iter().any(|record| record.record_type() == *qtype), "{name} {qtype}: {msg}");
    }
    for (name, qtype, rcode, covers) in NEGATIVE {
        id += 1;
        let msg = resolve(&ns, name, *qtype, id);
        assert_eq!(msg.metadata.response_code, *rcode, "{name} {qtype}: {msg}\n{}", unbound.stderr());
        if opt_out && *covers {
            insecure += 1;
        } else {
            validated += 1;
            assert!(msg.metadata.authentic_data, "{name} {qtype} denial not validated: {msg}\n{}", unbound.stderr());
        }
    }
    assert!(validated >= 7, "only {validated} answers validated ({insecure} insecure by opt-out)");
    let _ = unbound.try_wait();
    let _ = daemon.try_wait();
}

#[test]
fn unbound_validates_an_nsec_zone() {
    validate(&[], false);
}

#[test]
fn unbound_validates_an_nsec3_zone() {
    validate(&["-n", "-t", "2", "-s", "beef"], false);
}

#[test]
fn unbound_validates_an_nsec3_opt_out_zone() {
    validate(&["-n", "-p"], true);
}
