//! Ethernet, 802.1Q, IPv4, IPv6 and UDP headers as the XDP program reads and
//! rewrites them in the packet.
//!
//! Every field is a byte array (or a single byte) in network order, read and
//! written through big-endian accessors: the structs have alignment 1, so a
//! reference to one may sit at any offset of a frame, and no field's meaning
//! depends on the host's byte order. Sizes are pinned below.

pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86dd;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_8021AD: u16 = 0x88a8;
pub const IPPROTO_UDP: u8 = 17;

/// The IPv6 fragment header's next-header value.
pub const IPV6_FRAGMENT: u8 = 44;

/// IPv6 next-header values other than the fragment header that are
/// extension headers (RFC 8200 4 and the IANA registry): the fast path does
/// not walk them.
#[inline(always)]
pub const fn is_ipv6_extension(next_header: u8) -> bool {
    matches!(next_header, 0 | 43 | 50 | 51 | 60 | 135 | 139 | 140 | 253 | 254)
}

/// Sum of `bytes` as big-endian 16-bit words, unfolded (`N` even).
#[inline(always)]
const fn words_sum<const N: usize>(bytes: &[u8; N]) -> u32 {
    let mut sum = 0u32;
    let mut i = 0;
    while i + 1 < N {
        sum += u16::from_be_bytes([bytes[i], bytes[i + 1]]) as u32;
        i += 2;
    }
    sum
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EthHdr {
    pub dst: [u8; 6],
    pub src: [u8; 6],
    pub ether_type: [u8; 2],
}

impl EthHdr {
    pub const LEN: usize = 14;

    #[inline(always)]
    pub const fn ether_type(&self) -> u16 {
        u16::from_be_bytes(self.ether_type)
    }

    /// Addresses the frame back to its sender.
    #[inline(always)]
    pub fn swap_addrs(&mut self) {
        core::mem::swap(&mut self.dst, &mut self.src);
    }
}

/// An 802.1Q (or 802.1ad) tag: the TCI, then the ethertype it precedes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VlanHdr {
    pub tci: [u8; 2],
    pub ether_type: [u8; 2],
}

impl VlanHdr {
    pub const LEN: usize = 4;

    #[inline(always)]
    pub const fn ether_type(&self) -> u16 {
        u16::from_be_bytes(self.ether_type)
    }
}

/// An IPv4 header without options.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Hdr {
    /// Version (high nibble) and header length in words (low nibble).
    pub version_ihl: u8,
    pub tos: u8,
    pub total_len: [u8; 2],
    pub id: [u8; 2],
    /// Flags (high 3 bits) and fragment offset.
    pub frag: [u8; 2],
    pub ttl: u8,
    pub proto: u8,
    pub check: [u8; 2],
    pub src: [u8; 4],
    pub dst: [u8; 4],
}

impl Ipv4Hdr {
    pub const LEN: usize = 20;
    /// Version 4, five words: no options.
    pub const VERSION_IHL_PLAIN: u8 = 0x45;
    /// The don't-fragment flag in [`Self::frag`].
    pub const DF: u16 = 0x4000;
    /// More-fragments flag and fragment offset.
    pub const FRAGMENT_MASK: u16 = 0x3fff;

    #[inline(always)]
    pub const fn total_len(&self) -> u16 {
        u16::from_be_bytes(self.total_len)
    }

    /// A fragment of a larger datagram: more fragments follow, or this is
    /// not the first.
    #[inline(always)]
    pub const fn is_fragment(&self) -> bool {
        u16::from_be_bytes(self.frag) & Self::FRAGMENT_MASK != 0
    }

    #[inline(always)]
    pub fn swap_addrs(&mut self) {
        core::mem::swap(&mut self.src, &mut self.dst);
    }

    /// Sum of the two addresses for a UDP pseudo-header, unfolded.
    #[inline(always)]
    pub const fn addrs_sum(&self) -> u32 {
        words_sum(&self.src) + words_sum(&self.dst)
    }

