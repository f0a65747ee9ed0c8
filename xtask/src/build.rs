//! `cargo xtask build`: the daemon, whose build.rs builds the eBPF object.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::util::{self, run_visible};

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Dev,
    Release,
}

impl Profile {
    pub fn from_debug(debug: bool) -> Self {
        if debug { Profile::Dev } else { Profile::Release }
    }

    /// Cargo's output directory name for the profile.
    fn dir(self) -> &'static str {
        match self {
            Profile::Dev => "debug",
            Profile::Release => "release",
        }
    }
}

/// What goes into the binary: the product alone, or with the lab's
/// scaffolding (`bench-prog`, `attach pass|bounce`, their XDP programs) that
/// the tests and the benchmark drive.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Features {
    Product,
    Lab,
}

/// Builds `dns-xdp` and returns the path of its binary. Call
/// [`crate::setup::ensure`] first: the eBPF build needs bpf-linker.
pub fn build_daemon(profile: Profile, features: Features) -> Result<PathBuf> {
    let mut cmd = util::cargo();
    cmd.args(["build", "--package", "dns-xdp"]);
    if features == Features::Lab {
        cmd.args(["--features", "lab"]);
    }
    if profile == Profile::Release {
        cmd.arg("--release");
    }
    run_visible(&mut cmd).context("building dns-xdp")?;
    let bin = util::target_dir()?.join(profile.dir()).join("dns-xdp");
    anyhow::ensure!(bin.is_file(), "build succeeded but {} does not exist", bin.display());
    Ok(bin)
}
