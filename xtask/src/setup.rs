//! `cargo xtask setup`: everything the build and the tests need that cargo
//! does not fetch by itself. Each step checks first and installs only what is
//! missing, so the whole thing is idempotent and quick on a ready machine.

use std::env;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::util::{self, find_executable, is_root, run_visible, stdout_of};

/// bpf-linker release known to build against the nightly toolchain's LLVM
/// (see the project's toolchain notes); the `llvm-<major>` feature is derived
/// from the LLVM library that nightly ships.
const BPF_LINKER_VERSION: &str = "0.13.0";

/// Directory (under CARGO_HOME) holding symlinks to nightly's libLLVM. The
/// installed bpf-linker keeps an rpath to its `lib/`, so it must stay.
const LLVM_PREFIX_DIR: &str = "dns-xdp-llvm";

/// Tools the tests, demos and benchmarks call, and the Debian package that
/// provides each. Checked by binary so that a machine with the tools from
/// elsewhere is left alone.
const TOOLS: &[(&str, &str)] = &[
    ("dnsperf", "dnsperf"),
    ("knotd", "knot"),
    ("kdig", "knot-dnsutils"),
    ("kxdpgun", "knot-dnsutils"),
    ("nsd", "nsd"),
    // The routing daemon of the anycast lab (tests/tests/anycast.rs).
    ("bird", "bird2"),
    ("birdc", "bird2"),
    // The record-type round-trip test reads zones with it.
    ("ldns-read-zone", "ldnsutils"),
    // The DNSSEC tests sign their zones with these and validate with Unbound.
    ("ldns-signzone", "ldnsutils"),
    ("unbound", "unbound"),
    ("bpftool", "bpftool"),
    ("xdp-loader", "xdp-tools"),
    ("ip", "iproute2"),
    ("ethtool", "ethtool"),
    ("dig", "dnsutils"),
    ("pgrep", "procps"),
    ("sysctl", "procps"),
    // The unit test checks dist/dns-xdp.service with systemd-analyze verify;
    // the capabilities test runs the daemon under setpriv.
    ("systemd-analyze", "systemd"),
    ("setpriv", "util-linux"),
    // ... and traces the daemon to check the unit's system call filter.
    ("strace", "strace"),
    ("curl", "curl"),
    // The harness self-test pings across its veth pair.
    ("ping", "iputils-ping"),
];

/// cargo-fuzz, for the bounded fuzz runs of `cargo xtask test` (`fuzz/`).
const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// Which parts of the setup a subcommand depends on.
#[derive(Clone, Copy)]
pub struct Needs {
    /// rust-src for nightly and a working bpf-linker (building the eBPF object).
    pub toolchain: bool,
    /// The Debian tools in [`TOOLS`].
    pub packages: bool,
    /// bpffs mounted at /sys/fs/bpf (the daemon pins maps there).
    pub bpffs: bool,
    /// cargo-fuzz (the fuzz step of `cargo xtask test`).
    pub fuzzer: bool,
}

impl Needs {
    pub const ALL: Needs = Needs { toolchain: true, packages: true, bpffs: true, fuzzer: true };
    /// Building needs no root and no system packages.
    pub const BUILD: Needs = Needs { toolchain: true, packages: false, bpffs: false, fuzzer: false };
    pub const RUN: Needs = Needs { toolchain: true, packages: false, bpffs: true, fuzzer: false };
}

/// Checks, and installs what is missing, for the given needs. Prints one
/// status line when nothing had to be done.
pub fn ensure(needs: Needs) -> Result<()> {
    let mut present = Vec::new();
    if needs.toolchain {
        present.push(ensure_rust_src()?);
        present.push(ensure_bpf_linker()?);
    }
    if needs.packages {
        present.push(ensure_packages()?);
    }
    if needs.bpffs {
        present.push(ensure_bpffs()?);
    }
    if needs.fuzzer {
        present.push(ensure_cargo_fuzz()?);
    }
    println!("setup: {}", present.join(", "));
    Ok(())
}

/// `rust-src` for nightly: `-Z build-std=core` for bpfel-unknown-none needs it.
fn ensure_rust_src() -> Result<String> {
    let out =
        util::output(Command::new("rustup").args(["component", "list", "--toolchain", "nightly", "--installed"]))?;
    if !out.status.success() {
        bail!(
            "the nightly toolchain is required to build the eBPF program but \
             `rustup component list --toolchain nightly` failed: {}\n\
             install it with `rustup toolchain install nightly`",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let installed = String::from_utf8_lossy(&out.stdout);
    if installed.lines().any(|l| l.trim().starts_with("rust-src")) {
        return Ok("rust-src present".into());
    }
    println!("setup: installing rust-src for the nightly toolchain");
    run_visible(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]))?;
    Ok("rust-src installed".into())
}

