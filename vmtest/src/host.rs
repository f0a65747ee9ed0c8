//! The host side: commands, Debian tools, KVM.

use std::fs::OpenOptions;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Runs `cmd`, failing with its description unless it succeeds.
pub fn run(cmd: &mut Command) -> Result<()> {
    let line = describe(cmd);
    let status = cmd.status().with_context(|| format!("starting `{line}`"))?;
    if !status.success() {
        bail!("`{line}` failed: {status}");
    }
    Ok(())
}

/// Runs `cmd` and returns its stdout, failing unless it succeeds.
pub fn output(cmd: &mut Command) -> Result<String> {
    let line = describe(cmd);
    let out = cmd.output().with_context(|| format!("starting `{line}`"))?;
    if !out.status.success() {
        bail!("`{line}` failed: {}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    String::from_utf8(out.stdout).with_context(|| format!("`{line}` printed non-UTF-8"))
}

pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        s.push(' ');
        s.push_str(&arg.to_string_lossy());
    }
    s
}

/// Fails unless `dev` is a KVM device this process can open: without it
/// qemu falls back to emulation (TCG), and the stage would crawl instead of
/// failing.
pub fn require_kvm(dev: &Path) -> Result<()> {
    if !dev.exists() {
        bail!(
            "{} does not exist: this stage boots a kernel under KVM and needs hardware virtualisation \
             (enable VT-x/AMD-V, nested virtualisation for a VM, or load kvm_intel/kvm_amd)",
            dev.display()
        );
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(dev)
        .with_context(|| format!("{} exists but cannot be opened read-write (run as root)", dev.display()))?;
    Ok(())
}

/// How qemu runs the guest's CPU.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Accel {
    Kvm,
    /// Emulation: a few times slower, the same verifier.
    Tcg,
}

/// Whether this host's KVM is PVM (pagetable-based virtualisation, for
/// nested sandboxes without hardware virtualisation): it runs only kernels
/// built as PVM guests, and a stock distribution kernel hangs in early boot.
pub fn kvm_is_pvm() -> bool {
    Path::new("/sys/module/kvm_pvm").exists()
}

/// Debian packages the stage needs on the host, by a file each provides.
const TOOLS: &[(&str, &str)] = &[
    ("qemu-system-x86", "/usr/bin/qemu-system-x86_64"),
    // A static busybox is the guest's initramfs userland: it has no libc.
    ("busybox-static", "/bin/busybox"),
];

/// Installs what is missing of [`TOOLS`] with apt (one `apt-get update`).
pub fn ensure_tools() -> Result<()> {
    let missing: Vec<&str> =
        TOOLS.iter().filter(|(pkg, file)| !Path::new(file).exists() || !installed(pkg)).map(|(pkg, _)| *pkg).collect();
    if missing.is_empty() {
        return Ok(());
    }
    println!("vm: installing {}", missing.join(" "));
    run(Command::new("apt-get").args(["update", "-q"])).context("apt-get update")?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
    .with_context(|| format!("installing {}", missing.join(" ")))
}

fn installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}
