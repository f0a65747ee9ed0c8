//! RDATA from presentation form, and records back to it: hickory's parser
//! where it has one and it reads what NSD reads; `presentation` for the
//! types hickory cannot parse or prints differently; this module for
//! DNAME, TXT with escapes and the RFC 3597 generic form. Whatever the
//! text, the RDATA ends up as hickory decodes the same wire bytes
//! ([`rdata_from_wire`]), so one record has one representation.

use hickory_proto::{
    rr::{
        Name, RData, Record, RecordType,
        rdata::{HTTPS, NULL, TXT},
    },
    serialize::{
        binary::{BinDecodable, BinDecoder, BinEncodable, BinEncoder, NameEncoding, Restrict},
        txt::Parser,
    },
};

use super::{
    MAX_CHARACTER_STRING,
    lexer::{Token, decode_escapes},
    presentation::{self, decode_hex},
};

/// A type mnemonic or the RFC 3597 `TYPEnnn` form.
pub(super) fn parse_record_type(upper: &str) -> Option<RecordType> {
    presentation::parse_type(upper)
}

/// Types that exist only in queries or messages (RFC 6895 §3.1: 0, OPT and
/// the 128-255 range).
pub(super) fn is_meta_type(record_type: RecordType) -> bool {
    let code = u16::from(record_type);
    code == 0 || record_type == RecordType::OPT || (128..=255).contains(&code)
}

/// Builds the RDATA of a record from its tokens.
pub(super) fn parse_rdata(
    record_type: RecordType,
    tokens: &[&Token],
    origin: &Name,
    ttl: u32,
) -> Result<RData, String> {
    if matches!(tokens.first(), Some(Token::Word(word)) if word == "\\#") {
        return parse_generic_rdata(record_type, tokens.get(1..).unwrap_or_default());
    }
    if presentation::handles(record_type) {
        let wire = presentation::parse(record_type, tokens, origin)?;
        return rdata_from_wire(record_type, &wire);
    }
    match record_type {
        RecordType::TXT => parse_txt(tokens),
        RecordType::DNAME => parse_dname(tokens, origin),
        // Types with no text form of their own (RFC 3597 §5).
        RecordType::NULL | RecordType::Unknown(_) => {
            Err("this type can only be given in the RFC 3597 form \\# <length> <hex>".into())
        }
        _ => parse_with_hickory(record_type, tokens, origin, ttl),
    }
}

/// The RDATA of `record_type` with wire form `wire`: hickory's typed value
/// when it has a type and encodes it back to exactly these octets, else the
/// octets kept as they are (unknown types, and forms hickory would
/// normalise, such as an unsorted SVCB key list), so that what is served is
/// what the zone file says.
pub(super) fn rdata_from_wire(record_type: RecordType, wire: &[u8]) -> Result<RData, String> {
    let length = u16::try_from(wire.len()).map_err(|_| "RDATA longer than 65535 octets")?;
    let mut decoder = BinDecoder::new(wire);
    let rdata = RData::read(&mut decoder, record_type, Restrict::new(length)).map_err(|e| e.to_string())?;
    if !decoder.is_empty() {
        return Err("trailing data after the RDATA".into());
    }
    if record_type == RecordType::DNAME {
        dname_target(&rdata).ok_or("invalid DNAME target")?;
    }
    let same = encode_uncompressed(&rdata).is_some_and(|reencoded| reencoded == wire);
    if same || matches!(rdata, RData::Unknown { .. }) {
        return Ok(rdata);
    }
    Ok(RData::Unknown { code: record_type, rdata: NULL::with(wire.to_vec()) })
}

/// RFC 3597 §5: `\# <length> <hex>...`.
fn parse_generic_rdata(record_type: RecordType, tokens: &[&Token]) -> Result<RData, String> {
    let Some((Token::Word(length), hex)) = tokens.split_first() else {
        return Err("\\# must be followed by the RDATA length".into());
    };
    let length: u16 = length.parse().map_err(|_| format!("invalid RDATA length {length:?}"))?;
    let mut hex_text = String::new();
    for token in hex {
        match token {
            Token::Word(word) => hex_text.push_str(word),
            Token::Quoted(_) => return Err("\\# data must be hexadecimal".into()),
        }
    }
    let bytes = decode_hex(&hex_text)?;
    if bytes.len() != usize::from(length) {
        return Err(format!("\\# says {length} octets but has {}", bytes.len()));
    }
    rdata_from_wire(record_type, &bytes)
}

