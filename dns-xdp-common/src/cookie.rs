//! DNS cookies (RFC 7873) with the interoperable server cookie of RFC 9018,
//! the one definition both the daemon and the XDP program use: SipHash-2-4,
//! the cookie's layout, and the rule for which cookies are valid.
//!
//! A server cookie is version (1), three reserved bytes, a 32-bit timestamp
//! (seconds since the epoch, serial-number arithmetic) and an 8-byte
//! SipHash-2-4, keyed with the server secret, over the client cookie, the
//! version, reserved and timestamp bytes as sent, and the client's address
//! (4 bytes for IPv4, 16 for IPv6). Every PoP with the same secret issues
//! and accepts the same cookies.
//!
//! Everything here is `no_std`, allocation-free and made of loops with
//! constant bounds, so that the program can call it: the hash input is a
//! fixed-size array ([`HashInput`]) rather than a slice.

/// Length of a client cookie (RFC 7873 4.1).
pub const CLIENT_COOKIE_LEN: usize = 8;
/// Length of an RFC 9018 server cookie.
pub const SERVER_COOKIE_LEN: usize = 16;
/// Length of the COOKIE option data the server sends: client cookie echoed,
/// then its server cookie.
pub const COOKIE_DATA_LEN: usize = CLIENT_COOKIE_LEN + SERVER_COOKIE_LEN;
/// The whole COOKIE option the server sends: code, length, data.
pub const COOKIE_OPTION_LEN: usize = 4 + COOKIE_DATA_LEN;
/// Length of a server secret (SipHash-2-4's key).
pub const SECRET_LEN: usize = 16;
/// The server cookie version RFC 9018 defines.
pub const VERSION: u8 = 1;
/// A server cookie older than this is not valid (RFC 9018 4.3).
pub const MAX_AGE_SECS: u32 = 3600;
/// A server cookie from further in the future than this is not valid
/// (RFC 9018 4.3: clocks of the PoPs may disagree a little).
pub const MAX_FUTURE_SECS: u32 = 300;

/// Whether a COOKIE option of `len` data bytes is well formed (RFC 7873
/// 5.2.1): a client cookie alone, or with a server cookie of 8 to 32
/// bytes. Anything else is FORMERR.
#[inline(always)]
pub const fn well_formed_len(len: usize) -> bool {
    len == CLIENT_COOKIE_LEN || (len >= CLIENT_COOKIE_LEN + 8 && len <= CLIENT_COOKIE_LEN + 32)
}

/// SipHash-2-4 of the `N` bytes of `data` under `key` (Aumasson and
/// Bernstein, "SipHash: a fast short-input PRF", 2012). `N` is a constant,
/// so every loop is bounded for the verifier.
#[inline(always)]
pub fn siphash24<const N: usize>(key: &[u8; SECRET_LEN], data: &[u8; N]) -> u64 {
    let k0 = le64(key, 0);
    let k1 = le64(key, 8);
    let mut v = [
        k0 ^ 0x736f_6d65_7073_6575,
        k1 ^ 0x646f_7261_6e64_6f6d,
        k0 ^ 0x6c79_6765_6e65_7261,
        k1 ^ 0x7465_6462_7974_6573,
    ];
    let mut i = 0;
    while i < N / 8 {
        let m = le64(data, 8 * i);
        v[3] ^= m;
        sip_round(&mut v);
        sip_round(&mut v);
        v[0] ^= m;
        i += 1;
    }
    // The last block: the remaining bytes, and the length's low byte on top.
    let mut last = ((N & 0xff) as u64) << 56;
    let mut j = 0;
    while j < N % 8 {
        last |= (data[N / 8 * 8 + j] as u64) << (8 * j);
        j += 1;
    }
    v[3] ^= last;
    sip_round(&mut v);
    sip_round(&mut v);
    v[0] ^= last;
    v[2] ^= 0xff;
    sip_round(&mut v);
    sip_round(&mut v);
    sip_round(&mut v);
    sip_round(&mut v);
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

#[inline(always)]
fn sip_round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13) ^ v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16) ^ v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21) ^ v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17) ^ v[2];
    v[2] = v[2].rotate_left(32);
}

#[inline(always)]
fn le64<const N: usize>(bytes: &[u8; N], at: usize) -> u64 {
    let mut word = 0u64;
    let mut i = 0;
    while i < 8 {
        word |= (bytes[at + i] as u64) << (8 * i);
        i += 1;
    }
    word
}

