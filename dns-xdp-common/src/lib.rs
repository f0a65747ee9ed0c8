//! Map keys, values and wire helpers shared by the XDP program and the daemon.
//!
//! Everything here is `no_std`, `#[repr(C)]` and free of padding the compiler
//! chooses: each struct's size is pinned by a `const` assertion, so a change
//! on one side that the other side does not see fails the build.
//!
//! Byte order: integers inside map values are in host byte order unless the
//! field says otherwise; the XDP program converts to network order when it
//! writes them into a packet.
#![no_std]

pub mod checksum;
pub mod cookie;
pub mod name;
pub mod net;
pub mod rrl;
pub mod verdict;

pub use verdict::{Action, Verdict};

/// Longest qname in wire format, root label included (RFC 1035 3.1).
pub const MAX_QNAME_LEN: usize = 255;
/// Largest answer body (answer, authority and additional sections without
/// the OPT record) the fast path can carry. Larger answers stay with the
/// daemon.
pub const MAX_BODY_LEN: usize = 512;
/// Largest DNS query the fast path parses; anything longer goes to the daemon.
pub const MAX_QUERY_LEN: usize = 512;
/// Length of the OPT record the server appends: root name, type, class
/// (payload size), TTL (extended rcode, version, flags), zero RDLENGTH.
pub const OPT_RR_LEN: usize = 11;
/// Smallest UDP payload a DNS responder may always use (RFC 1035 4.2.1).
pub const MIN_UDP_PAYLOAD: u16 = 512;

/// DNS header flag masks on the host-order flags word.
pub mod flags {
    pub const QR: u16 = 0x8000;
    pub const OPCODE: u16 = 0x7800;
    pub const AA: u16 = 0x0400;
    pub const TC: u16 = 0x0200;
    pub const RD: u16 = 0x0100;
    pub const RA: u16 = 0x0080;
    pub const AD: u16 = 0x0020;
    pub const CD: u16 = 0x0010;
    pub const RCODE: u16 = 0x000f;
    /// Bits a responder copies from the query into its answer (RFC 1035 4.1.1
    /// for RD, RFC 4035 3.2.2 / RFC 6840 5.9 for CD).
    pub const COPIED_FROM_QUERY: u16 = RD | CD;
}

/// EDNS(0) constants (RFC 6891).
pub mod edns {
    pub const OPT_TYPE: u16 = 41;
    /// The DO bit in the OPT TTL's flags half (RFC 3225).
    pub const DO: u16 = 0x8000;
    /// DNS COOKIE option code (RFC 7873); see [`crate::cookie`].
    pub const OPTION_COOKIE: u16 = 10;
    /// Name server identifier option (RFC 5001); the daemon answers it.
    pub const OPTION_NSID: u16 = 3;
    /// Extended DNS Error (RFC 8914 §2).
    pub const OPTION_EDE: u16 = 15;
}

pub const CLASS_IN: u16 = 1;
/// Class CHAOS: the fast path serves `id.server.`/`hostname.bind.` TXT in it
/// (RFC 4892), from the table like any other answer.
pub const CLASS_CH: u16 = 3;

/// Version of the layout the program and the daemon share: the map keys and
/// values here and what their fields mean. A daemon adopts a program and
/// maps pinned by an earlier one only when that one stamped the same
/// version in [`Config::layout`] (and the map definitions agree); bump it
/// with any change of meaning a size check cannot see.
pub const LAYOUT_VERSION: u32 = 5;

/// Longest server identity the fast path sends in an NSID option (RFC
/// 5001); the daemon's limit for the setting.
pub const MAX_NSID_LEN: usize = 255;
/// Length of an NSID option with the longest identity: code, length, data.
pub const MAX_NSID_OPTION_LEN: usize = 4 + MAX_NSID_LEN;

/// The largest UDP reply the server sends (RFC 6891 6.2.3 and 6.2.5): 512
/// without EDNS; with EDNS the client's advertised size, treated as 512 when
/// smaller, and never more than the server's own advertised size.
#[inline(always)]
pub const fn udp_reply_limit(client_payload: Option<u16>, server_payload: u16) -> u16 {
    match client_payload {
        None => MIN_UDP_PAYLOAD,
        Some(client) => {
            let limit = if client < server_payload { client } else { server_payload };
            if limit < MIN_UDP_PAYLOAD { MIN_UDP_PAYLOAD } else { limit }
        }
    }
}

