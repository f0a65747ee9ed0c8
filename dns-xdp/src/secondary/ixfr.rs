//! The IXFR reply (RFC 1995 §4) as a secondary reads it: one SOA when the
//! copy is current, a sequence of differences, or the whole zone in the
//! AXFR form a primary may send instead.

use anyhow::{anyhow, bail};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};

use crate::zone::ZoneDiff;

/// What a primary's IXFR reply says.
#[derive(Debug)]
pub(super) enum IxfrReply {
    /// A single SOA whose serial is not newer than ours: nothing to do.
    UpToDate,
    /// The differences from our serial to the primary's, in order.
    Incremental(Vec<ZoneDiff>),
    /// The whole zone, as an AXFR would send it (the closing SOA left out).
    Full(Vec<Record>),
}

fn apex_serial(record: &Record, origin: &Name) -> Option<u32> {
    match &record.data {
        RData::SOA(soa) if LowerName::new(&record.name) == LowerName::new(origin) => Some(soa.serial),
        _ => None,
    }
}

/// Follows a reply message by message to tell when it is complete: after
/// a first SOA not newer than ours, or once the primary's SOA closes the
/// differences (its third appearance) or the whole zone (its second, when
/// the second record is not our SOA).
pub(super) struct Progress {
    origin: Name,
    ours: u32,
    records: usize,
    newest: Option<u32>,
    incremental: Option<bool>,
    newest_seen: usize,
}

impl Progress {
    pub(super) fn new(origin: &Name, ours: u32) -> Self {
        Self { origin: origin.clone(), ours, records: 0, newest: None, incremental: None, newest_seen: 0 }
    }

    /// Takes the answer records of the next message; whether more follow.
    pub(super) fn more(&mut self, answers: &[Record]) -> anyhow::Result<bool> {
        let mut last_is_newest = false;
        for record in answers {
            let serial = apex_serial(record, &self.origin);
            match self.records {
                0 => self.newest = Some(serial.ok_or_else(|| anyhow!("the IXFR reply does not start with a SOA"))?),
                1 => self.incremental = Some(serial == Some(self.ours)),
                _ => {}
            }
            self.records += 1;
            last_is_newest = serial.is_some() && serial == self.newest;
            if last_is_newest {
                self.newest_seen += 1;
            }
        }
        if self.records == 1 && self.newest.is_some_and(|newest| !crate::secondary::serial_newer(newest, self.ours)) {
            // A lone SOA not newer than ours is the whole reply: we are
            // current.
            return Ok(false);
        }
        let closing = if self.incremental == Some(true) { 3 } else { 2 };
        Ok(!(last_is_newest && self.newest_seen >= closing))
    }
}

/// Reads a complete reply (every answer record, in order) against our
/// serial `ours`.
pub(super) fn parse(mut records: Vec<Record>, origin: &Name, ours: u32) -> anyhow::Result<IxfrReply> {
    let newest = match records.first().and_then(|r| apex_serial(r, origin)) {
        Some(serial) => serial,
        None => bail!("the IXFR reply does not start with the zone's SOA"),
    };
    if records.len() == 1 {
        if crate::secondary::serial_newer(newest, ours) {
            bail!("the primary sent only its SOA (serial {newest}): it has no differences from serial {ours}");
        }
        return Ok(IxfrReply::UpToDate);
    }
    if records.last().and_then(|r| apex_serial(r, origin)) != Some(newest) {
        bail!("the IXFR reply does not end with the SOA it started with");
    }
    if records.get(1).and_then(|r| apex_serial(r, origin)) != Some(ours) {
        records.pop();
        return Ok(IxfrReply::Full(records));
    }
    // SOA(newest), then per difference: SOA(from), deleted..., SOA(to),
    // added...; then SOA(newest) again.
    let body = &records[1..records.len() - 1];
    let mut diffs = Vec::new();
    let mut at = 0;
    while at < body.len() {
        let old_soa = &body[at];
        let from = apex_serial(old_soa, origin).ok_or_else(|| anyhow!("a difference does not start with a SOA"))?;
        let (removed, next) = until_soa(body, at + 1, origin);
        let new_soa = body.get(next).ok_or_else(|| anyhow!("difference from serial {from} has no new SOA"))?;
        let to = apex_serial(new_soa, origin).unwrap_or_default();
        let (added, after) = until_soa(body, next + 1, origin);
        let mut diff =
            ZoneDiff { from_serial: from, to_serial: to, removed: vec![old_soa.clone()], added: vec![new_soa.clone()] };
        diff.removed.extend_from_slice(removed);
        diff.added.extend_from_slice(added);
        diffs.push(diff);
        at = after;
    }
    match (diffs.first(), diffs.last()) {
        (Some(first), Some(last)) if first.from_serial == ours && last.to_serial == newest => {}
        _ => bail!("the differences do not lead from serial {ours} to {newest}"),
    }
    if diffs.windows(2).any(|pair| pair[0].to_serial != pair[1].from_serial) {
        bail!("the differences do not follow on from each other");
    }
    Ok(IxfrReply::Incremental(diffs))
}

