//! Secondary zones: refresh from a hidden primary by IXFR (RFC 1995), or
//! AXFR when the primary offers no differences or the IXFR fails, over TCP
//! (TSIG signed when a key is configured); keep the last good copy on disk,
//! and stop serving a zone whose EXPIRE passes without a successful refresh.
//!
//! Each zone's task keeps its current version in memory: an IXFR is applied
//! to it ([`Zone::apply`]), an AXFR parsed aside. The new version is written
//! to the zone's state file (write, fsync, rename) and handed to the daemon
//! ([`ZoneUpdate`]), which swaps it into a new catalog whole and has the
//! answer table re-check only what the difference can have changed; no
//! zone file is read again, and a restart finds the copy on disk with the
//! primary down.

mod ixfr;

use std::{
    collections::{HashMap, HashSet},
    io::Write as _,
    net::{IpAddr, SocketAddr},
    path::Path,
    sync::{Arc, RwLock},
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context as _, anyhow, bail};
use hickory_proto::{
    op::{Message, MessageType, OpCode, Query, ResponseCode},
    rr::{Name, RData, Record, RecordType},
    serialize::binary::{BinEncodable, BinEncoder, NameEncoding},
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::{
    config::{SecondarySpec, TimerOverrides, TsigKey},
    zone::{Zone, ZoneDiff},
};

/// How long one exchange with a primary may take before it counts as
/// failed (connect, query, and each message of a transfer).
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// The first refresh is at start; until a SOA is known these are used.
const DEFAULT_RETRY: Duration = Duration::from_secs(10);

/// Where NOTIFY (RFC 1996) messages go: each secondary zone's primaries'
/// addresses and the wake-up of its refresh task.
#[derive(Default)]
pub struct Notifier {
    zones: HashMap<Name, (Vec<IpAddr>, Arc<tokio::sync::Notify>)>,
}

impl Notifier {
    pub fn new(specs: &[SecondarySpec]) -> Self {
        let zones = specs
            .iter()
            .map(|spec| {
                let ips = spec.primaries.iter().map(SocketAddr::ip).collect();
                (spec.origin.clone(), (ips, Arc::new(tokio::sync::Notify::new())))
            })
            .collect();
        Self { zones }
    }

    fn wake(&self, origin: &Name) -> Option<Arc<tokio::sync::Notify>> {
        self.zones.get(origin).map(|(_, wake)| Arc::clone(wake))
    }

    /// Answers a NOTIFY: from a primary of a secondary zone it is acked
    /// and the zone's refresh starts at once; from anyone else, or for a
    /// zone that is not a secondary, REFUSED with a log line saying why.
    /// `None` when `query` is not a NOTIFY.
    pub fn handle(&self, query: &[u8], client: SocketAddr) -> Option<Vec<u8>> {
        let opcode = query.get(2).map(|b| (b >> 3) & 0x0f)?;
        if opcode != u8::from(OpCode::Notify) || query[2] & 0x80 != 0 {
            return None;
        }
        let message = Message::from_vec(query).ok()?;
        let question = match message.queries.as_slice() {
            [question] if question.query_type() == RecordType::SOA => question.clone(),
            _ => {
                tracing::warn!(%client, "NOTIFY refused: not one SOA question");
                return Some(notify_reply(&message, ResponseCode::FormErr));
            }
        };
        let mut origin = question.name().clone().to_lowercase();
        origin.set_fqdn(true);
        let rcode = match self.zones.get(&origin) {
            None => {
                tracing::warn!(%client, zone = %origin, "NOTIFY refused: not a secondary zone of this server");
                ResponseCode::Refused
            }
            Some((ips, _)) if !ips.contains(&client.ip()) => {
                tracing::warn!(%client, zone = %origin, "NOTIFY refused: not from a primary of the zone");
                ResponseCode::Refused
            }
            Some((_, wake)) => {
                tracing::info!(%client, zone = %origin, "NOTIFY from the primary: refreshing now");
                wake.notify_one();
                ResponseCode::NoError
            }
        };
        Some(notify_reply(&message, rcode))
    }
}

fn notify_reply(query: &Message, rcode: ResponseCode) -> Vec<u8> {
    let mut reply = Message::new(query.metadata.id, MessageType::Response, OpCode::Notify);
    reply.metadata.authoritative = rcode == ResponseCode::NoError;
    reply.metadata.response_code = rcode;
    for question in &query.queries {
        reply.add_query(question.clone());
    }
    reply.to_vec().unwrap_or_default()
}

/// RFC 1982 serial number arithmetic: is `a` newer than `b`?
pub fn serial_newer(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < (1 << 31)
}

/// The zones whose EXPIRE passed without a refresh: the daemon serves them
/// SERVFAIL, and nothing of them is in the answer table, until they refresh.
#[derive(Default)]
pub struct Expired(RwLock<HashSet<Name>>);

impl Expired {
    pub fn contains(&self, origin: &Name) -> bool {
        self.0.read().unwrap_or_else(|p| p.into_inner()).contains(origin)
    }

    /// What `/health` reports while some zone is expired, or `None`.
    pub fn problem(&self) -> Option<String> {
        let set = self.0.read().unwrap_or_else(|p| p.into_inner());
        let mut zones: Vec<String> = set.iter().map(Name::to_string).collect();
        zones.sort();
        (!zones.is_empty()).then(|| {
            format!("zone {} expired: no successful refresh within EXPIRE (answering SERVFAIL)", zones.join(", "))
        })
    }

    fn set(&self, origin: &Name, expired: bool) -> bool {
        let mut set = self.0.write().unwrap_or_else(|p| p.into_inner());
        if expired { set.insert(origin.clone()) } else { set.remove(origin) }
    }
}

/// Per zone, what `/health` and metrics show: seconds until expiry.
#[derive(Default)]
pub struct Status(RwLock<Vec<(Name, Option<Instant>)>>);

impl Status {
    /// (zone, seconds to expiry; negative once expired, `None` before the
    /// first copy).
    pub fn expiry(&self) -> Vec<(Name, Option<i64>)> {
        let now = Instant::now();
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(name, at)| {
                let secs = at.map(|at| {
                    if at >= now {
                        at.duration_since(now).as_secs() as i64
                    } else {
                        -(now.duration_since(at).as_secs() as i64)
                    }
                });
                (name.clone(), secs)
            })
            .collect()
    }

    fn record(&self, origin: &Name, expires_at: Option<Instant>) {
        let mut zones = self.0.write().unwrap_or_else(|p| p.into_inner());
        match zones.iter_mut().find(|(name, _)| name == origin) {
            Some(entry) => entry.1 = expires_at,
            None => zones.push((origin.clone(), expires_at)),
        }
    }
}

