//! The XDP program on a seeded stream of mutated queries (BPF_PROG_TEST_RUN,
//! root, no network): bit flips, truncations, length and count fields,
//! label and pointer bytes, EDNS option lengths, VLAN tags and IP headers.
//! Every `XDP_TX` output must be a well-formed reply frame whose DNS message
//! parses with hickory-proto and equals, byte for byte, the daemon's answer
//! to the same mutated query; every passed frame must leave unmodified; the
//! program's verdict counters must account for every packet.
//!
//! Reproduce or vary a run with `DNS_XDP_MUTATION_SEED=<u64>` (printed at
//! the start) and `DNS_XDP_MUTATION_COUNT=<n>`; each packet's mutations
//! derive from the seed and its index alone, so a failing index reported by
//! one run is the same packet in any run with that seed.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Instant;

use dns_xdp::lab::frame::{Endpoints, parse_udp_frame, udp_frame};
use dns_xdp::lab::{XDP_DROP, XDP_PASS, XDP_TX};
use dns_xdp_common::{Verdict, checksum};
use dns_xdp_tests::prog::{Rig, check_reply_frame};
use dns_xdp_tests::wire::spell;
use hickory_proto::{
    op::{Edns, Message, Query},
    rr::{DNSClass, Name, RecordType, rdata::opt::EdnsOption},
};

/// At least a million packets per run (the bar), about a minute in
/// the debug build on one core.
const DEFAULT_COUNT: u64 = 1_000_000;
const DEFAULT_SEED: u64 = 0x15_d05_a11;

/// SplitMix64: a few lines, and its stream for a seed never changes with a
/// dependency upgrade, so a seed in a bug report stays reproducible. A
/// `Cell` so that one expression may draw several values.
struct Rng(Cell<u64>);

