//! Presentation form <-> wire form for the record types whose text form
//! hickory-proto cannot parse (its zone parser refuses DNSSEC records, and
//! knows no LOC, URI, DHCID, EUI48/EUI64, RP, AFSDB, KX, APL, ZONEMD and
//! other types NSD and Knot load), or prints differently from
//! `ldns-read-zone` and `named-compilezone`.
//!
//! Each type is described once, as a list of fields ([`LAYOUTS`]); the same
//! list drives parsing and printing, so the two cannot drift apart. LOC and
//! APL have free-form syntax and get a function each. The wire bytes this
//! produces are handed to hickory's own decoder ([`super::rdata`]), so the
//! records end up as hickory's typed RDATA wherever it has a type.

use data_encoding::{BASE32HEX_NOPAD, BASE64, HEXLOWER, HEXLOWER_PERMISSIVE, HEXUPPER};
use hickory_proto::{
    rr::{Name, RecordType},
    serialize::binary::{BinDecodable, BinDecoder, BinEncodable},
};

use super::lexer::{Token, decode_escapes};

/// One field of an RDATA layout, in wire order.
#[derive(Debug, Clone, Copy)]
enum Field {
    U8,
    U16,
    U32,
    /// A domain name, uncompressed (every type here forbids compression),
    /// stored lower-cased as NSD does for the types of RFC 4034 §6.2.
    Name,
    /// A domain name kept as written: NSEC's next owner name (RFC 6840 §5.1
    /// took it out of the lower-casing, so signatures cover its case).
    NameAsIs,
    /// An IPv4 address (L32's locator).
    Ipv4,
    /// RRSIG expiration/inception (RFC 4034 §3.2): `YYYYMMDDHHmmSS` or
    /// seconds since the epoch.
    Time,
    /// A type mnemonic or `TYPEnnn` (RRSIG type covered).
    Type,
    /// A DNSSEC algorithm number or mnemonic (RFC 4034 Appendix A.1),
    /// printed as the number.
    Algorithm,
    /// A CERT type (RFC 4398 §2.1), a mnemonic or a number; printed as the
    /// mnemonic where there is one.
    CertType,
    /// NSEC3 salt: one-octet length then the octets; `-` for none.
    Salt,
    /// NSEC3 next hashed owner: one-octet length then base32hex octets.
    Base32Hash,
    /// EUI48/EUI64 (RFC 7043): `xx-xx-...` with this many octets.
    Eui(usize),
    /// 64 bits as four colon-separated groups of four hex digits (NID, L64:
    /// RFC 6742 §2.1).
    Locator64,
    // The fields below take the rest of the entry.
    /// Base64, white space allowed inside.
    Base64Rest,
    /// Hex, white space allowed inside; at least one octet.
    HexRest,
    /// A type bitmap (RFC 4034 §4.1.2).
    TypeBitmap,
    /// One quoted string, its octets with no length octet (URI).
    QuotedRest,
    /// One character-string with its length octet.
    CharString,
    /// Character-strings, each with its length octet (SPF).
    StringsRest,
    /// RFC 1876's free-form location.
    Loc,
    /// RFC 3123's address prefix list.
    Apl,
}

impl Field {
    fn takes_rest(self) -> bool {
        matches!(
            self,
            Self::Base64Rest
                | Self::HexRest
                | Self::TypeBitmap
                | Self::QuotedRest
                | Self::StringsRest
                | Self::Loc
                | Self::Apl
        )
    }
}

/// The text form of one type.
struct Layout {
    code: u16,
    mnemonic: &'static str,
    fields: &'static [Field],
}

