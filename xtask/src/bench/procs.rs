//! Processes the benchmark starts, and what it reads about them from /proc.
//!
//! Every long-running process is a [`Proc`]: stopped by its own PID (and the
//! PIDs of the children it forked, such as NSD's server processes) when the
//! guard is dropped, also on error and on Ctrl-C. Children run in their own
//! process group, so a Ctrl-C at the terminal reaches only xtask, which then
//! unwinds and stops them in order (servers after generators, namespaces
//! last); `PR_SET_PDEATHSIG` stops them if xtask itself is killed.

use std::collections::HashMap;
use std::fs::{self, File};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::util;

/// Set by SIGINT/SIGTERM; every wait loop checks it and fails with
/// "interrupted", which unwinds through the guards.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_sig: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Turns SIGINT and SIGTERM into the [`INTERRUPTED`] flag.
pub fn install_interrupt_handler() -> Result<()> {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction is valid; the handler only stores to an
        // atomic, which is async-signal-safe.
        let rc = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as *const () as usize;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error()).context("installing the signal handler");
        }
    }
    Ok(())
}

pub fn check_interrupted() -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
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

/// A child process, stopped (with the processes it forked) when dropped.
/// Its stdout and stderr go to `<logs>/<label>.out` and `.err`.
pub struct Proc {
    child: Child,
    label: String,
    out: PathBuf,
    err: PathBuf,
    /// Descendants seen while the process ran, with their start times, so
    /// they can be stopped after the parent is gone without ever signalling
    /// a recycled PID.
    seen_descendants: Vec<(u32, u64)>,
    /// When `seen_descendants` was last refreshed: a full /proc scan, kept
    /// rare because waits poll on CPU 0, beside the generator.
    last_scan: Option<Instant>,
    done: Option<ExitStatus>,
}

