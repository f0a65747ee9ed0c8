//! `dns-xdp-vmtest --kernel debian-6.1`: boots a distribution's stock
//! kernel under KVM, with this machine's root filesystem (and so this
//! checkout) visible read-only inside, and runs there the privileged suites
//! that need no peer servers: the XDP program's verdict table, its answers'
//! byte-identity with the daemon's, the torn-read test, and one end-to-end
//! answer over a veth pair. The verifier that loads the program is the guest
//! kernel's, which is the point: PoP hosts run their distribution's kernel.
//!
//! Where `/dev/kvm` is PVM (nested sandboxes without hardware
//! virtualisation), which runs only PVM-built guest kernels, the stock
//! kernel boots under emulation (TCG) instead: slower, the same verifier.
//! A missing `/dev/kvm` is an error unless `--accel tcg` asks for that.
//!
//! `--kernel host` runs the same tests on this machine's kernel instead
//! (as root), for comparing the two in one sitting.

mod host;
mod initramfs;
mod kernel;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;

/// The selected tests, by test binary (`tests/tests/<name>.rs`). Names are
/// matched exactly; a test that is renamed away makes the stage fail (fewer
/// ran than selected) rather than silently run less.
const SELECTED: &[(&str, &[&str])] = &[
    (
        "xdp_prog",
        &[
            "verdict_table",
            "xdp_answers_equal_daemon_answers",
            "answers_rewritten_while_served_are_never_mixed",
            "nsid_and_chaos_identity_answers_equal_daemon_answers",
            "cookie_answers_equal_daemon_answers",
        ],
    ),
    ("e2e", &["answers_come_from_xdp_over_ipv4_and_ipv6"]),
    // bpf_link_update on a pinned link, and the aya-log ring buffer.
    ("restart", &["pins_of_another_layout_are_replaced_on_the_same_link", "program_diagnostics_reach_the_daemon_log"]),
];

const USAGE: &str = "usage: dns-xdp-vmtest --kernel debian-6.1|host [--kernel-version 6.1.0-N-amd64] \
    [--kvm-device PATH] [--accel auto|kvm|tcg] [--timeout SECS] [--release]";