/// A new version of a secondary zone, already on disk, for the daemon to
/// serve.
pub struct ZoneUpdate {
    /// The zone's state file (its key in the daemon's zone list).
    pub file: std::path::PathBuf,
    pub zone: Arc<Zone>,
    /// What changed, when the transfer said so (IXFR); an AXFR leaves it to
    /// the daemon to compare the versions.
    pub diff: Option<ZoneDiff>,
    /// [`crate::zone::text_fingerprint`] of the file's text, so that a
    /// reload that finds the same text does not parse it again.
    pub text_hash: u64,
}

/// Asks the daemon to apply a new version of a zone (`Some`), or to reload
/// to apply an expiry (`None`); returns once the answer table agrees, or
/// the error.
pub type ApplyFn = Arc<dyn Fn(Option<ZoneUpdate>) -> futures_like::BoxFuture + Send + Sync>;

/// A minimal boxed-future alias, to keep `futures` out of the dependencies.
pub mod futures_like {
    pub type BoxFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>;
}

/// The SOA timers of a copy.
#[derive(Clone, Copy, Debug)]
struct Timers {
    refresh: Duration,
    retry: Duration,
    expire: Duration,
}

fn timers(soa: &Record, overrides: TimerOverrides) -> Timers {
    let (refresh, retry, expire) = match &soa.data {
        RData::SOA(soa) => (soa.refresh.max(0) as u64, soa.retry.max(0) as u64, soa.expire.max(0) as u64),
        _ => (3600, 600, 604_800),
    };
    Timers {
        refresh: overrides.refresh.unwrap_or(Duration::from_secs(refresh.max(1))),
        retry: overrides.retry.unwrap_or(Duration::from_secs(retry.max(1))),
        expire: overrides.expire.unwrap_or(Duration::from_secs(expire.max(1))),
    }
}

