//! The daemon's sockets: UDP on blocking threads (one syscall per packet
//! each way, no reactor in between), TCP on tokio (RFC 7766).

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr, UdpSocket},
    sync::{Arc, Mutex, RwLock, atomic::Ordering::Relaxed},
    time::Duration,
};

use anyhow::Context as _;
use dns_xdp_common::rrl::RrlAction;
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
    secondary::Notifier,
    wire::{ReplySettings, Transport, respond_to},
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
    pub tcp: TcpGate,
    /// Why the configured zones are not all loaded (the last reload's
    /// error); `None` when they are. Health reports it.
    pub zone_problem: RwLock<Option<String>>,
    /// A sample of the questions that reached the daemon over UDP (so the
    /// fast path passed them), for `dns-xdp stats --watch`.
    pub missed: MissedNames,
    /// The sampled query log (`--query-log-sample`); off by default.
    pub query_log: QueryLog,
    /// Set by `dns-xdp drain` or a stop signal with a drain delay: health
    /// fails so the routes are withdrawn, while queries are still answered.
    pub draining: std::sync::atomic::AtomicBool,
    /// Response rate limiting of UDP answers; `None` when off.
    pub rrl: Option<crate::rrl::RateLimiter>,
    /// NOTIFY for the secondary zones; every NOTIFY is NOTIMP without.
    pub notifier: Option<Arc<Notifier>>,
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

    /// [`Shared::handle`] for a query from `client` (for the query log and
    /// the cookies).
    pub fn handle_from(&self, query: &[u8], transport: Transport, client: Option<SocketAddr>) -> Option<Vec<u8>> {
        self.handle_peer(query, transport, client).map(|(reply, _)| reply)
    }

    /// [`Shared::handle_from`], and whether the query carried a valid
    /// server cookie (its source is then proven: no rate limiting).
    fn handle_peer(&self, query: &[u8], transport: Transport, client: Option<SocketAddr>) -> Option<(Vec<u8>, bool)> {
        if transport == Transport::Udp {
            self.missed.offer(query);
        }
        if let (Some(notifier), Some(client)) = (&self.notifier, client)
            && let Some(reply) = notifier.handle(query, client)
        {
            self.counters.responses.fetch_add(1, Relaxed);
            return Some((reply, false));
        }
        let (catalog, answers, generation) = self.current();
        let peer = client.filter(|_| self.settings.cookies.is_some()).map(|c| crate::cookies::Peer::now(c.ip()));
        let Some(reply) = respond_to(&catalog, Some(&answers), &self.settings, query, transport, peer.as_ref()) else {
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
        if let Some(verdict) = reply.cookie {
            self.counters.count_cookie(verdict);
        }
        let proven = reply.cookie == Some(dns_xdp_common::cookie::Received::Valid);
        if let (Some(feed), Some((qname, qtype, dnssec_ok, prepared))) = (&self.map_feed, reply.cacheable) {
            feed.offer(qname, qtype, dnssec_ok, prepared, generation);
        }
        Some((reply.bytes, proven))
    }
}

/// Serves UDP on `socket`: one receiver thread drains the socket into a
/// bounded queue of batches, `threads` workers answer them. When every
/// batch is queued or being answered (the workers are behind, as in a flood
/// of random-subdomain misses), the receiver takes what the kernel holds and
/// drops it, counted as shed: the kernel's queue stays short, so the
/// queries that are answered are recent ones, and the load the daemon
/// takes on is bounded by its workers, not by the flood.
pub fn spawn_udp(shared: Arc<Shared>, socket: UdpSocket, threads: usize, queue: usize) -> anyhow::Result<()> {
    let addr = socket.local_addr()?;
    let threads = threads.max(1);
    // Queued, one in each worker's hands, one being filled.
    let pool = queue.div_ceil(crate::udp::BATCH).max(1) + threads + 1;
    let (free_tx, free_rx) = std::sync::mpsc::sync_channel(pool);
    let (full_tx, full_rx) = std::sync::mpsc::sync_channel(pool);
    for _ in 0..pool {
        free_tx.send(crate::udp::Batch::new()).expect("the pool's channel holds the pool");
    }
    let full_rx = Arc::new(Mutex::new(full_rx));
    for i in 0..threads {
        let socket = socket.try_clone().context("cloning the UDP socket")?;
        let (shared, full, free) = (Arc::clone(&shared), Arc::clone(&full_rx), free_tx.clone());
        std::thread::Builder::new()
            .name(format!("udp-{addr}-{i}"))
            .spawn(move || udp_worker(&shared, &socket, &full, &free))
            .context("starting a UDP worker")?;
    }
    std::thread::Builder::new()
        .name(format!("udp-{addr}-recv"))
        .spawn(move || udp_receiver(&shared, &socket, &free_rx, &full_tx))
        .context("starting the UDP receiver")?;
    Ok(())
}

