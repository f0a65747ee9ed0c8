//! The control socket: a Unix stream socket through which `dns-xdp reload`,
//! `dns-xdp cache list|flush` and `dns-xdp stats` talk to the running
//! daemon.
//!
//! One request per connection: a JSON object on one line (`{"command":
//! "cache-flush", "zone": "example.com"}`), answered by one JSON line,
//! `{"ok": ...}` or `{"error": "..."}`. The socket is mode 0600 in a 0700
//! directory, and a peer that is neither root nor the daemon's own user is
//! refused (SO_PEERCRED) with a log line, as is anything that is not one of
//! the [`Request`]s.
//!
//! The table is still written only by the map writer: a flush goes through
//! [`MapFeed::flush`](crate::map_writer::MapFeed::flush).

use std::{
    io::{BufRead as _, BufReader, Write as _},
    os::unix::fs::{FileTypeExt as _, MetadataExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::{Context as _, anyhow, bail};
use hickory_proto::rr::Name;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _},
    sync::{mpsc, oneshot},
};

use crate::{health, server::Shared};

/// Longest request line accepted; requests are a few dozen bytes.
const MAX_REQUEST: u64 = 4096;
/// How long a client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a client waits for an answer: a reload of large zones may take
/// a while; everything else answers at once.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(600);
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// `cache list` without `--limit`.
pub const DEFAULT_LIST_LIMIT: usize = 100;

/// What a client may ask.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    /// Re-read the configuration's zone list and the zones (as SIGHUP);
    /// answered when the table agrees with the new data.
    Reload {},
    /// The health checks of `GET /health`, and which program is this
    /// daemon's.
    Status {},
    /// The answers the table holds, sorted by name.
    CacheList { zone: Option<String>, limit: Option<usize> },
    /// Removes the answers of one zone, or all.
    CacheFlush { zone: Option<String> },
    /// The questions most often passed up to the daemon lately (sampled).
    Missed { limit: Option<usize> },
    /// Fail health ("draining") so the route controller withdraws the
    /// prefixes, and keep answering (`dns-xdp drain`).
    Drain {},
    /// Stop the daemon, as SIGTERM does (the end of `dns-xdp drain`).
    Stop {},
}

/// What a reload answers: the report, or why it failed.
pub type ReloadReply = Result<Value, String>;
/// How the control socket asks the daemon's signal loop for a reload.
pub type ReloadRequests = mpsc::Sender<oneshot::Sender<ReloadReply>>;

/// What the handlers need from the daemon.
pub struct Context {
    pub shared: Arc<Shared>,
    pub expected: health::Expected,
    pub reloads: ReloadRequests,
    /// Wakes the daemon's signal loop to stop (a control `stop`).
    pub stop: Arc<tokio::sync::Notify>,
}

/// The bound socket; removes its file on drop unless another daemon has
/// since put its own there (a restart that overlaps this one).
pub struct Bound {
    path: PathBuf,
    inode: u64,
}

impl Drop for Bound {
    fn drop(&mut self) {
        if std::fs::metadata(&self.path).is_ok_and(|m| m.ino() == self.inode) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Binds the socket at `path`, creating its directory (0700) if missing. A
/// socket file left there (by a daemon that died, or one being replaced)
/// is replaced: the newest daemon owns the path.
pub fn bind(path: &Path) -> anyhow::Result<(std::os::unix::net::UnixListener, Bound)> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting {}", dir.display()))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            std::fs::remove_file(path).with_context(|| format!("removing the old socket {}", path.display()))?;
        }
        Ok(_) => bail!("{} exists and is not a socket; refusing to replace it (--control-socket)", path.display()),
        Err(_) => {}
    }
    let listener = std::os::unix::net::UnixListener::bind(path)
        .with_context(|| format!("binding the control socket {} (--control-socket)", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("restricting {}", path.display()))?;
    listener.set_nonblocking(true)?;
    let inode = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?.ino();
    Ok((listener, Bound { path: path.to_path_buf(), inode }))
}