/// Every type whose text form this module parses and prints: those hickory
/// cannot parse, those it has no name for, and those it prints in a form
/// other than `ldns-read-zone`'s and `named-compilezone`'s.
const LAYOUTS: &[Layout] = {
    use Field::*;
    const fn layout(code: u16, mnemonic: &'static str, fields: &'static [Field]) -> Layout {
        Layout { code, mnemonic, fields }
    }
    &[
        // RFC 1035 §3.3 (obsolete, but NSD and Knot load them).
        layout(3, "MD", &[Name]),
        layout(4, "MF", &[Name]),
        layout(7, "MB", &[Name]),
        layout(8, "MG", &[Name]),
        layout(9, "MR", &[Name]),
        layout(14, "MINFO", &[Name, Name]),
        // RFC 1035 §3.3.2 (hickory prints the strings unquoted).
        layout(13, "HINFO", &[CharString, CharString]),
        // RFC 1183 §2.2, §1, §3.2, §3.3 and §3.1.
        layout(17, "RP", &[Name, Name]),
        layout(18, "AFSDB", &[U16, Name]),
        layout(21, "RT", &[U16, Name]),
        // RFC 2535 §4.1 and §7.1 (KEY), RFC 4034 §2.2 (DNSKEY), RFC 7344
        // (CDNSKEY): one layout.
        layout(25, "KEY", &[U16, U8, Algorithm, Base64Rest]),
        layout(48, "DNSKEY", &[U16, U8, Algorithm, Base64Rest]),
        layout(60, "CDNSKEY", &[U16, U8, Algorithm, Base64Rest]),
        // RFC 2163 §4.
        layout(26, "PX", &[U16, Name, Name]),
        // RFC 1876.
        layout(29, "LOC", &[Loc]),
        // RFC 2230 §3.1.
        layout(36, "KX", &[U16, Name]),
        // RFC 3123 §4.
        layout(42, "APL", &[Apl]),
        // RFC 4034 §5.3, RFC 7344, RFC 4431 (DLV).
        layout(43, "DS", &[U16, Algorithm, U8, HexRest]),
        layout(59, "CDS", &[U16, Algorithm, U8, HexRest]),
        layout(32769, "DLV", &[U16, Algorithm, U8, HexRest]),
        // RFC 4255 §3.2.
        layout(44, "SSHFP", &[U8, U8, HexRest]),
        // RFC 4034 §3.2 (SIG: RFC 2535 §7.2).
        layout(24, "SIG", &[Type, Algorithm, U8, U32, Time, Time, U16, Name, Base64Rest]),
        layout(46, "RRSIG", &[Type, Algorithm, U8, U32, Time, Time, U16, Name, Base64Rest]),
        // RFC 4398 §2.2 (hickory reads no type mnemonics).
        layout(37, "CERT", &[CertType, U16, Algorithm, Base64Rest]),
        // RFC 4034 §4.2.
        layout(47, "NSEC", &[NameAsIs, TypeBitmap]),
        // RFC 4701 §3.4.
        layout(49, "DHCID", &[Base64Rest]),
        // RFC 5155 §3.3 and §4.3.
        layout(50, "NSEC3", &[U8, U8, U16, Salt, Base32Hash, TypeBitmap]),
        layout(51, "NSEC3PARAM", &[U8, U8, U16, Salt]),
        // RFC 6698 §2.2, RFC 8162 §2.
        layout(52, "TLSA", &[U8, U8, U8, HexRest]),
        layout(53, "SMIMEA", &[U8, U8, U8, HexRest]),
        // RFC 7929 §2.3.
        layout(61, "OPENPGPKEY", &[Base64Rest]),
        // RFC 7477 §2.3.
        layout(62, "CSYNC", &[U32, U16, TypeBitmap]),
        // RFC 8976 §2.3.
        layout(63, "ZONEMD", &[U32, U8, U8, HexRest]),
        // RFC 4408 §3.1.1.
        layout(99, "SPF", &[StringsRest]),
        // RFC 6742 §2.1-§2.4.
        layout(104, "NID", &[U16, Locator64]),
        layout(105, "L32", &[U16, Ipv4]),
        layout(106, "L64", &[U16, Locator64]),
        layout(107, "LP", &[U16, Name]),
        // RFC 7043 §3.2 and §4.2.
        layout(108, "EUI48", &[Eui(6)]),
        layout(109, "EUI64", &[Eui(8)]),
        // RFC 7553 §4.4.
        layout(256, "URI", &[U16, U16, QuotedRest]),
    ]
};

/// RFC 4034 Appendix A.1 and the IANA registry.
const ALGORITHMS: &[(u8, &str)] = &[
    (1, "RSAMD5"),
    (2, "DH"),
    (3, "DSA"),
    (5, "RSASHA1"),
    (6, "DSA-NSEC3-SHA1"),
    (7, "RSASHA1-NSEC3-SHA1"),
    (8, "RSASHA256"),
    (10, "RSASHA512"),
    (12, "ECC-GOST"),
    (13, "ECDSAP256SHA256"),
    (14, "ECDSAP384SHA384"),
    (15, "ED25519"),
    (16, "ED448"),
    (252, "INDIRECT"),
    (253, "PRIVATEDNS"),
    (254, "PRIVATEOID"),
];

/// RFC 4398 §2.1.
const CERT_TYPES: &[(u16, &str)] = &[
    (1, "PKIX"),
    (2, "SPKI"),
    (3, "PGP"),
    (4, "IPKIX"),
    (5, "ISPKI"),
    (6, "IPGP"),
    (7, "ACPKIX"),
    (8, "IACPKIX"),
    (253, "URI"),
    (254, "OID"),
];

fn layout(record_type: RecordType) -> Option<&'static Layout> {
    let code = u16::from(record_type);
    LAYOUTS.iter().find(|layout| layout.code == code)
}

/// Whether this module parses and prints `record_type`.
pub(super) fn handles(record_type: RecordType) -> bool {
    layout(record_type).is_some()
}