impl Proc {
    /// Starts `cmd` on `cpu` (its affinity before exec; processes that re-pin
    /// themselves are corrected by [`AffinityKeeper`]).
    pub fn spawn(mut cmd: Command, label: &str, cpu: usize, logs: &Path) -> Result<Proc> {
        let out = logs.join(format!("{label}.out"));
        let err = logs.join(format!("{label}.err"));
        let create = |p: &Path| File::create(p).with_context(|| format!("creating {}", p.display()));
        cmd.stdin(Stdio::null()).stdout(create(&out)?).stderr(create(&err)?);
        let parent = std::process::id();
        let set = cpu_set(cpu);
        // SAFETY: runs between fork and exec; only async-signal-safe calls
        // (setpgid, prctl, getppid, sched_setaffinity) on local data.
        unsafe {
            cmd.pre_exec(move || {
                // Own process group: the terminal's Ctrl-C goes to xtask only,
                // which stops children in a known order.
                if libc::setpgid(0, 0) != 0
                    || libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0
                    || libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                // xtask died before prctl took effect: do not run orphaned.
                if libc::getppid() as u32 != parent {
                    return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
        let line = util::describe(&cmd);
        let child = cmd.spawn().with_context(|| format!("starting `{line}`"))?;
        Ok(Proc { child, label: label.to_owned(), out, err, seen_descendants: Vec::new(), last_scan: None, done: None })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stdout(&self) -> String {
        fs::read_to_string(&self.out).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.err).unwrap_or_default()
    }

    pub fn stdout_path(&self) -> &Path {
        &self.out
    }

    /// The last lines of stderr (or stdout if stderr is empty), for errors.
    pub fn output_tail(&self) -> String {
        let mut text = self.stderr();
        if text.trim().is_empty() {
            text = self.stdout();
        }
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(6)..].join("\n");
        format!("{} (log {})", tail.trim(), util::display_path(&self.err))
    }

    /// Exit status if the process has ended.
    pub fn try_status(&mut self) -> Result<Option<ExitStatus>> {
        if self.done.is_none() {
            if self.last_scan.is_none_or(|t| t.elapsed() > Duration::from_secs(2)) {
                self.remember_descendants();
            }
            self.done = self.child.try_wait().with_context(|| format!("checking {}", self.label))?;
        }
        Ok(self.done)
    }

    /// Errors (with the log tail) if the process has ended.
    pub fn ensure_running(&mut self) -> Result<()> {
        if let Some(status) = self.try_status()? {
            bail!("{} exited ({status}): {}", self.label, self.output_tail());
        }
        Ok(())
    }

    /// Waits until `needle` appears in the process's stderr or stdout;
    /// returns the time waited. Fails if the process exits or `timeout`
    /// passes.
    pub fn wait_for_output(&mut self, needle: &str, timeout: Duration) -> Result<Duration> {
        let start = Instant::now();
        loop {
            if self.stderr().contains(needle) || self.stdout().contains(needle) {
                return Ok(start.elapsed());
            }
            self.ensure_running()?;
            if start.elapsed() > timeout {
                bail!("{} did not print {needle:?} within {timeout:?}: {}", self.label, self.output_tail());
            }
            sleep(Duration::from_millis(5))?;
        }
    }

    /// Waits for the process to exit by itself; stops it and fails after
    /// `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.try_status()? {
                return Ok(status);
            }
            if start.elapsed() > timeout {
                self.stop()?;
                bail!("{} did not finish within {timeout:?}; stopped it", self.label);
            }
            sleep(Duration::from_millis(10))?;
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

    /// SIGTERM, up to [`STOP_GRACE`] to exit, then SIGKILL; then the same for
    /// any descendant that outlived it (NSD's server children do, briefly).
    pub fn stop(&mut self) -> Result<ExitStatus> {
        if let Some(status) = self.try_status()? {
            self.stop_descendants();
            return Ok(status);
        }
        let pid = self.pid() as libc::pid_t;
        // SAFETY: kill on our own child's PID, which stays reserved (a
        // zombie at worst) until we reap it.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_GRACE;
        self.remember_descendants();
        let status = loop {
            if let Some(status) = self.child.try_wait().context("waiting for a stopped process")? {
                break status;
            }
            if Instant::now() >= deadline {
                eprintln!("bench: {} ignored SIGTERM for {STOP_GRACE:?}; killing it", self.label);
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
        if let Err(err) = self.stop() {
            eprintln!("bench: warning: stopping {}: {err:#}", self.label);
        }
    }
}

/// Runs `cmd` to completion (bounded by `timeout`) and returns its stdout.
pub fn run_bounded(cmd: Command, label: &str, cpu: usize, logs: &Path, timeout: Duration) -> Result<String> {
    let mut proc = Proc::spawn(cmd, label, cpu, logs)?;
    proc.wait_success(timeout)?;
    Ok(proc.stdout())
}

/// Fields of /proc/PID/stat after the command name (which may contain
/// spaces and parentheses): index 0 is field 3 (state).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

fn field(fields: &[String], number: usize) -> Option<u64> {
    fields.get(number - 3)?.parse().ok()
}

/// The process's start time (field 22), which tells a live PID from a
/// recycled one.
fn start_time(pid: u32) -> Option<u64> {
    stat_fields(pid).and_then(|f| field(&f, 22))
}

fn all_pids() -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect()
}

/// Every process descended from `root` (not `root` itself).
pub fn descendants(root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for pid in all_pids() {
        if let Some(ppid) = stat_fields(pid).and_then(|f| field(&f, 4)) {
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

/// A `/proc/PID/status` value in KiB (e.g. `VmRSS`).
pub fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    kib_line(&text, key)
}

/// Proportional set size of a process in KiB: shared pages split between the
/// processes that map them, so forked servers (NSD) can be summed.
pub fn pss_kib(pid: u32) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    kib_line(&text, "Pss")
}

fn kib_line(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

fn cpu_set(cpu: usize) -> libc::cpu_set_t {
    // SAFETY: cpu_set_t is plain data; CPU_ZERO/CPU_SET only write into it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cpu, &mut set);
        set
    }
}

/// Pins one task (thread or process) to `cpu` unless it is already pinned
/// there; what `taskset -p -c CPU TID` does.
fn pin_task(tid: u32, cpu: usize) {
    // SAFETY: sched_{get,set}affinity on a TID with properly sized sets; a
    // task that has just exited only makes the call fail, which is fine.
    unsafe {
        let mut current: libc::cpu_set_t = std::mem::zeroed();
        let size = std::mem::size_of::<libc::cpu_set_t>();
        let want = cpu_set(cpu);
        if libc::sched_getaffinity(tid as libc::pid_t, size, &mut current) == 0 && libc::CPU_EQUAL(&current, &want) {
            return;
        }
        libc::sched_setaffinity(tid as libc::pid_t, size, &want);
    }
}

/// Pins every thread of every process in `root`'s tree to `cpu`
/// (`taskset -a -p -c CPU PID`, also for forked children).
pub fn pin_tree(root: u32, cpu: usize) {
    for pid in tree(root) {
        let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            if let Some(tid) = task.file_name().to_str().and_then(|s| s.parse().ok()) {
                pin_task(tid, cpu);
            }
        }
    }
}

/// Pins the calling process (and the threads and children it creates later).
pub fn pin_self(cpu: usize) -> Result<()> {
    let set = cpu_set(cpu);
    // SAFETY: valid set, our own process.
    if unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) } != 0 {
        return Err(std::io::Error::last_os_error()).context("pinning xtask to CPU 0");
    }
    Ok(())
}

/// The threaded-NAPI kernel threads of interface `dev` (named
/// `napi/<dev>-<id>`; the kernel truncates names to 15 characters, so the
/// interface names are kept short enough for the prefix to survive).
pub fn napi_threads(dev: &str) -> Vec<u32> {
    let prefix = format!("napi/{dev}-");
    all_pids()
        .into_iter()
        .filter(|pid| fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.starts_with(&prefix)))
        .collect()
}

