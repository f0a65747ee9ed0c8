//! `cargo xtask test`: style gates, host unit tests, then privileged
//! end-to-end tests.
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

/// Test counts gathered from libtest's `test result:` lines.
#[derive(Default)]
struct Counts {
    passed: u64,
    failed: u64,
    ignored: u64,
}

impl Counts {
    /// Parses `test result: ok. 3 passed; 1 failed; 2 ignored; ...`.
    fn add_line(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            return;
        };
        for part in rest.split(';') {
            let mut words = part.split_whitespace().filter(|w| !w.ends_with('.'));
            let (Some(n), Some(what)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(n) = n.parse::<u64>() else { continue };
            match what {
                "passed" => self.passed += n,
                "failed" => self.failed += n,
                "ignored" => self.ignored += n,
                _ => {}
            }
        }
    }
}

pub fn test(release: bool, extra: &[String]) -> Result<ExitCode> {
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
    }

    if !failed_steps.is_empty() {
        println!("xtask test: FAILED: {}", failed_steps.join(", "));
    }
    println!("summary: {} passed, {} failed, {} skipped", counts.passed, counts.failed, counts.ignored);
    Ok(if failed_steps.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
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

#[cfg(test)]
mod tests {
    use super::Counts;

    #[test]
    fn counts_libtest_result_lines() {
        let mut c = Counts::default();
        c.add_line("test result: ok. 3 passed; 0 failed; 2 ignored; 0 measured; 0 filtered out; finished in 0.01s");
        c.add_line("test result: FAILED. 1 passed; 4 failed; 0 ignored; 0 measured; 0 filtered out");
        c.add_line("running 5 tests");
        assert_eq!((c.passed, c.failed, c.ignored), (4, 4, 2));
    }
}