/// How often at most the receiver logs that it sheds.
const SHED_LOG_INTERVAL: Duration = Duration::from_secs(10);

fn udp_receiver(
    shared: &Shared,
    socket: &UdpSocket,
    free: &std::sync::mpsc::Receiver<crate::udp::Batch>,
    full: &std::sync::mpsc::SyncSender<crate::udp::Batch>,
) {
    let mut shed_batch = crate::udp::Batch::new();
    let mut held: Option<crate::udp::Batch> = None;
    let mut last_log: Option<std::time::Instant> = None;
    let mut shed_since_log = 0u64;
    loop {
        if held.is_none() {
            held = match free.try_recv() {
                Ok(batch) => Some(batch),
                Err(std::sync::mpsc::TryRecvError::Empty) => None,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => return,
            };
        }
        let Some(mut batch) = held.take() else {
            // Every batch is queued or being answered: drop what the kernel
            // holds now rather than let it queue there, and when it holds
            // nothing, wait a moment for a batch to come back.
            match shed_batch.receive_queued(socket) {
                Ok(n) => {
                    let n = n as u64;
                    shared.counters.udp_queries.fetch_add(n, Relaxed);
                    shared.counters.udp_shed.fetch_add(n, Relaxed);
                    shed_since_log += n;
                    if last_log.is_none_or(|at| at.elapsed() >= SHED_LOG_INTERVAL) {
                        tracing::warn!(
                            shed = shed_since_log,
                            "UDP workers are behind: dropping queries \
                             (raise --udp-threads or --udp-queue if this is not a flood)"
                        );
                        last_log = Some(std::time::Instant::now());
                        shed_since_log = 0;
                    }
                }
                Err(_) => match free.recv_timeout(Duration::from_millis(1)) {
                    Ok(batch) => held = Some(batch),
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
                },
            }
            continue;
        };
        match batch.receive(socket) {
            Ok(n) => {
                shared.counters.udp_queries.fetch_add(n as u64, Relaxed);
                if full.send(batch).is_err() {
                    return;
                }
            }
            Err(err) => {
                if err.kind() != std::io::ErrorKind::Interrupted {
                    tracing::warn!(%err, "UDP receive failed");
                    std::thread::sleep(Duration::from_millis(10));
                }
                held = Some(batch);
            }
        }
    }
}

fn udp_worker(
    shared: &Shared,
    socket: &UdpSocket,
    full: &Mutex<std::sync::mpsc::Receiver<crate::udp::Batch>>,
    free: &std::sync::mpsc::SyncSender<crate::udp::Batch>,
) {
    let mut replies = Vec::with_capacity(crate::udp::BATCH);
    loop {
        let batch = {
            let queue = full.lock().unwrap_or_else(|p| p.into_inner());
            match queue.recv() {
                Ok(batch) => batch,
                Err(_) => return,
            }
        };
        replies.clear();
        for (i, query, cut) in batch.datagrams() {
            // A query cut short cannot be answered as asked (a cut after
            // the question would even parse); its header can be.
            // The peer is read only when needed: for the query log, rate
            // limiting, and a NOTIFY (its source decides whether it is acted on).
            let wants_peer = shared.query_log.enabled()
                || shared.rrl.is_some()
                || shared.settings.cookies.is_some()
                || (shared.notifier.is_some() && query.get(2).is_some_and(|b| (b >> 3) & 0x0f == 4));
            let client = if wants_peer { batch.peer(i) } else { None };
            let reply = if cut {
                crate::wire::formerr(query).map(|reply| (reply, false))
            } else {
                shared.handle_peer(query, Transport::Udp, client)
            };
            // A valid server cookie proves the source (RFC 7873 1): such
            // answers are not rate limited, as in Knot.
            let reply = match (reply, &shared.rrl, client) {
                (Some((reply, true)), _, _) => Some(reply),
                (Some((reply, false)), Some(rrl), Some(peer)) => match rrl.check(peer.ip(), &shared.counters) {
                    RrlAction::Answer => Some(reply),
                    RrlAction::Drop => None,
                    RrlAction::Slip => crate::wire::slip(query, &reply, shared.settings.edns_udp_payload),
                },
                (reply, _, _) => reply.map(|(reply, _)| reply),
            };
            if let Some(reply) = reply {
                replies.push((i, reply));
            }
        }
        batch.send(socket, &replies);
        if free.send(batch).is_err() {
            return;
        }
    }
}

/// Connections open per source address; a connection's [`SourceSlot`]
/// gives its place back when dropped.
#[derive(Default)]
struct SourceTable {
    open: Mutex<HashMap<IpAddr, usize>>,
}