/// Starts one refresh task per secondary zone on the current runtime.
pub fn spawn(
    specs: Vec<SecondarySpec>,
    notifier: &Notifier,
    expired: Arc<Expired>,
    status: Arc<Status>,
    apply: ApplyFn,
) {
    for spec in specs {
        let (expired, status, apply) = (Arc::clone(&expired), Arc::clone(&status), Arc::clone(&apply));
        let wake = notifier.wake(&spec.origin).unwrap_or_default();
        tokio::spawn(async move { refresh_loop(spec, wake, expired, status, apply).await });
    }
}

/// The copy on disk, if any, and when it was last confirmed (the file's
/// modification time: each successful refresh touches it). Read once, when
/// the task starts; from then on the task keeps the version it serves.
fn copy_on_disk(spec: &SecondarySpec) -> Option<(Arc<Zone>, SystemTime)> {
    let zone = Zone::load(&spec.file, Some(&spec.origin)).ok()?;
    let modified = std::fs::metadata(&spec.file).and_then(|m| m.modified()).ok()?;
    Some((Arc::new(zone), modified))
}

/// The version a task serves, and until when without a refresh.
struct Current {
    zone: Arc<Zone>,
    timers: Timers,
    expires_at: Instant,
}

async fn refresh_loop(
    spec: SecondarySpec,
    wake: Arc<tokio::sync::Notify>,
    expired: Arc<Expired>,
    status: Arc<Status>,
    apply: ApplyFn,
) {
    let origin = spec.origin.clone();
    let mut current = copy_on_disk(&spec).map(|(zone, confirmed)| {
        let age = SystemTime::now().duration_since(confirmed).unwrap_or_default();
        let timers = timers(zone.soa(), spec.timers);
        Current { expires_at: Instant::now() + timers.expire.saturating_sub(age), timers, zone }
    });
    if let Some(current) = &current {
        status.record(&origin, Some(current.expires_at));
        tracing::info!(zone = %origin, serial = current.zone.serial(), file = %spec.file.display(), "secondary zone: serving the copy on disk until it refreshes");
    } else {
        status.record(&origin, None);
        tracing::info!(zone = %origin, "secondary zone: no copy yet, answering SERVFAIL until the first transfer");
    }
    loop {
        // Expiry first: a copy past EXPIRE is never served, even briefly.
        if let Some(current) = &current
            && Instant::now() >= current.expires_at
            && expired.set(&origin, true)
        {
            tracing::error!(zone = %origin, serial = current.zone.serial(), "secondary zone expired: no refresh from any primary within EXPIRE, answering SERVFAIL");
            if let Err(err) = apply(None).await {
                tracing::error!(zone = %origin, error = %err, "applying the expiry failed");
            }
        }
        let next = match refresh_once(&spec, current.as_ref().map(|c| &c.zone)).await {
            Ok(Some(transfer)) => {
                let timers = timers(transfer.update.zone.soa(), spec.timers);
                let expires_at = Instant::now() + timers.expire;
                current = Some(Current { zone: Arc::clone(&transfer.update.zone), timers, expires_at });
                expired.set(&origin, false);
                status.record(&origin, Some(expires_at));
                if let Err(err) = apply(Some(transfer.update)).await {
                    tracing::error!(zone = %origin, error = %err, "applying the transfer failed");
                }
                timers.refresh
            }
            Ok(None) => {
                // Up to date: the copy is confirmed, its expiry restarts.
                touch(&spec.file);
                let timers = current.as_ref().map_or(timers_default(&spec), |c| c.timers);
                let expires_at = Instant::now() + timers.expire;
                if let Some(current) = current.as_mut() {
                    current.expires_at = expires_at;
                }
                status.record(&origin, Some(expires_at));
                if expired.set(&origin, false) {
                    tracing::info!(zone = %origin, "secondary zone refreshed after expiry, serving it again");
                    if let Err(err) = apply(None).await {
                        tracing::error!(zone = %origin, error = %err, "applying the refresh failed");
                    }
                }
                timers.refresh
            }
            Err(err) => {
                let retry = current.as_ref().map_or(spec.timers.retry.unwrap_or(DEFAULT_RETRY), |c| c.timers.retry);
                tracing::warn!(zone = %origin, error = %format!("{err:#}"), retry_secs = retry.as_secs(), "secondary zone: refresh failed");
                retry
            }
        };
        // Wake at expiry if that comes before the next attempt.
        let sleep_for = match &current {
            Some(current) if !expired.contains(&origin) => {
                next.min(current.expires_at.saturating_duration_since(Instant::now()).max(Duration::from_millis(10)))
            }
            _ => next,
        };
        // A NOTIFY from a primary ends the wait at once.
        tokio::select! {
            _ = tokio::time::sleep(sleep_for) => {}
            _ = wake.notified() => {}
        }
    }
}

