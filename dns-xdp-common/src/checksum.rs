//! Internet checksum arithmetic (RFC 1071) in the pieces the fast path needs.
//!
//! The XDP program builds the UDP checksum of an answer from partial sums:
//! the pseudo-header, the rewritten UDP and DNS headers, the question it
//! walked, the precomputed body sum from the map, and the OPT record. A
//! partial sum of bytes that start at an odd offset of the message is the
//! byte-swapped sum of the same bytes taken from an even offset (RFC 1071
//! 2(B)), which is what [`at_offset`] applies.

/// Sum of `data` as big-endian 16-bit words from an even offset, unfolded.
/// A trailing odd byte counts as the high half of a word.
pub fn sum_bytes(data: &[u8]) -> u32 {
    let mut sum = 0u32;
    let mut chunks = data.chunks_exact(2);
    for pair in &mut chunks {
        sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    sum
}

/// Folds a 32-bit partial sum into 16 bits (end-around carry).
#[inline(always)]
pub const fn fold(mut sum: u32) -> u16 {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}

/// A partial sum taken from an even offset, moved to `offset` in the message.
#[inline(always)]
pub const fn at_offset(sum: u32, offset: usize) -> u32 {
    let folded = fold(sum);
    if offset & 1 == 1 { folded.swap_bytes() as u32 } else { folded as u32 }
}

/// The checksum field value for a folded total: its complement, with zero
/// sent as 0xffff (a zero UDP checksum means "none" in IPv4 and is invalid
/// in IPv6, RFC 768 and RFC 8200 8.1).
#[inline(always)]
pub const fn finish(sum: u32) -> u16 {
    let c = !fold(sum);
    if c == 0 { 0xffff } else { c }
}

/// The plain one's complement of a folded total, for checksums that have no
/// "zero means none" rule (the IPv4 header): unlike [`finish`], zero stays
/// zero, so a header built here is bit-for-bit what RFC 791 computes.
#[inline(always)]
pub const fn complement(sum: u32) -> u16 {
    !fold(sum)
}

/// Whether `sum`, taken over data that includes its checksum field, verifies:
/// the folded total of a correct checksum is all ones (RFC 1071 1(4)).
#[inline(always)]
pub const fn verifies(sum: u32) -> bool {
    fold(sum) == 0xffff
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Straightforward RFC 1071 checksum over a whole buffer.
    fn reference(data: &[u8]) -> u16 {
        finish(sum_bytes(data))
    }

    #[test]
    fn pieces_at_any_offset_add_up_to_the_whole() {
        let data: [u8; 37] = core::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(11));
        for split in 0..data.len() {
            let (a, b) = data.split_at(split);
            let total = at_offset(sum_bytes(a), 0) + at_offset(sum_bytes(b), split);
            assert_eq!(finish(total), reference(&data), "split at {split}");
        }
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: the sum of these words is ddf2 (folded).
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum_bytes(&data)), 0xddf2);
    }

    #[test]
    fn zero_checksum_is_sent_as_all_ones() {
        assert_eq!(finish(0xffff), 0xffff);
    }

    #[test]
    fn a_written_checksum_verifies() {
        let mut header = [0x45, 0, 0, 0x1c, 0x12, 0x34, 0x40, 0, 64, 17, 0, 0, 198, 18, 0, 2, 198, 18, 0, 1];
        let c = complement(sum_bytes(&header));
        header[10..12].copy_from_slice(&c.to_be_bytes());
        assert!(verifies(sum_bytes(&header)));
        header[15] ^= 1;
        assert!(!verifies(sum_bytes(&header)));
    }

    #[test]
    fn complement_keeps_zero() {
        assert_eq!(complement(0xffff), 0);
        assert_eq!(finish(0xffff), 0xffff);
    }
}
