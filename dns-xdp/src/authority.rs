//! The authoritative lookup: which records answer (qname, qtype), in which
//! section.
//!
//! The algorithm is RFC 1034 §4.3.2 with RFC 2181, RFC 4592 (wildcards),
//! RFC 6672 (DNAME) and RFC 8482 (ANY), and wherever those leave a choice it
//! does what NSD 4.6 does with its default settings, section contents and
//! order included, because the daemon's answers are tested against NSD's.
//! What NSD does, as checked against `nsd` 4.6.1 with the zones in
//! `testdata/`:
//!
//! * A positive answer carries the apex NS RRset in the authority section
//!   (not for qtype DS, DNSKEY or ANY), and the A then AAAA records of the
//!   NS, MX and SRV targets in the additional section: first every A RRset,
//!   in target order, then every AAAA RRset. Targets are looked up in the
//!   zone being answered from only; wildcards are expanded for them; MX and
//!   SRV targets at or below a zone cut get nothing, NS targets get glue.
//!   An RRset already in the message is not repeated.
//! * CNAMEs are followed within the zone and into any other zone of the
//!   catalog (NSD does too); the final step decides the rcode (NXDOMAIN for
//!   a missing target in a served zone) and which zone's SOA or NS goes in
//!   the authority section. A target outside every zone ends the answer
//!   with no authority section. A CNAME or DNAME already in the answer ends
//!   it too (a loop), also without authority section.
//! * A referral (NOERROR, NS in authority, glue in additional) has AA clear,
//!   unless a CNAME or DNAME led to it.
//! * DS at a zone cut, and at the apex of a zone whose parent zone is also
//!   loaded, is answered from the parent side.
//! * NXDOMAIN and NODATA carry the SOA with TTL min(SOA TTL, MINIMUM).
//! * DNSSEC, for zones signed beforehand (RFC 4033-4035, 5155): with
//!   DO, every RRset placed, in every section, is followed by its RRSIGs
//!   (kept per covered type by the zone); NXDOMAIN carries the NSEC
//!   covering the name and the one covering the wildcard at its closest
//!   encloser, then the SOA and its RRSIG (TTL lowered with the SOA's);
//!   NODATA the SOA, then the NSEC at (or, for an empty non-terminal,
//!   covering) the name; a wildcard answer the NSEC covering the name;
//!   wildcard NODATA both NSECs before the SOA; a referral its DS and
//!   RRSIG, or for an insecure delegation the NSEC at the cut. Without DO
//!   no DNSSEC record is added, only asked-for types are answered (a query
//!   for RRSIG gets every RRSIG at the name, per covered type, with the
//!   apex NS). Zones signed with NSEC3 (RFC 5155 §7.2) get the closest
//!   encloser proof (the NSEC3 covering the next closer name, the one
//!   matching the closest encloser, the one covering its wildcard), the
//!   matching NSEC3 for NODATA, or the closest provable encloser below an
//!   opt-out span; the order of the records around the SOA is NSD's.
//!
//! Where this differs from NSD, on purpose:
//!
//! * Records of an RRset share one TTL, the lowest (see [`crate::zone`]);
//!   NSD keeps each record's own TTL.
//! * At most [`MAX_REDIRECTIONS`] CNAME/DNAME steps are followed; the answer
//!   then stops like a loop does. NSD follows as long as its answer has room
//!   (it followed 80). Resolvers do not use that many, so longer chains
//!   only cost effort.

use std::{collections::BTreeMap, sync::Arc};

use hickory_proto::{
    op::ResponseCode,
    rr::{LowerName, Name, RData, Record, RecordType, rdata::CNAME},
};

use crate::zone::{Node, RrSet, Zone, dname_target, label_count};

/// Most CNAME and DNAME redirections followed for one question: more than
/// resolvers follow in one answer, small enough to bound the work.
pub const MAX_REDIRECTIONS: usize = 16;

/// An Extended DNS Error (RFC 8914) the reply carries when the client sent
/// EDNS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtendedError {
    /// INFO-CODE (RFC 8914 §4).
    pub code: u16,
    /// EXTRA-TEXT, possibly empty.
    pub text: &'static str,
}

impl ExtendedError {
    /// RFC 8914 §4.15, for a zone that is configured but did not load, with
    /// NSD 4.6's text (Knot 3.2 sends 24, Invalid Data, with none).
    pub const ZONE_NOT_LOADED: Self = Self { code: 14, text: "Zone is configured but not loaded" };
    /// RFC 8914 §4.21, for names outside every zone: NSD 4.6 and Knot 3.2
    /// both send it, without text.
    pub const NOT_AUTHORITATIVE: Self = Self { code: 20, text: "" };
}

/// The data of a response; the caller adds the header, question, OPT and
/// wire encoding.
#[derive(Debug, Clone, PartialEq)]
pub struct Lookup {
    /// NoError, NXDomain, YXDomain (DNAME result too long), or Refused for
    /// names outside every zone.
    pub rcode: ResponseCode,
    /// The AA bit.
    pub authoritative: bool,
    pub answers: Vec<Record>,
    /// For positive answers, the apex NS RRset here is optional data: NSD
    /// leaves it out (with the additional section) before it would set TC.
    pub authority: Vec<Record>,
    pub additionals: Vec<Record>,
    /// Origin of the zone that answered (for a DS query at a child apex,
    /// the parent); `None` for Refused and for a zone that did not load.
    pub zone: Option<Name>,
    /// The Extended DNS Error to send, if any.
    pub ede: Option<ExtendedError>,
}

impl Lookup {
    /// Whether the fast path may serve this answer: it comes from zone data
    /// and says NOERROR or NXDOMAIN (REFUSED and YXDOMAIN stay with the
    /// daemon, which sees every such query anyway).
    pub fn fast_path_servable(&self) -> bool {
        self.zone.is_some()
            && self.ede.is_none()
            && matches!(self.rcode, ResponseCode::NoError | ResponseCode::NXDomain)
    }
}

impl Lookup {
    /// An answer with no records: `rcode`, AA clear, and `ede`.
    fn empty(rcode: ResponseCode, ede: ExtendedError) -> Self {
        Self {
            rcode,
            authoritative: false,
            answers: Vec::new(),
            authority: Vec::new(),
            additionals: Vec::new(),
            zone: None,
            ede: Some(ede),
        }
    }

