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
pub mod netns;
pub mod process;
pub mod udp;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

pub use cmd::wait_until;
pub use netns::{NetNs, Topology, TopologyConfig, Vlan};
pub use process::{Proc, ProcOptions};

/// The workspace root (this crate's parent directory), so that paths such as
/// zone files work from wherever cargo was started.
pub fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().map(Path::to_path_buf).unwrap_or_else(|| manifest_dir.to_path_buf())
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
