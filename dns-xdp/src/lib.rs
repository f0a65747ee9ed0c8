//! dns-xdp: an authoritative DNS server whose hot answers are served by an
//! XDP program at the NIC driver.
//!
//! The daemon is the reference for every answer ([`wire`]); the XDP program
//! serves copies of its prepared answers from a [`table`] the [`cache`]
//! writer keeps in line with the zone data.

pub mod authority;
pub mod cache;
pub mod config;
pub mod daemon;
pub mod fastpath;
#[cfg(feature = "lab")]
pub mod lab;
pub mod server;
pub mod stats;
pub mod table;
pub mod udp;
pub mod wire;
pub mod zone;
