//! `dns-xdp stats --watch`: a live view of one instance, redrawn every
//! second until q or Ctrl-C: rates per second, the hit ratio, XDP answers
//! per CPU, pass reasons, the answer table, the health and the questions
//! most often passed up to the daemon (sampled by the daemon, see
//! [`crate::missed`]).
//!
//! At a terminal it draws on the alternate screen and reads keys
//! unbuffered; otherwise (a pipe, a log) it prints each frame after the
//! last, so `--count N` gives a bounded, readable run.

use std::{
    io::{IsTerminal as _, Write as _},
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use dns_xdp_common::{Action, Verdict};
use serde_json::Value;

use crate::{
    control::{self, Request},
    stats::{self, InstanceStats},
};

pub const INTERVAL: Duration = Duration::from_secs(1);
/// The health checks query the daemon; once every few frames is enough.
const HEALTH_EVERY: u64 = 5;
/// Missed questions shown.
const MISSED_SHOWN: usize = 10;

/// Runs the view; `count` frames, or until q/Ctrl-C when `None`.
pub fn run(control_socket: Option<&Path>, count: Option<u64>) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop)).context("handling Ctrl-C")?;
    }
    let status = control_socket.map(|path| control::request(path, &Request::Status {}));
    let program_id = match &status {
        Some(Ok(status)) => status["program_id"].as_u64().map(|id| id as u32),
        _ => None,
    };
    let program_id = match program_id {
        Some(id) => id,
        None => {
            let all = stats::read_stats()?;
            match all.as_slice() {
                [one] => one.program_id,
                [] => bail!("no dns-xdp XDP program is loaded"),
                _ => bail!(
                    "{} dns-xdp programs are loaded and the control socket does not say which is this daemon's: \
                     give its --control-socket",
                    all.len()
                ),
            }
        }
    };
    let control_socket = control_socket.filter(|_| matches!(status, Some(Ok(_))));
    let terminal = std::io::stdout().is_terminal() && std::io::stdin().is_terminal();
    let _screen = terminal.then(Screen::enter).transpose()?;

    let mut previous = stats::read_program(program_id)?;
    let mut taken = Instant::now();
    let mut health = status.and_then(Result::ok).map(|s| s["health"].clone());
    let mut frame = 0u64;
    while count.is_none_or(|n| frame < n) {
        if wait(INTERVAL, terminal, &stop)? {
            break;
        }
        let current = stats::read_program(program_id)
            .with_context(|| format!("program {program_id} is gone: the daemon stopped"))?;
        let elapsed = taken.elapsed();
        taken = Instant::now();
        frame += 1;
        let missed = control_socket.map(|path| control::request(path, &Request::Missed { limit: Some(MISSED_SHOWN) }));
        if let Some(path) = control_socket
            && frame.is_multiple_of(HEALTH_EVERY)
        {
            health = control::request(path, &Request::Status {}).ok().map(|s| s["health"].clone());
        }
        let text = render(&previous, &current, elapsed, health.as_ref(), missed.as_ref().map(|m| m.as_ref().ok()));
        let mut out = std::io::stdout().lock();
        if terminal {
            // Home, clear, frame (output processing is left on, so the
            // terminal still turns each LF into CR LF).
            write!(out, "\x1b[H\x1b[2J{text}")?;
        } else {
            writeln!(out, "{text}")?;
        }
        out.flush()?;
        previous = current;
    }
    Ok(())
}

/// Sleeps `interval`, watching for q and Ctrl-C; true to stop.
fn wait(interval: Duration, terminal: bool, stop: &AtomicBool) -> anyhow::Result<bool> {
    let until = Instant::now() + interval;
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(true);
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        let slice = left.min(Duration::from_millis(100));
        if !terminal {
            std::thread::sleep(slice);
            continue;
        }
        let mut poll = libc::pollfd { fd: libc::STDIN_FILENO, events: libc::POLLIN, revents: 0 };
        // SAFETY: one pollfd, valid for the call.
        let ready = unsafe { libc::poll(&mut poll, 1, slice.as_millis() as libc::c_int) };
        if ready > 0 {
            let mut byte = 0u8;
            // SAFETY: reads at most one byte into `byte`.
            let n = unsafe { libc::read(libc::STDIN_FILENO, (&raw mut byte).cast(), 1) };
            if n == 0 || matches!(byte, b'q' | b'Q') {
                return Ok(true);
            }
        }
    }
}