    fn refused() -> Self {
        Self::empty(ResponseCode::Refused, ExtendedError::NOT_AUTHORITATIVE)
    }

    /// SERVFAIL for a name in a zone that is configured but failed to load,
    /// as NSD and Knot answer it.
    fn zone_not_loaded() -> Self {
        Self::empty(ResponseCode::ServFail, ExtendedError::ZONE_NOT_LOADED)
    }
}

/// The zones served, by origin, and the configured zones that failed to
/// load (answered SERVFAIL so that resolvers try another server, rather
/// than REFUSED as if the zone were not ours).
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    zones: BTreeMap<LowerName, Arc<Zone>>,
    failed: BTreeMap<LowerName, Name>,
}

impl Catalog {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a zone, replacing (and returning) any zone with the same origin.
    pub fn insert(&mut self, zone: impl Into<Arc<Zone>>) -> Option<Arc<Zone>> {
        let zone = zone.into();
        self.zones.insert(LowerName::new(zone.origin()), zone)
    }

    /// Marks `origin` as a configured zone that failed to load. A zone
    /// with the same origin that did load takes precedence.
    pub fn insert_failed(&mut self, origin: &Name) {
        self.failed.insert(LowerName::new(origin), origin.clone());
    }

    /// The origins of the zones that failed to load.
    pub fn failed_zones(&self) -> impl Iterator<Item = &Name> {
        self.failed.iter().filter(|(origin, _)| !self.zones.contains_key(*origin)).map(|(_, name)| name)
    }

    /// Whether `name` is in a zone that failed to load, i.e. a failed zone
    /// is closer to it than any loaded one.
    fn in_failed_zone(&self, name: &Name) -> bool {
        (0..=label_count(name)).rev().map(|depth| LowerName::new(&name.trim_to(depth))).find_map(|origin| {
            if self.zones.contains_key(&origin) {
                Some(false)
            } else {
                self.failed.contains_key(&origin).then_some(true)
            }
        }) == Some(true)
    }

    pub fn remove(&mut self, origin: &Name) -> Option<Arc<Zone>> {
        self.zones.remove(&LowerName::new(origin))
    }

    /// The zone whose origin is exactly `origin`.
    pub fn zone(&self, origin: &Name) -> Option<&Arc<Zone>> {
        self.zones.get(&LowerName::new(origin))
    }

    /// Every zone, in canonical order of origin.
    pub fn zones(&self) -> impl Iterator<Item = &Arc<Zone>> {
        self.zones.values()
    }

    pub fn len(&self) -> usize {
        self.zones.len()
    }

    pub fn is_empty(&self) -> bool {
        self.zones.is_empty()
    }

    /// The zone with the longest origin that `name` is at or below.
    pub fn find_zone(&self, name: &Name) -> Option<&Arc<Zone>> {
        (0..=label_count(name)).rev().find_map(|depth| self.zones.get(&LowerName::new(&name.trim_to(depth))))
    }

    /// The zone to answer (`name`, `qtype`) from: the closest enclosing
    /// zone, except that DS at a zone's apex is the parent zone's data
    /// (RFC 4035 §3.1.4.1) when the parent is loaded too.
    fn zone_for(&self, name: &Name, qtype: RecordType) -> Option<&Arc<Zone>> {
        let zone = self.find_zone(name)?;
        if qtype == RecordType::DS
            && !zone.origin().is_root()
            && label_count(name) == label_count(zone.origin())
            && let Some(parent) = self.find_zone(&zone.origin().base_name())
        {
            return Some(parent);
        }
        Some(zone)
    }

    /// Answers `qname` (lower-case, fully qualified), type `qtype`, class IN.
    ///
    /// ANY (RFC 8482 §4.1): the answer is one RRset, picked as NSD 4.6
    /// picks it: the first of A, AAAA, SOA, MX or PTR in zone-file order;
    /// failing those, the last other RRset, DNSKEY and NSEC last of all,
    /// RRSIG never. No NS in authority. This was chosen over a synthesized
    /// HINFO because it is simple and keeps the answers identical to NSD's.
    pub fn lookup(&self, qname: &Name, qtype: RecordType) -> Lookup {
        self.lookup_in(qname, qtype, false, false)
    }

    /// [`Catalog::lookup`] for a query with the DO bit set (RFC 3225): from
    /// signed zones, every RRset comes with its RRSIGs, and negative
    /// answers, wildcard answers and insecure referrals with the NSEC
    /// records that prove them (RFC 4035 §3.1).
    pub fn lookup_dnssec(&self, qname: &Name, qtype: RecordType) -> Lookup {
        self.lookup_in(qname, qtype, false, true)
    }

    /// [`Catalog::lookup`] for QCLASS * (RFC 1035 §3.2.5), as NSD 4.6
    /// answers it: the class IN data with AA clear, and so without what
    /// only an authoritative answer carries (the apex NS of a positive
    /// answer and its addresses, the SOA of a negative one); referrals are
    /// unchanged.
    pub fn lookup_class_any(&self, qname: &Name, qtype: RecordType, dnssec_ok: bool) -> Lookup {
        self.lookup_in(qname, qtype, true, dnssec_ok)
    }

    fn lookup_in(&self, qname: &Name, qtype: RecordType, class_any: bool, dnssec_ok: bool) -> Lookup {
        if self.in_failed_zone(qname) {
            return Lookup::zone_not_loaded();
        }
        let Some(first_zone) = self.zone_for(qname, qtype) else { return Lookup::refused() };
        let mut response = Response { class_any, dnssec_ok, ..Response::default() };
        let mut zone = first_zone;
        let mut name = qname.clone();
        loop {
            match response.answer_in_zone(zone, &name, qtype) {
                Step::Done => break,
                Step::Follow(target) => {
                    if response.redirections >= MAX_REDIRECTIONS {
                        break;
                    }
                    response.redirections += 1;
                    let Some(next) = self.zone_for(&target, qtype) else { break };
                    zone = next;
                    name = target;
                }
            }
        }
        if class_any {
            response.authoritative = false;
        }
        response.into_answer(first_zone.origin().clone())
    }

