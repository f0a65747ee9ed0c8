//! The daemon's sockets: UDP on blocking threads (one syscall per packet
//! each way, no reactor in between), TCP on tokio (RFC 7766).

use std::{
    net::{SocketAddr, UdpSocket},
    sync::{Arc, RwLock, atomic::Ordering::Relaxed},
    time::Duration,
};

use anyhow::Context as _;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
    sync::Semaphore,
};

use crate::{
    answer_cache::AnswerCache,
    authority::Catalog,
    config::TcpLimits,
    counters::Counters,
    map_writer::MapFeed,
    missed::MissedNames,
    querylog::QueryLog,
    wire::{ReplySettings, Transport, respond_cached},
};

/// The live catalog, its generation and its answer cache, swapped whole on
/// reload.
pub struct Live {
    pub catalog: Arc<Catalog>,
    pub generation: u64,
    pub answers: Arc<AnswerCache>,
}

/// Questions the daemon keeps prepared answers for, per catalog.
pub const ANSWER_CACHE_ENTRIES: usize = 262_144;

impl Live {
    pub fn new(catalog: Arc<Catalog>, generation: u64) -> Self {
        Self { catalog, generation, answers: Arc::new(AnswerCache::new(ANSWER_CACHE_ENTRIES)) }
    }
}

/// State every socket handler shares.
pub struct Shared {
    pub live: RwLock<Live>,
    pub settings: ReplySettings,
    pub counters: Arc<Counters>,
    /// Where answers the fast path may serve go; `None` without one.
    pub map_feed: Option<MapFeed>,
    pub tcp: TcpLimits,
    /// Why the configured zones are not all loaded (the last reload's
    /// error); `None` when they are. Health reports it.
    pub zone_problem: RwLock<Option<String>>,
    /// A sample of the questions that reached the daemon over UDP (so the
    /// fast path passed them), for `dns-xdp stats --watch`.
    pub missed: MissedNames,
    /// The sampled query log (`--query-log-sample`); off by default.
    pub query_log: QueryLog,
}

impl Shared {
    fn current(&self) -> (Arc<Catalog>, Arc<AnswerCache>, u64) {
        let live = self.live.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        (Arc::clone(&live.catalog), Arc::clone(&live.answers), live.generation)
    }

    /// Answers one query and offers the answer to the fast path.
    pub fn handle(&self, query: &[u8], transport: Transport) -> Option<Vec<u8>> {
        self.handle_from(query, transport, None)
    }

    /// [`Shared::handle`] for a query from `client` (for the query log).
    pub fn handle_from(&self, query: &[u8], transport: Transport, client: Option<SocketAddr>) -> Option<Vec<u8>> {
        if transport == Transport::Udp {
            self.missed.offer(query);
        }
        let (catalog, answers, generation) = self.current();
        let Some(reply) = respond_cached(&catalog, Some(&answers), &self.settings, query, transport) else {
            self.counters.dropped.fetch_add(1, Relaxed);
            return None;
        };
        self.counters.responses.fetch_add(1, Relaxed);
        self.counters.count_reply(&reply.zone, transport as usize, u16::from(reply.rcode));
        if self.query_log.enabled() {
            let name = crate::counters::TRANSPORTS[(transport as usize).min(crate::counters::TRANSPORTS.len() - 1)];
            self.query_log.record(client, name, query, reply.rcode, reply.zone.as_ref());
        }
        if reply.truncated {
            self.counters.truncated.fetch_add(1, Relaxed);
        }
        if let (Some(feed), Some((qname, qtype, prepared))) = (&self.map_feed, reply.cacheable) {
            feed.offer(qname, qtype, prepared, generation);
        }
        Some(reply.bytes)
    }
}

