//! Stage 1: Ethernet, an optional 802.1Q tag, IPv4 (no options, no
//! fragments) or IPv6 (no extension headers), UDP to a service address and
//! port. Its result, [`PktDesc`], is what every later stage knows of the
//! frame's layout (Knot's `pkt_desc`).

use aya_ebpf::programs::XdpContext;
use dns_xdp_common::{
    ServiceKey, Verdict,
    net::{
        ETH_P_8021AD, ETH_P_8021Q, ETH_P_IP, ETH_P_IPV6, EthHdr, IPPROTO_UDP, IPV6_FRAGMENT, Ipv4Hdr, Ipv6Hdr, UdpHdr,
        VlanHdr, is_ipv6_extension,
    },
};

use crate::{maps::DNS_SERVICES, packet::header};

/// Where the headers of a query to the service are.
pub struct PktDesc {
    /// Offset of the IP header.
    pub l3: usize,
    pub ipv6: bool,
    /// Offset of the UDP header.
    pub l4: usize,
    /// Offset of the DNS message and its length per the UDP header.
    pub dns_off: usize,
    pub dns_len: usize,
}

/// What the IP header of a packet to the service told: where UDP starts
/// and how long the IP payload is.
struct Ip {
    ipv6: bool,
    l4: usize,
    payload_len: usize,
}

#[inline(always)]
pub fn parse(ctx: &XdpContext) -> Result<PktDesc, Verdict> {
    let not_dns = Verdict::PassNotDns;
    let eth: &EthHdr = header(ctx, 0).ok_or(not_dns)?;
    let mut ethertype = eth.ether_type();
    let mut l3 = EthHdr::LEN;
    if ethertype == ETH_P_8021Q {
        let tag: &VlanHdr = header(ctx, l3).ok_or(not_dns)?;
        ethertype = tag.ether_type();
        l3 += VlanHdr::LEN;
        if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
            return Err(Verdict::PassUnusualHeaders);
        }
    } else if ethertype == ETH_P_8021AD {
        return Err(Verdict::PassUnusualHeaders);
    }
    let frame_len = ctx.data_end() - ctx.data();
    let ip = if ethertype == ETH_P_IP {
        ipv4(ctx, l3, frame_len)?
    } else if ethertype == ETH_P_IPV6 {
        ipv6(ctx, l3, frame_len)?
    } else {
        return Err(not_dns);
    };
    let udp: &UdpHdr = header(ctx, ip.l4).ok_or(not_dns)?;
    let udp_len = udp.len() as usize;
    if udp_len < UdpHdr::LEN || udp_len != ip.payload_len {
        return Err(Verdict::DropMalformed);
    }
    Ok(PktDesc { l3, ipv6: ip.ipv6, l4: ip.l4, dns_off: ip.l4 + UdpHdr::LEN, dns_len: udp_len - UdpHdr::LEN })
}

#[inline(always)]
fn ipv4(ctx: &XdpContext, l3: usize, frame_len: usize) -> Result<Ip, Verdict> {
    let not_dns = Verdict::PassNotDns;
    let ip: &Ipv4Hdr = header(ctx, l3).ok_or(not_dns)?;
    if ip.proto != IPPROTO_UDP {
        return Err(not_dns);
    }
    if ip.version_ihl != Ipv4Hdr::VERSION_IHL_PLAIN {
        return Err(Verdict::PassUnusualHeaders);
    }
    if ip.is_fragment() {
        return Err(Verdict::PassFragment);
    }
    let total = ip.total_len() as usize;
    let l4 = l3 + Ipv4Hdr::LEN;
    let udp: &UdpHdr = header(ctx, l4).ok_or(not_dns)?;
    let service = ServiceKey::v4(ip.dst, udp.dst);
    // Ethernet may pad a short frame: the IP length may be less than the
    // frame, never more.
    if total < Ipv4Hdr::LEN || l3 + total > frame_len {
        return Err(malformed_if_ours(&service));
    }
    // Each family looks its own key up, built from constants and the packet
    // right here. A key merged from both branches was built on the stack
    // through a call to memset, and the verifier lost the bounds of the
    // offsets spilled beside it.
    if !is_service(&service) {
        return Err(not_dns);
    }
    Ok(Ip { ipv6: false, l4, payload_len: total - Ipv4Hdr::LEN })
}

#[inline(always)]
fn ipv6(ctx: &XdpContext, l3: usize, frame_len: usize) -> Result<Ip, Verdict> {
    let not_dns = Verdict::PassNotDns;
    let ip: &Ipv6Hdr = header(ctx, l3).ok_or(not_dns)?;
    // The kernel drops a header of another version; never answer one.
    if ip.version() != 6 {
        return Err(Verdict::PassUnusualHeaders);
    }
    match ip.next_header {
        IPPROTO_UDP => {}
        IPV6_FRAGMENT => return Err(Verdict::PassFragment),
        next if is_ipv6_extension(next) => return Err(Verdict::PassUnusualHeaders),
        _ => return Err(not_dns),
    }
    let payload = ip.payload_len() as usize;
    let l4 = l3 + Ipv6Hdr::LEN;
    let udp: &UdpHdr = header(ctx, l4).ok_or(not_dns)?;
    let service = ServiceKey::v6(ip.dst, udp.dst);
    if l4 + payload > frame_len {
        return Err(malformed_if_ours(&service));
    }
    if !is_service(&service) {
        return Err(not_dns);
    }
    Ok(Ip { ipv6: true, l4, payload_len: payload })
}

/// Whether the server answers on the key's address (or on any address of
/// its family) and port.
#[inline(always)]
pub fn is_service(key: &ServiceKey) -> bool {
    // SAFETY: only presence is tested; the value is not read.
    if unsafe { DNS_SERVICES.get(key) }.is_some() {
        return true;
    }
    // SAFETY: as above.
    unsafe { DNS_SERVICES.get(key.any_addr()) }.is_some()
}

/// Garbage addressed to the service is dropped; anyone else's is passed.
#[inline(always)]
fn malformed_if_ours(key: &ServiceKey) -> Verdict {
    if is_service(key) { Verdict::DropMalformed } else { Verdict::PassNotDns }
}