    /// Questions answerable straight from the data of the zone `origin`, for
    /// warming caches: every (owner, type) with records, in canonical order,
    /// except literal wildcard owners and names below a zone cut; a zone
    /// cut contributes its NS (a referral) and DS. Empty for an unknown
    /// origin.
    pub fn preload_questions(&self, origin: &Name) -> Vec<(Name, RecordType)> {
        let Some(zone) = self.zone(origin) else { return Vec::new() };
        let mut questions = Vec::new();
        for (name, node) in zone.nodes() {
            if name.is_wildcard() || (**name != *zone.origin() && zone.is_at_or_below_cut(&name.base_name())) {
                continue;
            }
            let owner = Name::from(name.clone());
            if zone.is_delegation(name) {
                questions.push((owner.clone(), RecordType::NS));
                if node.rrset(RecordType::DS).is_some() {
                    questions.push((owner, RecordType::DS));
                }
                continue;
            }
            questions.extend(node.rrsets().iter().map(|set| (owner.clone(), set.record_type())));
            if node.signature_sets().next().is_some() {
                questions.push((owner, RecordType::RRSIG));
            }
        }
        questions
    }
}

/// What a negative or wildcard answer proves to a validator (RFC 4035
/// §3.1.3, RFC 5155 §7.2).
enum Denial {
    Nothing,
    /// NXDOMAIN: no `qname` below its closest `encloser`, and no wildcard
    /// there.
    Name {
        qname: LowerName,
        encloser: LowerName,
    },
    /// NODATA at an existing name (an empty non-terminal, a cut for DS;
    /// `ds` as for `WildcardData`).
    Data {
        name: LowerName,
        ds: bool,
    },
    /// An answer expanded from `*.encloser`: `qname` itself does not exist.
    Expansion {
        qname: LowerName,
        encloser: LowerName,
    },
    /// NODATA from a wildcard: no `qname`, and no such type at `wildcard`
    /// (`ds`: the type is DS, for which NSD orders the NSEC3s differently).
    WildcardData {
        qname: LowerName,
        wildcard: LowerName,
        ds: bool,
    },
    /// A delegation without DS.
    NoDs {
        cut: LowerName,
    },
}

/// How an NSEC3 relates to the name it proves something about.
#[derive(Clone, Copy)]
enum Nsec3Proof {
    Matching,
    Covering,
}

impl Denial {
    /// The names whose matching or covering NSEC proves it (RFC 4035
    /// §3.1.3), in the order NSD 4.6 sends them.
    fn nsec_names(&self) -> Vec<LowerName> {
        match self {
            Self::Nothing => Vec::new(),
            Self::Name { qname, encloser } => {
                let mut names = vec![qname.clone()];
                names.extend(encloser.prepend_label("*").ok().map(|wildcard| LowerName::new(&wildcard)));
                names
            }
            Self::Data { name, .. } => vec![name.clone()],
            Self::Expansion { qname, .. } => vec![qname.clone()],
            Self::WildcardData { qname, wildcard, .. } => vec![qname.clone(), wildcard.clone()],
            Self::NoDs { cut } => vec![cut.clone()],
        }
    }

    /// The NSEC3 records that prove it (RFC 5155 §7.2.1-§7.2.7).
    fn nsec3_proofs(&self, zone: &Zone) -> Vec<(Name, Nsec3Proof)> {
        use Nsec3Proof::{Covering, Matching};
        let name = |lower: &LowerName| Name::from(lower.clone());
        match self {
            Self::Nothing => Vec::new(),
            // §7.2.2: the closest encloser proof, and no wildcard there.
            Self::Name { qname, encloser } => {
                let mut proofs = vec![(next_closer(qname, encloser), Covering), (name(encloser), Matching)];
                proofs.extend(encloser.prepend_label("*").ok().map(|wildcard| (wildcard, Covering)));
                proofs
            }
            // §7.2.3 (and §7.2.4 for DS at an opt-out cut: the closest
            // provable encloser instead).
            // A query for a wildcard owner itself: NSD proves the wildcard's
            // encloser too.
            Self::Data { name: data, ds } if data.is_wildcard() => {
                let mut proofs = vec![(name(&data.base_name()), Matching), (name(data), Matching)];
                if *ds {
                    proofs.swap(0, 1);
                }
                proofs
            }
            Self::Data { name: data, .. } | Self::NoDs { cut: data } => {
                if zone.nsec3_matching(&name(data)).is_some() {
                    vec![(name(data), Matching)]
                } else {
                    closest_provable_encloser(zone, data)
                }
            }
            // §7.2.6: the next closer name does not exist.
            Self::Expansion { qname, encloser } => vec![(next_closer(qname, encloser), Covering)],
            // §7.2.5: the closest encloser proof and the wildcard's NODATA.
            Self::WildcardData { qname, wildcard, ds } => {
                let encloser = wildcard.base_name();
                let mut proofs = vec![
                    (next_closer(qname, &encloser), Covering),
                    (name(&encloser), Matching),
                    (name(wildcard), Matching),
                ];
                if *ds {
                    proofs.swap(1, 2);
                }
                proofs
            }
        }
    }

    /// How many of [`Denial::nsec3_proofs`] go before the SOA of a negative
    /// answer, the rest after it, as NSD 4.6 orders them: all of them for
    /// NXDOMAIN and for NODATA at an empty non-terminal, the next closer
    /// name's for wildcard NODATA, none for other NODATA.
    fn nsec3_before_soa(&self, zone: &Zone, proofs: usize) -> usize {
        match self {
            Self::Name { .. } => proofs,
            Self::Data { name, .. } if zone.is_empty_non_terminal(name) => proofs,
            Self::WildcardData { .. } => proofs.min(1),
            _ => 0,
        }
    }
}

/// The ancestor of `name` one label below `encloser` (RFC 5155 §1.3).
fn next_closer(name: &LowerName, encloser: &LowerName) -> Name {
    Name::from(name.clone()).trim_to(label_count(&Name::from(encloser.clone())) + 1)
}

/// RFC 5155 §7.2.1 for a name with no NSEC3 of its own (below an opt-out
/// span): the deepest ancestor with a matching NSEC3, and the NSEC3
/// covering the next closer name.
fn closest_provable_encloser(zone: &Zone, name: &LowerName) -> Vec<(Name, Nsec3Proof)> {
    let full = Name::from(name.clone());
    let labels = label_count(&full);
    (label_count(zone.origin())..labels)
        .rev()
        .map(|depth| full.trim_to(depth))
        .find(|ancestor| zone.nsec3_matching(ancestor).is_some())
        .map(|encloser| {
            vec![
                (encloser.clone(), Nsec3Proof::Matching),
                (next_closer(name, &LowerName::new(&encloser)), Nsec3Proof::Covering),
            ]
        })
        .unwrap_or_default()
}

