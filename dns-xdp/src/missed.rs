//! The most frequent questions the XDP program passed up to the daemon, for
//! `dns-xdp stats --watch`: a sample of the UDP queries the daemon receives
//! (every one of them is a fast-path miss or pass), counted in a
//! Space-Saving table (Metwally et al., 2005) of fixed size, so memory stays
//! bounded whatever the clients send. Counts halve every
//! [`DECAY_INTERVAL`], so the table shows what is missed now, not last week.

use std::{
    collections::HashMap,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use hickory_proto::{
    rr::{Name, RecordType},
    serialize::binary::{BinDecodable as _, BinDecoder},
};

/// One query in this many is sampled.
pub const SAMPLE_EVERY: u64 = 8;
/// Questions tracked at once (the table's whole memory: this many names).
pub const TRACKED: usize = 64;
/// How often every count is halved.
pub const DECAY_INTERVAL: Duration = Duration::from_secs(10);
/// The DNS header before the question.
const HEADER_LEN: usize = 12;

/// A missed question and its estimated count of queries (sampled counts
/// times [`SAMPLE_EVERY`], decayed), as `stats --watch` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Missed {
    pub name: String,
    #[serde(rename = "type")]
    pub qtype: String,
    pub queries: u64,
}

#[derive(Debug)]
pub struct MissedNames {
    seen: AtomicU64,
    table: Mutex<Table>,
}

impl Default for MissedNames {
    fn default() -> Self {
        Self { seen: AtomicU64::new(0), table: Mutex::new(Table::new(Instant::now())) }
    }
}

impl MissedNames {
    /// Counts the question of one query the daemon received over UDP, if
    /// it is sampled. Cheap when not: one atomic add.
    pub fn offer(&self, query: &[u8]) {
        if !self.seen.fetch_add(1, Relaxed).is_multiple_of(SAMPLE_EVERY) {
            return;
        }
        let Some(question) = question(query) else { return };
        self.table.lock().unwrap_or_else(|p| p.into_inner()).count(question, Instant::now());
    }

    /// The `limit` most frequent, most first.
    pub fn top(&self, limit: usize) -> Vec<Missed> {
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        table.decay(Instant::now());
        let mut entries: Vec<_> = table.counts.iter().map(|(q, c)| (q.clone(), *c)).collect();
        drop(table);
        entries.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        entries
            .into_iter()
            .take(limit)
            .map(|((name, qtype), count)| Missed {
                name: name.to_ascii(),
                qtype: qtype.to_string(),
                queries: count * SAMPLE_EVERY,
            })
            .collect()
    }
}

type Question = (Name, RecordType);

#[derive(Debug)]
struct Table {
    counts: HashMap<Question, u64>,
    decayed_at: Instant,
}

impl Table {
    fn new(now: Instant) -> Self {
        Self { counts: HashMap::with_capacity(TRACKED), decayed_at: now }
    }

    /// Space-Saving: a new question when the table is full takes the place
    /// of the least counted one, inheriting its count plus one, so a
    /// frequent question cannot be starved out by many rare ones.
    fn count(&mut self, question: Question, now: Instant) {
        self.decay(now);
        if let Some(count) = self.counts.get_mut(&question) {
            *count += 1;
            return;
        }
        let mut inherited = 0;
        if self.counts.len() >= TRACKED
            && let Some(least) = self.counts.iter().min_by_key(|(_, c)| **c).map(|(q, _)| q.clone())
        {
            inherited = self.counts.remove(&least).unwrap_or_default();
        }
        self.counts.insert(question, inherited + 1);
    }

    fn decay(&mut self, now: Instant) {
        while now.duration_since(self.decayed_at) >= DECAY_INTERVAL {
            self.decayed_at += DECAY_INTERVAL;
            self.counts.retain(|_, count| {
                *count /= 2;
                *count > 0
            });
            if self.counts.is_empty() {
                self.decayed_at = now;
            }
        }
    }
}

/// The question of a query, name lower-cased; `None` unless the header
/// says one question and it parses.
pub fn question(query: &[u8]) -> Option<Question> {
    let qdcount = u16::from_be_bytes([*query.get(4)?, *query.get(5)?]);
    if qdcount != 1 {
        return None;
    }
    let mut decoder = BinDecoder::new(query.get(HEADER_LEN..)?);
    let name = Name::read(&mut decoder).ok()?;
    let qtype = decoder.read_u16().ok()?.unverified();
    Some((name.to_lowercase(), RecordType::from(qtype)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(name: &str) -> Question {
        (Name::from_ascii(name).expect("name"), RecordType::A)
    }

    #[test]
    fn a_frequent_question_survives_many_rare_ones_in_bounded_memory() {
        let now = Instant::now();
        let mut table = Table::new(now);
        for round in 0..1000 {
            table.count(q("hot.example."), now);
            table.count(q(&format!("rare{round}.example.")), now);
        }
        assert!(table.counts.len() <= TRACKED);
        let hot = table.counts[&q("hot.example.")];
        assert!(hot >= 1000, "the hot question keeps its count: {hot}");
        assert!(table.counts.iter().all(|(question, c)| *question == q("hot.example.") || *c < hot));
    }

    #[test]
    fn counts_halve_each_interval_and_vanish() {
        let start = Instant::now();
        let mut table = Table::new(start);
        for _ in 0..8 {
            table.count(q("a.example."), start);
        }
        table.decay(start + DECAY_INTERVAL);
        assert_eq!(table.counts[&q("a.example.")], 4);
        table.decay(start + DECAY_INTERVAL * 10);
        assert!(table.counts.is_empty());
    }

    #[test]
    fn the_question_is_read_from_the_query_bytes_lower_cased() {
        let mut query = vec![0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        query.extend_from_slice(b"\x03WwW\x07example\x00\x00\x1c\x00\x01");
        assert_eq!(question(&query), Some((Name::from_ascii("www.example.").expect("name"), RecordType::AAAA)));
        assert_eq!(question(&query[..14]), None);
        query[5] = 2;
        assert_eq!(question(&query), None);
    }
}