/// Gives a task the lowest real-time priority (SCHED_FIFO 1) unless it has
/// a real-time policy already.
fn make_fifo(tid: u32) {
    // SAFETY: sched_getscheduler/sched_setscheduler on a TID with a valid
    // param; failure (the task is gone) is harmless.
    unsafe {
        if libc::sched_getscheduler(tid as libc::pid_t) == libc::SCHED_FIFO {
            return;
        }
        let param = libc::sched_param { sched_priority: 1 };
        libc::sched_setscheduler(tid as libc::pid_t, libc::SCHED_FIFO, &param);
    }
}

/// Where one interface's NAPI threads go.
#[derive(Clone)]
pub struct NapiPlacement {
    pub dev: String,
    pub cpu: usize,
    /// SCHED_FIFO 1, so they run ahead of the ordinary tasks on their CPU.
    pub realtime: bool,
}

/// What [`AffinityKeeper`] holds where.
#[derive(Clone)]
pub struct Placement {
    /// Server process tree (all threads) → CPU 1.
    pub server: Option<u32>,
    pub napi: Vec<NapiPlacement>,
}

/// Re-applies a [`Placement`] every 200 ms in a background thread: knotd
/// pins worker i to CPU i after start, and NAPI threads can be recreated
/// when XDP programs come and go. Stops when dropped.
pub struct AffinityKeeper {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl AffinityKeeper {
    pub fn start(placement: Placement) -> AffinityKeeper {
        let apply = move || {
            if let Some(pid) = placement.server {
                pin_tree(pid, 1);
            }
            for napi in &placement.napi {
                for tid in napi_threads(&napi.dev) {
                    pin_task(tid, napi.cpu);
                    if napi.realtime {
                        make_fifo(tid);
                    }
                }
            }
        };
        // Apply once now, so the first measurement already runs pinned.
        apply();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                thread::sleep(Duration::from_millis(200));
                apply();
            }
        });
        AffinityKeeper { stop, handle: Some(handle) }
    }
}

