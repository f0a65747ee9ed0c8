//! Harness for dns-xdp's privileged end-to-end tests.
//!
//! The tests themselves live in `tests/tests/*.rs` of this package. They are
//! plain `#[test]`s that need root (network namespaces, veths, XDP), so
//! `cargo xtask test` runs them apart from the host unit tests, one at a time:
//! `cargo test -p dns-xdp-tests -- --test-threads=1`, with `DNS_XDP_BIN`
//! naming the daemon binary (see [`daemon_bin`]).
//!
//! Everything here that creates state on the machine returns a guard whose
//! `Drop` removes it, also while a failing test unwinds: [`NetNs`] deletes its
//! namespace (and with it the veths and any XDP program on them), and
//! [`ChildGuard`] stops its process and prints the process's output when the
//! test is failing. Declare child processes *after* the namespace they run in,
//! so they are dropped (stopped) first.
//!
//! Harness functions panic with a message on setup failures: a test that
//! cannot build its network has failed, and the message says where.

use std::ffi::CString;

pub mod daemon;
pub mod wire;

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Once, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// Prefix of every namespace the harness creates; the rest of the name is
/// `<pid>-<n>`, so stale ones from killed runs can be told apart.
pub const NETNS_PREFIX: &str = "dnsxdp-";

/// Server side of a [`Topology`] (RFC 2544 benchmarking range).
pub const SRV_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// Client side of a [`Topology`].
pub const CLI_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// Server side of a [`Topology`] (documentation prefix).
pub const SRV_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
/// Client side of a [`Topology`].
pub const CLI_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
/// Server side of a [`Topology::with_vlan`] VLAN sub-interface.
pub const VLAN_SRV_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
/// Client side of a [`Topology::with_vlan`] VLAN sub-interface.
pub const VLAN_CLI_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);
/// Server side of a [`Topology::with_vlan`] VLAN sub-interface.
pub const VLAN_SRV_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);
/// Client side of a [`Topology::with_vlan`] VLAN sub-interface.
pub const VLAN_CLI_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2);
/// MAC of the server veth: fixed (locally administered) so tests can craft
/// and check Ethernet headers. Each namespace pair is its own segment, so
/// reusing it across topologies is harmless.
pub const SRV_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// MAC of the client veth.
pub const CLI_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

/// Per-process counter that makes namespace, interface and log names unique.
static NEXT_ID: AtomicU32 = AtomicU32::new(0);

fn next_id() -> u32 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// Panics unless we are root: everything in this crate needs CAP_NET_ADMIN
/// and CAP_SYS_ADMIN (and CAP_BPF for XDP), and a clear message beats a
/// confusing `ip` error.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert!(euid == 0, "privileged test: needs root (network namespaces, veths, XDP); run `cargo xtask test` as root");
}

/// The workspace root, for zone files and test data that tests refer to by
/// path.
pub fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().expect("the tests crate lives inside the workspace").to_path_buf()
}

/// The `dns-xdp` binary to test. `cargo xtask test` builds it and sets
/// `DNS_XDP_BIN`; a plain `cargo test -p dns-xdp-tests` falls back to
/// `dns-xdp` beside this test binary's profile directory, which cargo does
/// not rebuild for this package: build it first (`cargo build -p dns-xdp`).
pub fn daemon_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("DNS_XDP_BIN") {
        return PathBuf::from(path);
    }
    // The test binary is <target>/<profile>/deps/<name>-<hash>.
    let exe = std::env::current_exe().expect("locating the test binary");
    let candidate = exe.parent().and_then(Path::parent).map(|profile_dir| profile_dir.join("dns-xdp"));
    match candidate {
        Some(path) if path.is_file() => path,
        _ => panic!(
            "no dns-xdp binary: set DNS_XDP_BIN, or run `cargo build -p dns-xdp` \
             (cargo xtask test does both)"
        ),
    }
}

/// Polls `condition` every 20 ms until it holds or `timeout` passes; returns
/// whether it held. For readiness checks (a daemon that has started
/// listening) instead of fixed sleeps.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Renders a command line for messages.
fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        s.push(' ');
        s.push_str(&arg.to_string_lossy());
    }
    s
}

