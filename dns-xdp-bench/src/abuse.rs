//! The abuse phase: what dns-xdp (XDP) keeps doing under attack.
//!
//! - **Hit path under a miss flood.** kxdpgun sends questions the table
//!   answers at a fixed rate, alone and then mixed with a random-subdomain
//!   flood (every name unique, so each one reaches the daemon) at about
//!   the daemon's capacity; the hit path's answered rate under the flood
//!   is compared with its rate alone (one kxdpgun for both, so the two
//!   kinds share one generator and one client queue; its NOERROR and
//!   NXDOMAIN counts tell them apart).
//! - **Amplification.** One source prefix floods the server (kxdpgun
//!   sends from the client's one address, as a spoofed reflection flood
//!   aimed at that address would arrive); bytes out ÷ bytes in, DNS
//!   payloads, with rate limiting off and on.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::loadgen;
use super::procs::{AffinityKeeper, NapiPlacement, Placement};
use super::servers::{self, Env, ServerKind};
use super::workload::{self, Lcg, ORIGIN};

/// Hit questions per second offered in both halves of the miss-flood
/// measurement: past the point where the server's CPU is busy, so that
/// sharing it with the daemon shows, and within what one kxdpgun on CPU 0
/// sends together with the flood.
const HIT_RATE: u64 = 400_000;
/// Random-subdomain questions per second: about what the daemon alone
/// answers on one core (its dnsperf row, 150-170k here).
const MISS_RATE: u64 = 150_000;
/// Sources of the miss-flood measurement: random addresses of a /24 the
/// server has no route to, as a flood with spoofed sources arrives. The
/// hits' XDP answers go back to the client's MAC all the same; the
/// daemon's answers to the misses cannot be sent (counted by the daemon
/// as answered), so the generator's CPU is not spent taking them in
/// through the client's kernel stack, which otherwise throttled it.
const SPOOFED: &[&str] = &["-l", "198.18.200.0/24"];
/// The spoofed flood's rate, and the rate limit (answers per second per
/// /24) and slip used for the "on" case.
const FLOOD_RATE: u64 = 100_000;
const RRL_RATE: &str = "1000";
const RRL_SLIP: &str = "2";

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Abuse {
    pub hit_rate: u64,
    pub miss_rate: u64,
    pub seconds: f64,
    /// Hit answers per second with no other traffic.
    pub hits_alone_qps: f64,
    /// Hit answers (NOERROR) per second during the flood.
    pub hits_under_flood_qps: f64,
    /// Miss answers (NXDOMAIN) per second during the flood.
    pub misses_answered_qps: f64,
    pub amplification: Vec<Amplification>,
}