/// `cargo fuzz --version`, if cargo finds the subcommand.
fn cargo_fuzz_version() -> Option<String> {
    let out = util::cargo().args(["fuzz", "--version"]).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn ensure_cargo_fuzz() -> Result<String> {
    if let Some(version) = cargo_fuzz_version() {
        return Ok(format!("{version} present"));
    }
    println!("setup: cargo-fuzz not found; building it from crates.io (about a minute)");
    let mut cmd = util::cargo();
    cmd.args(["install", "cargo-fuzz", "--version", CARGO_FUZZ_VERSION, "--locked"]);
    run_visible(&mut cmd).context("building cargo-fuzz")?;
    let version = cargo_fuzz_version().with_context(|| {
        format!("cargo-fuzz was installed in {} but cargo does not find it: add it to PATH", install_bin_dir_text())
    })?;
    Ok(format!("{version} installed"))
}

fn install_bin_dir_text() -> String {
    install_bin_dir().map_or_else(|e| format!("(unknown: {e})"), |dir| dir.display().to_string())
}

fn cargo_home() -> Result<PathBuf> {
    if let Some(home) = env::var_os("CARGO_HOME") {
        return Ok(PathBuf::from(home));
    }
    let home = env::var_os("HOME").context("neither CARGO_HOME nor HOME is set")?;
    Ok(PathBuf::from(home).join(".cargo"))
}

/// Where `cargo install` puts binaries: CARGO_INSTALL_ROOT or CARGO_HOME.
fn install_bin_dir() -> Result<PathBuf> {
    let root = match env::var_os("CARGO_INSTALL_ROOT") {
        Some(root) => PathBuf::from(root),
        None => cargo_home()?,
    };
    Ok(root.join("bin"))
}

/// Runs `bpf-linker --version`; `None` if it does not run. A binary that is
/// present but cannot load its libLLVM (moved toolchain, missing symlink) is
/// as good as absent, so "present" means "runs". LD_LIBRARY_PATH is dropped
/// because `cargo run` points it at the stable toolchain's libraries, which
/// rustc's own linker invocations do not get.
fn bpf_linker_version(path: &Path) -> Option<String> {
    let out = Command::new(path).arg("--version").env_remove("LD_LIBRARY_PATH").output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn ensure_bpf_linker() -> Result<String> {
    let on_path = find_executable("bpf-linker");
    let in_cargo_home = install_bin_dir()?.join("bpf-linker");
    if let Some(path) = &on_path
        && let Some(version) = bpf_linker_version(path)
    {
        return Ok(format!("{version} present"));
    }
    if on_path.is_none()
        && let Some(version) = bpf_linker_version(&in_cargo_home)
    {
        bail!(
            "{version} is installed at {} but that directory is not in PATH, \
             where rustc looks for it: add it to PATH",
            in_cargo_home.display()
        );
    }
    match &on_path {
        Some(path) => println!("setup: {} does not run (cannot load its libLLVM?); rebuilding it", path.display()),
        None => println!("setup: bpf-linker not found; building it (about 2 minutes)"),
    }
    install_bpf_linker()?;

    let version = bpf_linker_version(&in_cargo_home).with_context(|| {
        format!(
            "the freshly installed {} does not run; `ldd` on it shows which library is missing",
            in_cargo_home.display()
        )
    })?;
    match find_executable("bpf-linker") {
        Some(path) if bpf_linker_version(&path).is_none() => bail!(
            "installed {version} at {}, but {} comes first in PATH and does not run: remove it",
            in_cargo_home.display(),
            path.display()
        ),
        None => bail!("installed {version} at {}, but that directory is not in PATH: add it", in_cargo_home.display()),
        Some(_) => Ok(format!("{version} installed")),
    }
}

/// Builds bpf-linker from crates.io against the LLVM shared library inside the
/// nightly toolchain (no LLVM download is possible here). bpf-linker's build
/// looks for `$LLVM_PREFIX/lib/libLLVM.so`; the binary then records the
/// library's soname (its real file name) and an rpath to `$LLVM_PREFIX/lib`,
/// so that directory gets a link under both names.
fn install_bpf_linker() -> Result<()> {
    let sysroot = stdout_of(Command::new("rustup").args(["run", "nightly", "rustc", "--print", "sysroot"]))?;
    let lib_dir = Path::new(sysroot.trim()).join("lib");
    let (llvm_lib, major) = find_llvm_library(&lib_dir)?;
    let file_name = llvm_lib.file_name().context("libLLVM path has no file name")?;

    let prefix = cargo_home()?.join(LLVM_PREFIX_DIR);
    let prefix_lib = prefix.join("lib");
    fs::create_dir_all(&prefix_lib).with_context(|| format!("creating {}", prefix_lib.display()))?;
    for link_name in [Path::new("libLLVM.so"), Path::new(file_name)] {
        let link = prefix_lib.join(link_name);
        replace_symlink(&llvm_lib, &link)?;
        println!("setup: {} -> {}", link.display(), llvm_lib.display());
    }

    let feature = format!("llvm-{major}");
    let mut cmd = util::cargo();
    cmd.args(["install", "bpf-linker", "--version", BPF_LINKER_VERSION, "--locked", "--force"])
        .args(["--no-default-features", "--features", &feature])
        .env("LLVM_PREFIX", &prefix)
        .env_remove("LD_LIBRARY_PATH");
    println!("+ LLVM_PREFIX={}", prefix.display());
    run_visible(&mut cmd).context("building bpf-linker")
}

/// The real libLLVM shared object in the toolchain's lib dir and its major
/// version. The `libLLVM-<major>-rust-*.so` file beside it is a one-line
/// linker script (`INPUT(...)`) that rust-lld cannot use, so pick
/// `libLLVM.so.<version>...` and check it is a real (large) file.
fn find_llvm_library(lib_dir: &Path) -> Result<(PathBuf, u32)> {
    const MIN_SIZE: u64 = 1 << 20;
    let entries = fs::read_dir(lib_dir).with_context(|| format!("listing {}", lib_dir.display()))?;
    let mut candidates = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", lib_dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(version) = name.strip_prefix("libLLVM.so.") else {
            continue;
        };
        let size = fs::metadata(entry.path()).map(|m| m.len()).unwrap_or(0);
        let major: Option<u32> = version.split(|c: char| !c.is_ascii_digit()).next().and_then(|s| s.parse().ok());
        if size >= MIN_SIZE
            && let Some(major) = major
        {
            candidates.push((entry.path(), major));
        }
    }
    candidates.sort();
    match candidates.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!(
            "no libLLVM.so.<version> shared object in {}; bpf-linker needs the LLVM \
             library that the nightly toolchain ships",
            lib_dir.display()
        ),
        many => bail!(
            "several libLLVM shared objects in {}: {:?}; cannot tell which to link",
            lib_dir.display(),
            many.iter().map(|(p, _)| p).collect::<Vec<_>>()
        ),
    }
}

