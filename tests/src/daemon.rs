//! Running the dns-xdp daemon in a test namespace and reading its counters
//! as a user would (`dns-xdp stats --json`).

use std::{net::SocketAddr, time::Duration};

use hickory_proto::{
    op::{Message, Query},
    rr::{Name, RecordType},
};
use serde_json::Value;

use crate::{ChildGuard, NetNs, SRV_V4, SRV_V6, Topology, daemon_bin, in_netns, raw_query, workspace_root};

/// The zone `cargo xtask run` serves; the tests use it too.
pub const EXAMPLE_ZONE: &str = "zones/example.test.zone";
/// Longer than the daemon's counter publishing interval (200 ms).
pub const PUBLISH_WAIT: Duration = Duration::from_millis(500);

/// A running daemon and the ID of the XDP program it attached.
pub struct Daemon {
    pub child: ChildGuard,
    pub program_id: Option<u64>,
}

impl Daemon {
    /// Starts `dns-xdp run ARGS` under `ip netns exec` in `ns`, from the
    /// workspace root, and waits until it serves.
    pub fn start(ns: &NetNs, args: &[&str]) -> Daemon {
        Self::start_with(ns, &daemon_bin(), &[], args)
    }

    /// [`Daemon::start`] with another binary (an upgrade) and extra
    /// environment.
    pub fn start_with(ns: &NetNs, bin: &std::path::Path, env: &[(&str, &str)], args: &[&str]) -> Daemon {
        let mut cmd = ns.command(bin.to_str().expect("utf-8 path"));
        cmd.current_dir(workspace_root()).arg("run").args(args).env("RUST_LOG", "info");
        cmd.envs(env.iter().copied());
        let mut child = crate::spawn(cmd, "dns-xdp");
        assert!(
            child.wait_for_output("serving", Duration::from_secs(20)).is_ok(),
            "daemon did not start:\n{}",
            child.stderr()
        );
        let program_id = child
            .stderr()
            .lines()
            .find(|l| l.contains("XDP fast path attached"))
            // key=value in the text log, "key":value in the JSON one.
            .and_then(|l| l.split("program_id=").nth(1).or_else(|| l.split("\"program_id\":").nth(1)))
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|id| id.parse().ok());
        Daemon { child, program_id }
    }

    /// Serves `zone` on the server side of `topo` (IPv4 and IPv6, port 53)
    /// with XDP in native mode on the server veth.
    pub fn on_veth(topo: &Topology, zone: &str, extra: &[&str]) -> Daemon {
        Self::on_veth_with(topo, &daemon_bin(), &[], zone, extra)
    }

    /// [`Daemon::on_veth`] with another binary and extra environment.
    pub fn on_veth_with(
        topo: &Topology,
        bin: &std::path::Path,
        env: &[(&str, &str)],
        zone: &str,
        extra: &[&str],
    ) -> Daemon {
        let listen4 = format!("{SRV_V4}:53");
        let listen6 = format!("[{SRV_V6}]:53");
        let mut args = vec![
            "--zone",
            zone,
            "--listen",
            &listen4,
            "--listen",
            &listen6,
            "--iface",
            topo.srv_if(),
            "--xdp-mode",
            "native",
        ];
        args.extend_from_slice(extra);
        let daemon = Daemon::start_with(topo.srv(), bin, env, &args);
        assert!(daemon.program_id.is_some(), "no program id in the log:\n{}", daemon.child.stderr());
        daemon
    }

    /// This instance's (XDP, daemon) counters from `dns-xdp stats --json`.
    pub fn stats(&self) -> (Value, Value) {
        // Counters only: the health in `stats` probes the service addresses
        // with SOA queries, which would move the counters being compared.
        let out = std::process::Command::new(daemon_bin())
            .args(["stats", "--json", "--control-socket", "off"])
            .output()
            .expect("dns-xdp stats");
        assert!(out.status.success(), "stats failed: {}", String::from_utf8_lossy(&out.stderr));
        let all: Value = serde_json::from_slice(&out.stdout).expect("stats JSON");
        let inst = all
            .as_array()
            .and_then(|a| a.iter().find(|i| i["program_id"].as_u64() == self.program_id))
            .unwrap_or_else(|| panic!("instance {:?} not in {all}", self.program_id))
            .clone();
        (inst["xdp"].clone(), inst["daemon"].clone())
    }

    /// How many times the daemon has logged `needle`.
    pub fn log_count(&self, needle: &str) -> usize {
        self.child.stderr().matches(needle).count()
    }
}

/// A counter from a stats object.
pub fn counter(v: &Value, name: &str) -> u64 {
    v[name].as_u64().unwrap_or_else(|| panic!("no counter {name} in {v}"))
}

/// A query without EDNS, RD clear.
pub fn query(name: &str, qtype: RecordType, id: u16) -> Vec<u8> {
    let mut msg = Message::query();
    msg.metadata.id = id;
    msg.add_query(Query::query(Name::from_ascii(name).expect("name"), qtype));
    msg.to_vec().expect("encode")
}

/// Sends a query from `ns` and parses the reply, which must come.
pub fn ask(ns: &NetNs, server: SocketAddr, name: &str, qtype: RecordType, id: u16) -> Message {
    let reply = raw_query(ns, server, &query(name, qtype, id), Duration::from_secs(2))
        .unwrap_or_else(|| panic!("no reply to {name} {qtype} from {server}"));
    let msg = Message::from_vec(&reply).expect("reply parses");
    assert_eq!(msg.metadata.id, id, "reply ID");
    msg
}

/// Attaches the pass-through program on the client veth: XDP_TX on a veth
/// is delivered only when the peer runs an XDP program.
pub fn client_pass(topo: &Topology) -> aya::Ebpf {
    let iface = topo.cli_if().to_owned();
    in_netns(topo.cli(), move || dns_xdp::lab::attach_pass_program(&iface, dns_xdp::config::AttachMode::Native))
        .expect("pass program on the client veth")
}
