//! Zone load time and memory: each server started on a zone of 10k, 100k
//! (and 1M) names in the server namespace, timed until it answers a query
//! for the last name of the file (and, for dns-xdp, until it logs
//! "serving"); then its memory.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::procs::{self, AffinityKeeper, Placement};
use super::servers::{self, Env, ServerKind};
use super::workload;

/// The servers compared here: all load the zone into their own structures;
/// the XDP variants would only add the map preload (dns-xdp) or nothing.
pub const KINDS: [ServerKind; 3] = [ServerKind::DnsXdpDaemon, ServerKind::Nsd, ServerKind::KnotUdp];

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct LoadResult {
    pub server: ServerKind,
    pub names: usize,
    /// Start until the last name is answered.
    pub answer_ms: Option<f64>,
    /// Start until dns-xdp logs "serving".
    pub serving_ms: Option<f64>,
    /// The largest VmRSS among the server's processes (NSD's main process
    /// is small; its forked server process holds the zone).
    pub rss_kib: Option<u64>,
    /// PSS summed over the server's processes (NSD forks).
    pub pss_kib: Option<u64>,
    pub error: Option<String>,
}

/// Generous bound per cell: a 1M-name zone takes a while to parse.
fn timeout(names: usize) -> Duration {
    Duration::from_secs(30 + (names / 10_000) as u64)
}

pub fn measure(env: &Env, kind: ServerKind, zone: &Path, names: usize) -> Result<LoadResult> {
    let mut result = LoadResult {
        server: kind,
        names,
        answer_ms: None,
        serving_ms: None,
        rss_kib: None,
        pss_kib: None,
        error: None,
    };
    let tag = format!("-load{names}");
    let started = Instant::now();
    let outcome = (|| -> Result<()> {
        let mut server = servers::start(kind, env, zone, &tag, timeout(names))?;
        let _pinned = AffinityKeeper::start(Placement { server: Some(server.proc.pid()), napi: Vec::new() });
        result.serving_ms = server.serving_after.map(|d| d.as_secs_f64() * 1000.0);
        let remaining = timeout(names).saturating_sub(started.elapsed());
        server.wait_answers(env.topo, &workload::last_name(names), remaining)?;
        result.answer_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
        // Let allocations from the load settle (Knot frees its parser state
        // in the background) before reading memory.
        procs::sleep(Duration::from_millis(300))?;
        let pid = server.proc.pid();
        let pids = procs::tree(pid);
        result.rss_kib = pids.iter().filter_map(|&p| procs::status_kib(p, "VmRSS")).max();
        result.pss_kib = Some(pids.iter().filter_map(|&p| procs::pss_kib(p)).sum());
        server.proc.stop()?;
        Ok(())
    })();
    if let Err(err) = outcome {
        procs::check_interrupted()?;
        if kind.is_ours() {
            return Err(err.context(format!("loading {names} names into {}", kind.label())));
        }
        result.error = Some(format!("{err:#}"));
    }
    Ok(result)
}
