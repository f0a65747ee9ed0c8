//! dns-xdp: an authoritative DNS server whose hot answers are served by an
//! XDP program at the NIC driver.
//!
//! The daemon is the reference for every answer; the XDP program serves
//! copies of the daemon's prepared answers. Modules depend downward only
//! (see ARCHITECTURE.md). A query the daemon answers goes
//! [`server`] (sockets, [`udp`] batches) -> [`wire`] (parse, assemble) ->
//! [`answer_cache`] or [`authority`] (lookup in the [`zone`]s) ->
//! [`prepared`] (encode) -> back out of [`server`]. An answer the fast path
//! may serve then goes [`map_writer::MapFeed`] -> [`map_writer`] (slot
//! encoding) -> [`table`] (the mapped answer table) -> the XDP program that
//! [`fastpath`] loads and attaches. [`daemon`] wires these together from
//! [`config`]; [`counters`] are the daemon's own counters.

pub mod announce;
pub mod answer_cache;
pub mod authority;
pub mod config;
pub mod control;
pub mod cookies;
pub mod counters;
pub mod daemon;
pub mod fastpath;
pub mod health;
pub mod identity;
#[cfg(feature = "lab")]
pub mod lab;
pub mod map_writer;
pub mod metrics;
pub mod missed;
pub mod prepared;
pub mod privileges;
pub mod probe;
pub mod querylog;
pub mod rrl;
pub mod secondary;
pub mod server;
pub mod stats;
pub mod table;
pub mod udp;
pub mod watch;
pub mod wire;
pub mod zone;