/// Parses a type mnemonic, `TYPEnnn` included.
pub(super) fn parse_type(word: &str) -> Option<RecordType> {
    let upper = word.to_ascii_uppercase();
    if let Some(number) = upper.strip_prefix("TYPE")
        && let Ok(code) = number.parse::<u16>()
    {
        return Some(RecordType::from(code));
    }
    if let Some(layout) = LAYOUTS.iter().find(|layout| layout.mnemonic == upper) {
        return Some(RecordType::from(layout.code));
    }
    match upper.parse::<RecordType>() {
        Ok(RecordType::Unknown(_)) | Err(_) => None,
        Ok(known) => Some(known),
    }
}

/// The mnemonic of `record_type`, or `TYPEnnn` (RFC 3597 §5).
pub(super) fn type_name(record_type: RecordType) -> String {
    match record_type {
        RecordType::Unknown(code) => match layout(record_type) {
            Some(layout) => layout.mnemonic.to_owned(),
            None => format!("TYPE{code}"),
        },
        known => known.to_string(),
    }
}

/// Parses the RDATA tokens of a type [`handles`] into wire form.
pub(super) fn parse(record_type: RecordType, tokens: &[&Token], origin: &Name) -> Result<Vec<u8>, String> {
    let fields = layout(record_type).ok_or("no text form for this type")?.fields;
    let mut wire = Vec::new();
    let mut rest = tokens;
    for field in fields {
        if field.takes_rest() {
            wire.extend_from_slice(&parse_rest(*field, rest)?);
            return Ok(wire);
        }
        let Some((first, after)) = rest.split_first() else {
            return Err(format!("missing fields: expected {}", describe(fields)));
        };
        rest = after;
        if let Field::CharString = field {
            let (Token::Word(raw) | Token::Quoted(raw)) = first;
            push_with_length(&mut wire, &decode_escapes(raw)?)
                .map_err(|_| "a string is longer than 255 octets".to_owned())?;
            continue;
        }
        let Token::Word(word) = first else {
            return Err("unexpected quoted string".into());
        };
        let word = word.as_str();
        match field {
            Field::U8 => wire.push(parse_number(word)?),
            Field::U16 => wire.extend_from_slice(&parse_number::<u16>(word)?.to_be_bytes()),
            Field::U32 => wire.extend_from_slice(&parse_number::<u32>(word)?.to_be_bytes()),
            Field::Name | Field::NameAsIs => {
                let name = if word == "@" {
                    origin.clone()
                } else {
                    Name::parse(word, Some(origin)).map_err(|e| format!("invalid domain name {word:?}: {e}"))?
                };
                let name = if let Field::Name = field { name.to_lowercase() } else { name };
                wire.extend_from_slice(&name.to_bytes().map_err(|e| e.to_string())?);
            }
            Field::Ipv4 => {
                let address: std::net::Ipv4Addr = word.parse().map_err(|_| format!("invalid IPv4 address {word:?}"))?;
                wire.extend_from_slice(&address.octets());
            }
            Field::Time => wire.extend_from_slice(&parse_time(word)?.to_be_bytes()),
            Field::Algorithm => match ALGORITHMS.iter().find(|(_, name)| name.eq_ignore_ascii_case(word)) {
                Some((number, _)) => wire.push(*number),
                None => wire.push(parse_number(word)?),
            },
            Field::CertType => {
                let number = match CERT_TYPES.iter().find(|(_, name)| name.eq_ignore_ascii_case(word)) {
                    Some((number, _)) => *number,
                    None => parse_number(word)?,
                };
                wire.extend_from_slice(&number.to_be_bytes());
            }
            Field::Type => {
                let covered = parse_type(word).ok_or_else(|| format!("unknown record type {word:?}"))?;
                wire.extend_from_slice(&u16::from(covered).to_be_bytes());
            }
            Field::Salt => {
                let salt = if word == "-" { Vec::new() } else { decode_hex(word)? };
                push_with_length(&mut wire, &salt)?;
            }
            Field::Base32Hash => {
                let hash = BASE32HEX_NOPAD
                    .decode(word.to_ascii_uppercase().as_bytes())
                    .map_err(|_| format!("invalid base32hex {word:?}"))?;
                if hash.is_empty() {
                    return Err("empty next hashed owner name".into());
                }
                push_with_length(&mut wire, &hash)?;
            }
            Field::Eui(octets) => {
                let parts: Vec<&str> = word.split('-').collect();
                if parts.len() != *octets || parts.iter().any(|part| part.len() != 2) {
                    return Err(format!("expected {octets} hex octets joined by '-', found {word:?}"));
                }
                wire.extend_from_slice(&decode_hex(&parts.concat())?);
            }
            Field::Locator64 => {
                let groups: Vec<&str> = word.split(':').collect();
                if groups.len() != 4 || groups.iter().any(|group| group.len() != 4) {
                    return Err(format!("expected four groups of four hex digits joined by ':', found {word:?}"));
                }
                wire.extend_from_slice(&decode_hex(&groups.concat())?);
            }
            _ => unreachable!("fields that take the rest are handled above"),
        }
    }
    if let Some(extra) = rest.first() {
        let (Token::Word(text) | Token::Quoted(text)) = extra;
        return Err(format!("unexpected {text:?} after the last field"));
    }
    Ok(wire)
}

