//! Helper programs for tests and benchmarks, in the object only with the
//! `lab` feature.

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
use dns_xdp_common::{
    ServiceKey, checksum, flags,
    net::{ETH_P_IP, EthHdr, IPPROTO_UDP, Ipv4Hdr, UdpHdr},
};

use crate::{
    headers::is_service,
    packet::{Wire, header_mut},
    scratch::DNS_HLEN,
};

/// A UDP header and the DNS header behind it, bounds-checked at once.
#[repr(C)]
struct UdpDns {
    udp: UdpHdr,
    dns: [u8; DNS_HLEN],
}
// SAFETY: made of alignment-1 wire types.
unsafe impl Wire for UdpDns {}

/// Passes everything. Attached to the client end of a veth pair in tests
/// and benchmarks: XDP_TX into a veth is only delivered when its peer runs
/// an XDP program.
#[xdp]
pub fn dns_xdp_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

/// The ceiling of this machine for benchmarks: turns any UDP/IPv4 packet to
/// a service port around (addresses, ports, QR bit) with no DNS work and
/// XDP_TX. Not a DNS server: it answers every query with itself.
#[xdp]
pub fn dns_xdp_bounce(ctx: XdpContext) -> u32 {
    match bounce(&ctx) {
        Some(()) => xdp_action::XDP_TX,
        None => xdp_action::XDP_PASS,
    }
}

#[inline(always)]
fn bounce(ctx: &XdpContext) -> Option<()> {
    let eth: &mut EthHdr = header_mut(ctx, 0)?;
    if eth.ether_type() != ETH_P_IP {
        return None;
    }
    let ip: &mut Ipv4Hdr = header_mut(ctx, EthHdr::LEN)?;
    if ip.version_ihl != Ipv4Hdr::VERSION_IHL_PLAIN || ip.proto != IPPROTO_UDP {
        return None;
    }
    let UdpDns { udp, dns } = header_mut(ctx, EthHdr::LEN + Ipv4Hdr::LEN)?;
    if !is_service(&ServiceKey::v4(ip.dst, udp.dst)) {
        return None;
    }
    eth.swap_addrs();
    ip.swap_addrs();
    udp.swap_ports();
    // Set QR and patch the UDP checksum incrementally (RFC 1624 eqn. 3);
    // the swaps leave both checksums valid.
    let old = u16::from_be_bytes([dns[2], dns[3]]);
    let new = old | flags::QR;
    dns[2..4].copy_from_slice(&new.to_be_bytes());
    let csum = u16::from_be_bytes(udp.check);
    if csum != 0 {
        let sum = (!csum) as u32 + (!old) as u32 + new as u32;
        udp.check = checksum::finish(sum).to_be_bytes();
    }
    Some(())
}