/// The OPT record the server appends to every reply to an EDNS query: no
/// options, version 0, only the DO bit echoed (RFC 3225 3), and the extended
/// rcode's upper bits (nonzero only for BADVERS).
#[inline(always)]
pub const fn opt_record(server_payload: u16, ext_rcode: u8, dnssec_ok: bool) -> [u8; OPT_RR_LEN] {
    let payload = server_payload.to_be_bytes();
    let flags_hi = if dnssec_ok { (edns::DO >> 8) as u8 } else { 0 };
    [0, 0, edns::OPT_TYPE as u8, payload[0], payload[1], ext_rcode, 0, flags_hi, 0, 0, 0]
}

/// Header flags of a reply: the answer's flags plus the bits copied from
/// the query.
#[inline(always)]
pub const fn reply_flags(answer_flags: u16, query_flags: u16) -> u16 {
    answer_flags | (query_flags & flags::COPIED_FROM_QUERY)
}

/// Which question an [`AnswerSlot`] answers: the question's slots in
/// `DNS_ANSWERS`, and the first thing the fast path compares there.
///
/// The name is represented by its hash so the key fits one compare of two
/// words; the value carries the full lower-cased name and the XDP program
/// compares it too, so a hash collision can only cost a miss, never a wrong
/// answer.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AnswerKey {
    /// [`name::hash_lower`] of the wire-format qname.
    pub name_hash: u64,
    /// Query type, host order.
    pub qtype: u16,
    /// Length of the wire-format qname, root label included. Zero marks an
    /// empty slot.
    pub qname_len: u16,
    /// Query class, host order: [`CLASS_IN`] or [`CLASS_CH`].
    pub qclass: u16,
    /// 1 for the answer to queries with the DO bit (RFC 3225), 0 for the
    /// rest: a signed zone's two answers differ (RRSIGs, NSEC/NSEC3 proofs),
    /// so every question has a DO entry and a non-DO entry of its own.
    pub dnssec_ok: u16,
}
const _: () = assert!(core::mem::size_of::<AnswerKey>() == 16);

impl AnswerKey {
    /// The key's second word as the fast path reads it from a value:
    /// `qtype`, `qname_len`, `qclass` and `dnssec_ok`.
    #[inline(always)]
    pub const fn tail_word(&self) -> u64 {
        self.qtype as u64 | (self.qname_len as u64) << 16 | (self.qclass as u64) << 32 | (self.dnssec_ok as u64) << 48
    }

    /// The two slots of `DNS_ANSWERS` that may hold this question's answer,
    /// for a table of `slot_mask + 1` slots (a power of two). Two choices
    /// per question let the daemon place nearly every question of a table
    /// filled to half, where one choice would leave a fifth of them out at
    /// that load; the fast path reads the first slot, and the second only
    /// when the first holds another question.
    ///
    /// The name hash is only built for equality (a word-at-a-time FNV whose
    /// sparse multiplier leaves the names of a generated zone clustered in
    /// a few hundred slots), so the key goes through a full avalanche mix
    /// (MurmurHash3's 64-bit finalizer) first.
    #[inline(always)]
    pub const fn slots(&self, slot_mask: u32) -> [u32; 2] {
        let mut mixed = self.name_hash ^ self.tail_word().rotate_left(29);
        mixed ^= mixed >> 33;
        mixed = mixed.wrapping_mul(0xff51_afd7_ed55_8ccd);
        mixed ^= mixed >> 33;
        mixed = mixed.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        mixed ^= mixed >> 33;
        let first = (mixed >> 32) as u32 & slot_mask;
        // Odd, so never the first slot again (unless the table has one).
        let step = mixed as u32 | 1;
        [first, first ^ (step & slot_mask)]
    }
}