/// Runs `cmd` to completion; panics if it cannot start.
fn output_of(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("cannot run `{}`: {e}", describe(cmd)))
}

/// Runs `cmd`, panics with its stderr unless it succeeds, returns stdout.
fn stdout_ok(cmd: &mut Command) -> String {
    let out = output_of(cmd);
    assert!(
        out.status.success(),
        "`{}` failed ({}): {}",
        describe(cmd),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command on the host (not in a namespace); panics with its stderr
/// unless it succeeds; returns its stdout.
pub fn host_exec_ok(program: &str, args: &[&str]) -> String {
    stdout_ok(Command::new(program).args(args))
}

fn mac_string(mac: [u8; 6]) -> String {
    mac.map(|b| format!("{b:02x}")).join(":")
}

/// Deletes `dnsxdp-<pid>-*` namespaces whose process is gone: a test binary
/// killed by SIGKILL (or a timeout) never ran its Drop guards. Namespaces of
/// live processes, such as a concurrent test run, are left alone.
fn remove_stale_namespaces() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // Lines look like `dnsxdp-123-4 (id: 0)`.
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(rest) = name.strip_prefix(NETNS_PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            // Best effort: another process may be removing it too.
            let _ = Command::new("ip").args(["netns", "del", name]).output();
        }
    }
}

/// A network namespace created for one test, deleted when dropped.
///
/// Named `dnsxdp-<pid>-<n>[-<role>]` so parallel test binaries never collide.
/// Deleting a namespace destroys its interfaces, so XDP programs attached to
/// them go too; the kernel frees the namespace itself once no process or
/// socket uses it any more.
#[derive(Debug)]
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// Creates a fresh namespace with `lo` up.
    pub fn new() -> NetNs {
        NetNs::create(None)
    }

    /// Like [`NetNs::new`], with `role` (e.g. `srv`) appended to the name so
    /// `ip netns list` reads well while debugging.
    pub fn with_role(role: &str) -> NetNs {
        NetNs::create(Some(role))
    }

    fn create(role: Option<&str>) -> NetNs {
        require_root();
        static CLEANUP: Once = Once::new();
        CLEANUP.call_once(remove_stale_namespaces);

        let mut name = format!("{NETNS_PREFIX}{}-{}", std::process::id(), next_id());
        if let Some(role) = role {
            name.push('-');
            name.push_str(role);
        }
        stdout_ok(Command::new("ip").args(["netns", "add", &name]));
        // From here on Drop removes the namespace, even if the next step fails.
        let ns = NetNs { name };
        ns.ip_ok(&["link", "set", "lo", "up"]);
        ns
    }

    /// The namespace's name, as `ip netns` knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace's bind mount, for `setns(2)`.
    pub fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }

    /// A command that runs `program` inside the namespace via
    /// `ip netns exec`. Add arguments, environment, stdio as usual.
    ///
    /// `ip netns exec` also gives the process its own mount namespace with a
    /// fresh `/sys` (so `/sys/class/net` lists this namespace's interfaces):
    /// the host's bpffs at `/sys/fs/bpf` is **not** visible there. For a
    /// process that must pin BPF objects where other processes can find
    /// them, use [`NetNs::command_keep_mounts`].
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }

    /// A command that runs `program` inside the namespace by `setns(2)` in
    /// the child before exec, changing nothing else: it sees the host's
    /// mounts, including bpffs at `/sys/fs/bpf` (but `/sys/class/net` is the
    /// host's too; netlink, ioctls and `/proc/net` follow the namespace).
    pub fn command_keep_mounts(&self, program: &str) -> Command {
        let file = File::open(self.path()).unwrap_or_else(|e| panic!("opening {}: {e}", self.path().display()));
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
        cmd
    }

    /// Runs `program args` inside the namespace (via `ip netns exec`) to
    /// completion and returns its output, whatever its exit status. Panics
    /// only if it cannot be started.
    pub fn exec(&self, program: &str, args: &[&str]) -> Output {
        output_of(self.command(program).args(args))
    }

    /// Like [`NetNs::exec`], but panics with the command's stderr unless it
    /// succeeds; returns its stdout.
    pub fn exec_ok(&self, program: &str, args: &[&str]) -> String {
        stdout_ok(self.command(program).args(args))
    }

    /// Starts `program args` inside the namespace (via `ip netns exec`, which
    /// execs in place, so the guard's PID is the program's own) with output
    /// captured to files. See [`ChildGuard`].
    pub fn spawn(&self, program: &str, args: &[&str]) -> ChildGuard {
        let mut cmd = self.command(program);
        cmd.args(args);
        ChildGuard::spawn(cmd, program)
    }

    /// Runs `ip -n <ns> args` and panics unless it succeeds.
    fn ip_ok(&self, args: &[&str]) -> String {
        stdout_ok(Command::new("ip").args(["-n", &self.name]).args(args))
    }
}