/// The bytes a server cookie's hash covers, for a client of either family:
/// client cookie, version, reserved, timestamp, then the address. The
/// length is the family's, each a constant.
pub enum HashInput {
    V4([u8; 16 + 4]),
    V6([u8; 16 + 16]),
}

impl HashInput {
    /// `head` is the client cookie, version, reserved and timestamp bytes.
    #[inline(always)]
    pub fn new(head: &[u8; 16], client: &ClientAddr) -> Self {
        match client {
            ClientAddr::V4(addr) => {
                let mut input = [0u8; 20];
                input[..16].copy_from_slice(head);
                input[16..].copy_from_slice(addr);
                Self::V4(input)
            }
            ClientAddr::V6(addr) => {
                let mut input = [0u8; 32];
                input[..16].copy_from_slice(head);
                input[16..].copy_from_slice(addr);
                Self::V6(input)
            }
        }
    }

    #[inline(always)]
    pub fn hash(&self, secret: &[u8; SECRET_LEN]) -> u64 {
        match self {
            Self::V4(input) => siphash24(secret, input),
            Self::V6(input) => siphash24(secret, input),
        }
    }
}

/// The client's address as the hash covers it: an IPv4 client (IPv4 on the
/// wire, or IPv4-mapped on a dual-stack socket) by its 4 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAddr {
    V4([u8; 4]),
    V6([u8; 16]),
}

/// The server's secrets: the one it issues cookies with, and the one before
/// it, still accepted during a roll-over and never issued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Secrets {
    pub current: [u8; SECRET_LEN],
    pub previous: Option<[u8; SECRET_LEN]>,
}

/// The server cookie for `client_cookie` from `client` at `now` (seconds),
/// made with `secret`: version 1, reserved zero, the timestamp, the hash.
#[inline(always)]
pub fn server_cookie(
    secret: &[u8; SECRET_LEN],
    client_cookie: &[u8; CLIENT_COOKIE_LEN],
    client: &ClientAddr,
    now: u32,
) -> [u8; SERVER_COOKIE_LEN] {
    let mut head = [0u8; 16];
    head[..8].copy_from_slice(client_cookie);
    head[8] = VERSION;
    head[12..16].copy_from_slice(&now.to_be_bytes());
    let hash = HashInput::new(&head, client).hash(secret);
    let mut cookie = [0u8; SERVER_COOKIE_LEN];
    cookie[..8].copy_from_slice(&head[8..]);
    cookie[8..].copy_from_slice(&hash.to_le_bytes());
    cookie
}

/// The COOKIE option data the server answers with: the client cookie and a
/// fresh server cookie. The server issues a new cookie with every answer
/// (RFC 9018 4.3 allows it; the fast path and the daemon then agree
/// without either reading the age of the cookie it got).
#[inline(always)]
pub fn answer_data(
    secret: &[u8; SECRET_LEN],
    client_cookie: &[u8; CLIENT_COOKIE_LEN],
    client: &ClientAddr,
    now: u32,
) -> [u8; COOKIE_DATA_LEN] {
    let mut data = [0u8; COOKIE_DATA_LEN];
    data[..8].copy_from_slice(client_cookie);
    data[8..].copy_from_slice(&server_cookie(secret, client_cookie, client, now));
    data
}

/// Whether a timestamp is within the window RFC 9018 4.3 accepts at `now`:
/// no more than an hour old, no more than five minutes ahead, compared as
/// serial numbers (RFC 1982) so the window survives the wrap in 2106.
#[inline(always)]
pub const fn fresh(timestamp: u32, now: u32) -> bool {
    let age = now.wrapping_sub(timestamp) as i32;
    age <= MAX_AGE_SECS as i32 && age >= -(MAX_FUTURE_SECS as i32)
}

