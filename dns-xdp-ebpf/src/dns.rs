//! Stages 2 and 3: the DNS header, then the question. The message is copied
//! into per-CPU scratch memory first, so the qname can be read a word at a
//! time and at offsets the verifier can bound.

use aya_ebpf::{helpers::bpf_xdp_load_bytes, programs::XdpContext};
use dns_xdp_common::{AnswerKey, CLASS_CH, CLASS_IN, MAX_QNAME_LEN, MAX_QUERY_LEN, Verdict, checksum, flags, name};

use crate::{
    headers::PktDesc,
    scratch::{DNS_HLEN, MSG_BUF, MSG_SHIFT, QNAME_WORDS, Scratch, be16, byte, carried, launder, past_qname},
};

/// Most labels a 255-octet name can hold.
const MAX_LABELS: usize = 128;

/// Copies the DNS message of a query of a length the fast path parses into
/// `scratch.msg`.
#[inline(always)]
pub fn load(ctx: &XdpContext, pkt: &PktDesc, scratch: &mut Scratch) -> Result<(), Verdict> {
    // SAFETY: the helper bounds-checks against the packet; the length is
    // 12..=MAX_QUERY_LEN (checked by the caller), the size of the
    // destination.
    let loaded = unsafe {
        bpf_xdp_load_bytes(
            ctx.ctx,
            pkt.dns_off as u32,
            scratch.msg.as_mut_ptr().add(MSG_SHIFT).cast(),
            pkt.dns_len as u32,
        )
    };
    if loaded != 0 {
        return Err(Verdict::DropInternal);
    }
    Ok(())
}

/// Whether the UDP payload is a DNS message the fast path parses.
#[inline(always)]
pub fn check_len(pkt: &PktDesc) -> Result<(), Verdict> {
    if pkt.dns_len < DNS_HLEN {
        return Err(Verdict::DropMalformed);
    }
    if pkt.dns_len > MAX_QUERY_LEN {
        return Err(Verdict::PassLongQuery);
    }
    Ok(())
}

/// The header fields later stages use.
pub struct DnsHeader {
    /// The query's flags word.
    pub flags: u16,
    /// 0, or 1 for an OPT record.
    pub arcount: u16,
}

/// A standard query with one question, no answers, and at most one
/// additional record.
#[inline(always)]
pub fn header(msg: &[u8; MSG_BUF]) -> Result<DnsHeader, Verdict> {
    let query_flags = be16(msg, 2);
    if query_flags & flags::QR != 0 {
        // A response sent to the service port: nobody is to answer it.
        return Err(Verdict::DropMalformed);
    }
    if query_flags & (flags::OPCODE | flags::TC) != 0 || be16(msg, 4) != 1 || be16(msg, 6) != 0 || be16(msg, 8) != 0 {
        return Err(Verdict::PassHeader);
    }
    let arcount = be16(msg, 10);
    if arcount > 1 {
        return Err(Verdict::PassHeader);
    }
    Ok(DnsHeader { flags: query_flags, arcount })
}

/// The question, as the lookup and the reply need it.
pub struct Question {
    /// Wire length of the qname, root label included; 1..=255.
    pub qname_len: usize,
    /// The DNS message length, bounded again after the loops.
    pub dns_len: usize,
    pub qtype: u16,
    /// IN, or CH for the server's identity.
    pub qclass: u16,
    /// [`name::hash_lower`] of the qname.
    pub hash: u64,
    /// Checksum contribution of the question as the client sent it, at its
    /// place in the message.
    pub sum: u32,
    /// 1 when the query's OPT record has the DO bit: part of the key (a
    /// signed zone's DO answer is an entry of its own). Set by
    /// [`crate::edns::dnssec_ok`] before the lookup.
    pub dnssec_ok: u16,
}

impl Question {
    /// DNS offset just past QCLASS.
    #[inline(always)]
    pub fn end(&self) -> usize {
        DNS_HLEN + self.qname_len + 4
    }

