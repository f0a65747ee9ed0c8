//! From a query's bytes to a reply's bytes: the daemon's answer path, and the
//! definition of what the XDP fast path must reproduce.
//!
//! A reply is assembled from two parts. The *prepared answer* depends only on
//! the question (lower-cased qname, qtype) and the zone data: header flags,
//! section counts, and the encoded answer, authority and additional sections
//! (the *body*). The rest depends on the query: ID, RD/CD, the question as
//! the client spelled it, and the OPT record. The daemon assembles every
//! reply this way, and hands prepared answers to the fast path, which
//! assembles the same bytes in the kernel.

use std::sync::Arc;

use hickory_proto::{
    op::{Message, OpCode, Query, ResponseCode},
    rr::{DNSClass, Name, RecordType, rdata::opt::EdnsCode},
};

use dns_xdp_common::{self as common, MAX_QNAME_LEN, OPT_RR_LEN, flags, opt_record, reply_flags, udp_reply_limit};

use crate::{
    answer_cache::{AnswerCache, CacheKey, CachedAnswer},
    authority::{Catalog, ExtendedError},
    cookies::{self, Peer, QueryCookie},
    identity,
    prepared::{HEADER_LEN, PreparedAnswer},
};

/// Extended rcode BADVERS (16, RFC 6891 6.1.3): upper 8 bits go in the OPT.
const BADVERS_HIGH: u8 = 1;

/// The discriminants index [`crate::counters::TRANSPORTS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp = 0,
    Tcp = 1,
}

/// Server-wide settings that shape replies.
#[derive(Clone, Copy, Debug)]
pub struct ReplySettings {
    /// UDP payload size advertised in our OPT record (and the largest UDP
    /// reply we send).
    pub edns_udp_payload: u16,
    /// This server's identity, for anycast operators to tell which PoP
    /// answered: sent in the NSID option to queries that ask for it
    /// (RFC 5001) and as the TXT answer to `id.server.`/`hostname.bind.`
    /// in class CH (RFC 4892). Set once at start.
    pub nsid: Option<&'static [u8]>,
    /// The DNS cookie secrets; `None` when cookies are off (COOKIE options
    /// are then ignored, RFC 7873 5.2).
    pub cookies: Option<dns_xdp_common::cookie::Secrets>,
}

impl Default for ReplySettings {
    fn default() -> Self {
        Self { edns_udp_payload: 1232, nsid: None, cookies: None }
    }
}

/// A reply and what the daemon can learn from it.
#[derive(Debug)]
pub struct Reply {
    pub bytes: Vec<u8>,
    pub truncated: bool,
    /// The question, whether the query had DO, and the prepared answer,
    /// when the answer came from zone data and may be served by the fast
    /// path (as the entry for queries with that DO bit).
    pub cacheable: Option<(Name, RecordType, bool, Arc<PreparedAnswer>)>,
    /// The response code sent, extended rcodes included.
    pub rcode: ResponseCode,
    /// The zone whose data answered, if any.
    pub zone: Option<Name>,
    /// What the query's server cookie was, when it had a COOKIE option
    /// the server answered.
    pub cookie: Option<dns_xdp_common::cookie::Received>,
}

/// What a query asked, as far as the reply needs it.
struct ParsedQuery<'a> {
    id: u16,
    flags: u16,
    /// The question exactly as received (name in the client's case, type,
    /// class).
    raw_question: &'a [u8],
    /// Client's UDP payload size and DO bit, when the query had an OPT.
    edns: Option<(u16, bool)>,
    /// The OPT carried an NSID option.
    nsid_requested: bool,
    /// The COOKIE option data to answer with (client cookie, fresh server
    /// cookie), when the query had one and cookies are on.
    cookie: Option<[u8; dns_xdp_common::cookie::COOKIE_DATA_LEN]>,
}

/// Answers one query. `None` means no reply at all: too short to carry a
/// header, or a response (QR=1), which must never be answered.
pub fn respond(catalog: &Catalog, settings: &ReplySettings, query: &[u8], transport: Transport) -> Option<Reply> {
    respond_cached(catalog, None, settings, query, transport)
}

/// Like [`respond`], with prepared answers taken from and added to `cache`.
pub fn respond_cached(
    catalog: &Catalog,
    cache: Option<&AnswerCache>,
    settings: &ReplySettings,
    query: &[u8],
    transport: Transport,
) -> Option<Reply> {
    respond_to(catalog, cache, settings, query, transport, None)
}

