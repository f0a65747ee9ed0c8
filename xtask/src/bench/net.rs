//! The benchmark network: a server and a client namespace joined by one veth
//! pair, set up for fair numbers on a 2-core machine (threaded NAPI, so that
//! each side's receive path and XDP program run in its own kernel thread,
//! which can be pinned next to its process).
//!
//! All traffic stays inside these namespaces (198.18.0.0/15, 2001:db8::/32).

use std::fs::File;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::util::stdout_of;

pub const SRV_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const CLI_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
pub const SRV_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
pub const CLI_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
const SRV_MAC: &str = "02:00:00:00:b0:01";
const CLI_MAC: &str = "02:00:00:00:b0:02";

/// Namespaces are `dxbench-<pid>-<role>`, so ones left by a killed run can be
/// told from those of a live one.
const NETNS_PREFIX: &str = "dxbench-";

/// A network namespace, deleted when dropped.
pub struct NetNs {
    name: String,
}

impl NetNs {
    fn create(role: &str) -> Result<NetNs> {
        let name = format!("{NETNS_PREFIX}{}-{role}", std::process::id());
        stdout_of(Command::new("ip").args(["netns", "add", &name]))?;
        // From here on Drop deletes it, even if the next step fails.
        let ns = NetNs { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `program` run inside the namespace by `ip netns exec`, which execs in
    /// place (the PID is the program's) and mounts a /sys showing the
    /// namespace's own interfaces.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// Runs a short command in the namespace; fails unless it succeeds.
    pub fn run(&self, program: &str, args: &[&str]) -> Result<String> {
        stdout_of(self.command(program).args(args))
    }

    /// `ip -n <ns> ARGS`.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        stdout_of(Command::new("ip").args(["-n", &self.name]).args(args))
    }

    pub fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }

    /// Runs `f` on a thread that has joined this namespace. Sockets created
    /// there stay in the namespace when returned to the caller.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
        let path = self.path();
        let name = &self.name;
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
                    // SAFETY: setns on a namespace fd; affects this thread only.
                    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                        return Err(std::io::Error::last_os_error())
                            .with_context(|| format!("entering {}", path.display()));
                    }
                    f()
                })
                .join()
                .unwrap_or_else(|_| bail!("a thread in namespace {name} panicked"))
        })
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        match Command::new("ip").args(["netns", "del", &self.name]).output() {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!(
                "bench: warning: `ip netns del {}` failed: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(err) => eprintln!("bench: warning: cannot run `ip netns del {}`: {err}", self.name),
        }
    }
}

/// Deletes `dxbench-<pid>-*` namespaces of runs that are gone (killed before
/// their guards ran). A namespace that still has processes in it is left
/// alone with a warning: those processes are not ours to signal.
pub fn remove_stale_namespaces() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(pid) =
            name.strip_prefix(NETNS_PREFIX).and_then(|rest| rest.split('-').next()).and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let pids = Command::new("ip").args(["netns", "pids", name]).output();
        if pids.is_ok_and(|o| !o.stdout.is_empty()) {
            eprintln!("bench: warning: stale namespace {name} still has processes; leaving it");
            continue;
        }
        println!("bench: removing stale namespace {name}");
        let _ = Command::new("ip").args(["netns", "del", name]).output();
    }
}

/// Server namespace (`srv_if`: 198.18.0.1/24, 2001:db8::1/64) and client
/// namespace (`cli_if`: .2, ::2) joined by a veth pair. Dropping it detaches
/// every XDP program from both ends and deletes both namespaces (which
/// destroys the veth pair).
pub struct Topology {
    pub srv: NetNs,
    pub cli: NetNs,
    pub srv_if: String,
    pub cli_if: String,
}

