//! The daemon's side of `DNS_ANSWERS`: a table of answer slots in a BPF
//! array the daemon maps into its memory and the XDP program reads.
//!
//! Why not the kernel's LRU hash map: a hash lookup costs a helper call, a
//! hash of the key and two cache misses (the bucket, then the element),
//! which together were a fifth of the fast path's time per answer. Here a
//! question has two possible slots, computed from its key
//! ([`AnswerKey::slots`]); the program reads the first (one miss), and the
//! second only when the first holds another question. The daemon places
//! answers cuckoo-style (moving an occupant to its other slot to make room),
//! which keeps every question placeable up to about half the slots in use,
//! and when both slots are taken it reuses the one not served since it was
//! last considered (the referenced bit that the kernel's LRU maps use too).
//!
//! The slots live in memory the program reads concurrently; see
//! [`AnswerSlot`] for the order in which a slot is written and read.

use std::{
    os::fd::AsFd as _,
    ptr::{self, NonNull},
    sync::atomic::{AtomicU64, Ordering, fence},
};

use anyhow::{Context as _, bail};
use aya::maps::MapData;
use dns_xdp_common::{ANSWER_LEN, AnswerKey, AnswerSlot};

/// How many occupants one insert may move along a chain of slots before it
/// gives up and replaces one. Chains this long are only needed near half
/// full; at a quarter full nearly every insert finds a free slot at once.
const MAX_MOVES: usize = 8;

/// Where an insert put the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// The question was in the table; its slot was rewritten.
    Replaced,
    /// In a free slot (after moving up to [`MAX_MOVES`] other answers).
    Added,
    /// Both of its slots were taken: this question's answer was dropped
    /// from the table to make room.
    Evicted(AnswerKey),
    /// No room, and the insert was told not to evict.
    Full,
}

pub struct AnswerTable {
    slots: NonNull<AnswerSlot>,
    slot_count: u32,
    mapped_len: usize,
    occupied: usize,
    /// Keeps the map (and so the mapping's backing) alive; `None` for the
    /// anonymous memory unit tests use.
    map: Option<MapData>,
}

// SAFETY: the table is only used from the thread that owns it; the raw
// pointer is to a shared mapping that outlives it (unmapped in Drop).
unsafe impl Send for AnswerTable {}

impl AnswerTable {
    /// Maps `map` (a BPF_F_MMAPABLE array of [`AnswerSlot`]s with a power of two
    /// entries) into memory. The kernel zeroes a new array: every slot
    /// starts empty.
    pub fn new(map: MapData) -> anyhow::Result<Self> {
        let info = map.info().context("reading DNS_ANSWERS' properties")?;
        let slot_count = info.max_entries();
        if info.value_size() as usize != ANSWER_LEN || !slot_count.is_power_of_two() {
            bail!(
                "DNS_ANSWERS has {} slots of {} bytes; expected a power of two of {ANSWER_LEN}",
                slot_count,
                info.value_size()
            );
        }
        let fd = std::os::fd::AsRawFd::as_raw_fd(&map.fd().as_fd());
        let mut table =
            Self::map_memory(slot_count, libc::MAP_SHARED, fd, Some(map)).context("mapping DNS_ANSWERS into memory")?;
        // A table adopted from an earlier daemon (pinned) already holds
        // answers; a new map's is all zero.
        table.occupied = (0..slot_count).filter(|slot| !table.is_free(*slot)).count();
        Ok(table)
    }

    /// A table in private zeroed memory, as a new map's: for unit tests of
    /// placement, which need no kernel.
    #[cfg(test)]
    fn anonymous(slot_count: u32) -> Self {
        Self::map_memory(slot_count, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, None).expect("anonymous mapping")
    }