/// Like [`respond_cached`], for a query from `peer`: what a server cookie
/// is computed over. Without a peer, COOKIE options are ignored as with
/// cookies off.
pub fn respond_to(
    catalog: &Catalog,
    cache: Option<&AnswerCache>,
    settings: &ReplySettings,
    query: &[u8],
    transport: Transport,
    peer: Option<&Peer>,
) -> Option<Reply> {
    if query.len() < HEADER_LEN {
        return None;
    }
    let id = u16::from_be_bytes([query[0], query[1]]);
    let qflags = u16::from_be_bytes([query[2], query[3]]);
    if qflags & flags::QR != 0 {
        return None;
    }
    let opcode_bits = qflags & flags::OPCODE;
    let message = match Message::from_vec(query) {
        Ok(m) => m,
        // Another opcode may define the rest of the message differently, so
        // a body that does not parse as a query says nothing: NOTIMP, as
        // NSD answers too (it checks the opcode before the body).
        Err(_) if opcode_bits != 0 => return Some(header_only(id, qflags, opcode_bits, ResponseCode::NotImp)),
        // The header was readable, so say what went wrong (RFC 1035 4.1.1).
        Err(_) => return Some(header_only(id, qflags, opcode_bits, ResponseCode::FormErr)),
    };
    let raw_question = question_bytes(query, &message);
    let edns = message.edns.as_ref().map(|e| (e.max_payload(), e.flags().dnssec_ok));
    let nsid_requested = message.edns.as_ref().is_some_and(|e| e.option(EdnsCode::NSID).is_some());
    let mut parsed = ParsedQuery {
        id,
        flags: qflags,
        raw_question: raw_question.unwrap_or(&[]),
        edns,
        nsid_requested,
        cookie: None,
    };
    let mut cookie_verdict = None;
    if let (Some(secrets), Some(peer), Some(e)) = (&settings.cookies, peer, &message.edns) {
        match cookies::find(e.options()) {
            QueryCookie::Absent => {}
            // RFC 7873 5.2.1.
            QueryCookie::Malformed => {
                return Some(reply_without_answer(&parsed, settings, 0, ResponseCode::FormErr));
            }
            QueryCookie::Present(data) => {
                let (verdict, answer) = cookies::answer(secrets, data, peer);
                cookie_verdict = Some(verdict);
                parsed.cookie = Some(answer);
            }
        }
    }
    let mut reply = respond_parsed(catalog, cache, settings, &message, &parsed, raw_question, opcode_bits, transport);
    reply.cookie = cookie_verdict;
    Some(reply)
}

/// The reply to a query that parsed.
#[expect(clippy::too_many_arguments, reason = "the parts of one query, each used")]
fn respond_parsed(
    catalog: &Catalog,
    cache: Option<&AnswerCache>,
    settings: &ReplySettings,
    message: &Message,
    parsed: &ParsedQuery<'_>,
    raw_question: Option<&[u8]>,
    opcode_bits: u16,
    transport: Transport,
) -> Reply {
    if message.metadata.op_code != OpCode::Query {
        return reply_without_answer(parsed, settings, opcode_bits, ResponseCode::NotImp);
    }
    if parsed.cookie.is_some() && message.queries.is_empty() && message.answers.is_empty() {
        // A query for a server cookie alone (RFC 7873 5.4): NOERROR with
        // the cookie, as Knot answers it.
        return reply_without_answer(parsed, settings, 0, ResponseCode::NoError);
    }
    let (Some(_), [question]) = (raw_question, message.queries.as_slice()) else {
        return reply_without_answer(parsed, settings, 0, ResponseCode::FormErr);
    };
    if let Some(e) = &message.edns
        && e.version() > 0
    {
        return badvers(parsed, settings);
    }
    if question.query_class() == DNSClass::CH {
        return identity_reply(parsed, settings, question, transport);
    }
    let class_any = question.query_class() == DNSClass::ANY;
    if question.query_class() != DNSClass::IN && !class_any {
        return reply_without_answer(parsed, settings, 0, ResponseCode::Refused);
    }
    let qtype = question.query_type();
    if matches!(qtype, RecordType::AXFR | RecordType::IXFR) {
        // Zone transfers are not offered, over TCP or UDP (where RFC 5936
        // 4.2 does not define them anyway). Looking the type up would give
        // a cacheable NODATA that the fast path could then serve over UDP.
        return reply_without_answer(parsed, settings, 0, ResponseCode::Refused);
    }

    let qname = question.name().to_lowercase();
    let dnssec_ok = parsed.edns.is_some_and(|(_, dnssec_ok)| dnssec_ok);
    if class_any {
        return class_any_reply(catalog, parsed, settings, &qname, qtype, transport);
    }
    // The question minus QTYPE/QCLASS, folded: the name as the map keys it.
    let name_len = parsed.raw_question.len() - 4;
    let key: CacheKey =
        (parsed.raw_question[..name_len].iter().map(|b| common::name::fold(*b)).collect(), u16::from(qtype), dnssec_ok);
    let entry = match cache.and_then(|c| c.get(&key)) {
        Some(entry) => entry,
        None => {
            let answer = if dnssec_ok { catalog.lookup_dnssec(&qname, qtype) } else { catalog.lookup(&qname, qtype) };
            let prepared = match PreparedAnswer::encode(&qname, qtype, &answer) {
                Ok(p) => p,
                Err(err) => {
                    tracing::warn!(%qname, ?qtype, %err, "cannot encode answer; replying SERVFAIL");
                    return reply_without_answer(parsed, settings, 0, ResponseCode::ServFail);
                }
            };
            let entry = CachedAnswer {
                prepared: Arc::new(prepared),
                from_zone: answer.fast_path_servable(),
                zone: answer.zone.clone(),
            };
            if let Some(cache) = cache {
                cache.insert(key, entry.clone());
            }
            entry
        }
    };
    let (bytes, truncated) = assemble(parsed, settings, &entry.prepared, transport);
    let rcode = ResponseCode::from(0, (entry.prepared.flags & flags::RCODE) as u8);
    let cacheable = entry.from_zone.then_some((qname, qtype, dnssec_ok, entry.prepared));
    Reply { bytes, truncated, cacheable, rcode, zone: entry.zone, cookie: None }
}