    #[inline(always)]
    pub fn key(&self) -> AnswerKey {
        AnswerKey {
            name_hash: self.hash,
            qtype: self.qtype,
            qname_len: self.qname_len as u16,
            qclass: self.qclass,
            dnssec_ok: self.dnssec_ok,
        }
    }
}

/// Walks the qname, folds and hashes it into `scratch.lname`, and reads
/// QTYPE and QCLASS.
#[inline(always)]
pub fn question(scratch: &mut Scratch, dns_len: usize) -> Result<Question, Verdict> {
    let msg = &scratch.msg;
    // Walk the labels to find the qname's length. Compression cannot occur
    // in a question (nothing precedes it to point to), so a pointer here is
    // an oddity for the daemon to judge.
    let mut pos = DNS_HLEN;
    let mut qname_len = 0;
    for _ in 0..MAX_LABELS {
        if pos >= dns_len {
            return Err(Verdict::PassQname);
        }
        let label = byte(msg, pos) as usize;
        if label == 0 {
            qname_len = pos + 1 - DNS_HLEN;
            break;
        }
        if label & 0xc0 != 0 {
            return Err(Verdict::PassQname);
        }
        pos += label + 1;
        // On `pos` itself, not `pos - DNS_HLEN`: this bound keeps
        // `byte(msg, pos)` in the buffer once the compiler drops its mask,
        // and before 6.11 the verifier does not carry a bound on `r - const`
        // back to `r`.
        if pos >= DNS_HLEN + MAX_QNAME_LEN {
            return Err(Verdict::PassQname);
        }
    }
    let qname_len = launder(&mut scratch.carried[carried::QNAME_LEN], qname_len as u64) as usize;
    let dns_len = launder(&mut scratch.carried[carried::DNS_LEN], dns_len as u64) as usize;
    if qname_len == 0 || qname_len > MAX_QNAME_LEN || dns_len > MAX_QUERY_LEN || DNS_HLEN + qname_len + 4 > dns_len {
        return Err(Verdict::PassQname);
    }

    // One pass over the name, a word at a time: fold and hash it for the
    // key, and sum it as the client sent it for the UDP checksum (the
    // question goes back unchanged, letter case included). Bytes past the
    // name are masked off the last word.
    launder(&mut scratch.carried[carried::QNAME_WORDS], qname_len.div_ceil(8) as u64);
    let mut hash = name::FNV_OFFSET;
    let mut sum_le = 0u64;
    for i in 0..QNAME_WORDS {
        if past_qname(&scratch.carried[carried::QNAME_WORDS], i) {
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
    let hash = launder(&mut scratch.carried[carried::HASH], hash);
    let question_sum = launder(&mut scratch.carried[carried::QUESTION_SUM], question_sum as u64) as u32;
    let qname_len = launder(&mut scratch.carried[carried::QNAME_LEN], qname_len as u64) as usize & 0x1ff;
    let dns_len = launder(&mut scratch.carried[carried::DNS_LEN], dns_len as u64) as usize & 0x3ff;
    if qname_len > MAX_QNAME_LEN || DNS_HLEN + qname_len + 4 > dns_len {
        return Err(Verdict::DropInternal);
    }
    // QTYPE and QCLASS follow the name at an offset of its parity.
    let msg = &scratch.msg;
    let qtype = be16(msg, DNS_HLEN + qname_len);
    let qclass = be16(msg, DNS_HLEN + qname_len + 2);
    let sum = question_sum + checksum::at_offset(qtype as u32 + qclass as u32, qname_len);
    // CH questions are keyed by class like any other: the table holds only
    // the identity answers in it.
    if qclass != CLASS_IN && qclass != CLASS_CH {
        return Err(Verdict::PassQclass);
    }
    Ok(Question { qname_len, dns_len, qtype, qclass, hash, sum, dnssec_ok: 0 })
}