struct SourceSlot {
    table: Arc<SourceTable>,
    source: IpAddr,
}

impl SourceTable {
    /// A slot for one more connection from `source`, unless it has `limit`.
    fn take(self: &Arc<Self>, source: IpAddr, limit: usize) -> Option<SourceSlot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(source).or_default();
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(SourceSlot { table: Arc::clone(self), source })
    }
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut open = self.table.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.source) {
            *count -= 1;
            // Forget sources with nothing open, so the table stays as
            // small as the connections are few.
            if *count == 0 {
                open.remove(&self.source);
            }
        }
    }
}

/// The source address as a client is counted: an IPv4 client reaching an
/// IPv6 wildcard listener is the same client as over IPv4.
fn source_of(peer: SocketAddr) -> IpAddr {
    match peer.ip() {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// Caps the kernel's send and receive buffers of the listener's future
/// connections (they inherit them), so a client that sends faster than it
/// reads holds at most that much kernel memory per connection.
fn limit_connection_buffers(listener: &std::net::TcpListener, bytes: usize) -> std::io::Result<()> {
    use std::os::fd::AsRawFd as _;
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    for option in [libc::SO_SNDBUF, libc::SO_RCVBUF] {
        // SAFETY: setsockopt on the listener's open socket with a c_int.
        let rc = unsafe {
            libc::setsockopt(
                listener.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The TCP limits and what counts against them, shared by every listener:
/// the limits are the daemon's, not one address's.
pub struct TcpGate {
    pub limits: TcpLimits,
    permits: Arc<Semaphore>,
    sources: Arc<SourceTable>,
}

impl TcpGate {
    pub fn new(limits: TcpLimits) -> Self {
        Self {
            limits,
            permits: Arc::new(Semaphore::new(limits.max_connections)),
            sources: Arc::new(SourceTable::default()),
        }
    }
}

/// Accepts TCP connections until the listener fails.
pub async fn serve_tcp(shared: Arc<Shared>, listener: TcpListener) {
    let limits = shared.tcp.limits;
    let (permits, sources) = (&shared.tcp.permits, &shared.tcp.sources);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(err) => {
                // EMFILE and friends: the connection stays queued in the
                // kernel; back off rather than spin.
                tracing::warn!(%err, "TCP accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        // At a limit, refuse new connections outright rather than let them
        // queue: clients retry, and the existing ones keep being served.
        let Some(source) = sources.take(source_of(peer), limits.max_per_source) else {
            shared.counters.tcp_refused.fetch_add(1, Relaxed);
            tracing::debug!(%peer, limit = limits.max_per_source, "TCP connections per source at the limit; closing");
            continue;
        };
        let Ok(permit) = Arc::clone(permits).try_acquire_owned() else {
            shared.counters.tcp_refused.fetch_add(1, Relaxed);
            tracing::debug!(%peer, limit = limits.max_connections, "TCP connection limit reached; closing");
            continue;
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            if let Err(err) = tcp_connection(&shared, stream, peer).await {
                tracing::debug!(%peer, %err, "TCP connection closed");
            }
            drop((permit, source));
        });
    }
}

/// One connection: length-prefixed queries answered in order (RFC 7766 8).
/// Closed after `idle_timeout` without the first byte of a query, or when a
/// query takes longer than `read_timeout` to arrive whole or a reply to be
/// written. Replies go to a writer through a queue of `max_pipelined`: a
/// client that sends without reading fills it, and then its queries wait
/// in the kernel's (bounded) buffers, not in the daemon.
async fn tcp_connection(shared: &Shared, stream: TcpStream, peer: SocketAddr) -> std::io::Result<()> {
    let limits = shared.tcp.limits;
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let (replies, mut queued) = tokio::sync::mpsc::channel::<Vec<u8>>(limits.max_pipelined);
    let read = async move {
        let mut buf = Vec::with_capacity(512);
        loop {
            match read_query(&mut reader, &mut buf, &limits).await? {
                Some(()) => {}
                None => return Ok::<(), std::io::Error>(()),
            }
            shared.counters.tcp_queries.fetch_add(1, Relaxed);
            let Some(reply) = shared.handle_from(&buf, Transport::Tcp, Some(peer)) else { continue };
            let Ok(reply_len) = u16::try_from(reply.len()) else { continue };
            let mut out = Vec::with_capacity(reply.len() + 2);
            out.extend_from_slice(&reply_len.to_be_bytes());
            out.extend_from_slice(&reply);
            // Waits while `max_pipelined` replies are queued; fails when the
            // writer gave up on the connection.
            if replies.send(out).await.is_err() {
                return Ok(());
            }
        }
    };
    let write = async move {
        while let Some(out) = queued.recv().await {
            tokio::time::timeout(limits.idle_timeout, writer.write_all(&out))
                .await
                .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "client does not read its answers"))??;
        }
        writer.shutdown().await
    };
    tokio::pin!(write);
    tokio::select! {
        // The reader is done (EOF, timeout, error): the writer sends what
        // is queued, then closes.
        read = read => {
            let written = write.await;
            read.and(written)
        }
        // The writer failed: drop the reader with it.
        written = &mut write => written,
    }
}

/// Reads one length-prefixed query into `buf`; `None` when the connection
/// should end quietly (EOF, idle, an empty message, which is no query:
/// RFC 7766 8 frames queries).
async fn read_query(
    reader: &mut tokio::net::tcp::OwnedReadHalf,
    buf: &mut Vec<u8>,
    limits: &TcpLimits,
) -> std::io::Result<Option<()>> {
    let mut len = [0u8; 2];
    match tokio::time::timeout(limits.idle_timeout, reader.read(&mut len[..1])).await {
        Ok(Ok(0)) | Err(_) => return Ok(None),
        Ok(Ok(_)) => {}
        Ok(Err(err)) => return Err(err),
    }
    let rest = tokio::time::timeout(limits.read_timeout, async {
        reader.read_exact(&mut len[1..]).await?;
        buf.resize(usize::from(u16::from_be_bytes(len)), 0);
        reader.read_exact(buf).await
    })
    .await;
    match rest {
        Ok(Ok(_)) if buf.is_empty() => Ok(None),
        Ok(Ok(_)) => Ok(Some(())),
        Ok(Err(err)) if err.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
        Ok(Err(err)) => Err(err),
        Err(_elapsed) => {
            Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "query not complete within tcp_read_timeout"))
        }
    }
}

/// Raises the soft limit on open files to the hard limit: every TCP
/// connection is a descriptor, and the usual soft limit of 1024 would make
/// accept fail long before `tcp_max_connections` on a busy server. Logs
/// the limit, and warns when it is below the connections allowed.
pub fn raise_open_file_limit(limits: &TcpLimits) {
    let mut rlim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid rlimit out/in pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rlim) } != 0 {
        tracing::warn!(err = %std::io::Error::last_os_error(), "cannot read the open-file limit");
        return;
    }
    let before = rlim.rlim_cur;
    if rlim.rlim_cur < rlim.rlim_max {
        rlim.rlim_cur = rlim.rlim_max;
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rlim) } != 0 {
            tracing::warn!(err = %std::io::Error::last_os_error(), before, "cannot raise the open-file limit");
            rlim.rlim_cur = before;
        }
    }
    tracing::info!(before, now = rlim.rlim_cur, "open-file limit");
    // The sockets, the BPF maps and the process's own files need some too.
    let wanted = limits.max_connections as u64 + 256;
    if rlim.rlim_cur < wanted {
        tracing::warn!(
            limit = rlim.rlim_cur,
            tcp_max_connections = limits.max_connections,
            "the open-file limit is below what tcp_max_connections needs; raise it (LimitNOFILE= in systemd, ulimit -n)"
        );
    }
}

