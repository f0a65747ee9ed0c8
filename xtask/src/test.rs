//! `cargo xtask test`: style gates, host unit tests, a short run of each
//! cargo-fuzz target (`fuzz/`), privileged end-to-end tests, then the guest
//! stage: the no-peer privileged suites on Debian 12's
//! stock 6.1 kernel in a VM (dns-xdp-vmtest), so the program is known to
//! pass the verifier PoP hosts run. `--kernel KERNEL` runs the guest stage
//! alone; `--skip-vm` leaves it out.
//!
//! The gates come first and stop the run when they fail, so a style slip is
//! reported in seconds rather than after the whole suite: `cargo fmt --check`,
//! clippy with warnings denied on the host crates, and clippy on the eBPF
//! crate for its own target.
//!
//! Privileged tests are the integration tests of the `dns-xdp-tests` package
//! (`tests/tests/*.rs`): plain `#[test]`s that need root, network namespaces
//! and XDP. Step 1 excludes that package; step 2 runs it alone, one test at a
//! time, with `DNS_XDP_BIN` naming the daemon binary to start.

use std::io::{BufRead, BufReader};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context, Result};

use crate::build::{self, Profile};
use crate::setup;
use crate::util::{self, is_root};

type Counts = netlab::libtest::TestCounts;

/// The kernel the full run's guest stage boots: the stock kernel of the
/// distribution most PoP hosts run.
pub const VM_KERNEL: &str = "debian-6.1";