    fn map_memory(slot_count: u32, flags: libc::c_int, fd: libc::c_int, map: Option<MapData>) -> anyhow::Result<Self> {
        let mapped_len = (slot_count as usize * ANSWER_LEN).next_multiple_of(page_size());
        // SAFETY: a fresh mapping; for a map's fd the kernel checks the
        // length and the map's flags.
        let addr = unsafe { libc::mmap(ptr::null_mut(), mapped_len, libc::PROT_READ | libc::PROT_WRITE, flags, fd, 0) };
        if addr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error().into());
        }
        let slots = NonNull::new(addr.cast::<AnswerSlot>()).context("mmap returned null")?;
        Ok(Self { slots, slot_count, mapped_len, occupied: 0, map })
    }

    /// The kernel's ID of the map (for `bpftool map dump id N`, or for a
    /// second handle on the same table); `None` for anonymous memory.
    pub fn map_id(&self) -> Option<u32> {
        self.map.as_ref()?.info().ok().map(|info| info.id())
    }

    /// The value of `DNS_CONFIG`'s `answer_slot_mask`.
    pub fn slot_mask(&self) -> u32 {
        self.slot_count - 1
    }

    pub fn slot_count(&self) -> u32 {
        self.slot_count
    }

    /// Slots holding an answer.
    pub fn len(&self) -> usize {
        self.occupied
    }

    pub fn is_empty(&self) -> bool {
        self.occupied == 0
    }

    /// Puts `value` in the table as the answer to its question
    /// (`value.key`), replacing the one there. With `evict` false, a
    /// question with no free slot (even after moving others) is left out;
    /// with `evict` true, a question is dropped to make room for it.
    pub fn insert(&mut self, value: &AnswerSlot, evict: bool) -> Placement {
        let key = &value.key;
        if let Some(slot) = self.find(key) {
            self.write(slot, value);
            return Placement::Replaced;
        }
        let candidates = key.slots(self.slot_mask());
        for slot in candidates {
            if self.is_free(slot) {
                self.write(slot, value);
                self.occupied += 1;
                return Placement::Added;
            }
        }
        for slot in candidates {
            if let Some(path) = self.path_to_free_slot(slot) {
                self.shift_along(&path);
                self.write(slot, value);
                self.occupied += 1;
                return Placement::Added;
            }
        }
        if !evict {
            return Placement::Full;
        }
        let victim_slot = self.victim(candidates);
        let victim = self.key_at(victim_slot);
        self.write(victim_slot, value);
        Placement::Evicted(victim)
    }

    /// Empties the slot holding `key`'s answer; false if it had none.
    pub fn remove(&mut self, key: &AnswerKey) -> bool {
        let Some(slot) = self.find(key) else { return false };
        let at = self.slot_ptr(slot);
        // SAFETY: `at` is a slot of the mapping; see AnswerSlot for the order.
        unsafe {
            ptr::write_volatile(&raw mut (*at).version, next_version());
            fence(Ordering::SeqCst);
            ptr::write_volatile(&raw mut (*at).key, EMPTY_KEY);
        }
        fence(Ordering::SeqCst);
        self.occupied -= 1;
        true
    }

    /// A copy of the answer held for `key`.
    pub fn get(&self, key: &AnswerKey) -> Option<AnswerSlot> {
        self.find(key).map(|slot| self.read(slot))
    }

    /// Copies of every answer in the table (each knows its question,
    /// `key`).
    pub fn entries(&self) -> Vec<AnswerSlot> {
        (0..self.slot_count).filter(|slot| !self.is_free(*slot)).map(|slot| self.read(slot)).collect()
    }

    fn find(&self, key: &AnswerKey) -> Option<u32> {
        key.slots(self.slot_mask()).into_iter().find(|slot| self.key_at(*slot) == *key)
    }

    fn is_free(&self, slot: u32) -> bool {
        self.key_at(slot).qname_len == 0
    }

    /// Slots from `start` along the chain of "the occupant's other slot",
    /// ending at a free one; `None` if none is reached in [`MAX_MOVES`].
    fn path_to_free_slot(&self, start: u32) -> Option<Vec<u32>> {
        let mut path = vec![start];
        let mut slot = start;
        for _ in 0..MAX_MOVES {
            let occupant = self.key_at(slot);
            let [first, second] = occupant.slots(self.slot_mask());
            let next = if first == slot { second } else { first };
            if path.contains(&next) {
                return None;
            }
            path.push(next);
            if self.is_free(next) {
                return Some(path);
            }
            slot = next;
        }
        None
    }

    /// Moves each occupant along `path` to the next slot, from the free end
    /// back, so that every answer is in one of its slots at every moment:
    /// a copy is written before its old slot is reused.
    fn shift_along(&mut self, path: &[u32]) {
        for pair in path.windows(2).rev() {
            let moved = self.read(pair[0]);
            self.write(pair[1], &moved);
        }
    }

    /// Which of the two taken slots to reuse: one whose answer was not served
    /// since it was written or last considered; when both were, both lose
    /// their mark and the first goes.
    fn victim(&mut self, candidates: [u32; 2]) -> u32 {
        for slot in candidates {
            // SAFETY: a byte of the mapping, which the program may set.
            if unsafe { ptr::read_volatile(&raw const (*self.slot_ptr(slot)).referenced) } == 0 {
                return slot;
            }
        }
        for slot in candidates {
            // SAFETY: as above.
            unsafe { ptr::write_volatile(&raw mut (*self.slot_ptr(slot)).referenced, 0) };
        }
        candidates[0]
    }

    fn slot_ptr(&self, slot: u32) -> *mut AnswerSlot {
        assert!(slot < self.slot_count);
        // SAFETY: in bounds of the mapping, which holds slot_count slots.
        unsafe { self.slots.as_ptr().add(slot as usize) }
    }

    fn key_at(&self, slot: u32) -> AnswerKey {
        // SAFETY: a key in the mapping; only this thread writes keys.
        unsafe { ptr::read_volatile(&raw const (*self.slot_ptr(slot)).key) }
    }

    fn read(&self, slot: u32) -> AnswerSlot {
        // SAFETY: a whole slot of the mapping. Only the referenced byte may
        // change under the read (the program sets it).
        unsafe { ptr::read_volatile(self.slot_ptr(slot)) }
    }

    /// Writes `value` into `slot` with a new version: the version first, the
    /// trailer last, fences between (see [`AnswerSlot`]).
    fn write(&mut self, slot: u32, value: &AnswerSlot) {
        let version = next_version();
        let mut value = *value;
        value.referenced = 0;
        let trailer_at = core::mem::offset_of!(AnswerSlot, data)
            + AnswerSlot::trailer_offset(value.qname().len(), value.body().len());
        let at = self.slot_ptr(slot);
        // SAFETY: `at` is a slot of the mapping and every offset is within
        // it: the trailer ends inside `data`.
        unsafe {
            ptr::write_volatile(&raw mut (*at).version, version);
            fence(Ordering::SeqCst);
            // Everything between `version` and the trailer, from the value.
            let src = (&raw const value).cast::<u8>();
            let dst = at.cast::<u8>();
            let from = core::mem::size_of::<u64>();
            ptr::copy_nonoverlapping(src.add(from), dst.add(from), trailer_at - from);
            fence(Ordering::SeqCst);
            ptr::write_volatile(dst.add(trailer_at).cast::<u64>(), version);
        }
        fence(Ordering::SeqCst);
    }
}