/// A slot of `DNS_ANSWERS`: the daemon's answer to one question, minus the
/// parts that depend on the query (ID, RD/CD bits, the question as the client
/// spelled it, and the OPT record).
///
/// Compression pointers in the body are relative to a message whose question
/// starts at offset 12, which is where every response puts it, so the body is
/// valid behind any spelling of the same qname.
///
/// Layout: the fixed fields, then `data` packed as qname, body, and a trailer
/// holding `version` again at the next 8-byte boundary. The key, lengths and
/// the start of the qname share the slot's first cache line, so a hit on a
/// typical answer (under 100 bytes of qname and body) reads two adjacent
/// lines: under a random mix over a large table every line is a cache miss,
/// and those misses are a large part of the fast path's cost.
///
/// The daemon rewrites slots in place while the program may be reading them
/// on another CPU. `version` and the trailer hold the same number, different
/// for every value the daemon writes and spread over all 64 bits, so that the
/// qname or body bytes of another value, which a torn read may find where it
/// expects the trailer, do not match it by chance. The daemon stores
/// `version` first and the trailer last, with fences between; the program
/// reads the key and lengths, then the trailer they locate, then the key and
/// lengths again (equal, or the trailer it read may be another write's),
/// everything else, and `version` last: a trailer equal to `version` means
/// nothing it read was overwritten in between. The reader's volatile loads
/// carry no barriers: the argument relies on loads not passing earlier
/// loads, as on x86-64; a weakly ordered CPU would need load-acquire there.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct AnswerSlot {
    /// Stored first by every write of the slot.
    pub version: u64,
    /// The question answered; `qname_len` zero in an empty slot.
    pub key: AnswerKey,
    /// Header flags word, host order, with RD and CD clear (they are copied
    /// from the query).
    pub flags: u16,
    /// Section counts, host order; `arcount` excludes the OPT record.
    pub ancount: u16,
    pub nscount: u16,
    pub arcount: u16,
    /// Bytes of body in `data`; 1..=MAX_BODY_LEN.
    pub body_len: u16,
    /// Set by the fast path when it serves the value, cleared by the daemon
    /// when it looks for a slot to reuse: the second-chance approximation of
    /// least recently used that the kernel's LRU maps make too.
    pub referenced: u8,
    pub _pad: u8,
    /// One's complement sum of the body taken as big-endian 16-bit words
    /// from an even offset, not folded (see [`checksum`]).
    pub body_csum: u32,
    /// Lower-cased wire-format qname, then the answer, authority and
    /// additional sections as the daemon encodes them, then the trailer.
    pub data: [u8; ANSWER_DATA_LEN],
}

/// Fixed fields of an [`AnswerSlot`] before `data` (8-aligned, so qname words
/// can be read as `u64`).
const ANSWER_FIXED_LEN: usize = 40;
/// Size of an [`AnswerSlot`]: room for the longest qname and body and the
/// trailer, rounded up to whole cache lines, so that in the page-aligned
/// memory of a mappable array every slot starts on a line.
pub const ANSWER_LEN: usize =
    (ANSWER_FIXED_LEN + AnswerSlot::trailer_offset(MAX_QNAME_LEN, MAX_BODY_LEN) + 8).next_multiple_of(64);
/// Size of an [`AnswerSlot`]'s `data`.
pub const ANSWER_DATA_LEN: usize = ANSWER_LEN - ANSWER_FIXED_LEN;
const _: () = assert!(core::mem::size_of::<AnswerSlot>() == ANSWER_LEN);
const _: () = assert!(core::mem::offset_of!(AnswerSlot, data) == ANSWER_FIXED_LEN);

impl AnswerSlot {
    /// Offset in `data` of the trailer of a value with these lengths.
    #[inline(always)]
    pub const fn trailer_offset(qname_len: usize, body_len: usize) -> usize {
        (qname_len + body_len).next_multiple_of(8)
    }

    /// A value with `version` at both ends; `None` if the qname or body is
    /// empty or too long for the fast path, or the key is for another
    /// length of qname.
    pub fn new(version: u64, key: AnswerKey, header: AnswerHeader, qname: &[u8], body: &[u8]) -> Option<Self> {
        if qname.is_empty()
            || qname.len() > MAX_QNAME_LEN
            || usize::from(key.qname_len) != qname.len()
            || body.is_empty()
            || body.len() > MAX_BODY_LEN
        {
            return None;
        }
        let mut value = AnswerSlot {
            version,
            key,
            flags: header.flags,
            ancount: header.ancount,
            nscount: header.nscount,
            arcount: header.arcount,
            body_len: body.len() as u16,
            referenced: 0,
            _pad: 0,
            body_csum: checksum::sum_bytes(body),
            data: [0; ANSWER_DATA_LEN],
        };
        value.data[..qname.len()].copy_from_slice(qname);
        value.data[qname.len()..qname.len() + body.len()].copy_from_slice(body);
        let trailer = Self::trailer_offset(qname.len(), body.len());
        value.data[trailer..trailer + 8].copy_from_slice(&version.to_ne_bytes());
        Some(value)
    }

