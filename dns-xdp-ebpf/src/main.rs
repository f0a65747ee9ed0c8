//! The dns-xdp fast path: answers DNS queries over UDP from a map of answers
//! the daemon precomputed, rewriting each query into its response in place.
//!
//! Verdicts: not ours -> PASS; ours but not answerable here -> PASS (the
//! daemon answers); malformed -> DROP; answered -> TX. Every packet bumps
//! exactly one counter in `DNS_STATS`.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::BPF_F_MMAPABLE,
    bindings::xdp_action,
    btf_maps::{Array, HashMap, PerCpuArray},
    helpers::{
        bpf_ktime_get_coarse_ns, bpf_xdp_adjust_head, bpf_xdp_adjust_tail, bpf_xdp_load_bytes, bpf_xdp_store_bytes,
    },
    macros::{btf_map, xdp},
    programs::XdpContext,
};
use dns_xdp_common::{
    ANSWER_DATA_LEN, ANSWER_LEN, AnswerKey, AnswerSlot, CLASS_IN, Config, MAX_BODY_LEN, MAX_QNAME_LEN, MAX_QUERY_LEN,
    MIN_UDP_PAYLOAD, OPT_RR_LEN, ServiceKey, XdpStats, checksum, edns, flags, name, opt_record, reply_flags,
    udp_reply_limit,
};

/// Precomputed answers: a table of slots the daemon maps into its memory and
/// writes; a question's answer is in one of the two slots
/// [`AnswerKey::slots`] names. The daemon sizes it at load time
/// (`--map-entries`, a power of two). An array lookup is inlined by the
/// verifier: no helper call, no bucket, one cache miss for the slot.
#[btf_map]
static DNS_ANSWERS: Array<AnswerSlot, 65536, { BPF_F_MMAPABLE as usize }> = Array::new();

/// Addresses and ports the server answers on; anything else is passed.
#[btf_map]
static DNS_SERVICES: HashMap<ServiceKey, u8, 64> = HashMap::new();

/// Runtime settings and the daemon's heartbeat.
#[btf_map]
static DNS_CONFIG: Array<Config, 1> = Array::new();

/// Verdict counters.
#[btf_map]
static DNS_STATS: PerCpuArray<XdpStats, 1> = PerCpuArray::new();

/// Per-CPU working memory: the BPF stack (512 bytes) cannot hold a query.
#[btf_map]
static DNS_SCRATCH: PerCpuArray<Scratch, 1> = PerCpuArray::new();

#[repr(C)]
struct Scratch {
    /// The DNS message of the query, from `MSG_SHIFT` on: the qname then
    /// starts 8-aligned, so it can be read a word at a time.
    msg: [u8; MSG_BUF],
    /// The qname, case-folded, as little-endian words.
    lname: [u64; QNAME_WORDS],
    /// The query's headers up to the end of the question, while the frame
    /// is grown at the front.
    head: [u8; HEAD_BUF],
    /// Loop results passed through memory; see [`launder`]: qname length,
    /// DNS length, name hash, question sum, qname word count.
    carried: [u64; 5],
}

/// Whether word `i` of the qname is past its end. The word count is re-read
/// from memory on every call: a count the compiler can reason about lets it
/// fold the loops' own `i < QNAME_WORDS` test into the exit and rewrite it
/// as `i != words`, which the verifier cannot see bounding the index.
#[inline(always)]
fn past_qname(words: &u64, i: usize) -> bool {
    // SAFETY: a valid, aligned u64 in per-CPU map memory.
    i as u64 >= unsafe { core::ptr::read_volatile(words) }
}

/// Returns `value` after a round trip through map memory the verifier does
/// not track. A loop with a data-dependent exit leaves a differently bounded
/// register behind for every iteration it can exit at; unless those copies
/// die at the exit, the verifier walks the rest of the program once per
/// exit. Re-reading the value makes every exit converge on one state.
/// Callers must bound the result again before using it as an index.
#[inline(always)]
fn launder(slot: &mut u64, value: u64) -> u64 {
    // SAFETY: `slot` is a valid, aligned u64 in per-CPU map memory.
    unsafe {
        core::ptr::write_volatile(slot, value);
        core::ptr::read_volatile(slot)
    }
}

const HEAD_BUF: usize = 512;
const MSG_MASK: usize = MAX_QUERY_LEN - 1;
const MSG_SHIFT: usize = 4;
const MSG_BUF: usize = MAX_QUERY_LEN + 8;
const QNAME_WORDS: usize = (MAX_QNAME_LEN + 1) / 8;
const _: () = assert!((MSG_SHIFT + 12).is_multiple_of(8));
const _: () = assert!(MAX_QUERY_LEN.is_power_of_two());

const ETH_HLEN: usize = 14;
const VLAN_HLEN: usize = 4;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const IPV4_HLEN: usize = 20;
const IPV6_HLEN: usize = 40;
const UDP_HLEN: usize = 8;
const DNS_HLEN: usize = 12;
const IPPROTO_UDP: u8 = 17;
const IPV6_FRAGMENT: u8 = 44;
const REPLY_HOP_LIMIT: u8 = 64;
/// Most labels a 255-octet name can hold.
const MAX_LABELS: usize = 128;
/// Options walked in an OPT record before giving up.
const MAX_EDNS_OPTIONS: usize = 4;

