//! Network namespaces and the veth topology the tests and the benchmark run
//! in. All traffic stays inside them (198.18.0.0/15, 2001:db8::/32).

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;

use anyhow::{Context, Result, bail};

use crate::cmd::{self, stdout_of};

/// Server side of a [`Topology`] (RFC 2544 benchmarking range).
pub const SRV_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// Client side of a [`Topology`].
pub const CLI_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// Server side of a [`Topology`] (documentation prefix).
pub const SRV_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
/// Client side of a [`Topology`].
pub const CLI_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
/// Server side of a [`TopologyConfig::vlan`] sub-interface.
pub const VLAN_SRV_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
/// Client side of a [`TopologyConfig::vlan`] sub-interface.
pub const VLAN_CLI_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);
/// Server side of a [`TopologyConfig::vlan`] sub-interface.
pub const VLAN_SRV_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);
/// Client side of a [`TopologyConfig::vlan`] sub-interface.
pub const VLAN_CLI_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2);
/// MAC of the server veth: fixed (locally administered) so tests can craft
/// and check Ethernet headers. Each namespace pair is its own segment, so
/// reusing it across topologies is harmless.
pub const SRV_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// MAC of the client veth.
pub const CLI_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

/// Per-process counter that makes namespace, interface and log names unique.
static NEXT_ID: AtomicU32 = AtomicU32::new(0);

pub(crate) fn next_id() -> u32 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

fn mac_string(mac: [u8; 6]) -> String {
    mac.map(|b| format!("{b:02x}")).join(":")
}

/// A network namespace, deleted when dropped.
///
/// Named `<prefix><pid>-<n>[-<role>]`, so parallel runs never collide and
/// the ones a killed run left behind can be told from a live run's.
/// Deleting a namespace destroys its interfaces, so XDP programs attached to
/// them go too; the kernel frees the namespace once no process or socket
/// uses it any more.
#[derive(Debug)]
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// Creates a fresh namespace with `lo` up. The first call for a prefix
    /// removes that prefix's stale namespaces (see [`remove_stale`]).
    pub fn create(prefix: &str, role: Option<&str>) -> Result<NetNs> {
        if !cmd::is_root() {
            bail!("needs root (network namespaces, veths, XDP): run it as root");
        }
        static CLEANED: Mutex<Vec<String>> = Mutex::new(Vec::new());
        if let Ok(mut cleaned) = CLEANED.lock()
            && !cleaned.iter().any(|p| p == prefix)
        {
            cleaned.push(prefix.to_owned());
            remove_stale(prefix);
        }
        let mut name = format!("{prefix}{}-{}", std::process::id(), next_id());
        if let Some(role) = role {
            name.push('-');
            name.push_str(role);
        }
        stdout_of(Command::new("ip").args(["netns", "add", &name]))?;
        // From here on Drop deletes it, even if the next step fails.
        let ns = NetNs { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name, as `ip netns` knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace's bind mount, for `setns(2)`.
    pub fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }

    /// A command that runs `program` inside the namespace via `ip netns
    /// exec`, which execs in place (the PID is the program's own).
    ///
    /// `ip netns exec` also gives the process its own mount namespace with a
    /// fresh `/sys` (so `/sys/class/net` lists this namespace's interfaces):
    /// the host's bpffs at `/sys/fs/bpf` is **not** visible there. For a
    /// process that must pin BPF objects where other processes can find
    /// them, use [`NetNs::command_keep_mounts`].
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// A command that runs `program` inside the namespace by `setns(2)` in
    /// the child before exec, changing nothing else: it sees the host's
    /// mounts, including bpffs (but `/sys/class/net` is the host's too;
    /// netlink, ioctls and `/proc/net` follow the namespace).
    pub fn command_keep_mounts(&self, program: impl AsRef<OsStr>) -> Result<Command> {
        let path = self.path();
        let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        let mut cmd = Command::new(program);
        // SAFETY: the closure runs between fork and exec and only calls
        // setns(2), which is async-signal-safe; `file` is owned by the
        // closure, so its fd stays open until then (and is O_CLOEXEC).
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) == 0 {
                    Ok(())
                } else {
                    Err(io::Error::last_os_error())
                }
            });
        }
        Ok(cmd)
    }

    /// Runs `program args` inside the namespace to completion and returns its
    /// output, whatever its exit status; errors only if it cannot start.
    pub fn output(&self, program: &str, args: &[&str]) -> Result<Output> {
        cmd::output(self.command(program).args(args))
    }

    /// Runs `program args` inside the namespace; errors (with its stderr)
    /// unless it succeeds; returns its stdout.
    pub fn run(&self, program: &str, args: &[&str]) -> Result<String> {
        stdout_of(self.command(program).args(args))
    }

    /// `ip -n <ns> ARGS`; errors unless it succeeds.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        stdout_of(Command::new("ip").args(["-n", &self.name]).args(args))
    }

    /// Runs `f` on a thread that has joined this namespace and returns its
    /// result (a panic in `f` is re-raised here). Sockets created in `f`
    /// stay in the namespace; interface names resolve in it, so an XDP
    /// program can be attached to a veth there.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T> {
        let path = self.path();
        thread::scope(|scope| {
            let worker = scope.spawn(move || {
                let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
                // SAFETY: setns on a namespace fd; affects this thread only.
                if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(io::Error::last_os_error()).with_context(|| format!("entering {}", path.display()));
                }
                drop(file);
                Ok(f())
            });
            match worker.join() {
                Ok(value) => value,
                Err(payload) => std::panic::resume_unwind(payload),
            }
        })
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        // No panic here: this may run while a failing test unwinds.
        match Command::new("ip").args(["netns", "del", &self.name]).output() {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!(
                "warning: `ip netns del {}` failed: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(err) => eprintln!("warning: cannot run `ip netns del {}`: {err}", self.name),
        }
    }
}

