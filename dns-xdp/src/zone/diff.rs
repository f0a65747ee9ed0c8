//! The difference between two versions of a zone, as RFC 1995 §4 states
//! one: the records deleted and the records added between two serials.
//!
//! A difference comes from an IXFR (a primary sends it) or from comparing
//! two whole copies ([`ZoneDiff::between`]: an AXFR, a file reload), and is
//! applied with [`Zone::apply`], which builds the new version from the old
//! one's records without parsing any text. [`ZoneDiff::changed_owners`] is
//! what the answer table needs to know to re-check only the answers that
//! can have changed.

use std::collections::{BTreeSet, HashMap};

use hickory_proto::rr::{LowerName, Name, Record, RecordType};

use super::{Node, RrSet, Zone, ZoneError, loader::ZoneBuilder, rdata::lowercase_rdata_names};

/// The records removed from and added to a zone between two serials.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ZoneDiff {
    pub from_serial: u32,
    pub to_serial: u32,
    /// Records of the old version that the new one no longer has.
    pub removed: Vec<Record>,
    /// Records of the new version that the old one did not have.
    pub added: Vec<Record>,
}

/// Why a difference does not apply to a zone. RFC 1995 §4 makes the
/// secondary fall back to AXFR then.
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum ApplyError {
    /// The difference starts from another version.
    #[error("the difference starts at serial {diff}, the zone is at {zone}")]
    SerialMismatch { zone: u32, diff: u32 },
    /// A record to delete is not in the zone.
    #[error("record to delete is not in the zone: {0}")]
    Absent(String),
    /// The result is not a valid zone (CNAME and other data, ...).
    #[error("the result is not a valid zone: {0}")]
    Invalid(#[from] ZoneError),
}

/// A set of one owner's records of one type (RRSIGs by the type they
/// cover), the unit both sides are compared in.
#[derive(PartialEq, Eq, PartialOrd, Ord, Clone, Copy)]
enum SetKind {
    Data(RecordType),
    Signatures(RecordType),
}

fn node_sets(node: &Node) -> impl Iterator<Item = (SetKind, &RrSet)> {
    let data = node.rrsets().iter().map(|set| (SetKind::Data(set.record_type()), set));
    let sigs = node.signature_sets().map(|(covered, set)| (SetKind::Signatures(covered), set));
    data.chain(sigs)
}

fn find_set(node: Option<&Node>, kind: SetKind) -> Option<&RrSet> {
    let node = node?;
    match kind {
        SetKind::Data(rtype) => node.rrset(rtype),
        SetKind::Signatures(covered) => node.signatures(covered),
    }
}

/// Same records (order aside) with the same TTL.
fn same_set(a: &RrSet, b: &RrSet) -> bool {
    a.ttl() == b.ttl()
        && a.records().len() == b.records().len()
        && a.records().iter().all(|r| b.records().iter().any(|s| s.data == r.data))
}

/// A record as the zone model stores it: owner and RDATA names lower-case.
fn normalised(record: &Record) -> Record {
    let mut record = record.clone();
    record.name = record.name.to_lowercase();
    lowercase_rdata_names(&mut record.data);
    record
}

fn same_record(a: &Record, b: &Record) -> bool {
    a.record_type() == b.record_type() && a.dns_class == b.dns_class && a.name == b.name && a.data == b.data
}

impl ZoneDiff {
    /// The difference from `old` to `new`, RRset by RRset: an RRset that
    /// differs in any record or in its TTL is removed whole and added whole
    /// (so the SOA is in both when the serial changed).
    pub fn between(old: &Zone, new: &Zone) -> ZoneDiff {
        let mut diff = ZoneDiff { from_serial: old.serial(), to_serial: new.serial(), ..Default::default() };
        let owners: BTreeSet<&LowerName> = old.nodes.keys().chain(new.nodes.keys()).collect();
        for owner in owners {
            let (before, after) = (old.nodes.get(owner), new.nodes.get(owner));
            let kinds: BTreeSet<SetKind> =
                before.into_iter().chain(after).flat_map(|node| node_sets(node).map(|(kind, _)| kind)).collect();
            for kind in kinds {
                let (was, is) = (find_set(before, kind), find_set(after, kind));
                match (was, is) {
                    (Some(was), Some(is)) if same_set(was, is) => {}
                    _ => {
                        diff.removed.extend(was.into_iter().flat_map(|set| set.records().iter().cloned()));
                        diff.added.extend(is.into_iter().flat_map(|set| set.records().iter().cloned()));
                    }
                }
            }
        }
        diff
    }

    pub fn is_empty(&self) -> bool {
        self.removed.is_empty() && self.added.is_empty()
    }

    /// Every owner name a record was removed from or added to, lower-case,
    /// each once, in canonical order.
    pub fn changed_owners(&self) -> Vec<Name> {
        let owners: BTreeSet<LowerName> =
            self.removed.iter().chain(&self.added).map(|record| LowerName::new(&record.name)).collect();
        owners.into_iter().map(Name::from).collect()
    }

    /// The record types changed at `owner` (RRSIGs as RRSIG).
    pub fn changed_types_at(&self, owner: &Name) -> BTreeSet<RecordType> {
        self.removed
            .iter()
            .chain(&self.added)
            .filter(|record| LowerName::new(&record.name) == LowerName::new(owner))
            .map(Record::record_type)
            .collect()
    }
}

impl Zone {
    /// The version `diff` leads to, built from this one's records (no text
    /// is parsed), with every check a zone file gets. Fails when the
    /// difference is for another serial or deletes a record that is not
    /// here (RFC 1995 §4: fall back to AXFR then). The SOA to add is the
    /// new version's SOA.
    pub fn apply(&self, diff: &ZoneDiff) -> Result<Zone, ApplyError> {
        if diff.from_serial != self.serial() {
            return Err(ApplyError::SerialMismatch { zone: self.serial(), diff: diff.from_serial });
        }
        // By owner, so that finding each record to delete costs its owner's
        // records, not the zone's.
        let mut removed: HashMap<LowerName, Vec<(Record, bool)>> = HashMap::new();
        for record in &diff.removed {
            let record = normalised(record);
            removed.entry(LowerName::new(&record.name)).or_default().push((record, false));
        }
        let mut builder = ZoneBuilder::new(self.origin.clone());
        let source = self.source.clone();
        for (owner, node) in &self.nodes {
            let mut to_delete = removed.get_mut(owner);
            for (_, set) in node_sets(node) {
                for record in set.records() {
                    let hit = to_delete
                        .as_deref_mut()
                        .and_then(|gone| gone.iter_mut().find(|(gone, done)| !*done && same_record(gone, record)));
                    if let Some(hit) = hit {
                        hit.1 = true;
                        continue;
                    }
                    builder.add(record.clone(), &source, 0)?;
                }
            }
        }
        if let Some((absent, _)) = removed.values().flatten().find(|(_, done)| !done) {
            return Err(ApplyError::Absent(super::format_record(absent)));
        }
        for record in &diff.added {
            builder.add(normalised(record), &source, 0)?;
        }
        let zone = builder.finish(&source)?;
        Ok(zone)
    }
}

/// Which answers a changed owner can alter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Only answers to the name itself (and negative answers, which the
    /// caller re-checks anyway).
    Name,
    /// Answers to the name and every name below it.
    Subtree,
}