#[derive(Clone, Copy)]
enum Pass {
    NotDns,
    UnusualHeaders,
    Fragment,
    Header,
    Qname,
    Qclass,
    Edns,
    Miss,
    Collision,
    TooBig,
    NoRoom,
    Stale,
    LongQuery,
}

#[derive(Clone, Copy)]
enum Verdict {
    Tx,
    Pass(Pass),
    DropMalformed,
    DropInternal,
    DropTorn,
}

#[xdp]
pub fn dns_xdp(ctx: XdpContext) -> u32 {
    let verdict = try_dns_xdp(&ctx);
    count(verdict);
    match verdict {
        Verdict::Tx => xdp_action::XDP_TX,
        Verdict::Pass(_) => xdp_action::XDP_PASS,
        Verdict::DropMalformed | Verdict::DropInternal | Verdict::DropTorn => xdp_action::XDP_DROP,
    }
}

/// Passes everything. Attached to the client end of a veth pair in tests
/// and benchmarks: XDP_TX into a veth is only delivered when its peer runs
/// an XDP program.
#[cfg(feature = "lab")]
#[xdp]
pub fn dns_xdp_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

/// The ceiling of this machine for benchmarks: turns any UDP/IPv4 packet to
/// a service port around (addresses, ports, QR bit) with no DNS work and
/// XDP_TX. Not a DNS server: it answers every query with itself.
#[cfg(feature = "lab")]
#[xdp]
pub fn dns_xdp_bounce(ctx: XdpContext) -> u32 {
    match bounce(&ctx) {
        Some(()) => xdp_action::XDP_TX,
        None => xdp_action::XDP_PASS,
    }
}

#[cfg(feature = "lab")]
#[inline(always)]
fn bounce(ctx: &XdpContext) -> Option<()> {
    let eth: *mut [u8; ETH_HLEN] = ptr_at(ctx, 0)?;
    // SAFETY: bounds checked by ptr_at; likewise below.
    let eth = unsafe { &mut *eth };
    if u16::from_be_bytes([eth[12], eth[13]]) != ETH_P_IP {
        return None;
    }
    let ip: *mut [u8; IPV4_HLEN] = ptr_at(ctx, ETH_HLEN)?;
    let ip = unsafe { &mut *ip };
    if ip[0] != 0x45 || ip[9] != IPPROTO_UDP {
        return None;
    }
    let udp: *mut [u8; UDP_HLEN + DNS_HLEN] = ptr_at(ctx, ETH_HLEN + IPV4_HLEN)?;
    let udp = unsafe { &mut *udp };
    let service = ServiceKey {
        addr: [ip[16], ip[17], ip[18], ip[19], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        port_be: u16::from_ne_bytes([udp[2], udp[3]]),
        family: 4,
        _pad: [0; 5],
    };
    if !is_service(&service) {
        return None;
    }
    for i in 0..6 {
        eth.swap(i, i + 6);
    }
    for i in 12..16 {
        ip.swap(i, i + 4);
    }
    udp.swap(0, 2);
    udp.swap(1, 3);
    // Set QR and patch the UDP checksum incrementally (RFC 1624 eqn. 3);
    // the swaps leave both checksums valid.
    let old = u16::from_be_bytes([udp[10], udp[11]]);
    let new = old | flags::QR;
    udp[10..12].copy_from_slice(&new.to_be_bytes());
    let csum = u16::from_be_bytes([udp[6], udp[7]]);
    if csum != 0 {
        let sum = (!csum) as u32 + (!old) as u32 + new as u32;
        udp[6..8].copy_from_slice(&checksum::finish(sum).to_be_bytes());
    }
    Some(())
}

#[inline(always)]
fn count(verdict: Verdict) {
    let Some(stats) = DNS_STATS.get_ptr_mut(0) else { return };
    // SAFETY: a per-CPU array slot is only written by this CPU.
    let stats = unsafe { &mut *stats };
    let counter = match verdict {
        Verdict::Tx => &mut stats.tx_answer,
        Verdict::DropMalformed => &mut stats.drop_malformed,
        Verdict::DropInternal => &mut stats.drop_internal,
        Verdict::DropTorn => &mut stats.drop_torn,
        Verdict::Pass(reason) => match reason {
            Pass::NotDns => &mut stats.pass_not_dns,
            Pass::UnusualHeaders => &mut stats.pass_unusual_headers,
            Pass::Fragment => &mut stats.pass_fragment,
            Pass::Header => &mut stats.pass_header,
            Pass::Qname => &mut stats.pass_qname,
            Pass::Qclass => &mut stats.pass_qclass,
            Pass::Edns => &mut stats.pass_edns,
            Pass::Miss => &mut stats.pass_miss,
            Pass::Collision => &mut stats.pass_collision,
            Pass::TooBig => &mut stats.pass_too_big,
            Pass::NoRoom => &mut stats.pass_no_room,
            Pass::Stale => &mut stats.pass_stale,
            Pass::LongQuery => &mut stats.pass_long_query,
        },
    };
    *counter += 1;
}

/// Bounds-checked pointer into the packet; nothing is read before the check.
#[inline(always)]
fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Option<*mut T> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + core::mem::size_of::<T>() > end {
        return None;
    }
    Some((start + offset) as *mut T)
}