/// Connections the kernel may hold ready for accept. std listens with 128,
/// which a burst of clients (many at once after a UDP answer slipped with
/// TC, or a connection flood) overflows; the others' handshakes then stall
/// in SYN retransmits for a second or more. The kernel caps it at
/// net.core.somaxconn.
const ACCEPT_BACKLOG: libc::c_int = 4096;

/// Calls listen() again with [`ACCEPT_BACKLOG`]: on a listening socket
/// Linux only updates the backlog.
fn deepen_accept_queue(listener: &std::net::TcpListener) -> std::io::Result<()> {
    use std::os::fd::AsRawFd as _;
    // SAFETY: listen on the listener's open socket.
    if unsafe { libc::listen(listener.as_raw_fd(), ACCEPT_BACKLOG) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Binds the UDP socket and TCP listener for one address, the listener
/// with the connection buffers of `tcp` (set here, at start, so that no
/// connection is accepted before they apply).
pub fn bind(addr: SocketAddr, tcp_limits: &TcpLimits) -> anyhow::Result<(UdpSocket, std::net::TcpListener)> {
    let udp = UdpSocket::bind(addr).with_context(|| format!("binding UDP {addr}"))?;
    let tcp = std::net::TcpListener::bind(addr).with_context(|| format!("binding TCP {addr}"))?;
    deepen_accept_queue(&tcp).with_context(|| format!("setting the accept queue of TCP {addr}"))?;
    limit_connection_buffers(&tcp, tcp_limits.connection_buffer)
        .with_context(|| format!("limiting the socket buffers of TCP {addr} to {}", tcp_limits.connection_buffer))?;
    tcp.set_nonblocking(true)?;
    Ok((udp, tcp))
}