struct Args {
    kernel: String,
    kernel_version: Option<String>,
    kvm_device: PathBuf,
    accel: Option<host::Accel>,
    timeout: Duration,
    release: bool,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        kernel: String::new(),
        kernel_version: None,
        // An override (flag or env) to a missing path shows the no-KVM failure.
        kvm_device: std::env::var_os("DNS_XDP_VM_KVM").map_or_else(|| PathBuf::from("/dev/kvm"), PathBuf::from),
        accel: None,
        timeout: Duration::from_secs(300),
        release: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value\n{USAGE}"));
        match arg.as_str() {
            "--kernel" => args.kernel = value()?,
            "--kernel-version" => args.kernel_version = Some(value()?),
            "--kvm-device" => args.kvm_device = value()?.into(),
            "--timeout" => args.timeout = Duration::from_secs(value()?.parse().context("--timeout: seconds")?),
            "--accel" => {
                args.accel = match value()?.as_str() {
                    "auto" => None,
                    "kvm" => Some(host::Accel::Kvm),
                    "tcg" => Some(host::Accel::Tcg),
                    other => bail!("--accel {other:?}: auto, kvm or tcg\n{USAGE}"),
                }
            }
            "--release" => args.release = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    ensure!(!args.kernel.is_empty(), "--kernel is required\n{USAGE}");
    Ok(args)
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(err) => {
            println!("vm: FAILED: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<ExitCode> {
    let args = parse_args()?;
    let started = Instant::now();
    let workspace = workspace_root();
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace.join("target"), PathBuf::from);

    if args.kernel == "host" {
        let bins = build_tests(&workspace, args.release)?;
        let release = host::output(Command::new("uname").arg("-r"))?.trim().to_string();
        let mut counts = Counts::default();
        let mut ok = true;
        for (bin, names) in &bins.tests {
            let mut cmd = Command::new(bin);
            cmd.args(["--exact", "--test-threads=1"])
                .args(*names)
                .env("DNS_XDP_BIN", &bins.daemon)
                .current_dir(workspace.join("tests"))
                .stdout(Stdio::piped());
            let mut child = cmd.spawn().with_context(|| format!("starting {}", bin.display()))?;
            let out = child.stdout.take().context("test stdout")?;
            for line in BufReader::new(out).lines() {
                let line = line?;
                println!("{line}");
                counts.add_line(&line);
            }
            ok &= child.wait()?.success();
        }
        return Ok(counts.report(&format!("host ({release})"), ok, started));
    }

    // Checked first: without KVM nothing else is worth doing. Emulation
    // only when asked for, or when this host's KVM cannot run the kernel.
    let series = kernel::Series::parse(&args.kernel)?;
    let accel = match args.accel {
        Some(host::Accel::Tcg) => host::Accel::Tcg,
        explicit => {
            host::require_kvm(&args.kvm_device)?;
            if host::kvm_is_pvm() {
                ensure!(
                    explicit.is_none(),
                    "this host's KVM is PVM (module kvm_pvm), which boots only kernels built as PVM guests; \
                     a stock kernel cannot run under it (use --accel tcg)"
                );
                println!(
                    "vm: this host's KVM is PVM (kvm_pvm), which runs only PVM-built guest kernels; \
                     booting the stock kernel under emulation (TCG) instead"
                );
                host::Accel::Tcg
            } else {
                host::Accel::Kvm
            }
        }
    };
    host::ensure_tools()?;
    let cache = target.join("vmtest/kernels");
    std::fs::create_dir_all(&cache).with_context(|| format!("creating {}", cache.display()))?;
    let kernel = kernel::fetch(series, args.kernel_version.as_deref(), &cache)?;
    let bins = build_tests(&workspace, args.release)?;

    let modules = kernel.modules_for(initramfs::MODULES)?;
    let initrd = cache.join(format!("{}.initrd.cpio", kernel.release));
    initramfs::build(&initrd, Path::new("/bin/busybox"), &modules, &guest_script(&workspace, &bins))?;

    let label = format!("{} ({}, Debian {})", series.name(), kernel.release, kernel.package_version);
    println!("vm: booting {label} ({accel:?}), {} modules loaded from the package", modules.len());
    let result = boot(&kernel, &initrd, accel, args.timeout)?;
    let mut counts = Counts::default();
    for line in &result.lines {
        counts.add_line(line);
    }
    if let Some(running) = &result.uname
        && running != &kernel.release
    {
        bail!("the guest ran {running}, not {}", kernel.release);
    }
    let ok = match result.exit {
        Some(code) => code == 0,
        None => {
            println!(
                "vm: the guest stopped without reporting a result (kernel panic, or its init failed; console above)"
            );
            false
        }
    };
    Ok(counts.report(&format!("vm: {label}"), ok, started))
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("vmtest lives inside the workspace").to_path_buf()
}

/// The host-built binaries the guest runs.
struct Binaries {
    /// `dns-xdp` with the lab feature, which the tests start.
    daemon: PathBuf,
    /// Each selected test binary with the tests to run in it.
    tests: Vec<(PathBuf, &'static [&'static str])>,
}

/// Builds the daemon (with `lab`, as `cargo xtask test` does) and the test
/// binaries of dns-xdp-tests, on the host: the guest only runs them.
fn build_tests(workspace: &Path, release: bool) -> Result<Binaries> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let profile: &[&str] = if release { &["--release"] } else { &[] };
    let artifacts = |args: &[&str]| -> Result<Vec<Value>> {
        let mut cmd = Command::new(&cargo);
        cmd.args(args).args(profile).arg("--message-format=json-render-diagnostics").current_dir(workspace);
        cmd.stderr(Stdio::inherit());
        let out = host::output(&mut cmd).context("building on the host")?;
        Ok(out
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["reason"] == "compiler-artifact" && v["executable"].is_string())
            .collect())
    };
    println!("vm: building dns-xdp (lab) and the dns-xdp-tests binaries on the host");
    let daemon = artifacts(&["build", "--package", "dns-xdp", "--features", "lab"])?
        .into_iter()
        .find(|v| v["target"]["name"] == "dns-xdp")
        .and_then(|v| v["executable"].as_str().map(PathBuf::from))
        .context("cargo built no dns-xdp binary")?;
    let tests = artifacts(&["test", "--package", "dns-xdp-tests", "--no-run"])?;
    let mut out = Vec::new();
    for (name, selected) in SELECTED {
        let exe = tests
            .iter()
            .find(|v| v["target"]["name"] == *name && v["profile"]["test"] == true)
            .and_then(|v| v["executable"].as_str())
            .with_context(|| format!("cargo built no test binary {name} (tests/tests/{name}.rs)"))?;
        out.push((PathBuf::from(exe), *selected));
    }
    Ok(Binaries { daemon, tests: out })
}

fn selected_count() -> u64 {
    SELECTED.iter().map(|(_, t)| t.len() as u64).sum()
}

