//! Child processes the tests and the benchmark start, and the interrupt
//! flag their waits honour.
//!
//! Every long-running process is a [`Proc`]: stopped by its own PID (and the
//! PIDs of the children it forked, such as NSD's server processes) when the
//! guard is dropped, also on error, panic and Ctrl-C. Nothing is ever
//! signalled by name, and a PID is signalled only while it is known to be
//! the process we started (unreaped, or with the start time we saw).

use std::collections::HashMap;
use std::fs::{self, File};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::cmd::describe;

/// Set by SIGINT/SIGTERM once [`install_interrupt_handler`] ran; every wait
/// here checks it and fails with "interrupted", which unwinds through the
/// guards.
static INTERRUPTED: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// Turns SIGINT and SIGTERM into the interrupt flag instead of ending the
/// process, so the guards get to clean up.
pub fn install_interrupt_handler() -> Result<()> {
    let flag = INTERRUPTED.get_or_init(|| Arc::new(AtomicBool::new(false)));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(flag)).context("installing the signal handler")?;
    }
    Ok(())
}

/// Fails with "interrupted" once SIGINT or SIGTERM arrived.
pub fn check_interrupted() -> Result<()> {
    if INTERRUPTED.get().is_some_and(|f| f.load(Ordering::SeqCst)) {
        bail!("interrupted");
    }
    Ok(())
}

/// Sleeps in short slices so that Ctrl-C is noticed promptly.
pub fn sleep(duration: Duration) -> Result<()> {
    let end = Instant::now() + duration;
    loop {
        check_interrupted()?;
        let now = Instant::now();
        if now >= end {
            return Ok(());
        }
        thread::sleep((end - now).min(Duration::from_millis(20)));
    }
}

/// How long a stopped process gets between SIGTERM and SIGKILL. knotd takes
/// about two seconds to shut down cleanly.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Where a [`Proc`] runs and where its output goes.
#[derive(Clone, Debug, Default)]
pub struct ProcOptions {
    /// Keep stdout and stderr as `<dir>/<label>.out` and `.err`. Without it
    /// they go to temporary files, removed when the guard is dropped unless
    /// a panic is unwinding.
    pub log_dir: Option<PathBuf>,
    /// Pin the process to this CPU before exec.
    pub cpu: Option<usize>,
    /// Own process group, so a terminal's Ctrl-C reaches only us (which then
    /// stops children in a known order), and SIGTERM when we die.
    pub detach: bool,
}

/// A child process, stopped (with the processes it forked) when dropped.
///
/// Its stdout and stderr go to files, readable at any time. If the guard is
/// dropped while a panic unwinds (a failing test), the tail of both is
/// printed, which libtest shows with the failure.
#[derive(Debug)]
pub struct Proc {
    child: Child,
    label: String,
    out: PathBuf,
    err: PathBuf,
    keep_logs: bool,
    /// Descendants seen while the process ran, with their start times, so
    /// they can be stopped after the parent is gone without ever signalling
    /// a recycled PID.
    seen_descendants: Vec<(u32, u64)>,
    /// When `seen_descendants` was last refreshed: a full /proc scan, kept
    /// rare because waits may poll beside a load generator.
    last_scan: Option<Instant>,
    done: Option<ExitStatus>,
}

