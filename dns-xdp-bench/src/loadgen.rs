//! The load generators, run in the client namespace on CPU 0: dnsperf
//! (closed loop, latency) and kxdpgun (open loop over AF_XDP, offered rate
//! stepped up to overload).

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::procs::{self, CpuSample, CpuUse};
use netlab::Topology;
use netlab::netns::SRV_V4;

/// dnsperf concurrency: 10 clients, 100 outstanding queries.
const DNSPERF_CLIENTS: &str = "10";
const DNSPERF_OUTSTANDING: &str = "100";

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Dnsperf {
    pub seconds: f64,
    pub sent: u64,
    pub completed: u64,
    pub lost: u64,
    pub loss_pct: f64,
    pub qps: f64,
    pub avg_latency_ms: f64,
    /// From a separate `-v` run (per-query latencies); `None` if that run
    /// produced none.
    pub p50_latency_ms: Option<f64>,
    pub p99_latency_ms: Option<f64>,
    /// Queries per second of the `-v` run (printing every reply slows
    /// dnsperf, so this is lower than `qps`).
    pub verbose_qps: Option<f64>,
    /// With `--repeat`: `qps` of every round (this is the median one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub qps_samples: Vec<f64>,
}

fn dnsperf_command(topo: &Topology, queries: &Path, seconds: f64, verbose: bool) -> std::process::Command {
    let mut cmd = topo.cli().command("dnsperf");
    cmd.args(["-s", &SRV_V4.to_string(), "-d"]).arg(queries);
    cmd.args(["-c", DNSPERF_CLIENTS, "-q", DNSPERF_OUTSTANDING, "-l", &seconds.to_string()]);
    if verbose {
        cmd.arg("-v");
    }
    cmd
}

/// Timeout for a generator cell: its own duration plus room to start, drain
/// and print.
fn cell_timeout(seconds: f64) -> Duration {
    Duration::from_secs_f64(seconds + 15.0)
}

/// Runs dnsperf for `seconds` and parses its summary.
pub fn dnsperf(topo: &Topology, queries: &Path, seconds: f64, label: &str, logs: &Path) -> Result<Dnsperf> {
    let mut proc = procs::spawn(dnsperf_command(topo, queries, seconds, false), label, 0, logs)?;
    proc.wait_success(cell_timeout(seconds))?;
    let mut result = parse_dnsperf(&proc.stdout()).with_context(|| format!("parsing {label} output"))?;
    result.seconds = seconds;
    Ok(result)
}

/// Server CPU use at a fixed offered rate.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FixedRate {
    /// Offered q/s (dnsperf `-Q`).
    pub rate: u64,
    /// What dnsperf achieved (equal to `rate` unless the server fell behind).
    pub qps: f64,
    pub cpu: CpuUse,
    /// With `--repeat`: total CPU % of every round (this is the lowest one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cpu_samples: Vec<f64>,
}

/// Runs dnsperf rate-limited to `rate` q/s (`-Q`) for `seconds` and samples
/// the server's CPU use from 0.3 s after the start to 0.2 s before the end.
/// dnsperf rather than kxdpgun: it sends at once (kxdpgun sets up for a
/// second first) and spaces its queries evenly; with kxdpgun's bursts of 10
/// the same server's reading varied by ±25% between identical steps, with
/// dnsperf by about ±10%.
pub fn dnsperf_cpu(
    topo: &Topology,
    queries: &Path,
    (rate, seconds): (u64, f64),
    probe: &CpuProbe,
    label: &str,
    logs: &Path,
) -> Result<FixedRate> {
    let mut cmd = dnsperf_command(topo, queries, seconds, false);
    cmd.args(["-Q", &rate.to_string()]);
    let mut proc = procs::spawn(cmd, label, 0, logs)?;
    procs::sleep(Duration::from_millis(300))?;
    proc.ensure_running()?;
    let before = CpuSample::take(probe.server_pid, probe.napi_dev);
    procs::sleep(Duration::from_secs_f64((seconds - 0.5).max(0.2)))?;
    let after = CpuSample::take(probe.server_pid, probe.napi_dev);
    proc.wait_success(cell_timeout(seconds))?;
    let result = parse_dnsperf(&proc.stdout()).with_context(|| format!("parsing {label} output"))?;
    Ok(FixedRate { rate, qps: result.qps, cpu: procs::cpu_use(&before, &after), cpu_samples: Vec::new() })
}