impl ZoneDiff {
    /// The names whose answers this difference can change in the zone
    /// `origin`, with how far below each the change reaches. A changed
    /// owner reaches the names below it (a delegation, a DNAME, names that
    /// come and go); a wildcard reaches its parent's subtree; the apex only
    /// itself (SOA and DNSKEY changes show in the apex's own answers and in
    /// negative answers), unless its NS RRset (in the authority section of
    /// positive answers) or a DNAME changed there.
    pub fn reach(&self, origin: &Name) -> Vec<(Name, Reach)> {
        let apex = LowerName::new(origin);
        let mut reach = Vec::new();
        for owner in self.changed_owners() {
            let lower = LowerName::new(&owner);
            if lower == apex {
                // The apex NS RRset (and its RRSIGs) is in the authority
                // section of every positive answer; a DNAME redirects all.
                let everywhere = self.removed.iter().chain(&self.added).any(|record| {
                    LowerName::new(&record.name) == apex
                        && (matches!(record.record_type(), RecordType::NS | RecordType::DNAME)
                            || super::rrsig_covered(&record.data) == Some(RecordType::NS))
                });
                reach.push((owner, if everywhere { Reach::Subtree } else { Reach::Name }));
            } else if owner.is_wildcard() {
                reach.push((owner.base_name(), Reach::Subtree));
            } else {
                reach.push((owner, Reach::Subtree));
            }
        }
        reach
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zone::format_record;

    const V1: &str = "$ORIGIN d.test.\n$TTL 300\n@ SOA ns hm 1 60 10 600 30\n@ NS ns\nns A 192.0.2.1\n\
                      www A 192.0.2.10\nwww A 192.0.2.11\nmail MX 10 ns\nold TXT \"gone soon\"\n";
    const V2: &str = "$ORIGIN d.test.\n$TTL 300\n@ SOA ns hm 2 60 10 600 30\n@ NS ns\nns A 192.0.2.1\n\
                      www A 192.0.2.10\nwww A 192.0.2.12\nmail MX 10 ns\nnew.sub AAAA 2001:db8::1\n";

    fn zone(text: &str) -> Zone {
        Zone::parse(text, &Name::from_ascii("d.test.").expect("name"), "t").expect("loads")
    }

    fn shown(records: &[Record]) -> Vec<String> {
        let mut lines: Vec<String> = records.iter().map(format_record).collect();
        lines.sort();
        lines
    }

    fn every_record(zone: &Zone) -> Vec<String> {
        let mut records = Vec::new();
        for (_, node) in zone.nodes() {
            for (_, set) in node_sets(node) {
                records.extend(set.records().iter().cloned());
            }
        }
        shown(&records)
    }

    #[test]
    fn between_compares_rrset_by_rrset() {
        let diff = ZoneDiff::between(&zone(V1), &zone(V2));
        assert_eq!((diff.from_serial, diff.to_serial), (1, 2));
        assert_eq!(
            shown(&diff.removed),
            [
                "d.test. 300 IN SOA ns.d.test. hm.d.test. 1 60 10 600 30",
                "old.d.test. 300 IN TXT \"gone soon\"",
                "www.d.test. 300 IN A 192.0.2.10",
                "www.d.test. 300 IN A 192.0.2.11",
            ]
        );
        assert_eq!(
            shown(&diff.added),
            [
                "d.test. 300 IN SOA ns.d.test. hm.d.test. 2 60 10 600 30",
                "new.sub.d.test. 300 IN AAAA 2001:db8::1",
                "www.d.test. 300 IN A 192.0.2.10",
                "www.d.test. 300 IN A 192.0.2.12",
            ]
        );
        let owners: Vec<String> = diff.changed_owners().iter().map(Name::to_string).collect();
        assert_eq!(owners, ["d.test.", "old.d.test.", "new.sub.d.test.", "www.d.test."]);
        assert!(ZoneDiff::between(&zone(V1), &zone(V1)).is_empty());
    }

    #[test]
    fn apply_gives_what_the_new_text_loads_to() {
        let (old, new) = (zone(V1), zone(V2));
        let applied = old.apply(&ZoneDiff::between(&old, &new)).expect("applies");
        assert_eq!(every_record(&applied), every_record(&new));
        assert_eq!(applied.serial(), 2);
        assert_eq!(applied.record_count(), new.record_count());
        // The empty non-terminal above the new name exists, as in the file.
        assert!(applied.is_empty_non_terminal(&LowerName::new(&Name::from_ascii("sub.d.test.").expect("name"))));
        assert!(applied.node(&LowerName::new(&Name::from_ascii("old.d.test.").expect("name"))).is_none());
    }

    #[test]
    fn apply_refuses_what_rfc_1995_sends_back_to_axfr() {
        let (old, new) = (zone(V1), zone(V2));
        let mut diff = ZoneDiff::between(&old, &new);
        diff.from_serial = 7;
        assert!(matches!(old.apply(&diff), Err(ApplyError::SerialMismatch { zone: 1, diff: 7 })));

        let mut diff = ZoneDiff::between(&old, &new);
        diff.removed.push(Record::from_rdata(
            Name::from_ascii("nothere.d.test.").expect("name"),
            300,
            hickory_proto::rr::RData::A("192.0.2.99".parse().expect("addr")),
        ));
        let err = old.apply(&diff).expect_err("absent record");
        assert!(err.to_string().contains("nothere.d.test."), "{err}");

        // CNAME next to other data is refused as in a zone file.
        let mut diff = ZoneDiff::between(&old, &old);
        diff.added.push(Record::from_rdata(
            Name::from_ascii("WWW.d.test.").expect("name"),
            300,
            hickory_proto::rr::RData::CNAME(hickory_proto::rr::rdata::CNAME(
                Name::from_ascii("ns.d.test.").expect("name"),
            )),
        ));
        assert!(matches!(old.apply(&diff), Err(ApplyError::Invalid(_))));
    }

    #[test]
    fn reach_of_apex_wildcard_and_other_owners() {
        let origin = Name::from_ascii("d.test.").expect("name");
        let mut diff = ZoneDiff::between(&zone(V1), &zone(V2));
        diff.added.push(Record::from_rdata(
            Name::from_ascii("*.w.d.test.").expect("name"),
            300,
            hickory_proto::rr::RData::A("192.0.2.7".parse().expect("addr")),
        ));
        let reach: Vec<(String, Reach)> = diff.reach(&origin).into_iter().map(|(n, r)| (n.to_string(), r)).collect();
        assert!(reach.contains(&("d.test.".into(), Reach::Name)), "{reach:?}");
        assert!(reach.contains(&("w.d.test.".into(), Reach::Subtree)), "{reach:?}");
        assert!(reach.contains(&("www.d.test.".into(), Reach::Subtree)), "{reach:?}");
    }
}
