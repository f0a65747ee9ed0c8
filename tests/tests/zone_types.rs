//! Every record type an operator's zone may hold loads from presentation
//! form and round-trips, checked against `ldns-read-zone` (Debian's
//! ldnsutils), the reference for what the text means on the wire.
//!
//! `tests/zones/all-types.test.zone` holds one record (or more) of each type
//! NSD 4.6 and Knot 3.2 load that issue #11 lists, plus the other types
//! with a text form in `dns-xdp/src/zone/presentation.rs`. For each record:
//!
//! 1. text -> wire: the RDATA dns-xdp loads is octet for octet what
//!    `ldns-read-zone -U` (every type in RFC 3597 form) says the same line
//!    means;
//! 2. wire -> text: the zone dns-xdp prints back (`format_record`) means
//!    the same to ldns (same RFC 3597 octets again), and loads back into
//!    dns-xdp as the same wire form.
//!
//! No root, no network: the only peer is the ldns command.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
};

use dns_xdp::zone::{Zone, format_record};
use dns_xdp_tests::{host_exec_ok, temp_dir, workspace_root};
use hickory_proto::{
    rr::{Record, RecordType},
    serialize::binary::{BinEncodable, BinEncoder, NameEncoding},
};

/// (owner, type code) -> the RDATA of each record, as upper-case hex.
type WireRecords = BTreeMap<(String, u16), BTreeSet<String>>;

/// The types of the list: the test fails if the zone lost one.
const REQUIRED_TYPES: &[&str] = &[
    "LOC",
    "DNSKEY",
    "CDNSKEY",
    "CDS",
    "DS",
    "RRSIG",
    "NSEC",
    "NSEC3",
    "NSEC3PARAM",
    "ZONEMD",
    "SVCB",
    "HTTPS",
    "URI",
    "CERT",
    "DHCID",
    "EUI48",
    "EUI64",
    "RP",
    "AFSDB",
    "KX",
    "APL",
    "SMIMEA",
    "OPENPGPKEY",
    "CSYNC",
    "TYPE65000",
];

fn zone_path() -> std::path::PathBuf {
    workspace_root().join("tests/zones/all-types.test.zone")
}

/// What ldns says the records of `path` are on the wire.
fn ldns_wire(path: &Path) -> WireRecords {
    let text = host_exec_ok("ldns-read-zone", &["-U", "TYPE0", &path.display().to_string()]);
    let mut records = WireRecords::new();
    for line in text.lines().filter(|line| !line.trim().is_empty() && !line.starts_with(';')) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [owner, _ttl, _class, type_field, rest @ ..] = fields.as_slice() else {
            panic!("unexpected ldns-read-zone line {line:?}");
        };
        let code: u16 = type_field
            .strip_prefix("TYPE")
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("ldns did not print {type_field} in RFC 3597 form: {line:?}"));
        let hex = match rest {
            ["\\#", "0"] => String::new(),
            ["\\#", _length, hex @ ..] => hex.concat().to_ascii_uppercase(),
            _ => panic!("unexpected RDATA in {line:?}"),
        };
        records.entry((owner.to_ascii_lowercase(), code)).or_default().insert(hex);
    }
    records
}

fn rdata_hex(record: &Record) -> String {
    let mut wire = Vec::new();
    let mut encoder = BinEncoder::new(&mut wire);
    encoder.set_name_encoding(NameEncoding::Uncompressed);
    record.data.emit(&mut encoder).expect("RDATA encodes");
    wire.iter().map(|byte| format!("{byte:02X}")).collect()
}

fn all_records(zone: &Zone) -> Vec<Record> {
    zone.nodes()
        .flat_map(|(_, node)| {
            let sets = node.rrsets().iter().chain(node.signature_sets().map(|(_, set)| set));
            sets.flat_map(|set| set.records().to_vec()).collect::<Vec<_>>()
        })
        .collect()
}

fn our_wire(zone: &Zone) -> WireRecords {
    let mut records = WireRecords::new();
    for record in all_records(zone) {
        records
            .entry((record.name.to_ascii().to_ascii_lowercase(), u16::from(record.record_type())))
            .or_default()
            .insert(rdata_hex(&record));
    }
    records
}

fn load(path: &Path) -> Zone {
    Zone::load(path, None).unwrap_or_else(|err| panic!("dns-xdp does not load {}: {err}", path.display()))
}

/// The differences between two record collections, one line each.
fn differences(ours: &WireRecords, reference: &WireRecords) -> Vec<String> {
    let keys: BTreeSet<_> = ours.keys().chain(reference.keys()).collect();
    keys.into_iter()
        .filter(|key| ours.get(*key) != reference.get(*key))
        .map(|key| format!("{} TYPE{}: dns-xdp {:?}, ldns {:?}", key.0, key.1, ours.get(key), reference.get(key)))
        .collect()
}

#[test]
fn every_type_loads_and_matches_ldns_on_the_wire() {
    let path = zone_path();
    let zone = load(&path);
    let ours = our_wire(&zone);
    let reference = ldns_wire(&path);
    let diffs = differences(&ours, &reference);
    assert!(diffs.is_empty(), "text -> wire differs from ldns-read-zone:\n{}", diffs.join("\n"));

    let printed: BTreeSet<String> = all_records(&zone)
        .iter()
        .filter_map(|record| format_record(record).split(' ').nth(3).map(str::to_owned))
        .collect();
    for required in REQUIRED_TYPES {
        assert!(printed.contains(*required), "the all-types zone has no {required} record (types: {printed:?})");
    }
}

#[test]
fn printed_records_mean_the_same_to_ldns_and_load_back() {
    let path = zone_path();
    let zone = load(&path);
    let dir = temp_dir("zone-types");
    let printed_path = dir.path().join("all-types.test.zone");
    let mut text = format!("$ORIGIN {}\n", zone.origin());
    for record in all_records(&zone) {
        text.push_str(&format_record(&record));
        text.push('\n');
    }
    std::fs::write(&printed_path, &text).expect("writing the printed zone");

    let diffs = differences(&ldns_wire(&printed_path), &ldns_wire(&path));
    assert!(diffs.is_empty(), "ldns reads dns-xdp's text differently:\n{}\n--- printed:\n{text}", diffs.join("\n"));
    let reloaded = load(&printed_path);
    let diffs = differences(&our_wire(&reloaded), &our_wire(&zone));
    assert!(diffs.is_empty(), "wire -> text -> wire changed records:\n{}", diffs.join("\n"));
}

/// RFC 4034 §3: RRSIGs are kept per covered type, each with the TTL of its
/// own set, not merged into one set with the lowest TTL.
#[test]
fn signatures_stay_per_covered_type() {
    let zone = load(&zone_path());
    let owner =
        hickory_proto::rr::LowerName::from(hickory_proto::rr::Name::from_ascii("nsec3.all.test.").expect("name"));
    let node = zone.node(&owner).expect("nsec3.all.test. exists");
    let ttls: BTreeMap<String, u32> =
        node.signature_sets().map(|(covered, set)| (covered.to_string(), set.ttl())).collect();
    assert_eq!(ttls, BTreeMap::from([("NSEC3".to_owned(), 300), ("A".to_owned(), 600)]));
    assert!(node.rrset(RecordType::RRSIG).is_none(), "RRSIGs must not form one merged RRset");
}
