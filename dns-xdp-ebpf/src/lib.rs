#![no_std]
// Present so dns-xdp can name this crate as a build dependency and be
// rebuilt when the XDP program changes; the program is the binary target.