#[inline(always)]
fn be16(msg: &[u8; MSG_BUF], at: usize) -> u16 {
    u16::from_be_bytes([msg[(at & MSG_MASK) + MSG_SHIFT], msg[((at + 1) & MSG_MASK) + MSG_SHIFT]])
}

/// The byte at DNS offset `at` of the query in `msg`.
#[inline(always)]
fn byte(msg: &[u8; MSG_BUF], at: usize) -> u8 {
    msg[(at & MSG_MASK) + MSG_SHIFT]
}

/// What the parse of the network headers established.
struct Headers {
    /// Offset of the IP header.
    l3: usize,
    ipv6: bool,
    /// Offset of the DNS message and its length per the UDP header.
    dns_off: usize,
    dns_len: usize,
}

#[inline(always)]
fn try_dns_xdp(ctx: &XdpContext) -> Verdict {
    let hdrs = match parse_headers(ctx) {
        Ok(h) => h,
        Err(v) => return v,
    };
    if hdrs.dns_len < DNS_HLEN {
        return Verdict::DropMalformed;
    }
    if hdrs.dns_len > MAX_QUERY_LEN {
        return Verdict::Pass(Pass::LongQuery);
    }
    let Some(scratch) = DNS_SCRATCH.get_ptr_mut(0) else { return Verdict::DropInternal };
    // SAFETY: the per-CPU slot is this program's alone while it runs.
    let scratch = unsafe { &mut *scratch };
    let Some(config) = DNS_CONFIG.get_ptr(0) else { return Verdict::DropInternal };
    // SAFETY: array slots are never freed; torn reads of the heartbeat are
    // impossible on 64-bit.
    let config = unsafe { &*config };

    let dns_len = hdrs.dns_len;
    // SAFETY: the helper bounds-checks against the packet; the length is
    // 12..=MAX_QUERY_LEN, the size of the destination.
    let loaded = unsafe {
        bpf_xdp_load_bytes(ctx.ctx, hdrs.dns_off as u32, scratch.msg.as_mut_ptr().add(MSG_SHIFT).cast(), dns_len as u32)
    };
    if loaded != 0 {
        return Verdict::DropInternal;
    }
    let msg = &scratch.msg;

    let query_flags = be16(msg, 2);
    if query_flags & flags::QR != 0 {
        // A response sent to the service port: nobody is to answer it.
        return Verdict::DropMalformed;
    }
    if query_flags & (flags::OPCODE | flags::TC) != 0 || be16(msg, 4) != 1 || be16(msg, 6) != 0 || be16(msg, 8) != 0 {
        return Verdict::Pass(Pass::Header);
    }
    let arcount = be16(msg, 10);
    if arcount > 1 {
        return Verdict::Pass(Pass::Header);
    }
    if config.enabled == 0 {
        return Verdict::Pass(Pass::Stale);
    }
    // The coarse clock (jiffies resolution, kernel 5.11) is plenty for a
    // heartbeat measured in seconds and costs a fraction of the precise one.
    // SAFETY: helper without arguments.
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    if now.wrapping_sub(config.heartbeat_ns) > config.heartbeat_timeout_ns {
        return Verdict::Pass(Pass::Stale);
    }

    // Walk the labels to find the qname's length. Compression cannot occur
    // in a question (nothing precedes it to point to), so a pointer here is
    // an oddity for the daemon to judge.
    let mut pos = DNS_HLEN;
    let mut qname_len = 0;
    for _ in 0..MAX_LABELS {
        if pos >= dns_len {
            return Verdict::Pass(Pass::Qname);
        }
        let label = byte(msg, pos) as usize;
        if label == 0 {
            qname_len = pos + 1 - DNS_HLEN;
            break;
        }
        if label & 0xc0 != 0 {
            return Verdict::Pass(Pass::Qname);
        }
        pos += label + 1;
        // On `pos` itself, not `pos - DNS_HLEN`: this bound is what keeps
        // `byte(msg, pos)` in the buffer once the compiler drops its mask,
        // and before 6.11 the verifier does not carry a bound on `r - const`
        // back to `r`.
        if pos >= DNS_HLEN + MAX_QNAME_LEN {
            return Verdict::Pass(Pass::Qname);
        }
    }
    let qname_len = launder(&mut scratch.carried[0], qname_len as u64) as usize;
    let dns_len = launder(&mut scratch.carried[1], dns_len as u64) as usize;
    if qname_len == 0 || qname_len > MAX_QNAME_LEN || dns_len > MAX_QUERY_LEN || DNS_HLEN + qname_len + 4 > dns_len {
        return Verdict::Pass(Pass::Qname);
    }

    // One pass over the name, a word at a time: fold and hash it for the
    // key, and sum it as the client sent it for the UDP checksum (the
    // question goes back unchanged, letter case included). Bytes past the
    // name are masked off the last word.
    launder(&mut scratch.carried[4], qname_len.div_ceil(8) as u64);
    let mut hash = name::FNV_OFFSET;
    let mut sum_le = 0u64;
    for i in 0..QNAME_WORDS {
        if past_qname(&scratch.carried[4], i) {
            break;
        }
        // SAFETY: MSG_SHIFT + 12 + 8 * 31 + 8 <= MSG_BUF, and the offset is
        // 8-aligned in the 8-aligned map value.
        let raw = unsafe { *(scratch.msg.as_ptr().add(MSG_SHIFT + DNS_HLEN + 8 * i) as *const u64) };
        let raw = raw & name::word_mask(qname_len - 8 * i);
        let folded = name::fold_word(raw);
        scratch.lname[i & (QNAME_WORDS - 1)] = folded;
        hash = name::hash_word(hash, folded);
        sum_le += (raw & 0xffff) + ((raw >> 16) & 0xffff) + ((raw >> 32) & 0xffff) + (raw >> 48);
    }
    // Little-endian 16-bit lanes sum to the byte-swapped big-endian sum
    // (RFC 1071 2(B)); the name starts at an even offset.
    let question_sum = checksum::fold(sum_le as u32).swap_bytes() as u32;
    let hash = launder(&mut scratch.carried[2], hash);
    let question_sum = launder(&mut scratch.carried[3], question_sum as u64) as u32;
    let qname_len = launder(&mut scratch.carried[0], qname_len as u64) as usize & 0x1ff;
    let dns_len = launder(&mut scratch.carried[1], dns_len as u64) as usize & 0x3ff;
    if qname_len > MAX_QNAME_LEN || DNS_HLEN + qname_len + 4 > dns_len {
        return Verdict::DropInternal;
    }
    // QTYPE and QCLASS follow the name at an offset of its parity.
    let qtype = be16(msg, DNS_HLEN + qname_len);
    let qclass = be16(msg, DNS_HLEN + qname_len + 2);
    let question_sum = question_sum + checksum::at_offset(qtype as u32 + qclass as u32, qname_len);
    if qclass != CLASS_IN {
        return Verdict::Pass(Pass::Qclass);
    }

    // Look the answer up before parsing EDNS: under a spread-out query mix
    // the slot is a cache miss, and the CPU can run the EDNS checks while
    // it waits.
    let key = AnswerKey { name_hash: hash, qtype, qname_len: qname_len as u16, _pad: 0 };
    let Some(slot) = find_answer(&key, config.answer_slot_mask) else { return Verdict::Pass(Pass::Miss) };

    let question_end = DNS_HLEN + qname_len + 4;
    let mut has_edns = false;
    let mut client_payload = MIN_UDP_PAYLOAD;
    let mut do_bit = 0u16;
    if arcount == 1 {
        let opt = question_end;
        if opt + OPT_RR_LEN > dns_len
            || byte(msg, opt) != 0
            || be16(msg, opt + 1) != edns::OPT_TYPE
            || byte(msg, opt + 6) != 0
        {
            // Not a well-formed OPT, or an EDNS version the daemon answers
            // with BADVERS (RFC 6891 6.1.3).
            return Verdict::Pass(Pass::Edns);
        }
        client_payload = be16(msg, opt + 3);
        do_bit = be16(msg, opt + 7) & edns::DO;
        let rdlen = be16(msg, opt + 9) as usize;
        let end = opt + OPT_RR_LEN + rdlen;
        if end != dns_len {
            return Verdict::Pass(Pass::Edns);
        }
        // Only options the daemon ignores too may be present: cookies of a
        // valid length (RFC 7873 4: 8, or 16 to 40 octets).
        let mut at = opt + OPT_RR_LEN;
        for _ in 0..MAX_EDNS_OPTIONS {
            if at >= end {
                break;
            }
            if at + 4 > end || be16(msg, at) != edns::OPTION_COOKIE {
                return Verdict::Pass(Pass::Edns);
            }
            let len = be16(msg, at + 2) as usize;
            if !(len == 8 || (16..=40).contains(&len)) {
                return Verdict::Pass(Pass::Edns);
            }
            at += 4 + len;
        }
        if at != end {
            return Verdict::Pass(Pass::Edns);
        }
        has_edns = true;
    } else if question_end != dns_len {
        return Verdict::Pass(Pass::Header);
    }

    // SAFETY: array slots are never freed, but the daemon may rewrite this
    // one while it is read (see AnswerSlot's docs): the key (compared by
    // find_answer) and lengths, the trailer they locate, the key and lengths
    // again, then the rest, and `version` last; the trailer must equal
    // `version`. Every read of the slot is volatile (or a helper call) so
    // none moves across another.
    let answer = unsafe { &*slot };
    // SAFETY (all volatile reads below): valid, aligned fields of the slot.
    let body_len = unsafe { core::ptr::read_volatile(&answer.body_len) } as usize;
    if body_len == 0 || body_len > MAX_BODY_LEN {
        return Verdict::DropInternal;
    }
    // Laundered so the compiler keeps the check below, which it can prove
    // redundant from the length checks above. Verifiers before 6.9 do not
    // carry those bounds through the stack spills of the lengths (no scalar
    // IDs on spill), so without it 6.1 sees an offset of up to 2048 into the
    // slot and rejects the read. carried[4] is free here: its word count is
    // written again below before it is read.
    let trailer_at = launder(&mut scratch.carried[4], AnswerSlot::trailer_offset(qname_len, body_len) as u64) as usize;
    // Never true for lengths in range; it bounds the read for the verifier.
    // Compared as is, not as `trailer_at + 8`: the compiler turns that into
    // a range check on a copy, and before 6.11 the verifier does not carry
    // bounds from `r + const` back to `r`.
    if trailer_at > ANSWER_DATA_LEN - 8 {
        return Verdict::DropInternal;
    }
    // SAFETY: in bounds (checked above) and 8-aligned: `data` is at an
    // 8-aligned offset of the value and the trailer offset is a multiple of 8.
    let trailer = unsafe { core::ptr::read_volatile(answer.data.as_ptr().add(trailer_at) as *const u64) };
    if unsafe { core::ptr::read_volatile(key_tail(answer)) } != key.tail_word()
        || unsafe { core::ptr::read_volatile(&answer.body_len) } as usize != body_len
    {
        return Verdict::DropTorn;
    }
    launder(&mut scratch.carried[4], qname_len.div_ceil(8) as u64);
    for i in 0..QNAME_WORDS {
        if past_qname(&scratch.carried[4], i) {
            break;
        }
        // SAFETY: the qname starts `data`, at an 8-aligned offset of the
        // value, and `data` is longer than QNAME_WORDS words.
        let stored =
            unsafe { core::ptr::read_volatile(answer.data.as_ptr().add(8 * (i & (QNAME_WORDS - 1))) as *const u64) };
        // The body follows the qname in the same word.
        let stored = stored & name::word_mask(qname_len - 8 * i);
        if stored != scratch.lname[i & (QNAME_WORDS - 1)] {
            return Verdict::Pass(Pass::Collision);
        }
    }
    let opt_len = if has_edns { OPT_RR_LEN } else { 0 };
    let reply_len = question_end + body_len + opt_len;
    let client_payload = if has_edns { Some(client_payload) } else { None };
    if reply_len > udp_reply_limit(client_payload, config.edns_udp_payload) as usize {
        return Verdict::Pass(Pass::TooBig);
    }

    // The new DNS header and OPT record, and their checksum contributions.
    let header: [u16; 6] = [
        be16(msg, 0),
        reply_flags(unsafe { core::ptr::read_volatile(&answer.flags) }, query_flags),
        1,
        unsafe { core::ptr::read_volatile(&answer.ancount) },
        unsafe { core::ptr::read_volatile(&answer.nscount) },
        unsafe { core::ptr::read_volatile(&answer.arcount) } + has_edns as u16,
    ];
    let mut header_bytes = [0u8; DNS_HLEN];
    let mut header_sum = 0u32;
    for (i, word) in header.iter().enumerate() {
        header_sum += *word as u32;
        let b = word.to_be_bytes();
        header_bytes[2 * i] = b[0];
        header_bytes[2 * i + 1] = b[1];
    }
    let opt_bytes = opt_record(config.edns_udp_payload, 0, do_bit != 0);
    let opt_sum = if has_edns {
        let mut s = 0u32;
        for i in 0..OPT_RR_LEN / 2 {
            s += u16::from_be_bytes([opt_bytes[2 * i], opt_bytes[2 * i + 1]]) as u32;
        }
        s += (opt_bytes[OPT_RR_LEN - 1] as u32) << 8;
        checksum::at_offset(s, question_end + body_len)
    } else {
        0
    };
    let body_sum = checksum::at_offset(unsafe { core::ptr::read_volatile(&answer.body_csum) }, question_end);
    let dns_sum = header_sum + question_sum + body_sum + opt_sum;

    // Resize the frame to the reply. Nothing has been written yet, so a
    // refusal can still hand the untouched query to the daemon.
    let old_len = ctx.data_end() - ctx.data();
    let new_len = hdrs.dns_off + question_end + body_len + opt_len;
    let delta = new_len as i32 - old_len as i32;
    // SAFETY: the helpers validate the deltas against the buffer.
    if delta != 0 && unsafe { bpf_xdp_adjust_tail(ctx.ctx, delta) } != 0 {
        // Tailroom depends on the driver and on how the sender allocated
        // the frame (a veth fed by a local socket may have under 200
        // bytes); XDP_PACKET_HEADROOM (256 bytes) in front is guaranteed.
        // Grow there instead: keep a copy of everything before the
        // answer, move the start back, write the copy at the new start.
        // Laundered for the reasons trailer_at is: the compiler drops the
        // bound as redundant, and 6.1's verifier has only qname_len <= 511
        // to go on. Bounded as `prefix - 1 < HEAD_BUF` because the helpers
        // need a length of at least 1 and 6.1 learns no lower bound from
        // `!= 0`; no mask after it, which would lose that bound again.
        let prefix = launder(&mut scratch.carried[4], (hdrs.dns_off + question_end - 1) as u64) as usize;
        if delta < 0 || prefix >= HEAD_BUF {
            return Verdict::Pass(Pass::NoRoom);
        }
        let prefix = prefix + 1;
        // SAFETY: 1..=HEAD_BUF bytes into a HEAD_BUF buffer, bounds-checked
        // against the packet by the helper.
        if unsafe { bpf_xdp_load_bytes(ctx.ctx, 0, scratch.head.as_mut_ptr().cast(), prefix as u32) } != 0 {
            return Verdict::Pass(Pass::NoRoom);
        }
        // SAFETY: as above.
        if unsafe { bpf_xdp_adjust_head(ctx.ctx, -delta) } != 0 {
            return Verdict::Pass(Pass::NoRoom);
        }
        // SAFETY: as above; the frame is now `new_len` long.
        if unsafe { bpf_xdp_store_bytes(ctx.ctx, 0, scratch.head.as_mut_ptr().cast(), prefix as u32) } != 0 {
            return Verdict::DropInternal;
        }
    }

    // From here on the packet is being rewritten: failures are internal.
    // Pointers derived before the resize are stale; re-derive them.
    let body_off = hdrs.dns_off + question_end;
    // SAFETY: the helper bounds-checks the packet offset; the source is map
    // memory at least as long as the length given.
    // Offset and length laundered and bounded again, as for trailer_at and
    // prefix: the compiler drops the masks as redundant, leaving 6.1's
    // verifier with qname_len <= 511 and body_len <= 65535. The length as
    // `len - 1 < MAX` for a lower bound of 1, which the helper needs.
    let body_at = launder(&mut scratch.carried[0], qname_len as u64) as usize;
    let body_len_m1 = launder(&mut scratch.carried[1], (body_len - 1) as u64) as usize;
    if body_at > MAX_QNAME_LEN || body_len_m1 >= MAX_BODY_LEN {
        return Verdict::DropInternal;
    }
    let body = answer.data.as_ptr().wrapping_add(body_at);
    if unsafe { bpf_xdp_store_bytes(ctx.ctx, body_off as u32, body as *mut _, (body_len_m1 + 1) as u32) } != 0 {
        return Verdict::DropInternal;
    }
    // The DNS header and the OPT record are small and fixed: written
    // directly rather than through another helper call each.
    let Some(dns_header) = ptr_at::<[u8; DNS_HLEN]>(ctx, hdrs.dns_off) else { return Verdict::DropInternal };
    // SAFETY: bounds checked by ptr_at.
    unsafe { *dns_header = header_bytes };
    if has_edns {
        let Some(opt) = ptr_at::<[u8; OPT_RR_LEN]>(ctx, (body_off + body_len) & 0x7ff) else {
            return Verdict::DropInternal;
        };
        // SAFETY: bounds checked by ptr_at.
        unsafe { *opt = opt_bytes };
    }

    // SAFETY: a valid, aligned u64 in the slot.
    if unsafe { core::ptr::read_volatile(&answer.version) } != trailer {
        // Overwritten under us: the packet may mix two answers.
        return Verdict::DropTorn;
    }
    // Tell the daemon the answer is in use (it reuses slots whose mark is
    // clear). Written only when clear, so a hot slot's line stays clean.
    // SAFETY: a byte of the slot; the daemon's writes of it race
    // harmlessly with this one (either way the mark means "served lately").
    unsafe {
        let mark = &raw mut (*slot).referenced;
        if core::ptr::read_volatile(mark) == 0 {
            core::ptr::write_volatile(mark, 1);
        }
    }
    if rewrite_headers(ctx, &hdrs, reply_len, dns_sum).is_none() {
        return Verdict::DropInternal;
    }
    Verdict::Tx
}