/// The terminal in key-at-a-time mode on the alternate screen; restored on
/// drop, also when the view ends with an error.
struct Screen {
    saved: libc::termios,
}

impl Screen {
    fn enter() -> anyhow::Result<Self> {
        // SAFETY: termios is plain data, filled by tcgetattr.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: stdin is a terminal (checked by the caller).
        if unsafe { libc::tcgetattr(libc::STDIN_FILENO, &mut saved) } != 0 {
            return Err(std::io::Error::last_os_error()).context("reading the terminal's settings");
        }
        let mut raw = saved;
        // Keys without Enter and without echo; ISIG stays, so Ctrl-C is
        // still SIGINT.
        raw.c_lflag &= !(libc::ICANON | libc::ECHO);
        raw.c_cc[libc::VMIN] = 0;
        raw.c_cc[libc::VTIME] = 0;
        // SAFETY: as above.
        if unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &raw) } != 0 {
            return Err(std::io::Error::last_os_error()).context("setting the terminal");
        }
        print!("\x1b[?1049h\x1b[?25l");
        Ok(Self { saved })
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        print!("\x1b[?25h\x1b[?1049l");
        let _ = std::io::stdout().flush();
        // SAFETY: restores the settings read in `enter`.
        unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &self.saved) };
    }
}

fn per_second(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-3)
}

