//! `cargo xtask bench`: builds the release daemon (with the lab features the
//! benchmark drives) and the `dns-xdp-bench` binary, then runs it with the
//! flags given, unchanged. The benchmark itself lives in `dns-xdp-bench/`.

use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};
use netlab::cmd::run_visible;

use crate::build::{self, Profile};
use crate::setup;

pub fn bench(args: &[String]) -> Result<ExitCode> {
    // Help needs neither the setup nor the daemon (a build of minutes).
    let help = args.iter().any(|a| a == "--help" || a == "-h");
    let daemon = if help {
        None
    } else {
        setup::ensure(setup::Needs::ALL)?;
        Some(build::build_daemon(Profile::Release, build::Features::Lab)?)
    };
    run_visible(netlab::cargo().args(["build", "--release", "--package", "dns-xdp-bench"]))
        .context("building dns-xdp-bench")?;
    let bin = netlab::target_dir()?.join("release").join("dns-xdp-bench");
    let mut cmd = Command::new(&bin);
    cmd.args(args).current_dir(netlab::workspace_root());
    if let Some(daemon) = daemon {
        cmd.env("DNS_XDP_BIN", daemon);
    }
    // The benchmark handles Ctrl-C itself (its guards clean up): nothing is
    // left for us to do after it, so it takes over this process.
    let err = cmd.exec();
    bail!("starting {}: {err}", bin.display())
}
