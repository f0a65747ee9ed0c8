//! Case folding and hashing of wire-format names, identical on both sides.
//!
//! The XDP program handles a qname eight bytes at a time: it loads each
//! 8-byte word (little-endian), zeroes the bytes past the name's end, folds
//! the letters of all eight bytes at once and hashes the word. The daemon
//! computes the same key with [`hash_lower`].

/// ASCII lower-casing as DNS compares names (RFC 4343): only `A`..=`Z` fold.
/// Label length octets are at most 63, below `A`, so folding a whole
/// wire-format name byte by byte never alters its structure.
#[inline(always)]
pub const fn fold(byte: u8) -> u8 {
    if byte >= b'A' && byte <= b'Z' { byte | 0x20 } else { byte }
}

const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// [`fold`] applied to the eight bytes of a word at once, without branches
/// (a branch per byte would also split the BPF verifier's state per byte).
/// Per byte b: with h = b & 0x7f, h + 0x3f sets bit 7 iff h >= 'A', and
/// h + 0x25 sets bit 7 iff h > 'Z'; bytes with bit 7 already set are not
/// letters. The sums stay within their byte (at most 0x7f + 0x3f).
#[inline(always)]
pub const fn fold_word(word: u64) -> u64 {
    let low = word & LOW7;
    let at_least_a = low + 0x3f3f_3f3f_3f3f_3f3f;
    let above_z = low + 0x2525_2525_2525_2525;
    let upper = at_least_a & !above_z & !word & HIGH;
    word | (upper >> 2)
}

pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
pub const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// One step of the name hash over a folded word (FNV-1a style, a word at a
/// time). It is built for equality only, not spread: the answer table mixes
/// it before choosing slots ([`crate::AnswerKey::slots`]), and a collision
/// costs a miss, never a wrong answer.
#[inline(always)]
pub const fn hash_word(hash: u64, folded: u64) -> u64 {
    (hash ^ folded).wrapping_mul(FNV_PRIME)
}

/// Mask keeping the first `valid` bytes (1..=8) of a little-endian word.
#[inline(always)]
pub const fn word_mask(valid: usize) -> u64 {
    if valid >= 8 { u64::MAX } else { (1u64 << (8 * valid)) - 1 }
}

/// The key hash of a wire-format name: [`hash_word`] over its folded
/// little-endian words, the last one zero-padded.
pub fn hash_lower(wire_name: &[u8]) -> u64 {
    let mut hash = FNV_OFFSET;
    for chunk in wire_name.chunks(8) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        hash = hash_word(hash, fold_word(u64::from_le_bytes(word)));
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_touches_only_ascii_upper() {
        for b in 0..=255u8 {
            let expected = if b.is_ascii_uppercase() { b.to_ascii_lowercase() } else { b };
            assert_eq!(fold(b), expected, "byte {b:#x}");
        }
    }

    #[test]
    fn fold_word_equals_fold_per_byte_in_every_position() {
        for b in 0..=255u8 {
            for filler in [0u8, b'A', b'z', 0x5b, 0x40, 0xc1, 0xff] {
                for pos in 0..8 {
                    let mut bytes = [filler; 8];
                    bytes[pos] = b;
                    let expected = bytes.map(fold);
                    let got = fold_word(u64::from_le_bytes(bytes)).to_le_bytes();
                    assert_eq!(got, expected, "byte {b:#x} at {pos} among {filler:#x}");
                }
            }
        }
    }

    #[test]
    fn hash_ignores_case_and_sees_every_byte() {
        let lower = b"\x03www\x07example\x04test\x00";
        let mixed = b"\x03WwW\x07eXAMple\x04TEST\x00";
        assert_eq!(hash_lower(lower), hash_lower(mixed));
        assert_ne!(hash_lower(lower), hash_lower(b"\x03ww\x07example\x04test\x00"));
        assert_ne!(hash_lower(b"\x01a\x00"), hash_lower(b"\x01b\x00"));
    }

    #[test]
    fn word_mask_keeps_the_first_bytes() {
        assert_eq!(word_mask(1), 0xff);
        assert_eq!(word_mask(7), 0x00ff_ffff_ffff_ffff);
        assert_eq!(word_mask(8), u64::MAX);
    }
}
