//! The XDP program run on crafted frames with BPF_PROG_TEST_RUN (root, no
//! network): every parse branch's verdict, and the answer bytes compared
//! with the daemon's answer to the same query.

use std::{sync::Arc, time::Duration};

use dns_xdp::lab::frame::{Endpoints, udp_frame};
use dns_xdp::{
    config::Preload,
    lab::{XDP_DROP, XDP_PASS, XDP_TX},
    map_writer::slot,
    prepared::PreparedAnswer,
    table::Placement,
    wire::{Transport, respond},
};
use dns_xdp_common::{AnswerKey, AnswerSlot, Verdict, checksum};
use dns_xdp_tests::prog::{Rig, check_reply_frame};
use dns_xdp_tests::wire::spell;
use dns_xdp_tests::{dnssec::sign_zone, temp_dir};
use hickory_proto::{
    op::{Edns, Message, Query, ResponseCode},
    rr::{
        DNSClass, Name, RecordType,
        rdata::opt::{EdnsCode, EdnsOption, NSIDPayload},
    },
};

#[derive(Clone, Copy, Debug)]
enum EdnsCase {
    None,
    Size(u16),
    SizeDo(u16),
    Cookie,
    /// An empty NSID option (`dig +nsid`), with a cookie as dig sends it.
    Nsid,
}

fn query(name: &str, qtype: RecordType, edns: EdnsCase, id: u16) -> Vec<u8> {
    class_query(name, qtype, DNSClass::IN, edns, id)
}

fn class_query(name: &str, qtype: RecordType, class: DNSClass, edns: EdnsCase, id: u16) -> Vec<u8> {
    let mut msg = Message::query();
    msg.metadata.id = id;
    msg.metadata.recursion_desired = true;
    let mut q = Query::query(Name::from_ascii(name).expect("name"), qtype);
    q.set_query_class(class);
    msg.add_query(q);
    let mut e = Edns::new();
    match edns {
        EdnsCase::None => {}
        EdnsCase::Size(size) => {
            e.set_max_payload(size);
            msg.set_edns(e);
        }
        EdnsCase::SizeDo(size) => {
            e.set_max_payload(size);
            e.set_dnssec_ok(true);
            msg.set_edns(e);
        }
        EdnsCase::Cookie => {
            e.set_max_payload(1232);
            e.options_mut().insert(EdnsOption::Unknown(10, vec![1, 2, 3, 4, 5, 6, 7, 8]));
            msg.set_edns(e);
        }
        EdnsCase::Nsid => {
            e.set_max_payload(1232);
            e.set_dnssec_ok(true);
            e.options_mut().insert(EdnsOption::Unknown(10, vec![1, 2, 3, 4, 5, 6, 7, 8]));
            e.options_mut().insert(EdnsOption::NSID(NSIDPayload::new(Vec::new()).expect("empty payload")));
            msg.set_edns(e);
        }
    }
    msg.to_vec().expect("encode query")
}

const EDNS_CASES: [EdnsCase; 5] =
    [EdnsCase::None, EdnsCase::Size(512), EdnsCase::SizeDo(1232), EdnsCase::Cookie, EdnsCase::Nsid];

/// Every name and type the zone preloads, in every spelling, EDNS variant
/// and address family: the XDP answer must equal the daemon's byte for byte.
/// Returns the number of questions, of comparisons, and the differences
/// (empty when identical), so the same function can prove it notices a
/// corrupted entry.
fn differences(rig: &mut Rig, origin: &str) -> (usize, usize, Vec<String>) {
    let origin = Name::from_ascii(origin).expect("origin");
    let questions = rig.catalog.preload_questions(&origin);
    let question_count = questions.len();
    assert!(!questions.is_empty(), "zone has questions to test");
    let mut compared = 0;
    let mut diffs = Vec::new();
    for (qname, qtype) in questions {
        for case in 0..3 {
            for edns in EDNS_CASES {
                for ep in [Endpoints::v4(53), Endpoints::v6(53)] {
                    let spelled = spell(&qname.to_ascii(), case);
                    let q = query(&spelled, qtype, edns, 0x1234 + compared as u16);
                    let expected = rig.daemon_reply(&q);
                    let (action, frame) = rig.run(&udp_frame(&ep, &q, None, 0));
                    compared += 1;
                    let what = format!("{spelled} {qtype} {edns:?} {}", ep.src);
                    if action != XDP_TX {
                        // Only answers that do not fit the client's UDP
                        // limit whole may be left to the daemon (which
                        // shortens or truncates them).
                        let whole = respond(&rig.catalog, &rig.settings, &q, Transport::Tcp).expect("reply").bytes;
                        let client = match edns {
                            EdnsCase::None => None,
                            EdnsCase::Size(s) | EdnsCase::SizeDo(s) => Some(s),
                            EdnsCase::Cookie | EdnsCase::Nsid => Some(1232),
                        };
                        let limit = usize::from(dns_xdp_common::udp_reply_limit(client, rig.settings.edns_udp_payload));
                        // Or answers too long for a slot (a signed zone's
                        // DNSKEY RRset with its RRSIGs).
                        let dnssec_ok = matches!(edns, EdnsCase::SizeDo(_) | EdnsCase::Nsid);
                        if !(action == XDP_PASS && (whole.len() > limit || !fits_a_slot(rig, &q, dnssec_ok))) {
                            diffs.push(format!("{what}: action {action}, expected TX"));
                        }
                        continue;
                    }
                    let reply = match check_reply_frame(&ep, &frame) {
                        Ok(reply) => reply,
                        Err(problem) => {
                            diffs.push(format!("{what}: {problem}"));
                            continue;
                        }
                    };
                    if reply.payload != expected {
                        diffs.push(format!("{what}:\n  xdp    {:02x?}\n  daemon {:02x?}", reply.payload, expected));
                    }
                }
            }
        }
    }
    (question_count, compared, diffs)
}

