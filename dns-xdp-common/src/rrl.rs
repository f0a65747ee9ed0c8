//! Response rate limiting: the one policy the XDP program and the daemon
//! are to apply to answers, per source prefix (IPv4 /24 and IPv6 /56 by
//! default), over a fixed table of buckets, so memory does not grow with
//! the number of sources.
//!
//! Each bucket keeps one theoretical arrival time (GCRA, the virtual
//! scheduling form of a token bucket): an answer is due `interval` after
//! the previous one, and a source may run up to `burst` ahead of that
//! schedule. No division or floating point per packet, one `u64` of state
//! per prefix, and fixed work: what a BPF program can do.
//!
//! A prefix hashes to two buckets (two-choice, as Knot's KRU does with its
//! sketch): it uses the one already holding it, else takes the one idle
//! longer. A flood of new prefixes therefore replaces idle ones first, and
//! a prefix over its limit keeps its bucket because its schedule is ahead
//! of the clock.
//!
//! The XDP program keeps its table in the `DNS_RRL` map (one table the
//! CPUs share; concurrent updates of one bucket may lose an update, which
//! errs towards answering); the daemon keeps one of the same size for the
//! answers it sends itself, so a prefix gets at most the rate from each.

use crate::name::{FNV_OFFSET, FNV_PRIME};

/// Buckets in each table: 1.5 MiB, whatever the number of sources.
pub const RRL_BUCKETS: usize = 1 << 16;

/// An address as the exempt trie keys it: IPv6 as is, IPv4 as the
/// IPv4-mapped address `::ffff:a.b.c.d`, so one trie holds both families.
#[inline(always)]
pub const fn exempt_key_v4(addr: [u8; 4]) -> [u8; 16] {
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, addr[0], addr[1], addr[2], addr[3]]
}

/// The trie prefix length of an IPv4 prefix of `bits` in [`exempt_key_v4`]
/// form.
pub const EXEMPT_V4_OFFSET_BITS: u32 = 96;

/// What to do with one answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RrlAction {
    /// Within the limit: send it.
    Answer,
    /// Over the limit: send nothing.
    Drop,
    /// Over the limit, but every `slip`th such answer goes out truncated
    /// (TC=1, question only), so a real client behind a spoofed flood
    /// retries over TCP.
    Slip,
}

/// The policy, in the units the per-packet check uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RrlLimits {
    /// Nanoseconds between answers at the configured rate.
    pub interval_ns: u64,
    /// How far ahead of its schedule a prefix may run (the burst).
    pub burst_ns: u64,
    /// Every `slip`th answer over the limit is slipped; 0 never slips.
    pub slip: u32,
    /// Prefix lengths sources are grouped by.
    pub v4_prefix: u8,
    pub v6_prefix: u8,
}

impl RrlLimits {
    /// `rate` answers per second per prefix (at least 1), with a burst of
    /// one second's worth.
    pub const fn new(rate: u32, slip: u32, v4_prefix: u8, v6_prefix: u8) -> Self {
        let rate = if rate == 0 { 1 } else { rate as u64 };
        Self {
            interval_ns: 1_000_000_000 / rate,
            burst_ns: 1_000_000_000,
            slip,
            v4_prefix: if v4_prefix > 32 { 32 } else { v4_prefix },
            v6_prefix: if v6_prefix > 128 { 128 } else { v6_prefix },
        }
    }
}

/// One prefix's state.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RrlBucket {
    /// The prefix key ([`prefix_key`]) this bucket counts for; 0: free.
    pub key: u64,
    /// When the prefix's next answer is due (ns, the caller's clock).
    pub due_ns: u64,
    /// Answers over the limit since the bucket was taken (slip counter).
    pub over: u32,
    pub _pad: u32,
}
const _: () = assert!(core::mem::size_of::<RrlBucket>() == 24);

/// The key of the prefix `addr` belongs to: an IPv4 address (4 bytes) or
/// an IPv6 address (16 bytes) masked to the policy's prefix length, hashed
/// with the family. Never 0 (0 marks a free bucket).
pub fn prefix_key(addr: &[u8], limits: &RrlLimits) -> u64 {
    let (bits, family) = if addr.len() == 4 { (limits.v4_prefix, 4u64) } else { (limits.v6_prefix, 6u64) };
    let mut hash = FNV_OFFSET ^ family;
    let mut i = 0;
    while i < addr.len() && i < 16 {
        let kept = (bits as usize).saturating_sub(8 * i).min(8);
        let mask = if kept == 0 { 0 } else { 0xffu8 << (8 - kept) };
        hash = (hash ^ u64::from(addr[i] & mask)).wrapping_mul(FNV_PRIME);
        i += 1;
    }
    hash = (hash ^ u64::from(bits)).wrapping_mul(FNV_PRIME);
    if hash == 0 { 1 } else { hash }
}