impl Default for NetNs {
    fn default() -> Self {
        NetNs::new()
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
            Err(e) => eprintln!("warning: cannot run `ip netns del {}`: {e}", self.name),
        }
    }
}

/// Runs `f` on a thread that has joined `ns`'s network namespace and returns
/// its result (a panic in `f` is re-raised here).
///
/// Sockets created inside `f` stay in the namespace after the thread ends,
/// which is how [`raw_query`] works; interface names and indexes resolve in
/// the namespace, so an XDP program can be attached to a veth there, e.g.
/// `in_netns(topo.cli(), || program.attach(topo.cli_if(), XdpMode::Driver))`
/// with aya 0.14.
pub fn in_netns<T: Send>(ns: &NetNs, f: impl FnOnce() -> T + Send) -> T {
    let path = ns.path();
    thread::scope(|scope| {
        let worker = scope.spawn(move || {
            let file = File::open(&path).unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
            // SAFETY: setns on a valid namespace fd; it changes only this
            // thread's network namespace.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert!(rc == 0, "setns into {}: {}", path.display(), io::Error::last_os_error());
            drop(file);
            f()
        });
        match worker.join() {
            Ok(value) => value,
            Err(payload) => std::panic::resume_unwind(payload),
        }
    })
}

/// A VLAN sub-interface pair of a [`Topology::with_vlan`].
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

/// Two namespaces, `srv` and `cli`, joined by a veth pair: the test network.
///
/// - srv veth: [`SRV_V4`]/24, [`SRV_V6`]/64, MAC [`SRV_MAC`];
///   cli veth: [`CLI_V4`]/24, [`CLI_V6`]/64, MAC [`CLI_MAC`].
/// - IPv6 addresses are `nodad`, so they are usable at once.
/// - Static neighbour entries both ways (IPv4 and IPv6): no ARP/NDP
///   exchanges before the first query.
/// - Transmit checksum offload is off on both ends (`ethtool -K tx off`), so
///   the bytes on the wire, which an XDP program reads and rewrites, carry
///   final checksums.
///
/// The veth names are `vs<n>`/`vc<n>`. The pair is created directly inside
/// the namespaces, so the names never clash with the host's interfaces.
///
/// To receive XDP_TX replies on the client, the client veth needs an XDP
/// program of its own (a pass-through one will do); attach it with
/// [`in_netns`].
#[derive(Debug)]
pub struct Topology {
    srv: NetNs,
    cli: NetNs,
    srv_if: String,
    cli_if: String,
    vlan: Option<Vlan>,
}

impl Topology {
    /// Builds the plain topology.
    pub fn new() -> Topology {
        Topology::build(None)
    }

    /// Builds the topology plus an 802.1Q sub-interface with VLAN `id` on
    /// both veths, carrying 198.18.1.0/24 and 2001:db8:1::/64 (see [`Vlan`]).
    /// An XDP program attaches to the parent veth and sees tagged frames:
    /// VLAN offload is turned off on the veths so the tag travels inside the
    /// frame rather than in skb metadata, where XDP cannot see it.
    ///
    /// Needs a kernel with 802.1Q support: check [`vlan_supported`] first.
    /// Where it is missing, tagged frames can still be sent and received on
    /// the plain topology's veths with a [`PacketSocket`].
    pub fn with_vlan(id: u16) -> Topology {
        assert!((1..=4094).contains(&id), "VLAN id {id} out of range 1..=4094");
        assert!(
            vlan_supported(),
            "this kernel cannot create VLAN interfaces (CONFIG_VLAN_8021Q is off); \
             check vlan_supported() first, or send tagged frames with PacketSocket"
        );
        Topology::build(Some(id))
    }