impl Topology {
    pub fn create() -> Result<Topology> {
        let srv = NetNs::create("srv")?;
        let cli = NetNs::create("cli")?;
        // Short names: NAPI thread names (`napi/<dev>-<id>`) are cut at 15
        // characters and are how the threads are found for pinning.
        let tag = std::process::id() % 100_000;
        let topo = Topology { srv, cli, srv_if: format!("dxs{tag}"), cli_if: format!("dxc{tag}") };
        topo.srv.ip(&[
            "link",
            "add",
            &topo.srv_if,
            "address",
            SRV_MAC,
            "type",
            "veth",
            "peer",
            "name",
            &topo.cli_if,
            "address",
            CLI_MAC,
            "netns",
            topo.cli.name(),
        ])?;
        let ends = [
            (&topo.srv, &topo.srv_if, SRV_V4, SRV_V6, CLI_V4, CLI_V6, CLI_MAC),
            (&topo.cli, &topo.cli_if, CLI_V4, CLI_V6, SRV_V4, SRV_V6, SRV_MAC),
        ];
        for (ns, dev, v4, v6, peer_v4, peer_v6, peer_mac) in ends {
            // Final checksums in the bytes on the wire (XDP reads and
            // rewrites them); GRO on before link up gives the veth its NAPI
            // instance.
            ns.run("ethtool", &["-K", dev, "tx", "off", "gro", "on"])?;
            ns.ip(&["addr", "add", &format!("{v4}/24"), "dev", dev])?;
            ns.ip(&["-6", "addr", "add", &format!("{v6}/64"), "dev", dev, "nodad"])?;
            for peer in [peer_v4.to_string(), peer_v6.to_string()] {
                ns.ip(&["neigh", "replace", &peer, "lladdr", peer_mac, "dev", dev, "nud", "permanent"])?;
            }
            ns.ip(&["link", "set", dev, "up"])?;
            // Threaded NAPI: the receive path (and XDP) runs in a kernel
            // thread we can pin, not on the sending CPU. The sysfs file only
            // accepts the write once the NAPI exists, i.e. after link up.
            // /sys under `ip netns exec` shows this namespace's devices.
            ns.run("sh", &["-c", r#"echo 1 > "/sys/class/net/$1/threaded""#, "sh", dev])
                .with_context(|| format!("enabling threaded NAPI on {dev}"))?;
        }
        for dev in [&topo.srv_if, &topo.cli_if] {
            if crate::bench::procs::napi_threads(dev).is_empty() {
                bail!("no napi/{dev}-* kernel thread after enabling threaded NAPI");
            }
        }
        Ok(topo)
    }

    /// Removes XDP programs (native and generic) from both veth ends. knotd
    /// and kxdpgun leave theirs attached when they exit.
    pub fn detach_xdp(&self) -> Result<()> {
        for (ns, dev) in [(&self.srv, &self.srv_if), (&self.cli, &self.cli_if)] {
            for mode in ["xdp", "xdpgeneric"] {
                ns.run("ip", &["link", "set", "dev", dev, mode, "off"])
                    .with_context(|| format!("detaching {mode} from {dev}"))?;
            }
        }
        let left = self.xdp_attached()?;
        if !left.is_empty() {
            bail!("XDP programs still attached after detaching: {}", left.join(", "));
        }
        Ok(())
    }

    /// The veth ends that have an XDP program attached.
    pub fn xdp_attached(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for (ns, dev) in [(&self.srv, &self.srv_if), (&self.cli, &self.cli_if)] {
            let text = ns.ip(&["link", "show", "dev", dev])?;
            if text.contains(" xdp") || text.contains("prog/xdp") {
                out.push(dev.clone());
            }
        }
        Ok(out)
    }

    /// Detaches only the client end (after kxdpgun, which attaches its own).
    pub fn detach_client_xdp(&self) -> Result<()> {
        for mode in ["xdp", "xdpgeneric"] {
            self.cli.run("ip", &["link", "set", "dev", &self.cli_if, mode, "off"])?;
        }
        Ok(())
    }

    pub fn describe(&self) -> String {
        format!(
            "{} ({}: {SRV_V4}, {SRV_V6}) <-> {} ({}: {CLI_V4}, {CLI_V6})",
            self.srv.name(),
            self.srv_if,
            self.cli.name(),
            self.cli_if
        )
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        if let Err(err) = self.detach_xdp() {
            eprintln!("bench: warning: {err:#}");
        }
        // The namespaces (fields) are deleted after this, the veth with them.
    }
}
