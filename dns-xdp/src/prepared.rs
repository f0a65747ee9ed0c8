//! The prepared answer: the part of a reply that depends only on the
//! question and the zone data (see [`crate::wire`] for how a reply is
//! assembled around it). The daemon's answer cache keeps it, the map writer
//! turns it into a slot of the XDP answer table.

use hickory_proto::{
    op::Query,
    rr::{DNSClass, Name, RecordType},
    serialize::binary::{BinEncodable, BinEncoder},
};

use dns_xdp_common::flags;

use crate::authority::{ExtendedError, Lookup};

/// Length of the DNS message header (RFC 1035 4.1.1).
pub const HEADER_LEN: usize = 12;

/// The question-dependent part of a reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreparedAnswer {
    /// Header flags without the bits copied from the query.
    pub flags: u16,
    pub ancount: u16,
    pub nscount: u16,
    pub arcount: u16,
    pub body: Vec<u8>,
    /// Where the answer and the authority sections end in `body`: a UDP
    /// reply that does not fit may leave off what follows (see `wire::assemble`).
    pub answer_end: usize,
    pub authority_end: usize,
    /// The Extended DNS Error the OPT record carries (only the daemon
    /// sends such answers: see `Lookup::fast_path_servable`).
    pub ede: Option<ExtendedError>,
}

impl PreparedAnswer {
    /// Encodes an authoritative answer to (`qname`, `qtype`). `qname` must be
    /// the lower-cased name: compression pointers may point into it.
    pub fn encode(qname: &Name, qtype: RecordType, answer: &Lookup) -> Result<Self, WireError> {
        let mut buf = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut buf);
        let mut question = Query::query(qname.clone(), qtype);
        question.set_query_class(DNSClass::IN);
        let encode = |encoder: &mut BinEncoder<'_>| -> Result<[usize; 3], hickory_proto::ProtoError> {
            encoder.emit_vec(&[0u8; HEADER_LEN])?;
            question.emit(encoder)?;
            let question_end = encoder.offset();
            for record in &answer.answers {
                record.emit(encoder)?;
            }
            let answer_end = encoder.offset();
            for record in &answer.authority {
                record.emit(encoder)?;
            }
            let authority_end = encoder.offset();
            for record in &answer.additionals {
                record.emit(encoder)?;
            }
            Ok([question_end, answer_end, authority_end])
        };
        let [question_end, answer_end, authority_end] = encode(&mut encoder).map_err(WireError::Encode)?;
        let mut flags = flags::QR | u16::from(answer.rcode.low());
        if answer.authoritative {
            flags |= flags::AA;
        }
        Ok(Self {
            flags,
            ancount: count(answer.answers.len())?,
            nscount: count(answer.authority.len())?,
            arcount: count(answer.additionals.len())?,
            body: buf[question_end..].to_vec(),
            answer_end: answer_end - question_end,
            authority_end: authority_end - question_end,
            ede: answer.ede,
        })
    }
}

fn count(n: usize) -> Result<u16, WireError> {
    u16::try_from(n).map_err(|_| WireError::TooManyRecords(n))
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    #[error("encoding the answer: {0}")]
    Encode(hickory_proto::ProtoError),
    #[error("{0} records do not fit a DNS message")]
    TooManyRecords(usize),
}
