//! The dns-xdp fast path: answers DNS queries over UDP from a map of answers
//! the daemon precomputed, rewriting each query into its response in place.
//!
//! A packet goes through stages, each a module, each ending the walk with a
//! [`Verdict`] or handing what it learnt to the next:
//! 1. [`headers`]: Ethernet, VLAN, IP, UDP to a service -> [`headers::PktDesc`];
//! 2. [`dns::header`]: the DNS header (after the heartbeat check, [`fresh`]);
//! 3. [`dns::question`]: qname, QTYPE, QCLASS -> [`dns::Question`];
//! 4. [`answer::find`]: the question's slot in `DNS_ANSWERS` (keyed by the
//!    DO bit too, which [`edns::dnssec_ok`] peeks at first);
//! 5. [`edns`]: the OPT record -> [`edns::Edns`];
//! 6. [`answer::read`]: the slot read consistently, the name compared;
//! 7. [`cookie`]: the COOKIE option: a fresh server cookie for the reply,
//!    or the daemon's for a server cookie not valid here;
//! 8. [`rrl`]: the source prefix's rate: answer, drop, or slip
//!    ([`reply::slip`]); a valid server cookie is never limited;
//! 9. [`reply`]: size, checksum, resize, rewrite.
//!
//! Verdicts: not ours -> PASS; ours but not answerable here -> PASS (the
//! daemon answers); malformed -> DROP; answered -> TX. Every packet bumps
//! exactly one counter in `DNS_STATS` ([`maps`] lists every map).
#![no_std]
#![no_main]

mod answer;
mod cookie;
mod dns;
mod edns;
mod headers;
#[cfg(feature = "lab")]
mod lab;
mod maps;
mod packet;
mod reply;
mod rrl;
mod scratch;

use aya_ebpf::{helpers::bpf_ktime_get_coarse_ns, macros::xdp, programs::XdpContext};
use dns_xdp_common::{Config, Verdict, rrl::RrlAction};

#[xdp]
pub fn dns_xdp(ctx: XdpContext) -> u32 {
    let verdict = try_dns_xdp(&ctx);
    maps::count(verdict);
    if verdict == Verdict::DropInternal {
        // A state the program's own checks should make impossible (a helper
        // refusing an offset the stages bounded, a slot length out of
        // range): counted like every verdict, and told to the daemon's log
        // through aya-log, which only this rare path pays for.
        aya_log_ebpf::error!(&ctx, "XDP program: internal error, query dropped (drop_internal)");
    }
    verdict.action() as u32
}

#[inline(always)]
fn try_dns_xdp(ctx: &XdpContext) -> Verdict {
    match stages(ctx) {
        Ok(verdict) | Err(verdict) => verdict,
    }
}

/// The stages in order; `Ok` with the answer's verdict when the packet is
/// now the answer.
#[inline(always)]
fn stages(ctx: &XdpContext) -> Result<Verdict, Verdict> {
    let pkt = headers::parse(ctx)?;
    dns::check_len(&pkt)?;
    let scratch = maps::scratch().ok_or(Verdict::DropInternal)?;
    let config = maps::config().ok_or(Verdict::DropInternal)?;
    dns::load(ctx, &pkt, scratch)?;
    let header = dns::header(&scratch.msg)?;
    fresh(config)?;
    let mut question = dns::question(scratch, pkt.dns_len)?;
    question.dnssec_ok = edns::dnssec_ok(&scratch.msg, &header, &question);
    // Look the answer up before parsing EDNS: under a spread-out query mix
    // the slot is a cache miss, and the CPU can run the EDNS checks while
    // it waits.
    let slot = answer::find(&question.key(), config.answer_slot_mask).ok_or(Verdict::PassMiss)?;
    let edns = edns::parse(&scratch.msg, &mut scratch.carried, &header, &question)?;
    let answer = answer::read(slot, &mut question, scratch)?;
    cookie::check(ctx, &pkt, config, scratch, &edns)?;
    let query = reply::Query { pkt: &pkt, header: &header, question: &question, edns: &edns };
    // A valid server cookie proves the source address (RFC 7873 1): not
    // rate limited, as in Knot and in the daemon.
    let proven = cookie::kind(scratch) == cookie::Cookie::Valid;
    let rate = if proven { RrlAction::Answer } else { rrl::check(ctx, &pkt, config)? };
    match rate {
        RrlAction::Answer => {
            reply::answer(ctx, &query, &answer, config, scratch)?;
            Ok(match cookie::kind(scratch) {
                cookie::Cookie::None => Verdict::TxAnswer,
                cookie::Cookie::ClientOnly => Verdict::TxCookieClientOnly,
                cookie::Cookie::Valid => Verdict::TxCookie,
            })
        }
        RrlAction::Drop => Err(Verdict::DropRrl),
        RrlAction::Slip => {
            reply::slip(ctx, &query, &answer, config, scratch)?;
            Err(Verdict::TxRrlSlip)
        }
    }
}

/// Whether the daemon lets the fast path answer and is alive.
#[inline(always)]
fn fresh(config: &Config) -> Result<(), Verdict> {
    if config.enabled == 0 {
        return Err(Verdict::PassStale);
    }
    // The coarse clock (jiffies resolution, kernel 5.11) is plenty for a
    // heartbeat measured in seconds and costs a fraction of the precise one.
    // SAFETY: helper without arguments.
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    if now.wrapping_sub(config.heartbeat_ns) > config.heartbeat_timeout_ns {
        return Err(Verdict::PassStale);
    }
    Ok(())
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