    fn build(vlan_id: Option<u16>) -> Topology {
        // Guards first: if any step below panics, unwinding deletes both
        // namespaces (and the veth with them).
        let srv = NetNs::with_role("srv");
        let cli = NetNs::with_role("cli");
        let n = next_id();
        let srv_if = format!("vs{n}");
        let cli_if = format!("vc{n}");

        srv.ip_ok(&[
            "link",
            "add",
            &srv_if,
            "address",
            &mac_string(SRV_MAC),
            "type",
            "veth",
            "peer",
            "name",
            &cli_if,
            "address",
            &mac_string(CLI_MAC),
            "netns",
            cli.name(),
        ]);

        let ends = [
            (&srv, &srv_if, SRV_V4, SRV_V6, CLI_V4, CLI_V6, CLI_MAC),
            (&cli, &cli_if, CLI_V4, CLI_V6, SRV_V4, SRV_V6, SRV_MAC),
        ];
        for (ns, dev, v4, v6, peer_v4, peer_v6, peer_mac) in ends {
            let mut features = vec!["-K", dev.as_str(), "tx", "off"];
            if vlan_id.is_some() {
                features.extend(["txvlan", "off", "rxvlan", "off"]);
            }
            ns.exec_ok("ethtool", &features);
            configure_addresses(ns, dev, v4, v6, peer_v4, peer_v6, peer_mac);
            ns.ip_ok(&["link", "set", dev, "up"]);
        }

        let vlan = vlan_id.map(|id| {
            let vlan = Vlan { id, srv_if: format!("{srv_if}.{id}"), cli_if: format!("{cli_if}.{id}") };
            let ends = [
                (&srv, &srv_if, &vlan.srv_if, VLAN_SRV_V4, VLAN_SRV_V6, VLAN_CLI_V4, VLAN_CLI_V6, CLI_MAC),
                (&cli, &cli_if, &vlan.cli_if, VLAN_CLI_V4, VLAN_CLI_V6, VLAN_SRV_V4, VLAN_SRV_V6, SRV_MAC),
            ];
            for (ns, parent, dev, v4, v6, peer_v4, peer_v6, peer_mac) in ends {
                let id = id.to_string();
                ns.ip_ok(&["link", "add", "link", parent, "name", dev, "type", "vlan", "id", &id]);
                ns.exec_ok("ethtool", &["-K", dev, "tx", "off"]);
                // A VLAN device shares its parent's MAC, so the peer's MAC is
                // the same as on the untagged link.
                configure_addresses(ns, dev, v4, v6, peer_v4, peer_v6, peer_mac);
                ns.ip_ok(&["link", "set", dev, "up"]);
            }
            vlan
        });

        Topology { srv, cli, srv_if, cli_if, vlan }
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

    /// The VLAN sub-interfaces, for a [`Topology::with_vlan`].
    pub fn vlan(&self) -> Option<&Vlan> {
        self.vlan.as_ref()
    }
}

impl Default for Topology {
    fn default() -> Self {
        Topology::new()
    }
}

/// Whether the kernel can create 802.1Q VLAN interfaces (some test kernels
/// are built without CONFIG_VLAN_8021Q). Probed once, in a scratch namespace.
pub fn vlan_supported() -> bool {
    static SUPPORTED: OnceLock<bool> = OnceLock::new();
    *SUPPORTED.get_or_init(|| {
        let ns = NetNs::with_role("vlanprobe");
        Command::new("ip")
            .args(["-n", ns.name(), "link", "add", "link", "lo", "name", "lo.1"])
            .args(["type", "vlan", "id", "1"])
            .output()
            .is_ok_and(|out| out.status.success())
    })
}

/// Adds `v4`/24 and `v6`/64 (nodad) to `dev` and static neighbour entries for
/// the peer.
fn configure_addresses(
    ns: &NetNs,
    dev: &str,
    v4: Ipv4Addr,
    v6: Ipv6Addr,
    peer_v4: Ipv4Addr,
    peer_v6: Ipv6Addr,
    peer_mac: [u8; 6],
) {
    let mac = mac_string(peer_mac);
    ns.ip_ok(&["addr", "add", &format!("{v4}/24"), "dev", dev]);
    ns.ip_ok(&["-6", "addr", "add", &format!("{v6}/64"), "dev", dev, "nodad"]);
    for peer in [peer_v4.to_string(), peer_v6.to_string()] {
        ns.ip_ok(&["neigh", "replace", &peer, "lladdr", &mac, "dev", dev, "nud", "permanent"]);
    }
}

/// How long [`ChildGuard`]'s Drop waits after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// A child process that is stopped when the guard is dropped.
///
/// Its stdout and stderr go to files in the temp directory, readable at any
/// time with [`ChildGuard::stdout`]/[`ChildGuard::stderr`]. If the guard is
/// dropped while the test is panicking, both are printed (libtest shows them
/// with the failure) and the files are kept; otherwise they are removed.
///
/// Stopping signals only this child's PID, never a process name: SIGTERM,
/// up to 3 s for it to exit, then SIGKILL.
#[derive(Debug)]
pub struct ChildGuard {
    child: Child,
    label: String,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
}

impl ChildGuard {
    /// Spawns `cmd` with stdin closed and stdout/stderr captured to files;
    /// `label` names the process in messages and file names. Panics if it
    /// cannot be started.
    pub fn spawn(mut cmd: Command, label: &str) -> ChildGuard {
        let safe_label: String =
            label.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
        let base = format!("{NETNS_PREFIX}{}-{}-{safe_label}", std::process::id(), next_id());
        let dir = std::env::temp_dir();
        let stdout_path = dir.join(format!("{base}.stdout"));
        let stderr_path = dir.join(format!("{base}.stderr"));
        let create = |path: &Path| File::create(path).unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
        cmd.stdin(Stdio::null()).stdout(create(&stdout_path)).stderr(create(&stderr_path));
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start `{}`: {e}", describe(&cmd)));
        ChildGuard { child, label: label.to_string(), stdout_path, stderr_path }
    }

