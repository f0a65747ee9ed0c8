//! The map encoding: a question and its prepared answer as the key and slot
//! the XDP program finds them by (see [`AnswerSlot`] for the layout).

use hickory_proto::{
    rr::{DNSClass, Name, RecordType},
    serialize::binary::BinEncodable as _,
};

use dns_xdp_common::{self as common, AnswerKey, AnswerSlot};

use crate::prepared::PreparedAnswer;

/// The map key for a question in class IN, from a query with the DO bit
/// (`dnssec_ok`) or without.
pub fn answer_key(qname: &Name, qtype: RecordType, dnssec_ok: bool) -> Option<AnswerKey> {
    class_answer_key(qname, qtype, DNSClass::IN, dnssec_ok)
}

/// The map key for a question in any class.
pub fn class_answer_key(qname: &Name, qtype: RecordType, qclass: DNSClass, dnssec_ok: bool) -> Option<AnswerKey> {
    let wire_name = lower_wire_name(qname)?;
    Some(AnswerKey {
        name_hash: common::name::hash_lower(&wire_name),
        qtype: u16::from(qtype),
        qname_len: wire_name.len() as u16,
        qclass: u16::from(qclass),
        dnssec_ok: u16::from(dnssec_ok),
    })
}

/// The slot serving `prepared` in the fast path, if it fits there: the
/// answer to queries in class IN with the DO bit (`dnssec_ok`) or without.
pub fn encode(
    qname: &Name,
    qtype: RecordType,
    dnssec_ok: bool,
    prepared: &PreparedAnswer,
) -> Option<(AnswerKey, AnswerSlot)> {
    class_encode(qname, qtype, DNSClass::IN, dnssec_ok, prepared)
}

/// [`encode`] for a question in any class.
pub fn class_encode(
    qname: &Name,
    qtype: RecordType,
    qclass: DNSClass,
    dnssec_ok: bool,
    prepared: &PreparedAnswer,
) -> Option<(AnswerKey, AnswerSlot)> {
    let wire_name = lower_wire_name(qname)?;
    let key = class_answer_key(qname, qtype, qclass, dnssec_ok)?;
    let header = common::AnswerHeader {
        flags: prepared.flags,
        ancount: prepared.ancount,
        nscount: prepared.nscount,
        arcount: prepared.arcount,
    };
    // The table stamps each slot write with its own version.
    let value = AnswerSlot::new(0, key, header, &wire_name, &prepared.body)?;
    Some((key, value))
}

/// The wire form of a name with ASCII letters folded as the fast path folds
/// them.
fn lower_wire_name(name: &Name) -> Option<Vec<u8>> {
    let mut wire = name.to_bytes().ok()?;
    wire.iter_mut().for_each(|b| *b = common::name::fold(*b));
    Some(wire)
}
