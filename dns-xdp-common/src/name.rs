//! Case folding and hashing of wire-format names, identical on both sides.

/// ASCII lower-casing as DNS compares names (RFC 4343): only `A`..=`Z` fold.
/// Label length octets are at most 63, below `A`, so folding a whole
/// wire-format name byte by byte never alters its structure.
#[inline(always)]
pub const fn fold(byte: u8) -> u8 {
    if byte >= b'A' && byte <= b'Z' { byte | 0x20 } else { byte }
}

pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
pub const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// One FNV-1a step over an already folded byte.
#[inline(always)]
pub const fn hash_step(hash: u64, folded: u8) -> u64 {
    (hash ^ folded as u64).wrapping_mul(FNV_PRIME)
}

/// FNV-1a over the case-folded wire-format name. The XDP program computes
/// the same value byte by byte with [`hash_step`] while it parses the qname.
pub fn hash_lower(wire_name: &[u8]) -> u64 {
    let mut hash = FNV_OFFSET;
    for &b in wire_name {
        hash = hash_step(hash, fold(b));
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
    fn hash_ignores_case() {
        let lower = b"\x03www\x07example\x04test\x00";
        let mixed = b"\x03WwW\x07eXAMple\x04TEST\x00";
        assert_eq!(hash_lower(lower), hash_lower(mixed));
        assert_ne!(hash_lower(lower), hash_lower(b"\x03ww\x07example\x04test\x00"));
    }
}