fn timers_default(spec: &SecondarySpec) -> Timers {
    Timers {
        refresh: spec.timers.refresh.unwrap_or(Duration::from_secs(3600)),
        retry: spec.timers.retry.unwrap_or(DEFAULT_RETRY),
        expire: spec.timers.expire.unwrap_or(Duration::from_secs(604_800)),
    }
}

fn touch(path: &Path) {
    if let Ok(file) = std::fs::File::options().append(true).open(path) {
        let _ = file.set_modified(SystemTime::now());
    }
}

/// A transfer done and on disk.
struct Transfer {
    update: ZoneUpdate,
}

/// One refresh: asks each primary in turn for its SOA; when its serial is
/// newer than `current`'s (RFC 1982), transfers the zone and writes the
/// copy. `Ok(Some(_))`: a new copy is on disk; `Ok(None)`: up to date.
async fn refresh_once(spec: &SecondarySpec, current: Option<&Arc<Zone>>) -> anyhow::Result<Option<Transfer>> {
    let mut errors = Vec::new();
    for primary in &spec.primaries {
        match refresh_from(spec, *primary, current).await {
            Ok(outcome) => return Ok(outcome),
            Err(err) => errors.push(format!("{primary}: {err:#}")),
        }
    }
    Err(anyhow!("no primary answered: {}", errors.join("; ")))
}