    /// The child's PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the child has written to stdout so far.
    pub fn stdout(&self) -> String {
        fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }

    /// Everything the child has written to stderr so far.
    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Paths of the stdout and stderr capture files.
    pub fn log_paths(&self) -> (&Path, &Path) {
        (&self.stdout_path, &self.stderr_path)
    }

    /// Waits until `needle` appears in the child's stdout or stderr; false on
    /// timeout, or if the child exits without having printed it.
    pub fn wait_for_output(&mut self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            // Read the exit status before the output: text written just
            // before exiting is then still seen.
            let exited = self.try_wait().is_some();
            if self.stdout().contains(needle) || self.stderr().contains(needle) {
                return true;
            }
            if exited || Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The exit status if the child has exited (reaping it), else `None`.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap_or_else(|e| panic!("checking on {} (pid {}): {e}", self.label, self.pid()))
    }

    /// Waits up to `timeout` for the child to exit.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut status = None;
        wait_until(timeout, || {
            status = self.try_wait();
            status.is_some()
        });
        status
    }

    /// Sends `signal` (e.g. `libc::SIGINT`) to the child, if it has not been
    /// reaped yet (a reaped PID may already belong to another process).
    pub fn signal(&mut self, signal: libc::c_int) {
        if self.try_wait().is_none() {
            send_signal(self.child.id(), signal);
        }
    }

    /// Stops the child as Drop does (SIGTERM, 3 s, SIGKILL) and returns its
    /// exit status, e.g. to assert on a clean shutdown.
    pub fn stop(mut self) -> ExitStatus {
        self.terminate()
    }

    fn terminate(&mut self) -> ExitStatus {
        if let Some(status) = self.try_wait() {
            return status;
        }
        send_signal(self.child.id(), libc::SIGTERM);
        if let Some(status) = self.wait_timeout(STOP_GRACE) {
            return status;
        }
        eprintln!("{} (pid {}) ignored SIGTERM for {STOP_GRACE:?}; killing it", self.label, self.pid());
        // Child::kill sends SIGKILL to this PID only, and only if not reaped.
        let _ = self.child.kill();
        self.child.wait().unwrap_or_else(|e| panic!("waiting for {} (pid {}): {e}", self.label, self.pid()))
    }
}

