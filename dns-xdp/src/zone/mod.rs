//! One authoritative zone in memory, and the master-file loader that builds it.
//!
//! The loader reads RFC 1035 §5 master files. Where the RFC leaves room it
//! does what NSD 4.6 does, because the daemon's answers are tested against
//! NSD's:
//!
//! * owner names and the domain names inside RDATA are stored lower-cased
//!   (NSD normalises them the same way, so its answers carry lower-case
//!   names too);
//! * a record without a TTL gets the `$TTL` value, else 3600 (NSD's default;
//!   RFC 1035's "last stated TTL" is not used);
//! * records of one RRset with different TTLs are kept, with a warning, and
//!   the RRset's TTL is the lowest of them. NSD keeps each record's own TTL;
//!   RFC 2181 §5.2 tells clients to treat such an RRset as if every TTL were
//!   the lowest, so both answers mean the same to a resolver;
//! * identical records are merged (RFC 2181 §5).
//!
//! Record data is parsed one record at a time, so that every error can
//! name the file and line: by hickory's zone-file parser where it reads what
//! NSD reads; by `presentation` for the types hickory cannot parse (the
//! DNSSEC types, LOC, URI, DHCID, EUI48/EUI64, RP, AFSDB, KX, APL, ZONEMD
//! and more) or prints differently from `ldns-read-zone`; by `rdata` for
//! DNAME, TXT with `\DDD` escapes or inside parentheses, and the RFC 3597
//! generic `\# <length> <hex>` form, which is accepted for every type (the
//! way to load types no one here knows). Whatever the text form, a record's
//! RDATA is what hickory decodes from the same wire octets.
//!
//! RRSIGs are kept per covered type (RFC 4034 §3), each set with its own
//! TTL, apart from the other RRsets of a node ([`Node::signatures`]).
//!
//! Rejected like `named-checkzone`/`nsd-checkzone` do, with `file:line`:
//! syntax errors, classes other than IN, records outside the zone, a SOA
//! that is missing (no line), repeated or not at the apex, CNAME next to
//! other data, more than one CNAME or DNAME at a name, and data below a
//! DNAME (RFC 6672 §2.4; NSD refuses it too).
//!
//! This file holds the zone model ([`Zone`], [`Node`], [`RrSet`]) and its
//! errors; `lexer` splits text into entries, `loader` turns entries into
//! a checked zone, `rdata` parses and prints record data, and
//! `presentation` holds the field layouts of the types it writes by hand
//! (where a new record type's text form goes).

mod diff;
mod lexer;
mod loader;
mod presentation;
mod rdata;

pub use diff::{ApplyError, Reach, ZoneDiff};
use lexer::{Lexer, Token};
use loader::Loader;
pub use presentation::civil_from_days;
pub use rdata::{dname_target, format_record, rrsig_covered};

use std::{
    collections::BTreeMap,
    fmt,
    path::{Path, PathBuf},
    time::SystemTime,
};

use hickory_proto::rr::{DNSClass, LowerName, Name, RData, Record, RecordType};

/// TTL of records that state none when the file has no `$TTL` (NSD's
/// default).
const DEFAULT_TTL: u32 = 3600;

/// How deep `$INCLUDE` may nest. Also what stops a file including itself.
const MAX_INCLUDE_DEPTH: usize = 16;

/// The longest character-string (RFC 1035 §3.3).
const MAX_CHARACTER_STRING: usize = 255;

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Why a zone could not be loaded.
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum ZoneError {
    /// The zone file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The text is not a valid master file, e.g. `zones/bad.zone:7: invalid
    /// A record data: ...`.
    #[error("{file}:{line}: {message}")]
    Syntax { file: String, line: usize, message: String },
    /// The records parse but do not make a valid zone.
    #[error("{}{problem}", location_prefix(.file, *.line))]
    Invalid {
        file: String,
        /// Absent for problems of the zone as a whole (a missing SOA).
        line: Option<usize>,
        problem: Box<Problem>,
    },
    /// No origin was given, the file has no `$ORIGIN`, and its name does not
    /// make one.
    #[error("{}: cannot tell the zone origin: give it explicitly or add $ORIGIN", path.display())]
    UnknownOrigin { path: PathBuf },
}