/// Whether the daemon's answer to `query` fits a slot of the table.
fn fits_a_slot(rig: &Rig, query: &[u8], dnssec_ok: bool) -> bool {
    let reply = respond(&rig.catalog, &rig.settings, query, Transport::Udp).expect("reply");
    reply
        .cacheable
        .is_some_and(|(qname, qtype, _, prepared)| slot::encode(&qname, qtype, dnssec_ok, &prepared).is_some())
}

/// The daemon's answer to `query`, put in the table as the server's offer
/// after a miss puts it there.
fn cache_daemon_answer(rig: &mut Rig, query: &[u8]) {
    let reply = respond(&rig.catalog, &rig.settings, query, Transport::Udp).expect("reply");
    let (qname, qtype, dnssec_ok, prepared) = reply.cacheable.expect("a zone answer the fast path may serve");
    let (_, value) = slot::encode(&qname, qtype, dnssec_ok, &prepared).expect("fits a slot");
    assert_ne!(rig.writer.fast_path_mut().insert(&value, false), Placement::Full);
}

/// A zone small enough that its signed answers fit a slot: its name
/// server is out of zone, so positive answers carry no glue.
const SIGNED_ZONE: &str = "$ORIGIN sig.test.
@ 3600 SOA ns.other.test. hostmaster.other.test. 1 7200 3600 1209600 300
@ 3600 NS ns.other.test.
www 3600 A 198.18.10.80
www 3600 AAAA 2001:db8:10::80
mail 3600 MX 10 www.sig.test.
_dmarc 3600 TXT \"v=DMARC1; p=reject\"
";

/// [`SIGNED_ZONE`] signed with `ldns-signzone` and `sign_args` in `dir`,
/// loaded in a rig (every question preloaded, with and without DO).
fn signed_rig(dir: &std::path::Path, sign_args: &[&str]) -> Rig {
    let signed = sign_zone(dir, "sig.test.", SIGNED_ZONE, sign_args);
    // The rig takes the origin from the file's name.
    let served = dir.join("sig.test.zone");
    std::fs::rename(&signed.path, &served).expect("renaming the signed zone");
    Rig::new(&[served.to_str().expect("UTF-8 path")])
}

/// A signed zone (NSEC, then NSEC3): the DO and non-DO answers are entries
/// of their own, each byte for byte the daemon's; the DO answers carry
/// their RRSIGs, the others none.
#[test]
fn signed_zone_answers_equal_daemon_answers_with_and_without_do() {
    for (chain, args) in [("NSEC", &[][..]), ("NSEC3", &["-n"][..])] {
        let dir = temp_dir("xdp-signed");
        let mut rig = signed_rig(dir.path(), args);
        let before = rig.counters()["tx_answer"];
        let (questions, compared, diffs) = differences(&mut rig, "sig.test.");
        assert_eq!(compared, questions * 30);
        assert!(diffs.is_empty(), "{chain}: {} of {compared} differ:\n{}", diffs.len(), diffs.join("\n"));
        assert!(rig.counters()["tx_answer"] > before + compared as u64 / 2, "{chain}: most answers from XDP");
        for (edns, signed) in [(EdnsCase::SizeDo(1232), true), (EdnsCase::Size(1232), false)] {
            let q = query("www.sig.test.", RecordType::A, edns, 0x0d0);
            let (action, frame) = rig.run(&udp_frame(&Endpoints::v4(53), &q, None, 0));
            assert_eq!(action, XDP_TX, "{chain} {edns:?}");
            let reply = check_reply_frame(&Endpoints::v4(53), &frame).expect("reply frame");
            assert_eq!(reply.payload, rig.daemon_reply(&q), "{chain} {edns:?}");
            let msg = Message::from_vec(&reply.payload).expect("parses");
            let rrsigs = msg.answers.iter().filter(|r| r.record_type() == RecordType::RRSIG).count();
            assert_eq!(rrsigs > 0, signed, "{chain} {edns:?}: {msg:?}");
            assert_eq!(msg.edns.expect("OPT").flags().dnssec_ok, signed, "DO echoed");
        }
    }
}