fn send_signal(pid: u32, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(pid).expect("PID fits pid_t");
    // SAFETY: kill(2) on our own unreaped child's PID (callers check).
    unsafe { libc::kill(pid, signal) };
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        // Drop can run during unwinding: report problems, never panic.
        let status = match self.child.try_wait() {
            Ok(Some(status)) => Some(status),
            Ok(None) => {
                send_signal(self.child.id(), libc::SIGTERM);
                let deadline = Instant::now() + STOP_GRACE;
                loop {
                    match self.child.try_wait() {
                        Ok(Some(status)) => break Some(status),
                        Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                        _ => {
                            let _ = self.child.kill();
                            break self.child.wait().ok();
                        }
                    }
                }
            }
            Err(_) => None,
        };
        if thread::panicking() {
            let status = status.map_or_else(|| "unknown".to_string(), |s| s.to_string());
            eprintln!("---- {} (pid {}) exit status: {status}", self.label, self.pid());
            for (stream, path) in [("stdout", &self.stdout_path), ("stderr", &self.stderr_path)] {
                eprintln!("---- {} {stream} ({}):", self.label, path.display());
                eprintln!("{}", tail(&fs::read_to_string(path).unwrap_or_default(), 200));
            }
        } else {
            let _ = fs::remove_file(&self.stdout_path);
            let _ = fs::remove_file(&self.stderr_path);
        }
    }
}

/// The last `lines` lines of `text`, so a chatty process cannot bury the
/// failure message.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let skip = all.len().saturating_sub(lines);
    let mut out = String::new();
    if skip > 0 {
        out.push_str(&format!("[... {skip} lines omitted]\n"));
    }
    out.push_str(&all[skip..].join("\n"));
    out
}

/// Runs `kdig args` inside `ns` and returns its stdout (also when kdig exits
/// non-zero, e.g. on a timeout, so tests can assert on what it printed).
/// Panics only if kdig cannot be started. Tip: `+time=1 +retry=0` keeps a
/// failing query from stalling the test.
pub fn kdig(ns: &NetNs, args: &[&str]) -> String {
    String::from_utf8_lossy(&ns.exec("kdig", args).stdout).into_owned()
}

/// Runs `dig args` inside `ns` and returns its stdout, as [`kdig`] does.
pub fn dig(ns: &NetNs, args: &[&str]) -> String {
    String::from_utf8_lossy(&ns.exec("dig", args).stdout).into_owned()
}

/// `ping -c1 -W1 addr` from inside `ns`: whether a reply came back.
pub fn ping(ns: &NetNs, addr: IpAddr) -> bool {
    ns.exec("ping", &["-c1", "-W1", &addr.to_string()]).status.success()
}

/// A UDP socket bound to `bind` inside `ns`, for tests that send several
/// queries from one socket or check source ports. Use with
/// [`udp_exchange`].
pub fn udp_socket(ns: &NetNs, bind: SocketAddr) -> UdpSocket {
    in_netns(ns, move || UdpSocket::bind(bind)).unwrap_or_else(|e| panic!("binding UDP {bind} in {}: {e}", ns.name()))
}

/// Sends one DNS message over UDP from inside `ns` (ephemeral port on the
/// wildcard address) to `server` and returns the first datagram that comes
/// back from `server` within `timeout`, or `None`.
pub fn raw_query(ns: &NetNs, server: SocketAddr, query: &[u8], timeout: Duration) -> Option<Vec<u8>> {
    let bind = match server {
        SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
    };
    udp_exchange(&udp_socket(ns, bind), server, query, timeout)
}

