//! Response rate limiting of the daemon's own UDP answers, with the policy
//! the XDP program applies (`dns_xdp_common::rrl`): a table of the same
//! size, so memory stays fixed whatever the number of sources. The two
//! tables are separate: a prefix gets at most the rate from each path.

use std::{
    net::IpAddr,
    sync::{Mutex, atomic::Ordering::Relaxed},
    time::Instant,
};

use dns_xdp_common::rrl::{RRL_BUCKETS, RrlAction, RrlBucket, account, prefix_key};

use crate::{config::RrlSettings, counters::Counters};

pub struct RateLimiter {
    settings: RrlSettings,
    table: Mutex<Vec<RrlBucket>>,
    /// The clock the buckets' schedules count from.
    start: Instant,
}

impl RateLimiter {
    pub fn new(settings: RrlSettings) -> Self {
        Self { settings, table: Mutex::new(vec![RrlBucket::default(); RRL_BUCKETS]), start: Instant::now() }
    }

    /// Accounts one answer to `client` and says what to do with it; counts
    /// drops and slips.
    pub fn check(&self, client: IpAddr, counters: &Counters) -> RrlAction {
        if self.settings.is_exempt(client) {
            return RrlAction::Answer;
        }
        let key = match client {
            IpAddr::V4(v4) => prefix_key(&v4.octets(), &self.settings.limits),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => prefix_key(&v4.octets(), &self.settings.limits),
                None => prefix_key(&v6.octets(), &self.settings.limits),
            },
        };
        // Offset by a second so a fresh bucket (due 0) is never ahead.
        let now = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX).saturating_add(1_000_000_000);
        let action = {
            let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
            account(&mut table, key, now, &self.settings.limits)
        };
        match action {
            RrlAction::Answer => {}
            RrlAction::Drop => {
                counters.rrl_dropped.fetch_add(1, Relaxed);
            }
            RrlAction::Slip => {
                counters.rrl_slipped.fetch_add(1, Relaxed);
            }
        }
        action
    }
}