/// The two buckets `key` may use in a table of `mask + 1` (a power of two).
pub const fn bucket_choices(key: u64, mask: usize) -> [usize; 2] {
    let first = key as usize & mask;
    let second = (key >> 32) as usize & mask;
    // Distinct when the table has room for two.
    let second = if second == first { (first + 1) & mask } else { second };
    [first, second]
}

/// Accounts one answer to `key` at `now_ns` in `table` (its length a power
/// of two) and says what to do with it.
pub fn account(table: &mut [RrlBucket], key: u64, now_ns: u64, limits: &RrlLimits) -> RrlAction {
    if table.is_empty() {
        return RrlAction::Answer;
    }
    let mask = table.len().next_power_of_two() - 1;
    let [a, b] = bucket_choices(key, mask);
    let (a, b) = (a.min(table.len() - 1), b.min(table.len() - 1));
    if a == b {
        let bucket = &mut table[a];
        if bucket.key != key {
            *bucket = RrlBucket { key, due_ns: now_ns, over: 0, _pad: 0 };
        }
        return account_bucket(bucket, now_ns, limits);
    }
    let (low, high) = table.split_at_mut(a.max(b));
    let (first, second) = if a < b { (&mut low[a], &mut high[0]) } else { (&mut high[0], &mut low[b]) };
    account_pair(first, second, key, now_ns, limits)
}

/// [`account`] on the two buckets [`bucket_choices`] gave for `key`, for a
/// caller that reaches them one at a time (the XDP program, through map
/// lookups).
pub fn account_pair(
    first: &mut RrlBucket,
    second: &mut RrlBucket,
    key: u64,
    now_ns: u64,
    limits: &RrlLimits,
) -> RrlAction {
    let bucket = if first.key == key {
        first
    } else if second.key == key {
        second
    } else {
        // Take the bucket whose schedule is furthest behind the clock: the
        // one idle longest, or free.
        let victim = if first.due_ns <= second.due_ns { first } else { second };
        *victim = RrlBucket { key, due_ns: now_ns, over: 0, _pad: 0 };
        victim
    };
    account_bucket(bucket, now_ns, limits)
}

