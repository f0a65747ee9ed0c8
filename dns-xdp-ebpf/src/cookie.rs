//! Stage 7: DNS cookies (RFC 7873, server cookies of RFC 9018), after the
//! answer is known and before rate limiting. With cookies on, a query's
//! COOKIE option (found by `edns::parse`) is answered as the daemon's
//! `cookies` module answers it: a client cookie alone, or a server cookie
//! valid with the current or the previous secret, gets a fresh server
//! cookie in the reply's OPT record; any other server cookie (another
//! server's, a stale one) goes to the daemon. The fresh cookie is written
//! to `Scratch::cookie` with its checksum sum for `reply::answer`.

use aya_ebpf::{helpers::bpf_ktime_get_coarse_ns, programs::XdpContext};
use dns_xdp_common::{
    Config, Verdict, checksum,
    cookie::{self, CLIENT_COOKIE_LEN, COOKIE_DATA_LEN, ClientAddr},
    edns,
    net::{Ipv4Hdr, Ipv6Hdr},
};

use crate::{
    edns::Edns,
    headers::PktDesc,
    packet::header,
    scratch::{Scratch, byte, carried, launder},
};

/// What the query's cookie was, for the verdict and rate limiting; kept
/// in `carried[COOKIE_VERDICT]` (see there) and read back with [`kind`].
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Cookie {
    /// None, or cookies are off: the reply carries none.
    None = 0,
    /// A client cookie alone.
    ClientOnly = 1,
    /// A server cookie of ours: the source is proven.
    Valid = 2,
}

/// The kind of cookie [`check`] found in this query.
#[inline(always)]
pub fn kind(scratch: &Scratch) -> Cookie {
    // SAFETY: a valid, aligned u64 in per-CPU map memory, written by `check`.
    match unsafe { core::ptr::read_volatile(&scratch.carried[carried::COOKIE_VERDICT]) } {
        1 => Cookie::ClientOnly,
        2 => Cookie::Valid,
        _ => Cookie::None,
    }
}

/// Checks the query's cookie; `Ok` when the answer may go out, with
/// [`kind`] saying what the cookie was.
#[inline(always)]
pub fn check(
    ctx: &XdpContext,
    pkt: &PktDesc,
    config: &Config,
    scratch: &mut Scratch,
    edns: &Edns,
) -> Result<(), Verdict> {
    launder(&mut scratch.carried[carried::COOKIE_OUT_LEN], 0);
    launder(&mut scratch.carried[carried::COOKIE_VERDICT], Cookie::None as u64);
    // SAFETY: a valid, aligned u64 in per-CPU map memory; `edns::parse`
    // wrote it for this query when it has an OPT record.
    let len = unsafe { core::ptr::read_volatile(&scratch.carried[carried::COOKIE_LEN]) } as usize;
    if !edns.present || len == 0 || config.cookies == 0 {
        return Ok(());
    }
    if len != CLIENT_COOKIE_LEN && len != COOKIE_DATA_LEN {
        // A server cookie of another length is not one this server makes.
        return Err(Verdict::PassCookie);
    }
    // SAFETY: as above. `byte` masks the offset.
    let at = unsafe { core::ptr::read_volatile(&scratch.carried[carried::COOKIE_AT]) } as usize;
    let mut received = [0u8; COOKIE_DATA_LEN];
    for (i, b) in received.iter_mut().enumerate() {
        *b = byte(&scratch.msg, at + i);
    }
    let client = if pkt.ipv6 {
        let ip: &Ipv6Hdr = header(ctx, pkt.l3).ok_or(Verdict::DropInternal)?;
        ClientAddr::V6(ip.src)
    } else {
        let ip: &Ipv4Hdr = header(ctx, pkt.l3).ok_or(Verdict::DropInternal)?;
        ClientAddr::V4(ip.src)
    };
    // The wall clock in seconds: XDP has none, so the daemon publishes
    // the offset of CLOCK_REALTIME from the coarse monotonic clock.
    // SAFETY: helper without arguments.
    let now_ns = unsafe { bpf_ktime_get_coarse_ns() }.wrapping_add(config.wall_offset_ns);
    let now = (now_ns / 1_000_000_000) as u32;
    let verdict = if len == CLIENT_COOKIE_LEN {
        Cookie::ClientOnly
    } else {
        let valid = cookie::valid_with(&config.cookie_secret, &received, &client, now)
            || (config.cookie_previous != 0
                && cookie::valid_with(&config.cookie_secret_previous, &received, &client, now));
        if !valid {
            return Err(Verdict::PassCookie);
        }
        Cookie::Valid
    };
    let mut client_cookie = [0u8; CLIENT_COOKIE_LEN];
    client_cookie.copy_from_slice(&received[..CLIENT_COOKIE_LEN]);
    let data = cookie::answer_data(&config.cookie_secret, &client_cookie, &client, now);
    let option = &mut scratch.cookie;
    option[..2].copy_from_slice(&edns::OPTION_COOKIE.to_be_bytes());
    option[2..4].copy_from_slice(&(COOKIE_DATA_LEN as u16).to_be_bytes());
    option[4..].copy_from_slice(&data);
    let sum = checksum::sum_bytes(option);
    launder(&mut scratch.carried[carried::COOKIE_OUT_SUM], u64::from(sum));
    launder(&mut scratch.carried[carried::COOKIE_OUT_LEN], cookie::COOKIE_OPTION_LEN as u64);
    launder(&mut scratch.carried[carried::COOKIE_VERDICT], verdict as u64);
    Ok(())
}