/// Negative answers of a signed zone for names not preloaded (NXDOMAIN
/// with its NSEC proofs, NODATA with its NSEC or NSEC3): the first query
/// is the daemon's, and once it answered, XDP serves the same bytes, in
/// any spelling. An NSEC3 NXDOMAIN (three NSEC3 and four RRSIGs) is longer
/// than a slot's body and stays with the daemon.
#[test]
fn signed_negative_answers_are_served_once_the_daemon_answered() {
    for (chain, args) in [("NSEC", &[][..]), ("NSEC3", &["-n"][..])] {
        let dir = temp_dir("xdp-signed-negative");
        let mut rig = signed_rig(dir.path(), args);
        let mut questions = vec![("www.sig.test.", RecordType::SRV, ResponseCode::NoError)];
        if chain == "NSEC" {
            questions.push(("nothere.sig.test.", RecordType::A, ResponseCode::NXDomain));
            questions.push(("deep.nothere.sig.test.", RecordType::AAAA, ResponseCode::NXDomain));
        } else {
            let q = query("nothere.sig.test.", RecordType::A, EdnsCase::SizeDo(1232), 0x0e3);
            assert!(!fits_a_slot(&rig, &q, true), "an NSEC3 NXDOMAIN is longer than a slot");
            assert_eq!(rig.run(&udp_frame(&Endpoints::v4(53), &q, None, 0)).0, XDP_PASS);
        }
        for (name, qtype, rcode) in questions {
            let q = query(name, qtype, EdnsCase::SizeDo(1232), 0x0e0);
            let frame = udp_frame(&Endpoints::v4(53), &q, None, 0);
            assert_eq!(rig.run(&frame).0, XDP_PASS, "{chain} {name} {qtype}: not in the table yet");
            cache_daemon_answer(&mut rig, &q);
            for case in 0..3 {
                let spelled = query(&spell(name, case), qtype, EdnsCase::SizeDo(1232), 0x0e1);
                let (action, out) = rig.run(&udp_frame(&Endpoints::v6(53), &spelled, None, 0));
                assert_eq!(action, XDP_TX, "{chain} {name} {qtype} case {case}");
                let reply = check_reply_frame(&Endpoints::v6(53), &out).expect("reply frame");
                assert_eq!(reply.payload, rig.daemon_reply(&spelled), "{chain} {name} {qtype} case {case}");
                let msg = Message::from_vec(&reply.payload).expect("parses");
                assert_eq!(msg.metadata.response_code, rcode, "{chain} {name}");
                let proofs = msg
                    .authorities
                    .iter()
                    .filter(|r| matches!(r.record_type(), RecordType::NSEC | RecordType::NSEC3))
                    .count();
                assert!(proofs > 0, "{chain} {name} {qtype}: a denial proof: {msg:?}");
            }
            // The non-DO question is another entry, still the daemon's.
            let plain = query(name, qtype, EdnsCase::Size(1232), 0x0e2);
            assert_eq!(rig.run(&udp_frame(&Endpoints::v4(53), &plain, None, 0)).0, XDP_PASS, "{chain} {name}");
        }
    }
}

#[test]
fn xdp_answers_equal_daemon_answers() {
    let mut rig = Rig::new(&["zones/example.test.zone"]);
    let (questions, compared, diffs) = differences(&mut rig, "example.test.");
    // Every name and type: 3 spellings x 5 EDNS variants x 2 families.
    assert_eq!(compared, questions * 30);
    assert!(questions >= 20, "only {questions} questions");
    assert!(diffs.is_empty(), "{} of {compared} differ:\n{}", diffs.len(), diffs.join("\n"));
}

/// With an identity configured (`--nsid`), a query asking for NSID gets the
/// daemon's option from XDP, byte for byte, for every question of the zone;
/// and `id.server.`/`hostname.bind.` CH TXT are answered from the table.
#[test]
fn nsid_and_chaos_identity_answers_equal_daemon_answers() {
    let mut rig = Rig::with_identity(&["zones/example.test.zone"], 4096, Preload::All, Some(b"pop-ams1"));
    let (questions, compared, diffs) = differences(&mut rig, "example.test.");
    assert_eq!(compared, questions * 30);
    assert!(diffs.is_empty(), "{} of {compared} differ:\n{}", diffs.len(), diffs.join("\n"));

    let before = rig.counters()["tx_answer"];
    let mut answered = 0;
    for name in ["id.server.", "hostname.bind.", "ID.Server.", "HOSTNAME.BIND."] {
        for edns in EDNS_CASES {
            for ep in [Endpoints::v4(53), Endpoints::v6(53)] {
                let q = class_query(name, RecordType::TXT, DNSClass::CH, edns, 0x5150);
                let expected = rig.daemon_reply(&q);
                let (action, frame) = rig.run(&udp_frame(&ep, &q, None, 0));
                assert_eq!(action, XDP_TX, "{name} CH TXT {edns:?} {} not answered by XDP", ep.src);
                let reply = check_reply_frame(&ep, &frame).unwrap_or_else(|p| panic!("{name} {edns:?}: {p}"));
                assert_eq!(reply.payload, expected, "{name} CH TXT {edns:?} {}: XDP and daemon differ", ep.src);
                let msg = Message::from_vec(&reply.payload).expect("reply parses");
                assert_eq!(msg.answers[0].dns_class, DNSClass::CH);
                assert!(format!("{}", msg.answers[0].data).contains("pop-ams1"), "{msg:?}");
                answered += 1;
            }
        }
    }
    assert_eq!(rig.counters()["tx_answer"], before + answered, "the hit counter counts the identity answers");
    // Other CH questions are the daemon's (it refuses them), as is CH ANY.
    for (name, qtype) in [("version.bind.", RecordType::TXT), ("id.server.", RecordType::ANY)] {
        let q = class_query(name, qtype, DNSClass::CH, EdnsCase::None, 7);
        assert_eq!(rig.run(&udp_frame(&Endpoints::v4(53), &q, None, 0)).0, XDP_PASS, "{name} {qtype}");
    }
}