    /// The header fields the value carries.
    pub fn header(&self) -> AnswerHeader {
        AnswerHeader { flags: self.flags, ancount: self.ancount, nscount: self.nscount, arcount: self.arcount }
    }

    fn lens(&self) -> (usize, usize) {
        let qname_len = usize::from(self.key.qname_len).min(MAX_QNAME_LEN);
        let body_len = usize::from(self.body_len).min(MAX_BODY_LEN);
        (qname_len, body_len)
    }

    /// The lower-cased wire-format qname.
    pub fn qname(&self) -> &[u8] {
        let (qname_len, _) = self.lens();
        &self.data[..qname_len]
    }

    /// The answer, authority and additional sections.
    pub fn body(&self) -> &[u8] {
        let (qname_len, body_len) = self.lens();
        &self.data[qname_len..qname_len + body_len]
    }

    /// The body, writable (its checksum is not updated).
    pub fn body_mut(&mut self) -> &mut [u8] {
        let (qname_len, body_len) = self.lens();
        &mut self.data[qname_len..qname_len + body_len]
    }

    /// The version in the trailer.
    pub fn trailer(&self) -> u64 {
        let (qname_len, body_len) = self.lens();
        let at = Self::trailer_offset(qname_len, body_len);
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&self.data[at..at + 8]);
        u64::from_ne_bytes(bytes)
    }
}

/// The DNS header fields an [`AnswerSlot`] carries, host order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnswerHeader {
    pub flags: u16,
    pub ancount: u16,
    pub nscount: u16,
    pub arcount: u16,
}

/// Key of `DNS_SERVICES`: an address and UDP port the server answers on.
/// An all-zero address with the matching family stands for "any address".
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ServiceKey {
    /// IPv4 addresses in the first 4 bytes, rest zero. Network order.
    pub addr: [u8; 16],
    /// UDP port, network order.
    pub port_be: u16,
    /// 4 or 6.
    pub family: u8,
    pub _pad: [u8; 5],
}
const _: () = assert!(core::mem::size_of::<ServiceKey>() == 24);

impl ServiceKey {
    /// The key for an address and port as they appear in a packet: the
    /// only place a key is put together, for the program's lookups and the
    /// daemon's registrations alike.
    #[inline(always)]
    pub const fn new(family: u8, addr: [u8; 16], port: [u8; 2]) -> Self {
        Self { addr, port_be: u16::from_ne_bytes(port), family, _pad: [0; 5] }
    }

    /// An IPv4 address and a port, both in network order.
    #[inline(always)]
    pub const fn v4(addr: [u8; 4], port: [u8; 2]) -> Self {
        let [a, b, c, d] = addr;
        Self::new(4, [a, b, c, d, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], port)
    }

    /// An IPv6 address and a port, both in network order.
    #[inline(always)]
    pub const fn v6(addr: [u8; 16], port: [u8; 2]) -> Self {
        Self::new(6, addr, port)
    }

    /// The "any address" key of the same family and port.
    #[inline(always)]
    pub const fn any_addr(&self) -> Self {
        Self::new(self.family, [0; 16], self.port_be.to_ne_bytes())
    }
}