/// Sends every query of the file once (`-n 1`), as fast as the server
/// answers: every name in it has then been asked, so servers that cache
/// (dns-xdp puts each NXDOMAIN answer in its map on the first miss) are
/// measured warm.
pub fn dnsperf_warmup(topo: &Topology, queries: &Path, label: &str, logs: &Path) -> Result<()> {
    let mut cmd = dnsperf_command(topo, queries, 10.0, false);
    cmd.args(["-n", "1"]);
    let mut proc = procs::spawn(cmd, label, 0, logs)?;
    proc.wait_success(cell_timeout(10.0))
}

/// Runs dnsperf with `-v` (one line per reply, with its latency) and returns
/// (p50 ms, p99 ms, q/s). The output goes to a file and is read line by line.
pub fn dnsperf_latency(
    topo: &Topology,
    queries: &Path,
    seconds: f64,
    label: &str,
    logs: &Path,
) -> Result<(Option<f64>, Option<f64>, f64)> {
    let mut proc = procs::spawn(dnsperf_command(topo, queries, seconds, true), label, 0, logs)?;
    proc.wait_success(cell_timeout(seconds))?;
    let file = File::open(proc.log_paths().0).context("opening dnsperf -v output")?;
    let mut latencies = Vec::new();
    let mut summary = String::new();
    for line in BufReader::new(file).lines() {
        let line = line.context("reading dnsperf -v output")?;
        // `> NOERROR host1.bench.test. A 0.000141`
        if let Some(rest) = line.strip_prefix("> ") {
            if let Some(secs) = rest.rsplit(' ').next().and_then(|s| s.parse::<f64>().ok()) {
                latencies.push(secs * 1000.0);
            }
        } else {
            summary.push_str(&line);
            summary.push('\n');
        }
    }
    let qps = parse_dnsperf(&summary)?.qps;
    latencies.sort_by(f64::total_cmp);
    Ok((percentile(&latencies, 50.0), percentile(&latencies, 99.0), qps))
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], pct: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((pct / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn value_after<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let line = text.lines().find(|l| l.trim_start().starts_with(key))?;
    line.split_once(':')?.1.split_whitespace().next()
}

fn parse_dnsperf(text: &str) -> Result<Dnsperf> {
    let num = |key: &str| -> Result<f64> {
        value_after(text, key)
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("no {key:?} in dnsperf output:\n{text}"))
    };
    let sent = num("Queries sent")? as u64;
    let completed = num("Queries completed")? as u64;
    let lost = num("Queries lost")? as u64;
    Ok(Dnsperf {
        sent,
        completed,
        lost,
        loss_pct: if sent > 0 { lost as f64 * 100.0 / sent as f64 } else { 0.0 },
        qps: num("Queries per second")?,
        avg_latency_ms: num("Average Latency (s)")? * 1000.0,
        ..Dnsperf::default()
    })
}

/// One kxdpgun step.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Step {
    /// The rate asked for (`-Q`).
    pub requested_qps: u64,
    /// What kxdpgun reports it sent, per second: the offered load.
    pub offered_qps: f64,
    pub answered_qps: f64,
    pub sent: u64,
    pub answered: u64,
    pub loss_pct: f64,
    pub seconds: f64,
    /// With `--repeat`: answered/s of this step in every round (this is the
    /// best one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub answered_samples: Vec<f64>,
}

/// Whose CPU use [`dnsperf_cpu`] measures.
pub struct CpuProbe<'a> {
    pub server_pid: u32,
    pub napi_dev: &'a str,
}

