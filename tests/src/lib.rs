//! Harness for dns-xdp's privileged end-to-end tests.
//!
//! The tests themselves live in `tests/tests/*.rs` of this package. They are
//! plain `#[test]`s that need root (network namespaces, veths, XDP), so
//! `cargo xtask test` runs them apart from the host unit tests, one at a time:
//! `cargo test -p dns-xdp-tests -- --test-threads=1`, with `DNS_XDP_BIN`
//! naming the daemon binary (see [`daemon_bin`]).
//!
//! The guards come from `netlab`, shared with the benchmark: [`NetNs`]
//! deletes its namespace (and with it the veths and any XDP program on
//! them), [`Topology`] detaches XDP programs and deletes both namespaces,
//! and [`ChildGuard`] stops its process and prints the process's output when
//! the test is failing. Declare child processes *after* the namespace they
//! run in, so they are dropped (stopped) first.
//!
//! netlab returns errors; the helpers here turn them into panics with a
//! message: a test that cannot build its network has failed, and the
//! message says where. [`NetNsExt`] and [`TopologyExt`] give the guards the
//! constructors the tests use.

use std::ffi::CString;

pub mod daemon;
pub mod dnssec;
pub mod prog;
pub mod wire;

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub use netlab::netns::{
    CLI_MAC, CLI_V4, CLI_V6, SRV_MAC, SRV_V4, SRV_V6, VLAN_CLI_V4, VLAN_CLI_V6, VLAN_SRV_V4, VLAN_SRV_V6,
};
pub use netlab::{NetNs, Topology, Vlan, wait_until};

/// The process guard: stopped (SIGTERM, grace, SIGKILL, by PID) on drop,
/// its output printed if the test is failing.
pub type ChildGuard = netlab::Proc;

/// Prefix of every namespace the harness creates; the rest of the name is
/// `<pid>-<n>`, so stale ones from killed runs can be told apart.
pub const NETNS_PREFIX: &str = "dnsxdp-";

/// Panics unless we are root: everything in this crate needs CAP_NET_ADMIN
/// and CAP_SYS_ADMIN (and CAP_BPF for XDP), and a clear message beats a
/// confusing `ip` error.
pub fn require_root() {
    assert!(
        netlab::cmd::is_root(),
        "privileged test: needs root (network namespaces, veths, XDP); run `cargo xtask test` as root"
    );
}