/// TXT is parsed here because hickory's lexer mistakes quotes inside
/// parentheses and decodes `\DDD` wrongly.
fn parse_txt(tokens: &[&Token]) -> Result<RData, String> {
    if tokens.is_empty() {
        return Err("TXT needs at least one string".into());
    }
    let strings = tokens
        .iter()
        .map(|token| {
            let (Token::Word(raw) | Token::Quoted(raw)) = token;
            let bytes = decode_escapes(raw)?;
            if bytes.len() > MAX_CHARACTER_STRING {
                return Err(format!("a string is longer than {MAX_CHARACTER_STRING} octets; split it"));
            }
            Ok(bytes)
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(RData::TXT(TXT::from_bytes(strings.iter().map(Vec::as_slice).collect())))
}

/// DNAME (RFC 6672): hickory has no DNAME RDATA type, so it is kept as
/// opaque RDATA holding the uncompressed target name (RFC 6672 §2.5 forbids
/// compressing it). [`dname_target`] reads it back.
fn parse_dname(tokens: &[&Token], origin: &Name) -> Result<RData, String> {
    let [Token::Word(target)] = tokens else {
        return Err("DNAME takes one domain name".into());
    };
    let target = if target == "@" {
        origin.clone()
    } else {
        Name::parse(target, Some(origin)).map_err(|e| format!("invalid target {target:?}: {e}"))?
    };
    dname_rdata(&target).ok_or_else(|| "cannot encode the target".into())
}

fn dname_rdata(target: &Name) -> Option<RData> {
    let wire = target.to_bytes().ok()?;
    Some(RData::Unknown { code: RecordType::DNAME, rdata: NULL::with(wire) })
}

/// The target of a DNAME record's RDATA.
pub fn dname_target(rdata: &RData) -> Option<Name> {
    let RData::Unknown { code: RecordType::DNAME, rdata } = rdata else { return None };
    let mut decoder = BinDecoder::new(&rdata.anything);
    let name = Name::read(&mut decoder).ok()?;
    decoder.is_empty().then_some(name)
}

/// Every other type goes through hickory's parser as a one-record zone,
/// rebuilt on one line from the tokens: hickory then sees neither
/// parentheses nor comments, and quoted strings come re-escaped the way its
/// lexer reads them.
fn parse_with_hickory(record_type: RecordType, tokens: &[&Token], origin: &Name, ttl: u32) -> Result<RData, String> {
    let mut text = format!("@ {ttl} IN {record_type}");
    for token in tokens {
        text.push(' ');
        match token {
            // hickory's lexer has no '@' inside RDATA.
            Token::Word(word) if word == "@" => text.push_str(&origin.to_ascii()),
            Token::Word(word) => {
                if word.contains([' ', '\t', '\r', ';', '(', ')']) {
                    return Err(format!("escaped white space, ';' or parentheses in {word:?} are not supported here"));
                }
                text.push_str(word);
            }
            Token::Quoted(raw) => {
                let decoded = String::from_utf8(decode_escapes(raw)?)
                    .map_err(|_| format!("{record_type} strings must be UTF-8 text"))?;
                text.push('"');
                for c in decoded.chars() {
                    if matches!(c, '"' | '\\') {
                        text.push('\\');
                    }
                    text.push(c);
                }
                text.push('"');
            }
        }
    }
    let (_, rrsets) =
        Parser::new(text, None, Some(origin.clone())).parse().map_err(|e| e.to_string().trim_end().to_owned())?;
    let mut rdata = rrsets
        .into_values()
        .find_map(|rrset| rrset.records_without_rrsigs().next().map(|record| record.data.clone()))
        .ok_or("no data")?;
    // RFC 9460 §2.2: the text may list SvcParams in any order, the wire
    // form has them in increasing key order (hickory keeps the text order,
    // then refuses to encode it).
    if let RData::SVCB(svcb) | RData::HTTPS(HTTPS(svcb)) = &mut rdata {
        svcb.svc_params.sort_by_key(|(key, _)| u16::from(*key));
    }
    Ok(rdata)
}

/// The type an RRSIG record covers (its first field, RFC 4034 §3.1), or
/// `None` for other records.
pub fn rrsig_covered(rdata: &RData) -> Option<RecordType> {
    if rdata.record_type() != RecordType::RRSIG {
        return None;
    }
    let wire = rdata_wire(rdata);
    wire.first_chunk::<2>().map(|covered| RecordType::from(u16::from_be_bytes(*covered)))
}

/// Lower-cases the domain names inside RDATA, as NSD stores them.
pub(super) fn lowercase_rdata_names(rdata: &mut RData) {
    match rdata {
        RData::CNAME(name) => name.0 = name.0.to_lowercase(),
        RData::NS(name) => name.0 = name.0.to_lowercase(),
        RData::PTR(name) => name.0 = name.0.to_lowercase(),
        RData::ANAME(name) => name.0 = name.0.to_lowercase(),
        RData::MX(mx) => mx.exchange = mx.exchange.to_lowercase(),
        RData::SRV(srv) => srv.target = srv.target.to_lowercase(),
        RData::NAPTR(naptr) => naptr.replacement = naptr.replacement.to_lowercase(),
        RData::SVCB(svcb) => svcb.target_name = svcb.target_name.to_lowercase(),
        RData::HTTPS(https) => https.0.target_name = https.0.target_name.to_lowercase(),
        RData::SOA(soa) => {
            soa.mname = soa.mname.to_lowercase();
            soa.rname = soa.rname.to_lowercase();
        }
        RData::Unknown { code: RecordType::DNAME, .. } => {
            if let Some(lowered) = dname_target(rdata).and_then(|target| dname_rdata(&target.to_lowercase())) {
                *rdata = lowered;
            }
        }
        _ => {}
    }
}

/// A record in presentation format the way `dig` prints it, fields
/// separated by single spaces: `owner TTL class type rdata`. For logs and
/// tests; DS digests come unsplit.
pub fn format_record(record: &Record) -> String {
    format!(
        "{} {} {} {} {}",
        record.name.to_ascii(),
        record.ttl,
        record.dns_class,
        type_mnemonic(record.record_type()),
        format_rdata(&record.data)
    )
}

/// The type's mnemonic, or RFC 3597's `TYPEnnn` for types without one.
pub(super) fn type_mnemonic(record_type: RecordType) -> String {
    presentation::type_name(record_type)
}

fn format_rdata(rdata: &RData) -> String {
    let record_type = rdata.record_type();
    match rdata {
        RData::TXT(txt) => txt.txt_data.iter().map(|string| presentation::quote(string)).collect::<Vec<_>>().join(" "),
        RData::Unknown { code: RecordType::DNAME, .. } => match dname_target(rdata) {
            Some(target) => target.to_ascii(),
            None => generic_rdata(rdata),
        },
        RData::SVCB(_) | RData::HTTPS(_) => {
            presentation::format_svcb(&rdata_wire(rdata)).unwrap_or_else(|| generic_rdata(rdata))
        }
        _ if presentation::handles(record_type) => {
            presentation::format(record_type, &rdata_wire(rdata)).unwrap_or_else(|| generic_rdata(rdata))
        }
        RData::Unknown { .. } => generic_rdata(rdata),
        other => other.to_string(),
    }
}

/// The RDATA's wire form, uncompressed (empty if it cannot be encoded,
/// which the loader has ruled out for every record it keeps).
fn rdata_wire(rdata: &RData) -> Vec<u8> {
    match rdata {
        RData::Unknown { rdata, .. } => rdata.anything.clone(),
        other => encode_uncompressed(other).unwrap_or_default(),
    }
}

fn encode_uncompressed(rdata: &RData) -> Option<Vec<u8>> {
    let mut bytes = Vec::new();
    let mut encoder = BinEncoder::new(&mut bytes);
    encoder.set_name_encoding(NameEncoding::Uncompressed);
    rdata.emit(&mut encoder).ok()?;
    Some(bytes)
}

fn generic_rdata(rdata: &RData) -> String {
    let bytes = rdata_wire(rdata);
    if bytes.is_empty() {
        return "\\# 0".to_owned();
    }
    let hex: String = bytes.iter().map(|byte| format!("{byte:02X}")).collect();
    format!("\\# {} {hex}", bytes.len())
}