/// Names of the namespaces starting with `prefix` that exist now (any
/// process's), for leak checks.
pub fn namespaces(prefix: &str) -> Result<Vec<String>> {
    Ok(stdout_of(Command::new("ip").args(["netns", "list"]))?
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| name.starts_with(prefix))
        .map(str::to_owned)
        .collect())
}

/// Deletes `<prefix><pid>-*` namespaces whose process is gone (killed before
/// its guards ran). Namespaces of live processes, such as a concurrent run,
/// are left alone, and so is one that still has processes in it: those are
/// not ours to signal.
pub fn remove_stale(prefix: &str) {
    let Ok(names) = namespaces(prefix) else {
        return;
    };
    for name in names {
        let pid = name[prefix.len()..].split('-').next().and_then(|p| p.parse::<u32>().ok());
        let Some(pid) = pid else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let pids = Command::new("ip").args(["netns", "pids", &name]).output();
        if pids.is_ok_and(|o| !o.stdout.is_empty()) {
            eprintln!("warning: stale namespace {name} still has processes; leaving it");
            continue;
        }
        // Best effort: another process may be removing it too.
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
    }
}

/// A VLAN sub-interface pair of a topology built with [`TopologyConfig::vlan`].
#[derive(Debug, Clone)]
pub struct Vlan {
    /// 802.1Q VLAN ID.
    pub id: u16,
    /// Server-side sub-interface (`<srv_if>.<id>`), holding [`VLAN_SRV_V4`]
    /// and [`VLAN_SRV_V6`].
    pub srv_if: String,
    /// Client-side sub-interface, holding [`VLAN_CLI_V4`] and [`VLAN_CLI_V6`].
    pub cli_if: String,
}

/// How to build a [`Topology`].
#[derive(Debug, Clone)]
pub struct TopologyConfig {
    /// Namespace name prefix (`dnsxdp-` for the tests, `dxbench-` for the
    /// benchmark), so each can find its own leftovers.
    pub prefix: &'static str,
    /// Veth names (server, client); `vs<n>`/`vc<n>` if not given. The pair is
    /// created inside the namespaces, so names never clash with the host's,
    /// but kernel thread names (`napi/<dev>-<id>`) are global.
    pub if_names: Option<(String, String)>,
    /// An 802.1Q sub-interface with this ID on both veths, carrying
    /// 198.18.1.0/24 and 2001:db8:1::/64; VLAN offload is turned off so the
    /// tag travels inside the frame, where XDP sees it.
    pub vlan: Option<u16>,
    /// GRO and threaded NAPI on both ends: each side's receive path (and
    /// XDP) runs in its own kernel thread, which can be pinned.
    pub threaded_napi: bool,
}

impl TopologyConfig {
    /// The plain topology under `prefix`.
    pub fn new(prefix: &'static str) -> TopologyConfig {
        TopologyConfig { prefix, if_names: None, vlan: None, threaded_napi: false }
    }
}

