//! The one writer of the answer map: preloads it, fills it on misses, and
//! brings it in line with new zone data before a reload counts as done.
//!
//! Everything that changes `DNS_ANSWERS` goes through this thread, in order,
//! so a stale insert can never overtake a reload: every insert carries the
//! generation of the catalog it was computed from and is dropped when that
//! generation is no longer current. Others reach the thread only through a
//! [`MapFeed`]: the sockets offer answers, the daemon asks for syncs.
//!
//! The lookup result becomes a map slot here: [`PreparedAnswer`] (the
//! daemon's encoding of an answer) -> [`slot::encode`] -> [`AnswerSlot`] ->
//! [`crate::table`] -> the XDP program.

pub mod slot;

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, mpsc},
    time::{Duration, Instant},
};

use hickory_proto::{
    op::Message,
    rr::{DNSClass, LowerName, Name, RecordType},
    serialize::binary::BinDecodable as _,
};

use anyhow::anyhow;
use dns_xdp_common::{AnswerKey, AnswerSlot, DaemonStats};

use crate::{
    authority::Catalog,
    config::{AttachMode, Preload},
    counters::Counters,
    fastpath::FastPath,
    identity,
    prepared::PreparedAnswer,
    table::Placement,
    zone::{Reach, ZoneDiff},
};
use slot::answer_key;

/// How often the heartbeat and the daemon's counters are published.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(200);
/// A question inserted this recently is not inserted again: a query the fast
/// path passes for another reason (too big, EDNS options) would otherwise
/// cost a map update per query.
const REINSERT_AFTER: Duration = Duration::from_secs(1);
const RECENT_LIMIT: usize = 65_536;

/// Depth of the queue to the writer; when full, answers are simply not
/// cached (the next miss offers them again).
const QUEUE_DEPTH: usize = 16_384;

enum Command {
    /// An answer the daemon just sent, computed from catalog `generation`,
    /// to a query with the DO bit (`dnssec_ok`) or without.
    Insert {
        qname: Name,
        qtype: RecordType,
        dnssec_ok: bool,
        prepared: Arc<PreparedAnswer>,
        generation: u64,
    },
    /// A new catalog is live: make the map agree with it, then reply.
    Sync {
        catalog: Arc<Catalog>,
        generation: u64,
        preload: Vec<(Name, Preload)>,
        done: mpsc::SyncSender<SyncReport>,
    },
    /// Some zones changed: re-check the entries the changes can affect.
    SyncChanged {
        catalog: Arc<Catalog>,
        generation: u64,
        changes: Vec<ZoneChange>,
        preload: Vec<(Name, Preload)>,
        done: mpsc::SyncSender<SyncReport>,
    },
    /// Copies of the questions the table holds (for `dns-xdp cache list`).
    List {
        done: mpsc::SyncSender<Vec<CachedAnswer>>,
    },
    /// Removes the answers whose qname `select` picks; replies how many.
    Flush {
        select: NameFilter,
        done: mpsc::SyncSender<usize>,
    },
    Shutdown,
}

/// Picks the qnames a flush removes (e.g. those of one zone).
pub type NameFilter = Box<dyn Fn(&Name) -> bool + Send>;

/// One answer the table holds, as `dns-xdp cache list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedAnswer {
    pub qname: Name,
    pub qtype: RecordType,
    /// The answer to queries with the DO bit.
    pub dnssec_ok: bool,
    /// The RCODE of the prepared reply (the low four bits of the flags).
    pub rcode: u16,
    pub answers: u16,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SyncReport {
    pub updated: usize,
    pub removed: usize,
    pub preloaded: usize,
    /// Answers to preload that found no room in the table.
    pub left_out: usize,
    /// Entries whose answer was looked up and encoded again.
    pub checked: usize,
}

impl SyncReport {
    /// Writes to the table (rewrites, removals, new entries): what a sync
    /// cost the program's readers.
    pub fn table_writes(&self) -> usize {
        self.updated + self.removed + self.preloaded
    }
}