impl Drop for AffinityKeeper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 { hz as f64 } else { 100.0 }
}

/// CPU 1's softirq time from /proc/stat, in clock ticks.
fn softirq_ticks(cpu: usize) -> Option<u64> {
    let text = fs::read_to_string("/proc/stat").ok()?;
    let prefix = format!("cpu{cpu} ");
    let line = text.lines().find(|l| l.starts_with(&prefix))?;
    // user nice system idle iowait irq softirq ...
    line.split_whitespace().nth(7)?.parse().ok()
}

/// Time a task (thread) has run, in ns, from /proc/PID/task/TID/schedstat:
/// exact, where /proc/stat's per-CPU split is sampled at the timer tick and
/// misses the short bursts a packet-driven NAPI thread runs in.
fn task_runtime_ns(path: &Path) -> Option<u64> {
    fs::read_to_string(path).ok()?.split_whitespace().next()?.parse().ok()
}

/// Run time of every thread of `pid`, in ns.
fn process_runtime_ns(pid: u32) -> u64 {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks.flatten().filter_map(|t| task_runtime_ns(&t.path().join("schedstat"))).sum()
}

/// One reading of the counters a server's CPU use is computed from.
pub struct CpuSample {
    at: Instant,
    server_ns: u64,
    napi_ns: u64,
    softirq_ticks: u64,
}

impl CpuSample {
    /// Server process tree (every thread), the server veth's NAPI thread
    /// (where XDP programs and the receive path run with threaded NAPI) and
    /// CPU 1's softirq time.
    pub fn take(server: u32, napi_dev: &str) -> CpuSample {
        CpuSample {
            at: Instant::now(),
            server_ns: tree(server).into_iter().map(process_runtime_ns).sum(),
            napi_ns: napi_threads(napi_dev).into_iter().map(process_runtime_ns).sum(),
            softirq_ticks: softirq_ticks(1).unwrap_or(0),
        }
    }
}

/// CPU use over an interval, each part in % of one CPU.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct CpuUse {
    /// process + napi + softirq: the server's total.
    pub total_pct: f64,
    pub process_pct: f64,
    pub napi_pct: f64,
    pub softirq_pct: f64,
    pub seconds: f64,
}

pub fn cpu_use(before: &CpuSample, after: &CpuSample) -> CpuUse {
    let secs = after.at.duration_since(before.at).as_secs_f64().max(1e-6);
    let ns_pct = |a: u64, b: u64| b.saturating_sub(a) as f64 / 1e9 / secs * 100.0;
    let process_pct = ns_pct(before.server_ns, after.server_ns);
    let napi_pct = ns_pct(before.napi_ns, after.napi_ns);
    let softirq_pct =
        after.softirq_ticks.saturating_sub(before.softirq_ticks) as f64 / clock_ticks_per_second() / secs * 100.0;
    CpuUse { total_pct: process_pct + napi_pct + softirq_pct, process_pct, napi_pct, softirq_pct, seconds: secs }
}

/// A temporary directory removed when dropped (server configs, run dirs).
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(name: &str) -> Result<TempDir> {
        let path = std::env::temp_dir().join(format!("dxbench-{}-{name}", std::process::id()));
        if path.exists() {
            fs::remove_dir_all(&path).with_context(|| format!("removing old {}", path.display()))?;
        }
        fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(TempDir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_kib_lines() {
        let text = "Name:\tx\nVmRSS:\t   1234 kB\nPss:  77 kB\n";
        assert_eq!(super::kib_line(text, "VmRSS"), Some(1234));
        assert_eq!(super::kib_line(text, "Pss"), Some(77));
        assert_eq!(super::kib_line(text, "VmHWM"), None);
    }

    #[test]
    fn own_process_has_run_time_and_start_time() {
        let me = std::process::id();
        assert!(super::process_runtime_ns(me) > 0);
        assert!(super::start_time(me).is_some());
    }
}