impl ZoneError {
    /// The line the error is on, when it has one.
    pub fn line(&self) -> Option<usize> {
        match self {
            Self::Syntax { line, .. } => Some(*line),
            Self::Invalid { line, .. } => *line,
            Self::Io { .. } | Self::UnknownOrigin { .. } => None,
        }
    }
}

fn location_prefix(file: &str, line: Option<usize>) -> String {
    match line {
        Some(line) => format!("{file}:{line}: "),
        None => format!("{file}: "),
    }
}

/// What is wrong with a zone whose records parse (see [`ZoneError::Invalid`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    MissingSoa { origin: Name },
    MultipleSoa,
    SoaNotAtApex { owner: Name },
    OutOfZone { owner: Name, origin: Name },
    CnameAndOtherData { owner: Name },
    MultipleCnames { owner: Name },
    MultipleDnames { owner: Name },
    DataBelowDname { owner: Name, dname: Name },
    UnsupportedClass { class: DNSClass },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingSoa { origin } => write!(f, "zone {origin} has no SOA record at its apex"),
            Self::MultipleSoa => f.write_str("more than one SOA record"),
            Self::SoaNotAtApex { owner } => write!(f, "SOA record at {owner} is not at the zone apex"),
            Self::OutOfZone { owner, origin } => write!(f, "{owner} is outside the zone {origin}"),
            Self::CnameAndOtherData { owner } => write!(f, "CNAME and other data at {owner}"),
            Self::MultipleCnames { owner } => write!(f, "more than one CNAME record at {owner}"),
            Self::MultipleDnames { owner } => write!(f, "more than one DNAME record at {owner}"),
            Self::DataBelowDname { owner, dname } => {
                write!(f, "{owner} is below the DNAME at {dname}; data below a DNAME is not allowed")
            }
            Self::UnsupportedClass { class } => write!(f, "class {class} is not supported, only IN"),
        }
    }
}

// ---------------------------------------------------------------------------
// Zone data
// ---------------------------------------------------------------------------

/// One RRset: the records of one type at one owner, in zone-file order.
#[derive(Debug, Clone)]
pub struct RrSet {
    record_type: RecordType,
    ttl: u32,
    records: Vec<Record>,
}

impl RrSet {
    pub fn record_type(&self) -> RecordType {
        self.record_type
    }

    /// The TTL every record of the set carries.
    pub fn ttl(&self) -> u32 {
        self.ttl
    }

    /// Never empty; owners are the lower-cased owner name.
    pub fn records(&self) -> &[Record] {
        &self.records
    }
}

/// The data at one name. A node without RRsets is an empty non-terminal: it
/// exists (queries for it get NODATA, not NXDOMAIN) because names below it
/// have data.
#[derive(Debug, Clone, Default)]
pub struct Node {
    /// In the order each type first appears in the zone file; answers to
    /// ANY depend on it. RRSIGs are not here but in `signatures`.
    rrsets: Vec<RrSet>,
    /// The RRSIGs, one set per covered type (RFC 4034 §3: the RRSIGs of one
    /// RRset go with it, with its TTL), in the order each covered type
    /// first appears.
    signatures: Vec<(RecordType, RrSet)>,
}

impl Node {
    /// The RRsets at this name, RRSIGs excepted (see [`Node::signatures`]).
    pub fn rrsets(&self) -> &[RrSet] {
        &self.rrsets
    }

    /// The RRset of `record_type`; for RRSIG, see [`Node::signatures`].
    pub fn rrset(&self, record_type: RecordType) -> Option<&RrSet> {
        self.rrsets.iter().find(|set| set.record_type == record_type)
    }

    /// The RRSIGs that cover the RRset of `covered`.
    pub fn signatures(&self, covered: RecordType) -> Option<&RrSet> {
        self.signatures.iter().find(|(of, _)| *of == covered).map(|(_, set)| set)
    }