/// Serves the control socket until the runtime stops.
pub async fn serve(listener: std::os::unix::net::UnixListener, context: Arc<Context>) -> anyhow::Result<()> {
    let listener = tokio::net::UnixListener::from_std(listener)?;
    // SAFETY: geteuid cannot fail.
    let own_uid = unsafe { libc::geteuid() };
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // Out of descriptors, or a peer gone before accept: keep
            // serving the next ones.
            Err(err) => {
                tracing::warn!(error = %err, "control: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let uid = match stream.peer_cred() {
            Ok(cred) => cred.uid(),
            Err(err) => {
                tracing::warn!(error = %err, "control: refused a connection whose peer is unknown");
                continue;
            }
        };
        if uid != 0 && uid != own_uid {
            tracing::warn!(uid, "control: refused a connection from a user that is neither root nor the daemon's");
            continue;
        }
        let context = Arc::clone(&context);
        tokio::spawn(async move {
            if let Err(err) = serve_one(stream, &context).await {
                tracing::warn!(error = %format!("{err:#}"), "control: a request failed");
            }
        });
    }
}

async fn serve_one(stream: tokio::net::UnixStream, context: &Context) -> anyhow::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = tokio::io::BufReader::new(read.take(MAX_REQUEST));
    tokio::time::timeout(REQUEST_TIMEOUT, reader.read_line(&mut line))
        .await
        .map_err(|_| anyhow!("a client sent no request within {REQUEST_TIMEOUT:?}"))??;
    let reply = match serde_json::from_str::<Request>(line.trim()) {
        Ok(request) => {
            tracing::debug!(?request, "control request");
            handle(request, context).await
        }
        Err(err) => {
            tracing::warn!(request = %line.trim(), error = %err, "control: refused an unknown or malformed request");
            Err(format!("unknown or malformed request: {err}"))
        }
    };
    let body = match reply {
        Ok(value) => json!({ "ok": value }),
        Err(message) => json!({ "error": message }),
    };
    let mut bytes = serde_json::to_vec(&body)?;
    bytes.push(b'\n');
    write.write_all(&bytes).await?;
    Ok(())
}