/// `record` under the name asked for (a wildcard's records take the
/// query name).
fn renamed(record: &Record, owner: &Name) -> Record {
    let mut record = record.clone();
    record.name = owner.clone();
    record
}

/// What to do after answering one name.
enum Step {
    Done,
    /// A CNAME or DNAME redirected to this name.
    Follow(Name),
}

/// Sections in the order NSD writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Section {
    Answer,
    Authority,
    /// The apex NS of a positive answer.
    OptionalAuthority,
    AdditionalA,
    AdditionalAaaa,
}

/// An RRset placed in the response.
struct Placed {
    section: Section,
    owner: LowerName,
    record_type: RecordType,
    records: Vec<Record>,
    /// The RRSIGs that go with the RRset (DO only), right after it.
    signatures: Vec<Record>,
    /// Synthesized records (the CNAME of a DNAME, the negative SOA) are
    /// never merged with others, as in NSD.
    unique: bool,
}

/// A response under construction.
struct Response {
    rrsets: Vec<Placed>,
    rcode: ResponseCode,
    authoritative: bool,
    redirections: usize,
    /// QCLASS *: no authoritative-only authority data (see
    /// [`Catalog::lookup_class_any`]).
    class_any: bool,
    /// The query had DO: RRSIGs and denial records from signed zones.
    dnssec_ok: bool,
}

impl Default for Response {
    fn default() -> Self {
        Self {
            rrsets: Vec::new(),
            rcode: ResponseCode::NoError,
            authoritative: true,
            redirections: 0,
            class_any: false,
            dnssec_ok: false,
        }
    }
}

impl Response {
    /// Answers `name` from `zone`, which holds it.
    fn answer_in_zone(&mut self, zone: &Zone, name: &Name, qtype: RecordType) -> Step {
        let origin_labels = label_count(zone.origin());
        let name_labels = label_count(name);
        let apex = LowerName::new(zone.origin());
        let Some(apex_node) = zone.node(&apex) else { return Step::Done };

        // Walk down from the apex. The first zone cut on the way wins (the
        // highest one, as in NSD), then a DNAME above the name; otherwise
        // the walk ends at the name or at its closest encloser.
        let mut closest = (apex, apex_node);
        for depth in origin_labels..=name_labels {
            let is_name = depth == name_labels;
            if depth > origin_labels {
                let key = LowerName::new(&name.trim_to(depth));
                let Some(node) = zone.node(&key) else { break };
                if let Some(ns) = node.rrset(RecordType::NS)
                    && !(is_name && qtype == RecordType::DS)
                {
                    return self.referral(zone, &key, node, ns);
                }
                closest = (key, node);
            }
            if !is_name && let Some(dname) = closest.1.rrset(RecordType::DNAME) {
                let owner = Name::from(closest.0.clone());
                return self.dname(zone, &owner, dname, name, qtype);
            }
            if is_name {
                return self.answer_node(zone, closest.1, name, qtype, None);
            }
        }

        // RFC 4592 §3.3.1: only the wildcard child of the closest encloser
        // can match; an existing name or empty non-terminal blocks it.
        let wildcard = closest.0.prepend_label("*").ok().map(|name| LowerName::new(&name));
        match wildcard.as_ref().and_then(|wildcard| zone.node(wildcard).map(|node| (wildcard, node))) {
            Some((wildcard, node)) => self.answer_node(zone, node, name, qtype, Some(wildcard)),
            None => {
                self.rcode = ResponseCode::NXDomain;
                // RFC 4035 §3.1.3.2: the name does not exist, nor does the
                // wildcard that could have matched it.
                let denial = Denial::Name { qname: LowerName::new(name), encloser: closest.0.clone() };
                self.negative(zone, &denial, true);
                Step::Done
            }
        }
    }

    /// Answers from `node`, the name's own or the wildcard matching it
    /// (`wildcard` is then its owner); `owner` is the name asked for.
    fn answer_node(
        &mut self,
        zone: &Zone,
        node: &Node,
        owner: &Name,
        qtype: RecordType,
        wildcard: Option<&LowerName>,
    ) -> Step {
        // RFC 4035 §3.1.3.3 and §3.1.3.4: an answer from a wildcard proves
        // that the name itself does not exist; its NODATA also that the
        // wildcard has no such type.
        let qname = LowerName::new(owner);
        let (expansion_proof, nodata_proofs) = match wildcard {
            Some(wildcard) => (
                Denial::Expansion { qname: qname.clone(), encloser: wildcard.base_name() },
                Denial::WildcardData { qname, wildcard: wildcard.clone(), ds: qtype == RecordType::DS },
            ),
            None => (Denial::Nothing, Denial::Data { name: qname, ds: qtype == RecordType::DS }),
        };
        if qtype == RecordType::ANY {
            match select_for_any(node) {
                Some(rrset) => {
                    self.add_rrset(zone, Section::Answer, owner, node, rrset);
                    self.deny(zone, &expansion_proof);
                }
                None => self.negative(zone, &nodata_proofs, wildcard.is_some()),
            }
            return Step::Done;
        }
        if qtype == RecordType::RRSIG && node.signature_sets().next().is_some() {
            // Every RRSIG at the name, one set per covered type, each with
            // its own TTL (RFC 4034 §3).
            for (_, set) in node.signature_sets() {
                let records = set.records().iter().map(|record| renamed(record, owner)).collect();
                self.place_unique(Section::Answer, owner, records);
            }
            self.add_apex_ns(zone);
            self.deny(zone, &expansion_proof);
            return Step::Done;
        }
        if let Some(rrset) = node.rrset(qtype) {
            self.add_rrset(zone, Section::Answer, owner, node, rrset);
            // NSD leaves the NS out where the answer itself is large.
            if !matches!(qtype, RecordType::DS | RecordType::DNSKEY) {
                self.add_apex_ns(zone);
            }
            self.deny(zone, &expansion_proof);
            return Step::Done;
        }
        if let Some(cname) = node.rrset(RecordType::CNAME) {
            if !self.add_rrset(zone, Section::Answer, owner, node, cname) {
                return Step::Done;
            }
            self.deny(zone, &expansion_proof);
            return match cname.records().first().map(|record| &record.data) {
                Some(RData::CNAME(target)) => Step::Follow(target.0.clone()),
                _ => Step::Done,
            };
        }
        self.negative(zone, &nodata_proofs, wildcard.is_some());
        Step::Done
    }