impl Abuse {
    pub fn hit_ratio(&self) -> f64 {
        if self.hits_alone_qps > 0.0 { self.hits_under_flood_qps / self.hits_alone_qps } else { 0.0 }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Amplification {
    /// "off", or the rate limiting flags used.
    pub rrl: String,
    pub sent: u64,
    pub answered: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl Amplification {
    pub fn ratio(&self) -> f64 {
        if self.bytes_in > 0 { self.bytes_out as f64 / self.bytes_in as f64 } else { 0.0 }
    }
}

/// Runs both measurements against a fresh dns-xdp (XDP) each.
pub fn measure(
    env: &Env,
    zone: &Path,
    names: usize,
    seconds: f64,
    out: &Path,
    start_timeout: Duration,
) -> Result<Abuse> {
    let hits = out.join("queries-hits.txt");
    write_hit_queries(&hits, names, 100_000)?;
    let mixed = out.join("queries-miss-flood.txt");
    let lines = ((HIT_RATE + MISS_RATE) as f64 * seconds * 1.2) as usize;
    write_mixed_queries(&mixed, names, HIT_RATE, MISS_RATE, lines)?;
    let flood = out.join("queries.txt");

    let mut abuse = Abuse { hit_rate: HIT_RATE, miss_rate: MISS_RATE, seconds, ..Abuse::default() };
    {
        let _server = start(env, zone, &[], names, start_timeout)?;
        // Warm: every hit question answered once by the daemon, so the
        // table holds them before either half is measured.
        let _ = loadgen::kxdpgun_output(env.topo, &hits, (HIT_RATE, 1.0), &[], "abuse-warmup", env.logs)?;
        let alone =
            loadgen::kxdpgun_output(env.topo, &hits, (HIT_RATE, seconds), SPOOFED, "abuse-hits-alone", env.logs)?;
        abuse.hits_alone_qps = rcode_count(&alone, "NOERROR") as f64 / seconds;
        let flooded = loadgen::kxdpgun_output(
            env.topo,
            &mixed,
            (HIT_RATE + MISS_RATE, seconds),
            SPOOFED,
            "abuse-miss-flood",
            env.logs,
        )?;
        abuse.hits_under_flood_qps = rcode_count(&flooded, "NOERROR") as f64 / seconds;
        abuse.misses_answered_qps = rcode_count(&flooded, "NXDOMAIN") as f64 / seconds;
        println!(
            "bench: hits alone {:.0}/s; under a {} q/s miss flood {:.0}/s ({:.0}%), misses answered {:.0}/s",
            abuse.hits_alone_qps,
            MISS_RATE,
            abuse.hits_under_flood_qps,
            abuse.hit_ratio() * 100.0,
            abuse.misses_answered_qps
        );
    }
    env.topo.detach_xdp()?;
    let query_bytes = mean_query_payload(&flood)?;
    for (label, extra) in [("off", vec![]), ("on", vec!["--rrl-rate", RRL_RATE, "--rrl-slip", RRL_SLIP])] {
        let _server = start(env, zone, &extra, names, start_timeout)?;
        let tag = format!("abuse-amplification-rrl-{label}");
        let text = loadgen::kxdpgun_output(env.topo, &flood, (FLOOD_RATE, seconds), &[], &tag, env.logs)?;
        let step = loadgen::parse_kxdpgun(&text).with_context(|| format!("parsing {tag} output"))?;
        let reply_bytes = average_reply_size(&text).unwrap_or(0.0);
        let case = Amplification {
            rrl: if extra.is_empty() { "off".into() } else { extra.join(" ") },
            sent: step.sent,
            answered: step.answered,
            bytes_in: (step.sent as f64 * query_bytes) as u64,
            bytes_out: (step.answered as f64 * reply_bytes) as u64,
        };
        println!(
            "bench: amplification, rate limiting {label}: {} sent, {} answered, bytes out/in {:.2}",
            case.sent,
            case.answered,
            case.ratio()
        );
        abuse.amplification.push(case);
        drop(_server);
        env.topo.detach_xdp()?;
    }
    Ok(abuse)
}

/// dns-xdp (XDP) started, pinned like the rows' servers, answering.
fn start(
    env: &Env,
    zone: &Path,
    extra: &[&str],
    names: usize,
    timeout: Duration,
) -> Result<(servers::Running, AffinityKeeper)> {
    let mut server = servers::start_with(ServerKind::DnsXdpXdp, env, zone, "-abuse", timeout, extra)?;
    let keeper = AffinityKeeper::start(Placement {
        server: Some(server.proc.pid()),
        napi: vec![
            NapiPlacement { dev: env.topo.srv_if().to_owned(), cpu: 1, realtime: false },
            NapiPlacement { dev: env.topo.cli_if().to_owned(), cpu: 0, realtime: true },
        ],
    });
    // The readiness probe goes over sockets; XDP_TX replies reach the
    // client's socket only through a program on the client veth.
    let mut pass = super::attach_pass(env)?;
    server.wait_answers(env.topo, &workload::last_name(names), timeout)?;
    pass.stop()?;
    Ok((server, keeper))
}

/// `responded NOERROR:   224892` in kxdpgun's output (0 when absent).
fn rcode_count(text: &str, rcode: &str) -> u64 {
    let key = format!("responded {rcode}:");
    text.lines()
        .find_map(|l| l.trim_start().strip_prefix(&key))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// `average DNS reply size: 36 B`.
fn average_reply_size(text: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.trim_start().strip_prefix("average DNS reply size:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

/// The mean DNS payload of the queries kxdpgun builds from a query file:
/// header, question (no EDNS: the lines carry no E or D flag).
fn mean_query_payload(path: &Path) -> Result<f64> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let (mut total, mut count) = (0usize, 0usize);
    for line in text.lines() {
        let Some(name) = line.split_whitespace().next() else { continue };
        let labels = name.trim_end_matches('.').split('.').filter(|l| !l.is_empty());
        let qname: usize = labels.map(|l| l.len() + 1).sum::<usize>() + 1;
        total += 12 + qname + 4;
        count += 1;
    }
    anyhow::ensure!(count > 0, "{} holds no queries", path.display());
    Ok(total as f64 / count as f64)
}

/// Questions the zone answers (the regular mix without its nonexistent
/// names).
fn write_hit_queries(path: &Path, names: usize, lines: usize) -> Result<()> {
    let mut rng = Lcg::new(0x0417_5eed);
    write_lines(path, lines, |_| hit_line(&mut rng, names))
}

/// Hits and unique nonexistent names, interleaved `hit_rate : miss_rate`.
fn write_mixed_queries(path: &Path, names: usize, hit_rate: u64, miss_rate: u64, lines: usize) -> Result<()> {
    let mut rng = Lcg::new(0x0f10_0d5e);
    let miss_per_mille = (miss_rate * 1000 / (hit_rate + miss_rate)) as usize;
    write_lines(path, lines, |i| {
        if rng.below(1000) < miss_per_mille {
            // The line number makes every name unique; the random part
            // makes them look like a botnet's.
            format!("r{i:x}-{:08x}.{ORIGIN} A", rng.next_u32())
        } else {
            hit_line(&mut rng, names)
        }
    })
}

fn hit_line(rng: &mut Lcg, names: usize) -> String {
    let host = |i: usize| format!("host{i}.{ORIGIN}");
    match rng.below(90) {
        0..50 => format!("{} A", host(rng.below(names))),
        50..75 => format!("{} AAAA", host(rng.below(names))),
        75..85 => format!("{} TXT", host(2 * rng.below(names.div_ceil(2)))),
        _ => format!("{} MX", host(5 * rng.below(names.div_ceil(5)))),
    }
}

fn write_lines(path: &Path, lines: usize, mut line: impl FnMut(usize) -> String) -> Result<()> {
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    for i in 0..lines {
        writeln!(w, "{}", line(i)).with_context(|| format!("writing {}", path.display()))?;
    }
    w.flush().with_context(|| format!("writing {}", path.display()))
}

/// The report's section (Markdown).
pub fn markdown(a: &Abuse) -> String {
    let mut m = String::new();
    let _ = writeln!(m, "\n## Under attack\n");
    let _ =
        writeln!(m, "dns-xdp (XDP), one kxdpgun from the client's one address, {:.1} s per measurement.\n", a.seconds);
    let _ = writeln!(m, "| measurement | value |");
    let _ = writeln!(m, "| --- | --- |");
    let _ = writeln!(m, "| hit answers/s, {} q/s of hits alone | {:.0} |", a.hit_rate, a.hits_alone_qps);
    let _ = writeln!(
        m,
        "| hit answers/s, same hits plus {} q/s of unique random subdomains | {:.0} ({:.0}% of alone) |",
        a.miss_rate,
        a.hits_under_flood_qps,
        a.hit_ratio() * 100.0
    );
    let _ = writeln!(m, "| random-subdomain answers/s (NXDOMAIN, daemon) | {:.0} |", a.misses_answered_qps);
    for c in &a.amplification {
        let _ = writeln!(
            m,
            "| bytes out ÷ bytes in, {FLOOD_RATE} q/s from one prefix, rate limiting {} | {:.2} ({} of {} answered) |",
            c.rrl,
            c.ratio(),
            c.answered,
            c.sent
        );
    }
    let _ = writeln!(
        m,
        "\nBytes are DNS payloads: the queries' from the query file (kxdpgun adds no EDNS), the \
         answers' from kxdpgun's average reply size."
    );
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kxdpgun_rcode_and_size_lines() {
        let text = "total queries:     225000 (150000 pps)\ntotal replies:     224892 (149928 pps) (99%)\n\
                    average DNS reply size: 36 B\nresponded NOERROR:   200000\nresponded NXDOMAIN: 24892\n";
        assert_eq!(rcode_count(text, "NOERROR"), 200_000);
        assert_eq!(rcode_count(text, "NXDOMAIN"), 24_892);
        assert_eq!(rcode_count(text, "SERVFAIL"), 0);
        assert_eq!(average_reply_size(text), Some(36.0));
    }

    #[test]
    fn mixed_queries_are_unique_misses_at_the_ratio() {
        let dir = netlab::temp_dir("abuse-test").unwrap();
        let path = dir.path().join("mixed.txt");
        write_mixed_queries(&path, 1000, 3, 1, 40_000).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let misses: Vec<&str> = text.lines().filter(|l| l.starts_with('r')).collect();
        let share = misses.len() as f64 / 40_000.0;
        assert!((share - 0.25).abs() < 0.02, "miss share {share}");
        let unique: std::collections::HashSet<&&str> = misses.iter().collect();
        assert_eq!(unique.len(), misses.len());
        // 12 + (4 "host" ... ) : "a.bench.test." is 1+1+5+1+4+1+1 = 14 octets.
        std::fs::write(&path, "a.bench.test. A\n").unwrap();
        assert_eq!(mean_query_payload(&path).unwrap(), 12.0 + 14.0 + 4.0);
    }
}