    /// Every set of RRSIGs at this name, with the type it covers.
    pub fn signature_sets(&self) -> impl Iterator<Item = (RecordType, &RrSet)> {
        self.signatures.iter().map(|(covered, set)| (*covered, set))
    }

    pub fn is_empty_non_terminal(&self) -> bool {
        self.rrsets.is_empty() && self.signatures.is_empty()
    }
}

/// One zone's data. Names are compared case-insensitively: every key is a
/// lower-cased [`LowerName`], and so is every stored owner.
#[derive(Debug, Clone)]
pub struct Zone {
    origin: Name,
    soa: Record,
    /// Every name that exists, empty non-terminals included, in canonical
    /// order (RFC 4034 §6.1), so the names below a name follow it.
    nodes: BTreeMap<LowerName, Node>,
    record_count: usize,
    source: String,
    /// When this copy of the zone data was loaded (a reload that finds the
    /// file unchanged keeps the copy, and so the time).
    loaded_at: SystemTime,
    /// For a zone signed with NSEC3: the apex NSEC3PARAM's hash parameters
    /// and the NSEC3 owners by hash, sorted, to find the record matching or
    /// covering a name (RFC 5155 §7.2) with a binary search.
    nsec3: Option<Nsec3Chain>,
}

/// The NSEC3 records of a zone, by hashed owner name.
#[derive(Debug, Clone)]
pub(crate) struct Nsec3Chain {
    pub(crate) iterations: u16,
    pub(crate) salt: Vec<u8>,
    /// (hash, owner), sorted by hash.
    pub(crate) owners: Vec<(Vec<u8>, LowerName)>,
}

impl Nsec3Chain {
    /// RFC 5155 §5: SHA-1, iterated, salted, over the canonical name
    /// (hickory's implementation, on ring).
    fn hash(&self, name: &Name) -> Option<Vec<u8>> {
        hickory_proto::dnssec::Nsec3HashAlgorithm::SHA1
            .hash(&self.salt, name, self.iterations)
            .ok()
            .map(|digest| digest.as_ref().to_vec())
    }
}

impl Zone {
    /// Parses master-file `text` for the zone `origin`. `source` names the
    /// text in errors (`source:line: ...`); a relative `$INCLUDE` is read
    /// from the directory part of `source`.
    pub fn parse(text: &str, origin: &Name, source: &str) -> Result<Zone, ZoneError> {
        Loader::load(text, canonical_origin(origin), source, Path::new(source).parent())
    }

    /// Reads and parses the zone file at `path`. Without `origin`, the zone
    /// is named by the file's first `$ORIGIN`, else by the file name without
    /// a trailing `.zone` (`zones/example.test.zone` is `example.test.`).
    pub fn load(path: &Path, origin: Option<&Name>) -> Result<Zone, ZoneError> {
        let text = std::fs::read_to_string(path).map_err(|source| ZoneError::Io { path: path.to_owned(), source })?;
        Self::parse_file_text(&text, path, origin)
    }

    /// [`Zone::load`] for a file whose text the caller has already read.
    pub fn parse_file_text(text: &str, path: &Path, origin: Option<&Name>) -> Result<Zone, ZoneError> {
        let origin = Self::file_origin(Some(text), path, origin)
            .ok_or_else(|| ZoneError::UnknownOrigin { path: path.to_owned() })?;
        Loader::load(text, origin, &path.display().to_string(), path.parent())
    }

    /// The zone a file is for, by the rules of [`Zone::load`], without
    /// loading it: so that a zone whose file does not load (or cannot be
    /// read, `text` is `None`) can still be told apart from names that are
    /// not ours.
    pub fn file_origin(text: Option<&str>, path: &Path, origin: Option<&Name>) -> Option<Name> {
        match origin {
            Some(origin) => Some(canonical_origin(origin)),
            None => text.and_then(first_origin_directive).or_else(|| origin_from_file_name(path)),
        }
    }

