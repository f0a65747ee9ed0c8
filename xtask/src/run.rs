//! `cargo xtask run`: build, then run the daemon in the foreground, in place
//! of xtask (exec).

use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};

use anyhow::{Context, Result};

use crate::build::{self, Profile};
use crate::setup;
use crate::util::{self, is_root};

/// `dns-xdp run` arguments for the loopback demo: generic-mode XDP on `lo`
/// works with no namespaces (see the toolchain notes).
const DEFAULT_ARGS: &[&str] =
    &["--zone", "zones/example.test.zone", "--listen", "127.0.0.1:5300", "--iface", "lo", "--xdp-mode", "generic"];

pub fn run(profile: Profile, args: Vec<String>) -> Result<ExitCode> {
    setup::ensure(setup::Needs::RUN)?;
    let bin = build::build_daemon(profile, build::Features::Product)?;
    let args = if args.is_empty() { DEFAULT_ARGS.iter().map(|s| s.to_string()).collect() } else { args };
    if !is_root() {
        println!("warning: dns-xdp needs root (CAP_BPF, CAP_NET_ADMIN) to load its XDP program");
    }
    let shown = util::display_path(&bin);
    println!("Query it: dig @127.0.0.1 -p 5300 www.example.test A");
    println!("Counters: {shown} stats");

    let mut cmd = Command::new(&bin);
    // Relative paths such as the default zone file are relative to the root.
    cmd.current_dir(util::workspace_root()).arg("run").args(&args);
    println!("+ {}", util::describe(&cmd));
    // The daemon takes over this process: Ctrl-C, `kill` and a supervisor's
    // signals reach it directly, and its exit status is ours.
    let err = cmd.exec();
    Err(err).with_context(|| format!("starting {}", bin.display()))
}
