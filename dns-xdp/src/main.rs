//! dns-xdp: authoritative DNS with hot answers served by XDP at the driver.

use std::{path::PathBuf, process::ExitCode};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use dns_xdp::{config, control, daemon, zone::Zone};
use hickory_proto::rr::Name;

#[derive(Parser)]
#[command(
    version,
    about,
    long_about = "Authoritative DNS server. Queries whose answers are in the \
    XDP map are answered by the kernel at the NIC driver; everything else is answered by the daemon, \
    which also keeps the map in line with the zone data."
)]
struct Cli {
    /// Log lines as text (one event per line, key=value fields) or as JSON
    /// objects, one per line, for a log pipeline. RUST_LOG filters
    /// (default: info).
    #[arg(long, global = true, value_enum, default_value = "text", value_name = "FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Serve zones (UDP and TCP), with the XDP fast path on an interface.
    Run(Box<config::RunArgs>),
    /// Print the counters of every running dns-xdp instance, and the health
    /// of the one at the control socket.
    Stats {
        /// Machine-readable output.
        #[arg(long, conflicts_with = "watch")]
        json: bool,
        /// A live view, redrawn every second until q or Ctrl-C: rates, hit
        /// ratio, XDP answers per CPU, pass reasons, health, and the
        /// questions most often passed to the daemon. Not at a terminal,
        /// each frame is printed after the last.
        #[arg(long)]
        watch: bool,
        /// With --watch: stop after N frames (for scripts and tests).
        #[arg(long, value_name = "N", requires = "watch")]
        count: Option<u64>,
        /// The daemon's control socket, for its health: the checks of GET
        /// /health, whose SOA queries to each service address show in the
        /// counters (`off`: counters only).
        #[arg(long, value_name = "PATH|off", default_value = config::DEFAULT_CONTROL_SOCKET)]
        control_socket: config::ControlSocket,
    },
    /// What the XDP answer table of the running daemon holds, and clearing it.
    Cache {
        #[command(subcommand)]
        command: CacheCommand,
        /// The daemon's control socket.
        #[arg(long, global = true, value_name = "PATH", default_value = config::DEFAULT_CONTROL_SOCKET)]
        control_socket: PathBuf,
    },
    /// Check a zone file and report errors as FILE:LINE: message.
    CheckZone {
        file: PathBuf,
        /// Zone origin [default: the file's $ORIGIN, else its name without .zone].
        origin: Option<String>,
    },
    /// Check a configuration file and every zone it names.
    CheckConfig { file: PathBuf },
    #[cfg(feature = "lab")]
    /// Attach a helper program and keep it attached until Ctrl-C: `pass`
    /// (needed on the peer of a veth that receives XDP_TX replies) or
    /// `bounce` (turns queries around with no DNS work: a benchmark ceiling).
    Attach {
        #[arg(value_enum)]
        program: HelperProgram,
        #[arg(long)]
        iface: String,
        #[arg(long, value_enum, default_value = "native")]
        xdp_mode: config::AttachMode,
        /// Service address:port the bounce program answers (repeatable).
        #[arg(long = "listen", value_name = "ADDR:PORT")]
        listen: Vec<std::net::SocketAddr>,
    },
    #[cfg(feature = "lab")]
    /// Measure the XDP program's cost per packet with BPF_PROG_TEST_RUN.
    BenchProg {
        /// Runs per case (one BPF_PROG_TEST_RUN each).
        #[arg(long, default_value_t = 100_000)]
        runs: u32,
        #[arg(long)]
        json: bool,
    },
    /// Remove the XDP program, its links and its maps that `dns-xdp run`
    /// pinned and left in place for the next start (a restart adopts them).
    Detach {
        /// The daemon's pin directory (`pin_dir`).
        #[arg(long, value_name = "DIR", default_value = config::DEFAULT_PIN_DIR)]
        pin_dir: PathBuf,
    },
    /// Ask targets (anycast service addresses) the same question with NSID
    /// at an interval: which instance answers, RTT min/median/p99, loss,
    /// serial and rcode per target, and every change of instance or serial
    /// as an event line.
    Probe(Box<dns_xdp::probe::ProbeArgs>),
    /// Route control through BIRD: announce the service prefixes while the
    /// daemon answers (checked by query and /health, with rise/fall),
    /// withdraw them when it does not. Run it as its own service.
    Announce(Box<dns_xdp::announce::AnnounceArgs>),
    /// Take this PoP out of service: fail health so the routes are
    /// withdrawn, keep answering until the traffic has moved, then stop.
    Drain(dns_xdp::announce::DrainArgs),
    /// Ask the running daemon to re-read its configuration's zone list and
    /// its zones; returns when the new data is served (or says why not).
    Reload {
        /// The daemon's control socket.
        #[arg(long, value_name = "PATH", default_value = config::DEFAULT_CONTROL_SOCKET)]
        control_socket: PathBuf,
        /// Send SIGHUP to the PID in this file instead (the daemon's
        /// --pid-file); returns at once, without the outcome.
        #[arg(long, value_name = "FILE", conflicts_with = "control_socket")]
        pid_file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum CacheCommand {
    /// List the answers the table holds, by name: NAME TYPE RCODE ANSWERS ZONE.
    List {
        /// Only this zone's answers.
        #[arg(long, value_name = "ZONE")]
        zone: Option<String>,
        /// At most N lines [default: 100].
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Remove the answers of one zone (or all) from the table. Queries for
    /// them are answered by the daemon, which puts them back as they come.
    Flush {
        /// Only this zone's answers.
        #[arg(long, value_name = "ZONE")]
        zone: Option<String>,
    },
}

#[cfg(feature = "lab")]
#[derive(Clone, Copy, clap::ValueEnum)]
enum HelperProgram {
    Pass,
    Bounce,
}

fn detach(pin_dir: &std::path::Path) -> anyhow::Result<()> {
    let done = dns_xdp::fastpath::detach(pin_dir)?;
    if done.links.is_empty() && done.pins.is_empty() {
        println!("nothing pinned under {}", pin_dir.display());
    }
    for iface in &done.links {
        println!("detached XDP from {iface}");
    }
    for pin in &done.pins {
        println!("removed {}", pin.display());
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let result = match cli.command {
        Command::Run(args) => daemon::run(*args),
        Command::Stats { watch: true, count, control_socket, .. } => {
            dns_xdp::watch::run(control_socket.0.as_deref(), count)
        }
        Command::Stats { json, control_socket, .. } => stats(json, control_socket.0.as_deref()),
        Command::Cache { command, control_socket } => cache(command, &control_socket),
        Command::CheckZone { file, origin } => check_zone(&file, origin.as_deref()),
        Command::CheckConfig { file } => check_config(file),
        Command::Reload { control_socket, pid_file } => reload(&control_socket, pid_file.as_deref()),
        Command::Detach { pin_dir } => detach(&pin_dir),
        Command::Probe(args) => dns_xdp::probe::run(*args),
        Command::Announce(args) => dns_xdp::announce::run(*args),
        Command::Drain(args) => dns_xdp::announce::drain(&args),
        #[cfg(feature = "lab")]
        Command::Attach { program, iface, xdp_mode, listen } => attach(program, &iface, xdp_mode, &listen),
        #[cfg(feature = "lab")]
        Command::BenchProg { runs, json } => bench_prog(runs, json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        // Colour codes only for a person at a terminal, not in journald or
        // log files.
        LogFormat::Text => builder.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init(),
        // One object per event, its fields at the top level beside
        // timestamp, level, target and message.
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).init(),
    }
}

fn stats(json: bool, control_socket: Option<&std::path::Path>) -> anyhow::Result<()> {
    let instances = dns_xdp::stats::read_stats()?;
    // The health of the daemon at the control socket, attached to its
    // program's instance; a daemon that cannot be reached has none.
    let status = control_socket.map(|path| control::request(path, &control::Request::Status {}));
    let status_program = status.as_ref().and_then(|s| s.as_ref().ok()).and_then(|s| s["program_id"].as_u64());
    if json {
        let mut out = serde_json::to_value(&instances)?;
        for inst in out.as_array_mut().into_iter().flatten() {
            if let (Some(program), Some(Ok(status))) = (status_program, &status)
                && inst["program_id"].as_u64() == Some(program)
            {
                inst["health"] = status["health"].clone();
            }
        }
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    if instances.is_empty() {
        if let Some(Ok(status)) = &status {
            print_health(&status["health"]);
        }
        bail!("no dns-xdp XDP program is loaded");
    }
    for inst in &instances {
        println!("dns-xdp program id {}", inst.program_id);
        if let (Some(program), Some(Ok(status))) = (status_program, &status)
            && u64::from(inst.program_id) == program
        {
            print_health(&status["health"]);
        }
        println!("  XDP verdicts (all CPUs):");
        for (name, value) in &inst.xdp {
            println!("    {name:<22} {value}");
        }
        println!("  daemon:");
        for (name, value) in &inst.daemon {
            println!("    {name:<22} {value}");
        }
        println!(
            "  answer table: {} slots of {} bytes ({:.1} MiB, allocated in full); {} answers held",
            inst.answer_capacity,
            inst.answer_entry_bytes,
            f64::from(inst.answer_capacity) * f64::from(inst.answer_entry_bytes) / f64::from(1 << 20),
            inst.daemon.get("map_entries").copied().unwrap_or_default(),
        );
        if let Some(age) = inst.heartbeat_age_ms {
            println!("  last daemon heartbeat: {age} ms ago");
        }
    }
    if let Some(Err(err)) = &status {
        eprintln!("health unknown: {err:#}");
    }
    Ok(())
}

/// `health: healthy` or `health: UNHEALTHY` and one line per reason.
fn print_health(health: &serde_json::Value) {
    if health["healthy"].as_bool() == Some(true) {
        println!("  health: healthy (fast path {})", health["fast_path"].as_str().unwrap_or("?"));
        return;
    }
    println!("  health: UNHEALTHY");
    for reason in health["reasons"].as_array().into_iter().flatten() {
        println!("    {}", reason.as_str().unwrap_or_default());
    }
}

fn cache(command: CacheCommand, control_socket: &std::path::Path) -> anyhow::Result<()> {
    match command {
        CacheCommand::List { zone, limit, json } => {
            let out = control::request(control_socket, &control::Request::CacheList { zone, limit })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&out)?);
                return Ok(());
            }
            for answer in out["answers"].as_array().into_iter().flatten() {
                // The answer to DO queries (a separate entry) ends with DO.
                println!(
                    "{} {} {} {} {}{}",
                    answer["name"].as_str().unwrap_or_default(),
                    answer["type"].as_str().unwrap_or_default(),
                    answer["rcode"].as_str().unwrap_or_default(),
                    answer["answers"],
                    answer["zone"].as_str().unwrap_or("-"),
                    if answer["dnssec_ok"].as_bool() == Some(true) { " DO" } else { "" },
                );
            }
            let listed = out["answers"].as_array().map_or(0, Vec::len);
            eprintln!("{listed} of {} matching answers listed; {} held in the table", out["matched"], out["held"]);
        }
        CacheCommand::Flush { zone } => {
            let what = zone.clone().unwrap_or_else(|| "all zones".into());
            let out = control::request(control_socket, &control::Request::CacheFlush { zone })?;
            println!("flushed {} answers ({what})", out["removed"]);
        }
    }
    Ok(())
}

fn check_zone(file: &std::path::Path, origin: Option<&str>) -> anyhow::Result<()> {
    let origin = origin
        .map(|o| Name::from_ascii(o).map(|n| n.to_lowercase()).with_context(|| format!("invalid origin {o:?}")))
        .transpose()?;
    let zone = Zone::load(file, origin.as_ref())?;
    println!("zone {}: loaded serial {}, {} records", zone.origin(), zone.serial(), zone.record_count());
    Ok(())
}

fn check_config(file: PathBuf) -> anyhow::Result<()> {
    // Interfaces are checked when the daemon attaches; here the file and
    // its zones.
    let args =
        config::RunArgs { config: Some(file.clone()), xdp_mode: Some(config::AttachMode::Off), ..Default::default() };
    let settings = config::Settings::resolve(&args)?;
    let mut failed = 0;
    for spec in &settings.zones {
        match Zone::load(&spec.file, spec.origin.as_ref()) {
            Ok(zone) => println!("zone {}: ok ({})", zone.origin(), spec.file.display()),
            Err(err) => {
                failed += 1;
                eprintln!("{err}");
            }
        }
    }
    if failed > 0 {
        bail!("{failed} zone(s) failed to load");
    }
    println!("{}: ok", file.display());
    Ok(())
}

fn reload(control_socket: &std::path::Path, pid_file: Option<&std::path::Path>) -> anyhow::Result<()> {
    let Some(pid_file) = pid_file else {
        let report = control::request(control_socket, &control::Request::Reload {})?;
        println!(
            "reload done: {} answers updated, {} removed, {} preloaded, {} left out, in {} ms \
             ({} table writes, {} answers looked up again, {} zone files read)",
            report["updated"],
            report["removed"],
            report["preloaded"],
            report["left_out"],
            report["elapsed_ms"],
            report["table_writes"],
            report["checked"],
            report["zone_files_read"],
        );
        return Ok(());
    };
    let text = std::fs::read_to_string(pid_file).with_context(|| format!("reading {}", pid_file.display()))?;
    let pid: i32 = text.trim().parse().with_context(|| format!("{} does not hold a PID", pid_file.display()))?;
    // SAFETY: kill with a PID read from the daemon's own PID file.
    if unsafe { libc::kill(pid, libc::SIGHUP) } != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("signalling PID {pid}"));
    }
    println!("reload requested (PID {pid}); the daemon logs 'reload done' when the new data is served");
    Ok(())
}