/// The single entry of `DNS_CONFIG`, written by the daemon.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// [`LAYOUT_VERSION`] of the daemon that wrote it: what a restarted
    /// daemon checks before it adopts pinned maps.
    pub layout: u32,
    /// Bytes of `nsid_option` the program appends to the OPT record of a
    /// reply to a query that asks for NSID (RFC 5001); zero when the server
    /// has no identity (the option is then left out, as the daemon does).
    pub nsid_option_len: u16,
    pub _pad0: u16,
    /// CLOCK_MONOTONIC_COARSE nanoseconds of the daemon's last heartbeat
    /// (the clock `bpf_ktime_get_coarse_ns` reads).
    pub heartbeat_ns: u64,
    /// The fast path stops answering once the heartbeat is older than this,
    /// so a hung or stopped daemon cannot leave stale answers being served.
    pub heartbeat_timeout_ns: u64,
    /// UDP payload size the server advertises in its OPT record, host order.
    pub edns_udp_payload: u16,
    /// Nonzero when the fast path may answer.
    pub enabled: u8,
    pub _pad: u8,
    /// `DNS_ANSWERS` holds this plus one slots (a power of two).
    pub answer_slot_mask: u32,
    /// The daemon's counters, published with each heartbeat so that
    /// `dns-xdp stats` and bpftool show both halves in one place. (A map of
    /// their own would not be bound to the program, which never reads it,
    /// and could not be found from the program's maps.)
    pub daemon: DaemonStats,
    /// Response rate limiting ([`rrl`]): nanoseconds between answers to one
    /// prefix; 0 turns it off.
    pub rrl_interval_ns: u64,
    /// How far ahead of its schedule a prefix may run.
    pub rrl_burst_ns: u64,
    /// Every `rrl_slip`th answer over the limit is slipped; 0 never.
    pub rrl_slip: u32,
    /// Prefix lengths sources are grouped by.
    pub rrl_v4_prefix: u8,
    pub rrl_v6_prefix: u8,
    pub _pad_rrl: u16,
    /// CLOCK_REALTIME minus CLOCK_MONOTONIC_COARSE in nanoseconds, as of
    /// the last heartbeat. XDP has no wall-clock helper, and a server
    /// cookie's timestamp is wall-clock seconds (RFC 9018) that every PoP
    /// must agree on: the program adds `bpf_ktime_get_coarse_ns` to this.
    /// Refreshed with the heartbeat, so a stepped clock is followed.
    pub wall_offset_ns: u64,
    /// The secret server cookies are issued with ([`cookie`]).
    pub cookie_secret: [u8; cookie::SECRET_LEN],
    /// The secret before it, still accepted when `cookie_previous` is set.
    pub cookie_secret_previous: [u8; cookie::SECRET_LEN],
    /// Nonzero when the server answers COOKIE options; zero: the program
    /// ignores them as the daemon then does.
    pub cookies: u8,
    /// Nonzero when `cookie_secret_previous` holds a secret.
    pub cookie_previous: u8,
    pub _pad_cookie: [u8; 6],
    /// One's complement sum of `nsid_option[..nsid_option_len]` taken as
    /// big-endian words from an even offset, not folded.
    pub nsid_option_csum: u32,
    /// The NSID option as the daemon sends it: code 3, length, identity.
    pub nsid_option: [u8; NSID_OPTION_BUF],
}
/// Room for the longest NSID option, rounded up to keep `Config` 8-aligned.
pub const NSID_OPTION_BUF: usize = (MAX_NSID_OPTION_LEN + 4).next_multiple_of(8) - 4;
const _: () =
    assert!(core::mem::size_of::<Config>() == 32 + core::mem::size_of::<DaemonStats>() + 24 + 48 + 4 + NSID_OPTION_BUF);

impl Default for Config {
    fn default() -> Self {
        Self {
            layout: LAYOUT_VERSION,
            nsid_option_len: 0,
            _pad0: 0,
            heartbeat_ns: 0,
            heartbeat_timeout_ns: 0,
            edns_udp_payload: 0,
            enabled: 0,
            _pad: 0,
            answer_slot_mask: 0,
            daemon: DaemonStats::default(),
            rrl_interval_ns: 0,
            rrl_burst_ns: 0,
            rrl_slip: 0,
            rrl_v4_prefix: 0,
            rrl_v6_prefix: 0,
            _pad_rrl: 0,
            wall_offset_ns: 0,
            cookie_secret: [0; cookie::SECRET_LEN],
            cookie_secret_previous: [0; cookie::SECRET_LEN],
            cookies: 0,
            cookie_previous: 0,
            _pad_cookie: [0; 6],
            nsid_option_csum: 0,
            nsid_option: [0; NSID_OPTION_BUF],
        }
    }
}

