//! `cargo xtask run`: build, then run the daemon in the foreground.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitCode, ExitStatus};
use std::sync::atomic::{AtomicI32, Ordering};

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
    let status = run_forwarding_signals(cmd)?;
    Ok(exit_code(status))
}

/// PID of the foreground child, for the signal handler; 0 when there is none.
static CHILD: AtomicI32 = AtomicI32::new(0);

/// Signal handler: pass SIGINT/SIGTERM on to the child, and keep running so
/// that we can wait for the child's own orderly shutdown (it detaches its XDP
/// program) and return its status.
///
/// Ctrl-C in a terminal already reaches the child, which shares our process
/// group; the kernel marks such signals SI_KERNEL. Forwarding those too would
/// hand the child a second SIGINT, so only signals sent to us alone (`kill`,
/// a supervisor) are forwarded.
extern "C" fn forward(sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo_t for SA_SIGINFO handlers.
    let from_terminal = !info.is_null() && unsafe { (*info).si_code } == libc::SI_KERNEL;
    let pid = CHILD.load(Ordering::SeqCst);
    if pid > 0 && !from_terminal {
        // SAFETY: kill is async-signal-safe; pid is our own child's, never 0
        // or negative (which would signal a whole process group).
        unsafe { libc::kill(pid, sig) };
    }
}

fn install_forwarding() -> Result<()> {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction is a valid starting point; the handler
        // only touches atomics and calls kill, both async-signal-safe.
        let rc = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = forward as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error()).context("installing signal handler");
        }
    }
    Ok(())
}

/// SIGINT and SIGTERM as a signal set.
fn forwarded_signals() -> libc::sigset_t {
    // SAFETY: plain sigset manipulation on a local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        set
    }
}

/// Blocks (or unblocks) SIGINT and SIGTERM for this thread.
fn mask_signals(how: libc::c_int) -> Result<()> {
    let set = forwarded_signals();
    // SAFETY: valid set; no old mask requested.
    let rc = unsafe { libc::pthread_sigmask(how, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(std::io::Error::from_raw_os_error(rc)).context("changing the signal mask");
    }
    Ok(())
}

fn run_forwarding_signals(mut cmd: Command) -> Result<ExitStatus> {
    install_forwarding()?;
    // The child inherits the signal mask, and we spawn with the signals
    // blocked: unblock them in the child before exec.
    let set = forwarded_signals();
    // SAFETY: the closure runs between fork and exec and only calls
    // sigprocmask, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            if libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    // Hold signals until the handler knows the child's PID, so none is lost
    // between spawn and bookkeeping.
    mask_signals(libc::SIG_BLOCK)?;
    let spawned = cmd.spawn();
    if let Ok(child) = &spawned {
        CHILD.store(i32::try_from(child.id()).unwrap_or(0), Ordering::SeqCst);
    }
    mask_signals(libc::SIG_UNBLOCK)?;
    let mut child = spawned.with_context(|| format!("starting {}", util::describe(&cmd)))?;
    // wait() retries on EINTR, so a forwarded signal does not end the wait.
    let status = child.wait().context("waiting for dns-xdp")?;
    CHILD.store(0, Ordering::SeqCst);
    Ok(status)
}

/// The child's exit status as ours; death by signal N as 128+N, as shells do.
fn exit_code(status: ExitStatus) -> ExitCode {
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        (None, Some(sig)) => ExitCode::from(u8::try_from(128 + sig).unwrap_or(1)),
        (None, None) => ExitCode::FAILURE,
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::run_forwarding_signals;

    /// A SIGINT sent to xtask alone (as `kill` or a supervisor would) reaches
    /// the child, and xtask waits for the child and returns its status.
    #[test]
    fn forwards_sigint_sent_to_us_and_returns_child_status() {
        use std::os::unix::process::ExitStatusExt;
        use std::time::{Duration, Instant};

        let mut cmd = Command::new("sleep");
        cmd.arg("10");
        let sender = std::thread::spawn(|| {
            std::thread::sleep(Duration::from_millis(300));
            // SAFETY: signalling our own process; the handler is installed.
            unsafe { libc::kill(libc::getpid(), libc::SIGINT) };
        });
        let started = Instant::now();
        let status = run_forwarding_signals(cmd).expect("running sleep");
        sender.join().expect("signal sender thread");
        assert_eq!(status.signal(), Some(libc::SIGINT), "sleep should die of SIGINT: {status}");
        assert!(started.elapsed() < Duration::from_secs(5), "signal was not forwarded promptly");
        assert_eq!(super::exit_code(status), std::process::ExitCode::from(130));
    }
}