fn parse_rest(field: Field, tokens: &[&Token]) -> Result<Vec<u8>, String> {
    match field {
        Field::QuotedRest => match tokens {
            [Token::Quoted(raw) | Token::Word(raw)] => decode_escapes(raw),
            _ => Err("expected one quoted string".into()),
        },
        Field::StringsRest => {
            if tokens.is_empty() {
                return Err("expected at least one string".into());
            }
            let mut wire = Vec::new();
            for token in tokens {
                let (Token::Word(raw) | Token::Quoted(raw)) = token;
                push_with_length(&mut wire, &decode_escapes(raw)?)
                    .map_err(|_| "a string is longer than 255 octets; split it".to_owned())?;
            }
            Ok(wire)
        }
        Field::Base64Rest => {
            let text = words(tokens)?.concat();
            BASE64.decode(text.as_bytes()).map_err(|_| format!("invalid base64 {text:?}"))
        }
        Field::HexRest => {
            let words = words(tokens)?;
            if words.is_empty() {
                return Err("missing hex data".into());
            }
            decode_hex(&words.concat())
        }
        Field::TypeBitmap => {
            let types = words(tokens)?
                .iter()
                .map(|word| parse_type(word).ok_or_else(|| format!("unknown record type {word:?} in the type bitmap")))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(encode_type_bitmap(types.into_iter().map(u16::from)))
        }
        Field::Loc => parse_loc(&words(tokens)?),
        Field::Apl => parse_apl(&words(tokens)?),
        _ => Err(format!("{field:?} does not take the rest of the entry")),
    }
}

fn describe(fields: &[Field]) -> String {
    fields.iter().map(|field| format!("{field:?}")).collect::<Vec<_>>().join(" ")
}

fn words<'a>(tokens: &[&'a Token]) -> Result<Vec<&'a str>, String> {
    tokens
        .iter()
        .map(|token| match token {
            Token::Word(word) => Ok(word.as_str()),
            Token::Quoted(_) => Err("unexpected quoted string".to_owned()),
        })
        .collect()
}

fn parse_number<T: std::str::FromStr>(word: &str) -> Result<T, String> {
    word.parse().map_err(|_| format!("invalid number {word:?} (or out of range)"))
}

fn push_with_length(wire: &mut Vec<u8>, octets: &[u8]) -> Result<(), String> {
    let length = u8::try_from(octets.len()).map_err(|_| "longer than 255 octets")?;
    wire.push(length);
    wire.extend_from_slice(octets);
    Ok(())
}

pub(super) fn decode_hex(text: &str) -> Result<Vec<u8>, String> {
    HEXLOWER_PERMISSIVE.decode(text.as_bytes()).map_err(|_| format!("invalid hex {text:?}"))
}

/// RFC 4034 §4.1.2: windows of up to 32 octets, in ascending order.
fn encode_type_bitmap(types: impl Iterator<Item = u16>) -> Vec<u8> {
    let mut codes: Vec<u16> = types.collect();
    codes.sort_unstable();
    codes.dedup();
    let mut wire = Vec::new();
    let mut index = 0;
    while let Some(&first) = codes.get(index) {
        let window = first >> 8;
        let mut bits = [0u8; 32];
        let mut used = 0;
        while let Some(&code) = codes.get(index).filter(|code| *code >> 8 == window) {
            let low = usize::from(code & 0xff);
            bits[low / 8] |= 0x80 >> (low % 8);
            used = low / 8 + 1;
            index += 1;
        }
        wire.push(window.to_be_bytes()[1]);
        wire.push(used.to_be_bytes()[7]);
        wire.extend_from_slice(&bits[..used]);
    }
    wire
}

/// The types of a bitmap, or `None` if it is malformed.
pub(super) fn decode_type_bitmap(mut wire: &[u8]) -> Option<Vec<RecordType>> {
    let mut types = Vec::new();
    while let [window, length, rest @ ..] = wire {
        let length = usize::from(*length);
        if length == 0 || length > 32 {
            return None;
        }
        let bits = rest.get(..length)?;
        for (octet, byte) in bits.iter().enumerate() {
            for bit in 0..8 {
                if byte & (0x80 >> bit) != 0 {
                    let low = u16::try_from(octet * 8 + bit).ok()?;
                    types.push(RecordType::from(u16::from(*window) << 8 | low));
                }
            }
        }
        wire = rest.get(length..)?;
    }
    wire.is_empty().then_some(types)
}

// ---------------------------------------------------------------------------
// RRSIG times
// ---------------------------------------------------------------------------