/// The slot holding the answer to `key`: the first of its two slots whose
/// key matches, compared as two words. An empty slot's key has length zero
/// and matches no question.
#[inline(always)]
fn find_answer(key: &AnswerKey, slot_mask: u32) -> Option<*mut AnswerSlot> {
    for index in key.slots(slot_mask) {
        let Some(slot) = DNS_ANSWERS.get_ptr_mut(index) else { continue };
        // SAFETY: a slot of the array; array memory is never freed.
        let answer = unsafe { &*slot };
        // Start the misses on the slot's second and third lines together
        // with the first, rather than one after another as the body and
        // trailer are reached: under a spread-out mix each is a trip to
        // memory.
        // SAFETY: aligned u64s inside the slot (its length is asserted below find_answer).
        unsafe {
            core::ptr::read_volatile(answer.data.as_ptr().add(CACHE_LINE - SLOT_DATA_OFFSET).cast::<u64>());
            core::ptr::read_volatile(answer.data.as_ptr().add(2 * CACHE_LINE - SLOT_DATA_OFFSET).cast::<u64>());
        }
        // SAFETY: aligned u64s of the slot.
        let (hash, tail) =
            unsafe { (core::ptr::read_volatile(&answer.key.name_hash), core::ptr::read_volatile(key_tail(answer))) };
        if hash == key.name_hash && tail == key.tail_word() {
            return Some(slot);
        }
    }
    None
}