/// The workspace root, for zone files and test data that tests refer to by
/// path.
pub fn workspace_root() -> PathBuf {
    netlab::workspace_root()
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

/// A temporary directory for one test, removed when dropped.
pub fn temp_dir(label: &str) -> tempfile::TempDir {
    netlab::temp_dir(label).unwrap_or_else(|e| panic!("{e:#}"))
}

/// Starts `cmd` with stdin closed and output captured (see [`ChildGuard`]);
/// `label` names the process in messages. Panics if it cannot be started.
pub fn spawn(cmd: Command, label: &str) -> ChildGuard {
    ChildGuard::spawn(cmd, label, &netlab::ProcOptions::default()).unwrap_or_else(|e| panic!("{e:#}"))
}

/// Runs a command on the host (not in a namespace); panics with its stderr
/// unless it succeeds; returns its stdout.
pub fn host_exec_ok(program: &str, args: &[&str]) -> String {
    netlab::cmd::stdout_of(Command::new(program).args(args)).unwrap_or_else(|e| panic!("{e:#}"))
}

/// The tests' constructors and panicking helpers on [`NetNs`].
pub trait NetNsExt {
    /// Creates a fresh `dnsxdp-<pid>-<n>` namespace with `lo` up.
    fn new() -> Self;
    /// Like [`NetNsExt::new`], with `role` (e.g. `srv`) appended to the name
    /// so `ip netns list` reads well while debugging.
    fn with_role(role: &str) -> Self;
    /// Runs `program args` inside the namespace to completion and returns
    /// its output, whatever its exit status.
    fn exec(&self, program: &str, args: &[&str]) -> Output;
    /// Like [`NetNsExt::exec`], but panics with the command's stderr unless
    /// it succeeds; returns its stdout.
    fn exec_ok(&self, program: &str, args: &[&str]) -> String;
    /// Starts `program args` inside the namespace (via `ip netns exec`, which
    /// execs in place, so the guard's PID is the program's own).
    fn spawn(&self, program: &str, args: &[&str]) -> ChildGuard;
}

impl NetNsExt for NetNs {
    fn new() -> NetNs {
        require_root();
        NetNs::create(NETNS_PREFIX, None).unwrap_or_else(|e| panic!("creating a namespace: {e:#}"))
    }

    fn with_role(role: &str) -> NetNs {
        require_root();
        NetNs::create(NETNS_PREFIX, Some(role)).unwrap_or_else(|e| panic!("creating a namespace: {e:#}"))
    }

    fn exec(&self, program: &str, args: &[&str]) -> Output {
        self.output(program, args).unwrap_or_else(|e| panic!("{e:#}"))
    }

    fn exec_ok(&self, program: &str, args: &[&str]) -> String {
        self.run(program, args).unwrap_or_else(|e| panic!("{e:#}"))
    }

    fn spawn(&self, program: &str, args: &[&str]) -> ChildGuard {
        let mut cmd = self.command(program);
        cmd.args(args);
        spawn(cmd, program)
    }
}

/// The tests' constructors of [`Topology`].
pub trait TopologyExt {
    /// Builds the plain topology (see [`Topology`]); veths `vs<n>`/`vc<n>`.
    fn new() -> Self;
    /// The topology plus an 802.1Q sub-interface with VLAN `id` on both
    /// veths, carrying 198.18.1.0/24 and 2001:db8:1::/64 (see [`Vlan`]).
    /// Needs a kernel with 802.1Q support: check [`vlan_supported`] first.
    /// Where it is missing, tagged frames can still be sent and received on
    /// the plain topology's veths with a [`PacketSocket`].
    fn with_vlan(id: u16) -> Self;
}

impl TopologyExt for Topology {
    fn new() -> Topology {
        require_root();
        Topology::create(&netlab::TopologyConfig::new(NETNS_PREFIX))
            .unwrap_or_else(|e| panic!("building the test network: {e:#}"))
    }

    fn with_vlan(id: u16) -> Topology {
        require_root();
        let config = netlab::TopologyConfig { vlan: Some(id), ..netlab::TopologyConfig::new(NETNS_PREFIX) };
        Topology::create(&config).unwrap_or_else(|e| panic!("building the VLAN test network: {e:#}"))
    }
}

/// Whether the kernel can create 802.1Q VLAN interfaces (some test kernels
/// are built without CONFIG_VLAN_8021Q). Probed once, in a scratch namespace.
pub fn vlan_supported() -> bool {
    require_root();
    netlab::netns::vlan_supported(NETNS_PREFIX)
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
    ns.enter(f).unwrap_or_else(|e| panic!("{e:#}"))
}

/// Runs `kdig args` inside `ns` and returns its stdout (also when kdig exits
/// non-zero, e.g. on a timeout, so tests can assert on what it printed).
/// Panics only if kdig cannot be started. Tip: `+time=1 +retry=0` keeps a
/// failing query from stalling the test.
/// dnsperf's count on a line like `  Queries lost:         0 (0.00%)`.
pub fn dnsperf_count(out: &str, label: &str) -> u64 {
    out.lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no '{label}' in dnsperf's output:\n{out}"))
}

/// The number in `name=N` on a log line (the text log's fields).
pub fn log_field(line: &str, name: &str) -> Option<u64> {
    line.split(&format!("{name}=")).nth(1)?.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

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
/// from `server`'s address and port within `timeout` (netlab's exchange,
/// taking any reply). Works with host sockets too (e.g. for a daemon on
/// loopback).
pub fn udp_exchange(socket: &UdpSocket, server: SocketAddr, query: &[u8], timeout: Duration) -> Option<Vec<u8>> {
    netlab::udp::exchange(socket, server, query, timeout, |_| true)
        .unwrap_or_else(|e| panic!("UDP exchange of {} bytes with {server}: {e}", query.len()))
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
    netlab::netns::namespaces(NETNS_PREFIX).unwrap_or_else(|e| panic!("{e:#}"))
}