/// RFC 4034 §3.2: a 14-digit date is `YYYYMMDDHHmmSS` UTC, anything else a
/// number of seconds. Dates past 2106 wrap, as serial arithmetic wants.
fn parse_time(word: &str) -> Result<u32, String> {
    let bad = || format!("invalid signature time {word:?}: expected YYYYMMDDHHmmSS or seconds");
    if word.len() != 14 {
        return word.parse().map_err(|_| bad());
    }
    if !word.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(bad());
    }
    let field = |range: std::ops::Range<usize>| word.get(range).and_then(|digits| digits.parse::<i64>().ok());
    let (Some(year), Some(month), Some(day), Some(hour), Some(minute), Some(second)) =
        (field(0..4), field(4..6), field(6..8), field(8..10), field(10..12), field(12..14))
    else {
        return Err(bad());
    };
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return Err(bad());
    }
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    // Serial arithmetic (RFC 1982): the value is the time modulo 2^32.
    u32::try_from(seconds.rem_euclid(1 << 32)).map_err(|_| bad())
}

fn format_time(seconds: u32) -> String {
    let seconds = i64::from(seconds);
    let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
    let of_day = seconds.rem_euclid(86_400);
    format!("{year:04}{month:02}{day:02}{:02}{:02}{:02}", of_day / 3600, of_day / 60 % 60, of_day % 60)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// (year, month, day) of the civil (proleptic Gregorian) date `days` after
/// 1970-01-01 (Howard Hinnant's algorithm).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

// ---------------------------------------------------------------------------
// Printing
// ---------------------------------------------------------------------------

/// Wire form back to text, for a type [`handles`]; `None` when the wire
/// form does not fit the type's layout (the caller prints RFC 3597 form).
pub(super) fn format(record_type: RecordType, wire: &[u8]) -> Option<String> {
    let fields = layout(record_type)?.fields;
    let mut out: Vec<String> = Vec::new();
    let mut rest = wire;
    for field in fields {
        if field.takes_rest() {
            let text = match field {
                Field::Base64Rest => BASE64.encode(rest),
                Field::HexRest if rest.is_empty() => return None,
                Field::HexRest => HEXUPPER.encode(rest),
                Field::TypeBitmap => decode_type_bitmap(rest)?.into_iter().map(type_name).collect::<Vec<_>>().join(" "),
                Field::QuotedRest => quote(rest),
                Field::StringsRest => format_strings(rest)?,
                Field::Loc => format_loc(rest)?,
                // Empty: the caller prints the RFC 3597 form, as ldns does.
                _ if rest.is_empty() => return None,
                _ => format_apl(rest)?,
            };
            if !text.is_empty() {
                out.push(text);
            }
            return Some(out.join(" "));
        }
        let text = match field {
            Field::U8 | Field::Algorithm => {
                let (value, after) = rest.split_first()?;
                rest = after;
                value.to_string()
            }
            Field::U16 | Field::Type | Field::CertType => {
                let (value, after) = rest.split_first_chunk::<2>()?;
                rest = after;
                let value = u16::from_be_bytes(*value);
                match field {
                    Field::Type => type_name(RecordType::from(value)),
                    Field::CertType => match CERT_TYPES.iter().find(|(number, _)| *number == value) {
                        Some((_, name)) => (*name).to_owned(),
                        None => value.to_string(),
                    },
                    _ => value.to_string(),
                }
            }
            Field::U32 | Field::Time | Field::Ipv4 => {
                let (value, after) = rest.split_first_chunk::<4>()?;
                rest = after;
                match field {
                    Field::Time => format_time(u32::from_be_bytes(*value)),
                    Field::Ipv4 => std::net::Ipv4Addr::from(*value).to_string(),
                    _ => u32::from_be_bytes(*value).to_string(),
                }
            }
            Field::Name | Field::NameAsIs => {
                let mut decoder = BinDecoder::new(rest);
                let name = Name::read(&mut decoder).ok()?;
                rest = rest.get(decoder.index()..)?;
                name.to_ascii()
            }
            Field::Salt | Field::Base32Hash => {
                let (length, after) = rest.split_first()?;
                let octets = after.get(..usize::from(*length))?;
                rest = after.get(usize::from(*length)..)?;
                match field {
                    Field::Salt if octets.is_empty() => "-".to_owned(),
                    Field::Salt => HEXUPPER.encode(octets),
                    _ => BASE32HEX_NOPAD.encode(octets),
                }
            }
            Field::CharString => {
                let (length, after) = rest.split_first()?;
                let octets = after.get(..usize::from(*length))?;
                rest = after.get(usize::from(*length)..)?;
                quote(octets)
            }
            Field::Eui(octets) => {
                let value = rest.get(..*octets)?;
                rest = rest.get(*octets..)?;
                value.iter().map(|byte| format!("{byte:02x}")).collect::<Vec<_>>().join("-")
            }
            Field::Locator64 => {
                let (value, after) = rest.split_first_chunk::<8>()?;
                rest = after;
                value.chunks(2).map(|group| HEXLOWER.encode(group)).collect::<Vec<_>>().join(":")
            }
            _ => return None,
        };
        out.push(text);
    }
    rest.is_empty().then(|| out.join(" "))
}

/// SVCB and HTTPS (RFC 9460 §2.1) from wire form: hickory parses them,
/// but prints list values with trailing commas and `no-default-alpn=`.
pub(super) fn format_svcb(wire: &[u8]) -> Option<String> {
    let (priority, rest) = wire.split_first_chunk::<2>()?;
    let mut decoder = BinDecoder::new(rest);
    let target = Name::read(&mut decoder).ok()?;
    let mut rest = rest.get(decoder.index()..)?;
    let mut out = vec![u16::from_be_bytes(*priority).to_string(), target.to_ascii()];
    while !rest.is_empty() {
        let (key, after) = rest.split_first_chunk::<2>()?;
        let (length, after) = after.split_first_chunk::<2>()?;
        let length = usize::from(u16::from_be_bytes(*length));
        let value = after.get(..length)?;
        rest = after.get(length..)?;
        out.push(format_svc_param(u16::from_be_bytes(*key), value)?);
    }
    Some(out.join(" "))
}

/// RFC 9460 §14.3.2 names; other keys as `keyNNNNN`.
fn svc_param_key_name(key: u16) -> String {
    match key {
        0 => "mandatory".into(),
        1 => "alpn".into(),
        2 => "no-default-alpn".into(),
        3 => "port".into(),
        4 => "ipv4hint".into(),
        5 => "ech".into(),
        6 => "ipv6hint".into(),
        7 => "dohpath".into(),
        _ => format!("key{key}"),
    }
}

fn format_svc_param(key: u16, value: &[u8]) -> Option<String> {
    let name = svc_param_key_name(key);
    let text = match key {
        0 => value
            .chunks(2)
            .map(|chunk| chunk.try_into().ok().map(|key| svc_param_key_name(u16::from_be_bytes(key))))
            .collect::<Option<Vec<_>>>()?
            .join(","),
        1 => {
            let mut ids = Vec::new();
            let mut rest = value;
            while let Some((length, after)) = rest.split_first() {
                let id = after.get(..usize::from(*length))?;
                rest = after.get(usize::from(*length)..)?;
                // RFC 9460 §7.1.1: a comma inside an ID is escaped.
                let quoted = quote(id);
                ids.push(quoted.trim_matches('"').replace(',', "\\,"));
            }
            ids.join(",")
        }
        2 if value.is_empty() => return Some(name),
        3 => u16::from_be_bytes(value.try_into().ok()?).to_string(),
        4 => value
            .chunks(4)
            .map(|chunk| <[u8; 4]>::try_from(chunk).ok().map(|octets| std::net::Ipv4Addr::from(octets).to_string()))
            .collect::<Option<Vec<_>>>()?
            .join(","),
        5 => BASE64.encode(value),
        6 => value
            .chunks(16)
            .map(|chunk| <[u8; 16]>::try_from(chunk).ok().map(|octets| std::net::Ipv6Addr::from(octets).to_string()))
            .collect::<Option<Vec<_>>>()?
            .join(","),
        _ => quote(value),
    };
    Some(format!("{name}={text}"))
}

fn format_strings(mut wire: &[u8]) -> Option<String> {
    let mut strings = Vec::new();
    while let Some((length, after)) = wire.split_first() {
        strings.push(quote(after.get(..usize::from(*length))?));
        wire = after.get(usize::from(*length)..)?;
    }
    (!strings.is_empty()).then(|| strings.join(" "))
}

/// A character-string in presentation form: quoted, with `"` and `\`
/// escaped and bytes outside printable ASCII as `\DDD`.
pub(super) fn quote(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for &byte in bytes {
        match byte {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(char::from(byte));
            }
            0x20..=0x7e => out.push(char::from(byte)),
            _ => out.push_str(&format!("\\{byte:03}")),
        }
    }
    out.push('"');
    out
}