/// Serves UDP on `socket` from `threads` blocking threads.
pub fn spawn_udp(shared: Arc<Shared>, socket: UdpSocket, threads: usize) -> anyhow::Result<()> {
    let addr = socket.local_addr()?;
    for i in 0..threads.max(1) {
        let socket = socket.try_clone().context("cloning the UDP socket")?;
        let shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name(format!("udp-{addr}-{i}"))
            .spawn(move || udp_loop(&shared, &socket))
            .context("starting a UDP thread")?;
    }
    Ok(())
}

fn udp_loop(shared: &Shared, socket: &UdpSocket) {
    let mut batch = crate::udp::Batch::new();
    let mut replies = Vec::with_capacity(crate::udp::BATCH);
    loop {
        match batch.receive(socket) {
            Ok(n) => shared.counters.udp_queries.fetch_add(n as u64, Relaxed),
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => {
                tracing::warn!(%err, "UDP receive failed");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        replies.clear();
        for (i, query, cut) in batch.datagrams() {
            // A query cut short cannot be answered as asked (a cut after
            // the question would even parse); its header can be.
            let client = if shared.query_log.enabled() { batch.peer(i) } else { None };
            let reply =
                if cut { crate::wire::formerr(query) } else { shared.handle_from(query, Transport::Udp, client) };
            if let Some(reply) = reply {
                replies.push((i, reply));
            }
        }
        batch.send(socket, &replies);
    }
}

/// Accepts TCP connections until the listener fails.
pub async fn serve_tcp(shared: Arc<Shared>, listener: TcpListener) {
    let permits = Arc::new(Semaphore::new(shared.tcp.max_connections));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(err) => {
                tracing::warn!(%err, "TCP accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        // At the limit, refuse new connections outright rather than let
        // them queue: clients retry, and the existing ones keep being served.
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            tracing::debug!(%peer, "TCP connection limit reached; closing");
            drop(stream);
            continue;
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            if let Err(err) = tcp_connection(&shared, stream).await {
                tracing::debug!(%peer, %err, "TCP connection closed");
            }
            drop(permit);
        });
    }
}

/// One connection: length-prefixed queries answered in order (RFC 7766 8),
/// closed after `idle_timeout` without a complete query.
async fn tcp_connection(shared: &Shared, mut stream: TcpStream) -> std::io::Result<()> {
    let idle = shared.tcp.idle_timeout;
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::with_capacity(512);
    loop {
        let mut len = [0u8; 2];
        let read = tokio::time::timeout(idle, async {
            stream.read_exact(&mut len).await?;
            buf.resize(usize::from(u16::from_be_bytes(len)), 0);
            stream.read_exact(&mut buf).await
        })
        .await;
        match read {
            // An empty message is no query (RFC 7766 8 frames queries); it
            // must not keep an otherwise idle connection open.
            Ok(Ok(_)) if buf.is_empty() => return Ok(()),
            Ok(Ok(_)) => {}
            Ok(Err(err)) if err.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(Err(err)) => return Err(err),
            Err(_elapsed) => return Ok(()),
        }
        shared.counters.tcp_queries.fetch_add(1, Relaxed);
        let Some(reply) = shared.handle(&buf, Transport::Tcp) else { continue };
        let Ok(reply_len) = u16::try_from(reply.len()) else { continue };
        let mut out = Vec::with_capacity(reply.len() + 2);
        out.extend_from_slice(&reply_len.to_be_bytes());
        out.extend_from_slice(&reply);
        tokio::time::timeout(idle, stream.write_all(&out))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "write timed out"))??;
    }
}

/// Binds the UDP socket and TCP listener for one address.
pub fn bind(addr: SocketAddr) -> anyhow::Result<(UdpSocket, std::net::TcpListener)> {
    let udp = UdpSocket::bind(addr).with_context(|| format!("binding UDP {addr}"))?;
    let tcp = std::net::TcpListener::bind(addr).with_context(|| format!("binding TCP {addr}"))?;
    tcp.set_nonblocking(true)?;
    Ok((udp, tcp))
}