async fn handle(request: Request, context: &Context) -> Result<Value, String> {
    match request {
        Request::Reload {} => {
            let (reply, done) = oneshot::channel();
            context.reloads.send(reply).await.map_err(|_| "the daemon is shutting down".to_owned())?;
            done.await.map_err(|_| "the daemon stopped during the reload".to_owned())?
        }
        Request::Drain {} => {
            context.shared.draining.store(true, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!("draining: health fails so the routes are withdrawn; still answering");
            Ok(json!({ "pid": std::process::id(), "program_id": context.expected.program_id, "draining": true }))
        }
        Request::Stop {} => {
            tracing::info!("stop requested on the control socket");
            context.stop.notify_one();
            Ok(json!({ "stopping": true }))
        }
        Request::Status {} => {
            let shared = Arc::clone(&context.shared);
            let expected = context.expected.clone();
            let health = tokio::task::spawn_blocking(move || health::check(&shared, &expected))
                .await
                .map_err(|err| format!("the health check failed: {err}"))?;
            Ok(json!({
                "pid": std::process::id(),
                "program_id": context.expected.program_id,
                "health": health,
            }))
        }
        Request::CacheList { zone, limit } => {
            let feed = feed(context)?;
            let zone = zone.as_deref().map(|z| served_zone(context, z)).transpose()?;
            let limit = limit.unwrap_or(DEFAULT_LIST_LIMIT);
            let catalog = context.shared.live.read().unwrap_or_else(|p| p.into_inner()).catalog.clone();
            let mut entries = tokio::task::spawn_blocking(move || feed.list())
                .await
                .map_err(|err| err.to_string())?
                .map_err(|err| format!("{err:#}"))?;
            let held = entries.len();
            entries.sort_by(|a, b| {
                a.qname
                    .cmp(&b.qname)
                    .then(u16::from(a.qtype).cmp(&u16::from(b.qtype)))
                    .then(a.dnssec_ok.cmp(&b.dnssec_ok))
            });
            let mut matched = 0;
            let mut answers = Vec::new();
            for entry in entries {
                let owner = catalog.find_zone(&entry.qname).map(|z| z.origin().clone());
                if zone.as_ref().is_some_and(|z| owner.as_ref() != Some(z)) {
                    continue;
                }
                matched += 1;
                if answers.len() < limit {
                    answers.push(json!({
                        "name": entry.qname.to_ascii(),
                        "type": entry.qtype.to_string(),
                        "rcode": crate::wire::rcode_mnemonic(entry.rcode),
                        "answers": entry.answers,
                        "dnssec_ok": entry.dnssec_ok,
                        "zone": owner.map(|o| o.to_ascii()),
                    }));
                }
            }
            Ok(json!({ "answers": answers, "matched": matched, "held": held }))
        }
        Request::Missed { limit } => {
            let top = context.shared.missed.top(limit.unwrap_or(crate::missed::TRACKED));
            Ok(json!({ "missed": top, "sample_every": crate::missed::SAMPLE_EVERY }))
        }
        Request::CacheFlush { zone } => {
            let feed = feed(context)?;
            let select: crate::map_writer::NameFilter = match zone.as_deref() {
                None => Box::new(|_: &Name| true),
                Some(text) => {
                    let zone = served_zone(context, text)?;
                    let catalog = context.shared.live.read().unwrap_or_else(|p| p.into_inner()).catalog.clone();
                    Box::new(move |qname: &Name| catalog.find_zone(qname).is_some_and(|z| *z.origin() == zone))
                }
            };
            let removed = tokio::task::spawn_blocking(move || feed.flush(select))
                .await
                .map_err(|err| err.to_string())?
                .map_err(|err| format!("{err:#}"))?;
            tracing::info!(zone = zone.as_deref().unwrap_or("*"), removed, "answer table flushed");
            Ok(json!({ "removed": removed }))
        }
    }
}

fn feed(context: &Context) -> Result<crate::map_writer::MapFeed, String> {
    context
        .shared
        .map_feed
        .clone()
        .ok_or_else(|| "the fast path is off (--xdp-mode off): there is no answer table".into())
}

/// `text` as the origin of a zone this daemon serves, or a clear error.
fn served_zone(context: &Context, text: &str) -> Result<Name, String> {
    let mut name = Name::from_ascii(text).map_err(|err| format!("invalid zone name {text:?}: {err}"))?;
    name.set_fqdn(true);
    let name = name.to_lowercase();
    let catalog = context.shared.live.read().unwrap_or_else(|p| p.into_inner()).catalog.clone();
    if catalog.zone(&name).is_some() {
        return Ok(name);
    }
    let mut served: Vec<String> = catalog.zones().map(|z| z.origin().to_ascii()).collect();
    served.sort();
    Err(format!("zone {name} is not served here (zones: {})", served.join(" ")))
}

/// Sends `request` to the daemon at `path` and returns its `ok` value; the
/// daemon's error, or why it cannot be reached, as the error.
pub fn request(path: &Path, request: &Request) -> anyhow::Result<Value> {
    let stream = std::os::unix::net::UnixStream::connect(path).with_context(|| {
        format!("cannot reach the daemon's control socket {} (is it running? see --control-socket)", path.display())
    })?;
    let timeout = if *request == (Request::Reload {}) { RELOAD_TIMEOUT } else { ANSWER_TIMEOUT };
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(ANSWER_TIMEOUT))?;
    let mut line = serde_json::to_vec(request)?;
    line.push(b'\n');
    (&stream).write_all(&line).with_context(|| format!("writing to {}", path.display()))?;
    let mut answer = String::new();
    BufReader::new(&stream)
        .read_line(&mut answer)
        .with_context(|| format!("reading the daemon's answer from {}", path.display()))?;
    if answer.is_empty() {
        bail!("the daemon closed {} without answering (refused: run as root or as the daemon's user)", path.display());
    }
    let mut value: Value = serde_json::from_str(&answer).context("the daemon's answer is not JSON")?;
    if let Some(error) = value.get("error").and_then(Value::as_str) {
        bail!("{error}");
    }
    value.get_mut("ok").map(Value::take).ok_or_else(|| anyhow!("the daemon's answer has neither ok nor error"))
}

#[cfg(test)]
mod tests {
    use super::Request;

    #[test]
    fn requests_are_one_json_object_and_unknown_ones_are_refused() {
        let text = serde_json::to_string(&Request::CacheFlush { zone: Some("example.test".into()) }).expect("json");
        assert_eq!(text, r#"{"command":"cache-flush","zone":"example.test"}"#);
        assert_eq!(serde_json::from_str::<Request>(r#"{"command":"reload"}"#).expect("parses"), Request::Reload {});
        assert!(serde_json::from_str::<Request>(r#"{"command":"shutdown"}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"command":"reload","force":true}"#).is_err());
    }
}
