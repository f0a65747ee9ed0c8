//! Stage 8: the query becomes its response in place. The size is checked
//! against the client's limit, the checksum is built from partial sums, the
//! frame is resized (at the tail, or at the head when the tail has no
//! room), the body, header and OPT record (with the server's NSID option
//! when the query asked for it, and the COOKIE option `cookie` prepared)
//! are written, and the Ethernet, IP and UDP
//! headers are turned around.

use aya_ebpf::{
    helpers::{bpf_xdp_adjust_head, bpf_xdp_adjust_tail, bpf_xdp_load_bytes, bpf_xdp_store_bytes},
    programs::XdpContext,
};
use dns_xdp_common::{
    Config, MAX_BODY_LEN, MAX_NSID_OPTION_LEN, MAX_QNAME_LEN, OPT_RR_LEN, Verdict, checksum,
    cookie::COOKIE_OPTION_LEN,
    net::{EthHdr, IPPROTO_UDP, Ipv4Hdr, Ipv6Hdr, UdpHdr},
    opt_record, reply_flags, udp_reply_limit,
};

use crate::{
    answer::Answer,
    dns::{DnsHeader, Question},
    edns::Edns,
    headers::PktDesc,
    packet::{header_mut, ptr_at},
    scratch::{DNS_HLEN, HEAD_BUF, Scratch, be16, carried, launder},
};

const REPLY_HOP_LIMIT: u8 = 64;

/// Everything the earlier stages established about the query.
pub struct Query<'a> {
    pub pkt: &'a PktDesc,
    pub header: &'a DnsHeader,
    pub question: &'a Question,
    pub edns: &'a Edns,
}

