//! Raw DNS message pieces for tests that need bytes hickory would refuse to
//! build (malformed queries) or must control exactly (spelling, counts).

/// A wire-format name from dotted presentation text ("www.Diff.Test." or
/// "."), without escapes; letter case is kept.
pub fn wire_name(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in text.trim_end_matches('.').split('.').filter(|l| !l.is_empty()) {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

/// A DNS message header: ID, flags word, QD/AN/NS/AR counts.
pub fn header(id: u16, flags: u16, counts: [u16; 4]) -> Vec<u8> {
    let mut out = id.to_be_bytes().to_vec();
    out.extend_from_slice(&flags.to_be_bytes());
    for c in counts {
        out.extend_from_slice(&c.to_be_bytes());
    }
    out
}

/// The spelling of `name` for variant `v`: lower case, upper case, or
/// alternating case (RFC 4343: answers must not depend on it).
pub fn spell(name: &str, v: usize) -> String {
    match v % 3 {
        0 => name.to_ascii_lowercase(),
        1 => name.to_ascii_uppercase(),
        _ => name
            .chars()
            .enumerate()
            .map(|(i, c)| if i % 2 == 0 { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() })
            .collect(),
    }
}