/// Sends `query` from `socket` to `server` and returns the first datagram
/// from `server`'s address and port within `timeout`. Datagrams from anyone
/// else are skipped, as a resolver would. Works with host sockets too (e.g.
/// for a daemon on loopback).
pub fn udp_exchange(socket: &UdpSocket, server: SocketAddr, query: &[u8], timeout: Duration) -> Option<Vec<u8>> {
    socket.send_to(query, server).unwrap_or_else(|e| panic!("sending {} bytes to {server}: {e}", query.len()));
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; 65_535];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        socket.set_read_timeout(Some(left)).expect("setting UDP read timeout");
        match socket.recv_from(&mut buf) {
            Ok((len, from)) if from.ip() == server.ip() && from.port() == server.port() => {
                buf.truncate(len);
                return Some(buf);
            }
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return None;
            }
            // An ICMP port unreachable from an earlier send on this socket.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => return None,
            Err(e) => panic!("receiving from {server}: {e}"),
        }
    }
}

/// Sends one DNS message over TCP (RFC 1035 4.2.2: 2-byte length prefix)
/// from inside `ns` to `server` and returns the first response message, or
/// `None` if the connection is refused, closed or times out. `timeout`
/// bounds the connect and each read and write.
pub fn raw_query_tcp(ns: &NetNs, server: SocketAddr, query: &[u8], timeout: Duration) -> Option<Vec<u8>> {
    let mut stream = in_netns(ns, move || TcpStream::connect_timeout(&server, timeout)).ok()?;
    tcp_exchange(&mut stream, query, timeout)
}

/// Writes `query` with its length prefix to `stream` and reads one
/// length-prefixed response; `None` on timeout or a closed connection. Use
/// repeatedly on one stream to test pipelining.
pub fn tcp_exchange(stream: &mut TcpStream, query: &[u8], timeout: Duration) -> Option<Vec<u8>> {
    let len = u16::try_from(query.len()).expect("a DNS message over TCP is at most 65535 bytes");
    stream.set_read_timeout(Some(timeout)).expect("setting TCP read timeout");
    stream.set_write_timeout(Some(timeout)).expect("setting TCP write timeout");
    let mut framed = Vec::with_capacity(query.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(query);
    stream.write_all(&framed).ok()?;
    let mut len_buf = [0u8; 2];
    stream.read_exact(&mut len_buf).ok()?;
    let mut response = vec![0u8; usize::from(u16::from_be_bytes(len_buf))];
    stream.read_exact(&mut response).ok()?;
    Some(response)
}

/// An AF_PACKET socket on one interface inside a namespace: sends crafted
/// Ethernet frames (malformed packets, VLAN tags, IP options) and receives
/// whole frames, for tests below the socket API.
///
/// Received frames are returned as they were on the wire: the kernel moves
/// an 802.1Q tag out of the frame into metadata before packet sockets see it
/// (even without VLAN support), so [`PacketSocket::recv_matching`] puts it
/// back. Frames this socket's interface transmits are skipped, so a test
/// sees only what arrives.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
    ifname: String,
}