/// The GCRA step on one bucket.
pub fn account_bucket(bucket: &mut RrlBucket, now_ns: u64, limits: &RrlLimits) -> RrlAction {
    let due = if bucket.due_ns < now_ns { now_ns } else { bucket.due_ns };
    if due - now_ns <= limits.burst_ns {
        bucket.due_ns = due + limits.interval_ns;
        return RrlAction::Answer;
    }
    bucket.over = bucket.over.wrapping_add(1);
    if limits.slip != 0 && bucket.over.is_multiple_of(limits.slip) { RrlAction::Slip } else { RrlAction::Drop }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec;
    use std::vec::Vec;

    use super::*;

    const SECOND: u64 = 1_000_000_000;

    fn limits(rate: u32, slip: u32) -> RrlLimits {
        RrlLimits::new(rate, slip, 24, 56)
    }

    /// Sends `per_second` answers a second, evenly, for `seconds` from
    /// `key`, starting at `start`; counts each action.
    fn flood(table: &mut [RrlBucket], key: u64, per_second: u64, seconds: u64, start: u64, l: &RrlLimits) -> [u64; 3] {
        let mut counts = [0; 3];
        for i in 0..per_second * seconds {
            let now = start + i * SECOND / per_second;
            counts[account(table, key, now, l) as usize] += 1;
        }
        counts
    }

    #[test]
    fn prefixes_group_sources_as_configured() {
        let l = limits(10, 2);
        let key = |a: &[u8]| prefix_key(a, &l);
        assert_eq!(key(&[198, 18, 0, 1]), key(&[198, 18, 0, 200]));
        assert_ne!(key(&[198, 18, 0, 1]), key(&[198, 18, 1, 1]));
        let mut v6 = [0u8; 16];
        v6[..2].copy_from_slice(&[0x20, 0x01]);
        let mut same = v6;
        same[7] = 0xff; // within the /56
        same[15] = 1;
        let mut other = v6;
        other[6] = 1; // beyond it
        assert_eq!(key(&v6), key(&same));
        assert_ne!(key(&v6), key(&other));
        // /20 for IPv4 groups the /24s of one /20.
        let wide = RrlLimits::new(10, 2, 20, 48);
        assert_eq!(prefix_key(&[198, 18, 1, 1], &wide), prefix_key(&[198, 18, 15, 1], &wide));
        assert_ne!(prefix_key(&[198, 18, 16, 1], &wide), prefix_key(&[198, 18, 15, 1], &wide));
    }

    #[test]
    fn a_prefix_gets_the_rate_plus_its_burst_and_every_nth_over_it_slips() {
        let l = limits(100, 2);
        let mut table = vec![RrlBucket::default(); 64];
        let key = prefix_key(&[198, 18, 0, 7], &l);
        // 5x the rate for 4 seconds.
        let [answered, dropped, slipped] = flood(&mut table, key, 500, 4, SECOND, &l);
        // 100/s for 4 s, plus one second of burst (and the first answer).
        assert!((499..=502).contains(&answered), "answered {answered}");
        assert_eq!(answered + dropped + slipped, 2000);
        assert_eq!(slipped, (2000 - answered) / 2, "every second answer over the limit slips");
    }

    #[test]
    fn tables_of_one_bucket_or_odd_sizes_still_limit() {
        let l = limits(10, 0);
        let key = prefix_key(&[192, 0, 2, 9], &l);
        for size in [1, 3, 1000] {
            let mut table = vec![RrlBucket::default(); size];
            let [answered, dropped, _] = flood(&mut table, key, 100, 2, 0, &l);
            assert!((29..=32).contains(&answered) && dropped > 0, "size {size}: answered {answered}");
        }
    }

    #[test]
    fn slip_zero_drops_all_and_one_slips_all() {
        let mut table = vec![RrlBucket::default(); 8];
        let l = limits(10, 0);
        let key = prefix_key(&[10, 0, 0, 1], &l);
        let [_, dropped, slipped] = flood(&mut table, key, 100, 2, 0, &l);
        assert!(dropped > 0 && slipped == 0);
        let l = limits(10, 1);
        let mut table = vec![RrlBucket::default(); 8];
        let [_, dropped, slipped] = flood(&mut table, key, 100, 2, 0, &l);
        assert!(slipped > 0 && dropped == 0);
    }

    #[test]
    fn within_the_rate_nothing_is_limited_and_others_are_unaffected() {
        let l = limits(100, 2);
        let mut table = vec![RrlBucket::default(); 64];
        let attacker = prefix_key(&[198, 18, 0, 7], &l);
        let client = prefix_key(&[198, 18, 9, 7], &l);
        for i in 0..4000u64 {
            let now = SECOND + i * SECOND / 1000;
            account(&mut table, attacker, now, &l);
            if i % 20 == 0 {
                // 50/s, half the rate, beside a flood at 10x.
                assert_eq!(account(&mut table, client, now, &l), RrlAction::Answer, "client at {i}");
            }
        }
    }

    #[test]
    fn a_limited_prefix_recovers_when_it_slows_down() {
        let l = limits(10, 2);
        let mut table = vec![RrlBucket::default(); 8];
        let key = prefix_key(&[192, 0, 2, 1], &l);
        flood(&mut table, key, 1000, 1, 0, &l);
        // At the limit: within the next 50 ms (half an interval) at most one
        // of ten is answered.
        let answered = (0..10).filter(|i| account(&mut table, key, SECOND + i * SECOND / 200, &l) == RrlAction::Answer);
        assert!(answered.count() <= 1);
        // Its schedule runs a second (the burst) ahead of the clock; once
        // the source is quiet for longer, a full burst is answered again.
        let [answered, _, _] = flood(&mut table, key, 100, 1, 3 * SECOND, &l);
        assert!(answered >= 10, "answered {answered} after a pause");
    }

    #[test]
    fn many_sources_do_not_grow_the_table_or_free_a_limited_prefix() {
        let l = limits(100, 2);
        let mut table = vec![RrlBucket::default(); 1024];
        let attacker = prefix_key(&[198, 18, 0, 7], &l);
        let mut answered = 0;
        // The attacker at 5x the rate, hidden among 100,000 one-off prefixes
        // (a spoofed flood) over 2 s.
        for i in 0..100_000u64 {
            let now = SECOND + i * 2 * SECOND / 100_000;
            // Each a /24 of its own.
            let spoofed = ((i as u32) << 8).to_be_bytes();
            account(&mut table, prefix_key(&[10 + spoofed[0], spoofed[1], spoofed[2], 1], &l), now, &l);
            if i % 100 == 0 && account(&mut table, attacker, now, &l) == RrlAction::Answer {
                answered += 1;
            }
        }
        assert_eq!(table.len(), 1024);
        // 1000 attempts in 2 s at a limit of 100/s plus 1 s of burst.
        assert!(answered <= 310, "the attacker got {answered} answers");
        let held: Vec<_> = table.iter().filter(|b| b.key == attacker).collect();
        assert_eq!(held.len(), 1, "the limited prefix kept its bucket");
    }
}