/// What differs between the catalog in the table (`old`) and the one
/// going live (`new`), zone by zone: nothing for a zone both hold the same
/// copy of; its difference's reach for a zone with a new version (`known`
/// when the caller has it, as after an IXFR, else compared RRset by
/// RRset); the whole zone for one added, removed or failed.
pub fn changes_between(old: &Catalog, new: &Catalog, known: Option<(&Name, &ZoneDiff)>) -> Vec<ZoneChange> {
    let origins: std::collections::BTreeSet<LowerName> =
        old.zones().chain(new.zones()).map(|zone| LowerName::new(zone.origin())).collect();
    let mut changes = Vec::new();
    for origin in origins {
        let origin = Name::from(origin);
        match (old.zone(&origin), new.zone(&origin)) {
            (Some(was), Some(is)) if Arc::ptr_eq(was, is) => {}
            (Some(was), Some(is)) => {
                let compared;
                let diff = match known {
                    Some((of, diff))
                        if *of == origin && diff.from_serial == was.serial() && diff.to_serial == is.serial() =>
                    {
                        diff
                    }
                    _ => {
                        compared = ZoneDiff::between(was, is);
                        &compared
                    }
                };
                if !diff.is_empty() {
                    changes.push(ZoneChange { reach: diff.reach(&origin), origin });
                }
            }
            _ => changes.push(ZoneChange::whole(&origin)),
        }
    }
    changes
}

/// What changed in one zone, for [`MapFeed::sync_changed`]: the names
/// whose answers can differ (see [`crate::zone::ZoneDiff::reach`]).
#[derive(Debug, Clone)]
pub struct ZoneChange {
    pub origin: Name,
    pub reach: Vec<(Name, Reach)>,
}

impl ZoneChange {
    /// Every answer of the zone may differ (a zone added, removed, failed).
    pub fn whole(origin: &Name) -> Self {
        Self { origin: origin.clone(), reach: vec![(origin.clone(), Reach::Subtree)] }
    }

    fn contains(&self, qname: &LowerName) -> bool {
        LowerName::new(&self.origin).zone_of(qname)
    }

    fn reaches(&self, qname: &LowerName) -> bool {
        self.reach.iter().any(|(name, reach)| {
            let name = LowerName::new(name);
            match reach {
                Reach::Name => name == *qname,
                Reach::Subtree => name.zone_of(qname),
            }
        })
    }
}

/// The handle through which the rest of the daemon reaches the writer
/// thread; cloned freely. The thread ends when [`MapFeed::shutdown`] is
/// called or every feed is gone.
#[derive(Clone)]
pub struct MapFeed {
    commands: mpsc::SyncSender<Command>,
}

impl MapFeed {
    /// Offers an answer the daemon just sent to a query with the DO bit
    /// (`dnssec_ok`) or without, computed from catalog `generation`. Never
    /// blocks the answer path: with the queue full the offer is dropped and
    /// only costs a miss.
    pub fn offer(
        &self,
        qname: Name,
        qtype: RecordType,
        dnssec_ok: bool,
        prepared: Arc<PreparedAnswer>,
        generation: u64,
    ) {
        let _ = self.commands.try_send(Command::Insert { qname, qtype, dnssec_ok, prepared, generation });
    }

    /// Makes the map agree with `catalog` (generation `generation`, now
    /// live) and waits until it does. Blocks: call it off the async runtime.
    pub fn sync(
        &self,
        catalog: Arc<Catalog>,
        generation: u64,
        preload: Vec<(Name, Preload)>,
    ) -> anyhow::Result<SyncReport> {
        let (done, report) = mpsc::sync_channel(1);
        self.commands
            .send(Command::Sync { catalog, generation, preload, done })
            .map_err(|_| anyhow!("the map writer has stopped"))?;
        report.recv().map_err(|_| anyhow!("the map writer stopped during the sync"))
    }

    /// [`MapFeed::sync`] limited to what `changes` can affect: only those
    /// entries are looked up again, and only those zones' parts preloaded.
    /// Blocks: call it off the async runtime.
    pub fn sync_changed(
        &self,
        catalog: Arc<Catalog>,
        generation: u64,
        changes: Vec<ZoneChange>,
        preload: Vec<(Name, Preload)>,
    ) -> anyhow::Result<SyncReport> {
        let (done, report) = mpsc::sync_channel(1);
        self.commands
            .send(Command::SyncChanged { catalog, generation, changes, preload, done })
            .map_err(|_| anyhow!("the map writer has stopped"))?;
        report.recv().map_err(|_| anyhow!("the map writer stopped during the sync"))
    }

