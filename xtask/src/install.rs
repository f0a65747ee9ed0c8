//! `cargo xtask install`: the release binary, the systemd unit (its paths
//! rewritten for the prefix), the sysusers entry for the service user, a
//! sample configuration with the example zone, and the README.
//!
//! `--destdir` stages everything under another root (for packaging): the
//! files name their final paths, not the staging ones. An existing
//! configuration or zone is never overwritten.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::{build, setup, util};

/// The paths the unit in `dist/` names; replaced by the prefix's.
const UNIT_BINDIR: &str = "/usr/local/bin";
const UNIT_SYSCONFDIR: &str = "/usr/local/etc";
const UNIT_DOCDIR: &str = "/usr/local/share/doc";

pub struct Options {
    pub prefix: PathBuf,
    pub destdir: Option<PathBuf>,
    pub sysconfdir: Option<PathBuf>,
    /// A binary to install instead of building one.
    pub bin: Option<PathBuf>,
}

/// Where the files go, as final paths (before DESTDIR).
struct Layout {
    bindir: PathBuf,
    sysconfdir: PathBuf,
    unitdir: PathBuf,
    sysusersdir: PathBuf,
    docdir: PathBuf,
}

impl Layout {
    fn new(prefix: &Path, sysconfdir: Option<&Path>) -> Self {
        // The FHS: /usr's configuration is in /etc, every other prefix's in
        // PREFIX/etc. systemd and systemd-sysusers also search
        // /usr/local/lib.
        let sysconfdir = sysconfdir
            .map(Path::to_path_buf)
            .unwrap_or_else(|| if prefix == Path::new("/usr") { PathBuf::from("/etc") } else { prefix.join("etc") });
        Self {
            bindir: prefix.join("bin"),
            sysconfdir,
            unitdir: prefix.join("lib/systemd/system"),
            sysusersdir: prefix.join("lib/sysusers.d"),
            docdir: prefix.join("share/doc"),
        }
    }
}

pub fn install(opts: &Options) -> Result<()> {
    if !opts.prefix.is_absolute() {
        bail!("--prefix must be an absolute path, not {}", opts.prefix.display());
    }
    let bin = match &opts.bin {
        Some(bin) => bin.clone(),
        None => {
            setup::ensure(setup::Needs::BUILD)?;
            build::build_daemon(build::Profile::Release, build::Features::Product)?
        }
    };
    let layout = Layout::new(&opts.prefix, opts.sysconfdir.as_deref());
    let staged = |path: &Path| match &opts.destdir {
        Some(root) => root.join(path.strip_prefix("/").unwrap_or(path)),
        None => path.to_path_buf(),
    };
    let dist = util::workspace_root().join("dist");

    let binary = layout.bindir.join("dns-xdp");
    copy(&bin, &staged(&binary), 0o755)?;

    let unit = std::fs::read_to_string(dist.join("dns-xdp.service")).context("reading dist/dns-xdp.service")?;
    let unit = unit
        .replace(&format!("{UNIT_BINDIR}/"), &format!("{}/", layout.bindir.display()))
        .replace(&format!("{UNIT_SYSCONFDIR}/"), &format!("{}/", layout.sysconfdir.display()))
        .replace(&format!("{UNIT_DOCDIR}/"), &format!("{}/", layout.docdir.display()));
    write(&staged(&layout.unitdir.join("dns-xdp.service")), &unit, 0o644)?;
    copy(&dist.join("dns-xdp.sysusers"), &staged(&layout.sysusersdir.join("dns-xdp.conf")), 0o644)?;
    copy(&util::workspace_root().join("README.md"), &staged(&layout.docdir.join("dns-xdp/README.md")), 0o644)?;

    let confdir = layout.sysconfdir.join("dns-xdp");
    for (from, to) in [
        (dist.join("dns-xdp.toml"), confdir.join("dns-xdp.toml")),
        (util::workspace_root().join("zones/example.test.zone"), confdir.join("zones/example.test.zone")),
    ] {
        let target = staged(&to);
        if target.exists() {
            println!("kept {} (exists)", target.display());
        } else {
            copy(&from, &target, 0o644)?;
        }
    }
    println!(
        "installed under {}{}\nnext: edit {}, then\n  systemd-sysusers && systemctl daemon-reload && systemctl enable --now dns-xdp",
        opts.destdir.as_ref().map(|d| format!("{} (staged) ", d.display())).unwrap_or_default(),
        opts.prefix.display(),
        confdir.join("dns-xdp.toml").display(),
    );
    Ok(())
}

fn copy(from: &Path, to: &Path, mode: u32) -> Result<()> {
    let bytes = std::fs::read(from).with_context(|| format!("reading {}", from.display()))?;
    write_bytes(to, &bytes, mode)
}

fn write(to: &Path, text: &str, mode: u32) -> Result<()> {
    write_bytes(to, text.as_bytes(), mode)
}

/// Writes through a temporary file and a rename, so a running binary being
/// replaced keeps its old inode and a reader never sees half a file.
fn write_bytes(to: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = to.parent().with_context(|| format!("{} has no directory", to.display()))?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!(".{}.tmp", to.file_name().and_then(|n| n.to_str()).unwrap_or("install")));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
    std::fs::rename(&tmp, to).with_context(|| format!("installing {}", to.display()))?;
    println!("installed {}", to.display());
    Ok(())
}
