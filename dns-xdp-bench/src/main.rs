//! The benchmark (`cargo xtask bench`, which builds the daemon and this
//! binary and passes its flags through): dns-xdp against Knot DNS and NSD, side by side, on
//! the same zone, core and generators, plus the bare XDP_TX ceiling, the XDP
//! program's per-packet cost and zone load time/memory.
//!
//! Everything runs in two network namespaces made here (netlab's
//! [`Topology`]); the
//! server is confined to CPU 1, the generator to CPU 0. Every process, XDP
//! program and namespace is removed again on every path out, Ctrl-C
//! included: guards ([`procs::Proc`], [`Topology`]) are dropped in
//! reverse order of creation while the error unwinds.

mod abuse;
mod dnsq;
mod loadgen;
mod loadtime;
mod procs;
mod report;
mod servers;
mod workload;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use netlab::cmd::{is_root, stdout_of};
use netlab::netns::{CLI_V4, CLI_V6, SRV_V4, SRV_V6};
use netlab::{Topology, TopologyConfig, display_path};

use loadgen::CpuProbe;
use procs::{AffinityKeeper, NapiPlacement, Placement, Proc};
use report::{Plan, ProgCase, Results, Row, XdpCounters};
use servers::{Env, ServerKind};

/// Benchmark dns-xdp against Knot DNS and NSD in network namespaces (root);
/// writes target/bench/ and, with --write-md, BENCHMARKS.md. Run it with
/// `cargo xtask bench`, which builds what it measures.
#[derive(Parser)]
#[command(name = "dns-xdp-bench", bin_name = "cargo xtask bench")]
struct BenchArgs {
    /// Shorter cells and fewer steps (under 2 minutes instead of about 7).
    #[arg(long)]
    quick: bool,
    /// Also regenerate BENCHMARKS.md and docs/bench.svg in the workspace
    /// (otherwise they are written under target/bench/ only).
    #[arg(long)]
    write_md: bool,
    /// Only these rows (comma-separated), e.g. `--servers dns-xdp-xdp,nsd`.
    #[arg(long, value_enum, value_delimiter = ',')]
    servers: Vec<ServerKind>,
    /// Skip the zone load time and memory measurements.
    #[arg(long)]
    skip_load: bool,
    /// Skip the measurements under attack (hit path under a miss flood,
    /// amplification with rate limiting off and on).
    #[arg(long)]
    skip_abuse: bool,
    /// kxdpgun rates in q/s (comma-separated), instead of the mode's steps.
    #[arg(long, value_delimiter = ',')]
    rates: Vec<u64>,
    /// Run every server's row this many times (in rounds, the server
    /// restarted each time); keep the best round of each kxdpgun step, the
    /// lowest CPU reading and the median dnsperf round. On a host whose speed wanders (a
    /// shared VM) one row can be 15-30% slow throughout. Multiplies the time
    /// of the rows.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=9))]
    repeat: u32,
}

/// Names in the throughput benchmark's zone.
const ZONE_NAMES: usize = 10_000;

/// How long a server may take to start and answer the last name.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The fixed offered rate server CPU is measured at: well below every
/// server's capacity here (the slowest, NSD and Knot over UDP, top out
/// near 130k).
const CPU_RATE: u64 = 50_000;

/// Ratios of two runs of the same mode should agree this closely.
const REPRODUCIBILITY: f64 = 0.15;