#[inline(always)]
pub fn answer(
    ctx: &XdpContext,
    query: &Query,
    answer: &Answer,
    config: &Config,
    scratch: &mut Scratch,
) -> Result<(), Verdict> {
    let Query { pkt, header, question, edns } = *query;
    let msg = &scratch.msg;
    let has_edns = edns.present;
    let body_len = answer.body_len;
    let qname_len = question.qname_len;
    let question_end = question.end();
    // The NSID option, as the daemon prepared it in the config map; empty
    // when the server has no identity, as the daemon leaves it out then.
    // Laundered so both ways in converge on one state for the verifier.
    // SAFETY: a valid, aligned u64 in per-CPU map memory; `edns::parse`
    // wrote it for this query when it has an OPT record.
    let nsid_asked = unsafe { core::ptr::read_volatile(&scratch.carried[carried::NSID_SEEN]) } != 0;
    let nsid_len = if has_edns && nsid_asked { config.nsid_option_len as usize } else { 0 };
    let nsid_len = launder(&mut scratch.carried[carried::NSID_LEN], nsid_len as u64) as usize;
    if nsid_len > MAX_NSID_OPTION_LEN {
        return Err(Verdict::DropInternal);
    }
    // The COOKIE option `cookie::check` prepared, after the NSID option as
    // the daemon puts it; 0 or its one length.
    // Laundered like the NSID length, so both ways converge on one state.
    // SAFETY: valid, aligned u64s in per-CPU map memory.
    let cookie_len = unsafe { core::ptr::read_volatile(&scratch.carried[carried::COOKIE_OUT_LEN]) } as usize;
    let cookie_len = if has_edns { cookie_len } else { 0 };
    let cookie_len = launder(&mut scratch.carried[carried::COOKIE_OUT_LEN], cookie_len as u64) as usize;
    if cookie_len != 0 && cookie_len != COOKIE_OPTION_LEN {
        return Err(Verdict::DropInternal);
    }
    let cookie_sum = unsafe { core::ptr::read_volatile(&scratch.carried[carried::COOKIE_OUT_SUM]) } as u32;
    let opt_len = if has_edns { OPT_RR_LEN + nsid_len + cookie_len } else { 0 };
    let reply_len = question_end + body_len + opt_len;
    let client_payload = if has_edns { Some(edns.client_payload) } else { None };
    if reply_len > udp_reply_limit(client_payload, config.edns_udp_payload) as usize {
        return Err(Verdict::PassTooBig);
    }
    // SAFETY: see `answer::read`; every read of the slot is volatile.
    let slot = unsafe { &*answer.slot };

    // The new DNS header and OPT record, and their checksum contributions.
    let header: [u16; 6] = [
        be16(msg, 0),
        reply_flags(unsafe { core::ptr::read_volatile(&slot.flags) }, header.flags),
        1,
        unsafe { core::ptr::read_volatile(&slot.ancount) },
        unsafe { core::ptr::read_volatile(&slot.nscount) },
        unsafe { core::ptr::read_volatile(&slot.arcount) } + has_edns as u16,
    ];
    let mut header_bytes = [0u8; DNS_HLEN];
    let mut header_sum = 0u32;
    for (i, word) in header.iter().enumerate() {
        header_sum += *word as u32;
        let b = word.to_be_bytes();
        header_bytes[2 * i] = b[0];
        header_bytes[2 * i + 1] = b[1];
    }
    let mut opt_bytes = opt_record(config.edns_udp_payload, 0, edns.do_bit != 0);
    // RDLENGTH: the NSID and COOKIE options, if any.
    let options_len = nsid_len + cookie_len;
    opt_bytes[OPT_RR_LEN - 2] = (options_len >> 8) as u8;
    opt_bytes[OPT_RR_LEN - 1] = options_len as u8;
    let opt_sum = if has_edns {
        let mut s = 0u32;
        for i in 0..OPT_RR_LEN / 2 {
            s += u16::from_be_bytes([opt_bytes[2 * i], opt_bytes[2 * i + 1]]) as u32;
        }
        s += (opt_bytes[OPT_RR_LEN - 1] as u32) << 8;
        let mut sum = checksum::at_offset(s, question_end + body_len);
        if nsid_len != 0 {
            sum += checksum::at_offset(config.nsid_option_csum, question_end + body_len + OPT_RR_LEN);
        }
        if cookie_len != 0 {
            sum += checksum::at_offset(cookie_sum, question_end + body_len + OPT_RR_LEN + nsid_len);
        }
        sum
    } else {
        0
    };
    let body_sum = checksum::at_offset(unsafe { core::ptr::read_volatile(&slot.body_csum) }, question_end);
    let dns_sum = header_sum + question.sum + body_sum + opt_sum;

    // Resize the frame to the reply. Nothing has been written yet, so a
    // refusal can still hand the untouched query to the daemon.
    let old_len = ctx.data_end() - ctx.data();
    let new_len = pkt.dns_off + question_end + body_len + opt_len;
    let delta = new_len as i32 - old_len as i32;
    // SAFETY: the helpers validate the deltas against the buffer.
    if delta != 0 && unsafe { bpf_xdp_adjust_tail(ctx.ctx, delta) } != 0 {
        // Tailroom depends on the driver and on how the sender allocated
        // the frame (a veth fed by a local socket may have under 200
        // bytes); XDP_PACKET_HEADROOM (256 bytes) in front is guaranteed.
        // Grow there instead: keep a copy of everything before the
        // answer, move the start back, write the copy at the new start.
        // Laundered (see `carried`), and bounded as `prefix - 1 < HEAD_BUF`:
        // the helpers need a length of at least 1, 6.1 learns no lower bound
        // from `!= 0`, and a mask after the check would lose it again.
        let prefix =
            launder(&mut scratch.carried[carried::HEAD_PREFIX], (pkt.dns_off + question_end - 1) as u64) as usize;
        if delta < 0 || prefix >= HEAD_BUF {
            return Err(Verdict::PassNoRoom);
        }
        let prefix = prefix + 1;
        // SAFETY: 1..=HEAD_BUF bytes into a HEAD_BUF buffer, bounds-checked
        // against the packet by the helper.
        if unsafe { bpf_xdp_load_bytes(ctx.ctx, 0, scratch.head.as_mut_ptr().cast(), prefix as u32) } != 0 {
            return Err(Verdict::PassNoRoom);
        }
        // SAFETY: as above.
        if unsafe { bpf_xdp_adjust_head(ctx.ctx, -delta) } != 0 {
            return Err(Verdict::PassNoRoom);
        }
        // SAFETY: as above; the frame is now `new_len` long.
        if unsafe { bpf_xdp_store_bytes(ctx.ctx, 0, scratch.head.as_mut_ptr().cast(), prefix as u32) } != 0 {
            return Err(Verdict::DropInternal);
        }
    }

    // From here on the packet is being rewritten: failures are internal.
    // Views derived before the resize are stale; take them again.
    let body_off = pkt.dns_off + question_end;
    // SAFETY: the helper bounds-checks the packet offset; the source is map
    // memory at least as long as the length given.
    // Offset and length laundered and bounded again (see `carried`): the
    // compiler drops the masks as redundant, leaving 6.1's verifier with
    // qname_len <= 511 and body_len <= 65535. The length as `len - 1 < MAX`
    // for the lower bound of 1 the helper needs.
    let body_at = launder(&mut scratch.carried[carried::BODY_AT], qname_len as u64) as usize;
    let body_len_m1 = launder(&mut scratch.carried[carried::BODY_LEN], (body_len - 1) as u64) as usize;
    if body_at > MAX_QNAME_LEN || body_len_m1 >= MAX_BODY_LEN {
        return Err(Verdict::DropInternal);
    }
    let body = slot.data.as_ptr().wrapping_add(body_at);
    if unsafe { bpf_xdp_store_bytes(ctx.ctx, body_off as u32, body as *mut _, (body_len_m1 + 1) as u32) } != 0 {
        return Err(Verdict::DropInternal);
    }
    // The DNS header and the OPT record are small and fixed: written
    // directly rather than through another helper call each.
    let Some(dns_header) = ptr_at::<[u8; DNS_HLEN]>(ctx, pkt.dns_off) else { return Err(Verdict::DropInternal) };
    // SAFETY: bounds checked by ptr_at.
    unsafe { *dns_header = header_bytes };
    if has_edns {
        let Some(opt) = ptr_at::<[u8; OPT_RR_LEN]>(ctx, (body_off + body_len) & 0x7ff) else {
            return Err(Verdict::DropInternal);
        };
        // SAFETY: bounds checked by ptr_at.
        unsafe { *opt = opt_bytes };
    }
    if nsid_len != 0 {
        // Laundered and bounded as `len - 1 < MAX` (see the body above).
        let nsid_m1 = launder(&mut scratch.carried[carried::NSID_LEN], (nsid_len - 1) as u64) as usize;
        if nsid_m1 >= MAX_NSID_OPTION_LEN {
            return Err(Verdict::DropInternal);
        }
        let nsid = config.nsid_option.as_ptr();
        let at = (body_off + body_len + OPT_RR_LEN) as u32;
        // SAFETY: the helper bounds-checks the packet offset; the source is
        // map memory at least MAX_NSID_OPTION_LEN long.
        if unsafe { bpf_xdp_store_bytes(ctx.ctx, at, nsid as *mut _, (nsid_m1 + 1) as u32) } != 0 {
            return Err(Verdict::DropInternal);
        }
    }

    if cookie_len != 0 {
        let at = (body_off + body_len + OPT_RR_LEN + nsid_len) as u32;
        // SAFETY: the helper bounds-checks the packet offset; the source is
        // per-CPU map memory of exactly this length.
        let cookie = scratch.cookie.as_ptr();
        if unsafe { bpf_xdp_store_bytes(ctx.ctx, at, cookie as *mut _, COOKIE_OPTION_LEN as u32) } != 0 {
            return Err(Verdict::DropInternal);
        }
    }

    // SAFETY: a valid, aligned u64 in the slot.
    if unsafe { core::ptr::read_volatile(&slot.version) } != answer.trailer {
        // Overwritten under us: the packet may mix two answers.
        return Err(Verdict::DropTorn);
    }
    // Tell the daemon the answer is in use (it reuses slots whose mark is
    // clear). Written only when clear, so a hot slot's line stays clean.
    // SAFETY: a byte of the slot; the daemon's writes of it race
    // harmlessly with this one (either way the mark means "served lately").
    unsafe {
        let mark = &raw mut (*answer.slot).referenced;
        if core::ptr::read_volatile(mark) == 0 {
            core::ptr::write_volatile(mark, 1);
        }
    }
    turn_around(ctx, pkt, reply_len, dns_sum).ok_or(Verdict::DropInternal)
}