impl Rng {
    /// The generator of packet `index` of the run seeded `seed`.
    fn for_packet(seed: u64, index: u64) -> Self {
        let rng = Rng(Cell::new(seed ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
        rng.next();
        rng
    }

    fn next(&self) -> u64 {
        self.0.set(self.0.get().wrapping_add(0x9e37_79b9_7f4a_7c15));
        let mut z = self.0.get();
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True with probability `percent`/100.
    fn chance(&self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn byte(&self) -> u8 {
        self.next() as u8
    }

    fn pick<T: Copy>(&self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(text) => {
            let text = text.trim();
            let parsed = match text.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => text.parse(),
            };
            parsed.unwrap_or_else(|e| panic!("{name}={text}: {e}"))
        }
        Err(_) => default,
    }
}

/// One unmutated query: its DNS message and where its OPT record starts.
struct Seed {
    message: Vec<u8>,
    qname_len: usize,
    opt: Option<usize>,
}

/// The queries mutations start from: every preloaded question (answers the
/// program holds) and a few misses, each without EDNS, with a plain OPT,
/// with DO, and with a cookie.
fn seeds(rig: &Rig) -> Vec<Seed> {
    let origin = Name::from_ascii("example.test.").expect("origin");
    let mut questions = rig.catalog.preload_questions(&origin);
    for miss in ["nosuch.example.test.", "a.b.c.www.example.test.", "example.invalid."] {
        questions.push((Name::from_ascii(miss).expect("name"), RecordType::A));
    }
    let mut out = Vec::new();
    for (i, (qname, qtype)) in questions.iter().enumerate() {
        for edns in 0..4 {
            let mut msg = Message::query();
            msg.metadata.id = i as u16;
            msg.metadata.recursion_desired = true;
            let mut q = Query::query(Name::from_ascii(spell(&qname.to_ascii(), i)).expect("name"), *qtype);
            q.set_query_class(DNSClass::IN);
            msg.add_query(q);
            if edns > 0 {
                let mut e = Edns::new();
                e.set_max_payload(if edns == 1 { 512 } else { 1232 });
                e.set_dnssec_ok(edns == 2);
                if edns == 3 {
                    e.options_mut().insert(EdnsOption::Unknown(10, vec![7; 8]));
                }
                msg.set_edns(e);
            }
            let message = msg.to_vec().expect("encode query");
            let qname_len = qname.to_ascii().trim_end_matches('.').len() + 2 - usize::from(qname.is_root());
            let question_end = 12 + qname_len + 4;
            out.push(Seed { opt: (edns > 0).then_some(question_end), qname_len, message });
        }
    }
    out
}

/// Mutates a DNS message in place; returns what it did, for the report.
fn mutate_message(rng: &Rng, seed: &Seed, msg: &mut Vec<u8>) -> Vec<String> {
    let mut done = Vec::new();
    for _ in 0..1 + rng.below(3) {
        if msg.is_empty() {
            break;
        }
        let len = msg.len();
        let qname = 12..(12 + seed.qname_len).min(len);
        match rng.below(12) {
            0 => {
                let (at, bit) = (rng.below(len), rng.below(8));
                msg[at] ^= 1 << bit;
                done.push(format!("flip bit {bit} of byte {at}"));
            }
            1 => {
                let at = rng.below(len);
                msg[at] = rng.pick(&[0, 1, 0x3f, 0x40, 0x7f, 0x80, 0xc0, 0xc1, 0xff, rng.byte()]);
                done.push(format!("byte {at} = {:#04x}", msg[at]));
            }
            2 => {
                let keep = rng.below(len);
                msg.truncate(keep);
                done.push(format!("truncate to {keep}"));
            }
            3 if len >= 12 => {
                let field = 4 + 2 * rng.below(4);
                let value: u16 = rng.pick(&[0, 1, 2, 3, 0x100, 0xffff, rng.next() as u16]);
                msg[field..field + 2].copy_from_slice(&value.to_be_bytes());
                done.push(format!("count at {field} = {value}"));
            }
            4 if !qname.is_empty() => {
                // A label length or pointer byte inside the qname.
                let at = qname.start + rng.below(qname.len());
                let old = msg[at];
                msg[at] = rng.pick(&[
                    0,
                    0x3f,
                    0x40,
                    0x80,
                    0xc0,
                    0xc0 | (rng.byte() & 0x3f),
                    old.wrapping_add(1),
                    old.wrapping_sub(1),
                    rng.byte(),
                ]);
                done.push(format!("qname byte {at} {old:#04x} -> {:#04x}", msg[at]));
            }
            5 if qname.len() > 2 => {
                // A compression pointer where a label was.
                let at = qname.start + rng.below(qname.len() - 1);
                let target = rng.pick(&[0x0c, 0x00, at as u8, rng.byte()]);
                msg[at] = 0xc0;
                msg[at + 1] = target;
                done.push(format!("pointer at {at} to {target}"));
            }
            6 if seed.opt.is_some_and(|opt| opt + 11 <= len) => {
                let opt = seed.opt.expect("checked");
                let (what, at) = rng.pick(&[
                    ("OPT owner", opt),
                    ("OPT type", opt + 2),
                    ("OPT version", opt + 6),
                    ("OPT rdlength", opt + 10),
                    ("OPT rdlength high", opt + 9),
                    ("option code", opt + 12),
                    ("option length", opt + 14),
                ]);
                if at < len {
                    let old = msg[at];
                    msg[at] = rng.pick(&[0, 1, 4, 8, 12, 16, 40, 41, 0xff, old.wrapping_add(1), old.wrapping_sub(1)]);
                    done.push(format!("{what} byte {at} {old:#04x} -> {:#04x}", msg[at]));
                }
            }
            7 if seed.opt.is_some_and(|opt| opt + 11 <= len) => {
                // Append an option, adjusting RDLENGTH (or not).
                let opt = seed.opt.expect("checked");
                let code: u16 = rng.pick(&[3, 8, 10, 10, 12, 15, rng.next() as u16]);
                let option_len = rng.pick(&[0usize, 2, 7, 8, 16, 24, 40, 41]);
                let declared = if rng.chance(80) { option_len as u16 } else { rng.next() as u16 & 0x3f };
                msg.extend_from_slice(&code.to_be_bytes());
                msg.extend_from_slice(&declared.to_be_bytes());
                msg.extend((0..option_len).map(|_| rng.byte()));
                if rng.chance(80) {
                    let rdlength = u16::from_be_bytes([msg[opt + 9], msg[opt + 10]]) + 4 + option_len as u16;
                    msg[opt + 9..opt + 11].copy_from_slice(&rdlength.to_be_bytes());
                }
                done.push(format!("option {code} len {option_len} (declared {declared})"));
            }
            8 => {
                let extra = 1 + rng.below(16);
                msg.extend((0..extra).map(|_| rng.byte()));
                done.push(format!("append {extra} bytes"));
            }
            9 => {
                let at = rng.below(len);
                let n = 1 + rng.below((len - at).min(4));
                msg.drain(at..at + n);
                done.push(format!("remove {n} bytes at {at}"));
            }
            10 if len >= 4 => {
                // Header flags: QR, opcode, AA, TC, RD, RA, Z, AD, CD, rcode.
                let bit = rng.below(16);
                msg[2 + bit / 8] ^= 0x80 >> (bit % 8);
                done.push(format!("flag bit {bit}"));
            }
            11 if len >= 12 + seed.qname_len + 4 => {
                // Benign for the program: ID, letter case, RD. The answer
                // must still be the daemon's.
                let at = rng.below(2);
                msg[at] = rng.byte();
                if let Some(c) = msg.get_mut(qname.start + 1 + rng.below(qname.len().max(1)))
                    && c.is_ascii_alphabetic()
                {
                    *c ^= 0x20;
                }
                done.push("id and case".to_string());
            }
            _ => {}
        }
    }
    done
}

/// Where the frame's IP header starts and which family it is, following at
/// most two VLAN tags; `None` for anything else.
fn ip_offset(frame: &[u8]) -> Option<(usize, bool)> {
    let mut off = 12;
    for _ in 0..3 {
        let ethertype = u16::from_be_bytes([*frame.get(off)?, *frame.get(off + 1)?]);
        match ethertype {
            0x8100 | 0x88a8 => off += 4,
            0x0800 => return Some((off + 2, false)),
            0x86dd => return Some((off + 2, true)),
            _ => return None,
        }
    }
    None
}

/// Recomputes the IPv4 header checksum and the UDP checksum over the
/// length the UDP header claims, as a sender would have computed them, so
/// mutations test the program's parsing and not checksums.
fn refresh_checksums(frame: &mut [u8]) {
    let Some((l3, ipv6)) = ip_offset(frame) else { return };
    let (l4, addrs) = if ipv6 {
        if frame.len() < l3 + 40 {
            return;
        }
        (l3 + 40, l3 + 8..l3 + 40)
    } else {
        if frame.len() < l3 + 20 {
            return;
        }
        let ihl = usize::from(frame[l3] & 0x0f) * 4;
        if ihl >= 20 && frame.len() >= l3 + ihl {
            frame[l3 + 10..l3 + 12].copy_from_slice(&[0, 0]);
            let sum = checksum::complement(checksum::sum_bytes(&frame[l3..l3 + ihl]));
            frame[l3 + 10..l3 + 12].copy_from_slice(&sum.to_be_bytes());
        }
        (l3 + ihl.max(20), l3 + 12..l3 + 20)
    };
    if frame.len() < l4 + 8 {
        return;
    }
    let udp_len = usize::from(u16::from_be_bytes([frame[l4 + 4], frame[l4 + 5]]));
    if udp_len < 8 || l4 + udp_len > frame.len() {
        return;
    }
    frame[l4 + 6..l4 + 8].copy_from_slice(&[0, 0]);
    let sum = checksum::sum_bytes(&frame[addrs]) + 17 + udp_len as u32 + checksum::sum_bytes(&frame[l4..l4 + udp_len]);
    frame[l4 + 6..l4 + 8].copy_from_slice(&checksum::finish(sum).to_be_bytes());
}

/// Mutates the Ethernet, VLAN, IP or UDP headers of a frame, or cuts it.
fn mutate_frame(rng: &Rng, frame: &mut Vec<u8>) -> Vec<String> {
    let Some((l3, ipv6)) = ip_offset(frame) else { return Vec::new() };
    let l4 = l3 + if ipv6 { 40 } else { 20 };
    let add16 = |frame: &mut Vec<u8>, at: usize, delta: i32| {
        let old = i32::from(u16::from_be_bytes([frame[at], frame[at + 1]]));
        frame[at..at + 2].copy_from_slice(&((old + delta) as u16).to_be_bytes());
    };
    let delta = rng.pick(&[-9, -4, -2, -1, 1, 2, 4, 9, 300]);
    let done = match rng.below(9) {
        0 => {
            add16(frame, l4 + 4, delta);
            format!("UDP length {delta:+}")
        }
        1 => {
            add16(frame, if ipv6 { l3 + 4 } else { l3 + 2 }, delta);
            format!("IP length {delta:+}")
        }
        2 => {
            add16(frame, l4 + 4, delta);
            add16(frame, if ipv6 { l3 + 4 } else { l3 + 2 }, delta);
            format!("UDP and IP length {delta:+}")
        }
        3 => {
            let old = frame[l3];
            frame[l3] = rng.pick(&[0x44, 0x46, 0x4f, 0x55, 0x65, 0x35, 0x60, 0x45, 0x70, 0x40, old ^ 0x10]);
            format!("IP version byte {old:#04x} -> {:#04x}", frame[l3])
        }
        4 => {
            let at = if ipv6 { l3 + 6 } else { l3 + 9 };
            frame[at] = rng.pick(&[0, 6, 17, 43, 44, 50, 51, 58, 60, 135, 253, rng.byte()]);
            format!("IP next protocol {}", frame[at])
        }
        5 if !ipv6 => {
            let flags: u16 = rng.pick(&[0x2000, 0x0001, 0x4000, 0x8000, 0x1fff, 0x3fff]);
            frame[l3 + 6..l3 + 8].copy_from_slice(&flags.to_be_bytes());
            format!("IPv4 flags/offset {flags:#06x}")
        }
        5 => {
            let at = l3 + rng.below(4);
            frame[at] ^= 1 << rng.below(8);
            format!("IPv6 version/class/flow byte {at}")
        }
        6 => {
            // A (second) VLAN tag, or a service tag, in front of the IP
            // header's ethertype.
            let tpid: u16 = rng.pick(&[0x8100, 0x88a8]);
            let tci = rng.next() as u16;
            let at = l3 - 2;
            frame.splice(at..at, tpid.to_be_bytes().into_iter().chain(tci.to_be_bytes()));
            format!("tag {tpid:#06x} inserted")
        }
        7 => {
            let keep = 14 + rng.below(frame.len() - 14);
            frame.truncate(keep);
            format!("frame cut to {keep}")
        }
        _ => {
            let extra = 1 + rng.below(40);
            frame.extend((0..extra).map(|_| rng.byte()));
            format!("{extra} bytes of Ethernet padding")
        }
    };
    vec![done]
}

/// Why an `XDP_TX` output is wrong, if it is: the input was not a frame the
/// kernel would deliver to the service socket, the output is not a
/// well-formed reply to it, its message does not parse, or it differs from
/// the daemon's answer.
fn check_answer(rig: &Rig, ep: &Endpoints, input: &[u8], output: &[u8]) -> Result<(), String> {
    let query = parse_udp_frame(input).ok_or("answered a frame that is not one UDP packet")?;
    let (l3, ipv6) = ip_offset(input).ok_or("answered a non-IP frame")?;
    if l3 > 18 {
        return Err("answered a frame with stacked VLAN tags".into());
    }
    let l4 = match input[l3] {
        0x45 if !ipv6 => {
            if u16::from_be_bytes([input[l3 + 6], input[l3 + 7]]) & 0x3fff != 0 {
                return Err("answered an IPv4 fragment".into());
            }
            l3 + 20
        }
        v if ipv6 && v >> 4 == 6 => l3 + 40,
        v => return Err(format!("answered an IP header starting {v:#04x}")),
    };
    let ip_payload = if query.src.is_ipv4() {
        usize::from(u16::from_be_bytes([input[l3 + 2], input[l3 + 3]])) - 20
    } else {
        usize::from(u16::from_be_bytes([input[l3 + 4], input[l3 + 5]]))
    };
    let udp_len = usize::from(u16::from_be_bytes([input[l4 + 4], input[l4 + 5]]));
    if udp_len != ip_payload {
        return Err(format!("answered with UDP length {udp_len} in an IP payload of {ip_payload}"));
    }
    if !(query.ip_checksum_ok && query.udp_checksum_ok) {
        return Err("answered a frame with a bad checksum".into());
    }
    if (query.dst, query.dport) != (ep.dst, ep.dport) {
        return Err(format!("answered a packet to {}:{}", query.dst, query.dport));
    }
    let reply = check_reply_frame(ep, output)?;
    if reply.vlan != query.vlan {
        return Err(format!("reply VLAN {:?}, query VLAN {:?}", reply.vlan, query.vlan));
    }
    Message::from_vec(&reply.payload).map_err(|e| format!("reply does not parse: {e}"))?;
    match rig.daemon_reply_if_any(&query.payload) {
        None => Err("the daemon sends nothing to this query".into()),
        Some(expected) if expected != reply.payload => {
            Err(format!("differs from the daemon:\n  xdp    {:02x?}\n  daemon {:02x?}", reply.payload, expected))
        }
        Some(_) => Ok(()),
    }
}

#[test]
fn mutated_queries_get_the_daemons_answer_or_none() {
    let seed = env_u64("DNS_XDP_MUTATION_SEED", DEFAULT_SEED);
    let count = env_u64("DNS_XDP_MUTATION_COUNT", DEFAULT_COUNT);
    eprintln!("mutation run: seed {seed:#x} (DNS_XDP_MUTATION_SEED), {count} packets (DNS_XDP_MUTATION_COUNT)");
    let mut rig = Rig::new(&["zones/example.test.zone"]);
    let seeds = seeds(&rig);
    let before = rig.counters();
    let started = Instant::now();
    let (mut actions, mut failures, mut shown) = (BTreeMap::<u32, u64>::new(), 0u64, Vec::new());
    for index in 0..count {
        let rng = Rng::for_packet(seed, index);
        let base = &seeds[rng.below(seeds.len())];
        let ep = if rng.chance(50) { Endpoints::v4(53) } else { Endpoints::v6(53) };
        let vlan = rng.chance(20).then(|| rng.next() as u16 & 0x0fff);
        let mut message = base.message.clone();
        // A share of unmutated queries keeps the answer path busy.
        let mut done = if rng.chance(90) { mutate_message(&rng, base, &mut message) } else { Vec::new() };
        let mut frame = udp_frame(&ep, &message, vlan, 0);
        if rng.chance(25) {
            done.extend(mutate_frame(&rng, &mut frame));
            refresh_checksums(&mut frame);
        }
        let (action, output) = rig.run(&frame);
        *actions.entry(action).or_default() += 1;
        let problem = match action {
            XDP_TX => check_answer(&rig, &ep, &frame, &output).err(),
            XDP_PASS => (output != frame).then(|| "passed frame was modified".to_string()),
            XDP_DROP => None,
            other => Some(format!("action {other}")),
        };
        if let Some(problem) = problem {
            failures += 1;
            if shown.len() < 10 {
                let family = if matches!(ep.src, IpAddr::V4(_)) { "v4" } else { "v6" };
                shown.push(format!(
                    "packet {index} ({family}, vlan {vlan:?}, {done:?}): {problem}\n  frame {frame:02x?}"
                ));
            }
        }
    }
    let elapsed = started.elapsed();
    let after = rig.counters();
    let verdicts: BTreeMap<&str, u64> =
        Verdict::NAMES.iter().map(|name| (*name, after[name] - before[name])).filter(|(_, n)| *n > 0).collect();
    let (tx, pass, drop) = (actions.get(&XDP_TX), actions.get(&XDP_PASS), actions.get(&XDP_DROP));
    let (tx, pass, drop) = (tx.copied().unwrap_or(0), pass.copied().unwrap_or(0), drop.copied().unwrap_or(0));
    eprintln!(
        "{count} packets in {:.1} s: {tx} XDP_TX, {pass} XDP_PASS, {drop} XDP_DROP; verdicts {verdicts:?}",
        elapsed.as_secs_f64()
    );
    assert!(failures == 0, "{failures} of {count} packets handled wrongly (seed {seed:#x}):\n{}", shown.join("\n"));
    // Every packet was counted once, under a verdict of its action.
    assert_eq!(verdicts.values().sum::<u64>(), count, "verdict counters {verdicts:?}");
    let counted = |action: u32| {
        Verdict::ALL.iter().filter(|v| v.action() as u32 == action).map(|v| verdicts.get(v.name()).unwrap_or(&0)).sum()
    };
    assert_eq!((counted(XDP_TX), counted(XDP_PASS), counted(XDP_DROP)), (tx, pass, drop), "{verdicts:?}");
    // The stream exercised all three outcomes in earnest.
    assert!(tx >= count / 20 && pass >= count / 10 && drop >= count / 100, "tx {tx} pass {pass} drop {drop}");
}