async fn refresh_from(
    spec: &SecondarySpec,
    primary: SocketAddr,
    current: Option<&Arc<Zone>>,
) -> anyhow::Result<Option<Transfer>> {
    let origin = &spec.origin;
    let serial = current.map(|zone| zone.serial());
    let soa = exchange(primary, origin, RecordType::SOA, None, spec.tsig.as_ref(), |_| Ok(false)).await?;
    let primary_serial = soa
        .0
        .iter()
        .find_map(|record| match &record.data {
            RData::SOA(soa) if &record.name == origin => Some(soa.serial),
            _ => None,
        })
        .ok_or_else(|| anyhow!("the primary's answer has no SOA for {origin}"))?;
    if let Some(serial) = serial
        && !serial_newer(primary_serial, serial)
    {
        if primary_serial != serial {
            tracing::warn!(zone = %origin, %primary, serial, primary_serial, "refusing the primary's copy: serial not newer");
        }
        return Ok(None);
    }
    if let Some(zone) = current {
        let started = Instant::now();
        match incremental(spec, primary, zone).await {
            Ok(Some((new_zone, diff, kind, bytes))) => {
                let new_zone = Arc::new(new_zone);
                let update = keep(spec, new_zone, diff)?;
                log_transfer(origin, primary, kind, serial, &update.zone, bytes, started);
                return Ok(Some(Transfer { update }));
            }
            Ok(None) => return Ok(None),
            Err(err) => tracing::warn!(
                zone = %origin, %primary, serial_from = zone.serial(), serial_to = primary_serial,
                reason = %format!("{err:#}"), "IXFR failed, falling back to AXFR",
            ),
        }
    }
    let started = Instant::now();
    let mut soas = 0usize;
    let (records, bytes) = exchange(primary, origin, RecordType::AXFR, None, spec.tsig.as_ref(), |message| {
        // An AXFR ends with the SOA it started with (RFC 5936 2.2).
        soas += message.answers.iter().filter(|r| r.record_type() == RecordType::SOA).count();
        Ok(soas < 2)
    })
    .await?;
    let zone = Arc::new(whole_zone(spec, &records)?);
    let update = keep(spec, zone, None)?;
    log_transfer(origin, primary, "AXFR", serial, &update.zone, bytes, started);
    Ok(Some(Transfer { update }))
}

fn log_transfer(
    origin: &Name,
    primary: SocketAddr,
    kind: &str,
    serial_from: Option<u32>,
    zone: &Zone,
    bytes: usize,
    started: Instant,
) {
    tracing::info!(
        zone = %origin, %primary, kind, serial_from = ?serial_from, serial_to = zone.serial(), bytes,
        records = zone.record_count(), duration_ms = started.elapsed().as_millis() as u64, "transfer done",
    );
}

/// A whole zone as transferred (AXFR, or an IXFR answered in AXFR form),
/// checked by loading it as a zone file would be. The copy that would not
/// load is never kept.
fn whole_zone(spec: &SecondarySpec, records: &[Record]) -> anyhow::Result<Zone> {
    let text = zone_text(&spec.origin, records)?;
    Zone::parse(&text, &spec.origin, &spec.file.display().to_string())
        .map_err(|err| anyhow!("the transferred zone does not load: {err}"))
}

/// Writes the new version to the zone's state file (atomically) and makes
/// the update the daemon applies.
fn keep(spec: &SecondarySpec, zone: Arc<Zone>, diff: Option<ZoneDiff>) -> anyhow::Result<ZoneUpdate> {
    let records: Vec<Record> = zone.records().cloned().collect();
    let text = zone_text(&spec.origin, &records)?;
    write_atomically(&spec.file, text.as_bytes())?;
    Ok(ZoneUpdate { file: spec.file.clone(), zone, diff, text_hash: crate::zone::text_fingerprint(&text) })
}