    /// Sum of the whole header as big-endian words, checksum field included,
    /// unfolded: zero the checksum first to compute it (RFC 791).
    #[inline(always)]
    pub const fn sum(&self) -> u32 {
        u16::from_be_bytes([self.version_ihl, self.tos]) as u32
            + words_sum(&self.total_len)
            + words_sum(&self.id)
            + words_sum(&self.frag)
            + u16::from_be_bytes([self.ttl, self.proto]) as u32
            + words_sum(&self.check)
            + self.addrs_sum()
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Hdr {
    /// Version, traffic class and flow label.
    pub version_class_flow: [u8; 4],
    pub payload_len: [u8; 2],
    pub next_header: u8,
    pub hop_limit: u8,
    pub src: [u8; 16],
    pub dst: [u8; 16],
}

impl Ipv6Hdr {
    pub const LEN: usize = 40;

    /// The IP version, the high nibble of the first byte: 6 for a header the
    /// kernel accepts (it drops any other, RFC 8200 section 3).
    #[inline(always)]
    pub const fn version(&self) -> u8 {
        self.version_class_flow[0] >> 4
    }

    #[inline(always)]
    pub const fn payload_len(&self) -> u16 {
        u16::from_be_bytes(self.payload_len)
    }

    #[inline(always)]
    pub fn swap_addrs(&mut self) {
        core::mem::swap(&mut self.src, &mut self.dst);
    }

    /// Sum of the two addresses for a UDP pseudo-header, unfolded.
    #[inline(always)]
    pub const fn addrs_sum(&self) -> u32 {
        words_sum(&self.src) + words_sum(&self.dst)
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpHdr {
    pub src: [u8; 2],
    pub dst: [u8; 2],
    pub len: [u8; 2],
    pub check: [u8; 2],
}

impl UdpHdr {
    pub const LEN: usize = 8;

    /// UDP length: header and payload.
    #[inline(always)]
    pub const fn len(&self) -> u16 {
        u16::from_be_bytes(self.len)
    }

    #[inline(always)]
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline(always)]
    pub fn swap_ports(&mut self) {
        core::mem::swap(&mut self.src, &mut self.dst);
    }

    /// Sum of the two ports, unfolded.
    #[inline(always)]
    pub const fn ports_sum(&self) -> u32 {
        words_sum(&self.src) + words_sum(&self.dst)
    }
}

const _: () = assert!(core::mem::size_of::<EthHdr>() == EthHdr::LEN && core::mem::align_of::<EthHdr>() == 1);
const _: () = assert!(core::mem::size_of::<VlanHdr>() == VlanHdr::LEN && core::mem::align_of::<VlanHdr>() == 1);
const _: () = assert!(core::mem::size_of::<Ipv4Hdr>() == Ipv4Hdr::LEN && core::mem::align_of::<Ipv4Hdr>() == 1);
const _: () = assert!(core::mem::size_of::<Ipv6Hdr>() == Ipv6Hdr::LEN && core::mem::align_of::<Ipv6Hdr>() == 1);
const _: () = assert!(core::mem::size_of::<UdpHdr>() == UdpHdr::LEN && core::mem::align_of::<UdpHdr>() == 1);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum;

    #[test]
    fn ipv4_sum_is_the_rfc1071_sum_of_the_header_bytes() {
        // The example header of RFC 1071 errata / Wikipedia's "IPv4 header
        // checksum", with its checksum field filled in: the sum folds to
        // 0xffff.
        let bytes = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8,
            0x00, 0xc7,
        ];
        // SAFETY: Ipv4Hdr is 20 bytes of alignment 1 (asserted above).
        let hdr: Ipv4Hdr = unsafe { core::mem::transmute(bytes) };
        assert_eq!(hdr.sum(), checksum::sum_bytes(&bytes));
        assert_eq!(checksum::fold(hdr.sum()), 0xffff);
        assert_eq!(hdr.total_len(), 0x73);
        assert!(!hdr.is_fragment());
        assert_eq!(hdr.addrs_sum(), checksum::sum_bytes(&bytes[12..]));
    }

    #[test]
    fn fragments_are_told_by_the_mf_flag_or_an_offset() {
        let mut hdr: Ipv4Hdr = unsafe { core::mem::transmute([0u8; 20]) };
        hdr.frag = Ipv4Hdr::DF.to_be_bytes();
        assert!(!hdr.is_fragment());
        hdr.frag = [0x20, 0x00];
        assert!(hdr.is_fragment());
        hdr.frag = [0x00, 0x01];
        assert!(hdr.is_fragment());
    }

    #[test]
    fn accessors_read_network_order() {
        let udp = UdpHdr { src: [0x30, 0x39], dst: [0, 53], len: [0x01, 0x02], check: [0; 2] };
        assert_eq!(udp.len(), 0x0102);
        assert_eq!(udp.ports_sum(), 0x3039 + 53);
        let eth = EthHdr { dst: [1; 6], src: [2; 6], ether_type: [0x86, 0xdd] };
        assert_eq!(eth.ether_type(), ETH_P_IPV6);
        let mut swapped = eth;
        swapped.swap_addrs();
        assert_eq!((swapped.dst, swapped.src), (eth.src, eth.dst));
        let mut v6: Ipv6Hdr = unsafe { core::mem::transmute([0u8; 40]) };
        v6.src[15] = 1;
        v6.dst[0] = 0x20;
        v6.payload_len = [0, 40];
        assert_eq!(v6.payload_len(), 40);
        assert_eq!(v6.addrs_sum(), 1 + 0x2000);
    }
}