    /// The apex NS RRset as optional authority data of a positive answer.
    fn add_apex_ns(&mut self, zone: &Zone) {
        if !self.class_any
            && let Some(apex) = zone.node(&LowerName::new(zone.origin()))
            && let Some(ns) = apex.rrset(RecordType::NS)
        {
            self.add_rrset(zone, Section::OptionalAuthority, zone.origin(), apex, ns);
        }
    }

    /// A referral; with DO, the DS RRset and its RRSIG, or for an insecure
    /// delegation the NSEC proving there is no DS (RFC 4035 §3.1.4).
    fn referral(&mut self, zone: &Zone, cut: &LowerName, node: &Node, ns: &RrSet) -> Step {
        self.authoritative = self.redirections > 0;
        let owner = Name::from(cut.clone());
        self.add_rrset(zone, Section::Authority, &owner, node, ns);
        if self.dnssec_ok && zone.is_signed() {
            match node.rrset(RecordType::DS) {
                Some(ds) => {
                    self.add_rrset(zone, Section::Authority, &owner, node, ds);
                }
                None => self.deny(zone, &Denial::NoDs { cut: cut.clone() }),
            }
        }
        Step::Done
    }

    /// RFC 6672 §3.2: the DNAME, then a CNAME from `name` to the name with
    /// the DNAME owner replaced by its target (TTL of the DNAME).
    fn dname(&mut self, zone: &Zone, dname_owner: &Name, dname: &RrSet, name: &Name, qtype: RecordType) -> Step {
        let added = match zone.node(&LowerName::new(dname_owner)) {
            Some(node) => self.add_rrset(zone, Section::Answer, dname_owner, node, dname),
            None => false,
        };
        if !added {
            return Step::Done;
        }
        let Some(target) = dname.records().first().and_then(|record| dname_target(&record.data)) else {
            return Step::Done;
        };
        let Some(synthesized) = substitute_suffix(name, label_count(dname_owner), &target) else {
            self.rcode = ResponseCode::YXDomain;
            return Step::Done;
        };
        let cname = Record::from_rdata(name.clone(), dname.ttl(), RData::CNAME(CNAME(synthesized.clone())));
        self.place_unique(Section::Answer, name, vec![cname]);
        if qtype == RecordType::CNAME {
            // The synthesized CNAME is the answer (NSD and BIND alike).
            return Step::Done;
        }
        Step::Follow(synthesized)
    }

    /// NXDOMAIN/NODATA authority: the SOA with the negative-caching TTL;
    /// with DO, its RRSIG and the NSEC records proving `proofs` (see
    /// [`Response::deny`]): before the SOA for NXDOMAIN and wildcard NODATA
    /// (`proofs_first`), after it for NODATA, the order NSD 4.6 uses.
    fn negative(&mut self, zone: &Zone, proofs: &Denial, proofs_first: bool) {
        if self.class_any {
            return;
        }
        let nsec3 = self.dnssec_ok && zone.is_signed() && zone.uses_nsec3();
        let (nsec3_before, nsec3_after) = if nsec3 {
            let all = proofs.nsec3_proofs(zone);
            let before = proofs.nsec3_before_soa(zone, all.len());
            let (before, after) = all.split_at(before);
            (before.to_vec(), after.to_vec())
        } else {
            (Vec::new(), Vec::new())
        };
        if nsec3 {
            self.add_nsec3(zone, &nsec3_before);
        } else if proofs_first {
            self.deny(zone, proofs);
        }
        let soa = zone.negative_soa();
        let owner = soa.name.clone();
        let ttl = soa.ttl;
        self.place_unique(Section::Authority, &owner, vec![soa]);
        if self.dnssec_ok
            && zone.is_signed()
            && let Some(signatures) =
                zone.node(&LowerName::new(zone.origin())).and_then(|apex| apex.signatures(RecordType::SOA))
            && let Some(placed) = self.rrsets.last_mut()
        {
            // The RRSIG goes with the SOA as sent, with its TTL.
            placed.signatures = signatures
                .records()
                .iter()
                .map(|record| {
                    let mut record = record.clone();
                    record.ttl = ttl;
                    record
                })
                .collect();
        }
        if nsec3 {
            self.add_nsec3(zone, &nsec3_after);
        } else if !proofs_first {
            self.deny(zone, proofs);
        }
    }

    /// With DO, the NSEC or NSEC3 RRsets (with their RRSIGs) that prove
    /// `denial`, in the authority section, each once.
    fn deny(&mut self, zone: &Zone, denial: &Denial) {
        if !self.dnssec_ok || !zone.is_signed() {
            return;
        }
        if zone.uses_nsec3() {
            self.add_nsec3(zone, &denial.nsec3_proofs(zone));
            return;
        }
        for name in denial.nsec_names() {
            if let Some((owner, node, nsec)) = zone.nsec_matching_or_covering(&name) {
                self.add_rrset(zone, Section::Authority, &Name::from(owner.clone()), node, nsec);
            }
        }
    }

    /// The NSEC3 RRsets (with RRSIGs) matching or covering `proofs`.
    fn add_nsec3(&mut self, zone: &Zone, proofs: &[(Name, Nsec3Proof)]) {
        for (name, how) in proofs {
            let found = match how {
                Nsec3Proof::Matching => zone.nsec3_matching(name),
                Nsec3Proof::Covering => zone.nsec3_covering(name),
            };
            if let Some((owner, node, nsec3)) = found {
                self.add_rrset(zone, Section::Authority, &Name::from(owner.clone()), node, nsec3);
            }
        }
    }

    /// Adds `rrset` under `owner`, then the addresses its targets need.
    /// False when the RRset was already in the message (in this or an
    /// earlier section).
    fn add_rrset(&mut self, zone: &Zone, section: Section, owner: &Name, node: &Node, rrset: &RrSet) -> bool {
        // Only from signed zones: a zone without DNSKEY answers DO and non-DO
        // queries alike, which is what lets the fast path serve it.
        let signatures = if self.dnssec_ok && zone.is_signed() { node.signatures(rrset.record_type()) } else { None };
        let added = self.place(section, owner, rrset, signatures);
        // NSD adds the targets' addresses even for an RRset already present;
        // they are then present too, so this only costs lookups.
        for record in rrset.records() {
            match &record.data {
                RData::NS(target) => self.add_addresses(zone, &target.0, true),
                RData::MX(mx) => self.add_addresses(zone, &mx.exchange, false),
                RData::SRV(srv) => self.add_addresses(zone, &srv.target, false),
                _ => {}
            }
        }
        added
    }

