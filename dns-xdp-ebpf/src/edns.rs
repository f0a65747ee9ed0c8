//! Stage 5: the OPT record, if the query has one (RFC 6891). Only what the
//! daemon would answer the same way is let through.

use dns_xdp_common::{MIN_UDP_PAYLOAD, OPT_RR_LEN, Verdict, cookie, edns};

use crate::{
    dns::{DnsHeader, Question},
    scratch::{MSG_BUF, be16, byte, carried, launder},
};

/// Options walked in an OPT record before giving up.
const MAX_EDNS_OPTIONS: usize = 4;

/// The query's EDNS, as the reply needs it.
pub struct Edns {
    /// The query has an OPT record (so the reply gets one).
    pub present: bool,
    /// The client's UDP payload size; meaningful only when `present`.
    pub client_payload: u16,
    /// The DO bit, in place in its flags word.
    pub do_bit: u16,
}

/// The DO bit of the OPT record that would follow the question, as 1 or
/// 0, read before the slot lookup (the bit is part of the key) and before
/// [`parse`] checks the record: a query whose OPT record [`parse`] rejects
/// is passed whatever this read.
#[inline(always)]
pub fn dnssec_ok(msg: &[u8; MSG_BUF], header: &DnsHeader, question: &Question) -> u16 {
    if header.arcount != 1 {
        return 0;
    }
    // `be16` masks its offset; past the message it reads bytes `parse`
    // rejects anyway.
    u16::from(be16(msg, question.end() + 7) & edns::DO != 0)
}

#[inline(always)]
pub fn parse(
    msg: &[u8; MSG_BUF],
    carried: &mut [u64; carried::COUNT],
    header: &DnsHeader,
    question: &Question,
) -> Result<Edns, Verdict> {
    let question_end = question.end();
    let dns_len = question.dns_len;
    if header.arcount != 1 {
        if question_end != dns_len {
            return Err(Verdict::PassHeader);
        }
        return Ok(Edns { present: false, client_payload: MIN_UDP_PAYLOAD, do_bit: 0 });
    }
    let opt = question_end;
    if opt + OPT_RR_LEN > dns_len
        || byte(msg, opt) != 0
        || be16(msg, opt + 1) != edns::OPT_TYPE
        || byte(msg, opt + 6) != 0
    {
        // Not a well-formed OPT, or an EDNS version the daemon answers
        // with BADVERS (RFC 6891 6.1.3).
        return Err(Verdict::PassEdns);
    }
    let client_payload = be16(msg, opt + 3);
    let do_bit = be16(msg, opt + 7) & edns::DO;
    let rdlen = be16(msg, opt + 9) as usize;
    let end = opt + OPT_RR_LEN + rdlen;
    if end != dns_len {
        return Err(Verdict::PassEdns);
    }
    // Only options the daemon treats the same way may be present: one
    // cookie of a valid length (RFC 7873 4: 8, or 16 to 40 octets), which
    // the `cookie` stage answers (or ignores, with cookies off, as the
    // daemon then does), and an empty NSID (RFC 5001 2.1), which it
    // answers with its identity.
    let mut at = opt + OPT_RR_LEN;
    // Whether an (empty) NSID option was seen, which the reply answers with
    // the server's identity (RFC 5001 2.1), goes through memory rather
    // than a register, and the offset is laundered after each option: otherwise
    // every sequence of option kinds leaves the loop with its own bounds,
    // and the verifier walks the rest of the program once for each (see
    // `launder`). `be16` masks its offset, so no bound is lost.
    launder(&mut carried[carried::NSID_SEEN], 0);
    launder(&mut carried[carried::COOKIE_LEN], 0);
    for _ in 0..MAX_EDNS_OPTIONS {
        if at >= end {
            break;
        }
        if at + 4 > end {
            return Err(Verdict::PassEdns);
        }
        let code = be16(msg, at);
        let len = be16(msg, at + 2) as usize;
        let valid = match code {
            edns::OPTION_COOKIE => cookie::well_formed_len(len),
            edns::OPTION_NSID => len == 0,
            _ => false,
        };
        if !valid {
            return Err(Verdict::PassEdns);
        }
        if code == edns::OPTION_NSID {
            launder(&mut carried[carried::NSID_SEEN], 1);
        }
        if code == edns::OPTION_COOKIE {
            // SAFETY: a valid, aligned u64 in per-CPU map memory.
            if unsafe { core::ptr::read_volatile(&carried[carried::COOKIE_LEN]) } != 0 {
                // Two COOKIE options: FORMERR from the daemon (RFC 7873 5.2.1).
                return Err(Verdict::PassEdns);
            }
            launder(&mut carried[carried::COOKIE_AT], (at + 4) as u64);
            launder(&mut carried[carried::COOKIE_LEN], len as u64);
        }
        at = launder(&mut carried[carried::EDNS_AT], (at + 4 + len) as u64) as usize;
    }
    if at != end {
        return Err(Verdict::PassEdns);
    }
    // Whether the query asked for NSID stays in `carried[NSID_SEEN]` until
    // the reply reads it: a flag here would be live through the name
    // compare and double the states walked there.
    Ok(Edns { present: true, client_payload, do_bit })
}