/// Runs kxdpgun at `rate` q/s for `seconds` from the client veth. It attaches
/// its own XDP program there and leaves it: detached again here, on every
/// path out. (kxdpgun sets up for about a second before sending and waits
/// about a second for late replies after: each step takes `seconds` + 2 s.)
pub fn kxdpgun(topo: &Topology, queries: &Path, (rate, seconds): (u64, f64), label: &str, logs: &Path) -> Result<Step> {
    let text = kxdpgun_output(topo, queries, (rate, seconds), &[], label, logs)?;
    let mut step = parse_kxdpgun(&text).with_context(|| format!("parsing {label} output"))?;
    step.requested_qps = rate;
    step.seconds = seconds;
    Ok(step)
}

/// Runs kxdpgun once from the client namespace (bounded by `seconds` plus
/// the cell timeout), with `extra` arguments, and returns what it printed.
pub fn kxdpgun_output(
    topo: &Topology,
    queries: &Path,
    (rate, seconds): (u64, f64),
    extra: &[&str],
    label: &str,
    logs: &Path,
) -> Result<String> {
    topo.detach_client_xdp()?;
    let result = (|| -> Result<String> {
        let mut cmd = topo.cli().command("kxdpgun");
        cmd.args(["-t", &seconds.to_string(), "-Q", &rate.to_string(), "-F", "0", "-I", topo.cli_if()]);
        cmd.args(extra).arg("-i").arg(queries).arg(SRV_V4.to_string());
        let mut proc = procs::spawn(cmd, label, 0, logs)?;
        proc.wait_success(cell_timeout(seconds))?;
        Ok(proc.stdout())
    })();
    let detached = topo.detach_client_xdp();
    let text = result?;
    detached?;
    Ok(text)
}

/// `total queries:     400010 (200005 pps)` and
/// `total replies:     399800 (199900 pps) (99%)`.
pub fn parse_kxdpgun(text: &str) -> Result<Step> {
    let totals = |key: &str| -> Result<(u64, f64)> {
        let rest = text
            .lines()
            .find_map(|l| l.trim_start().strip_prefix(key))
            .with_context(|| format!("no {key:?} in kxdpgun output:\n{text}"))?;
        let mut words = rest.split_whitespace();
        let count = words.next().and_then(|w| w.parse().ok());
        let pps = words.next().and_then(|w| w.trim_start_matches('(').parse().ok());
        match (count, pps) {
            (Some(c), Some(p)) => Ok((c, p)),
            _ => bail!("cannot read {key:?} line in kxdpgun output:\n{text}"),
        }
    };
    let (sent, offered_qps) = totals("total queries:")?;
    let (answered, answered_qps) = totals("total replies:")?;
    Ok(Step {
        offered_qps,
        answered_qps,
        sent,
        answered,
        loss_pct: if sent > 0 { sent.saturating_sub(answered) as f64 * 100.0 / sent as f64 } else { 0.0 },
        ..Step::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DNSPERF: &str = "
Statistics:

  Queries sent:         298093
  Queries completed:    298093 (100.00%)
  Queries lost:         0 (0.00%)

  Response codes:       NOERROR 268508 (90.08%), NXDOMAIN 29585 (9.92%)
  Average packet size:  request 33, response 88
  Run time (s):         3.003933
  Queries per second:   99234.237248

  Average Latency (s):  0.000588 (min 0.000022, max 0.011362)
  Latency StdDev (s):   0.001079
";

    #[test]
    fn parses_dnsperf_summary() {
        let r = parse_dnsperf(DNSPERF).unwrap();
        assert_eq!((r.sent, r.completed, r.lost), (298093, 298093, 0));
        assert!((r.qps - 99234.237248).abs() < 1e-6);
        assert!((r.avg_latency_ms - 0.588).abs() < 1e-9);
    }

    #[test]
    fn parses_kxdpgun_totals() {
        let text = "using interface vc0, XDP threads 1, UDP, native mode\nthread#00: sent 400010, received 399800\n\
                    total queries:     400010 (200005 pps)\ntotal replies:     399800 (199900 pps) (99%)\n";
        let s = parse_kxdpgun(text).unwrap();
        assert_eq!((s.sent, s.answered), (400010, 399800));
        assert_eq!((s.offered_qps, s.answered_qps), (200005.0, 199900.0));
        assert!(parse_kxdpgun("nothing").is_err());
    }

    #[test]
    fn percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&[], 99.0), None);
    }
}