const CACHE_LINE: usize = 64;
/// Where `data` starts in a slot; the slots themselves start on a line.
const SLOT_DATA_OFFSET: usize = core::mem::offset_of!(AnswerSlot, data);
/// find_answer touches the slot's first three lines.
const _: () = assert!(ANSWER_LEN >= 3 * CACHE_LINE && SLOT_DATA_OFFSET < CACHE_LINE);

/// The second word of a slot's key (qtype, qname length, padding).
#[inline(always)]
fn key_tail(answer: &AnswerSlot) -> *const u64 {
    (&answer.key.qtype as *const u16).cast()
}

/// Ethernet, optional 802.1Q tag, IPv4 (no options, no fragments) or IPv6
/// (no extension headers), UDP to a service address and port.
#[inline(always)]
fn parse_headers(ctx: &XdpContext) -> Result<Headers, Verdict> {
    let not_dns = Verdict::Pass(Pass::NotDns);
    let eth: *const [u8; ETH_HLEN] = ptr_at(ctx, 0).ok_or(not_dns)?;
    // SAFETY: bounds checked by ptr_at.
    let eth = unsafe { &*eth };
    let mut ethertype = u16::from_be_bytes([eth[12], eth[13]]);
    let mut l3 = ETH_HLEN;
    if ethertype == ETH_P_8021Q {
        let tag: *const [u8; VLAN_HLEN] = ptr_at(ctx, ETH_HLEN).ok_or(not_dns)?;
        // SAFETY: bounds checked by ptr_at.
        let tag = unsafe { &*tag };
        ethertype = u16::from_be_bytes([tag[2], tag[3]]);
        l3 += VLAN_HLEN;
        if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
            return Err(Verdict::Pass(Pass::UnusualHeaders));
        }
    } else if ethertype == ETH_P_8021AD {
        return Err(Verdict::Pass(Pass::UnusualHeaders));
    }
    let frame_len = ctx.data_end() - ctx.data();

    let (ipv6, l4, ip_payload_len, service) = if ethertype == ETH_P_IP {
        let ip: *const [u8; IPV4_HLEN] = ptr_at(ctx, l3).ok_or(not_dns)?;
        // SAFETY: bounds checked by ptr_at.
        let ip = unsafe { &*ip };
        if ip[9] != IPPROTO_UDP {
            return Err(not_dns);
        }
        if ip[0] != 0x45 {
            return Err(Verdict::Pass(Pass::UnusualHeaders));
        }
        if u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0 {
            return Err(Verdict::Pass(Pass::Fragment));
        }
        let total = u16::from_be_bytes([ip[2], ip[3]]) as usize;
        let l4 = l3 + IPV4_HLEN;
        let udp: *const [u8; UDP_HLEN] = ptr_at(ctx, l4).ok_or(not_dns)?;
        // SAFETY: bounds checked by ptr_at.
        let port = unsafe { [(*udp)[2], (*udp)[3]] };
        let service = ServiceKey {
            addr: [ip[16], ip[17], ip[18], ip[19], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            port_be: u16::from_ne_bytes(port),
            family: 4,
            _pad: [0; 5],
        };
        // Ethernet may pad a short frame: the IP length may be less than
        // the frame, never more.
        if total < IPV4_HLEN || l3 + total > frame_len {
            return Err(malformed_if_ours(&service));
        }
        (false, l4, total - IPV4_HLEN, service)
    } else if ethertype == ETH_P_IPV6 {
        let ip: *const [u8; IPV6_HLEN] = ptr_at(ctx, l3).ok_or(not_dns)?;
        // SAFETY: bounds checked by ptr_at.
        let ip = unsafe { &*ip };
        match ip[6] {
            IPPROTO_UDP => {}
            IPV6_FRAGMENT => return Err(Verdict::Pass(Pass::Fragment)),
            0 | 43 | 50 | 51 | 60 | 135 | 139 | 140 | 253 | 254 => {
                return Err(Verdict::Pass(Pass::UnusualHeaders));
            }
            _ => return Err(not_dns),
        }
        let payload = u16::from_be_bytes([ip[4], ip[5]]) as usize;
        let l4 = l3 + IPV6_HLEN;
        let udp: *const [u8; UDP_HLEN] = ptr_at(ctx, l4).ok_or(not_dns)?;
        // SAFETY: bounds checked by ptr_at.
        let port = unsafe { [(*udp)[2], (*udp)[3]] };
        let mut addr = [0u8; 16];
        addr.copy_from_slice(&ip[24..40]);
        let service = ServiceKey { addr, port_be: u16::from_ne_bytes(port), family: 6, _pad: [0; 5] };
        if l4 + payload > frame_len {
            return Err(malformed_if_ours(&service));
        }
        (true, l4, payload, service)
    } else {
        return Err(not_dns);
    };

    if !is_service(&service) {
        return Err(not_dns);
    }
    let udp: *const [u8; UDP_HLEN] = ptr_at(ctx, l4).ok_or(not_dns)?;
    // SAFETY: bounds checked by ptr_at.
    let udp_len = unsafe { u16::from_be_bytes([(*udp)[4], (*udp)[5]]) } as usize;
    if udp_len < UDP_HLEN || udp_len != ip_payload_len {
        return Err(Verdict::DropMalformed);
    }
    Ok(Headers { l3, ipv6, dns_off: l4 + UDP_HLEN, dns_len: udp_len - UDP_HLEN })
}

