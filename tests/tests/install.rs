//! `cargo xtask install` as an operator runs it, and the systemd unit it
//! installs: `systemd-analyze verify` accepts it without a single warning
//! (a misspelt setting is only a warning there, and is ignored by systemd),
//! the installed configuration passes `dns-xdp check-config`, and the unit
//! grants exactly the capabilities the daemon needs (those
//! `tests/tests/privileges.rs` shows are needed and enough).

use std::{path::Path, process::Command};

use dns_xdp_tests::{daemon_bin, workspace_root};

/// The unit's value of `key` (its last assignment).
fn setting<'a>(unit: &'a str, key: &str) -> &'a str {
    unit.lines()
        .rev()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("the unit has no {key}=\n{unit}"))
}

fn install(prefix: &Path, destdir: Option<&Path>) -> String {
    let mut cmd = netlab::cargo();
    cmd.current_dir(workspace_root()).args(["xtask", "install", "--prefix"]).arg(prefix).arg("--bin").arg(daemon_bin());
    if let Some(destdir) = destdir {
        cmd.arg("--destdir").arg(destdir);
    }
    let out = cmd.output().expect("cargo xtask install");
    assert!(out.status.success(), "cargo xtask install failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn the_installed_unit_verifies_cleanly_and_grants_exactly_the_needed_capabilities() {
    let dir = dns_xdp_tests::temp_dir("install");
    let prefix = dir.path().join("usr/local");
    install(&prefix, None);
    let unit_path = prefix.join("lib/systemd/system/dns-xdp.service");
    let unit = std::fs::read_to_string(&unit_path).expect("installed unit");

    let out = Command::new("systemd-analyze").arg("verify").arg(&unit_path).output().expect("systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "systemd-analyze verify: {stderr}");

    // The paths are the prefix's, and they exist.
    let exec_start = setting(&unit, "ExecStart");
    let binary = prefix.join("bin/dns-xdp");
    let config = prefix.join("etc/dns-xdp/dns-xdp.toml");
    assert!(exec_start.starts_with(&format!("{} run --config {}", binary.display(), config.display())), "{exec_start}");
    assert!(setting(&unit, "ExecReload").starts_with(&format!("{} reload", binary.display())));
    let check = Command::new(&binary).arg("check-config").arg(&config).output().expect("check-config");
    assert!(check.status.success(), "the sample configuration: {}", String::from_utf8_lossy(&check.stderr));

    assert_eq!(setting(&unit, "Type"), "notify");
    let mut needed = ["CAP_BPF", "CAP_NET_ADMIN", "CAP_NET_BIND_SERVICE", "CAP_PERFMON"];
    needed.sort();
    for key in ["AmbientCapabilities", "CapabilityBoundingSet"] {
        let mut granted: Vec<&str> = setting(&unit, key).split_whitespace().collect();
        granted.sort();
        assert_eq!(granted, needed, "{key}");
    }
    let families: Vec<&str> = setting(&unit, "RestrictAddressFamilies").split_whitespace().collect();
    assert!(families.contains(&"AF_NETLINK"), "XDP attach and link state need netlink: {families:?}");
    assert!(setting(&unit, "SystemCallFilter").split_whitespace().any(|s| s == "bpf"), "bpf() must be allowed");
    assert_ne!(setting(&unit, "User"), "root");

    // A second install keeps the operator's configuration.
    std::fs::write(&config, "# edited\n").expect("edit config");
    let out = install(&prefix, None);
    assert!(out.contains("kept"), "{out}");
    assert_eq!(std::fs::read_to_string(&config).expect("config"), "# edited\n");
}

#[test]
fn a_staged_install_names_the_final_paths() {
    let dir = dns_xdp_tests::temp_dir("install-staged");
    install(Path::new("/usr"), Some(dir.path()));
    let unit = std::fs::read_to_string(dir.path().join("usr/lib/systemd/system/dns-xdp.service")).expect("unit");
    assert!(
        setting(&unit, "ExecStart").starts_with("/usr/bin/dns-xdp run --config /etc/dns-xdp/dns-xdp.toml"),
        "{unit}"
    );
    assert!(dir.path().join("usr/bin/dns-xdp").is_file());
    assert!(dir.path().join("etc/dns-xdp/dns-xdp.toml").is_file());
    assert!(dir.path().join("usr/lib/sysusers.d/dns-xdp.conf").is_file());
}

/// What the daemon sent to its NOTIFY_SOCKET within `wait`, datagram by
/// datagram.
fn notifications(socket: &std::os::unix::net::UnixDatagram, wait: std::time::Duration) -> Vec<String> {
    socket.set_read_timeout(Some(std::time::Duration::from_millis(100))).expect("timeout");
    let deadline = std::time::Instant::now() + wait;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while std::time::Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    got
}

#[test]
fn the_daemon_tells_systemd_when_it_is_ready_reloading_and_stopping() {
    use dns_xdp_tests::{NetNs, NetNsExt as _};
    let dir = dns_xdp_tests::temp_dir("notify");
    let notify_path = dir.path().join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).expect("notify socket");
    let control = dir.path().join("control.sock");
    let ns = NetNs::new();
    let mut cmd = ns.command(daemon_bin());
    cmd.current_dir(workspace_root())
        .args(["run", "--zone", dns_xdp_tests::daemon::EXAMPLE_ZONE, "--listen", "127.0.0.1:53", "--iface", "lo"])
        .args(["--xdp-mode", "generic", "--metrics", "off", "--control-socket"])
        .arg(&control)
        .env("NOTIFY_SOCKET", &notify_path);
    let mut daemon = dns_xdp_tests::spawn(cmd, "dns-xdp");
    assert!(daemon.wait_for_output("serving", std::time::Duration::from_secs(20)).is_ok(), "{}", daemon.stderr());
    let ready = notifications(&notify, std::time::Duration::from_millis(300));
    assert!(ready.iter().any(|m| m.lines().any(|l| l == "READY=1")), "READY=1 once serving: {ready:?}");

    let out = Command::new(daemon_bin()).arg("reload").arg("--control-socket").arg(&control).output().expect("reload");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let reload = notifications(&notify, std::time::Duration::from_millis(300));
    let joined = reload.join("|");
    let reloading = joined.find("RELOADING=1").unwrap_or_else(|| panic!("RELOADING=1 on reload: {reload:?}"));
    assert!(joined[reloading..].contains("READY=1"), "READY=1 after the reload: {reload:?}");

    daemon.stop().expect("stop");
    let stopping = notifications(&notify, std::time::Duration::from_millis(200));
    assert!(stopping.iter().any(|m| m.contains("STOPPING=1")), "STOPPING=1 on the way out: {stopping:?}");
}