/// QCLASS * (RFC 1035 §3.2.5), answered as NSD 4.6 answers it (see
/// [`Catalog::lookup_class_any`]). Never from or into the answer cache,
/// which holds class IN answers, so never served by the fast path either.
fn class_any_reply(
    catalog: &Catalog,
    parsed: &ParsedQuery<'_>,
    settings: &ReplySettings,
    qname: &Name,
    qtype: RecordType,
    transport: Transport,
) -> Reply {
    let answer = catalog.lookup_class_any(qname, qtype, parsed.edns.is_some_and(|(_, dnssec_ok)| dnssec_ok));
    match PreparedAnswer::encode(qname, qtype, &answer) {
        Ok(prepared) => {
            let (bytes, truncated) = assemble(parsed, settings, &prepared, transport);
            Reply { bytes, truncated, cacheable: None, rcode: answer.rcode, zone: answer.zone, cookie: None }
        }
        Err(err) => {
            tracing::warn!(%qname, ?qtype, %err, "cannot encode answer; replying SERVFAIL");
            reply_without_answer(parsed, settings, 0, ResponseCode::ServFail)
        }
    }
}

/// The question section of a query with exactly one question, as received.
/// A question cannot be compressed (nothing precedes it to point to), so it
/// is the encoded name plus four bytes.
fn question_bytes<'a>(query: &'a [u8], message: &Message) -> Option<&'a [u8]> {
    let [_] = message.queries.as_slice() else { return None };
    let wire_len = wire_name_len(&query[HEADER_LEN..])?;
    query.get(HEADER_LEN..HEADER_LEN + wire_len + 4)
}

/// Length of an uncompressed wire name at the start of `bytes`.
fn wire_name_len(bytes: &[u8]) -> Option<usize> {
    let mut pos = 0;
    loop {
        let label = *bytes.get(pos)? as usize;
        if label & 0xc0 != 0 {
            return None;
        }
        pos += 1 + label;
        if label == 0 {
            return (pos <= MAX_QNAME_LEN).then_some(pos);
        }
    }
}

