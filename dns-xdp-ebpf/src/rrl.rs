//! Stage 7: response rate limiting, after the answer is known and before
//! it is written. The source's prefix is accounted in `DNS_RRL` with the
//! policy of `dns_xdp_common::rrl` (the daemon applies the same one to its
//! own answers); prefixes in `DNS_RRL_EXEMPT` are not limited.

use aya_ebpf::{btf_maps::lpm_trie::Key, helpers::bpf_ktime_get_coarse_ns, programs::XdpContext};
use dns_xdp_common::{
    Config, Verdict,
    net::{Ipv4Hdr, Ipv6Hdr},
    rrl::{EXEMPT_V4_OFFSET_BITS, RRL_BUCKETS, RrlAction, account_pair, bucket_choices, exempt_key_v4, prefix_key},
};

use crate::{
    headers::PktDesc,
    maps::{DNS_RRL, DNS_RRL_EXEMPT},
    packet::header,
};

/// What to do with the answer to this query.
#[inline(always)]
pub fn check(ctx: &XdpContext, pkt: &PktDesc, config: &Config) -> Result<RrlAction, Verdict> {
    let Some(limits) = config.rrl_limits() else { return Ok(RrlAction::Answer) };
    let (key, exempt) = if pkt.ipv6 {
        let ip: &Ipv6Hdr = header(ctx, pkt.l3).ok_or(Verdict::DropInternal)?;
        let src = ip.src;
        (prefix_key(&src, &limits), Key::new(128, src))
    } else {
        let ip: &Ipv4Hdr = header(ctx, pkt.l3).ok_or(Verdict::DropInternal)?;
        let src = ip.src;
        (prefix_key(&src, &limits), Key::new(EXEMPT_V4_OFFSET_BITS + 32, exempt_key_v4(src)))
    };
    if DNS_RRL_EXEMPT.get(&exempt).is_some() {
        return Ok(RrlAction::Answer);
    }
    let [a, b] = bucket_choices(key, RRL_BUCKETS - 1);
    let (Some(first), Some(second)) = (DNS_RRL.get_ptr_mut(a as u32), DNS_RRL.get_ptr_mut(b as u32)) else {
        return Err(Verdict::DropInternal);
    };
    // SAFETY: helper without arguments.
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    // SAFETY: two distinct slots of an array (bucket_choices makes them
    // distinct); another CPU may update them at the same time, which can
    // lose one update and never corrupts more than the bucket's schedule.
    Ok(unsafe { account_pair(&mut *first, &mut *second, key, now, &limits) })
}