impl PacketSocket {
    /// Opens a packet socket bound to `ifname` in `ns`, receiving every
    /// protocol. Panics on failure.
    pub fn open(ns: &NetNs, ifname: &str) -> PacketSocket {
        let fd = in_netns(ns, || -> io::Result<OwnedFd> {
            let name = CString::new(ifname).map_err(io::Error::other)?;
            // SAFETY: `name` is a valid C string.
            let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
            if ifindex == 0 {
                return Err(io::Error::last_os_error());
            }
            let all = (libc::ETH_P_ALL as u16).to_be();
            // SAFETY: plain socket(2); the fd is owned right away.
            let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, i32::from(all)) };
            if raw < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: `raw` is a fresh fd that nothing else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            let on: libc::c_int = 1;
            // SAFETY: option value points at a live c_int of the given size.
            let rc = unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_PACKET,
                    libc::PACKET_AUXDATA,
                    (&on as *const libc::c_int).cast(),
                    size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: sockaddr_ll is plain data; zero is a valid start.
            let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            addr.sll_family = libc::AF_PACKET as u16;
            addr.sll_protocol = all;
            addr.sll_ifindex = i32::try_from(ifindex).map_err(io::Error::other)?;
            // SAFETY: addr is a valid sockaddr_ll of the given size.
            let rc = unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    (&addr as *const libc::sockaddr_ll).cast(),
                    size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                )
            };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(fd)
        })
        .unwrap_or_else(|e| panic!("opening a packet socket on {ifname} in {}: {e}", ns.name()));
        PacketSocket { fd, ifname: ifname.to_string() }
    }

    /// Transmits `frame` (starting at the Ethernet header) as is.
    pub fn send(&self, frame: &[u8]) {
        // SAFETY: the buffer is valid for its length.
        let sent = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        assert!(
            usize::try_from(sent).is_ok_and(|n| n == frame.len()),
            "sending a {}-byte frame on {}: {}",
            frame.len(),
            self.ifname,
            io::Error::last_os_error()
        );
    }

    /// The next frame received within `timeout`.
    pub fn recv(&self, timeout: Duration) -> Option<Vec<u8>> {
        self.recv_matching(timeout, |_| true)
    }

    /// The next received frame for which `wanted` holds, within `timeout`;
    /// others (IPv6 multicast listener reports and the like) are skipped.
    pub fn recv_matching(&self, timeout: Duration, mut wanted: impl FnMut(&[u8]) -> bool) -> Option<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let mut pollfd = libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            let millis = libc::c_int::try_from(left.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
            // SAFETY: one valid pollfd.
            let ready = unsafe { libc::poll(&mut pollfd, 1, millis) };
            if ready < 0 {
                let err = io::Error::last_os_error();
                assert!(err.kind() == io::ErrorKind::Interrupted, "poll on {}: {err}", self.ifname);
                continue;
            }
            if ready == 0 {
                continue;
            }
            if let Some(frame) = self.recv_one()
                && wanted(&frame)
            {
                return Some(frame);
            }
        }
    }

    /// Reads one frame; `None` for frames this interface sent.
    fn recv_one(&self) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 65_536];
        // u64 elements keep the control buffer aligned for cmsghdr.
        let mut control = [0u64; 16];
        // SAFETY: plain data, zero is valid.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
        // SAFETY: msghdr is plain data; every pointer set below outlives the call.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = (&mut addr as *mut libc::sockaddr_ll).cast();
        msg.msg_namelen = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = size_of_val(&control);
        // SAFETY: msg describes live buffers; MSG_DONTWAIT since poll said ready.
        let len = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
        let Ok(len) = usize::try_from(len) else {
            let err = io::Error::last_os_error();
            assert!(
                matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted),
                "receiving on {}: {err}",
                self.ifname
            );
            return None;
        };
        if addr.sll_pkttype == libc::PACKET_OUTGOING {
            return None;
        }
        buf.truncate(len.min(buf.len()));

        // SAFETY: walking the control messages the kernel wrote into msg.
        let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
        while !cmsg.is_null() {
            // SAFETY: cmsg points into `control`, as CMSG_FIRSTHDR/NXTHDR
            // guarantee.
            let header = unsafe { &*cmsg };
            if header.cmsg_level == libc::SOL_PACKET && header.cmsg_type == libc::PACKET_AUXDATA {
                // SAFETY: PACKET_AUXDATA carries a tpacket_auxdata; read
                // unaligned since CMSG_DATA only promises cmsg alignment.
                let aux: libc::tpacket_auxdata = unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast()) };
                if aux.tp_status & libc::TP_STATUS_VLAN_VALID != 0 && buf.len() >= 12 {
                    let tpid =
                        if aux.tp_status & libc::TP_STATUS_VLAN_TPID_VALID != 0 { aux.tp_vlan_tpid } else { 0x8100 };
                    let mut tag = [0u8; 4];
                    tag[..2].copy_from_slice(&tpid.to_be_bytes());
                    tag[2..].copy_from_slice(&aux.tp_vlan_tci.to_be_bytes());
                    buf.splice(12..12, tag);
                }
            }
            // SAFETY: as above.
            cmsg = unsafe { libc::CMSG_NXTHDR(&msg, cmsg) };
        }
        Some(buf)
    }
}

/// Names of all harness namespaces (`dnsxdp-*`, of any process) that exist
/// now, for leak checks.
pub fn harness_namespaces() -> Vec<String> {
    host_exec_ok("ip", &["netns", "list"])
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| name.starts_with(NETNS_PREFIX))
        .map(str::to_string)
        .collect()
}