impl Proc {
    /// Starts `cmd` with stdin closed and output captured; `label` names it
    /// in messages and log file names.
    pub fn spawn(mut cmd: Command, label: &str, options: &ProcOptions) -> Result<Proc> {
        let safe: String = label.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
        let (out, err) = match &options.log_dir {
            Some(dir) => (dir.join(format!("{safe}.out")), dir.join(format!("{safe}.err"))),
            None => {
                let base = format!("netlab-{}-{}-{safe}", std::process::id(), crate::netns::next_id());
                let dir = std::env::temp_dir();
                (dir.join(format!("{base}.stdout")), dir.join(format!("{base}.stderr")))
            }
        };
        let create = |p: &Path| File::create(p).with_context(|| format!("creating {}", p.display()));
        cmd.stdin(Stdio::null()).stdout(create(&out)?).stderr(create(&err)?);
        if let Some(cpu) = options.cpu {
            let set = cpu_set(cpu);
            // SAFETY: runs between fork and exec; sched_setaffinity is
            // async-signal-safe and reads only the local set.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        if options.detach {
            let parent = std::process::id();
            // SAFETY: runs between fork and exec; only async-signal-safe
            // calls (setpgid, prctl, getppid).
            unsafe {
                cmd.pre_exec(move || {
                    if libc::setpgid(0, 0) != 0 || libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    // We died before prctl took effect: do not run orphaned.
                    if libc::getppid() as u32 != parent {
                        return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                    }
                    Ok(())
                });
            }
        }
        let line = describe(&cmd);
        let child = cmd.spawn().with_context(|| format!("starting `{line}`"))?;
        Ok(Proc {
            child,
            label: label.to_owned(),
            out,
            err,
            keep_logs: options.log_dir.is_some(),
            seen_descendants: Vec::new(),
            last_scan: None,
            done: None,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// Everything the process has written to stdout so far.
    pub fn stdout(&self) -> String {
        fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// Everything the process has written to stderr so far.
    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// Paths of the stdout and stderr capture files.
    pub fn log_paths(&self) -> (&Path, &Path) {
        (&self.out, &self.err)
    }

    /// The last lines of stderr (or stdout if stderr is empty), for errors.
    pub fn output_tail(&self) -> String {
        let mut text = self.stderr();
        if text.trim().is_empty() {
            text = self.stdout();
        }
        format!("{} (log {})", tail(&text, 6).trim(), crate::display_path(&self.err))
    }

    /// The exit status if the process has ended (reaping it), else `None`.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        if self.done.is_none() {
            if self.last_scan.is_none_or(|t| t.elapsed() > Duration::from_secs(2)) {
                self.remember_descendants();
            }
            self.done = self.child.try_wait().with_context(|| format!("checking on {}", self.label))?;
        }
        Ok(self.done)
    }

    /// Errors (with the log tail) if the process has ended.
    pub fn ensure_running(&mut self) -> Result<()> {
        if let Some(status) = self.try_wait()? {
            bail!("{} exited ({status}): {}", self.label, self.output_tail());
        }
        Ok(())
    }

    /// Waits until `needle` appears in the process's stderr or stdout;
    /// returns the time waited. Fails if the process exits without having
    /// printed it, or `timeout` passes.
    pub fn wait_for_output(&mut self, needle: &str, timeout: Duration) -> Result<Duration> {
        let start = Instant::now();
        loop {
            // The exit status before the output: text written just before
            // exiting is then still seen.
            let exited = self.try_wait()?;
            if self.stderr().contains(needle) || self.stdout().contains(needle) {
                return Ok(start.elapsed());
            }
            if let Some(status) = exited {
                bail!("{} exited ({status}) without printing {needle:?}: {}", self.label, self.output_tail());
            }
            if start.elapsed() > timeout {
                bail!("{} did not print {needle:?} within {timeout:?}: {}", self.label, self.output_tail());
            }
            sleep(Duration::from_millis(5))?;
        }
    }

    /// Waits up to `timeout` for the process to exit by itself.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitStatus>> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(Some(status));
            }
            if start.elapsed() > timeout {
                return Ok(None);
            }
            sleep(Duration::from_millis(10))?;
        }
    }

    /// Waits for the process to exit by itself; stops it and fails after
    /// `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> Result<ExitStatus> {
        match self.wait_timeout(timeout)? {
            Some(status) => Ok(status),
            None => {
                self.stop()?;
                bail!("{} did not finish within {timeout:?}; stopped it", self.label);
            }
        }
    }

    /// Like [`Proc::wait`], and fails unless the exit status is success.
    pub fn wait_success(&mut self, timeout: Duration) -> Result<()> {
        let status = self.wait(timeout)?;
        if !status.success() {
            bail!("{} failed ({status}): {}", self.label, self.output_tail());
        }
        Ok(())
    }

    /// Sends `signal` (e.g. `libc::SIGHUP`) to the process, unless it has
    /// been reaped already (a reaped PID may belong to another process).
    pub fn signal(&mut self, signal: libc::c_int) -> Result<()> {
        if self.try_wait()?.is_none() {
            // SAFETY: kill on our own unreaped child's PID.
            unsafe { libc::kill(self.pid() as libc::pid_t, signal) };
        }
        Ok(())
    }

    fn remember_descendants(&mut self) {
        self.last_scan = Some(Instant::now());
        for pid in descendants(self.pid()) {
            if let Some(start) = start_time(pid)
                && !self.seen_descendants.contains(&(pid, start))
            {
                self.seen_descendants.push((pid, start));
            }
        }
    }

    /// SIGTERM, up to 5 s to exit, then SIGKILL; then the same for any
    /// descendant that outlived it (NSD's server children do, briefly).
    /// Returns the exit status, e.g. to assert on a clean shutdown.
    pub fn stop(&mut self) -> Result<ExitStatus> {
        if let Some(status) = self.try_wait()? {
            self.stop_descendants();
            return Ok(status);
        }
        self.remember_descendants();
        // SAFETY: kill on our own child's PID, which stays reserved (a
        // zombie at worst) until we reap it.
        unsafe { libc::kill(self.pid() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_GRACE;
        let status = loop {
            if let Some(status) = self.child.try_wait().context("waiting for a stopped process")? {
                break status;
            }
            if Instant::now() >= deadline {
                eprintln!("{} (pid {}) ignored SIGTERM for {STOP_GRACE:?}; killing it", self.label, self.pid());
                // Child::kill sends SIGKILL to this PID only, and only if unreaped.
                let _ = self.child.kill();
                break self.child.wait().context("waiting for a killed process")?;
            }
            thread::sleep(Duration::from_millis(10));
        };
        self.done = Some(status);
        self.stop_descendants();
        Ok(status)
    }

    fn stop_descendants(&mut self) {
        let alive = |&(pid, start): &(u32, u64)| start_time(pid) == Some(start);
        let mut left: Vec<(u32, u64)> = self.seen_descendants.iter().copied().filter(alive).collect();
        // A moment for the parent's own orderly shutdown of its children
        // (NSD's take up to two seconds more), then signal them directly.
        let deadline = Instant::now() + Duration::from_millis(300);
        while !left.is_empty() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
            left.retain(alive);
        }
        for signal in [libc::SIGTERM, libc::SIGKILL] {
            for &(pid, _) in &left {
                // SAFETY: the PID's start time matched just now, so it is
                // the process our child forked, not a recycled PID.
                unsafe { libc::kill(pid as libc::pid_t, signal) };
            }
            let deadline = Instant::now() + STOP_GRACE;
            while !left.is_empty() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(10));
                left.retain(alive);
            }
            if left.is_empty() {
                break;
            }
        }
        self.seen_descendants.clear();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Drop can run during unwinding: report problems, never panic.
        let status = self.stop();
        if let Err(err) = &status {
            eprintln!("warning: stopping {}: {err:#}", self.label);
        }
        if thread::panicking() {
            let status = status.map_or_else(|_| "unknown".to_string(), |s| s.to_string());
            eprintln!("---- {} (pid {}) exit status: {status}", self.label, self.pid());
            for (stream, path) in [("stdout", &self.out), ("stderr", &self.err)] {
                eprintln!("---- {} {stream} ({}):", self.label, path.display());
                eprintln!("{}", tail(&fs::read_to_string(path).unwrap_or_default(), 200));
            }
        } else if !self.keep_logs {
            let _ = fs::remove_file(&self.out);
            let _ = fs::remove_file(&self.err);
        }
    }
}