/// Assembles a reply around a prepared answer. A UDP reply that does not fit
/// the client's limit first leaves off what the client can do without
/// (RFC 2181 9: TC is not for data the answer merely could have carried):
/// for an authoritative answer the additional section, then, for a positive
/// answer, the authority section too. A referral's glue and a negative
/// answer's SOA are not optional (RFC 9471, RFC 2308 3); when what remains
/// still does not fit, TC is set over the question alone, as Knot and NSD
/// do, and the client retries over TCP.
fn assemble(
    parsed: &ParsedQuery<'_>,
    settings: &ReplySettings,
    prepared: &PreparedAnswer,
    transport: Transport,
) -> (Vec<u8>, bool) {
    let fixed_len = HEADER_LEN + parsed.raw_question.len() + opt_len(parsed, settings, prepared.ede);
    let limit = match transport {
        Transport::Tcp => usize::from(u16::MAX),
        Transport::Udp => usize::from(udp_reply_limit(parsed.edns.map(|(size, _)| size), settings.edns_udp_payload)),
    };
    let authoritative = prepared.flags & flags::AA != 0;
    let positive = prepared.flags & flags::RCODE == 0 && prepared.ancount > 0;
    let candidates = [
        Some((prepared.body.len(), [prepared.ancount, prepared.nscount, prepared.arcount])),
        authoritative.then_some((prepared.authority_end, [prepared.ancount, prepared.nscount, 0])),
        (authoritative && positive).then_some((prepared.answer_end, [prepared.ancount, 0, 0])),
    ];
    let fitting = candidates.into_iter().flatten().find(|(body_len, _)| fixed_len + body_len <= limit);
    let mut out = Vec::with_capacity(fixed_len + prepared.body.len());
    match fitting {
        Some((body_len, counts)) => {
            push_header(&mut out, parsed, prepared.flags, counts);
            out.extend_from_slice(parsed.raw_question);
            out.extend_from_slice(&prepared.body[..body_len]);
        }
        None => {
            push_header(&mut out, parsed, prepared.flags | flags::TC, [0, 0, 0]);
            out.extend_from_slice(parsed.raw_question);
        }
    }
    push_opt(&mut out, parsed, settings, 0, prepared.ede);
    (out, fitting.is_none())
}

fn push_header(out: &mut Vec<u8>, parsed: &ParsedQuery<'_>, answer_flags: u16, counts: [u16; 3]) {
    let qdcount = u16::from(!parsed.raw_question.is_empty());
    let arcount = counts[2] + u16::from(parsed.edns.is_some());
    out.extend_from_slice(&parsed.id.to_be_bytes());
    out.extend_from_slice(&reply_flags(answer_flags, parsed.flags).to_be_bytes());
    for word in [qdcount, counts[0], counts[1], arcount] {
        out.extend_from_slice(&word.to_be_bytes());
    }
}