    /// The questions the table holds now.
    pub fn list(&self) -> anyhow::Result<Vec<CachedAnswer>> {
        let (done, reply) = mpsc::sync_channel(1);
        self.commands.send(Command::List { done }).map_err(|_| anyhow!("the map writer has stopped"))?;
        reply.recv().map_err(|_| anyhow!("the map writer stopped while listing"))
    }

    /// Removes every answer whose qname `select` picks and waits until they
    /// are gone from the table; returns how many were removed. The next
    /// query for one is answered by the daemon, which offers it again.
    pub fn flush(&self, select: NameFilter) -> anyhow::Result<usize> {
        let (done, reply) = mpsc::sync_channel(1);
        self.commands.send(Command::Flush { select, done }).map_err(|_| anyhow!("the map writer has stopped"))?;
        reply.recv().map_err(|_| anyhow!("the map writer stopped during the flush"))
    }

    /// Asks the writer to stop; it detaches the program as it goes.
    pub fn shutdown(&self) {
        let _ = self.commands.send(Command::Shutdown);
    }
}

pub struct MapWriter {
    fast_path: FastPath,
    counters: Arc<Counters>,
    generation: u64,
    recent: HashMap<AnswerKey, Instant>,
    last_heartbeat: Instant,
    stats: DaemonStats,
    /// No heartbeat until the first sync is done: a table adopted from an
    /// earlier daemon answers for that daemon's last heartbeat only, so
    /// answers from before a zone change stop (the program passes queries
    /// up) rather than being kept alive while the sync rewrites them.
    heartbeat_held: bool,
}

impl MapWriter {
    pub fn new(fast_path: FastPath, counters: Arc<Counters>) -> Self {
        Self {
            heartbeat_held: fast_path.adoption() != crate::fastpath::Adoption::Fresh,
            fast_path,
            counters,
            generation: 0,
            recent: HashMap::new(),
            last_heartbeat: Instant::now(),
            stats: DaemonStats::default(),
        }
    }

    /// Starts the writer thread; the program stays attached until it ends.
    pub fn spawn(self) -> anyhow::Result<(MapFeed, std::thread::JoinHandle<()>)> {
        let (commands, queue) = mpsc::sync_channel(QUEUE_DEPTH);
        let thread = std::thread::Builder::new().name("map-writer".into()).spawn(move || self.run(queue))?;
        Ok((MapFeed { commands }, thread))
    }