// ---------------------------------------------------------------------------
// LOC (RFC 1876)
// ---------------------------------------------------------------------------

/// 2^31: the equator and the prime meridian (RFC 1876 §2).
const LOC_ORIGIN: i64 = 1 << 31;
/// Altitudes are stored from 100 000 m below the WGS 84 spheroid, in cm.
const LOC_ALTITUDE_BASE_CM: i64 = 10_000_000;

/// `d1 [m1 [s1]] {N|S} d2 [m2 [s2]] {E|W} alt[m] [siz[m] [hp[m] [vp[m]]]]`.
fn parse_loc(words: &[&str]) -> Result<Vec<u8>, String> {
    let mut rest = words;
    let latitude = parse_coordinate(&mut rest, ('N', 'S'), 90)?;
    let longitude = parse_coordinate(&mut rest, ('E', 'W'), 180)?;
    let (altitude, sizes) = rest.split_first().ok_or("LOC needs an altitude")?;
    let altitude_cm = parse_metres(altitude, -100_000, 42_849_672)?;
    if sizes.len() > 3 {
        return Err("LOC has at most size, horizontal and vertical precision after the altitude".into());
    }
    // RFC 1876 §3 defaults: 1 m size, 10 000 m and 10 m precision.
    let mut precisions = [100i64, 1_000_000, 1000];
    for (slot, word) in precisions.iter_mut().zip(sizes) {
        *slot = parse_metres(word, 0, 90_000_000)?;
    }
    let mut wire = vec![0u8];
    for precision in precisions {
        wire.push(encode_precision(precision));
    }
    for value in [LOC_ORIGIN + latitude, LOC_ORIGIN + longitude, LOC_ALTITUDE_BASE_CM + altitude_cm] {
        let value = u32::try_from(value).map_err(|_| "LOC value out of range")?;
        wire.extend_from_slice(&value.to_be_bytes());
    }
    Ok(wire)
}

