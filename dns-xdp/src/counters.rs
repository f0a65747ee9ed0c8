//! The daemon's own counters: bumped by the socket handlers, published to
//! the XDP config map with each heartbeat (so `dns-xdp stats` reads them
//! from the kernel, beside the program's verdict counters).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use dns_xdp_common::DaemonStats;

#[derive(Default, Debug)]
pub struct Counters {
    pub udp_queries: AtomicU64,
    pub tcp_queries: AtomicU64,
    pub responses: AtomicU64,
    pub truncated: AtomicU64,
    pub dropped: AtomicU64,
}

impl Counters {
    pub fn snapshot_into(&self, out: &mut DaemonStats) {
        out.udp_queries = self.udp_queries.load(Relaxed);
        out.tcp_queries = self.tcp_queries.load(Relaxed);
        out.responses = self.responses.load(Relaxed);
        out.truncated = self.truncated.load(Relaxed);
        out.dropped = self.dropped.load(Relaxed);
    }
}