/// One frame of the view, from two readings `elapsed` apart.
pub fn render(
    previous: &InstanceStats,
    current: &InstanceStats,
    elapsed: Duration,
    health: Option<&Value>,
    missed: Option<Option<&Value>>,
) -> String {
    use std::fmt::Write as _;
    let delta = |name: &str| {
        let now = current.xdp.get(name).copied().unwrap_or_default();
        now.saturating_sub(previous.xdp.get(name).copied().unwrap_or_default())
    };
    let daemon_delta = |name: &str| {
        let now = current.daemon.get(name).copied().unwrap_or_default();
        now.saturating_sub(previous.daemon.get(name).copied().unwrap_or_default())
    };
    let mut out = String::new();
    let health_text = match health {
        Some(h) if h["healthy"].as_bool() == Some(true) => "healthy".to_owned(),
        Some(h) => format!(
            "UNHEALTHY: {}",
            h["reasons"].as_array().into_iter().flatten().filter_map(Value::as_str).collect::<Vec<_>>().join("; ")
        ),
        None => "unknown (no control socket)".to_owned(),
    };
    let _ = writeln!(out, "dns-xdp program {}  health: {health_text}  (q or Ctrl-C quits)", current.program_id);

    let answered = delta(Verdict::TxAnswer.name());
    // Every DNS query the program looked at: all verdicts but "not DNS".
    let dns: u64 = Verdict::ALL.iter().filter(|v| **v != Verdict::PassNotDns).map(|v| delta(v.name())).sum::<u64>();
    let to_daemon = daemon_delta("udp_queries") + daemon_delta("tcp_queries");
    let ratio = if dns == 0 { "-".to_owned() } else { format!("{:.1}%", 100.0 * answered as f64 / dns as f64) };
    let _ = writeln!(
        out,
        "queries/s: {:.0} seen by XDP, {:.0} answered by XDP, {:.0} reached the daemon; hit ratio {ratio}",
        per_second(dns, elapsed),
        per_second(answered, elapsed),
        per_second(to_daemon, elapsed),
    );
    let per_cpu: Vec<String> = current
        .answers_per_cpu
        .iter()
        .enumerate()
        .map(|(cpu, now)| {
            let before = previous.answers_per_cpu.get(cpu).copied().unwrap_or_default();
            format!("cpu{cpu} {:.0}", per_second(now.saturating_sub(before), elapsed))
        })
        .collect();
    let _ = writeln!(out, "XDP answers/s by CPU: {}", per_cpu.join("  "));
    for (title, action) in [("passed to the daemon/s", Action::Pass), ("dropped/s", Action::Drop)] {
        let reasons: Vec<String> = Verdict::ALL
            .iter()
            .filter(|v| v.action() == action)
            .filter_map(|v| {
                let n = delta(v.name());
                (n > 0).then(|| format!("{} {:.0}", v.name(), per_second(n, elapsed)))
            })
            .collect();
        let _ = writeln!(out, "{title}: {}", if reasons.is_empty() { "none".to_owned() } else { reasons.join(", ") });
    }
    let _ = writeln!(
        out,
        "answer table: {} answers in {} slots; {:.0} inserts/s, {:.0} left out/s",
        current.daemon.get("map_entries").copied().unwrap_or_default(),
        current.answer_capacity,
        per_second(daemon_delta("map_inserts"), elapsed),
        per_second(daemon_delta("map_no_room"), elapsed),
    );
    match missed {
        None => {}
        Some(None) => {
            let _ = writeln!(out, "most missed: unavailable (the control socket did not answer)");
        }
        Some(Some(missed)) => {
            let list = missed["missed"].as_array().cloned().unwrap_or_default();
            let _ = writeln!(
                out,
                "most missed questions (1 query in {} sampled; counts halve every {} s):",
                missed["sample_every"],
                crate::missed::DECAY_INTERVAL.as_secs()
            );
            if list.is_empty() {
                let _ = writeln!(out, "  none");
            }
            for entry in list {
                let _ = writeln!(
                    out,
                    "  {:>8}  {} {}",
                    entry["queries"].as_u64().unwrap_or_default(),
                    entry["name"].as_str().unwrap_or_default(),
                    entry["type"].as_str().unwrap_or_default()
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn reading(tx: u64, miss: u64, udp: u64, cpus: Vec<u64>) -> InstanceStats {
        let mut xdp: BTreeMap<&'static str, u64> = Verdict::NAMES.iter().map(|n| (*n, 0)).collect();
        xdp.insert("tx_answer", tx);
        xdp.insert("pass_miss", miss);
        xdp.insert("pass_not_dns", 1000);
        InstanceStats {
            program_id: 7,
            xdp,
            daemon: [("udp_queries", udp), ("map_entries", 3)].into_iter().collect(),
            answers_per_cpu: cpus,
            answer_entry_bytes: 832,
            answer_capacity: 64,
            heartbeat_age_ms: Some(10),
        }
    }

    #[test]
    fn a_frame_shows_rates_ratio_cpus_reasons_and_missed_names() {
        let before = reading(100, 10, 10, vec![50, 50]);
        let after = reading(400, 110, 110, vec![150, 250]);
        let missed =
            serde_json::json!({"missed": [{"name": "nosuch.example.", "type": "A", "queries": 96}], "sample_every": 8});
        let health = serde_json::json!({"healthy": true});
        let frame = render(&before, &after, Duration::from_secs(2), Some(&health), Some(Some(&missed)));
        assert!(frame.contains("health: healthy"), "{frame}");
        assert!(
            frame.contains("200 seen by XDP, 150 answered by XDP, 50 reached the daemon; hit ratio 75.0%"),
            "{frame}"
        );
        assert!(frame.contains("cpu0 50  cpu1 100"), "{frame}");
        assert!(frame.contains("passed to the daemon/s: pass_miss 50\n"), "{frame}");
        assert!(frame.contains("dropped/s: none"), "{frame}");
        assert!(frame.contains("      96  nosuch.example. A"), "{frame}");
    }
}