/// Degrees, optional minutes and seconds, then the hemisphere; in
/// thousandths of an arc second, negative for S and W.
fn parse_coordinate(words: &mut &[&str], hemispheres: (char, char), max_degrees: i64) -> Result<i64, String> {
    let mut parts = Vec::new();
    loop {
        let (word, after) = words.split_first().ok_or("LOC coordinate is incomplete")?;
        *words = after;
        let upper = word.to_ascii_uppercase();
        let sign = if upper == hemispheres.0.to_string() {
            1
        } else if upper == hemispheres.1.to_string() {
            -1
        } else {
            parts.push(*word);
            if parts.len() > 3 {
                return Err(format!("expected {} or {} in the LOC coordinate", hemispheres.0, hemispheres.1));
            }
            continue;
        };
        let [degrees, more @ ..] = parts.as_slice() else {
            return Err("LOC coordinate has no degrees".into());
        };
        let degrees: i64 = parse_number(degrees)?;
        let minutes: i64 = more.first().map_or(Ok(0), |minutes| parse_number(minutes))?;
        let milliseconds = more.get(1).map_or(Ok(0), |seconds| parse_decimal(seconds, 3))?;
        if degrees > max_degrees || minutes > 59 || milliseconds > 59_999 {
            return Err(format!("LOC coordinate {} out of range", parts.join(" ")));
        }
        let value = (degrees * 3600 + minutes * 60) * 1000 + milliseconds;
        if value > max_degrees * 3_600_000 {
            return Err(format!("LOC coordinate {} out of range", parts.join(" ")));
        }
        return Ok(sign * value);
    }
}

/// A decimal with at most `places` fractional digits, scaled to an integer.
fn parse_decimal(word: &str, places: u32) -> Result<i64, String> {
    let bad = || format!("invalid number {word:?}");
    let (negative, digits) = match word.strip_prefix('-') {
        Some(digits) => (true, digits),
        None => (false, word),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let fraction_len = u32::try_from(fraction.len()).map_err(|_| bad())?;
    if whole.is_empty() && fraction.is_empty()
        || fraction_len > places
        || !whole.bytes().chain(fraction.bytes()).all(|byte| byte.is_ascii_digit())
    {
        return Err(bad());
    }
    let whole: i64 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| bad())? };
    let fraction: i64 = if fraction.is_empty() { 0 } else { fraction.parse().map_err(|_| bad())? };
    let scale = 10i64.pow(places);
    let value = whole.checked_mul(scale).ok_or_else(bad)? + fraction * 10i64.pow(places - fraction_len);
    Ok(if negative { -value } else { value })
}

/// Metres with an optional `m`, to centimetres, within [min, max] metres.
fn parse_metres(word: &str, min: i64, max: i64) -> Result<i64, String> {
    let number = word.strip_suffix(['m', 'M']).unwrap_or(word);
    let centimetres = parse_decimal(number, 2)?;
    if centimetres < min * 100 || centimetres > max * 100 {
        return Err(format!("LOC value {word:?} out of range"));
    }
    Ok(centimetres)
}

/// RFC 1876 §2: size as mantissa (high nibble) times 10 to the exponent,
/// in centimetres, rounded up to what the form can hold.
fn encode_precision(centimetres: i64) -> u8 {
    let mut exponent = 0u8;
    let mut mantissa = centimetres;
    while mantissa > 9 && exponent < 9 {
        // Round up: a precision is an upper bound.
        mantissa = (mantissa + 9) / 10;
        exponent += 1;
    }
    let mantissa = u8::try_from(mantissa.min(9)).unwrap_or(9);
    mantissa << 4 | exponent
}

fn decode_precision(byte: u8) -> Option<i64> {
    let (mantissa, exponent) = (byte >> 4, byte & 0x0f);
    (mantissa <= 9 && exponent <= 9).then(|| i64::from(mantissa) * 10i64.pow(u32::from(exponent)))
}

