//! The harness shared by dns-xdp's privileged tests (`dns-xdp-tests`) and its
//! benchmark (`dns-xdp-bench`): development only, never shipped.
//!
//! Everything here that creates state on the machine is a guard whose `Drop`
//! removes it, also while a failing test or an interrupted benchmark unwinds:
//! [`NetNs`] deletes its namespace (and the veths and XDP programs in it),
//! [`Topology`] also detaches XDP programs first, and [`Proc`] stops its
//! process and the processes it forked, by PID, never by name. Declare
//! processes *after* the namespace they run in, so they are stopped first.
//!
//! Functions return errors with context; the tests turn them into panics
//! with a message, the benchmark into a failed row or run.

pub mod cmd;
pub mod libtest;
pub mod netns;
pub mod process;
pub mod udp;

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

pub use cmd::wait_until;
pub use netns::{NetNs, Topology, TopologyConfig, Vlan};
pub use process::{Proc, ProcOptions};
pub use tempfile::TempDir;

/// The workspace root (this crate's parent directory), so that paths such as
/// zone files work from wherever cargo was started.
pub fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().map(Path::to_path_buf).unwrap_or_else(|| manifest_dir.to_path_buf())
}

/// The cargo that runs us (cargo sets `CARGO`), so nested builds use the same
/// toolchain; plain `cargo` from PATH otherwise. Runs from the workspace root.
pub fn cargo() -> Command {
    let mut cmd = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(workspace_root());
    cmd
}

/// Cargo's target directory as cargo resolves it (CARGO_TARGET_DIR, config,
/// or `<root>/target`), so built binaries and outputs are found wherever
/// they land.
pub fn target_dir() -> Result<PathBuf> {
    let output = cmd::output(cargo().args(["metadata", "--format-version", "1", "--no-deps"]))?;
    if !output.status.success() {
        bail!("`cargo metadata` failed: {}", String::from_utf8_lossy(&output.stderr).trim());
    }
    let meta: serde_json::Value = serde_json::from_slice(&output.stdout).context("parsing `cargo metadata` output")?;
    let dir = meta["target_directory"].as_str().context("`cargo metadata` output has no target_directory")?;
    Ok(PathBuf::from(dir))
}

/// `path` relative to the workspace root when it lies inside it: shorter to
/// read and to copy into a shell started there.
pub fn display_path(path: &Path) -> String {
    path.strip_prefix(workspace_root()).unwrap_or(path).display().to_string()
}

/// A fresh directory under the system temp dir, removed with its contents
/// when the guard is dropped. `label` goes into the name, with this process's
/// PID, so a leftover can be traced to its run.
pub fn temp_dir(label: &str) -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(&format!("netlab-{}-{label}-", std::process::id()))
        .tempdir()
        .with_context(|| format!("creating a temporary directory for {label}"))
}