#[inline(always)]
fn is_service(key: &ServiceKey) -> bool {
    // SAFETY: only presence is tested; the value is not read.
    if unsafe { DNS_SERVICES.get(key) }.is_some() {
        return true;
    }
    let any = ServiceKey { addr: [0; 16], ..*key };
    // SAFETY: as above.
    unsafe { DNS_SERVICES.get(any) }.is_some()
}

#[inline(always)]
fn malformed_if_ours(key: &ServiceKey) -> Verdict {
    if is_service(key) { Verdict::DropMalformed } else { Verdict::Pass(Pass::NotDns) }
}

/// Turns the query's Ethernet, IP and UDP headers around and fills in the
/// lengths and checksums of the reply.
#[inline(always)]
fn rewrite_headers(ctx: &XdpContext, hdrs: &Headers, reply_len: usize, dns_sum: u32) -> Option<()> {
    let eth: *mut [u8; ETH_HLEN] = ptr_at(ctx, 0)?;
    // SAFETY: bounds checked by ptr_at; the pointers below likewise.
    let eth = unsafe { &mut *eth };
    for i in 0..6 {
        eth.swap(i, i + 6);
    }
    let udp_len = (UDP_HLEN + reply_len) as u16;
    let mut pseudo_sum = IPPROTO_UDP as u32 + udp_len as u32;
    if hdrs.ipv6 {
        let ip: *mut [u8; IPV6_HLEN] = ptr_at(ctx, hdrs.l3)?;
        let ip = unsafe { &mut *ip };
        for i in 8..24 {
            ip.swap(i, i + 16);
        }
        let len = udp_len.to_be_bytes();
        ip[4] = len[0];
        ip[5] = len[1];
        ip[7] = REPLY_HOP_LIMIT;
        for i in 0..16 {
            pseudo_sum += u16::from_be_bytes([ip[8 + 2 * i], ip[9 + 2 * i]]) as u32;
        }
    } else {
        let ip: *mut [u8; IPV4_HLEN] = ptr_at(ctx, hdrs.l3)?;
        let ip = unsafe { &mut *ip };
        for i in 12..16 {
            ip.swap(i, i + 4);
        }
        let total = (IPV4_HLEN as u16 + udp_len).to_be_bytes();
        ip[1] = 0; // TOS
        ip[2] = total[0];
        ip[3] = total[1];
        ip[4] = 0; // ID: unused with DF set (RFC 6864 4.1)
        ip[5] = 0;
        ip[6] = 0x40; // DF
        ip[7] = 0;
        ip[8] = REPLY_HOP_LIMIT;
        ip[10] = 0;
        ip[11] = 0;
        let mut sum = 0u32;
        for i in 0..IPV4_HLEN / 2 {
            sum += u16::from_be_bytes([ip[2 * i], ip[2 * i + 1]]) as u32;
        }
        let csum = (!checksum::fold(sum)).to_be_bytes();
        ip[10] = csum[0];
        ip[11] = csum[1];
        for i in 0..4 {
            pseudo_sum += u16::from_be_bytes([ip[12 + 2 * i], ip[13 + 2 * i]]) as u32;
        }
    }
    let l4 = hdrs.dns_off - UDP_HLEN;
    let udp: *mut [u8; UDP_HLEN] = ptr_at(ctx, l4)?;
    let udp = unsafe { &mut *udp };
    udp.swap(0, 2);
    udp.swap(1, 3);
    let len = udp_len.to_be_bytes();
    udp[4] = len[0];
    udp[5] = len[1];
    let udp_sum =
        u16::from_be_bytes([udp[0], udp[1]]) as u32 + u16::from_be_bytes([udp[2], udp[3]]) as u32 + udp_len as u32;
    let csum = checksum::finish(pseudo_sum + udp_sum + dns_sum).to_be_bytes();
    udp[6] = csum[0];
    udp[7] = csum[1];
    Some(())
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
