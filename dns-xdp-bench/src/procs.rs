//! What the benchmark does with the processes it starts (netlab's
//! [`Proc`] guards) beyond supervising them: CPU placement of them and of
//! the NAPI threads, and their CPU time and memory from /proc.
//!
//! Children run in their own process group, so a Ctrl-C at the terminal
//! reaches only the benchmark, which then unwinds and stops them in order
//! (servers after generators, namespaces last); `PR_SET_PDEATHSIG` stops
//! them if the benchmark itself is killed.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
pub use netlab::process::{
    Proc, ProcOptions, all_pids, check_interrupted, cpu_set, install_interrupt_handler, sleep, tree,
};

/// Starts `cmd` on `cpu` (its affinity before exec; processes that re-pin
/// themselves are corrected by [`AffinityKeeper`]), logging to
/// `<logs>/<label>.out` and `.err`, in its own process group.
pub fn spawn(cmd: Command, label: &str, cpu: usize, logs: &Path) -> Result<Proc> {
    Proc::spawn(cmd, label, &options(cpu, logs))
}

/// Runs `cmd` to completion (bounded by `timeout`) and returns its stdout.
pub fn run_bounded(cmd: Command, label: &str, cpu: usize, logs: &Path, timeout: Duration) -> Result<String> {
    netlab::process::run_bounded(cmd, label, &options(cpu, logs), timeout)
}

fn options(cpu: usize, logs: &Path) -> ProcOptions {
    ProcOptions { log_dir: Some(logs.to_path_buf()), cpu: Some(cpu), detach: true }
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
    fn own_process_has_run_time() {
        assert!(super::process_runtime_ns(std::process::id()) > 0);
    }
}