    /// The zone's name: lower-case, fully qualified.
    pub fn origin(&self) -> &Name {
        &self.origin
    }

    /// The SOA record at the apex.
    pub fn soa(&self) -> &Record {
        &self.soa
    }

    pub fn serial(&self) -> u32 {
        match &self.soa.data {
            RData::SOA(soa) => soa.serial,
            _ => 0,
        }
    }

    /// The SOA record as NXDOMAIN and NODATA answers carry it: with the TTL
    /// lowered to the SOA MINIMUM field when that is smaller (RFC 2308 §3,
    /// as NSD does).
    pub fn negative_soa(&self) -> Record {
        let mut soa = self.soa.clone();
        if let RData::SOA(data) = &self.soa.data {
            soa.ttl = soa.ttl.min(data.minimum);
        }
        soa
    }

    /// Where the text came from, as given to [`Zone::parse`] or [`Zone::load`].
    pub fn source(&self) -> &str {
        &self.source
    }

    /// When this copy of the zone data was loaded.
    pub fn loaded_at(&self) -> SystemTime {
        self.loaded_at
    }

    /// Number of records (duplicates merged).
    pub fn record_count(&self) -> usize {
        self.record_count
    }

    /// The node at `name`, if the name exists (empty non-terminals exist).
    pub fn node(&self, name: &LowerName) -> Option<&Node> {
        self.nodes.get(name)
    }

    /// Every record of the zone, the SOA first, then by owner in canonical
    /// order (RRSIGs after each owner's other RRsets): what an AXFR sends
    /// and a copy on disk holds.
    pub fn records(&self) -> impl Iterator<Item = &Record> {
        let rest = self.nodes.values().flat_map(|node| {
            let data = node.rrsets.iter().filter(|set| set.record_type != RecordType::SOA);
            data.chain(node.signatures.iter().map(|(_, set)| set)).flat_map(|set| set.records.iter())
        });
        std::iter::once(&self.soa).chain(rest)
    }

    /// Every existing name and its node, in canonical order.
    pub fn nodes(&self) -> impl Iterator<Item = (&LowerName, &Node)> {
        self.nodes.iter()
    }

    pub fn is_empty_non_terminal(&self, name: &LowerName) -> bool {
        self.nodes.get(name).is_some_and(Node::is_empty_non_terminal)
    }

    /// Whether denial of existence uses NSEC3 (the apex has an NSEC3PARAM
    /// and the zone NSEC3 records).
    pub fn uses_nsec3(&self) -> bool {
        self.nsec3.is_some()
    }

    /// The NSEC3 RRset whose owner is the hash of `name` (RFC 5155 §7.2.1
    /// "matching"), with its owner and node.
    pub fn nsec3_matching(&self, name: &Name) -> Option<(&LowerName, &Node, &RrSet)> {
        let chain = self.nsec3.as_ref()?;
        let hash = chain.hash(name)?;
        let index = chain.owners.binary_search_by(|(owner_hash, _)| owner_hash.as_slice().cmp(&hash)).ok()?;
        self.nsec3_at(chain.owners.get(index)?)
    }

    /// The NSEC3 RRset that covers the hash of `name`: the one with the
    /// greatest hash below it, or the last one when none is below (the
    /// chain wraps, RFC 5155 §3.1.7).
    pub fn nsec3_covering(&self, name: &Name) -> Option<(&LowerName, &Node, &RrSet)> {
        let chain = self.nsec3.as_ref()?;
        let hash = chain.hash(name)?;
        let below = chain.owners.partition_point(|(owner_hash, _)| owner_hash.as_slice() < hash.as_slice());
        let entry = match below {
            0 => chain.owners.last()?,
            n => chain.owners.get(n - 1)?,
        };
        self.nsec3_at(entry)
    }

    fn nsec3_at(&self, (_, owner): &(Vec<u8>, LowerName)) -> Option<(&LowerName, &Node, &RrSet)> {
        let (owner, node) = self.nodes.get_key_value(owner)?;
        node.rrset(RecordType::NSEC3).map(|set| (owner, node, set))
    }