    /// Places an RRset unless it is already in the message. One already in
    /// a later section moves up to `section`, keeping its place in the
    /// order, as NSD does.
    fn place(&mut self, section: Section, owner: &Name, rrset: &RrSet, signatures: Option<&RrSet>) -> bool {
        let key = LowerName::new(owner);
        if let Some(existing) = self
            .rrsets
            .iter_mut()
            .find(|placed| !placed.unique && placed.record_type == rrset.record_type() && placed.owner == key)
        {
            if section < existing.section {
                existing.section = section;
                return true;
            }
            return false;
        }
        let records = rrset.records().iter().map(|record| renamed(record, owner)).collect();
        let signatures = signatures
            .map(|set| set.records().iter().map(|record| renamed(record, owner)).collect())
            .unwrap_or_default();
        self.rrsets.push(Placed {
            section,
            owner: key,
            record_type: rrset.record_type(),
            records,
            signatures,
            unique: false,
        });
        true
    }

    fn place_unique(&mut self, section: Section, owner: &Name, records: Vec<Record>) {
        let record_type = records.first().map_or(RecordType::NULL, Record::record_type);
        self.rrsets.push(Placed {
            section,
            owner: LowerName::new(owner),
            record_type,
            records,
            signatures: Vec::new(),
            unique: true,
        });
    }

    /// Additional-section A and AAAA for `target`, from `zone` only. Glue
    /// (data at or below a zone cut) only when `allow_glue` (NS targets).
    fn add_addresses(&mut self, zone: &Zone, target: &Name, allow_glue: bool) {
        if !zone.origin().zone_of(target) || (!allow_glue && zone.is_at_or_below_cut(target)) {
            return;
        }
        let Some(node) = address_node(zone, target) else { return };
        for (record_type, section) in
            [(RecordType::A, Section::AdditionalA), (RecordType::AAAA, Section::AdditionalAaaa)]
        {
            if let Some(rrset) = node.rrset(record_type) {
                self.add_rrset(zone, section, target, node, rrset);
            }
        }
    }

    fn into_answer(self, zone: Name) -> Lookup {
        let collect = |sections: &[Section]| -> Vec<Record> {
            sections
                .iter()
                .flat_map(|section| self.rrsets.iter().filter(move |placed| placed.section == *section))
                .flat_map(|placed| placed.records.iter().chain(&placed.signatures).cloned())
                .collect()
        };
        Lookup {
            rcode: self.rcode,
            authoritative: self.authoritative,
            answers: collect(&[Section::Answer]),
            authority: collect(&[Section::Authority, Section::OptionalAuthority]),
            additionals: collect(&[Section::AdditionalA, Section::AdditionalAaaa]),
            zone: Some(zone),
            ede: None,
        }
    }
}

/// The node holding `target`'s addresses: its own, or, when the name does
/// not exist, the wildcard child of its closest encloser (as NSD expands
/// wildcards for additional data).
fn address_node<'z>(zone: &'z Zone, target: &Name) -> Option<&'z Node> {
    if let Some(node) = zone.node(&LowerName::new(target)) {
        return Some(node);
    }
    let origin_labels = label_count(zone.origin());
    let closest_encloser = (origin_labels..label_count(target))
        .rev()
        .map(|depth| target.trim_to(depth))
        .find(|ancestor| zone.node(&LowerName::new(ancestor)).is_some())?;
    let wildcard = closest_encloser.prepend_label("*").ok()?;
    zone.node(&LowerName::new(&wildcard))
}

/// The one RRset answering ANY, chosen as NSD 4.6 chooses (see
/// [`Catalog::lookup`]).
fn select_for_any(node: &Node) -> Option<&RrSet> {
    let mut normal = None;
    let mut least_wanted = None;
    for rrset in node.rrsets() {
        match rrset.record_type() {
            RecordType::RRSIG | RecordType::NSEC3 => {}
            RecordType::A | RecordType::AAAA | RecordType::SOA | RecordType::MX | RecordType::PTR => {
                return Some(rrset);
            }
            RecordType::DNSKEY | RecordType::NSEC => least_wanted = Some(rrset),
            _ => normal = Some(rrset),
        }
    }
    normal.or(least_wanted)
}

/// `name` with its last `suffix_labels` labels replaced by `target`, or
/// `None` when the result would exceed 255 octets (RFC 6672 §2.2: YXDOMAIN).
fn substitute_suffix(name: &Name, suffix_labels: usize, target: &Name) -> Option<Name> {
    let prefix: Vec<&[u8]> = name.iter().take(label_count(name).saturating_sub(suffix_labels)).collect();
    let wire_len = |labels: &mut dyn Iterator<Item = &[u8]>| labels.map(|label| label.len() + 1).sum::<usize>();
    if wire_len(&mut prefix.iter().copied()) + wire_len(&mut target.iter()) + 1 > Name::MAX_LENGTH {
        return None;
    }
    let mut result = Name::from_labels(prefix).ok()?.append_name(target).ok()?;
    result.set_fqdn(true);
    Some(result)
}

#[cfg(test)]
mod tests {
    use std::{fmt::Write as _, path::Path};

    use super::*;
    use crate::zone::format_record;