/// The records from `start` up to the next apex SOA, and where it is.
fn until_soa<'a>(records: &'a [Record], start: usize, origin: &Name) -> (&'a [Record], usize) {
    let rest = records.get(start..).unwrap_or_default();
    let len = rest.iter().position(|r| r.record_type() == RecordType::SOA && apex_serial(r, origin).is_some());
    let len = len.unwrap_or(rest.len());
    (&rest[..len], start + len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{A, SOA};

    fn origin() -> Name {
        Name::from_ascii("i.test.").expect("name")
    }

    fn soa(serial: u32) -> Record {
        let mname = Name::from_ascii("ns.i.test.").expect("name");
        let rname = Name::from_ascii("hm.i.test.").expect("name");
        Record::from_rdata(origin(), 300, RData::SOA(SOA::new(mname, rname, serial, 60, 10, 600, 30)))
    }

    fn a(owner: &str, last: u8) -> Record {
        Record::from_rdata(Name::from_ascii(owner).expect("name"), 300, RData::A(A::new(192, 0, 2, last)))
    }

    fn complete_after(records: &[Record], ours: u32) -> Option<usize> {
        let mut progress = Progress::new(&origin(), ours);
        records.iter().position(|r| !progress.more(std::slice::from_ref(r)).expect("progress"))
    }

    #[test]
    fn differences_in_two_steps() {
        let reply = vec![
            soa(3),
            soa(1),
            a("www.i.test.", 1),
            soa(2),
            a("www.i.test.", 2),
            soa(2),
            soa(3),
            a("new.i.test.", 3),
            soa(3),
        ];
        assert_eq!(complete_after(&reply, 1), Some(reply.len() - 1));
        let IxfrReply::Incremental(diffs) = parse(reply, &origin(), 1).expect("parses") else { panic!("incremental") };
        assert_eq!(diffs.len(), 2);
        assert_eq!(
            (diffs[0].from_serial, diffs[0].to_serial, diffs[0].removed.len(), diffs[0].added.len()),
            (1, 2, 2, 2)
        );
        assert_eq!(
            (diffs[1].from_serial, diffs[1].to_serial, diffs[1].removed.len(), diffs[1].added.len()),
            (2, 3, 1, 2)
        );
    }

    #[test]
    fn the_whole_zone_and_the_lone_soa() {
        let reply = vec![soa(5), a("www.i.test.", 1), a("x.i.test.", 2), soa(5)];
        assert_eq!(complete_after(&reply, 1), Some(3));
        let IxfrReply::Full(records) = parse(reply, &origin(), 1).expect("parses") else { panic!("full") };
        assert_eq!(records.len(), 3);
        assert_eq!(complete_after(&[soa(1)], 1), Some(0));
        assert!(matches!(parse(vec![soa(1)], &origin(), 1), Ok(IxfrReply::UpToDate)));
        assert!(parse(vec![soa(2)], &origin(), 1).is_err(), "a newer lone SOA is not up to date");
    }

    #[test]
    fn broken_sequences_are_refused() {
        // Starts from another serial than ours.
        assert!(
            parse(vec![soa(3), soa(2), soa(3), soa(3)], &origin(), 1).is_ok_and(|r| matches!(r, IxfrReply::Full(_)))
        );
        // A gap between differences.
        let gap = vec![soa(4), soa(1), soa(2), soa(3), soa(4), soa(4)];
        assert!(parse(gap, &origin(), 1).is_err());
        // Not closed by the newest SOA.
        assert!(parse(vec![soa(2), soa(1), a("www.i.test.", 1), soa(2), a("www.i.test.", 2)], &origin(), 1).is_err());
    }
}