/// The NSID this reply carries, if the query asked and we have one.
fn nsid_sent(parsed: &ParsedQuery<'_>, settings: &ReplySettings) -> Option<&'static [u8]> {
    settings.nsid.filter(|_| parsed.edns.is_some() && parsed.nsid_requested)
}

/// Bytes [`push_opt`] appends.
fn opt_len(parsed: &ParsedQuery<'_>, settings: &ReplySettings, ede: Option<ExtendedError>) -> usize {
    if parsed.edns.is_none() {
        return 0;
    }
    OPT_RR_LEN
        + nsid_sent(parsed, settings).map_or(0, |nsid| 4 + nsid.len())
        + parsed.cookie.map_or(0, |cookie| 4 + cookie.len())
        + ede.map_or(0, |ede| 4 + 2 + ede.text.len())
}

/// The OPT record, when the query had one: NSID if asked for and set, the
/// COOKIE (the client cookie and a fresh server cookie), then the Extended
/// DNS Error if the answer has one (RFC 8914 §3: only to
/// clients that sent EDNS).
fn push_opt(
    out: &mut Vec<u8>,
    parsed: &ParsedQuery<'_>,
    settings: &ReplySettings,
    ext_rcode: u8,
    ede: Option<ExtendedError>,
) {
    let Some((_, dnssec_ok)) = parsed.edns else { return };
    let mut options = Vec::new();
    let mut push_option = |code: u16, parts: &[&[u8]]| {
        let length: usize = parts.iter().map(|part| part.len()).sum();
        options.extend_from_slice(&code.to_be_bytes());
        options.extend_from_slice(&(length as u16).to_be_bytes());
        for part in parts {
            options.extend_from_slice(part);
        }
    };
    if let Some(nsid) = nsid_sent(parsed, settings) {
        push_option(common::edns::OPTION_NSID, &[nsid]);
    }
    if let Some(cookie) = &parsed.cookie {
        push_option(common::edns::OPTION_COOKIE, &[cookie]);
    }
    if let Some(ede) = ede {
        push_option(common::edns::OPTION_EDE, &[&ede.code.to_be_bytes(), ede.text.as_bytes()]);
    }
    let mut opt = opt_record(settings.edns_udp_payload, ext_rcode, dnssec_ok);
    // RDLENGTH covers the options.
    opt[OPT_RR_LEN - 2..].copy_from_slice(&(options.len() as u16).to_be_bytes());
    out.extend_from_slice(&opt);
    out.extend_from_slice(&options);
}

/// Class CH: `id.server.` and `hostname.bind.` TXT (RFC 4892) name this
/// server when it has an identity; everything else in CH, `version.bind.`
/// included, is refused.
fn identity_reply(parsed: &ParsedQuery<'_>, settings: &ReplySettings, question: &Query, transport: Transport) -> Reply {
    let qname = question.name().to_lowercase();
    let Some(answer) = identity::lookup(&qname, question.query_type(), settings.nsid) else {
        return reply_without_answer(parsed, settings, 0, ResponseCode::Refused);
    };
    match PreparedAnswer::encode(&qname, question.query_type(), &answer) {
        Ok(prepared) => {
            let (bytes, truncated) = assemble(parsed, settings, &prepared, transport);
            Reply { bytes, truncated, cacheable: None, rcode: answer.rcode, zone: None, cookie: None }
        }
        Err(_) => reply_without_answer(parsed, settings, 0, ResponseCode::ServFail),
    }
}

/// A reply with the question (when there was a usable one) and no records.
fn reply_without_answer(
    parsed: &ParsedQuery<'_>,
    settings: &ReplySettings,
    opcode_bits: u16,
    rcode: ResponseCode,
) -> Reply {
    let mut out = Vec::with_capacity(HEADER_LEN + parsed.raw_question.len() + OPT_RR_LEN);
    push_header(&mut out, parsed, flags::QR | opcode_bits | u16::from(rcode.low()), [0, 0, 0]);
    out.extend_from_slice(parsed.raw_question);
    push_opt(&mut out, parsed, settings, rcode.high(), None);
    Reply { bytes: out, truncated: false, cacheable: None, rcode, zone: None, cookie: None }
}

fn badvers(parsed: &ParsedQuery<'_>, settings: &ReplySettings) -> Reply {
    let mut out = Vec::with_capacity(HEADER_LEN + parsed.raw_question.len() + OPT_RR_LEN);
    push_header(&mut out, parsed, flags::QR, [0, 0, 0]);
    out.extend_from_slice(parsed.raw_question);
    push_opt(&mut out, parsed, settings, BADVERS_HIGH, None);
    Reply { bytes: out, truncated: false, cacheable: None, rcode: ResponseCode::BADVERS, zone: None, cookie: None }
}

/// The slipped form of `reply` to `query` (response rate limiting): the
/// reply's header with TC=1 and no records, the question as the query
/// asked it, and a bare OPT record (no options) when the query had one,
/// its DO bit echoed. The XDP program's `reply::slip` writes the same
/// bytes. `None` when the query's question cannot be found.
pub fn slip(query: &[u8], reply: &[u8], server_payload: u16) -> Option<Vec<u8>> {
    let reply_header = reply.get(..HEADER_LEN)?;
    let mut at = HEADER_LEN;
    loop {
        let len = usize::from(*query.get(at)?);
        if len & 0xc0 != 0 {
            return None;
        }
        at += 1 + len;
        if len == 0 {
            break;
        }
    }
    let question_end = at + 4;
    let question = query.get(HEADER_LEN..question_end)?;
    let arcount = u16::from_be_bytes([query[10], query[11]]);
    // The query's OPT record, if it is its one additional record: root
    // name, TYPE 41, CLASS, TTL (ext-rcode, version, flags), RDLENGTH.
    let do_bit = match query.get(question_end..question_end + 11) {
        Some(opt) if arcount == 1 && opt[0] == 0 && u16::from_be_bytes([opt[1], opt[2]]) == common::edns::OPT_TYPE => {
            Some(u16::from_be_bytes([opt[7], opt[8]]) & common::edns::DO != 0)
        }
        _ => None,
    };
    let mut out = Vec::with_capacity(question_end + dns_xdp_common::OPT_RR_LEN);
    out.extend_from_slice(&reply_header[..2]);
    let reply_flags = u16::from_be_bytes([reply_header[2], reply_header[3]]) | flags::TC;
    out.extend_from_slice(&reply_flags.to_be_bytes());
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, u8::from(do_bit.is_some())]);
    out.extend_from_slice(question);
    if let Some(do_bit) = do_bit {
        out.extend_from_slice(&dns_xdp_common::opt_record(server_payload, 0, do_bit));
    }
    Some(out)
}