/// An IXFR from `zone`'s serial (RFC 1995): our SOA in the authority
/// section, every TSIG'd message verified. Returns the new version, the
/// difference that led to it (`None` when the primary sent the whole zone),
/// the kind to log and the bytes read; `Ok(None)` when the primary says we
/// are current. Any error means: fall back to AXFR.
async fn incremental(
    spec: &SecondarySpec,
    primary: SocketAddr,
    zone: &Zone,
) -> anyhow::Result<Option<(Zone, Option<ZoneDiff>, &'static str, usize)>> {
    let origin = &spec.origin;
    let mut progress = ixfr::Progress::new(origin, zone.serial());
    let (records, bytes) =
        exchange(primary, origin, RecordType::IXFR, Some(zone.soa().clone()), spec.tsig.as_ref(), |message| {
            progress.more(&message.answers)
        })
        .await?;
    match ixfr::parse(records, origin, zone.serial())? {
        ixfr::IxfrReply::UpToDate => Ok(None),
        ixfr::IxfrReply::Full(records) => Ok(Some((whole_zone(spec, &records)?, None, "AXFR", bytes))),
        ixfr::IxfrReply::Incremental(diffs) => {
            let mut version = None::<Zone>;
            for diff in &diffs {
                let next = version.as_ref().unwrap_or(zone).apply(diff).map_err(|err| {
                    anyhow!("the difference {} -> {} does not apply: {err}", diff.from_serial, diff.to_serial)
                })?;
                version = Some(next);
            }
            let new_zone = version.ok_or_else(|| anyhow!("the IXFR holds no difference"))?;
            // One difference for the answer table: every owner any step
            // touched.
            let mut all = ZoneDiff { from_serial: zone.serial(), to_serial: new_zone.serial(), ..Default::default() };
            for diff in diffs {
                all.removed.extend(diff.removed);
                all.added.extend(diff.added);
            }
            Ok(Some((new_zone, Some(all), "IXFR", bytes)))
        }
    }
}

/// Sends one query over TCP and reads reply messages while `more` says so
/// (AXFR: until the closing SOA). Returns the answer records (the closing
/// SOA left out) and the bytes read. With a key, the query is signed and
/// every reply must verify (TSIG mismatch is an error naming the key).
async fn exchange(
    primary: SocketAddr,
    origin: &Name,
    qtype: RecordType,
    authority: Option<Record>,
    tsig: Option<&TsigKey>,
    mut more: impl FnMut(&Message) -> anyhow::Result<bool>,
) -> anyhow::Result<(Vec<Record>, usize)> {
    let mut query = Message::new(rand_id(), MessageType::Query, OpCode::Query);
    query.add_query(Query::query(origin.clone(), qtype));
    // IXFR: the version we have (RFC 1995 §3).
    query.add_authorities(authority);
    let mut verifier = match tsig {
        Some(key) => {
            let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs();
            let verifier = query.finalize(key.signer(), now).context("signing the query")?;
            Some(verifier.ok_or_else(|| anyhow!("TSIG signing gave no verifier"))?)
        }
        None => None,
    };
    let wire = query.to_vec().context("encoding the query")?;
    let mut stream = tokio::time::timeout(EXCHANGE_TIMEOUT, tokio::net::TcpStream::connect(primary))
        .await
        .map_err(|_| anyhow!("connecting timed out"))?
        .context("connecting")?;
    let mut framed = Vec::with_capacity(wire.len() + 2);
    framed.extend_from_slice(&(wire.len() as u16).to_be_bytes());
    framed.extend_from_slice(&wire);
    stream.write_all(&framed).await.context("sending the query")?;
    let mut records = Vec::new();
    let mut bytes = 0usize;
    loop {
        let mut len = [0u8; 2];
        let mut buf = Vec::new();
        tokio::time::timeout(EXCHANGE_TIMEOUT, async {
            stream.read_exact(&mut len).await?;
            buf.resize(u16::from_be_bytes(len) as usize, 0);
            stream.read_exact(&mut buf).await
        })
        .await
        .map_err(|_| anyhow!("the primary stopped sending"))?
        .context("reading a reply")?;
        bytes += buf.len() + 2;
        let message = match verifier.as_mut() {
            Some(verifier) => verifier
                .verify(&buf)
                .map_err(|err| {
                    anyhow!("TSIG mismatch with key {}: {err}", tsig.map_or(String::new(), |k| k.name.to_string()))
                })?
                .into_message(),
            None => Message::from_vec(&buf).context("decoding a reply")?,
        };
        if message.metadata.id != query.metadata.id {
            bail!("the reply's ID does not match the query's");
        }
        match message.metadata.response_code {
            ResponseCode::NoError => {}
            rcode @ (ResponseCode::Refused | ResponseCode::NotAuth) => {
                bail!("the primary refused the {qtype} ({rcode}): this server is not on its ACL, or not with this key")
            }
            rcode => bail!("the primary answered the {qtype} with {rcode}"),
        }
        let go_on = more(&message)?;
        records.extend(message.answers);
        if !go_on {
            break;
        }
    }
    if qtype == RecordType::AXFR {
        // The closing SOA repeats the first.
        records.pop();
        if records.first().map(Record::record_type) != Some(RecordType::SOA) {
            bail!("the transfer does not start with the zone's SOA");
        }
    }
    Ok((records, bytes))
}