impl Config {
    /// The rate limits the program applies; `None` when off.
    #[inline(always)]
    pub const fn rrl_limits(&self) -> Option<rrl::RrlLimits> {
        if self.rrl_interval_ns == 0 {
            return None;
        }
        Some(rrl::RrlLimits {
            interval_ns: self.rrl_interval_ns,
            burst_ns: self.rrl_burst_ns,
            slip: self.rrl_slip,
            v4_prefix: self.rrl_v4_prefix,
            v6_prefix: self.rrl_v6_prefix,
        })
    }

    /// Sets (or, with `None`, turns off) the rate limits.
    pub fn set_rrl(&mut self, limits: Option<rrl::RrlLimits>) {
        let l = limits.unwrap_or(rrl::RrlLimits { interval_ns: 0, burst_ns: 0, slip: 0, v4_prefix: 0, v6_prefix: 0 });
        self.rrl_interval_ns = l.interval_ns;
        self.rrl_burst_ns = l.burst_ns;
        self.rrl_slip = l.slip;
        self.rrl_v4_prefix = l.v4_prefix;
        self.rrl_v6_prefix = l.v6_prefix;
    }

    /// Sets (or, with `None`, turns off) the cookie secrets.
    pub fn set_cookies(&mut self, secrets: Option<&cookie::Secrets>) {
        self.cookies = u8::from(secrets.is_some());
        self.cookie_secret = secrets.map_or([0; cookie::SECRET_LEN], |s| s.current);
        let previous = secrets.and_then(|s| s.previous);
        self.cookie_previous = u8::from(previous.is_some());
        self.cookie_secret_previous = previous.unwrap_or([0; cookie::SECRET_LEN]);
    }

    /// Sets the identity sent in NSID options; `false` (and no identity)
    /// when it is longer than [`MAX_NSID_LEN`].
    pub fn set_nsid(&mut self, identity: Option<&[u8]>) -> bool {
        self.nsid_option = [0; NSID_OPTION_BUF];
        self.nsid_option_len = 0;
        self.nsid_option_csum = 0;
        let Some(id) = identity else { return true };
        if id.len() > MAX_NSID_LEN {
            return false;
        }
        let len = 4 + id.len();
        self.nsid_option[..2].copy_from_slice(&edns::OPTION_NSID.to_be_bytes());
        self.nsid_option[2..4].copy_from_slice(&(id.len() as u16).to_be_bytes());
        self.nsid_option[4..len].copy_from_slice(id);
        self.nsid_option_len = len as u16;
        self.nsid_option_csum = checksum::sum_bytes(&self.nsid_option[..len]);
        true
    }
}

/// Counters the daemon publishes in [`Config::daemon`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct DaemonStats {
    pub udp_queries: u64,
    pub tcp_queries: u64,
    pub responses: u64,
    pub truncated: u64,
    pub dropped: u64,
    /// Slots of `DNS_ANSWERS` holding an answer.
    pub map_entries: u64,
    pub map_inserts: u64,
    /// Preloads that found no room in the table.
    pub map_no_room: u64,
    /// TCP connections closed at accept: over the total or per-source limit.
    pub tcp_refused: u64,
    /// UDP queries dropped unanswered because the workers were behind.
    pub udp_shed: u64,
    /// UDP answers over the rate limit the daemon dropped.
    pub rrl_dropped: u64,
    /// UDP answers over the rate limit the daemon sent truncated (slipped).
    pub rrl_slipped: u64,
    /// Queries with a COOKIE option the daemon answered, by server cookie:
    /// valid, invalid, none (a client cookie alone).
    pub cookie_valid: u64,
    pub cookie_invalid: u64,
    pub cookie_client_only: u64,
}
const _: () = assert!(core::mem::size_of::<DaemonStats>() == 15 * 8);

