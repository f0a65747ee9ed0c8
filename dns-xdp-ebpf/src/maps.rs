//! Every map of the program, with its key, value, writer and reader (the
//! names are [`dns_xdp_common::maps`]; the daemon opens them by name).
//!
//! | map            | key          | value            | written by          | read by              |
//! |----------------|--------------|------------------|---------------------|----------------------|
//! | `DNS_ANSWERS`  | u32 slot     | `AnswerSlot`     | daemon (mmap)       | program              |
//! | `DNS_SERVICES` | `ServiceKey` | u8 (presence)    | daemon at load      | program              |
//! | `DNS_CONFIG`   | u32 (0)      | `Config`         | daemon (heartbeat)  | program, `stats`     |
//! | `DNS_STATS`    | u32 verdict  | u64 per CPU      | program             | `stats`, tests       |
//! | `DNS_SCRATCH`  | u32 (0)      | `Scratch` per CPU| program             | program              |
//! | `DNS_RRL`      | u32 bucket   | `RrlBucket`      | program             | program              |
//! | `DNS_RRL_EXEMPT`| prefix (LPM)| u8 (presence)    | daemon at load      | program              |

use aya_ebpf::{
    bindings::BPF_F_MMAPABLE,
    btf_maps::{Array, HashMap, LpmTrie, PerCpuArray},
    macros::btf_map,
};
use dns_xdp_common::{
    AnswerSlot, Config, ServiceKey, Verdict,
    rrl::{RRL_BUCKETS, RrlBucket},
};

use crate::scratch::Scratch;

/// Precomputed answers: a table of slots the daemon maps into its memory and
/// writes; a question's answer is in one of the two slots
/// [`dns_xdp_common::AnswerKey::slots`] names. The daemon sizes it at load
/// time (`--map-entries`, a power of two). An array lookup is inlined by the
/// verifier: no helper call, no bucket, one cache miss for the slot.
#[btf_map]
pub static DNS_ANSWERS: Array<AnswerSlot, 65536, { BPF_F_MMAPABLE as usize }> = Array::new();

/// Addresses and ports the server answers on; anything else is passed.
#[btf_map]
pub static DNS_SERVICES: HashMap<ServiceKey, u8, 64> = HashMap::new();

/// Runtime settings and the daemon's heartbeat.
#[btf_map]
pub static DNS_CONFIG: Array<Config, 1> = Array::new();

/// One counter per verdict, indexed by it. Per-CPU, so a count is a plain
/// add with no atomics; the reader sums the CPUs.
#[btf_map]
pub static DNS_STATS: PerCpuArray<u64, { Verdict::COUNT }> = PerCpuArray::new();

/// Response rate limiting state, one bucket per source prefix (two
/// choices each, see `dns_xdp_common::rrl`); shared by the CPUs so the
/// rate is per prefix, not per prefix and CPU.
#[btf_map]
pub static DNS_RRL: Array<RrlBucket, RRL_BUCKETS> = Array::new();

/// Prefixes exempt from rate limiting (IPv4 as `::ffff:0:0/96`).
#[btf_map]
pub static DNS_RRL_EXEMPT: LpmTrie<[u8; 16], u8, 1024> = LpmTrie::new();

/// Per-CPU working memory: the BPF stack (512 bytes) cannot hold a query.
#[btf_map]
pub static DNS_SCRATCH: PerCpuArray<Scratch, 1> = PerCpuArray::new();

/// Bumps the verdict's counter.
#[inline(always)]
pub fn count(verdict: Verdict) {
    let Some(counter) = DNS_STATS.get_ptr_mut(verdict as u32) else { return };
    // SAFETY: a per-CPU array slot is only written by this CPU.
    unsafe { *counter += 1 };
}

/// This CPU's working memory.
#[inline(always)]
pub fn scratch() -> Option<&'static mut Scratch> {
    // SAFETY: the per-CPU slot is this program's alone while it runs.
    DNS_SCRATCH.get_ptr_mut(0).map(|p| unsafe { &mut *p })
}

/// The daemon's settings.
#[inline(always)]
pub fn config() -> Option<&'static Config> {
    // SAFETY: array slots are never freed; torn reads of the heartbeat are
    // impossible on 64-bit.
    DNS_CONFIG.get_ptr(0).map(|p| unsafe { &*p })
}