/// Without an identity, the CH names are not in the table and an NSID query
/// gets no option (the daemon's reply is compared in the test above).
#[test]
fn without_identity_chaos_questions_go_to_the_daemon() {
    let mut rig = Rig::new(&["zones/example.test.zone"]);
    let q = class_query("id.server.", RecordType::TXT, DNSClass::CH, EdnsCase::Nsid, 7);
    assert_eq!(rig.run(&udp_frame(&Endpoints::v4(53), &q, None, 0)).0, XDP_PASS);
    let q = query("www.example.test.", RecordType::A, EdnsCase::Nsid, 8);
    let (action, frame) = rig.run(&udp_frame(&Endpoints::v4(53), &q, None, 0));
    assert_eq!(action, XDP_TX);
    let reply = check_reply_frame(&Endpoints::v4(53), &frame).expect("reply frame");
    assert_eq!(reply.payload, rig.daemon_reply(&q));
    let msg = Message::from_vec(&reply.payload).expect("parses");
    assert!(msg.edns.expect("OPT").option(EdnsCode::NSID).is_none(), "no identity, no NSID option");
}

#[test]
fn a_corrupted_entry_is_noticed() {
    let mut rig = Rig::new(&["zones/example.test.zone"]);
    // Flip one byte of one answer in the map, as a bug in the fast path
    // would: the differential check must report exactly that question.
    let fast_path = rig.writer.fast_path_mut();
    let entries = fast_path.entries();
    let mut value = entries.into_iter().find(|v| v.key.qtype == u16::from(RecordType::A)).expect("an A entry");
    let body = value.body_mut();
    let last = body.len() - 1;
    body[last] ^= 0x01;
    assert_eq!(fast_path.insert(&value, false), Placement::Replaced);
    let (_, _, diffs) = differences(&mut rig, "example.test.");
    assert!(!diffs.is_empty(), "a corrupted answer went unnoticed");
    assert!(diffs.iter().all(|d| d.to_ascii_lowercase().contains(" a ")), "only A answers differ: {diffs:?}");
}

#[test]
fn answers_in_either_slot_are_served_and_unserved_ones_replaced_first() {
    // A table of two slots, empty: every question may go in slot 0 or 1.
    let mut rig = Rig::with_table(&["zones/example.test.zone"], 2, Preload::None);
    let origin = Name::from_ascii("example.test.").expect("origin");
    let mut entries = Vec::new();
    for (qname, qtype) in rig.catalog.preload_questions(&origin) {
        let answer = rig.catalog.lookup(&qname, qtype);
        if !answer.fast_path_servable() {
            continue;
        }
        let prepared = PreparedAnswer::encode(&qname, qtype, &answer).expect("encodes");
        let (key, value) = slot::encode(&qname, qtype, false, &prepared).expect("fits the fast path");
        entries.push((qname, qtype, key, value));
    }
    // Two questions that prefer the same slot: the second lands in its
    // other slot, which the program must look in too.
    let (first, second) = {
        let preferred = |e: &(Name, RecordType, AnswerKey, AnswerSlot)| e.2.slots(1)[0];
        let a = entries.iter().position(|e| preferred(e) == 0).expect("a question preferring slot 0");
        let b = entries.iter().rposition(|e| preferred(e) == 0).expect("another");
        assert_ne!(a, b, "two questions preferring slot 0");
        (entries[a].clone(), entries[b].clone())
    };
    let third = entries.iter().find(|e| e.2 != first.2 && e.2 != second.2).expect("a third question").clone();
    let ask = |rig: &mut Rig, e: &(Name, RecordType, AnswerKey, AnswerSlot)| {
        let q = query(&e.0.to_ascii(), e.1, EdnsCase::None, 0x4242);
        let (action, frame) = rig.run(&udp_frame(&Endpoints::v4(53), &q, None, 0));
        if action != XDP_TX {
            return (action, None);
        }
        let reply = check_reply_frame(&Endpoints::v4(53), &frame).expect("well-formed reply");
        assert_eq!(reply.payload, rig.daemon_reply(&q), "{} {}", e.0, e.1);
        (action, Some(()))
    };
    let fast_path = rig.writer.fast_path_mut();
    assert_eq!(fast_path.insert(&first.3, true), Placement::Added);
    assert_eq!(fast_path.insert(&second.3, true), Placement::Added);
    // The second question's answer sits in its other slot.
    assert_eq!(ask(&mut rig, &second).0, XDP_TX);
    assert_eq!(rig.writer.fast_path().get(&second.2).expect("held").referenced, 1, "a served answer is marked");
    assert_eq!(rig.writer.fast_path().get(&first.2).expect("held").referenced, 0);
    // The table is full; the answer not served since it was written goes.
    let fast_path = rig.writer.fast_path_mut();
    assert_eq!(fast_path.insert(&third.3, true), Placement::Evicted(first.2));
    assert_eq!(ask(&mut rig, &second).0, XDP_TX);
    assert_eq!(ask(&mut rig, &third).0, XDP_TX);
    assert_eq!(ask(&mut rig, &first).0, XDP_PASS, "a replaced answer is left to the daemon");
}

