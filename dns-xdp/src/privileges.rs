//! The capabilities the daemon needs, and dropping them once it no longer
//! does.
//!
//! Found by experiment on Linux 6.18 (running the daemon as an unprivileged
//! user with each capability taken away in turn; `tests/tests/privileges.rs`
//! keeps it checked):
//!
//! - CAP_BPF: creating the maps (`BPF_MAP_CREATE`) and loading the program;
//! - CAP_PERFMON: the verifier refuses the program without it (pointer
//!   arithmetic on packet and map values, which only a "perfmon capable"
//!   loader may do);
//! - CAP_NET_ADMIN: loading and attaching an XDP program;
//! - CAP_NET_BIND_SERVICE: the DNS port (53, below 1024).
//!
//! CAP_SYS_ADMIN is not needed: the daemon reads its own counters through
//! the maps it pinned and the attachment through netlink, not by BPF object
//! ID. Once the sockets are bound and the program attached, nothing the
//! daemon does needs a capability: answers, heartbeats and reloads write
//! maps through file descriptors it already holds, detaching is closing the
//! link, and its pins are files in a directory it owns. So [`drop_all`]
//! clears all of them, before any other thread starts (capabilities are per
//! thread).

use anyhow::Context as _;
use caps::{CapSet, Capability};

/// What `dns-xdp run` needs to start, for the docs and the error hints.
pub const NEEDED: [Capability; 4] =
    [Capability::CAP_BPF, Capability::CAP_NET_ADMIN, Capability::CAP_NET_BIND_SERVICE, Capability::CAP_PERFMON];

/// Clears every capability of the calling thread (effective, permitted,
/// inheritable and ambient); threads started afterwards have none either.
/// Returns the ones it dropped. Call it before starting any thread.
pub fn drop_all() -> anyhow::Result<Vec<String>> {
    let held = caps::read(None, CapSet::Permitted).context("reading the process's capabilities")?;
    let mut dropped: Vec<String> = held.iter().map(|c| c.to_string()).collect();
    dropped.sort();
    caps::clear(None, CapSet::Ambient).context("clearing the ambient capabilities")?;
    caps::clear(None, CapSet::Inheritable).context("clearing the inheritable capabilities")?;
    caps::clear(None, CapSet::Effective).context("clearing the effective capabilities")?;
    caps::clear(None, CapSet::Permitted).context("clearing the permitted capabilities")?;
    Ok(dropped)
}

/// The capabilities in [`NEEDED`] this process lacks (none for root).
pub fn missing() -> Vec<String> {
    let effective = caps::read(None, CapSet::Effective).unwrap_or_default();
    NEEDED.iter().filter(|c| !effective.contains(c)).map(|c| c.to_string()).collect()
}

/// Lowers the calling thread's CPU priority to `nice` (threads it starts
/// afterwards inherit it), unless it already runs at that or lower. Lowering
/// needs no capability; raising would (CAP_SYS_NICE), so a daemon started
/// at a lower priority (systemd's `Nice=`) keeps it. Returns the nice value
/// the daemon runs at.
pub fn lower_priority(nice: i32) -> anyhow::Result<i32> {
    // getpriority returns -1 for nice -1 as well as on error: errno tells.
    // SAFETY: errno is thread-local; getpriority has no preconditions.
    unsafe { *libc::__errno_location() = 0 };
    let current = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    if current == -1 && std::io::Error::last_os_error().raw_os_error() != Some(0) {
        return Err(std::io::Error::last_os_error()).context("reading the daemon's CPU priority");
    }
    if current >= nice {
        return Ok(current);
    }
    // SAFETY: no preconditions; `0` is the calling thread.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("setting the daemon's nice value to {nice}"));
    }
    Ok(nice)
}