#[cfg(feature = "lab")]
fn attach(
    program: HelperProgram,
    iface: &str,
    mode: config::AttachMode,
    listen: &[std::net::SocketAddr],
) -> anyhow::Result<()> {
    let name = match program {
        HelperProgram::Pass => dns_xdp::lab::PASS_PROGRAM,
        HelperProgram::Bounce => dns_xdp::lab::BOUNCE_PROGRAM,
    };
    if matches!(program, HelperProgram::Bounce) && listen.is_empty() {
        bail!("the bounce program needs at least one --listen ADDR:PORT to answer on");
    }
    let _attached = dns_xdp::lab::attach_helper_program(name, iface, mode, listen)?;
    eprintln!("{name} attached to {iface}; Ctrl-C detaches");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    })?;
    Ok(())
}

#[cfg(feature = "lab")]
fn bench_prog(runs: u32, json: bool) -> anyhow::Result<()> {
    let results = dns_xdp::lab::benchprog::run(runs)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&results)?);
        return Ok(());
    }
    println!("{:<32} {:>6} {:>6} {:>10}", "case", "qname", "action", "ns/packet");
    for r in &results {
        println!("{:<32} {:>6} {:>6} {:>10.1}", r.case, r.qname_octets, r.action, r.ns_per_packet);
    }
    Ok(())
}