/// FORMERR with the query's header only, for a query that cannot be read
/// whole; `None` when it has no header or is a response.
pub fn formerr(query: &[u8]) -> Option<Vec<u8>> {
    let header = query.get(..HEADER_LEN)?;
    let qflags = u16::from_be_bytes([header[2], header[3]]);
    if qflags & flags::QR != 0 {
        return None;
    }
    let id = u16::from_be_bytes([header[0], header[1]]);
    Some(header_only(id, qflags, qflags & flags::OPCODE, ResponseCode::FormErr).bytes)
}

/// A bare header echoing ID, opcode and RD: the answer to a query that
/// could not be parsed beyond its header.
fn header_only(id: u16, qflags: u16, opcode_bits: u16, rcode: ResponseCode) -> Reply {
    let mut out = Vec::with_capacity(HEADER_LEN);
    out.extend_from_slice(&id.to_be_bytes());
    let f = flags::QR | opcode_bits | (qflags & flags::RD) | u16::from(rcode.low());
    out.extend_from_slice(&f.to_be_bytes());
    out.extend_from_slice(&[0; 8]);
    Reply { bytes: out, truncated: false, cacheable: None, rcode, zone: None, cookie: None }
}

/// The mnemonic of a response code (RFC 6895 2.3), as dig prints it;
/// `RCODEn` for one without.
pub fn rcode_mnemonic(rcode: u16) -> String {
    let name = match rcode {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        16 => "BADVERS",
        23 => "BADCOOKIE",
        other => return format!("RCODE{other}"),
    };
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use hickory_proto::op::Edns;

    use super::*;
    use crate::zone::Zone;

    fn catalog() -> Catalog {
        let text = "$ORIGIN t.test.\n$TTL 60\n@ SOA ns hm 1 2 3 4 5\n@ NS ns\nns A 192.0.2.1\n";
        let mut catalog = Catalog::new();
        catalog.insert(Zone::parse(text, &Name::from_ascii("t.test.").expect("name"), "t").expect("zone"));
        catalog
    }

    fn query(name: &str, qtype: RecordType, edns: Option<Edns>) -> Vec<u8> {
        let mut msg = Message::query();
        msg.metadata.id = 0x4242;
        msg.add_query(Query::query(Name::from_ascii(name).expect("name"), qtype));
        if let Some(edns) = edns {
            msg.set_edns(edns);
        }
        msg.to_vec().expect("encode")
    }

    fn answer_to(query: &[u8], transport: Transport) -> (Message, Reply) {
        let reply = respond(&catalog(), &ReplySettings::default(), query, transport).expect("a reply");
        (Message::from_vec(&reply.bytes).expect("reply parses"), reply)
    }

    #[test]
    fn zone_transfers_are_refused_on_both_transports() {
        for qtype in [RecordType::AXFR, RecordType::IXFR] {
            for transport in [Transport::Udp, Transport::Tcp] {
                let (msg, reply) = answer_to(&query("t.test.", qtype, None), transport);
                assert_eq!(msg.metadata.response_code, ResponseCode::Refused, "{qtype} over {transport:?}");
                assert!(msg.answers.is_empty() && msg.authorities.is_empty(), "{qtype} over {transport:?}");
                assert!(reply.cacheable.is_none(), "a refusal must not reach the fast path");
            }
        }
    }

    #[test]
    fn other_opcodes_are_notimp_whatever_follows_the_header() {
        let mut garbage = vec![0x12, 0x34, 0x18, 0x00, 0, 3, 0, 1, 0, 4, 0, 1];
        garbage.extend_from_slice(&[0xde, 0xad, 0xc0, 0x0c, 0xff]);
        let reply = respond(&catalog(), &ReplySettings::default(), &garbage, Transport::Udp).expect("a reply");
        assert_eq!(reply.bytes.len(), HEADER_LEN);
        assert_eq!(&reply.bytes[..2], &[0x12, 0x34]);
        // QR, opcode 3 echoed, NOTIMP.
        assert_eq!(u16::from_be_bytes([reply.bytes[2], reply.bytes[3]]), 0x8000 | 0x1800 | 4);

        // A well-formed query with opcode 3 or NOTIFY: NOTIMP, question and
        // OPT echoed.
        for opcode in [3u16, 4] {
            let mut bytes = query("t.test.", RecordType::SOA, Some(Edns::new()));
            bytes[2] |= (opcode << 3) as u8;
            let (msg, _) = answer_to(&bytes, Transport::Udp);
            assert_eq!(msg.metadata.response_code, ResponseCode::NotImp);
            assert_eq!(msg.queries.len(), 1);
            assert!(msg.edns.is_some());
        }
        // The same body with opcode QUERY but garbage: FORMERR.
        garbage[2] = 0;
        let reply = respond(&catalog(), &ReplySettings::default(), &garbage, Transport::Udp).expect("a reply");
        assert_eq!(reply.bytes[3] & 0x0f, 1);
    }

    #[test]
    fn edns_replies() {
        // BADVERS: extended rcode 16, OPT version 0 with our payload size.
        let mut v1 = Edns::new();
        v1.set_version(1);
        v1.set_dnssec_ok(true);
        let (msg, _) = answer_to(&query("ns.t.test.", RecordType::A, Some(v1)), Transport::Udp);
        let edns = msg.edns.as_ref().expect("OPT in a BADVERS reply");
        // 16 is BADVERS in an OPT (hickory names it BADSIG, its TSIG meaning).
        assert_eq!(u16::from(msg.metadata.response_code), 16);
        assert_eq!((edns.version(), edns.max_payload(), edns.flags().dnssec_ok), (0, 1232, true));
        assert!(msg.answers.is_empty());

        // Version 0: answered, OPT with 1232 and DO echoed, no options.
        let mut v0 = Edns::new();
        v0.set_max_payload(4096);
        let (msg, _) = answer_to(&query("ns.t.test.", RecordType::A, Some(v0)), Transport::Udp);
        let edns = msg.edns.as_ref().expect("OPT");
        assert_eq!(msg.answers.len(), 1);
        assert_eq!((edns.version(), edns.max_payload(), edns.flags().dnssec_ok), (0, 1232, false));

        // No OPT in the query: none in the reply.
        let (msg, _) = answer_to(&query("ns.t.test.", RecordType::A, None), Transport::Udp);
        assert!(msg.edns.is_none());
    }
}

