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

/// The system calls a filter group allows, expanded through the groups it
/// names, as `systemd-analyze syscall-filter` lists them.
fn syscall_group(group: &str, listing: &str, seen: &mut std::collections::BTreeSet<String>) -> Vec<String> {
    let mut body = Vec::new();
    let mut inside = false;
    for line in listing.lines() {
        if !line.starts_with(' ') {
            inside = line.trim() == group;
            continue;
        }
        let item = line.trim();
        if inside && !item.is_empty() && !item.starts_with('#') {
            body.push(item.to_owned());
        }
    }
    let mut out = Vec::new();
    for item in body {
        if item.starts_with('@') {
            if seen.insert(item.clone()) {
                out.extend(syscall_group(&item, listing, seen));
            }
        } else {
            out.push(item);
        }
    }
    out
}

/// The unit's sandbox against what the daemon really does: every system
/// call it makes (traced with strace through start, queries over UDP and
/// TCP, the control socket, /metrics, /health, a reload and the stop) is
/// one its SystemCallFilter allows, and every socket family it opens is in
/// RestrictAddressFamilies. systemd is not PID 1 in CI, so the unit cannot
/// run here; this checks the lists it would enforce.
#[test]
fn the_unit_lets_through_every_system_call_and_address_family_the_daemon_uses() {
    use dns_xdp_tests::{NetNs, NetNsExt as _};
    let dir = dns_xdp_tests::temp_dir("syscalls");
    // The unit's /sys/fs/bpf is bpffs; here a mount of our own, so that
    // the daemon does not mount one (which it never does under systemd).
    let bpf = dir.path().join("bpf");
    std::fs::create_dir(&bpf).expect("bpf dir");
    dns_xdp_tests::host_exec_ok("mount", &["-t", "bpf", "bpf", bpf.to_str().expect("utf-8")]);
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(bpf.clone());
    let trace = dir.path().join("trace");
    let control = dir.path().join("control.sock");
    let ns = NetNs::new();
    let mut cmd = ns.command_keep_mounts("strace").expect("command");
    cmd.current_dir(workspace_root())
        .arg("-f")
        .arg("-qq")
        .arg("-o")
        .arg(&trace)
        .arg(daemon_bin())
        .args(["run", "--zone", dns_xdp_tests::daemon::EXAMPLE_ZONE, "--listen", "127.0.0.1:53", "--iface", "lo"])
        .args(["--xdp-mode", "generic", "--metrics", "127.0.0.1:9153", "--query-log-sample", "1", "--pin-dir"])
        .arg(bpf.join("dns-xdp"))
        .arg("--control-socket")
        .arg(&control);
    let mut daemon = dns_xdp_tests::spawn(cmd, "strace dns-xdp");
    assert!(daemon.wait_for_output("serving", std::time::Duration::from_secs(30)).is_ok(), "{}", daemon.stderr());
    let server: std::net::SocketAddr = "127.0.0.1:53".parse().expect("addr");
    for (id, name) in [(1, "www.example.test."), (2, "nosuch.example.org.")] {
        dns_xdp_tests::daemon::ask(&ns, server, name, hickory_proto::rr::RecordType::A, id);
    }
    ns.exec_ok("dig", &["+tcp", "+short", "+tries=1", "+time=2", "@127.0.0.1", "www.example.test", "A"]);
    for args in [&["reload"][..], &["cache", "flush"], &["cache", "list"], &["stats"]] {
        let out = Command::new(daemon_bin()).args(args).arg("--control-socket").arg(&control).output().expect("cli");
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    ns.exec_ok("curl", &["-sf", "127.0.0.1:9153/metrics", "-o", "/dev/null"]);
    ns.exec_ok("curl", &["-sf", "127.0.0.1:9153/health", "-o", "/dev/null"]);
    daemon.signal(libc::SIGHUP).expect("SIGHUP");
    std::thread::sleep(std::time::Duration::from_millis(500));
    daemon.stop().expect("stop");

    let text = std::fs::read_to_string(&trace).expect("trace");
    let mut used = std::collections::BTreeSet::new();
    let mut families = std::collections::BTreeSet::new();
    for line in text.lines() {
        // "PID name(args) = result"; resumed halves start with "<...".
        let call = line.split_once(' ').map_or(line, |(_, rest)| rest).trim_start();
        if let Some((name, args)) = call.split_once('(')
            && !name.is_empty()
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            used.insert(name.to_owned());
            if name == "socket"
                && let Some(family) = args.split(',').next()
            {
                families.insert(family.to_owned());
            }
        }
    }
    assert!(used.contains("bpf") && used.contains("recvmmsg"), "the trace saw the daemon work: {used:?}");
    // The first execve is strace starting the daemon, not the daemon.
    used.remove("execve");

    let install_dir = dns_xdp_tests::temp_dir("syscalls-unit");
    let prefix = install_dir.path().join("usr/local");
    install(&prefix, None);
    let unit = std::fs::read_to_string(prefix.join("lib/systemd/system/dns-xdp.service")).expect("unit");
    let listing = netlab::cmd::stdout_of(Command::new("systemd-analyze").arg("syscall-filter")).expect("groups");
    let mut allowed = std::collections::BTreeSet::new();
    for item in setting(&unit, "SystemCallFilter").split_whitespace() {
        if item.starts_with('@') {
            allowed.extend(syscall_group(item, &listing, &mut std::collections::BTreeSet::new()));
        } else {
            allowed.insert(item.to_owned());
        }
    }
    let refused: Vec<&String> = used.iter().filter(|c| !allowed.contains(*c)).collect();
    assert!(refused.is_empty(), "the daemon calls {refused:?}, which SystemCallFilter would refuse (EPERM)");
    let permitted: Vec<&str> = setting(&unit, "RestrictAddressFamilies").split_whitespace().collect();
    for family in &families {
        assert!(permitted.contains(&family.as_str()), "the daemon opens {family} sockets: {permitted:?}");
    }
    assert!(families.contains("AF_NETLINK"), "{families:?}");
}
