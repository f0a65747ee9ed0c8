//! Small helpers shared by the subcommands: running commands, paths.

use std::env;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output};

use anyhow::{Context, Result, bail};

/// The workspace root (the parent of this crate's manifest directory), so that
/// xtask works from whatever directory cargo was started in.
pub fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().map(Path::to_path_buf).unwrap_or_else(|| manifest_dir.to_path_buf())
}

/// The cargo that runs us (cargo sets `CARGO`), so nested builds use the same
/// toolchain; plain `cargo` from PATH otherwise.
pub fn cargo() -> Command {
    let mut cmd = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(workspace_root());
    cmd
}

/// Cargo's target directory as cargo resolves it (CARGO_TARGET_DIR, config,
/// or `<root>/target`), so built binaries are found wherever they land.
pub fn target_dir() -> Result<PathBuf> {
    let output = cargo()
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .context("running `cargo metadata`")?;
    if !output.status.success() {
        bail!("`cargo metadata` failed: {}", String::from_utf8_lossy(&output.stderr).trim());
    }
    let meta: serde_json::Value = serde_json::from_slice(&output.stdout).context("parsing `cargo metadata` output")?;
    let dir = meta["target_directory"].as_str().context("`cargo metadata` output has no target_directory")?;
    Ok(PathBuf::from(dir))
}

/// `path` relative to the workspace root when it lies inside it: shorter to
/// read and to copy into a shell started there.
pub fn display_path(path: &Path) -> String {
    path.strip_prefix(workspace_root()).unwrap_or(path).display().to_string()
}

/// Renders a command line for messages.
pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        s.push(' ');
        s.push_str(&arg.to_string_lossy());
    }
    s
}

/// Runs `cmd` with inherited stdio, printing it first; errors on failure.
pub fn run_visible(cmd: &mut Command) -> Result<()> {
    let line = describe(cmd);
    println!("+ {line}");
    let status = cmd.status().with_context(|| format!("starting `{line}`"))?;
    check_status(status, &line)
}

/// Runs `cmd` quietly and returns its output; errors if it cannot start.
pub fn output(cmd: &mut Command) -> Result<Output> {
    let line = describe(cmd);
    cmd.output().with_context(|| format!("starting `{line}`"))
}

/// Runs `cmd` quietly; errors (with its stderr) unless it succeeds, and
/// returns its stdout.
pub fn stdout_of(cmd: &mut Command) -> Result<String> {
    let line = describe(cmd);
    let out = output(cmd)?;
    if !out.status.success() {
        bail!("`{line}` failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    String::from_utf8(out.stdout).with_context(|| format!("`{line}` printed non-UTF-8"))
}

pub fn check_status(status: ExitStatus, line: &str) -> Result<()> {
    if status.success() { Ok(()) } else { bail!("`{line}` failed ({status})") }
}

/// Whether we run as root; installing packages and mounting need it.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Finds an executable by name in PATH and in the sbin directories, which a
/// non-root PATH often lacks but which hold several of the tools we need.
pub fn find_executable(name: impl AsRef<OsStr>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let name = name.as_ref();
    let path = env::var_os("PATH").unwrap_or_default();
    let extra = ["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"];
    env::split_paths(&path)
        .chain(extra.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}