/// Runs `cmd` to completion (bounded by `timeout`) and returns its stdout.
pub fn run_bounded(cmd: Command, label: &str, options: &ProcOptions, timeout: Duration) -> Result<String> {
    let mut proc = Proc::spawn(cmd, label, options)?;
    proc.wait_success(timeout)?;
    Ok(proc.stdout())
}

/// The last `lines` lines of `text`, so a chatty process cannot bury the
/// failure message.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let skip = all.len().saturating_sub(lines);
    let mut out = String::new();
    if skip > 0 && lines > 10 {
        out.push_str(&format!("[... {skip} lines omitted]\n"));
    }
    out.push_str(&all[skip..].join("\n"));
    out
}

/// A CPU set holding only `cpu`.
pub fn cpu_set(cpu: usize) -> libc::cpu_set_t {
    // SAFETY: cpu_set_t is plain data; CPU_ZERO/CPU_SET only write into it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cpu, &mut set);
        set
    }
}

/// Fields of /proc/PID/stat after the command name (which may contain
/// spaces and parentheses): index 0 is field 3 (state).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

fn stat_field(fields: &[String], number: usize) -> Option<u64> {
    fields.get(number - 3)?.parse().ok()
}

/// The process's start time (field 22), which tells a live PID from a
/// recycled one.
pub fn start_time(pid: u32) -> Option<u64> {
    stat_fields(pid).and_then(|f| stat_field(&f, 22))
}

/// Every PID in /proc.
pub fn all_pids() -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect()
}

/// Every process descended from `root` (not `root` itself).
pub fn descendants(root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for pid in all_pids() {
        if let Some(ppid) = stat_fields(pid).and_then(|f| stat_field(&f, 4)) {
            children.entry(ppid as u32).or_default().push(pid);
        }
    }
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(pid) = stack.pop() {
        for &child in children.get(&pid).map(Vec::as_slice).unwrap_or(&[]) {
            out.push(child);
            stack.push(child);
        }
    }
    out
}

/// `root` and its descendants.
pub fn tree(root: u32) -> Vec<u32> {
    let mut pids = vec![root];
    pids.extend(descendants(root));
    pids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_output_and_stops_by_pid() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo ready; echo oops >&2; exec sleep 30"]);
        let mut proc = Proc::spawn(cmd, "sh", &ProcOptions::default()).expect("spawn");
        proc.wait_for_output("ready", Duration::from_secs(5)).expect("stdout");
        proc.wait_for_output("oops", Duration::from_secs(5)).expect("stderr");
        assert!(proc.try_wait().expect("try_wait").is_none(), "sleep is still running");
        let (out, _) = proc.log_paths();
        let out = out.to_path_buf();
        let status = proc.stop().expect("stop");
        assert!(!status.success(), "stopped by SIGTERM: {status}");
        drop(proc);
        assert!(!out.exists(), "temporary logs are removed");
    }

    #[test]
    fn own_process_has_a_start_time() {
        assert!(start_time(std::process::id()).is_some());
    }
}