#[cfg(test)]
mod shortening_tests {
    use super::*;
    use hickory_proto::op::Message;

    /// An MX whose target has 60 addresses (additional data far over 512
    /// bytes), and a delegation whose glue is as large.
    fn catalog() -> Catalog {
        let mut text =
            String::from("$TTL 300\n@ SOA ns hm 1 2 3 4 5\n@ NS ns\nns A 192.0.2.1\n@ MX 10 mx\nsub NS ns.sub\n");
        for i in 0..60 {
            text.push_str(&format!("mx A 192.0.2.{i}\nns.sub A 198.51.100.{i}\n"));
        }
        let zone =
            crate::zone::Zone::parse(&text, &Name::from_ascii("example.test.").expect("origin"), "test").expect("zone");
        let mut catalog = Catalog::default();
        catalog.insert(Arc::new(zone));
        catalog
    }

    fn ask(catalog: &Catalog, name: &str, qtype: RecordType, transport: Transport) -> Message {
        let mut msg = Message::query();
        msg.add_query(Query::query(Name::from_ascii(name).expect("name"), qtype));
        let reply =
            respond(catalog, &ReplySettings::default(), &msg.to_vec().expect("encode"), transport).expect("reply");
        assert!(reply.bytes.len() <= 512 || transport == Transport::Tcp, "{} bytes over UDP", reply.bytes.len());
        Message::from_vec(&reply.bytes).expect("parses")
    }

    #[test]
    fn optional_sections_go_before_tc_is_set() {
        let catalog = catalog();
        let whole = ask(&catalog, "example.test.", RecordType::MX, Transport::Tcp);
        assert!(whole.additionals.len() > 60, "TCP carries the additional data");
        let udp = ask(&catalog, "example.test.", RecordType::MX, Transport::Udp);
        assert!(!udp.metadata.truncation, "TC set although the answer fits (RFC 2181 9)");
        assert_eq!(udp.answers.len(), 1);
        assert!(udp.additionals.is_empty());
    }

    #[test]
    fn referrals_whose_glue_does_not_fit_are_truncated() {
        let udp = ask(&catalog(), "www.sub.example.test.", RecordType::A, Transport::Udp);
        assert!(udp.metadata.truncation, "glue is not optional (RFC 9471)");
        assert!(udp.authorities.is_empty() && udp.additionals.is_empty());
    }
}

