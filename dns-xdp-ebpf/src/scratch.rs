//! The per-CPU working memory (`DNS_SCRATCH`) and the ways the stages read
//! and launder values through it.

use dns_xdp_common::{MAX_QNAME_LEN, MAX_QUERY_LEN, cookie::COOKIE_OPTION_LEN};

pub const HEAD_BUF: usize = 512;
const MSG_MASK: usize = MAX_QUERY_LEN - 1;
pub const MSG_SHIFT: usize = 4;
pub const MSG_BUF: usize = MAX_QUERY_LEN + 8;
pub const QNAME_WORDS: usize = (MAX_QNAME_LEN + 1) / 8;
pub const DNS_HLEN: usize = 12;
const _: () = assert!((MSG_SHIFT + DNS_HLEN).is_multiple_of(8));
const _: () = assert!(MAX_QUERY_LEN.is_power_of_two());

/// Which of [`Scratch::carried`] holds what.
pub mod carried {
    pub const QNAME_LEN: usize = 0;
    pub const DNS_LEN: usize = 1;
    pub const HASH: usize = 2;
    pub const QUESTION_SUM: usize = 3;
    pub const QNAME_WORDS: usize = 4;
    /// The offsets and lengths below are laundered so the compiler keeps
    /// checks it can prove redundant: verifiers before 6.9 do not carry
    /// bounds through stack spills of scalars (no IDs on spill), so Debian
    /// 12's 6.1 rejects the program without them.
    pub const TRAILER_AT: usize = 5;
    pub const HEAD_PREFIX: usize = 6;
    pub const BODY_AT: usize = 7;
    pub const BODY_LEN: usize = 8;
    pub const NSID_LEN: usize = 9;
    /// Whether the query's OPT carries an NSID option (see `edns::parse`).
    pub const NSID_SEEN: usize = 10;
    /// The offset of the next EDNS option (see `edns::parse`).
    pub const EDNS_AT: usize = 11;
    /// The query's COOKIE option (see `edns::parse`): the offset of its
    /// data, and its length (0: none).
    pub const COOKIE_AT: usize = 12;
    pub const COOKIE_LEN: usize = 13;
    /// Bytes of `Scratch::cookie` the reply carries (0 or the option's
    /// length), and their checksum sum (see `cookie::check`).
    pub const COOKIE_OUT_LEN: usize = 14;
    pub const COOKIE_OUT_SUM: usize = 15;
    /// What the query's cookie was (`cookie::Cookie`), kept in memory until
    /// the verdict: a constant live in a register through the reply would
    /// have the verifier walk the reply once for each kind of cookie.
    pub const COOKIE_VERDICT: usize = 16;
    pub const COUNT: usize = 17;
}

#[repr(C)]
pub struct Scratch {
    /// The DNS message of the query, from `MSG_SHIFT` on: the qname then
    /// starts 8-aligned, so it can be read a word at a time.
    pub msg: [u8; MSG_BUF],
    /// The qname, case-folded, as little-endian words.
    pub lname: [u64; QNAME_WORDS],
    /// The query's headers up to the end of the question, while the frame
    /// is grown at the front.
    pub head: [u8; HEAD_BUF],
    /// Loop results passed through memory; see [`launder`] and [`carried`].
    pub carried: [u64; carried::COUNT],
    /// The COOKIE option of the reply: code, length, the client cookie and
    /// a fresh server cookie.
    pub cookie: [u8; COOKIE_OPTION_LEN],
}

/// The big-endian word at DNS offset `at` of the query in `msg`.
#[inline(always)]
pub fn be16(msg: &[u8; MSG_BUF], at: usize) -> u16 {
    u16::from_be_bytes([msg[(at & MSG_MASK) + MSG_SHIFT], msg[((at + 1) & MSG_MASK) + MSG_SHIFT]])
}

/// The byte at DNS offset `at` of the query in `msg`.
#[inline(always)]
pub fn byte(msg: &[u8; MSG_BUF], at: usize) -> u8 {
    msg[(at & MSG_MASK) + MSG_SHIFT]
}

/// Whether word `i` of the qname is past its end. The word count is re-read
/// from memory on every call: a count the compiler can reason about lets it
/// fold the loops' own `i < QNAME_WORDS` test into the exit and rewrite it
/// as `i != words`, which the verifier cannot see bounding the index.
#[inline(always)]
pub fn past_qname(words: &u64, i: usize) -> bool {
    // SAFETY: a valid, aligned u64 in per-CPU map memory.
    i as u64 >= unsafe { core::ptr::read_volatile(words) }
}

/// Returns `value` after a round trip through map memory the verifier does
/// not track. A loop with a data-dependent exit leaves a differently bounded
/// register behind for every iteration it can exit at; unless those copies
/// die at the exit, the verifier walks the rest of the program once per
/// exit. Re-reading the value makes every exit converge on one state.
/// Callers must bound the result again before using it as an index.
#[inline(always)]
pub fn launder(slot: &mut u64, value: u64) -> u64 {
    // SAFETY: `slot` is a valid, aligned u64 in per-CPU map memory.
    unsafe {
        core::ptr::write_volatile(slot, value);
        core::ptr::read_volatile(slot)
    }
}
