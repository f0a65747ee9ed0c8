//! The one way into the packet: a bounds-checked, typed view at an offset
//! (xdp-tutorial's `parsing_helpers.h` cursor). Nothing is dereferenced
//! before its check; views taken before a `bpf_xdp_adjust_*` call are stale
//! after it and must be taken again.

use aya_ebpf::programs::XdpContext;
use dns_xdp_common::net::{EthHdr, Ipv4Hdr, Ipv6Hdr, UdpHdr, VlanHdr};

/// Types that may be viewed at any offset of a packet.
///
/// # Safety
/// Implementors have alignment 1 and no invalid bit patterns.
pub unsafe trait Wire {}
// SAFETY: byte arrays and the `net` headers (alignment 1 asserted there).
unsafe impl<const N: usize> Wire for [u8; N] {}
unsafe impl Wire for EthHdr {}
unsafe impl Wire for VlanHdr {}
unsafe impl Wire for Ipv4Hdr {}
unsafe impl Wire for Ipv6Hdr {}
unsafe impl Wire for UdpHdr {}

/// Bounds-checked pointer into the packet; nothing is read before the check.
#[inline(always)]
pub fn ptr_at<T: Wire>(ctx: &XdpContext, offset: usize) -> Option<*mut T> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + core::mem::size_of::<T>() > end {
        return None;
    }
    Some((start + offset) as *mut T)
}

/// The header of type `T` at `offset`, if the packet holds all of it.
#[inline(always)]
pub fn header<T: Wire>(ctx: &XdpContext, offset: usize) -> Option<&T> {
    // SAFETY: in bounds (checked by ptr_at); any offset is aligned for a
    // `Wire` type and any bytes are a valid one.
    ptr_at(ctx, offset).map(|p| unsafe { &*p })
}

/// The header of type `T` at `offset`, writable.
#[inline(always)]
#[expect(clippy::mut_from_ref, reason = "the packet is not memory of the context struct; see the module docs")]
pub fn header_mut<T: Wire>(ctx: &XdpContext, offset: usize) -> Option<&mut T> {
    // SAFETY: as in `header`; the program holds no other view of these bytes.
    ptr_at(ctx, offset).map(|p| unsafe { &mut *p })
}