fn format_loc(wire: &[u8]) -> Option<String> {
    let [0, size, horizontal, vertical, rest @ ..] = wire else { return None };
    if rest.len() != 12 {
        return None;
    }
    let field = |range: std::ops::Range<usize>| {
        rest.get(range).and_then(|bytes| bytes.try_into().ok()).map(|bytes| i64::from(u32::from_be_bytes(bytes)))
    };
    let latitude = field(0..4)? - LOC_ORIGIN;
    let longitude = field(4..8)? - LOC_ORIGIN;
    let altitude = field(8..12)? - LOC_ALTITUDE_BASE_CM;
    let coordinate = |value: i64, hemispheres: (char, char)| {
        let hemisphere = if value < 0 { hemispheres.1 } else { hemispheres.0 };
        let value = value.abs();
        format!("{} {} {}.{:03} {hemisphere}", value / 3_600_000, value / 60_000 % 60, value / 1000 % 60, value % 1000)
    };
    let metres = |centimetres: i64| {
        let sign = if centimetres < 0 { "-" } else { "" };
        let centimetres = centimetres.abs();
        format!("{sign}{}.{:02}m", centimetres / 100, centimetres % 100)
    };
    Some(format!(
        "{} {} {} {} {} {}",
        coordinate(latitude, ('N', 'S')),
        coordinate(longitude, ('E', 'W')),
        metres(altitude),
        metres(decode_precision(*size)?),
        metres(decode_precision(*horizontal)?),
        metres(decode_precision(*vertical)?),
    ))
}

// ---------------------------------------------------------------------------
// APL (RFC 3123)
// ---------------------------------------------------------------------------

/// `[!]afi:address/prefix ...`; address families 1 (IPv4) and 2 (IPv6).
fn parse_apl(words: &[&str]) -> Result<Vec<u8>, String> {
    let mut wire = Vec::new();
    for word in words {
        let bad = || format!("invalid APL item {word:?}: expected [!]afi:address/prefix");
        let (negated, item) = match word.strip_prefix('!') {
            Some(item) => (true, item),
            None => (false, *word),
        };
        let (family, item) = item.split_once(':').ok_or_else(bad)?;
        let (address, prefix) = item.rsplit_once('/').ok_or_else(bad)?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        let (family, octets, max_prefix) = match family {
            "1" => (1u16, address.parse::<std::net::Ipv4Addr>().map_err(|_| bad())?.octets().to_vec(), 32),
            "2" => (2u16, address.parse::<std::net::Ipv6Addr>().map_err(|_| bad())?.octets().to_vec(), 128),
            _ => return Err(format!("APL address family {family:?} is not 1 or 2")),
        };
        if prefix > max_prefix {
            return Err(bad());
        }
        // RFC 3123 §4: trailing zero octets are left out.
        let length = octets.iter().rposition(|byte| *byte != 0).map_or(0, |last| last + 1);
        wire.extend_from_slice(&family.to_be_bytes());
        wire.push(prefix);
        wire.push(u8::try_from(length).map_err(|_| bad())? | if negated { 0x80 } else { 0 });
        wire.extend_from_slice(octets.get(..length).unwrap_or_default());
    }
    Ok(wire)
}

fn format_apl(mut wire: &[u8]) -> Option<String> {
    let mut items = Vec::new();
    while !wire.is_empty() {
        let [family_high, family_low, prefix, flags, rest @ ..] = wire else { return None };
        let length = usize::from(flags & 0x7f);
        let octets = rest.get(..length)?;
        wire = rest.get(length..)?;
        let negation = if flags & 0x80 != 0 { "!" } else { "" };
        let address = match u16::from_be_bytes([*family_high, *family_low]) {
            1 if length <= 4 => {
                let mut full = [0u8; 4];
                full.get_mut(..length)?.copy_from_slice(octets);
                std::net::Ipv4Addr::from(full).to_string()
            }
            2 if length <= 16 => {
                let mut full = [0u8; 16];
                full.get_mut(..length)?.copy_from_slice(octets);
                std::net::Ipv6Addr::from(full).to_string()
            }
            _ => return None,
        };
        let family = u16::from_be_bytes([*family_high, *family_low]);
        items.push(format!("{negation}{family}:{address}/{prefix}"));
    }
    Some(items.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_convert_both_ways() {
        assert_eq!(parse_time("20261201000000"), Ok(1_796_083_200));
        assert_eq!(format_time(1_796_083_200), "20261201000000");
        assert_eq!(parse_time("1796083200"), Ok(1_796_083_200));
        assert_eq!(format_time(0), "19700101000000");
        assert!(parse_time("20261301000000").is_err());
    }

    #[test]
    fn type_bitmaps_round_trip() {
        let wire = encode_type_bitmap([1, 15, 46, 47, 1234].into_iter());
        let types = decode_type_bitmap(&wire).expect("decodes");
        assert_eq!(types.into_iter().map(u16::from).collect::<Vec<_>>(), [1, 15, 46, 47, 1234]);
        assert_eq!(decode_type_bitmap(&[0, 0]), None);
    }
}
