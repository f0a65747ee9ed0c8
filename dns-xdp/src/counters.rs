//! The daemon's own counters: bumped by the socket handlers, published to
//! the XDP config map with each heartbeat (so `dns-xdp stats` reads them
//! from the kernel, beside the program's verdict counters), and read by the
//! metrics endpoint.

use std::{
    collections::HashMap,
    sync::{
        RwLock,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
};

use dns_xdp_common::DaemonStats;
use hickory_proto::rr::Name;

/// Response codes counted one by one: 0 to 23 covers every rcode a server
/// sends (BADCOOKIE is 23); anything higher shares the last slot.
pub const RCODE_SLOTS: usize = 24;

/// The transports replies are counted by, in slot order.
pub const TRANSPORTS: [&str; 2] = ["udp", "tcp"];

/// Replies of one zone (or of no zone) by transport and rcode.
type ReplySlots = [[AtomicU64; RCODE_SLOTS]; TRANSPORTS.len()];

#[derive(Default, Debug)]
pub struct Counters {
    pub udp_queries: AtomicU64,
    pub tcp_queries: AtomicU64,
    pub responses: AtomicU64,
    pub truncated: AtomicU64,
    pub dropped: AtomicU64,
    pub tcp_refused: AtomicU64,
    pub udp_shed: AtomicU64,
    /// UDP answers over the rate limit, dropped and slipped.
    pub rrl_dropped: AtomicU64,
    pub rrl_slipped: AtomicU64,
    /// Queries with a COOKIE option the daemon answered, by what their
    /// server cookie was (RFC 7873 5.2): valid, invalid (another server's,
    /// or stale), or absent (a client cookie alone).
    pub cookie_valid: AtomicU64,
    pub cookie_invalid: AtomicU64,
    pub cookie_client_only: AtomicU64,
    /// By answering zone (`None`: no zone's data, e.g. REFUSED or FORMERR).
    /// Bounded by the zones configured since start: a zone's counters stay
    /// after it is removed, as Prometheus counters should.
    replies: RwLock<HashMap<Option<Name>, Box<ReplySlots>>>,
}

impl Counters {
    /// Counts the verdict on one query's server cookie.
    pub fn count_cookie(&self, verdict: dns_xdp_common::cookie::Received) {
        use dns_xdp_common::cookie::Received;
        let counter = match verdict {
            Received::Valid => &self.cookie_valid,
            Received::Invalid => &self.cookie_invalid,
            Received::ClientOnly => &self.cookie_client_only,
        };
        counter.fetch_add(1, Relaxed);
    }

    pub fn snapshot_into(&self, out: &mut DaemonStats) {
        out.udp_queries = self.udp_queries.load(Relaxed);
        out.tcp_queries = self.tcp_queries.load(Relaxed);
        out.responses = self.responses.load(Relaxed);
        out.truncated = self.truncated.load(Relaxed);
        out.dropped = self.dropped.load(Relaxed);
        out.tcp_refused = self.tcp_refused.load(Relaxed);
        out.udp_shed = self.udp_shed.load(Relaxed);
        out.rrl_dropped = self.rrl_dropped.load(Relaxed);
        out.rrl_slipped = self.rrl_slipped.load(Relaxed);
        out.cookie_valid = self.cookie_valid.load(Relaxed);
        out.cookie_invalid = self.cookie_invalid.load(Relaxed);
        out.cookie_client_only = self.cookie_client_only.load(Relaxed);
    }

    /// Counts one reply sent. `transport` indexes [`TRANSPORTS`].
    pub fn count_reply(&self, zone: &Option<Name>, transport: usize, rcode: u16) {
        let rcode = usize::from(rcode).min(RCODE_SLOTS - 1);
        let transport = transport.min(TRANSPORTS.len() - 1);
        // The read lock is the common case: only a zone's first reply takes
        // the write lock.
        {
            let replies = self.replies.read().unwrap_or_else(|p| p.into_inner());
            if let Some(slots) = replies.get(zone) {
                slots[transport][rcode].fetch_add(1, Relaxed);
                return;
            }
        }
        let mut replies = self.replies.write().unwrap_or_else(|p| p.into_inner());
        let slots = replies.entry(zone.clone()).or_default();
        slots[transport][rcode].fetch_add(1, Relaxed);
    }

    /// Every nonzero reply count as (zone, transport, rcode, count).
    pub fn replies(&self) -> Vec<(Option<Name>, &'static str, u16, u64)> {
        let replies = self.replies.read().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        for (zone, slots) in replies.iter() {
            for (transport, by_rcode) in TRANSPORTS.iter().zip(slots.iter()) {
                for (rcode, count) in by_rcode.iter().enumerate() {
                    let count = count.load(Relaxed);
                    if count > 0 {
                        out.push((zone.clone(), *transport, rcode as u16, count));
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_counted_by_zone_transport_and_rcode() {
        let counters = Counters::default();
        let zone = Some(Name::from_ascii("example.test.").expect("name"));
        counters.count_reply(&zone, 0, 0);
        counters.count_reply(&zone, 0, 0);
        counters.count_reply(&zone, 1, 3);
        counters.count_reply(&None, 0, 5);
        let mut seen = counters.replies();
        seen.sort_by_key(|(zone, transport, rcode, _)| (zone.is_none(), *transport, *rcode));
        assert_eq!(seen, [(zone.clone(), "tcp", 3, 1), (zone, "udp", 0, 2), (None, "udp", 5, 1)]);
    }
}