/// Map names, as the XDP program declares them and as they are pinned.
pub mod maps {
    pub const ANSWERS: &str = "DNS_ANSWERS";
    pub const SERVICES: &str = "DNS_SERVICES";
    pub const CONFIG: &str = "DNS_CONFIG";
    /// Per-CPU array of `u64`, one per [`crate::Verdict`], indexed by it.
    pub const STATS: &str = "DNS_STATS";
    /// Array of `RrlBucket`s, [`crate::rrl::RRL_BUCKETS`] long, shared by
    /// the CPUs: the program's rate limiting state.
    pub const RRL: &str = "DNS_RRL";
    /// LPM trie of `[u8; 16]` (IPv4 as ::ffff:0:0/96) prefixes exempt from
    /// rate limiting, value u8 (presence).
    pub const RRL_EXEMPT: &str = "DNS_RRL_EXEMPT";
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all of these are repr(C), Copy, made of integers and byte
    // arrays, with explicit padding fields, so every bit pattern is valid.
    unsafe impl aya::Pod for super::AnswerKey {}
    unsafe impl aya::Pod for super::AnswerSlot {}
    unsafe impl aya::Pod for super::ServiceKey {}
    unsafe impl aya::Pod for super::Config {}
    unsafe impl aya::Pod for super::DaemonStats {}
    unsafe impl aya::Pod for super::rrl::RrlBucket {}
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: AnswerHeader = AnswerHeader { flags: flags::QR | flags::AA, ancount: 1, nscount: 0, arcount: 0 };

    fn key_for(qname: &[u8]) -> AnswerKey {
        AnswerKey {
            name_hash: name::hash_lower(qname),
            qtype: 1,
            qname_len: qname.len() as u16,
            qclass: CLASS_IN,
            dnssec_ok: 0,
        }
    }

    #[test]
    fn answer_packs_qname_body_and_trailer() {
        let qname = b"\x03www\x07example\x04test\x00";
        let body = [0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 192, 0, 2, 1];
        let value = AnswerSlot::new(7, key_for(qname), HEADER, qname, &body).expect("fits");
        assert_eq!(value.qname(), qname);
        assert_eq!(value.body(), body);
        assert_eq!(value.header(), HEADER);
        assert_eq!(value.version, 7);
        assert_eq!(value.trailer(), 7);
        // The trailer sits at the first 8-byte boundary after the body.
        let at = AnswerSlot::trailer_offset(qname.len(), body.len());
        assert_eq!(at, 40);
        assert_eq!(value.data[at..at + 8], 7u64.to_ne_bytes());
        assert_eq!(value.body_csum, checksum::sum_bytes(&body));
    }

    #[test]
    fn answer_holds_the_longest_qname_and_body() {
        let qname = [1u8; MAX_QNAME_LEN];
        let body = [2u8; MAX_BODY_LEN];
        let value = AnswerSlot::new(u64::MAX, key_for(&qname), HEADER, &qname, &body).expect("fits");
        assert_eq!(value.qname(), qname);
        assert_eq!(value.body(), body);
        assert_eq!(value.trailer(), u64::MAX);
        let too_long = [1u8; MAX_QNAME_LEN + 1];
        assert!(AnswerSlot::new(1, key_for(&too_long), HEADER, &too_long, &body).is_none());
        assert!(AnswerSlot::new(1, key_for(&qname), HEADER, &qname, &[2u8; MAX_BODY_LEN + 1]).is_none());
        assert!(AnswerSlot::new(1, key_for(&qname), HEADER, &qname, &[]).is_none());
        assert!(AnswerSlot::new(1, key_for(&[]), HEADER, &[], &body).is_none());
        // A key for another length of name cannot go with this name.
        assert!(AnswerSlot::new(1, key_for(&qname[1..]), HEADER, &qname, &body).is_none());
    }

    #[test]
    fn nsid_option_is_code_length_identity_with_its_sum() {
        let mut config = Config::default();
        assert!(config.set_nsid(Some(b"pop-ams1")));
        let option = &config.nsid_option[..usize::from(config.nsid_option_len)];
        assert_eq!(option, b"\x00\x03\x00\x08pop-ams1");
        assert_eq!(config.nsid_option_csum, checksum::sum_bytes(option));
        assert!(config.set_nsid(Some(&[b'x'; MAX_NSID_LEN])));
        assert_eq!(usize::from(config.nsid_option_len), MAX_NSID_OPTION_LEN);
        assert!(!config.set_nsid(Some(&[b'x'; MAX_NSID_LEN + 1])), "too long for the fast path");
        assert_eq!(config.nsid_option_len, 0);
        assert!(config.set_nsid(None));
        assert_eq!((config.nsid_option_len, config.nsid_option_csum), (0, 0));
    }