#[test]
fn answers_rewritten_while_served_are_never_mixed() {
    let mut rig = Rig::new(&["zones/example.test.zone"]);
    let qname = Name::from_ascii("www.example.test.").expect("name");
    let prepared =
        PreparedAnswer::encode(&qname, RecordType::A, &rig.catalog.lookup(&qname, RecordType::A)).expect("encodes");
    let (key, original) = slot::encode(&qname, RecordType::A, false, &prepared).expect("fits");
    // Another answer to the same question: one byte shorter, every byte
    // different, so any mix of the two shows in the reply.
    let body: Vec<u8> = original.body()[1..].iter().map(|b| !b).collect();
    let variant = AnswerSlot::new(0, key, original.header(), original.qname(), &body).expect("fits");
    let frame =
        udp_frame(&Endpoints::v4(53), &query("www.example.test.", RecordType::A, EdnsCase::None, 0x77), None, 0);
    let reply_with = |rig: &mut Rig, value: &AnswerSlot| {
        rig.writer.fast_path_mut().insert(value, false);
        let (action, reply) = rig.run(&frame);
        assert_eq!(action, XDP_TX);
        reply
    };
    let expected = [reply_with(&mut rig, &original), reply_with(&mut rig, &variant)];
    assert_ne!(expected[0], expected[1]);

    // A second writer on the same table, as the daemon's writer thread is,
    // rewrites the slot back and forth while the program serves it.
    let map_id = rig.writer.fast_path().answer_map_id().expect("a kernel map");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let map = aya::maps::MapData::from_id(map_id).expect("open the table by id");
            let mut table = dns_xdp::table::AnswerTable::new(map).expect("map the table");
            let mut writes = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && writes < 50_000_000 {
                let value = if writes.is_multiple_of(2) { &original } else { &variant };
                assert_eq!(table.insert(value, false), Placement::Replaced);
                writes += 1;
            }
            writes
        })
    };
    let (mut served, mut torn) = ([0u32; 2], 0u32);
    let started = std::time::Instant::now();
    for _ in 0..100_000 {
        if started.elapsed() > Duration::from_secs(20) {
            break;
        }
        let (action, reply) = rig.run(&frame);
        match action {
            XDP_TX => match expected.iter().position(|e| *e == reply) {
                Some(which) => served[which] += 1,
                None => panic!("a reply mixing two answers was sent: {reply:02x?}"),
            },
            XDP_DROP => torn += 1,
            other => panic!("action {other}"),
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let writes = writer.join().expect("writer");
    eprintln!("{writes} rewrites; served {served:?}; dropped as torn {torn}");
    assert!(served[0] > 0 && served[1] > 0, "both answers were served while rewritten: {served:?}");
}

/// One row of the verdict table: a frame, what the program must do with
/// it, and the verdict it must count.
struct Case {
    name: &'static str,
    frame: Vec<u8>,
    action: u32,
    verdict: Verdict,
}

fn edit(mut frame: Vec<u8>, f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    f(&mut frame);
    frame
}

/// Recomputes the IPv4 header checksum after an edit (IHL 5 assumed unless
/// options were added).
fn fix_ipv4_checksum(frame: &mut [u8], ip_off: usize) {
    let ihl = usize::from(frame[ip_off] & 0x0f) * 4;
    frame[ip_off + 10] = 0;
    frame[ip_off + 11] = 0;
    let sum = checksum::sum_bytes(&frame[ip_off..ip_off + ihl]);
    frame[ip_off + 10..ip_off + 12].copy_from_slice(&checksum::complement(sum).to_be_bytes());
}

#[test]
fn verdict_table() {
    let mut rig = Rig::new(&["zones/example.test.zone"]);
    let v4 = Endpoints::v4(53);
    let www = query("www.example.test.", RecordType::A, EdnsCase::None, 7);
    let base = udp_frame(&v4, &www, None, 0);
    const DNS: usize = 14 + 20 + 8;
    let cases = vec![
        Case { name: "plain A query", frame: base.clone(), action: XDP_TX, verdict: Verdict::TxAnswer },
        Case {
            name: "IPv6",
            frame: udp_frame(&Endpoints::v6(53), &www, None, 0),
            action: XDP_TX,
            verdict: Verdict::TxAnswer,
        },
        Case {
            name: "802.1Q tag",
            frame: udp_frame(&v4, &www, Some(100), 0),
            action: XDP_TX,
            verdict: Verdict::TxAnswer,
        },
        Case {
            name: "Ethernet padding after the IP packet",
            frame: udp_frame(&v4, &www, None, 6),
            action: XDP_TX,
            verdict: Verdict::TxAnswer,
        },
        Case {
            name: "other port",
            frame: udp_frame(&Endpoints::v4(5353), &www, None, 0),
            action: XDP_PASS,
            verdict: Verdict::PassNotDns,
        },
        Case {
            name: "other address",
            frame: udp_frame(&Endpoints { dst: "198.18.0.9".parse().expect("ip"), ..v4 }, &www, None, 0),
            action: XDP_PASS,
            verdict: Verdict::PassNotDns,
        },
        Case {
            name: "stacked VLAN tags (QinQ)",
            frame: edit(udp_frame(&v4, &www, Some(100), 0), |f| {
                f.splice(16..16, [0x81, 0x00, 0x00, 0x65]);
            }),
            action: XDP_PASS,
            verdict: Verdict::PassUnusualHeaders,
        },
        Case {
            name: "ARP",
            frame: edit(base.clone(), |f| f[12..14].copy_from_slice(&[0x08, 0x06])),
            action: XDP_PASS,
            verdict: Verdict::PassNotDns,
        },
        Case {
            name: "IPv4 fragment",
            frame: edit(base.clone(), |f| {
                f[20] = 0x20; // MF
                fix_ipv4_checksum(f, 14);
            }),
            action: XDP_PASS,
            verdict: Verdict::PassFragment,
        },
        Case {
            name: "IPv4 options",
            frame: edit(base.clone(), |f| {
                f.splice(34..34, [1, 1, 1, 0]); // NOP NOP NOP EOL
                f[14] = 0x46;
                let total = u16::from_be_bytes([f[16], f[17]]) + 4;
                f[16..18].copy_from_slice(&total.to_be_bytes());
                fix_ipv4_checksum(f, 14);
            }),
            action: XDP_PASS,
            verdict: Verdict::PassUnusualHeaders,
        },
        Case {
            name: "IPv6 ethertype, header of version 4",
            frame: edit(udp_frame(&Endpoints::v6(53), &www, None, 0), |f| f[14] = 0x40),
            action: XDP_PASS,
            verdict: Verdict::PassUnusualHeaders,
        },
        Case {
            name: "response (QR=1) to the service",
            frame: edit(base.clone(), |f| f[DNS + 2] |= 0x80),
            action: XDP_DROP,
            verdict: Verdict::DropMalformed,
        },
        Case {
            name: "UDP length beyond the IP packet",
            frame: edit(base.clone(), |f| {
                let l = u16::from_be_bytes([f[38], f[39]]) + 1;
                f[38..40].copy_from_slice(&l.to_be_bytes());
            }),
            action: XDP_DROP,
            verdict: Verdict::DropMalformed,
        },
        Case {
            name: "IP length beyond the frame",
            frame: edit(base.clone(), |f| {
                let l = u16::from_be_bytes([f[16], f[17]]) + 40;
                f[16..18].copy_from_slice(&l.to_be_bytes());
                fix_ipv4_checksum(f, 14);
            }),
            action: XDP_DROP,
            verdict: Verdict::DropMalformed,
        },
        Case {
            name: "DNS shorter than a header",
            frame: udp_frame(&v4, &www[..11], None, 0),
            action: XDP_DROP,
            verdict: Verdict::DropMalformed,
        },
        Case {
            name: "opcode NOTIFY",
            frame: edit(base.clone(), |f| f[DNS + 2] |= 4 << 3),
            action: XDP_PASS,
            verdict: Verdict::PassHeader,
        },
        Case {
            name: "TC set in the query",
            frame: edit(base.clone(), |f| f[DNS + 2] |= 0x02),
            action: XDP_PASS,
            verdict: Verdict::PassHeader,
        },
        Case {
            name: "two questions",
            frame: edit(base.clone(), |f| f[DNS + 5] = 2),
            action: XDP_PASS,
            verdict: Verdict::PassHeader,
        },
        Case {
            name: "class CH, not an identity name",
            frame: udp_frame(
                &v4,
                &edit(www.clone(), |q| {
                    let n = q.len();
                    q[n - 1] = 3;
                }),
                None,
                0,
            ),
            action: XDP_PASS,
            verdict: Verdict::PassMiss,
        },
        Case {
            name: "class HS",
            frame: udp_frame(
                &v4,
                &edit(www.clone(), |q| {
                    let n = q.len();
                    q[n - 1] = 4;
                }),
                None,
                0,
            ),
            action: XDP_PASS,
            verdict: Verdict::PassQclass,
        },
        Case {
            name: "name not in the map",
            frame: udp_frame(&v4, &query("nosuch.example.test.", RecordType::A, EdnsCase::None, 8), None, 0),
            action: XDP_PASS,
            verdict: Verdict::PassMiss,
        },
        Case {
            name: "type not in the map",
            frame: udp_frame(&v4, &query("www.example.test.", RecordType::CAA, EdnsCase::None, 9), None, 0),
            action: XDP_PASS,
            verdict: Verdict::PassMiss,
        },
        Case {
            name: "EDNS version 1",
            frame: udp_frame(
                &v4,
                &edit(query("www.example.test.", RecordType::A, EdnsCase::Size(1232), 10), |q| {
                    let n = q.len();
                    q[n - 5] = 1; // version byte of the OPT TTL
                }),
                None,
                0,
            ),
            action: XDP_PASS,
            verdict: Verdict::PassEdns,
        },
        Case {
            name: "EDNS NSID option with data (RFC 5001 says empty)",
            frame: udp_frame(
                &v4,
                &{
                    let mut msg =
                        Message::from_vec(&query("www.example.test.", RecordType::A, EdnsCase::Size(1232), 11))
                            .expect("parse");
                    let mut e = Edns::new();
                    e.set_max_payload(1232);
                    e.options_mut().insert(EdnsOption::Unknown(3, vec![1, 2]));
                    msg.set_edns(e);
                    msg.to_vec().expect("encode")
                },
                None,
                0,
            ),
            action: XDP_PASS,
            verdict: Verdict::PassEdns,
        },
        Case {
            name: "EDNS empty NSID option",
            frame: udp_frame(&v4, &query("www.example.test.", RecordType::A, EdnsCase::Nsid, 11), None, 0),
            action: XDP_TX,
            verdict: Verdict::TxAnswer,
        },
        Case {
            name: "EDNS with a cookie",
            frame: udp_frame(&v4, &query("www.example.test.", RecordType::A, EdnsCase::Cookie, 12), None, 0),
            action: XDP_TX,
            verdict: Verdict::TxAnswer,
        },
        Case {
            name: "compressed qname",
            frame: udp_frame(
                &v4,
                &edit(www.clone(), |q| {
                    q.splice(12..12, [0xc0, 0x0c]);
                }),
                None,
                0,
            ),
            action: XDP_PASS,
            verdict: Verdict::PassQname,
        },
        Case {
            name: "qname running past the message",
            frame: udp_frame(&v4, &www[..20], None, 0),
            action: XDP_PASS,
            verdict: Verdict::PassQname,
        },
    ];
    let mut failures = Vec::new();
    for case in &cases {
        let before = rig.counters();
        let (action, frame) = rig.run(&case.frame);
        let after = rig.counters();
        if action != case.action {
            failures.push(format!("{}: action {action}, expected {}", case.name, case.action));
        } else if action == XDP_PASS && frame != case.frame {
            failures.push(format!("{}: passed frame was modified", case.name));
        }
        // Exactly the expected verdict's counter rose, by one.
        let risen: Vec<String> = Verdict::NAMES
            .iter()
            .filter_map(|name| {
                let delta = after[name] - before[name];
                (delta != 0).then(|| format!("{name} +{delta}"))
            })
            .collect();
        let expected = format!("{} +1", case.verdict.name());
        if risen != [expected.as_str()] {
            failures.push(format!("{}: counters {risen:?}, expected [{expected}]", case.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn vlan_reply_keeps_the_tag_and_matches_the_daemon() {
    let mut rig = Rig::new(&["zones/example.test.zone"]);
    let ep = Endpoints::v6(53);
    let q = query("Mail.Example.Test.", RecordType::AAAA, EdnsCase::SizeDo(4096), 99);
    let (action, frame) = rig.run(&udp_frame(&ep, &q, Some(42), 0));
    assert_eq!(action, XDP_TX);
    let reply = check_reply_frame(&ep, &frame).expect("a well-formed reply");
    assert_eq!(reply.vlan, Some(42));
    assert_eq!(reply.payload, rig.daemon_reply(&q));
}

/// A query with a COOKIE option: `client_cookie` then `server_cookie`.
fn cookie_query(name: &str, cookie: &[u8], id: u16) -> Vec<u8> {
    let mut msg = Message::query();
    msg.metadata.id = id;
    msg.add_query(Query::query(Name::from_ascii(name).expect("name"), RecordType::A));
    let mut e = Edns::new();
    e.set_max_payload(1232);
    e.options_mut().insert(EdnsOption::Unknown(10, cookie.to_vec()));
    msg.set_edns(e);
    msg.to_vec().expect("encode query")
}

/// The COOKIE option data of a reply.
fn reply_cookie(payload: &[u8]) -> Vec<u8> {
    let msg = Message::from_vec(payload).expect("reply parses");
    match msg.edns.as_ref().and_then(|e| e.option(EdnsCode::Cookie)) {
        Some(EdnsOption::Unknown(_, data)) => data.clone(),
        other => panic!("no cookie in the reply: {other:?}"),
    }
}

/// DNS cookies from the fast path: a client cookie alone and a valid server
/// cookie (current secret, previous secret) are answered with a fresh
/// server cookie, byte for byte the daemon's; a tampered, stale or foreign
/// server cookie is passed to the daemon untouched. Each verdict counted.
#[test]
fn cookie_answers_equal_daemon_answers() {
    use dns_xdp::cookies::{Peer, client_addr, unix_now};
    use dns_xdp_common::cookie::{self, Received, Secrets};
    const PREVIOUS: [u8; 16] = *b"the-old-secret!!";
    let secrets = Secrets { current: *b"the-new-secret!!", previous: Some(PREVIOUS) };
    let mut rig = Rig::with_cookies(&["zones/example.test.zone"], secrets);
    let client_cookie = *b"\x24\x64\xc4\xab\xcf\x10\xc9\x57";
    for ep in [Endpoints::v4(53), Endpoints::v6(53)] {
        let client = client_addr(ep.src);
        let serve = |rig: &mut Rig, cookie: &[u8], verdict: &str, expect: Received| -> Vec<u8> {
            let q = cookie_query("www.example.test.", cookie, 0x5151);
            let before = rig.counters();
            let earliest = unix_now() - 1;
            let (action, frame) = rig.run(&udp_frame(&ep, &q, None, 0));
            let latest = unix_now();
            let what = format!("{verdict} from {}", ep.src);
            assert_eq!(action, XDP_TX, "{what}");
            assert_eq!(rig.counters()[verdict], before[verdict] + 1, "{what}: counter");
            let reply = check_reply_frame(&ep, &frame).unwrap_or_else(|p| panic!("{what}: {p}"));
            // The program's clock and the daemon's may be on either side of
            // a second: one of the seconds the run spanned must give the
            // same bytes.
            let same = (earliest..=latest).any(|now| {
                let (daemon, daemon_verdict) = rig.daemon_reply_from(&q, &Peer { client, now });
                assert_eq!(daemon_verdict, Some(expect), "{what}: the daemon's verdict");
                daemon == reply.payload
            });
            assert!(same, "{what}: the XDP reply differs from the daemon's\n  xdp {:02x?}", reply.payload);
            reply_cookie(&reply.payload)
        };
        let first = serve(&mut rig, &client_cookie, "tx_cookie_client_only", Received::ClientOnly);
        assert_eq!(first.len(), 24);
        assert_eq!(first[..8], client_cookie);
        let second = serve(&mut rig, &first, "tx_cookie", Received::Valid);
        assert_eq!(second[..8], client_cookie);
        // A cookie from before the roll-over is still accepted.
        let old = cookie::answer_data(&PREVIOUS, &client_cookie, &client, unix_now() - 600);
        let renewed = serve(&mut rig, &old, "tx_cookie", Received::Valid);
        assert!(cookie::valid_with(&secrets.current, renewed[..].try_into().unwrap(), &client, unix_now()));

        // Server cookies the fast path leaves to the daemon.
        let mut tampered = second.clone();
        tampered[20] ^= 0x40;
        let stale = cookie::answer_data(&secrets.current, &client_cookie, &client, unix_now() - 3700);
        let other_client =
            cookie::answer_data(&secrets.current, &client_cookie, &client_addr(Endpoints::v4(1).dst), unix_now());
        let unknown_secret = cookie::answer_data(b"another-secret!!", &client_cookie, &client, unix_now());
        let foreign_length = [client_cookie, [7; 8]].concat();
        for (what, cookie) in [
            ("tampered", &tampered[..]),
            ("stale", &stale[..]),
            ("another client's", &other_client[..]),
            ("another secret's", &unknown_secret[..]),
            ("16 bytes", &foreign_length[..]),
        ] {
            let q = cookie_query("www.example.test.", cookie, 0x5252);
            let frame = udp_frame(&ep, &q, None, 0);
            let before = rig.counters();
            let (action, out) = rig.run(&frame);
            assert_eq!(action, XDP_PASS, "{what} cookie from {}", ep.src);
            assert_eq!(out, frame, "{what}: a passed query is untouched");
            assert_eq!(rig.counters()["pass_cookie"], before["pass_cookie"] + 1, "{what}");
            let (_, verdict) = rig.daemon_reply_from(&q, &Peer::now(ep.src));
            assert_eq!(verdict, Some(Received::Invalid), "{what}: the daemon's verdict");
        }
    }
}
