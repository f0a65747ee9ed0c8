//! Query logging, off by default: with `--query-log-sample N`, one query in
//! N that reaches the daemon is logged as one `query` event (client,
//! transport, question, rcode, zone), so a busy server's log stays readable
//! and cheap. Queries the XDP program answers never reach the daemon and
//! are not logged: their counts are in `dns-xdp stats`.

use std::{
    net::SocketAddr,
    sync::atomic::{AtomicU64, Ordering::Relaxed},
};

use hickory_proto::op::ResponseCode;

use crate::missed::question;

#[derive(Debug, Default)]
pub struct QueryLog {
    /// Log one query in this many; 0: off.
    sample_every: u64,
    seen: AtomicU64,
}

impl QueryLog {
    pub fn new(sample_every: u64) -> Self {
        Self { sample_every, seen: AtomicU64::new(0) }
    }

    pub fn enabled(&self) -> bool {
        self.sample_every > 0
    }

    /// Logs this query if it is the sampled one. `client` is `None` where
    /// the transport does not say.
    pub fn record(
        &self,
        client: Option<SocketAddr>,
        transport: &str,
        query: &[u8],
        rcode: ResponseCode,
        zone: Option<&hickory_proto::rr::Name>,
    ) {
        if !self.enabled() || !self.seen.fetch_add(1, Relaxed).is_multiple_of(self.sample_every) {
            return;
        }
        let (qname, qtype) = match question(query) {
            Some((name, qtype)) => (name.to_ascii(), qtype.to_string()),
            None => ("-".to_owned(), "-".to_owned()),
        };
        tracing::info!(
            target: "dns_xdp::query",
            client = %client.map_or_else(|| "-".to_owned(), |c| c.to_string()),
            transport,
            qname,
            qtype,
            rcode = %crate::wire::rcode_mnemonic(u16::from(rcode)),
            zone = %zone.map_or_else(|| "-".to_owned(), |z| z.to_ascii()),
            sampled_one_in = self.sample_every,
            "query"
        );
    }
}