    /// Whether the zone is DNSSEC-signed: it has a DNSKEY RRset at its apex.
    pub fn is_signed(&self) -> bool {
        self.nodes.get(&LowerName::new(&self.origin)).is_some_and(|apex| apex.rrset(RecordType::DNSKEY).is_some())
    }

    /// The NSEC RRset that matches `name` (owned by it) or covers it (owned
    /// by its closest canonical predecessor, RFC 4034 §6.1), with its
    /// owner and node; `None` in a zone without NSEC records.
    pub fn nsec_matching_or_covering(&self, name: &LowerName) -> Option<(&LowerName, &Node, &RrSet)> {
        let before = self.nodes.range::<LowerName, _>(..=name).rev();
        let found =
            before.filter_map(|(owner, node)| node.rrset(RecordType::NSEC).map(|nsec| (owner, node, nsec))).next();
        // Before the apex (impossible for names in the zone) the chain wraps
        // to its last NSEC.
        found.or_else(|| {
            self.nodes
                .iter()
                .rev()
                .find_map(|(owner, node)| node.rrset(RecordType::NSEC).map(|nsec| (owner, node, nsec)))
        })
    }

    /// Whether `name` is a zone cut: it has NS records and is not the apex.
    pub fn is_delegation(&self, name: &LowerName) -> bool {
        **name != self.origin && self.nodes.get(name).is_some_and(|node| node.rrset(RecordType::NS).is_some())
    }

    /// The zone cuts, in canonical order. Cuts below another cut are listed
    /// too, although only the topmost one is ever used.
    pub fn delegations(&self) -> impl Iterator<Item = &LowerName> {
        self.nodes
            .iter()
            .filter(|(name, node)| ***name != self.origin && node.rrset(RecordType::NS).is_some())
            .map(|(name, _)| name)
    }

    /// Whether `name` is at or below a zone cut, i.e. not authoritative data
    /// of this zone (the cut's own DS and NS excepted, which the caller must
    /// handle).
    pub fn is_at_or_below_cut(&self, name: &Name) -> bool {
        let origin_labels = label_count(&self.origin);
        let name_labels = label_count(name);
        if !self.origin.zone_of(name) {
            return false;
        }
        (origin_labels + 1..=name_labels).any(|depth| self.is_delegation(&LowerName::new(&name.trim_to(depth))))
    }
}

/// A hash of a zone file's text: a reload whose file's hash is unchanged
/// keeps the zone it parsed before. Not a defence against anyone: the
/// file's writer is trusted.
pub fn text_fingerprint(text: &str) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}

/// The number of labels of `name`, a leading `*` included (unlike
/// [`Name::num_labels`]).
pub(crate) fn label_count(name: &Name) -> usize {
    name.iter().count()
}

fn canonical_origin(origin: &Name) -> Name {
    let mut origin = origin.to_lowercase();
    origin.set_fqdn(true);
    origin
}

/// The argument of the first `$ORIGIN` in `text`, if any.
fn first_origin_directive(text: &str) -> Option<Name> {
    let mut lexer = Lexer::new(text);
    while let Ok(Some(entry)) = lexer.next_entry() {
        if entry.continues_owner {
            continue;
        }
        if let [Token::Word(directive), Token::Word(argument), ..] = entry.tokens.as_slice()
            && directive.eq_ignore_ascii_case("$ORIGIN")
        {
            return Name::parse(argument, Some(&Name::root())).ok().map(|name| canonical_origin(&name));
        }
    }
    None
}