/// The script the guest runs from the host's root: the selected tests, then
/// a marker with the result, then an immediate reboot (qemu runs with
/// `-no-reboot`, so that ends it).
fn guest_script(workspace: &Path, bins: &Binaries) -> String {
    let mark = initramfs::MARK;
    let mut s = format!(
        "set -u\n\
         export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/run/tmp TMPDIR=/run/tmp\n\
         export RUST_BACKTRACE=1 DNS_XDP_BIN='{}'\n\
         echo \"{mark} uname=$(uname -r)\"\n\
         ip link set lo up\n\
         cd '{}' || echo \"{mark} exit=1\"\n\
         rc=0\n",
        bins.daemon.display(),
        workspace.join("tests").display(),
    );
    for (bin, names) in &bins.tests {
        s.push_str(&format!(
            "'{}' --exact --test-threads=1 --color=never {} || rc=1\n",
            bin.display(),
            names.join(" ")
        ));
    }
    // The pause lets the serial line drain before the reset cuts it.
    s.push_str(&format!("echo \"{mark} exit=$rc\"\nsleep 1\necho b > /proc/sysrq-trigger\nsleep 60\n"));
    s
}

struct GuestResult {
    lines: Vec<String>,
    exit: Option<i32>,
    uname: Option<String>,
}

/// Boots the guest and echoes its console until it reboots (ends) or
/// `timeout` passes, when qemu (our child) is killed.
fn boot(kernel: &kernel::Kernel, initrd: &Path, accel: host::Accel, timeout: Duration) -> Result<GuestResult> {
    let mut cmd = Command::new("qemu-system-x86_64");
    match accel {
        host::Accel::Kvm => cmd.args(["-accel", "kvm", "-cpu", "host"]),
        host::Accel::Tcg => cmd.args(["-accel", "tcg,thread=multi", "-cpu", "max"]),
    };
    cmd.args(["-smp", "2", "-m", "2048"])
        .args(["-nodefaults", "-no-user-config", "-display", "none", "-no-reboot", "-serial", "stdio"])
        .arg("-kernel")
        .arg(&kernel.vmlinuz)
        .arg("-initrd")
        .arg(initrd)
        // panic=-1 and oops=panic: a crashing guest reboots, which ends qemu.
        .args(["-append", "console=ttyS0 quiet loglevel=4 panic=-1 oops=panic sysrq_always_enabled=1 rdinit=/init"])
        .arg("-virtfs")
        .arg(format!("local,path=/,mount_tag={},security_model=none,readonly=on,multidevs=remap", initramfs::ROOT_TAG))
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    let mut child = cmd.spawn().context("starting qemu-system-x86_64")?;
    let stdout = child.stdout.take().context("qemu stdout was not captured")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    let deadline = Instant::now() + timeout;
    let mut result = GuestResult { lines: Vec::new(), exit: None, uname: None };
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left.min(Duration::from_millis(500))) {
            Ok(line) => {
                let line = line.trim_end_matches('\r').to_string();
                println!("{line}");
                if let Some(rest) = line.strip_prefix(initramfs::MARK) {
                    let rest = rest.trim();
                    if let Some(code) = rest.strip_prefix("exit=") {
                        result.exit = code.trim().parse().ok();
                    } else if let Some(u) = rest.strip_prefix("uname=") {
                        result.uname = Some(u.trim().to_string());
                    }
                }
                result.lines.push(line);
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if Instant::now() >= deadline {
            kill(&mut child);
            bail!("the guest did not finish within {} s; killed qemu (pid {})", timeout.as_secs(), child.id());
        }
    }
    // The console closed: qemu is exiting. Bound the wait all the same.
    while child.try_wait()?.is_none() {
        if Instant::now() >= deadline {
            kill(&mut child);
            bail!("qemu did not exit after the guest's console closed; killed it (pid {})", child.id());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(result)
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

use netlab::libtest::TestCounts as Counts;

/// The stage's summary line.
trait Report {
    fn report(&self, label: &str, ok: bool, started: Instant) -> ExitCode;
}

impl Report for Counts {
    /// Prints the summary line and returns the exit code: success only if
    /// every selected test ran and passed.
    fn report(&self, label: &str, ok: bool, started: Instant) -> ExitCode {
        let expected = selected_count();
        let ran = self.passed + self.failed;
        let ok = ok && self.failed == 0 && ran == expected;
        if ran != expected {
            println!("{label}: {ran} of the {expected} selected tests ran");
        }
        println!(
            "{label}: {} passed, {} failed in {:.0} s{}",
            self.passed,
            self.failed,
            started.elapsed().as_secs_f64(),
            if ok { "" } else { " -- FAILED" }
        );
        if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
    }
}