fn rand_id() -> u16 {
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().subsec_nanos();
    (nanos ^ (nanos >> 16)) as u16 ^ std::process::id() as u16
}

/// The records as a zone file every type survives unchanged: owner names
/// fully qualified, RDATA in the RFC 3597 generic form (`\# len hex`).
fn zone_text(origin: &Name, records: &[Record]) -> anyhow::Result<String> {
    let mut text = format!("; secondary copy of {origin}, written by dns-xdp\n$ORIGIN {origin}\n");
    for record in records {
        if !origin.zone_of(&record.name) {
            bail!("the transfer holds {} which is outside the zone", record.name);
        }
        let mut wire = Vec::new();
        let mut encoder = BinEncoder::new(&mut wire);
        encoder.set_name_encoding(NameEncoding::Uncompressed);
        record.data.emit(&mut encoder).with_context(|| format!("encoding {} {}", record.name, record.record_type()))?;
        let hex = data_encoding::HEXLOWER.encode(&wire);
        let mut name = record.name.clone();
        name.set_fqdn(true);
        text.push_str(&format!(
            "{name} {} {} {} \\# {} {hex}\n",
            record.ttl,
            record.dns_class,
            record.record_type(),
            wire.len()
        ));
    }
    Ok(text)
}

/// Write, fsync, rename, fsync the directory: a crash leaves the old copy
/// or the new one, never half of one.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir
        .join(format!(".{}.tmp", path.file_name().map_or_else(|| "zone".into(), |n| n.to_string_lossy().into_owned())));
    let mut file = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(bytes).with_context(|| format!("writing {}", tmp.display()))?;
    file.sync_all().with_context(|| format!("syncing {}", tmp.display()))?;
    drop(file);
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).with_context(|| format!("syncing {}", dir.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_arithmetic_follows_rfc_1982() {
        assert!(serial_newer(2, 1));
        assert!(!serial_newer(1, 2));
        assert!(!serial_newer(7, 7));
        // Wrapping: 0 follows 0xffff_ffff, and 1 follows 0x8000_0002.
        assert!(serial_newer(0, u32::MAX));
        assert!(serial_newer(1, 0x8000_0002));
        assert!(!serial_newer(0x8000_0002, 1));
    }

    #[test]
    fn a_transferred_zone_round_trips_through_its_file() {
        let text = "$ORIGIN sec.test.\n$TTL 300\n@ SOA ns hostmaster 5 60 10 600 30\n@ NS ns\nns A 192.0.2.1\n\
                    www CNAME ns\n@ MX 10 mail.other.test.\n";
        let origin = Name::from_ascii("sec.test.").expect("name");
        let zone = Zone::parse(text, &origin, "t").expect("loads");
        let mut records: Vec<Record> = vec![zone.soa().clone()];
        for (_, node) in zone.nodes() {
            for set in node.rrsets() {
                if set.record_type() != RecordType::SOA {
                    records.extend(set.records().iter().cloned());
                }
            }
        }
        let copy = Zone::parse(&zone_text(&origin, &records).expect("text"), &origin, "copy").expect("copy loads");
        assert_eq!(copy.serial(), 5);
        assert_eq!(copy.record_count(), zone.record_count());
    }
}