fn origin_from_file_name(path: &Path) -> Option<Name> {
    let file_name = path.file_name()?.to_str()?;
    let stem = file_name.strip_suffix(".zone").unwrap_or(file_name);
    if stem.is_empty() {
        return None;
    }
    Name::parse(stem, Some(&Name::root())).ok().map(|name| canonical_origin(&name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> Name {
        Name::from_ascii(text).expect("test name")
    }

    const HEADER: &str = "$ORIGIN bad.test.\n$TTL 300\n@ SOA ns hm 1 2 3 4 5\n@ NS ns\nns A 192.0.2.1\n";

    fn parse_error(text: &str) -> ZoneError {
        match Zone::parse(text, &name("bad.test."), "zones/bad.zone") {
            Ok(_) => panic!("{text:?} should not load"),
            Err(err) => err,
        }
    }

    #[test]
    fn syntax_errors_name_file_and_line() {
        let cases: &[(&str, usize, &str)] = &[
            // a bad IPv4 address after a comment and a blank line
            ("; comment\n\nwww A 192.0.2.999\n", 8, "invalid A record data"),
            ("www FOO 192.0.2.1\n", 6, "unknown record type \"FOO\""),
            ("www 1x A 192.0.2.1\n", 6, "invalid TTL \"1x\""),
            ("$TTL forever\n", 6, "invalid TTL"),
            ("www A 192.0.2.1\nx TXT ( \"a\"\n\"b\"\ny A 192.0.2.2\n", 7, "'(' is never closed"),
            ("x TXT \"no end\n", 6, "quoted string is never closed"),
            ("www A 192.0.2.1 )\n", 6, "')' without '('"),
        ];
        for (body, line, message) in cases {
            let err = parse_error(&format!("{HEADER}{body}"));
            assert_eq!(err.line(), Some(*line), "{body:?}: {err}");
            let text = err.to_string();
            assert!(text.starts_with(&format!("zones/bad.zone:{line}: ")), "{text}");
            assert!(text.contains(message), "{text}");
        }
    }

    #[test]
    fn multi_line_record_errors_point_at_its_first_line() {
        let text = format!("{HEADER}\nmx MX (\n  10\n  bad..name )\nok A 192.0.2.3\n");
        let err = parse_error(&text);
        assert_eq!(err.line(), Some(7), "{err}");
    }

    #[test]
    fn semantic_errors() {
        let cases: &[(&str, Option<usize>, &str)] = &[
            ("www.other.test. A 192.0.2.1\n", Some(6), "outside the zone"),
            ("@ SOA ns hm 2 2 3 4 5\n", Some(6), "more than one SOA"),
            ("sub SOA ns hm 2 2 3 4 5\n", Some(6), "not at the zone apex"),
            ("a A 192.0.2.1\nA CNAME ns\n", Some(7), "CNAME and other data at a.bad.test."),
            ("a CNAME ns\na TXT x\n", Some(7), "CNAME and other data"),
            ("a CNAME ns\na CNAME www\n", Some(7), "more than one CNAME"),
            ("d DNAME x.test.\nd DNAME y.test.\n", Some(7), "more than one DNAME"),
            ("d DNAME x.test.\nx.y.d A 192.0.2.1\n", Some(7), "below the DNAME"),
            ("x.y.d A 192.0.2.1\nd DNAME x.test.\n", Some(7), "below the DNAME"),
            ("a CH TXT x\n", Some(6), "class CH is not supported"),
        ];
        for (body, line, message) in cases {
            let err = parse_error(&format!("{HEADER}{body}"));
            assert_eq!(err.line(), *line, "{body:?}: {err}");
            assert!(err.to_string().contains(message), "{body:?}: {err}");
        }

        let err = parse_error("$ORIGIN bad.test.\nns A 192.0.2.1\n");
        assert_eq!(err.line(), None);
        assert_eq!(err.to_string(), "zones/bad.zone: zone bad.test. has no SOA record at its apex");
    }

    #[test]
    fn identical_cname_lines_are_one_record() {
        let zone = Zone::parse(&format!("{HEADER}a CNAME ns\na CNAME NS\n"), &name("bad.test."), "t").expect("loads");
        let node = zone.node(&LowerName::new(&name("a.bad.test."))).expect("node");
        assert_eq!(node.rrset(RecordType::CNAME).map(|set| set.records().len()), Some(1));
    }

    #[test]
    fn names_are_case_insensitive_and_stored_lower_case() {
        let text = format!("{HEADER}Mixed.Case A 192.0.2.9\nmixed.CASE TXT \"x\"\nm MX 10 MAIL.Bad.Test.\n");
        let zone = Zone::parse(&text, &name("Bad.Test"), "t").expect("loads");
        assert_eq!(zone.origin().to_ascii(), "bad.test.");
        let node = zone.node(&LowerName::new(&name("MIXED.case.bad.test."))).expect("node");
        let types: Vec<_> = node.rrsets().iter().map(RrSet::record_type).collect();
        assert_eq!(types, [RecordType::A, RecordType::TXT]);
        assert_eq!(format_record(&node.rrsets()[0].records()[0]), "mixed.case.bad.test. 300 IN A 192.0.2.9");
        let mx = zone.node(&LowerName::new(&name("m.bad.test."))).expect("mx");
        assert_eq!(format_record(&mx.rrsets()[0].records()[0]), "m.bad.test. 300 IN MX 10 mail.bad.test.");
    }

    #[test]
    fn ttl_defaults_and_rrset_ttl() {
        let text = "$ORIGIN t.\n@ SOA ns hm 1 2 3 4 5\na 600 A 192.0.2.1\na A 192.0.2.2\n$TTL 60\nb A 192.0.2.3\n";
        let zone = Zone::parse(text, &name("t."), "t").expect("loads");
        // No $TTL yet: NSD's default of 3600, then the lowest TTL of the set.
        assert_eq!(zone.soa().ttl, 3600);
        let a = zone.node(&LowerName::new(&name("a.t."))).and_then(|n| n.rrset(RecordType::A)).expect("a");
        assert_eq!(a.ttl(), 600);
        assert!(a.records().iter().all(|r| r.ttl == 600));
        let b = zone.node(&LowerName::new(&name("b.t."))).and_then(|n| n.rrset(RecordType::A)).expect("b");
        assert_eq!(b.ttl(), 60);
    }

    #[test]
    fn empty_non_terminals_and_cuts() {
        let text = format!("{HEADER}a.b.c A 192.0.2.1\nsub NS ns.sub\nns.sub A 192.0.2.2\n");
        let zone = Zone::parse(&text, &name("bad.test."), "t").expect("loads");
        let lower = |text: &str| LowerName::new(&name(text));
        assert!(zone.is_empty_non_terminal(&lower("b.c.bad.test.")));
        assert!(zone.is_empty_non_terminal(&lower("c.bad.test.")));
        assert!(!zone.is_empty_non_terminal(&lower("a.b.c.bad.test.")));
        assert!(zone.node(&lower("x.c.bad.test.")).is_none());
        assert!(zone.is_delegation(&lower("sub.bad.test.")));
        assert!(!zone.is_delegation(&lower("bad.test.")));
        assert!(zone.is_at_or_below_cut(&name("ns.sub.bad.test.")));
        assert!(!zone.is_at_or_below_cut(&name("ns.bad.test.")));
        assert_eq!(zone.delegations().map(|n| n.to_string()).collect::<Vec<_>>(), ["sub.bad.test."]);
    }

    #[test]
    fn record_data_hickory_cannot_parse_alone() {
        let text = format!(
            "{HEADER}\
             t TXT ( \"v=DKIM1; k=rsa; \"\n   \"p=AB\\\"C\\065\" )\n\
             d DNAME Target.Example.\n\
             ds DS 1 8 2 ( 0a0B\n 0C )\n\
             g TYPE65280 \\# 3 010203\n\
             ga A \\# 4 C0000207\n\
             c CNAME @\n\
             n NAPTR 100 10 \"S\" \"SIP+D2U\" \"\" _sip._udp\n"
        );
        let zone = Zone::parse(&text, &name("bad.test."), "t").expect("loads");
        let shown = |owner: &str| -> Vec<String> {
            let node = zone.node(&LowerName::new(&name(owner))).expect(owner);
            node.rrsets().iter().flat_map(|set| set.records().iter().map(format_record)).collect()
        };
        assert_eq!(shown("t.bad.test."), ["t.bad.test. 300 IN TXT \"v=DKIM1; k=rsa; \" \"p=AB\\\"CA\""]);
        assert_eq!(shown("d.bad.test."), ["d.bad.test. 300 IN DNAME target.example."]);
        assert_eq!(shown("ds.bad.test."), ["ds.bad.test. 300 IN DS 1 8 2 0A0B0C"]);
        assert_eq!(shown("g.bad.test."), ["g.bad.test. 300 IN TYPE65280 \\# 3 010203"]);
        assert_eq!(shown("ga.bad.test."), ["ga.bad.test. 300 IN A 192.0.2.7"]);
        assert_eq!(shown("c.bad.test."), ["c.bad.test. 300 IN CNAME bad.test."]);
        assert_eq!(
            shown("n.bad.test."),
            ["n.bad.test. 300 IN NAPTR 100 10 \"S\" \"SIP+D2U\" \"\" _sip._udp.bad.test."]
        );
    }

    #[test]
    fn long_strings_are_rejected_with_their_line() {
        let err = parse_error(&format!("{HEADER}big TXT \"{}\"\n", "a".repeat(256)));
        assert_eq!(err.line(), Some(6));
        assert!(err.to_string().contains("longer than 255"), "{err}");
    }

    #[test]
    fn origin_comes_from_origin_directive_or_file_name() {
        let dir = std::env::temp_dir().join(format!("dns-xdp-zone-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let named = dir.join("example.test.zone");
        std::fs::write(&named, "@ 300 SOA ns hm 1 2 3 4 5\nwww 300 A 192.0.2.1\n").expect("write");
        let zone = Zone::load(&named, None).expect("loads");
        assert_eq!(zone.origin().to_ascii(), "example.test.");
        assert!(zone.node(&LowerName::new(&name("www.example.test."))).is_some());

        let with_origin = dir.join("whatever.zone");
        std::fs::write(
            &with_origin,
            "$ORIGIN Other.Test.\n@ 300 SOA ns hm 1 2 3 4 5\n$ORIGIN sub.other.test.\nwww 300 A 192.0.2.1\n",
        )
        .expect("write");
        let zone = Zone::load(&with_origin, None).expect("loads");
        assert_eq!(zone.origin().to_ascii(), "other.test.");
        assert!(zone.node(&LowerName::new(&name("www.sub.other.test."))).is_some());

        let include = dir.join("included.db");
        std::fs::write(&include, "www 300 A 192.0.2.5\n").expect("write");
        let main = dir.join("inc.test.zone");
        std::fs::write(&main, "@ 300 SOA ns hm 1 2 3 4 5\n$INCLUDE included.db sub\nafter 300 A 192.0.2.6\n")
            .expect("write");
        let zone = Zone::load(&main, None).expect("loads");
        assert!(zone.node(&LowerName::new(&name("www.sub.inc.test."))).is_some());
        // The include's origin does not leak back.
        assert!(zone.node(&LowerName::new(&name("after.inc.test."))).is_some());

        let bad_include = dir.join("broken.db");
        std::fs::write(&bad_include, "\nwww 300 A 192.0.2.500\n").expect("write");
        std::fs::write(&main, "@ 300 SOA ns hm 1 2 3 4 5\n$INCLUDE broken.db\n").expect("write");
        let err = Zone::load(&main, None).expect_err("fails");
        assert!(err.to_string().starts_with(&format!("{}:2: ", bad_include.display())), "{err}");

        let missing = Zone::load(&dir.join("absent.zone"), None).expect_err("fails");
        assert!(matches!(missing, ZoneError::Io { .. }));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn test_zones_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
        for file in ["example.test.zone", "other.test.zone", "hosted.example.test.zone"] {
            let zone = Zone::load(&dir.join(file), None).unwrap_or_else(|err| panic!("{err}"));
            assert!(zone.record_count() > 3);
        }
    }
}
