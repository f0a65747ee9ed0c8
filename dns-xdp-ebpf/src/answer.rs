//! Stages 4 and 6: find the question's slot in `DNS_ANSWERS`, then read the
//! slot's lengths and trailer and compare the full name, while the daemon
//! may be rewriting the slot (see [`AnswerSlot`]'s docs for the protocol).

use dns_xdp_common::{ANSWER_DATA_LEN, ANSWER_LEN, AnswerKey, AnswerSlot, MAX_BODY_LEN, MAX_QNAME_LEN, Verdict, name};

use crate::{
    dns::Question,
    maps::DNS_ANSWERS,
    scratch::{QNAME_WORDS, Scratch, carried, launder, past_qname},
};

const CACHE_LINE: usize = 64;
/// Where `data` starts in a slot; the slots themselves start on a line.
const SLOT_DATA_OFFSET: usize = core::mem::offset_of!(AnswerSlot, data);
/// find touches the slot's first three lines.
const _: () = assert!(ANSWER_LEN >= 3 * CACHE_LINE && SLOT_DATA_OFFSET < CACHE_LINE);

/// The slot holding the answer to `key`: the first of its two slots whose
/// key matches, compared as two words. An empty slot's key has length zero
/// and matches no question.
#[inline(always)]
pub fn find(key: &AnswerKey, slot_mask: u32) -> Option<*mut AnswerSlot> {
    for index in key.slots(slot_mask) {
        let Some(slot) = DNS_ANSWERS.get_ptr_mut(index) else { continue };
        // SAFETY: a slot of the array; array memory is never freed.
        let answer = unsafe { &*slot };
        // Start the misses on the slot's second and third lines together
        // with the first, rather than one after another as the body and
        // trailer are reached: under a spread-out mix each is a trip to
        // memory.
        // SAFETY: aligned u64s inside the slot (its length is asserted above).
        unsafe {
            core::ptr::read_volatile(answer.data.as_ptr().add(CACHE_LINE - SLOT_DATA_OFFSET).cast::<u64>());
            core::ptr::read_volatile(answer.data.as_ptr().add(2 * CACHE_LINE - SLOT_DATA_OFFSET).cast::<u64>());
        }
        // SAFETY: aligned u64s of the slot.
        let (hash, tail) =
            unsafe { (core::ptr::read_volatile(&answer.key.name_hash), core::ptr::read_volatile(key_tail(answer))) };
        if hash == key.name_hash && tail == key.tail_word() {
            return Some(slot);
        }
    }
    None
}

/// The second word of a slot's key (qtype, qname length, padding).
#[inline(always)]
fn key_tail(answer: &AnswerSlot) -> *const u64 {
    (&answer.key.qtype as *const u16).cast()
}

/// A slot found for the question, its lengths read consistently.
pub struct Answer {
    pub slot: *mut AnswerSlot,
    /// 1..=MAX_BODY_LEN.
    pub body_len: usize,
    /// The trailer as read before the rest of the slot; the slot is
    /// untorn if `version` still equals it after the copy.
    pub trailer: u64,
}

/// Reads the slot's body length and trailer, checks the key again, and
/// compares the stored name with the question's (a hash match is not a
/// name match).
#[inline(always)]
pub fn read(slot: *mut AnswerSlot, question: &mut Question, scratch: &mut Scratch) -> Result<Answer, Verdict> {
    let qname_len = question.qname_len;
    // SAFETY: array slots are never freed, but the daemon may rewrite this
    // one while it is read (see AnswerSlot's docs): the key (compared by
    // find) and lengths, the trailer they locate, the key and lengths
    // again, then the rest, and `version` last; the trailer must equal
    // `version`. Every read of the slot is volatile (or a helper call) so
    // none moves across another.
    let answer = unsafe { &*slot };
    // SAFETY (all volatile reads below): valid, aligned fields of the slot.
    let body_len = unsafe { core::ptr::read_volatile(&answer.body_len) } as usize;
    if body_len == 0 || body_len > MAX_BODY_LEN {
        return Err(Verdict::DropInternal);
    }
    // Laundered (see `carried`): otherwise 6.1 sees an offset of up to 2048
    // into the slot and rejects the read.
    let trailer_at =
        launder(&mut scratch.carried[carried::TRAILER_AT], AnswerSlot::trailer_offset(qname_len, body_len) as u64)
            as usize;
    // Never true for lengths in range; it bounds the read for the verifier.
    // Compared as is, not as `trailer_at + 8`: the compiler turns that into a
    // range check on a copy, and before 6.11 the verifier does not carry
    // bounds from `r + const` back to `r`.
    if trailer_at > ANSWER_DATA_LEN - 8 {
        return Err(Verdict::DropInternal);
    }
    // SAFETY: in bounds (checked above) and 8-aligned: `data` is at an
    // 8-aligned offset of the value and the trailer offset is a multiple of 8.
    let trailer = unsafe { core::ptr::read_volatile(answer.data.as_ptr().add(trailer_at) as *const u64) };
    if unsafe { core::ptr::read_volatile(key_tail(answer)) } != question.key().tail_word()
        || unsafe { core::ptr::read_volatile(&answer.body_len) } as usize != body_len
    {
        return Err(Verdict::DropTorn);
    }
    launder(&mut scratch.carried[carried::QNAME_WORDS], qname_len.div_ceil(8) as u64);
    for i in 0..QNAME_WORDS {
        if past_qname(&scratch.carried[carried::QNAME_WORDS], i) {
            break;
        }
        // SAFETY: the qname starts `data`, at an 8-aligned offset of the
        // value, and `data` is longer than QNAME_WORDS words.
        let stored =
            unsafe { core::ptr::read_volatile(answer.data.as_ptr().add(8 * (i & (QNAME_WORDS - 1))) as *const u64) };
        // The body follows the qname in the same word.
        let stored = stored & name::word_mask(qname_len - 8 * i);
        if stored != scratch.lname[i & (QNAME_WORDS - 1)] {
            return Err(Verdict::PassCollision);
        }
    }
    // The loop leaves the qname length bounded differently at every exit
    // (each iteration's mask test narrows it); launder it, as the question
    // stage does, so the rest of the program is walked once, not once per
    // exit.
    let qname_len = launder(&mut scratch.carried[carried::QNAME_LEN], qname_len as u64) as usize & 0x1ff;
    if qname_len > MAX_QNAME_LEN {
        return Err(Verdict::DropInternal);
    }
    question.qname_len = qname_len;
    Ok(Answer { slot, body_len, trailer })
}