    /// RRSIGs (loaded in RFC 3597 form, or left over) in a zone without
    /// DNSKEY do not make it signed: DO and non-DO answers stay the same. A
    /// signed zone's DO answers differ; both go to the fast path, as
    /// entries of their own.
    #[test]
    fn only_signed_zones_answer_do_queries_differently() {
        let sig = "RRSIG A 13 3 300 20261231000000 20261201000000 1 t.test. AAAA";
        let text = |dnskey: &str| {
            format!(
                "$ORIGIN t.test.\n@ 300 SOA ns h 1 2 3 4 5\n@ 300 NS ns\n{dnskey}ns 300 A 192.0.2.1\nns 300 {sig}\n"
            )
        };
        let unsigned = Zone::parse(&text(""), &name("t.test."), "t.zone").expect("loads");
        let mut catalog = Catalog::new();
        catalog.insert(unsigned);
        let (plain, dnssec) = (
            catalog.lookup(&name("ns.t.test."), RecordType::A),
            catalog.lookup_dnssec(&name("ns.t.test."), RecordType::A),
        );
        assert_eq!(plain, dnssec);
        assert!(dnssec.fast_path_servable());

        let signed = Zone::parse(&text("@ 300 DNSKEY 257 3 13 AAAA\n"), &name("t.test."), "t.zone").expect("loads");
        let mut catalog = Catalog::new();
        catalog.insert(signed);
        let dnssec = catalog.lookup_dnssec(&name("ns.t.test."), RecordType::A);
        assert!(dnssec.answers.iter().any(|record| record.record_type() == RecordType::RRSIG), "{dnssec:?}");
        let plain = catalog.lookup(&name("ns.t.test."), RecordType::A);
        assert!(plain.answers.iter().all(|record| record.record_type() != RecordType::RRSIG), "{plain:?}");
        assert!(dnssec.fast_path_servable() && plain.fast_path_servable());
    }

    fn name(text: &str) -> Name {
        Name::from_ascii(text).expect("test name")
    }

    fn catalog() -> Catalog {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
        let mut catalog = Catalog::new();
        for file in ["example.test.zone", "other.test.zone", "hosted.example.test.zone"] {
            let zone = Zone::load(&dir.join(file), None).unwrap_or_else(|err| panic!("{err}"));
            catalog.insert(zone);
        }
        catalog
    }

    /// An answer the way the expectations below are written: dig's status
    /// and AA flag, then each non-empty section.
    fn render(answer: &Lookup) -> String {
        let status = match answer.rcode {
            ResponseCode::NoError => "NOERROR".to_owned(),
            ResponseCode::NXDomain => "NXDOMAIN".to_owned(),
            ResponseCode::Refused => "REFUSED".to_owned(),
            ResponseCode::YXDomain => "YXDOMAIN".to_owned(),
            other => format!("{other:?}"),
        };
        let mut out = status;
        if answer.authoritative {
            out.push_str(" aa");
        }
        out.push('\n');
        for (title, records) in
            [("answer", &answer.answers), ("authority", &answer.authority), ("additional", &answer.additionals)]
        {
            if !records.is_empty() {
                let _ = writeln!(out, "{title}:");
                for record in records {
                    let _ = writeln!(out, "{}", format_record(record));
                }
            }
        }
        out
    }

    /// Expands the shorthands of [`EXPECTED`] and drops its comments.
    fn expand(text: &str) -> String {
        let apex_ns = "example.test. 3600 IN NS ns1.example.test.\nexample.test. 3600 IN NS ns2.example.test.\nexample.test. 3600 IN NS ns.outside.test.";
        let apex_glue = "ns1.example.test. 3600 IN A 192.0.2.53\nns2.example.test. 3600 IN A 192.0.2.54\nns1.example.test. 3600 IN AAAA 2001:db8::53";
        let negative_soa =
            "example.test. 300 IN SOA ns1.example.test. hostmaster.example.test. 2024010101 7200 3600 1209600 300";
        let big_txt: Vec<String> = (0..40)
            .map(|i| {
                format!("big.example.test. 3600 IN TXT \"record {i:02} of the large rrset padding padding padding\"")
            })
            .collect();
        let dl_target = format!("{}.example.test.", vec!["l".repeat(50); 4].join("."));
        let long = vec!["m".repeat(40); 3].join(".");
        let mut out = String::new();
        for line in text.lines().map(str::trim).filter(|line| !line.is_empty() && !line.starts_with('#')) {
            let line = match line {
                "@apex-ns" => apex_ns.to_owned(),
                "@apex-glue" => apex_glue.to_owned(),
                "@negative-soa" => negative_soa.to_owned(),
                "@big-txt" => big_txt.join("\n"),
                other => other.replace("{dl-target}", &dl_target).replace("{long}", &long),
            };
            out.push_str(&line);
            out.push('\n');
        }
        out
    }

    /// The battery: questions and the answers NSD gave, in a golden file
    /// (its header says how to read it).
    const EXPECTED: &str = include_str!("../testdata/expected-answers.txt");

    #[test]
    fn answers_match_nsd() {
        let catalog = catalog();
        let expected = expand(EXPECTED);
        let mut checked = 0;
        let mut failures = Vec::new();
        for block in expected.split("== ").skip(1) {
            let Some((question, body)) = block.split_once('\n') else { panic!("bad block {block:?}") };
            let Some((qname, qtype)) = question.split_once(' ') else { panic!("bad question {question:?}") };
            let qtype: RecordType = qtype.parse().unwrap_or_else(|_| panic!("bad type in {question:?}"));
            let actual = render(&catalog.lookup(&name(qname), qtype));
            if actual != body {
                failures.push(format!("== {question}\n-- expected:\n{body}-- actual:\n{actual}"));
            }
            checked += 1;
        }
        assert!(failures.is_empty(), "{} of {checked} answers differ:\n{}", failures.len(), failures.join("\n"));
        assert!(checked >= 80, "only {checked} questions checked");
    }

    #[test]
    fn answer_metadata() {
        let catalog = catalog();
        let answer = catalog.lookup(&name("www.example.test."), RecordType::A);
        assert_eq!(answer.zone, Some(name("example.test.")));
        // DS at a child apex is answered by the parent zone.
        let answer = catalog.lookup(&name("hosted.example.test."), RecordType::DS);
        assert_eq!(answer.zone, Some(name("example.test.")));
        let answer = catalog.lookup(&name("www.hosted.example.test."), RecordType::A);
        assert_eq!(answer.zone, Some(name("hosted.example.test.")));
        let refused = catalog.lookup(&name("example.org."), RecordType::A);
        assert_eq!(refused, Lookup::refused());
    }