    /// Runs until `Shutdown` or until every feed is gone; dropping `self`
    /// then detaches the program.
    fn run(mut self, commands: mpsc::Receiver<Command>) {
        loop {
            match commands.recv_timeout(HEARTBEAT_INTERVAL) {
                Ok(Command::Insert { qname, qtype, dnssec_ok, prepared, generation }) => {
                    if generation == self.generation {
                        self.insert(&qname, qtype, dnssec_ok, &prepared);
                    }
                }
                Ok(Command::Sync { catalog, generation, preload, done }) => {
                    let report = self.sync(&catalog, generation, &preload);
                    let _ = done.send(report);
                }
                Ok(Command::SyncChanged { catalog, generation, changes, preload, done }) => {
                    let report = self.sync_changed(&catalog, generation, &changes, &preload);
                    let _ = done.send(report);
                }
                Ok(Command::List { done }) => {
                    let _ = done.send(self.list());
                }
                Ok(Command::Flush { select, done }) => {
                    let _ = done.send(self.flush(&select));
                }
                Ok(Command::Shutdown) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            self.maybe_heartbeat();
            self.fast_path.drain_program_log();
        }
    }

    pub fn fast_path(&self) -> &FastPath {
        &self.fast_path
    }

    /// The fast path this writer feeds (tests and benchmarks run the
    /// program through it).
    pub fn fast_path_mut(&mut self) -> &mut FastPath {
        &mut self.fast_path
    }

    /// The slot for a CH identity question, when the server has an identity
    /// (the same answer with DO and without).
    fn identity_slot(&self, qname: &Name, qtype: RecordType, dnssec_ok: bool) -> Option<(AnswerKey, AnswerSlot)> {
        let answer = identity::lookup(qname, qtype, self.fast_path.identity())?;
        let prepared = PreparedAnswer::encode(qname, qtype, &answer).ok()?;
        slot::class_encode(qname, qtype, DNSClass::CH, dnssec_ok, &prepared)
    }

    pub fn attach(&mut self, mode: AttachMode) -> anyhow::Result<()> {
        self.fast_path.attach(mode)
    }

    fn maybe_heartbeat(&mut self) {
        if self.heartbeat_held || self.last_heartbeat.elapsed() < HEARTBEAT_INTERVAL {
            return;
        }
        self.heartbeat_now();
    }

    fn heartbeat_now(&mut self) {
        self.last_heartbeat = Instant::now();
        self.counters.snapshot_into(&mut self.stats);
        if let Err(err) = self.fast_path.heartbeat(&self.stats) {
            tracing::warn!("{err:#}");
        }
    }

    fn insert(&mut self, qname: &Name, qtype: RecordType, dnssec_ok: bool, prepared: &PreparedAnswer) -> bool {
        let Some((key, value)) = slot::encode(qname, qtype, dnssec_ok, prepared) else { return false };
        if let Some(at) = self.recent.get(&key)
            && at.elapsed() < REINSERT_AFTER
        {
            return false;
        }
        if self.recent.len() >= RECENT_LIMIT {
            self.recent.clear();
        }
        self.recent.insert(key, Instant::now());
        self.put(&value, true)
    }

    /// Writes an answer into the table; false if it found no room (only
    /// when `evict` is false).
    fn put(&mut self, value: &AnswerSlot, evict: bool) -> bool {
        let placed = self.fast_path.insert(value, evict);
        self.stats.map_entries = self.fast_path.len() as u64;
        match placed {
            Placement::Replaced | Placement::Added | Placement::Evicted(_) => {
                self.stats.map_inserts += 1;
                true
            }
            Placement::Full => {
                self.stats.map_no_room += 1;
                false
            }
        }
    }

    fn list(&self) -> Vec<CachedAnswer> {
        self.fast_path
            .entries()
            .iter()
            .filter_map(|entry| {
                let (qname, qtype, _) = question_of(entry)?;
                let header = entry.header();
                let dnssec_ok = entry.key.dnssec_ok != 0;
                Some(CachedAnswer { qname, qtype, dnssec_ok, rcode: header.flags & 0x000f, answers: header.ancount })
            })
            .collect()
    }

    /// Removes the entries `select` picks. Their keys are forgotten from
    /// `recent`, so the next miss puts them back at once rather than after
    /// [`REINSERT_AFTER`].
    fn flush(&mut self, select: &NameFilter) -> usize {
        let mut removed = 0;
        for entry in self.fast_path.entries() {
            // An entry whose qname does not parse cannot be attributed to a
            // zone: only a flush of everything removes it.
            let picked = match question_of(&entry) {
                Some((qname, _, _)) => select(&qname),
                None => select(&Name::root()),
            };
            if picked && self.fast_path.remove(&entry.key) {
                self.recent.remove(&entry.key);
                removed += 1;
            }
        }
        self.stats.map_entries = self.fast_path.len() as u64;
        removed
    }

    /// Rewrites every entry from `catalog`: entries whose answer changed are
    /// rewritten in their slot (a reader sees the old or the new answer,
    /// never a mix), entries no longer servable removed, then the preload
    /// set added.
    pub fn sync(&mut self, catalog: &Catalog, generation: u64, preload: &[(Name, Preload)]) -> SyncReport {
        self.generation = generation;
        let mut report = SyncReport::default();
        self.recent.clear();
        let entries = self.fast_path.entries();
        // Keys in the table that now hold the new catalog's answer.
        let mut fresh_keys = HashSet::with_capacity(entries.len());
        for old in &entries {
            if self.recheck(catalog, old, &mut report) {
                fresh_keys.insert(old.key);
            }
        }
        // The identity's CH TXT answers are always in the table (they are
        // few and never change while the daemon runs).
        for ((qname, qtype), dnssec_ok) in identity::table_questions().flat_map(|q| [(q.clone(), false), (q, true)]) {
            let Some((key, value)) = self.identity_slot(&qname, qtype, dnssec_ok) else { continue };
            if fresh_keys.contains(&key) {
                continue;
            }
            if self.put(&value, false) {
                report.preloaded += 1;
                fresh_keys.insert(key);
            } else {
                report.left_out += 1;
            }
        }
        self.preload(catalog, preload, &mut fresh_keys, &mut report, |_| true);
        self.finish_sync(&report);
        report
    }

    /// [`MapWriter::sync`] for `changes` only: an entry is looked up again
    /// when its qname is in a changed zone and its answer may have changed
    /// ([`may_have_changed`]: a change reaches a name it holds, or it
    /// depends on data no change can be traced to, as negative answers do).
    /// Every other entry is left alone, unread. The same order as `sync`:
    /// the catalog is live before this runs, each entry is rewritten in
    /// its slot, and the reply comes only when every affected entry agrees.
    pub fn sync_changed(
        &mut self,
        catalog: &Catalog,
        generation: u64,
        changes: &[ZoneChange],
        preload: &[(Name, Preload)],
    ) -> SyncReport {
        self.generation = generation;
        let mut report = SyncReport::default();
        self.recent.clear();
        let entries = self.fast_path.entries();
        let mut present = HashSet::with_capacity(entries.len());
        for old in &entries {
            let Some((qname, _, DNSClass::IN)) = question_of(old) else {
                present.insert(old.key);
                continue;
            };
            let lower = LowerName::new(&qname);
            let affected =
                changes.iter().any(|change| change.contains(&lower) && may_have_changed(old, &lower, change));
            if !affected || self.recheck(catalog, old, &mut report) {
                present.insert(old.key);
            }
        }
        let zones: Vec<(Name, Preload)> = preload
            .iter()
            .filter(|(origin, _)| changes.iter().any(|change| change.origin == *origin))
            .cloned()
            .collect();
        self.preload(catalog, &zones, &mut present, &mut report, |qname| {
            let lower = LowerName::new(qname);
            changes.iter().any(|change| change.contains(&lower) && change.reaches(&lower))
        });
        self.finish_sync(&report);
        report
    }

    /// Looks the entry's question up in `catalog` again and rewrites or
    /// removes it when the answer changed. True when the table now holds
    /// the catalog's answer for its key.
    fn recheck(&mut self, catalog: &Catalog, old: &AnswerSlot, report: &mut SyncReport) -> bool {
        let key = &old.key;
        self.maybe_heartbeat();
        report.checked += 1;
        let dnssec_ok = key.dnssec_ok != 0;
        let fresh = question_of(old)
            .and_then(|(qname, qtype, qclass)| match qclass {
                DNSClass::CH => self.identity_slot(&qname, qtype, dnssec_ok),
                _ => servable_slot(catalog, &qname, qtype, dnssec_ok),
            })
            .filter(|(new_key, _)| new_key == key);
        match fresh {
            Some((_, new)) if same_answer(&new, old) => true,
            // Rewritten in its slot: a reader sees the old or the new
            // answer, never a mix.
            Some((_, new)) => {
                self.put(&new, false);
                report.updated += 1;
                true
            }
            // No new answer for it: the old one must not stay.
            None => {
                self.fast_path.remove(key);
                report.removed += 1;
                false
            }
        }
    }

    /// Adds the preload set's questions that `wanted` picks and the table
    /// does not hold (`fresh_keys`).
    fn preload(
        &mut self,
        catalog: &Catalog,
        preload: &[(Name, Preload)],
        fresh_keys: &mut HashSet<AnswerKey>,
        report: &mut SyncReport,
        wanted: impl Fn(&Name) -> bool,
    ) {
        // Preloading never evicts: what does not fit is cached as it is
        // asked for, replacing answers not served lately. Each question is
        // preloaded with and without DO: validating resolvers, most of an
        // authoritative server's clients, set DO on every query, and in a
        // signed zone the two answers differ.
        for (origin, mode) in preload {
            if *mode == Preload::None {
                continue;
            }
            for (qname, qtype) in catalog.preload_questions(origin) {
                if !wanted(&qname) {
                    continue;
                }
                for dnssec_ok in [false, true] {
                    let Some(key) = answer_key(&qname, qtype, dnssec_ok) else { continue };
                    if fresh_keys.contains(&key) {
                        continue;
                    }
                    self.maybe_heartbeat();
                    let Some((key, value)) = servable_slot(catalog, &qname, qtype, dnssec_ok) else { continue };
                    if self.put(&value, false) {
                        report.preloaded += 1;
                        fresh_keys.insert(key);
                    } else {
                        report.left_out += 1;
                    }
                }
            }
        }
    }

    /// What every sync ends with: the warning when preloading found no
    /// room, the counters, the program enabled, the heartbeat released.
    fn finish_sync(&mut self, report: &SyncReport) {
        if report.left_out > 0 {
            tracing::warn!(
                left_out = report.left_out,
                slots = self.fast_path.capacity(),
                held = self.fast_path.len(),
                "the answer table has no room to preload every answer; the rest are cached as they are asked for (raise map_entries to about twice the answers to preload)"
            );
        }
        self.stats.map_entries = self.fast_path.len() as u64;
        if let Err(err) = self.fast_path.enable() {
            tracing::error!("{err:#}");
        }
        if self.heartbeat_held {
            self.heartbeat_held = false;
            self.heartbeat_now();
        }
    }
}

/// Whether an entry's answer may have changed with `change` (its qname
/// being in the changed zone): when the change reaches its qname, or any
/// other name the answer holds (the apex NS in authority, their addresses
/// in additional, and the NS targets), or when the answer depends on data
/// the change cannot be traced to: negative answers and referrals (their
/// SOA and proofs), CNAME/DNAME chains, answers whose targets get
/// additional processing (MX, NS, SRV, SVCB, HTTPS, NAPTR), and any other
/// authority record. A body that does not parse counts as changed.
fn may_have_changed(entry: &AnswerSlot, qname: &LowerName, change: &ZoneChange) -> bool {
    if change.reaches(qname) {
        return true;
    }
    let header = entry.header();
    if header.flags & 0x000f != 0 || header.ancount == 0 {
        return true;
    }
    // The message the slot's parts make: its compression pointers count
    // from the start of the header.
    let mut wire = Vec::with_capacity(12 + entry.qname().len() + 4 + entry.body().len());
    wire.extend_from_slice(&[0, 0]);
    wire.extend_from_slice(&header.flags.to_be_bytes());
    for count in [1, header.ancount, header.nscount, header.arcount] {
        wire.extend_from_slice(&count.to_be_bytes());
    }
    wire.extend_from_slice(entry.qname());
    wire.extend_from_slice(&entry.key.qtype.to_be_bytes());
    wire.extend_from_slice(&entry.key.qclass.to_be_bytes());
    wire.extend_from_slice(entry.body());
    let Ok(message) = Message::from_vec(&wire) else { return true };
    let origin = LowerName::new(&change.origin);
    let leaf = |record: &hickory_proto::rr::Record| {
        LowerName::new(&record.name) == *qname
            && !matches!(
                record.record_type(),
                RecordType::CNAME
                    | RecordType::DNAME
                    | RecordType::MX
                    | RecordType::NS
                    | RecordType::SRV
                    | RecordType::SVCB
                    | RecordType::HTTPS
                    | RecordType::NAPTR
            )
    };
    let apex_ns = |record: &hickory_proto::rr::Record| {
        LowerName::new(&record.name) == origin
            && (record.record_type() == RecordType::NS || hickory_proto::rr::RecordType::RRSIG == record.record_type())
    };
    if !message.answers.iter().all(leaf) || !message.authorities.iter().all(apex_ns) {
        return true;
    }
    let ns_targets = message.authorities.iter().filter_map(|record| match &record.data {
        hickory_proto::rr::RData::NS(ns) => Some(LowerName::new(&ns.0)),
        _ => None,
    });
    let other_names = message.additionals.iter().map(|record| LowerName::new(&record.name));
    ns_targets.chain(other_names).any(|name| change.reaches(&name))
}

/// The question an entry answers, rebuilt from the entry itself.
fn question_of(value: &AnswerSlot) -> Option<(Name, RecordType, DNSClass)> {
    let name = Name::from_bytes(value.qname()).ok()?;
    Some((name, RecordType::from(value.key.qtype), DNSClass::from(value.key.qclass)))
}

fn same_answer(a: &AnswerSlot, b: &AnswerSlot) -> bool {
    a.header() == b.header() && a.body() == b.body()
}

/// The catalog's answer to a class IN question as a slot, when the fast
/// path may serve it: the DO answer (RRSIGs, denial proofs) for
/// `dnssec_ok`, the plain one otherwise, each the bytes the daemon sends.
fn servable_slot(
    catalog: &Catalog,
    qname: &Name,
    qtype: RecordType,
    dnssec_ok: bool,
) -> Option<(AnswerKey, AnswerSlot)> {
    let answer = if dnssec_ok { catalog.lookup_dnssec(qname, qtype) } else { catalog.lookup(qname, qtype) };
    if !answer.fast_path_servable() {
        return None;
    }
    let prepared = PreparedAnswer::encode(qname, qtype, &answer).ok()?;
    slot::encode(qname, qtype, dnssec_ok, &prepared)
}