pub fn test(release: bool, vm: bool, extra: &[String]) -> Result<ExitCode> {
    setup::ensure(setup::Needs::ALL)?;
    let mut counts = Counts::default();
    let mut failed_steps = Vec::new();

    // 0. Style gates.
    for (step, mut cmd) in gates() {
        let line = util::describe(&cmd);
        println!("+ {line}");
        let status = cmd.status().with_context(|| format!("starting `{line}`"))?;
        if !status.success() {
            println!("xtask test: FAILED: {step} (`{line}`); fix it before the tests run");
            println!("summary: 0 passed, 1 failed, 0 skipped");
            return Ok(ExitCode::FAILURE);
        }
    }

    // 1. Host unit tests. The eBPF crate only builds for bpfel-unknown-none
    //    (dns-xdp's build.rs builds it), and dns-xdp-tests is step 2.
    let mut unit = util::cargo();
    unit.args(["test", "--workspace", "--exclude", "dns-xdp-ebpf", "--exclude", "dns-xdp-tests"]);
    if !extra.is_empty() {
        unit.arg("--").args(extra);
    }
    if !run_counting(&mut unit, &mut counts)? {
        failed_steps.push("unit tests");
    }

    // 1b. Short, bounded fuzz runs of the daemon's query handling and the
    //     zone loader; a crash fails the step.
    for target in FUZZ_TARGETS {
        if fuzz_run(target, FUZZ_SECONDS)? {
            counts.passed += 1;
        } else {
            counts.failed += 1;
            failed_steps.push("fuzz");
        }
    }

    // 2. Privileged end-to-end tests, against a daemon built for them.
    if !is_root() {
        println!("error: the privileged tests need root (network namespaces, XDP); not running them");
        failed_steps.push("privileged tests (not root)");
    } else {
        let profile = if release { Profile::Release } else { Profile::Dev };
        match build::build_daemon(profile, build::Features::Lab) {
            Err(err) => {
                println!("error: {err:#}");
                failed_steps.push("daemon build");
            }
            Ok(bin) => {
                let mut e2e = util::cargo();
                e2e.args(["test", "--package", "dns-xdp-tests", "--", "--test-threads=1"])
                    .args(extra)
                    .env("DNS_XDP_BIN", &bin);
                if !run_counting(&mut e2e, &mut counts)? {
                    failed_steps.push("privileged tests");
                }
            }
        }
        // 3. The same program on an older kernel's verifier, in a guest.
        if vm && !run_counting(&mut vm_stage(release, VM_KERNEL), &mut counts)? {
            failed_steps.push("vm stage");
        }
    }

    if !failed_steps.is_empty() {
        println!("xtask test: FAILED: {}", failed_steps.join(", "));
    }
    println!("summary: {} passed, {} failed, {} skipped", counts.passed, counts.failed, counts.ignored);
    Ok(if failed_steps.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// The cargo-fuzz targets in `fuzz/`, each with the directories its seeds
/// come from (the zone loader starts from the project's own zone files),
/// and how long each runs in the suite (the README gives the longer run).
const FUZZ_TARGETS: [(&str, &[&str]); 2] =
    [("query", &["fuzz/seeds/query"]), ("zone", &["zones", "dns-xdp/testdata", "tests/zones"])];
const FUZZ_SECONDS: u32 = 20;

/// `cargo +nightly fuzz run TARGET` for `seconds`, from `seeds` into a
/// fresh corpus directory (libFuzzer adds new inputs to the first one only,
/// so the run leaves the tree clean); a crash is saved under
/// `fuzz/artifacts/TARGET/` and fails the step. The XDP object is not
/// needed, so its build is skipped.
fn fuzz_run((target, seeds): (&str, &[&str]), seconds: u32) -> Result<bool> {
    let corpus = netlab::temp_dir(&format!("fuzz-{target}"))?;
    let root = util::workspace_root();
    let mut cmd = Command::new("cargo");
    cmd.current_dir(&root)
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO")
        .env("AYA_BUILD_SKIP", "1")
        .args(["+nightly", "fuzz", "run", target])
        .arg(corpus.path())
        .args(seeds.iter().map(|dir| root.join(dir)))
        .args(["--", &format!("-max_total_time={seconds}")]);
    let line = util::describe(&cmd);
    println!("+ {line}");
    let status = cmd.status().with_context(|| format!("starting `{line}`"))?;
    if !status.success() {
        println!("xtask test: fuzz target {target} failed (`{line}`); the input is under fuzz/artifacts/{target}/");
    }
    Ok(status.success())
}

/// `cargo xtask test --kernel KERNEL`: the guest stage alone.
pub fn vm_only(release: bool, kernel: &str) -> Result<ExitCode> {
    setup::ensure(setup::Needs::ALL)?;
    let mut counts = Counts::default();
    let ok = run_counting(&mut vm_stage(release, kernel), &mut counts)?;
    println!("summary: {} passed, {} failed, {} skipped", counts.passed, counts.failed, counts.ignored);
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// The guest stage (dns-xdp-vmtest): boots `kernel` and runs the
/// privileged suites that need no peer servers in it.
fn vm_stage(release: bool, kernel: &str) -> Command {
    let mut cmd = util::cargo();
    cmd.args(["run", "--package", "dns-xdp-vmtest", "--"]).args(["--kernel", kernel]);
    if release {
        cmd.arg("--release");
    }
    cmd
}

/// The style gates: formatting, then clippy with warnings denied on the host
/// crates (the eBPF crate is not a default member: it builds only for
/// bpfel-unknown-none), on the product build of the daemon (without the
/// lab feature the tests turn on), and on the eBPF crate with its own
/// target and toolchain, lab programs included.
fn gates() -> Vec<(&'static str, Command)> {
    let mut fmt = util::cargo();
    fmt.args(["fmt", "--all", "--check"]);
    let mut clippy = util::cargo();
    clippy.args(["clippy", "--all-targets", "--", "-D", "warnings"]);
    let mut clippy_product = util::cargo();
    clippy_product.args(["clippy", "--package", "dns-xdp", "--all-targets", "--", "-D", "warnings"]);
    // Through rustup's proxy: `+nightly` selects the toolchain the eBPF
    // build uses (the `CARGO` that runs xtask is the stable one).
    let mut clippy_ebpf = Command::new("cargo");
    clippy_ebpf.current_dir(util::workspace_root()).env_remove("RUSTUP_TOOLCHAIN").env_remove("CARGO").args([
        "+nightly",
        "clippy",
        "--package",
        "dns-xdp-ebpf",
        "--features",
        "lab",
        "--release",
        "--target",
        "bpfel-unknown-none",
        "-Z",
        "build-std=core",
        "--",
        "-D",
        "warnings",
    ]);
    vec![
        ("formatting", fmt),
        ("clippy", clippy),
        ("clippy (product build)", clippy_product),
        ("clippy (eBPF)", clippy_ebpf),
    ]
}

/// Runs a `cargo test` command, echoing its stdout while counting results.
/// Returns whether it succeeded.
fn run_counting(cmd: &mut Command, counts: &mut Counts) -> Result<bool> {
    let line = util::describe(cmd);
    println!("+ {line}");
    let mut child = cmd.stdout(Stdio::piped()).spawn().with_context(|| format!("starting `{line}`"))?;
    let stdout = child.stdout.take().context("test stdout was not captured")?;
    for out_line in BufReader::new(stdout).lines() {
        let out_line = out_line.context("reading test output")?;
        println!("{out_line}");
        counts.add_line(&out_line);
    }
    let status = child.wait().with_context(|| format!("waiting for `{line}`"))?;
    Ok(status.success())
}
