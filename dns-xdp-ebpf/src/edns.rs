//! Stage 5: the OPT record, if the query has one (RFC 6891). Only what the
//! daemon would answer the same way is let through.

use dns_xdp_common::{MIN_UDP_PAYLOAD, OPT_RR_LEN, Verdict, edns};

use crate::{
    dns::{DnsHeader, Question},
    scratch::{MSG_BUF, be16, byte},
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

#[inline(always)]
pub fn parse(msg: &[u8; MSG_BUF], header: &DnsHeader, question: &Question) -> Result<Edns, Verdict> {
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
    // Only options the daemon ignores too may be present: cookies of a
    // valid length (RFC 7873 4: 8, or 16 to 40 octets).
    let mut at = opt + OPT_RR_LEN;
    for _ in 0..MAX_EDNS_OPTIONS {
        if at >= end {
            break;
        }
        if at + 4 > end || be16(msg, at) != edns::OPTION_COOKIE {
            return Err(Verdict::PassEdns);
        }
        let len = be16(msg, at + 2) as usize;
        if !(len == 8 || (16..=40).contains(&len)) {
            return Err(Verdict::PassEdns);
        }
        at += 4 + len;
    }
    if at != end {
        return Err(Verdict::PassEdns);
    }
    Ok(Edns { present: true, client_payload, do_bit })
}
