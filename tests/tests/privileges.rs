//! The daemon as an unprivileged user with only the documented capabilities
//! (CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN, CAP_NET_BIND_SERVICE), started as
//! systemd's AmbientCapabilities would start it (here with setpriv): it
//! serves, XDP answers, it is healthy, reloads, and holds no capability once
//! attached. Without any one of them it fails at start and says which.

use std::{net::SocketAddr, path::Path, process::Command, time::Duration};

use dns_xdp_tests::{
    SRV_V4, Topology, TopologyExt as _,
    daemon::{EXAMPLE_ZONE, PUBLISH_WAIT, ask, client_pass},
    daemon_bin, require_root, workspace_root,
};
use hickory_proto::{op::ResponseCode, rr::RecordType};

/// nobody: a user with no files and no privileges of its own.
const USER: &str = "65534";
const CAPS: [&str; 4] = ["bpf", "perfmon", "net_admin", "net_bind_service"];

/// A bpf filesystem mounted in a temp dir the user owns (the unit's
/// ExecStartPre gives the user its pin directory the same way), unmounted
/// on drop.
struct Workdir {
    dir: tempfile::TempDir,
}

impl Workdir {
    fn new() -> Self {
        require_root();
        let dir = dns_xdp_tests::temp_dir("privileges");
        let bpf = dir.path().join("bpf");
        std::fs::create_dir(&bpf).expect("bpf dir");
        dns_xdp_tests::host_exec_ok("mount", &["-t", "bpf", "bpf", bpf.to_str().expect("utf-8")]);
        std::fs::copy(workspace_root().join(EXAMPLE_ZONE), dir.path().join("example.test.zone")).expect("zone");
        dns_xdp_tests::host_exec_ok("chown", &["-R", &format!("{USER}:{USER}"), dir.path().to_str().expect("utf-8")]);
        dns_xdp_tests::host_exec_ok("chmod", &["0755", dir.path().to_str().expect("utf-8")]);
        Workdir { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().expect("utf-8").to_owned()
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path().join("bpf")).status();
    }
}

/// `setpriv` running the daemon as nobody with exactly `caps`, in the server
/// namespace of `topo`.
fn daemon_command(topo: &Topology, work: &Workdir, caps: &[&str]) -> Command {
    let caps = caps.iter().map(|c| format!("+{c}")).collect::<Vec<_>>().join(",");
    let mut cmd = topo.srv().command_keep_mounts("setpriv").expect("namespace command");
    cmd.args(["--reuid", USER, "--regid", USER, "--clear-groups"])
        .arg(format!("--inh-caps=-all{}{caps}", if caps.is_empty() { "" } else { "," }))
        .arg(format!("--ambient-caps=-all{}{caps}", if caps.is_empty() { "" } else { "," }))
        .arg(format!("--bounding-set=-all{}{caps}", if caps.is_empty() { "" } else { "," }))
        .arg(daemon_bin())
        .args(["run", "--zone", &work.path("example.test.zone"), "--listen", &format!("{SRV_V4}:53")])
        .args(["--iface", topo.srv_if(), "--xdp-mode", "native", "--metrics", "off"])
        .args(["--pin-dir", &work.path("bpf/dns-xdp"), "--control-socket", &work.path("control.sock")])
        .env("RUST_LOG", "info");
    cmd
}

/// A `Cap*:` or `Uid:` line of /proc/PID/status.
fn status_field(pid: u32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("process status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in {status}"))
        .trim()
        .to_owned()
}