    #[test]
    fn catalog_prefers_the_most_specific_zone() {
        let mut catalog = catalog();
        assert_eq!(catalog.len(), 3);
        let hosted = name("hosted.example.test.");
        assert_eq!(
            catalog.find_zone(&name("a.b.hosted.example.test.")).map(|z| z.origin().clone()),
            Some(hosted.clone())
        );
        assert_eq!(catalog.find_zone(&name("Example.TEST.")).map(|z| z.origin().clone()), Some(name("example.test.")));

        // Without the child, the parent refers to it.
        let removed = catalog.remove(&hosted).expect("was loaded");
        let answer = catalog.lookup(&name("www.hosted.example.test."), RecordType::A);
        assert!(!answer.authoritative);
        assert_eq!(
            answer.authority.iter().map(format_record).collect::<Vec<_>>(),
            ["hosted.example.test. 3600 IN NS ns1.hosted.example.test."]
        );
        assert_eq!(answer.zone, Some(name("example.test.")));

        assert!(catalog.insert(removed).is_none());
        let again = Arc::clone(catalog.zone(&hosted).expect("back"));
        assert!(catalog.insert(again).is_some());
        assert_eq!(catalog.zones().count(), 3);
    }

    #[test]
    fn chains_stop_after_max_redirections() {
        // Differs from NSD on purpose: NSD followed a chain of 80.
        let mut text = String::from("$ORIGIN chain.test.\n$TTL 60\n@ SOA ns hm 1 2 3 4 5\n@ NS ns\nns A 192.0.2.1\n");
        for i in 0..20 {
            let _ = writeln!(text, "c{i} CNAME c{}", i + 1);
        }
        text.push_str("c20 A 192.0.2.20\n");
        let mut catalog = Catalog::new();
        catalog.insert(Zone::parse(&text, &name("chain.test."), "chain").expect("loads"));

        let answer = catalog.lookup(&name("c0.chain.test."), RecordType::A);
        assert_eq!(answer.rcode, ResponseCode::NoError);
        assert_eq!(answer.answers.len(), MAX_REDIRECTIONS + 1);
        assert!(answer.answers.iter().all(|record| record.record_type() == RecordType::CNAME));
        assert!(answer.authority.is_empty());

        let answer = catalog.lookup(&name("c5.chain.test."), RecordType::A);
        assert_eq!(answer.answers.len(), 16);
        assert_eq!(answer.answers.last().map(format_record).as_deref(), Some("c20.chain.test. 60 IN A 192.0.2.20"));
    }

    #[test]
    fn apex_dname_and_root_zone() {
        let old = "$ORIGIN old.test.\n@ 60 SOA ns hm 1 2 3 4 5\n@ 60 NS ns.new.test.\n@ 60 DNAME new.test.\n";
        let new = "$ORIGIN new.test.\n@ 60 SOA ns hm 1 2 3 4 5\nwww 60 A 192.0.2.1\n";
        let root = ". 60 SOA a.root. hm.root. 1 2 3 4 5\n. 60 NS a.root.\ntest. 60 NS ns.test.\n";
        let mut catalog = Catalog::new();
        catalog.insert(Zone::parse(old, &name("old.test."), "old").expect("old"));
        catalog.insert(Zone::parse(new, &name("new.test."), "new").expect("new"));
        catalog.insert(Zone::parse(root, &Name::root(), "root").expect("root"));

        let answer = catalog.lookup(&name("www.old.test."), RecordType::A);
        assert_eq!(
            answer.answers.iter().map(format_record).collect::<Vec<_>>(),
            [
                "old.test. 60 IN DNAME new.test.",
                "www.old.test. 60 IN CNAME www.new.test.",
                "www.new.test. 60 IN A 192.0.2.1"
            ]
        );
        // The apex keeps its own data; the DNAME applies below it only.
        let answer = catalog.lookup(&name("old.test."), RecordType::NS);
        assert_eq!(answer.answers.len(), 1);

        // Names in no other zone fall to the root zone, which refers them.
        let answer = catalog.lookup(&name("www.other.test."), RecordType::A);
        assert!(!answer.authoritative);
        assert_eq!(answer.zone, Some(Name::root()));
        assert_eq!(answer.authority.iter().map(format_record).collect::<Vec<_>>(), ["test. 60 IN NS ns.test."]);
        let answer = catalog.lookup(&name("example."), RecordType::A);
        assert_eq!(answer.rcode, ResponseCode::NXDomain);
    }

    #[test]
    fn preload_questions_cover_authoritative_data() {
        let catalog = catalog();
        let questions = catalog.preload_questions(&name("example.test."));
        let has = |owner: &str, rtype| questions.contains(&(name(owner), rtype));
        assert!(has("example.test.", RecordType::SOA));
        assert!(has("www.example.test.", RecordType::A));
        assert!(has("sub.example.test.", RecordType::NS));
        assert!(has("sub.example.test.", RecordType::DS));
        assert!(has("nods.example.test.", RecordType::NS));
        assert!(!has("*.wild.example.test.", RecordType::A));
        assert!(!questions.iter().any(|(owner, _)| owner.to_ascii().ends_with(".sub.example.test.")));
        assert!(catalog.preload_questions(&name("nowhere.test.")).is_empty());
    }

    /// Mangled zone files must fail to load cleanly, and what loads must be
    /// looked up without a panic.
    #[test]
    fn mangled_input_never_panics() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
        let original = std::fs::read_to_string(dir.join("example.test.zone")).expect("test zone");
        let pieces = [
            "(", ")", ";", "\"", "\\", "\\0", "\\#", "$", "$ORIGIN", "@", "*", ".", "\n", " ", "\t", "9", "IN",
            "CNAME", "DNAME", "NS", "é", "\r",
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |bound: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % bound as u64) as usize
        };
        for _ in 0..300 {
            let mut text = original.clone();
            for _ in 0..1 + next(4) {
                let mut at = next(text.len() + 1);
                while !text.is_char_boundary(at) {
                    at -= 1;
                }
                if next(2) == 0 {
                    text.insert_str(at, pieces[next(pieces.len())]);
                } else {
                    let mut end = (at + 1 + next(8)).min(text.len());
                    while !text.is_char_boundary(end) {
                        end += 1;
                    }
                    text.replace_range(at..end, "");
                }
            }
            if let Ok(zone) = Zone::parse(&text, &name("example.test."), "mangled") {
                let mut catalog = Catalog::new();
                catalog.insert(zone);
                for qname in ["www.example.test.", "a.b.c.example.test.", "x.dn.example.test.", "q.wild.example.test."]
                {
                    for qtype in [RecordType::A, RecordType::ANY, RecordType::MX, RecordType::DS] {
                        catalog.lookup(&name(qname), qtype);
                    }
                }
            }
        }
    }
}