/// Turns the query's Ethernet, IP and UDP headers around and fills in the
/// lengths and checksums of the reply.
#[inline(always)]
fn turn_around(ctx: &XdpContext, pkt: &PktDesc, reply_len: usize, dns_sum: u32) -> Option<()> {
    header_mut::<EthHdr>(ctx, 0)?.swap_addrs();
    let udp_len = (UdpHdr::LEN + reply_len) as u16;
    let mut pseudo_sum = IPPROTO_UDP as u32 + udp_len as u32;
    if pkt.ipv6 {
        let ip: &mut Ipv6Hdr = header_mut(ctx, pkt.l3)?;
        ip.swap_addrs();
        ip.payload_len = udp_len.to_be_bytes();
        ip.hop_limit = REPLY_HOP_LIMIT;
        pseudo_sum += ip.addrs_sum();
    } else {
        let ip: &mut Ipv4Hdr = header_mut(ctx, pkt.l3)?;
        ip.swap_addrs();
        ip.tos = 0;
        ip.total_len = (Ipv4Hdr::LEN as u16 + udp_len).to_be_bytes();
        // ID: unused with DF set (RFC 6864 4.1).
        ip.id = [0; 2];
        ip.frag = Ipv4Hdr::DF.to_be_bytes();
        ip.ttl = REPLY_HOP_LIMIT;
        ip.check = [0; 2];
        ip.check = (!checksum::fold(ip.sum())).to_be_bytes();
        pseudo_sum += ip.addrs_sum();
    }
    let udp: &mut UdpHdr = header_mut(ctx, pkt.l4)?;
    udp.swap_ports();
    udp.len = udp_len.to_be_bytes();
    let udp_sum = udp.ports_sum() + udp_len as u32;
    udp.check = checksum::finish(pseudo_sum + udp_sum + dns_sum).to_be_bytes();
    Some(())
}