fn cli(args: &[&str], socket: &Path) -> String {
    let out = Command::new(daemon_bin()).args(args).arg("--control-socket").arg(socket).output().expect("dns-xdp");
    assert!(out.status.success(), "dns-xdp {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn serves_from_xdp_as_an_unprivileged_user_with_only_the_documented_capabilities() {
    let work = Workdir::new();
    let topo = Topology::new();
    let _pass = client_pass(&topo);
    let mut daemon = dns_xdp_tests::spawn(daemon_command(&topo, &work, &CAPS), "dns-xdp as nobody");
    assert!(
        daemon.wait_for_output("serving", Duration::from_secs(20)).is_ok(),
        "the daemon did not start as nobody:\n{}",
        daemon.stderr()
    );
    let pid = daemon.pid();
    assert!(status_field(pid, "Uid").split_whitespace().all(|uid| uid == USER), "runs as nobody");
    // Once attached it holds nothing.
    for set in ["CapEff", "CapPrm", "CapAmb", "CapInh"] {
        assert_eq!(status_field(pid, set), "0000000000000000", "{set} after attaching:\n{}", daemon.stderr());
    }
    assert!(daemon.stderr().contains("capabilities dropped"), "{}", daemon.stderr());

    let server = SocketAddr::from((SRV_V4, 53));
    let socket = Path::new(&work.path("control.sock")).to_path_buf();
    let tx_answer = || {
        let json: serde_json::Value = serde_json::from_str(&cli(&["stats", "--json"], &socket)).expect("stats JSON");
        let own = json.as_array().and_then(|all| all.iter().find(|i| i.get("health").is_some()).cloned());
        let own = own.unwrap_or_else(|| panic!("no instance with the daemon's health in {json}"));
        assert_eq!(own["health"]["healthy"], true, "healthy without capabilities: {own}");
        own["xdp"]["tx_answer"].as_u64().expect("tx_answer")
    };
    let before = tx_answer();
    for id in 0..3 {
        let reply = ask(topo.cli(), server, "www.example.test.", RecordType::A, id);
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    }
    std::thread::sleep(PUBLISH_WAIT);
    assert!(tx_answer() >= before + 3, "XDP answered (preloaded):\n{}", daemon.stderr());

    // A reload needs no capability: map writes go through held fds.
    assert!(cli(&["reload"], &socket).starts_with("reload done"));
    assert!(cli(&["cache", "flush"], &socket).contains("flushed"));
    let reply = ask(topo.cli(), server, "www.example.test.", RecordType::A, 10);
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);

    // Stopping needs no capability either; the program, links and maps stay
    // pinned for the next start (a hitless restart) until `dns-xdp detach`.
    let status = daemon.stop().expect("stopping");
    assert!(status.success() || status.code().is_none(), "{status:?}");
    assert!(daemon.stderr().contains("stopped"), "{}", daemon.stderr());
    let pins = Path::new(&work.path("bpf/dns-xdp")).to_path_buf();
    assert!(pins.join("program").exists(), "the program stays pinned for the next start");
    let out = topo
        .srv()
        .command_keep_mounts(daemon_bin())
        .expect("namespace command")
        .args(["detach", "--pin-dir", &work.path("bpf/dns-xdp")])
        .output()
        .expect("dns-xdp detach");
    assert!(out.status.success(), "dns-xdp detach: {}", String::from_utf8_lossy(&out.stderr));
    assert!(!pins.join("program").exists(), "detach removes the pins");
}

#[test]
fn without_any_one_needed_capability_the_start_fails_and_names_it() {
    let work = Workdir::new();
    let topo = Topology::new();
    for missing in CAPS {
        let caps: Vec<&str> = CAPS.iter().copied().filter(|c| *c != missing).collect();
        let mut daemon = dns_xdp_tests::spawn(daemon_command(&topo, &work, &caps), "dns-xdp short of a capability");
        let status = daemon.wait(Duration::from_secs(20)).expect("the daemon exits");
        assert!(!status.success(), "started without CAP_{missing}:\n{}", daemon.stderr());
        let wanted = format!("lacks CAP_{}", missing.to_uppercase());
        assert!(
            daemon.stderr().contains(&wanted),
            "without {missing}, the error says {wanted:?}:\n{}",
            daemon.stderr()
        );
    }
}
