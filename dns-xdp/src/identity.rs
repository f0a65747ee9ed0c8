//! The server's identity in class CH (RFC 4892): `id.server.` and
//! `hostname.bind.` TXT answer with the configured identity (the one the
//! NSID option carries), as NSD and Knot answer them. The daemon answers
//! from here (`wire`), and the map writer puts the TXT answers in the table
//! so the fast path serves them like any other.

use hickory_proto::{
    op::ResponseCode,
    rr::{DNSClass, Name, RData, Record, RecordType, rdata::TXT},
};

use crate::authority::Lookup;

/// The names whose CH TXT answer is the identity.
const NAMES: [&str; 2] = ["id.server.", "hostname.bind."];

/// The answer to a CH question that asks for the identity (TXT or ANY at
/// one of [`NAMES`], `qname` lower-cased), when the server has one; `None`
/// for every other CH question (the daemon refuses those).
pub fn lookup(qname: &Name, qtype: RecordType, identity: Option<&[u8]>) -> Option<Lookup> {
    let identity = identity?;
    let asks = matches!(qtype, RecordType::TXT | RecordType::ANY)
        && NAMES.iter().any(|n| Name::from_ascii(n).is_ok_and(|n| n == *qname));
    if !asks {
        return None;
    }
    let text = String::from_utf8_lossy(identity).into_owned();
    let mut record = Record::from_rdata(qname.clone(), 0, RData::TXT(TXT::new(vec![text])));
    record.dns_class = DNSClass::CH;
    Some(Lookup {
        rcode: ResponseCode::NoError,
        authoritative: true,
        answers: vec![record],
        authority: Vec::new(),
        additionals: Vec::new(),
        zone: None,
        ede: None,
    })
}

/// The CH questions the fast path serves from the table. ANY is left to the
/// daemon: it is rare, and the table holds one answer per type.
pub fn table_questions() -> impl Iterator<Item = (Name, RecordType)> {
    NAMES.iter().filter_map(|n| Name::from_ascii(n).ok()).map(|n| (n, RecordType::TXT))
}