/// Two namespaces, `srv` and `cli`, joined by a veth pair.
///
/// - srv veth: [`SRV_V4`]/24, [`SRV_V6`]/64, MAC [`SRV_MAC`];
///   cli veth: [`CLI_V4`]/24, [`CLI_V6`]/64, MAC [`CLI_MAC`].
/// - IPv6 addresses are `nodad`, so they are usable at once.
/// - Static neighbour entries both ways: no ARP/NDP before the first query.
/// - Transmit checksum offload is off on both ends (`ethtool -K tx off`), so
///   the bytes on the wire, which an XDP program reads and rewrites, carry
///   final checksums.
///
/// To receive XDP_TX replies on the client, the client veth needs an XDP
/// program of its own (a pass-through one will do). Dropping the topology
/// detaches every XDP program from both ends, then deletes both namespaces
/// (which destroys the veth pair).
#[derive(Debug)]
pub struct Topology {
    srv: NetNs,
    cli: NetNs,
    srv_if: String,
    cli_if: String,
    vlan: Option<Vlan>,
}

impl Topology {
    pub fn create(config: &TopologyConfig) -> Result<Topology> {
        if let Some(id) = config.vlan {
            if !(1..=4094).contains(&id) {
                bail!("VLAN id {id} out of range 1..=4094");
            }
            if !vlan_supported(config.prefix) {
                bail!(
                    "this kernel cannot create VLAN interfaces (CONFIG_VLAN_8021Q is off); \
                     check vlan_supported() first, or send tagged frames with a packet socket"
                );
            }
        }
        // Guards first: if any step below fails, dropping them deletes both
        // namespaces (and the veth with them).
        let srv = NetNs::create(config.prefix, Some("srv"))?;
        let cli = NetNs::create(config.prefix, Some("cli"))?;
        let (srv_if, cli_if) = config.if_names.clone().unwrap_or_else(|| {
            let n = next_id();
            (format!("vs{n}"), format!("vc{n}"))
        });
        let mut topo = Topology { srv, cli, srv_if, cli_if, vlan: None };
        let (srv, cli, srv_if, cli_if) = (&topo.srv, &topo.cli, &topo.srv_if, &topo.cli_if);
        let (srv_mac, cli_mac) = (mac_string(SRV_MAC), mac_string(CLI_MAC));
        srv.ip(&[
            "link",
            "add",
            srv_if,
            "address",
            &srv_mac,
            "type",
            "veth",
            "peer",
            "name",
            cli_if,
            "address",
            &cli_mac,
            "netns",
            cli.name(),
        ])?;
        let ends = [
            (srv, srv_if, SRV_V4, SRV_V6, CLI_V4, CLI_V6, CLI_MAC),
            (cli, cli_if, CLI_V4, CLI_V6, SRV_V4, SRV_V6, SRV_MAC),
        ];
        for (ns, dev, v4, v6, peer_v4, peer_v6, peer_mac) in ends {
            let mut features = vec!["-K", dev.as_str(), "tx", "off"];
            if config.vlan.is_some() {
                features.extend(["txvlan", "off", "rxvlan", "off"]);
            }
            if config.threaded_napi {
                // GRO on before link up gives the veth its NAPI instance.
                features.extend(["gro", "on"]);
            }
            ns.run("ethtool", &features)?;
            configure_addresses(ns, dev, (v4, v6), (peer_v4, peer_v6, peer_mac))?;
            ns.ip(&["link", "set", dev, "up"])?;
            if config.threaded_napi {
                // The sysfs file only accepts the write once the NAPI exists,
                // i.e. after link up; /sys under `ip netns exec` shows this
                // namespace's devices.
                ns.run("sh", &["-c", r#"echo 1 > "/sys/class/net/$1/threaded""#, "sh", dev])
                    .with_context(|| format!("enabling threaded NAPI on {dev}"))?;
            }
        }
        if let Some(id) = config.vlan {
            let vlan = Vlan { id, srv_if: format!("{srv_if}.{id}"), cli_if: format!("{cli_if}.{id}") };
            let ends = [
                (srv, srv_if, &vlan.srv_if, VLAN_SRV_V4, VLAN_SRV_V6, VLAN_CLI_V4, VLAN_CLI_V6, CLI_MAC),
                (cli, cli_if, &vlan.cli_if, VLAN_CLI_V4, VLAN_CLI_V6, VLAN_SRV_V4, VLAN_SRV_V6, SRV_MAC),
            ];
            for (ns, parent, dev, v4, v6, peer_v4, peer_v6, peer_mac) in ends {
                let id = id.to_string();
                ns.ip(&["link", "add", "link", parent, "name", dev, "type", "vlan", "id", &id])?;
                ns.run("ethtool", &["-K", dev, "tx", "off"])?;
                // A VLAN device shares its parent's MAC, so the peer's MAC is
                // the same as on the untagged link.
                configure_addresses(ns, dev, (v4, v6), (peer_v4, peer_v6, peer_mac))?;
                ns.ip(&["link", "set", dev, "up"])?;
            }
            topo.vlan = Some(vlan);
        }
        Ok(topo)
    }

    /// The server namespace.
    pub fn srv(&self) -> &NetNs {
        &self.srv
    }

    /// The client namespace.
    pub fn cli(&self) -> &NetNs {
        &self.cli
    }

    /// The server veth (where the XDP program under test attaches).
    pub fn srv_if(&self) -> &str {
        &self.srv_if
    }

    /// The client veth.
    pub fn cli_if(&self) -> &str {
        &self.cli_if
    }

    /// [`SRV_V4`].
    pub fn srv_v4(&self) -> Ipv4Addr {
        SRV_V4
    }

    /// [`CLI_V4`].
    pub fn cli_v4(&self) -> Ipv4Addr {
        CLI_V4
    }

    /// [`SRV_V6`].
    pub fn srv_v6(&self) -> Ipv6Addr {
        SRV_V6
    }

    /// [`CLI_V6`].
    pub fn cli_v6(&self) -> Ipv6Addr {
        CLI_V6
    }

    /// [`SRV_MAC`].
    pub fn srv_mac(&self) -> [u8; 6] {
        SRV_MAC
    }

    /// [`CLI_MAC`].
    pub fn cli_mac(&self) -> [u8; 6] {
        CLI_MAC
    }

    /// The VLAN sub-interfaces, if configured.
    pub fn vlan(&self) -> Option<&Vlan> {
        self.vlan.as_ref()
    }

    /// Removes XDP programs (native and generic) from both veth ends, and
    /// checks none is left. knotd and kxdpgun leave theirs attached when
    /// they exit.
    pub fn detach_xdp(&self) -> Result<()> {
        self.detach_client_xdp()?;
        for mode in ["xdp", "xdpgeneric"] {
            self.srv
                .ip(&["link", "set", "dev", &self.srv_if, mode, "off"])
                .with_context(|| format!("detaching {mode} from {}", self.srv_if))?;
        }
        let left = self.xdp_attached()?;
        if !left.is_empty() {
            bail!("XDP programs still attached after detaching: {}", left.join(", "));
        }
        Ok(())
    }

    /// Detaches only the client end's XDP programs.
    pub fn detach_client_xdp(&self) -> Result<()> {
        for mode in ["xdp", "xdpgeneric"] {
            self.cli
                .ip(&["link", "set", "dev", &self.cli_if, mode, "off"])
                .with_context(|| format!("detaching {mode} from {}", self.cli_if))?;
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
            eprintln!("warning: {err:#}");
        }
        // The namespaces (fields) are deleted after this, the veth with them.
    }
}

/// Whether the kernel can create 802.1Q VLAN interfaces (some test kernels
/// are built without CONFIG_VLAN_8021Q). Probed once, in a scratch namespace.
pub fn vlan_supported(prefix: &str) -> bool {
    static SUPPORTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SUPPORTED.get_or_init(|| {
        let Ok(ns) = NetNs::create(prefix, Some("vlanprobe")) else {
            return false;
        };
        ns.ip(&["link", "add", "link", "lo", "name", "lo.1", "type", "vlan", "id", "1"]).is_ok()
    })
}

/// Adds `v4`/24 and `v6`/64 (nodad) to `dev` and static neighbour entries for
/// the peer.
fn configure_addresses(
    ns: &NetNs,
    dev: &str,
    (v4, v6): (Ipv4Addr, Ipv6Addr),
    (peer_v4, peer_v6, peer_mac): (Ipv4Addr, Ipv6Addr, [u8; 6]),
) -> Result<()> {
    let mac = mac_string(peer_mac);
    ns.ip(&["addr", "add", &format!("{v4}/24"), "dev", dev])?;
    ns.ip(&["-6", "addr", "add", &format!("{v6}/64"), "dev", dev, "nodad"])?;
    for peer in [peer_v4.to_string(), peer_v6.to_string()] {
        ns.ip(&["neigh", "replace", &peer, "lladdr", &mac, "dev", dev, "nud", "permanent"])?;
    }
    Ok(())
}