/// Turns the query into a slipped answer (response rate limiting): the
/// answer's header with TC=1 and no records, the question, and a bare OPT
/// record when the query had one, as the daemon's `wire::slip` builds it.
/// Never longer than the query, so the frame only shrinks.
#[inline(always)]
pub fn slip(
    ctx: &XdpContext,
    query: &Query,
    answer: &Answer,
    config: &Config,
    scratch: &mut Scratch,
) -> Result<(), Verdict> {
    let Query { pkt, header, question, edns } = *query;
    let has_edns = edns.present;
    let question_end = question.end();
    let opt_len = if has_edns { OPT_RR_LEN } else { 0 };
    let reply_len = question_end + opt_len;
    // SAFETY: see `answer::read`; every read of the slot is volatile.
    let slot = unsafe { &*answer.slot };
    let flags = reply_flags(unsafe { core::ptr::read_volatile(&slot.flags) }, header.flags) | dns_xdp_common::flags::TC;
    let header: [u16; 6] = [be16(&scratch.msg, 0), flags, 1, 0, 0, has_edns as u16];
    let mut header_bytes = [0u8; DNS_HLEN];
    let mut header_sum = 0u32;
    for (i, word) in header.iter().enumerate() {
        header_sum += *word as u32;
        let b = word.to_be_bytes();
        header_bytes[2 * i] = b[0];
        header_bytes[2 * i + 1] = b[1];
    }
    let opt_bytes = opt_record(config.edns_udp_payload, 0, edns.do_bit != 0);
    let opt_sum = if has_edns {
        let mut s = 0u32;
        for i in 0..OPT_RR_LEN / 2 {
            s += u16::from_be_bytes([opt_bytes[2 * i], opt_bytes[2 * i + 1]]) as u32;
        }
        s += (opt_bytes[OPT_RR_LEN - 1] as u32) << 8;
        checksum::at_offset(s, question_end)
    } else {
        0
    };
    let dns_sum = header_sum + question.sum + opt_sum;
    let old_len = ctx.data_end() - ctx.data();
    let new_len = pkt.dns_off + reply_len;
    let delta = new_len as i32 - old_len as i32;
    if delta > 0 {
        return Err(Verdict::DropInternal);
    }
    // SAFETY: the helper validates the delta against the buffer.
    if delta != 0 && unsafe { bpf_xdp_adjust_tail(ctx.ctx, delta) } != 0 {
        return Err(Verdict::DropInternal);
    }
    let Some(dns_header) = ptr_at::<[u8; DNS_HLEN]>(ctx, pkt.dns_off) else { return Err(Verdict::DropInternal) };
    // SAFETY: bounds checked by ptr_at.
    unsafe { *dns_header = header_bytes };
    if has_edns {
        let Some(opt) = ptr_at::<[u8; OPT_RR_LEN]>(ctx, (pkt.dns_off + question_end) & 0x7ff) else {
            return Err(Verdict::DropInternal);
        };
        // SAFETY: bounds checked by ptr_at.
        unsafe { *opt = opt_bytes };
    }
    turn_around(ctx, pkt, reply_len, dns_sum).ok_or(Verdict::DropInternal)
}