#[cfg(test)]
mod identity_tests {
    use super::*;
    use hickory_proto::{
        op::{Edns, Message},
        rr::rdata::opt::{EdnsOption, NSIDPayload},
    };

    const SETTINGS: ReplySettings = ReplySettings { edns_udp_payload: 1232, nsid: Some(b"pop-ams1"), cookies: None };

    fn ask(settings: &ReplySettings, name: &str, class: DNSClass, nsid: bool) -> Message {
        let mut msg = Message::query();
        let mut q = Query::query(Name::from_ascii(name).expect("name"), RecordType::TXT);
        q.set_query_class(class);
        msg.add_query(q);
        if nsid {
            let mut edns = Edns::new();
            edns.options_mut().insert(EdnsOption::NSID(NSIDPayload::new(Vec::new()).expect("empty payload")));
            msg.set_edns(edns);
        }
        let reply =
            respond(&Catalog::default(), settings, &msg.to_vec().expect("encode"), Transport::Udp).expect("reply");
        Message::from_vec(&reply.bytes).expect("reply parses")
    }

    #[test]
    fn nsid_is_sent_only_when_asked_for() {
        let reply = ask(&SETTINGS, "www.example.test.", DNSClass::IN, true);
        let edns = reply.edns.expect("OPT in the reply");
        match edns.option(EdnsCode::NSID) {
            Some(EdnsOption::NSID(payload)) => assert_eq!(payload.as_ref(), b"pop-ams1"),
            other => panic!("no NSID option: {other:?}"),
        }
        let reply = ask(&SETTINGS, "www.example.test.", DNSClass::IN, false);
        assert!(reply.edns.is_none());
        let reply = ask(&ReplySettings::default(), "www.example.test.", DNSClass::IN, true);
        assert!(reply.edns.expect("OPT").option(EdnsCode::NSID).is_none(), "no identity configured");
    }

    /// The NSID option counts against the client's UDP limit like any
    /// other byte of the reply.
    #[test]
    fn a_long_nsid_still_fits_the_udp_limit() {
        let long: &'static [u8] = Box::leak(vec![b'x'; 255].into_boxed_slice());
        let settings = ReplySettings { edns_udp_payload: 1232, nsid: Some(long), cookies: None };
        let mut text = String::from("$TTL 300\n@ SOA ns hm 1 2 3 4 5\n@ NS ns\nns A 192.0.2.1\n");
        for i in 0..20 {
            text.push_str(&format!("big TXT \"{}\"\n", "t".repeat(10 + i)));
        }
        let zone =
            crate::zone::Zone::parse(&text, &Name::from_ascii("example.test.").expect("origin"), "t").expect("zone");
        let mut catalog = Catalog::default();
        catalog.insert(Arc::new(zone));
        let mut msg = Message::query();
        msg.add_query(Query::query(Name::from_ascii("big.example.test.").expect("name"), RecordType::TXT));
        let mut edns = Edns::new();
        edns.set_max_payload(512);
        edns.options_mut().insert(EdnsOption::NSID(NSIDPayload::new(Vec::new()).expect("empty payload")));
        msg.set_edns(edns);
        let reply = respond(&catalog, &settings, &msg.to_vec().expect("encode"), Transport::Udp).expect("reply");
        assert!(reply.bytes.len() <= 512, "{} bytes for a 512-byte client", reply.bytes.len());
        let parsed = Message::from_vec(&reply.bytes).expect("parses");
        assert!(parsed.edns.expect("OPT").option(EdnsCode::NSID).is_some(), "NSID still sent");
    }

    #[test]
    fn id_server_names_the_instance_and_version_bind_is_refused() {
        for name in ["id.server.", "HOSTNAME.bind."] {
            let reply = ask(&SETTINGS, name, DNSClass::CH, false);
            assert_eq!(reply.metadata.response_code, ResponseCode::NoError, "{name}");
            assert_eq!(reply.answers.len(), 1, "{name}");
            assert_eq!(reply.answers[0].dns_class, DNSClass::CH);
            assert_eq!(reply.answers[0].data.to_string(), "pop-ams1", "{name}");
        }
        assert_eq!(ask(&SETTINGS, "version.bind.", DNSClass::CH, false).metadata.response_code, ResponseCode::Refused);
        assert_eq!(
            ask(&ReplySettings::default(), "id.server.", DNSClass::CH, false).metadata.response_code,
            ResponseCode::Refused
        );
    }
}