/// Whether `cookie` (the client cookie then a 16-byte server cookie, as
/// received) is one this server issued to `client` with `secret`, still
/// fresh at `now`. The hash covers the reserved bytes as received (RFC
/// 9018 4.2).
#[inline(always)]
pub fn valid_with(secret: &[u8; SECRET_LEN], cookie: &[u8; COOKIE_DATA_LEN], client: &ClientAddr, now: u32) -> bool {
    if cookie[8] != VERSION {
        return false;
    }
    let timestamp = u32::from_be_bytes([cookie[12], cookie[13], cookie[14], cookie[15]]);
    if !fresh(timestamp, now) {
        return false;
    }
    let mut head = [0u8; 16];
    head.copy_from_slice(&cookie[..16]);
    let hash = HashInput::new(&head, client).hash(secret);
    le64(cookie, 16) == hash
}

/// What a query's COOKIE option is, once its length is well formed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// A client cookie alone (RFC 7873 5.2.2).
    ClientOnly,
    /// A server cookie this server (or another PoP with the secret) issued,
    /// still fresh (RFC 7873 5.2.4).
    Valid,
    /// A server cookie this server did not issue, or a stale one (RFC 7873
    /// 5.2.3).
    Invalid,
}

/// Classifies the data of a well-formed COOKIE option (see
/// [`well_formed_len`]) from `client` at `now`: valid when made with the
/// current or the previous secret.
pub fn classify(secrets: &Secrets, data: &[u8], client: &ClientAddr, now: u32) -> Received {
    if data.len() == CLIENT_COOKIE_LEN {
        return Received::ClientOnly;
    }
    let Ok(cookie) = <&[u8; COOKIE_DATA_LEN]>::try_from(data) else { return Received::Invalid };
    let valid = valid_with(&secrets.current, cookie, client, now)
        || secrets.previous.is_some_and(|previous| valid_with(&previous, cookie, client, now));
    if valid { Received::Valid } else { Received::Invalid }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex<const N: usize>(text: &str) -> [u8; N] {
        assert_eq!(text.len(), 2 * N, "{text}");
        let mut out = [0u8; N];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).expect("hex");
        }
        out
    }

    const KEY: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];

    #[test]
    fn siphash_matches_the_paper() {
        // Appendix A of the SipHash paper: key 00..0f, message 00..0e.
        let message: [u8; 15] = core::array::from_fn(|i| i as u8);
        assert_eq!(siphash24(&KEY, &message), 0xa129_ca61_49be_45e5);
        // The reference implementation's vectors.h, first and last of 64.
        assert_eq!(siphash24(&KEY, &[]).to_le_bytes(), [0x31, 0x0e, 0x0e, 0xdd, 0x47, 0xdb, 0x6f, 0x72]);
        let message: [u8; 63] = core::array::from_fn(|i| i as u8);
        assert_eq!(siphash24(&KEY, &message).to_le_bytes(), [0x72, 0x45, 0x06, 0xeb, 0x4c, 0x32, 0x8a, 0x95]);
    }

    macro_rules! against_siphasher {
        ($($n:literal)+) => {$({
            use core::hash::Hasher;
            let message: [u8; $n] = core::array::from_fn(|i| (i * 7 + 3) as u8);
            let mut reference = siphasher::sip::SipHasher24::new_with_key(&KEY);
            reference.write(&message);
            assert_eq!(siphash24(&KEY, &message), reference.finish(), "{} bytes", $n);
        })+};
    }

    #[test]
    fn siphash_matches_the_siphasher_crate_at_every_length_up_to_40() {
        against_siphasher!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32
            33 34 35 36 37 38 39 40);
    }

    const SECRET_A: &str = "e5e973e5a6b2a43f48e7dc849e37bfcf";

    #[test]
    fn rfc9018_a1_learning_a_new_server_cookie() {
        let client = ClientAddr::V4([198, 51, 100, 100]);
        let cookie = server_cookie(&hex(SECRET_A), &hex("2464c4abcf10c957"), &client, 1_559_731_985);
        assert_eq!(cookie, hex::<16>("010000005cf79f111f8130c3eee29480"));
    }

    #[test]
    fn rfc9018_a2_the_same_client_renewing_it() {
        let secrets = Secrets { current: hex(SECRET_A), previous: None };
        let client = ClientAddr::V4([198, 51, 100, 100]);
        let received = hex::<24>("2464c4abcf10c957010000005cf79f111f8130c3eee29480");
        // 40 minutes after it was issued: still valid.
        assert_eq!(classify(&secrets, &received, &client, 1_559_734_385), Received::Valid);
        let fresh = answer_data(&secrets.current, &hex("2464c4abcf10c957"), &client, 1_559_734_385);
        assert_eq!(fresh, hex::<24>("2464c4abcf10c957010000005cf7a871d4a564a1442aca77"));
    }

    #[test]
    fn rfc9018_a3_reserved_bytes_count_in_the_hash() {
        let secrets = Secrets { current: hex(SECRET_A), previous: None };
        let client = ClientAddr::V4([203, 0, 113, 203]);
        let received = hex::<24>("fc93fc62807ddb8601abcdef5cf78f71a314227b6679ebf5");
        // Issued at 1559727985; the example's answer comes 1h52m later,
        // past the hour this server accepts, so its hash is checked at
        // issue time.
        assert_eq!(classify(&secrets, &received, &client, 1_559_727_985), Received::Valid);
        assert_eq!(classify(&secrets, &received, &client, 1_559_734_700), Received::Invalid, "stale");
        let mut cleared = received;
        cleared[9..12].fill(0);
        assert_eq!(classify(&secrets, &cleared, &client, 1_559_727_985), Received::Invalid);
        let fresh = answer_data(&secrets.current, &hex("fc93fc62807ddb86"), &client, 1_559_734_700);
        assert_eq!(fresh, hex::<24>("fc93fc62807ddb86010000005cf7a9acf73a7810aca2381e"));
    }

    #[test]
    fn rfc9018_a4_ipv6_with_a_rolled_over_secret() {
        let old = hex("dd3bdf9344b678b185a6f5cb60fca715");
        let new = hex("445536bcd2513298075a5d379663c962");
        let client = ClientAddr::V6(hex("20010db80220000159ded0f4876982b8"));
        let received = hex::<24>("22681ab97d52c298010000005cf7c57926556bd0934c72f8");
        let now = 1_559_741_961;
        assert_eq!(classify(&Secrets { current: new, previous: Some(old) }, &received, &client, now), Received::Valid);
        assert_eq!(classify(&Secrets { current: new, previous: None }, &received, &client, now), Received::Invalid);
        let fresh = answer_data(&new, &hex("22681ab97d52c298"), &client, now);
        assert_eq!(fresh, hex::<24>("22681ab97d52c298010000005cf7c609a6bb79d16625507a"));
    }

    #[test]
    fn a_cookie_is_valid_for_an_hour_and_five_minutes_early() {
        let secrets = Secrets { current: KEY, previous: None };
        let client = ClientAddr::V4([198, 18, 0, 2]);
        let issued = 1_700_000_000u32;
        let data = answer_data(&KEY, &[7; 8], &client, issued);
        for (now, expect) in [
            (issued, Received::Valid),
            (issued + 3600, Received::Valid),
            (issued + 3601, Received::Invalid),
            (issued - 300, Received::Valid),
            (issued - 301, Received::Invalid),
        ] {
            assert_eq!(classify(&secrets, &data, &client, now), expect, "at {now}");
        }
        // Across the wrap of the 32-bit timestamp.
        let data = answer_data(&KEY, &[7; 8], &client, u32::MAX - 10);
        assert_eq!(classify(&secrets, &data, &client, 20), Received::Valid);
    }

    #[test]
    fn a_cookie_is_bound_to_its_client_and_client_cookie() {
        let secrets = Secrets { current: KEY, previous: None };
        let client = ClientAddr::V4([198, 18, 0, 2]);
        let data = answer_data(&KEY, &[7; 8], &client, 1000);
        assert_eq!(classify(&secrets, &data, &ClientAddr::V4([198, 18, 0, 3]), 1000), Received::Invalid);
        let mut other = data;
        other[0] ^= 1;
        assert_eq!(classify(&secrets, &other, &client, 1000), Received::Invalid);
        let mut version = data;
        version[8] = 2;
        assert_eq!(classify(&secrets, &version, &client, 1000), Received::Invalid);
        // A server cookie of another length (some other server's) is not ours.
        assert_eq!(classify(&secrets, &[7; 16], &client, 1000), Received::Invalid);
        assert_eq!(classify(&secrets, &data[..8], &client, 1000), Received::ClientOnly);
    }

    #[test]
    fn option_lengths() {
        let ok: [usize; 26] = core::array::from_fn(|i| if i == 0 { 8 } else { 15 + i });
        for len in 0..=64 {
            assert_eq!(well_formed_len(len), ok.contains(&len), "{len}");
        }
    }
}