fn plan(quick: bool) -> Plan {
    if quick {
        Plan {
            mode: "quick".into(),
            dnsperf_secs: 1.2,
            latency_secs: 0.8,
            // One-second steps left overloaded socket servers' rates
            // varying 20-26% run to run; at 1.5 s their peaks (at the
            // 150k step) stayed within 137-150k over five runs (the
            // daemon once 171k at 300k).
            kxdpgun_secs: 1.5,
            cpu_rate: CPU_RATE,
            cpu_secs: 2.0,
            // The peak is the best step: several steps around the XDP
            // rows' knees (600-900k here) keep it from hanging on one
            // step that happened to run at the edge of overload.
            rates: vec![150_000, 300_000, 500_000, 700_000, 900_000],
            // Paid for by stopping a row once it is far past its capacity.
            stop_above_loss_pct: Some(40.0),
            repeat: 1,
            prog_runs: 20_000,
            load_sizes: vec![10_000],
        }
    } else {
        Plan {
            mode: "full".into(),
            dnsperf_secs: 8.0,
            latency_secs: 3.0,
            kxdpgun_secs: 4.0,
            cpu_rate: CPU_RATE,
            cpu_secs: 5.0,
            rates: vec![50_000, 150_000, 300_000, 450_000, 600_000, 750_000, 900_000, 1_050_000],
            // The whole curve: how servers degrade past overload matters.
            stop_above_loss_pct: None,
            repeat: 1,
            prog_runs: 100_000,
            load_sizes: vec![10_000, 100_000, 1_000_000],
        }
    }
}

/// Namespace prefix of the benchmark's network (`dxbench-<pid>-...`), apart
/// from the tests' so each run finds only its own leftovers.
const NETNS_PREFIX: &str = "dxbench-";