impl Drop for AnswerTable {
    fn drop(&mut self) {
        // SAFETY: the mapping made in new(), unmapped once.
        unsafe { libc::munmap(self.slots.as_ptr().cast(), self.mapped_len) };
    }
}

const EMPTY_KEY: AnswerKey = AnswerKey { name_hash: 0, qtype: 0, qname_len: 0, qclass: 0, dnssec_ok: 0 };

/// A number for each slot write, so the fast path can tell a slot rewritten
/// while it read it (see [`AnswerSlot`]). Unique: a counter times an odd
/// constant is a bijection on 64 bits, and never zero. Spread over all 64
/// bits: the trailer's position depends on the lengths, so the bytes a torn
/// read finds there may be another value's qname or body, and a small
/// counter (mostly zero bytes) would be a plausible pattern in those.
fn next_version() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).ok().filter(|s| *s > 0).unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use dns_xdp_common::{AnswerHeader, name};

    use super::*;

    fn question(i: u32, qtype: u16) -> (AnswerKey, AnswerSlot) {
        let label = format!("q{i}");
        let mut wire = vec![label.len() as u8];
        wire.extend_from_slice(label.as_bytes());
        wire.extend_from_slice(b"\x07example\x00");
        let key = AnswerKey {
            name_hash: name::hash_lower(&wire),
            qtype,
            qname_len: wire.len() as u16,
            qclass: dns_xdp_common::CLASS_IN,
            dnssec_ok: 0,
        };
        let header = AnswerHeader { flags: 0x8400, ancount: 1, nscount: 0, arcount: 0 };
        let body = i.to_be_bytes();
        (key, AnswerSlot::new(0, key, header, &wire, &body).expect("fits"))
    }

    fn served(table: &AnswerTable, key: &AnswerKey) -> Option<u32> {
        let value = table.get(key)?;
        assert_eq!(value.version, value.trailer(), "a slot's version and trailer must agree");
        Some(u32::from_be_bytes(value.body().try_into().expect("4-byte body")))
    }

    #[test]
    fn every_question_fits_up_to_nearly_half_the_slots() {
        let mut table = AnswerTable::anonymous(4096);
        let questions: Vec<_> = (0..1900).map(|i| question(i, 1)).collect();
        for (_, value) in &questions {
            assert_eq!(table.insert(value, false), Placement::Added);
        }
        assert_eq!(table.len(), questions.len());
        // Moves along the way kept every answer findable and intact.
        for (i, (key, _)) in questions.iter().enumerate() {
            assert_eq!(served(&table, key), Some(i as u32), "question {i}");
        }
        assert_eq!(table.entries().len(), questions.len());
    }

    #[test]
    fn rewriting_a_question_replaces_its_answer_in_place() {
        let mut table = AnswerTable::anonymous(64);
        let (key, value) = question(1, 1);
        let (_, other) = question(2, 1);
        assert_eq!(table.insert(&value, false), Placement::Added);
        let mut changed = value;
        changed.body_mut().copy_from_slice(&other.body()[..4]);
        assert_eq!(table.insert(&changed, false), Placement::Replaced);
        assert_eq!(served(&table, &key), Some(2));
        assert_eq!(table.len(), 1);
        // Another type of the same name is another question.
        let (_, aaaa_value) = question(1, 28);
        assert_eq!(table.insert(&aaaa_value, false), Placement::Added);
        assert_eq!(table.len(), 2);
    }

    #[test]
    fn removed_questions_are_gone_and_their_slots_reused() {
        let mut table = AnswerTable::anonymous(8);
        let (key, value) = question(1, 1);
        table.insert(&value, false);
        assert!(table.remove(&key));
        assert!(!table.remove(&key));
        assert_eq!(table.get(&key).map(|_| ()), None);
        assert!(table.is_empty());
        assert!(table.entries().is_empty());
        assert_eq!(table.insert(&value, false), Placement::Added);
    }

    #[test]
    fn a_full_table_replaces_an_answer_not_served_since_it_was_written() {
        // Two slots: every question's two choices are the same two.
        let mut table = AnswerTable::anonymous(2);
        let (first, first_value) = question(1, 1);
        let (second, second_value) = question(2, 1);
        let (third, third_value) = question(3, 1);
        table.insert(&first_value, true);
        table.insert(&second_value, true);
        assert_eq!(table.insert(&third_value, false), Placement::Full);
        // The fast path marks the first as served.
        let slot = table.find(&first).expect("present");
        // SAFETY: a byte of a slot of the table's memory.
        unsafe { ptr::write_volatile(&raw mut (*table.slot_ptr(slot)).referenced, 1) };
        assert_eq!(table.insert(&third_value, true), Placement::Evicted(second));
        assert_eq!(served(&table, &first), Some(1));
        assert_eq!(served(&table, &third), Some(3));
        assert_eq!(table.get(&second).map(|_| ()), None);
        // Neither is marked now: the next newcomer takes one of them, and
        // the table still holds two answers.
        let (fourth, fourth_value) = question(4, 1);
        assert!(matches!(table.insert(&fourth_value, true), Placement::Evicted(_)));
        assert_eq!(table.len(), 2);
        assert_eq!(served(&table, &fourth), Some(4));
    }

    #[test]
    fn a_written_slot_ends_with_its_version() {
        let mut table = AnswerTable::anonymous(16);
        let (key, value) = question(7, 1);
        table.insert(&value, false);
        let first = table.get(&key).expect("present");
        table.insert(&value, false);
        let second = table.get(&key).expect("present");
        assert_eq!(first.version, first.trailer());
        assert_eq!(second.version, second.trailer());
        assert_ne!(first.version, second.version, "each write gets its own version");
    }
}
