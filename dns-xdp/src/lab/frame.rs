//! Ethernet/IP/UDP frames for running the XDP program with BPF_PROG_TEST_RUN
//! (the tests, and `dns-xdp bench-prog`) and for checking what it sends back.

use std::net::IpAddr;

use dns_xdp_common::checksum::{complement, finish, sum_bytes, verifies};

/// Addresses of a query frame; replies are expected with both sides swapped.
#[derive(Clone, Copy, Debug)]
pub struct Endpoints {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
}

impl Endpoints {
    pub fn v4(dport: u16) -> Self {
        Self {
            src_mac: [0x02, 0, 0, 0, 0, 0x02],
            dst_mac: [0x02, 0, 0, 0, 0, 0x01],
            src: "198.18.0.2".parse().expect("literal"),
            dst: "198.18.0.1".parse().expect("literal"),
            sport: 40_000,
            dport,
        }
    }

    pub fn v6(dport: u16) -> Self {
        Self {
            src: "2001:db8::2".parse().expect("literal"),
            dst: "2001:db8::1".parse().expect("literal"),
            ..Self::v4(dport)
        }
    }
}

fn pseudo_header_sum(src: IpAddr, dst: IpAddr, udp_len: usize) -> u32 {
    let addrs = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => [s.octets().to_vec(), d.octets().to_vec()].concat(),
        (IpAddr::V6(s), IpAddr::V6(d)) => [s.octets().to_vec(), d.octets().to_vec()].concat(),
        _ => panic!("mixed address families"),
    };
    sum_bytes(&addrs) + 17 + udp_len as u32
}

/// A UDP frame carrying `payload`, with valid checksums; `vlan` adds an
/// 802.1Q tag, `padding` trailing bytes after the IP packet (as Ethernet
/// pads short frames).
pub fn udp_frame(ep: &Endpoints, payload: &[u8], vlan: Option<u16>, padding: usize) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&ep.dst_mac);
    f.extend_from_slice(&ep.src_mac);
    if let Some(id) = vlan {
        f.extend_from_slice(&0x8100u16.to_be_bytes());
        f.extend_from_slice(&id.to_be_bytes());
    }
    let udp_len = 8 + payload.len();
    let mut udp = Vec::with_capacity(udp_len);
    udp.extend_from_slice(&ep.sport.to_be_bytes());
    udp.extend_from_slice(&ep.dport.to_be_bytes());
    udp.extend_from_slice(&(udp_len as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    // finish() sends a zero checksum as 0xffff, as UDP requires.
    let csum = finish(pseudo_header_sum(ep.src, ep.dst, udp_len) + sum_bytes(&udp));
    udp[6..8].copy_from_slice(&csum.to_be_bytes());
    match (ep.src, ep.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            f.extend_from_slice(&0x0800u16.to_be_bytes());
            let mut ip = vec![0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, 17, 0, 0];
            ip[2..4].copy_from_slice(&((20 + udp_len) as u16).to_be_bytes());
            ip.extend_from_slice(&s.octets());
            ip.extend_from_slice(&d.octets());
            let c = complement(sum_bytes(&ip));
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            f.extend_from_slice(&ip);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            f.extend_from_slice(&0x86ddu16.to_be_bytes());
            let mut ip = vec![0x60, 0, 0, 0];
            ip.extend_from_slice(&(udp_len as u16).to_be_bytes());
            ip.extend_from_slice(&[17, 64]);
            ip.extend_from_slice(&s.octets());
            ip.extend_from_slice(&d.octets());
            f.extend_from_slice(&ip);
        }
        _ => panic!("mixed address families"),
    }
    f.extend_from_slice(&udp);
    f.extend(std::iter::repeat_n(0u8, padding));
    f
}

/// A frame as read back, with its checksums verified.
#[derive(Debug)]
pub struct ParsedFrame {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub vlan: Option<u16>,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub ip_checksum_ok: bool,
    pub udp_checksum_ok: bool,
    /// Bytes after the IP packet.
    pub trailing: usize,
    pub payload: Vec<u8>,
}

/// Parses an Ethernet frame carrying UDP over IPv4 or IPv6; `None` for
/// anything else or anything cut short.
pub fn parse_udp_frame(f: &[u8]) -> Option<ParsedFrame> {
    let dst_mac: [u8; 6] = f.get(0..6)?.try_into().ok()?;
    let src_mac: [u8; 6] = f.get(6..12)?.try_into().ok()?;
    let mut off = 12;
    let mut ethertype = u16::from_be_bytes([*f.get(off)?, *f.get(off + 1)?]);
    let mut vlan = None;
    if ethertype == 0x8100 {
        vlan = Some(u16::from_be_bytes([*f.get(14)?, *f.get(15)?]));
        off += 4;
        ethertype = u16::from_be_bytes([*f.get(off)?, *f.get(off + 1)?]);
    }
    off += 2;
    let (src, dst, l4, ip_ok, ip_end) = match ethertype {
        0x0800 => {
            let ip = f.get(off..off + 20)?;
            if ip[9] != 17 {
                return None;
            }
            let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
            let s: [u8; 4] = ip[12..16].try_into().ok()?;
            let d: [u8; 4] = ip[16..20].try_into().ok()?;
            (IpAddr::from(s), IpAddr::from(d), off + 20, verifies(sum_bytes(ip)), off + total)
        }
        0x86dd => {
            let ip = f.get(off..off + 40)?;
            if ip[6] != 17 {
                return None;
            }
            let plen = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
            let s: [u8; 16] = ip[8..24].try_into().ok()?;
            let d: [u8; 16] = ip[24..40].try_into().ok()?;
            (IpAddr::from(s), IpAddr::from(d), off + 40, true, off + 40 + plen)
        }
        _ => return None,
    };
    let udp = f.get(l4..ip_end)?;
    let udp_header = udp.get(..8)?;
    let udp_len = usize::from(u16::from_be_bytes([udp_header[4], udp_header[5]]));
    let udp = udp.get(..udp_len.max(8))?;
    let udp_ok = verifies(pseudo_header_sum(src, dst, udp_len) + sum_bytes(udp));
    let trailing = f.len().checked_sub(ip_end)?;
    Some(ParsedFrame {
        src_mac,
        dst_mac,
        vlan,
        src,
        dst,
        sport: u16::from_be_bytes([udp[0], udp[1]]),
        dport: u16::from_be_bytes([udp[2], udp[3]]),
        ip_checksum_ok: ip_ok,
        udp_checksum_ok: udp_ok,
        trailing,
        payload: udp[8..].to_vec(),
    })
}