    #[test]
    fn slots_are_whole_cache_lines() {
        assert_eq!(ANSWER_LEN % 64, 0);
        // The key and lengths share the first line with the qname's start.
        assert!(core::mem::offset_of!(AnswerSlot, data) < 64);
    }

    #[test]
    fn a_question_has_two_different_slots_in_range() {
        for mask in [1u32, 0xff, 0xffff, 0x3_ffff] {
            for i in 0..1000u64 {
                let key = AnswerKey {
                    name_hash: i.wrapping_mul(0x1234_5678_9abc_def1),
                    qtype: (i % 300) as u16,
                    qname_len: 20,
                    qclass: CLASS_IN,
                    dnssec_ok: 0,
                };
                let [a, b] = key.slots(mask);
                assert!(a <= mask && b <= mask);
                assert_ne!(a, b);
            }
        }
        assert_eq!(AnswerKey { name_hash: 5, qtype: 1, qname_len: 3, qclass: CLASS_IN, dnssec_ok: 0 }.slots(0), [0, 0]);
    }

    #[test]
    fn names_of_a_generated_zone_spread_over_the_slots() {
        // "host<i>.bench.test." as A and AAAA: 20,000 questions that differ
        // in a few digits, the shape of a generated or numbered zone.
        const SLOTS: usize = 1 << 17;
        let mut used = [0u64; SLOTS / 64];
        let mut questions = 0usize;
        for i in 0..10_000u32 {
            let mut wire = [0u8; 32];
            let digits = if i == 0 { 1 } else { i.ilog10() as usize + 1 };
            wire[0] = (4 + digits) as u8;
            wire[1..5].copy_from_slice(b"host");
            for d in 0..digits {
                wire[5 + digits - 1 - d] = b'0' + (i / 10u32.pow(d as u32) % 10) as u8;
            }
            let rest = b"\x05bench\x04test\x00";
            let len = 5 + digits + rest.len();
            wire[5 + digits..len].copy_from_slice(rest);
            for qtype in [1u16, 28] {
                let key = AnswerKey {
                    name_hash: name::hash_lower(&wire[..len]),
                    qtype,
                    qname_len: len as u16,
                    qclass: CLASS_IN,
                    dnssec_ok: 0,
                };
                let slot = key.slots(SLOTS as u32 - 1)[0] as usize;
                used[slot / 64] |= 1 << (slot % 64);
                questions += 1;
            }
        }
        let distinct: u32 = used.iter().map(|w| w.count_ones()).sum();
        // Uniformly random slots would give N(1 - e^(-n/N)) = 18,570 distinct.
        assert!(distinct > 18_000, "{questions} questions use only {distinct} first slots");
    }

    #[test]
    fn do_and_non_do_answers_have_keys_of_their_own() {
        let plain = key_for(b"\x03www\x07example\x00");
        let dnssec = AnswerKey { dnssec_ok: 1, ..plain };
        assert_ne!(plain.tail_word(), dnssec.tail_word());
        assert_ne!(plain.slots(0xffff), dnssec.slots(0xffff));
    }

    #[test]
    fn service_keys_hold_wire_order_ports_and_widened_v4_addresses() {
        let key = ServiceKey::v4([198, 18, 0, 1], 53u16.to_be_bytes());
        assert_eq!(key.addr[..4], [198, 18, 0, 1]);
        assert_eq!(key.addr[4..], [0; 12]);
        assert_eq!(key.port_be, 53u16.to_be());
        assert_eq!(key.family, 4);
        let any = key.any_addr();
        assert_eq!((any.addr, any.port_be, any.family), ([0; 16], key.port_be, 4));
        assert_eq!(ServiceKey::v6([1; 16], [0, 53]).family, 6);
    }

    #[test]
    fn tail_word_is_the_second_word_of_the_key_in_memory() {
        let key = AnswerKey { name_hash: 1, qtype: 0x1c, qname_len: 17, qclass: CLASS_CH, dnssec_ok: 1 };
        // SAFETY: AnswerKey is 16 bytes of plain integers.
        let bytes: [u8; 16] = unsafe { core::mem::transmute(key) };
        assert_eq!(u64::from_ne_bytes(bytes[8..].try_into().unwrap()), key.tail_word());
    }
}