fn main() -> ExitCode {
    // Print the context chain on one line; a returned anyhow error would add
    // a backtrace whenever RUST_BACKTRACE is set, burying the message.
    match bench(BenchArgs::parse()) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn bench(args: BenchArgs) -> Result<ExitCode> {
    // A run with a custom selection is not comparable with the mode's
    // regular runs: kept apart, and never written into BENCHMARKS.md.
    let custom = !args.servers.is_empty() || !args.rates.is_empty() || args.skip_load || args.skip_abuse;
    if custom && args.write_md {
        bail!("--write-md needs a complete run: drop --servers, --rates, --skip-load and --skip-abuse");
    }
    if !is_root() {
        bail!("the benchmark needs root (network namespaces, XDP, AF_XDP): run `cargo xtask bench` as root");
    }
    // The daemon under test, built with the lab features by `cargo xtask
    // bench` (release profile).
    let daemon = PathBuf::from(
        std::env::var_os("DNS_XDP_BIN")
            .context("DNS_XDP_BIN is not set: run the benchmark with `cargo xtask bench`")?,
    );
    // From here on there is state to clean up: Ctrl-C only sets a flag, and
    // the next check unwinds through the guards.
    procs::install_interrupt_handler()?;
    // Before pinning: available_parallelism would count only CPU 0 after.
    let nproc = online_cpus();
    if nproc < 2 {
        bail!("the benchmark puts the server on CPU 1 and the generator on CPU 0: needs 2 CPUs, found {nproc}");
    }
    // xtask's own polling and bookkeeping stay off the server's CPU; the
    // generators it starts inherit CPU 0.
    procs::pin_self(0)?;
    let started = Instant::now();
    let mut plan = plan(args.quick);
    if !args.rates.is_empty() {
        plan.rates = args.rates.clone();
    }
    if args.repeat > 1 {
        // Compared only with runs repeated as often.
        plan.mode = format!("{}-repeat{}", plan.mode, args.repeat);
    }
    plan.repeat = args.repeat;
    let words: Vec<String> = std::iter::once("bench".to_owned()).chain(std::env::args().skip(1)).collect();
    let command = format!("cargo xtask {}", words.join(" "));

    let out = netlab::target_dir()?.join("bench");
    let logs = out.join("logs");
    if logs.exists() {
        fs::remove_dir_all(&logs).with_context(|| format!("removing old {}", logs.display()))?;
    }
    fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;

    println!("bench: generating zones and queries in {}", display_path(&out));
    let zone = out.join("zone-10k.zone");
    workload::write_zone(&zone, ZONE_NAMES)?;
    let queries = out.join("queries.txt");
    let query_mix = workload::write_queries(&queries, ZONE_NAMES, workload::QUERY_LINES)?;

    let mut machine = report::Machine {
        cpu_model: cpu_model(),
        nproc,
        kernel: first_line_of(Command::new("uname").arg("-r")),
        loadavg_start: loadavg(),
        loadavg_end: String::new(),
        commit: commit(),
        versions: servers::versions(&daemon),
    };
    for (name, version) in &machine.versions {
        println!("bench: {name}: {version}");
    }

    // Short veth names: NAPI thread names (`napi/<dev>-<id>`) are cut at 15
    // characters, are how the threads are found for pinning, and are global,
    // hence the PID in them.
    let tag = std::process::id() % 100_000;
    let config = TopologyConfig {
        if_names: Some((format!("dxs{tag}"), format!("dxc{tag}"))),
        threaded_napi: true,
        ..TopologyConfig::new(NETNS_PREFIX)
    };
    let topo = Topology::create(&config).context("building the benchmark network")?;
    for dev in [topo.srv_if(), topo.cli_if()] {
        if procs::napi_threads(dev).is_empty() {
            bail!("no napi/{dev}-* kernel thread after enabling threaded NAPI");
        }
    }
    println!("bench: network {}", topo.describe());
    let env = Env { topo: &topo, daemon: &daemon, logs: &logs };

    println!("\n== dns-xdp bench-prog ({} runs per case) ==", plan.prog_runs);
    let prog = bench_prog(&daemon, plan.prog_runs, &logs)?;

    let kinds: Vec<ServerKind> = if args.servers.is_empty() { ServerKind::ALL.to_vec() } else { args.servers.clone() };
    // With --repeat, every row is run once per round, rounds one after the
    // other, so each row's samples are spread over the run (this host's
    // speed changes over tens of seconds and holds through a row); see
    // report::merge_rounds for what is kept.
    let mut samples: Vec<Vec<Row>> = kinds.iter().map(|_| Vec::new()).collect();
    for round in 1..=plan.repeat {
        let round_logs = if plan.repeat > 1 {
            println!("\n== round {round} of {} ==", plan.repeat);
            let dir = logs.join(format!("round-{round}"));
            fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            dir
        } else {
            logs.clone()
        };
        let env = Env { logs: &round_logs, ..env };
        for (kind_samples, &kind) in samples.iter_mut().zip(&kinds) {
            kind_samples.push(run_row(kind, &env, &plan, &zone, &queries)?);
        }
    }
    let rows: Vec<Row> = samples.into_iter().filter_map(report::merge_rounds).collect();

    let abuse = if args.skip_abuse {
        None
    } else {
        println!("\n== dns-xdp, XDP, under attack ==");
        Some(
            abuse::measure(&env, &zone, ZONE_NAMES, plan.kxdpgun_secs, &out, START_TIMEOUT)
                .context("measuring dns-xdp under attack")?,
        )
    };

    let load = if args.skip_load {
        Vec::new()
    } else {
        let kinds: Vec<ServerKind> =
            loadtime::KINDS.into_iter().filter(|k| args.servers.is_empty() || args.servers.contains(k)).collect();
        load_phase(&env, &kinds, &plan.load_sizes, &zone, &out)?
    };

    // Tear the network down before reporting, and check nothing is left.
    drop(topo);
    let leftover = leftover_namespaces();
    if !leftover.is_empty() {
        eprintln!("bench: warning: namespaces left behind: {}", leftover.join(", "));
    }

    machine.loadavg_end = loadavg();
    let results = Results {
        date: first_line_of(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"])),
        command,
        ratios: report::ratios(&rows),
        plan,
        machine,
        topology: format!("server {}/24, {}/64; client {}/24, {}/64", SRV_V4, SRV_V6, CLI_V4, CLI_V6),
        zone_names: ZONE_NAMES,
        query_mix,
        rows,
        prog,
        load,
        abuse,
        reproducibility: Vec::new(),
        elapsed_secs: started.elapsed().as_secs_f64(),
    };
    report::print(&results);
    let elapsed = results.elapsed_secs;
    write_outputs(results, &out, custom, args.write_md)?;
    println!("\nbench: done in {elapsed:.0} s");
    Ok(ExitCode::SUCCESS)
}

/// Zone load time and memory of each of `kinds` for each zone size (the
/// 10k zone is the one already written; the others are generated here).
fn load_phase(
    env: &Env,
    kinds: &[ServerKind],
    sizes: &[usize],
    zone_10k: &Path,
    out: &Path,
) -> Result<Vec<loadtime::LoadResult>> {
    let mut results = Vec::new();
    for &names in sizes {
        let path = if names == ZONE_NAMES {
            zone_10k.to_path_buf()
        } else {
            let path = out.join(format!("zone-{}.zone", size_label(names)));
            println!("\nbench: generating a {names}-name zone");
            workload::write_zone(&path, names)?;
            path
        };
        for &kind in kinds {
            procs::check_interrupted()?;
            let result = loadtime::measure(env, kind, &path, names)?;
            match &result.error {
                None => println!(
                    "bench: load {names} names, {}: answers after {:.0} ms, RSS {:.1} MiB",
                    kind.label(),
                    result.answer_ms.unwrap_or(0.0),
                    result.rss_kib.unwrap_or(0) as f64 / 1024.0
                ),
                Some(err) => println!("bench: load {names} names, {}: failed: {err}", kind.label()),
            }
            results.push(result);
        }
    }
    Ok(results)
}

/// One server's row. A peer that fails gets a row saying why; a failure of
/// dns-xdp itself (its rows, the bounce) fails the bench.
fn run_row(kind: ServerKind, env: &Env, plan: &Plan, zone: &Path, queries: &Path) -> Result<Row> {
    println!("\n== {} ==", kind.label());
    let mut row = Row::new(kind);
    let outcome = measure_row(kind, env, plan, zone, queries, &mut row);
    // Whatever happened, no program of this row may stay attached (knotd
    // leaves its own behind when it exits).
    let detached = env.topo.detach_xdp();
    if let Err(err) = outcome {
        procs::check_interrupted()?;
        if kind.is_ours() {
            return Err(err.context(format!("benchmarking {}", kind.label())));
        }
        println!("bench: {}: {err:#}", kind.label());
        row.error = Some(format!("{err:#}"));
    }
    detached.with_context(|| format!("cleaning up after {}", kind.label()))?;
    Ok(row)
}

fn measure_row(kind: ServerKind, env: &Env, plan: &Plan, zone: &Path, queries: &Path, row: &mut Row) -> Result<()> {
    let topo = env.topo;
    let mut server = servers::start(kind, env, zone, "", START_TIMEOUT)?;
    let server_pid = server.proc.pid();
    let _pinned = AffinityKeeper::start(Placement {
        server: Some(server_pid),
        napi: vec![
            // The server side as a server would run: an ordinary thread
            // sharing CPU 1 fairly with the server process.
            NapiPlacement { dev: topo.srv_if().to_owned(), cpu: 1, realtime: false },
            // The client side ahead of the generator on CPU 0: otherwise
            // kxdpgun, sending flat out, starves it at high rates and replies
            // are lost on the client, not the server (seen as 33-40% "loss"
            // for the bounce program, 0.1-0.8% with this).
            NapiPlacement { dev: topo.cli_if().to_owned(), cpu: 0, realtime: true },
        ],
    });

    // dnsperf: over sockets in the client namespace, whose veth needs an XDP
    // program to receive XDP_TX replies.
    {
        let mut pass = attach_pass(env)?;
        server.wait_answers(topo, &workload::last_name(ZONE_NAMES), START_TIMEOUT)?;
        let id = kind.id();
        loadgen::dnsperf_warmup(topo, queries, &format!("{id}-dnsperf-warmup"), env.logs)?;
        let probe = CpuProbe { server_pid, napi_dev: topo.srv_if() };
        let fixed = loadgen::dnsperf_cpu(
            topo,
            queries,
            (plan.cpu_rate, plan.cpu_secs),
            &probe,
            &format!("{id}-dnsperf-cpu"),
            env.logs,
        )?;
        let c = &fixed.cpu;
        println!(
            "bench: at {} q/s: server CPU {:.1}% (process {:.1}, NAPI thread {:.1}, softirq {:.1})",
            plan.cpu_rate, c.total_pct, c.process_pct, c.napi_pct, c.softirq_pct
        );
        row.fixed_rate = Some(fixed);
        let mut result = loadgen::dnsperf(topo, queries, plan.dnsperf_secs, &format!("{id}-dnsperf"), env.logs)?;
        println!(
            "bench: dnsperf {:.0} q/s, lost {:.2}%, avg latency {:.3} ms",
            result.qps, result.loss_pct, result.avg_latency_ms
        );
        let (p50, p99, verbose_qps) =
            loadgen::dnsperf_latency(topo, queries, plan.latency_secs, &format!("{id}-dnsperf-v"), env.logs)?;
        println!(
            "bench: dnsperf -v: p50 {} ms, p99 {} ms ({verbose_qps:.0} q/s)",
            p50.map_or("–".into(), |v| format!("{v:.3}")),
            p99.map_or("–".into(), |v| format!("{v:.3}"))
        );
        (result.p50_latency_ms, result.p99_latency_ms, result.verbose_qps) = (p50, p99, Some(verbose_qps));
        row.dnsperf = Some(result);
        pass.stop()?;
    }

    // kxdpgun brings its own XDP program for the client veth.
    topo.detach_client_xdp()?;
    for &rate in &plan.rates {
        server.proc.ensure_running()?;
        let label = format!("{}-kxdpgun-{}k", kind.id(), rate / 1000);
        let step = loadgen::kxdpgun(topo, queries, (rate, plan.kxdpgun_secs), &label, env.logs)?;
        println!(
            "bench: kxdpgun {rate:>8} q/s asked: offered {:>9.0}, answered {:>9.0} ({:.1}% lost)",
            step.offered_qps, step.answered_qps, step.loss_pct
        );
        let lost = step.loss_pct;
        row.steps.push(step);
        if plan.stop_above_loss_pct.is_some_and(|limit| lost > limit) {
            println!("bench: higher rates skipped: {lost:.0}% lost at {rate} q/s");
            break;
        }
    }

    if kind == ServerKind::DnsXdpXdp {
        row.xdp_counters = match server.program_id {
            Some(id) => xdp_counters(env.daemon, id).unwrap_or_else(|err| {
                println!("bench: warning: reading dns-xdp counters: {err:#}");
                None
            }),
            None => None,
        };
    }
    server.proc.stop()?;
    Ok(())
}

/// `dns-xdp attach pass` on the client veth, running until stopped.
fn attach_pass(env: &Env) -> Result<Proc> {
    let topo = env.topo;
    let mut cmd = topo.cli().command(env.daemon);
    cmd.args(["attach", "pass", "--iface", topo.cli_if(), "--xdp-mode", "native"]);
    let mut proc = procs::spawn(cmd, "client-pass", 0, env.logs)?;
    proc.wait_for_output("attached", Duration::from_secs(10))?;
    Ok(proc)
}

/// The dns-xdp instance's XDP verdict counters, found by program ID.
fn xdp_counters(daemon: &Path, program_id: u32) -> Result<Option<XdpCounters>> {
    // Counters only: the health check would add its SOA probes.
    let text = stdout_of(Command::new(daemon).args(["stats", "--json", "--control-socket", "off"]))?;
    let all: serde_json::Value = serde_json::from_str(&text).context("parsing `dns-xdp stats --json`")?;
    let Some(inst) = all.as_array().into_iter().flatten().find(|i| i["program_id"].as_u64() == Some(program_id.into()))
    else {
        return Ok(None);
    };
    let xdp = inst["xdp"].as_object().context("no xdp counters")?;
    let get = |k: &str| xdp.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
    Ok(Some(XdpCounters {
        tx_answer: get("tx_answer"),
        passed: xdp.iter().filter(|(k, _)| k.starts_with("pass_")).filter_map(|(_, v)| v.as_u64()).sum(),
        daemon_udp_queries: inst["daemon"]["udp_queries"].as_u64().unwrap_or(0),
    }))
}

/// `dns-xdp bench-prog --json`, on the server's CPU.
fn bench_prog(daemon: &Path, runs: u32, logs: &Path) -> Result<Vec<ProgCase>> {
    let mut cmd = Command::new(daemon);
    cmd.args(["bench-prog", "--json", "--runs", &runs.to_string()]);
    let text = procs::run_bounded(cmd, "bench-prog", 1, logs, Duration::from_secs(120))?;
    let cases: Vec<ProgCase> = serde_json::from_str(&text).context("parsing `dns-xdp bench-prog --json`")?;
    for c in &cases {
        println!(
            "bench: {:<32} {:>4} octets {:>4} {:>8.1} ns/packet",
            c.case, c.qname_octets, c.action, c.ns_per_packet
        );
    }
    Ok(cases)
}

/// JSON (keeping the previous run of the same mode for comparison), SVG and
/// Markdown under target/bench/, and with `write_md` in the workspace.
fn write_outputs(mut results: Results, out: &Path, custom: bool, write_md: bool) -> Result<()> {
    let write = |path: &Path, text: &str| -> Result<()> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        fs::write(path, text).with_context(|| format!("writing {}", path.display()))
    };
    let mode = if custom { format!("{}-custom", results.plan.mode) } else { results.plan.mode.clone() };
    let json_path = out.join(format!("results-{mode}.json"));
    let prev_path = out.join(format!("results-{mode}.prev.json"));
    let previous: Option<Results> =
        fs::read_to_string(&json_path).ok().and_then(|text| serde_json::from_str(&text).ok());
    if let Some(prev) = previous.filter(|_| !custom) {
        results.reproducibility = report::compare(&results, &prev, REPRODUCIBILITY);
        println!();
        for line in &results.reproducibility {
            println!("{line}");
        }
    }
    if json_path.exists() {
        fs::rename(&json_path, &prev_path).with_context(|| format!("keeping {}", prev_path.display()))?;
    }
    write(&json_path, &serde_json::to_string_pretty(&results)?)?;

    let svg = report::svg(&results);
    write(&out.join("bench.svg"), &svg)?;
    write(&out.join("BENCHMARKS.md"), &report::markdown(&results, "bench.svg"))?;
    let mut written: Vec<PathBuf> = vec![json_path, out.join("bench.svg"), out.join("BENCHMARKS.md")];
    if write_md {
        let root = netlab::workspace_root();
        write(&root.join("docs/bench.svg"), &svg)?;
        write(&root.join("BENCHMARKS.md"), &report::markdown(&results, "docs/bench.svg"))?;
        written.extend([root.join("BENCHMARKS.md"), root.join("docs/bench.svg")]);
    }
    let shown: Vec<String> = written.iter().map(|p| display_path(p)).collect();
    println!("\nbench: wrote {}", shown.join(", "));
    Ok(())
}

fn size_label(names: usize) -> String {
    match names {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}m", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

fn online_cpus() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(n).unwrap_or(1)
}

fn first_line_of(cmd: &mut Command) -> String {
    stdout_of(cmd).map(|s| s.lines().next().unwrap_or("").trim().to_owned()).unwrap_or_else(|e| format!("{e:#}"))
}

fn cpu_model() -> String {
    let text = stdout_of(&mut Command::new("lscpu")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("Model name:"))
        .map(|m| m.trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}

fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// HEAD, marked when the daemon's own sources have uncommitted changes
/// (changes elsewhere, such as to this benchmark, do not change what is
/// measured).
fn commit() -> String {
    let root = netlab::workspace_root();
    let head = first_line_of(Command::new("git").arg("-C").arg(&root).args(["rev-parse", "--short", "HEAD"]));
    let dirty = stdout_of(Command::new("git").arg("-C").arg(&root).args([
        "status",
        "--porcelain",
        "--",
        "dns-xdp",
        "dns-xdp-common",
        "dns-xdp-ebpf",
        "Cargo.lock",
    ]))
    .is_ok_and(|s| !s.trim().is_empty());
    if dirty { format!("{head} (dns-xdp sources with uncommitted changes)") } else { head }
}

fn leftover_namespaces() -> Vec<String> {
    let prefix = format!("{NETNS_PREFIX}{}-", std::process::id());
    netlab::netns::namespaces(&prefix).unwrap_or_default()
}