fn replace_symlink(target: &Path, link: &Path) -> Result<()> {
    if link.symlink_metadata().is_ok() {
        fs::remove_file(link).with_context(|| format!("removing old {}", link.display()))?;
    }
    symlink(target, link).with_context(|| format!("linking {} -> {}", link.display(), target.display()))
}

fn ensure_packages() -> Result<String> {
    let mut missing_tools = Vec::new();
    let mut packages: Vec<&str> = Vec::new();
    for &(tool, package) in TOOLS {
        if find_executable(tool).is_none() {
            missing_tools.push(tool);
            if !packages.contains(&package) {
                packages.push(package);
            }
        }
    }
    if packages.is_empty() {
        return Ok(format!("{} tools present", TOOLS.len()));
    }
    let install_line = format!("apt-get install -y {}", packages.join(" "));
    if !is_root() {
        bail!(
            "missing tools: {}; installing them needs root: run `apt-get update && {install_line}` \
             as root, or `cargo xtask setup` as root",
            missing_tools.join(", ")
        );
    }
    println!("setup: missing tools {}; installing Debian packages {}", missing_tools.join(", "), packages.join(" "));
    run_visible(Command::new("apt-get").arg("update"))?;
    run_visible(
        Command::new("apt-get").args(["install", "-y"]).args(&packages).env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    let still_missing: Vec<&str> = missing_tools.into_iter().filter(|tool| find_executable(tool).is_none()).collect();
    if !still_missing.is_empty() {
        bail!("`{install_line}` succeeded but these tools are still missing: {}", still_missing.join(", "));
    }
    Ok(format!("installed {}", packages.join(" ")))
}

const BPFFS: &str = "/sys/fs/bpf";

fn bpffs_mounted() -> Result<bool> {
    let mounts = fs::read_to_string("/proc/mounts").context("reading /proc/mounts")?;
    Ok(mounts.lines().any(|line| {
        let mut fields = line.split_whitespace();
        let (_source, target, fstype) = (fields.next(), fields.next(), fields.next());
        target == Some(BPFFS) && fstype == Some("bpf")
    }))
}

/// bpffs is not mounted at boot on these machines; the daemon pins its maps
/// there. Mounting needs root; without it this only warns, because building
/// does not need bpffs.
fn ensure_bpffs() -> Result<String> {
    if bpffs_mounted()? {
        return Ok("bpffs mounted".into());
    }
    if !is_root() {
        println!("setup: warning: bpffs is not mounted at {BPFFS}; as root run `mount -t bpf bpf {BPFFS}`");
        return Ok("bpffs NOT mounted".into());
    }
    println!("setup: mounting bpffs at {BPFFS}");
    run_visible(Command::new("mount").args(["-t", "bpf", "bpf", BPFFS]))?;
    Ok("bpffs mounted now".into())
}
