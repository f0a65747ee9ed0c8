//! A distribution's stock kernel, fetched with apt and unpacked (never
//! installed) under the target directory, so reruns skip the download.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};

use crate::host;

/// The kernel series the stage knows how to fetch.
#[derive(Clone, Copy)]
pub enum Series {
    /// Debian 12 (bookworm)'s stock kernel: `linux-image-6.1.0-N-amd64`.
    Debian61,
}

impl Series {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "debian-6.1" => Ok(Series::Debian61),
            other => bail!("unknown kernel {other:?}: known are debian-6.1 (and host, this machine's own)"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Series::Debian61 => "debian-6.1",
        }
    }

    /// The ABI name (`uname -r`) of the newest package apt knows of, e.g.
    /// `6.1.0-57-amd64`. Only the generic flavour: `-rt` and `-cloud` are
    /// not what a PoP host runs, and `-cloud` lacks drivers.
    fn newest(self) -> Result<String> {
        let out = host::output(Command::new("apt-cache").args([
            "search",
            "--names-only",
            r"^linux-image-6\.1\.0-[0-9]+-amd64$",
        ]))?;
        let mut best: Option<(u32, String)> = None;
        for line in out.lines() {
            let Some(pkg) = line.split_whitespace().next() else { continue };
            let Some(abi) = pkg.strip_prefix("linux-image-") else { continue };
            let Some(n) = abi.strip_prefix("6.1.0-").and_then(|r| r.strip_suffix("-amd64")) else { continue };
            let Ok(n) = n.parse::<u32>() else { continue };
            if best.as_ref().is_none_or(|(b, _)| n > *b) {
                best = Some((n, abi.to_string()));
            }
        }
        best.map(|(_, abi)| abi).context(
            "apt knows no linux-image-6.1.0-*-amd64 package: this stage needs Debian 12 (bookworm) apt sources \
             (main), or pass --kernel-version for one already cached under target/vmtest/kernels",
        )
    }
}

/// An unpacked kernel package.
pub struct Kernel {
    /// `uname -r` of the kernel, e.g. `6.1.0-57-amd64`.
    pub release: String,
    /// The package's version, e.g. `6.1.192-3`: the upstream stable release.
    pub package_version: String,
    pub vmlinuz: PathBuf,
    /// `<unpacked>/lib/modules/<release>`.
    pub modules: PathBuf,
}

/// Returns the kernel of `series` (the newest apt offers, or `release` when
/// given), downloading and unpacking it into `cache` unless it is there.
pub fn fetch(series: Series, release: Option<&str>, cache: &Path) -> Result<Kernel> {
    let release = match release {
        Some(r) => r.to_string(),
        None => series.newest()?,
    };
    let dir = cache.join(&release);
    let done = dir.join(".unpacked");
    if !done.is_file() {
        println!("vm: fetching linux-image-{release} (apt-get download, unpacked with dpkg-deb, not installed)");
        let work = cache.join(format!(".download-{release}"));
        let _ = fs::remove_dir_all(&work);
        fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
        let pkg = format!("linux-image-{release}");
        let status = Command::new("apt-get")
            .args(["download", "-q", &pkg])
            .current_dir(&work)
            .status()
            .context("running apt-get download")?;
        if !status.success() {
            let _ = fs::remove_dir_all(&work);
        }
        ensure!(
            status.success(),
            "the kernel package {pkg} cannot be had (apt-get download failed: {status}); \
             is it a real Debian package name and is a Debian 12 apt source configured?"
        );
        let deb = fs::read_dir(&work)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|x| x == "deb"))
            .with_context(|| format!("apt-get download left no .deb in {}", work.display()))?;
        let version = host::output(Command::new("dpkg-deb").args(["-f"]).arg(&deb).arg("Version"))?;
        let unpacked = work.join("root");
        host::run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked))?;
        let _ = fs::remove_dir_all(&dir);
        fs::rename(&unpacked, &dir).with_context(|| format!("moving the unpacked kernel to {}", dir.display()))?;
        fs::write(dir.join(".package-version"), version.trim())?;
        fs::write(&done, "")?;
        let _ = fs::remove_dir_all(&work);
    }
    let kernel = Kernel {
        vmlinuz: dir.join("boot").join(format!("vmlinuz-{release}")),
        modules: dir.join("lib/modules").join(&release),
        package_version: fs::read_to_string(dir.join(".package-version")).unwrap_or_default().trim().to_string(),
        release,
    };
    ensure!(kernel.vmlinuz.is_file(), "{} is missing from the unpacked package", kernel.vmlinuz.display());
    ensure!(kernel.modules.is_dir(), "{} is missing from the unpacked package", kernel.modules.display());
    Ok(kernel)
}

impl Kernel {
    /// The `.ko` files for `wanted` and everything they depend on, in an
    /// order `insmod` accepts (dependencies first). Debian's package ships
    /// no modules.dep (depmod runs at install), so the dependencies are read
    /// from each module's `.modinfo` section (`depends=a,b`).
    pub fn modules_for(&self, wanted: &[&str]) -> Result<Vec<PathBuf>> {
        let mut by_name = BTreeMap::new();
        index(&self.modules.join("kernel"), &mut by_name)?;
        let builtin = fs::read_to_string(self.modules.join("modules.builtin")).unwrap_or_default();
        let builtin: BTreeSet<String> = builtin
            .lines()
            .filter_map(|l| l.rsplit('/').next())
            .map(|f| normalize(f.trim_end_matches(".ko")))
            .collect();

        let mut order = Vec::new();
        let mut seen = BTreeSet::new();
        for name in wanted {
            visit(&normalize(name), &by_name, &builtin, &mut seen, &mut order)?;
        }
        Ok(order)
    }
}

fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

fn index(dir: &Path, out: &mut BTreeMap<String, PathBuf>) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            index(&path, out)?;
        } else if let Some(stem) = path.file_name().and_then(|f| f.to_str()).and_then(|f| f.strip_suffix(".ko")) {
            out.insert(normalize(stem), path);
        }
    }
    Ok(())
}

fn visit(
    name: &str,
    by_name: &BTreeMap<String, PathBuf>,
    builtin: &BTreeSet<String>,
    seen: &mut BTreeSet<String>,
    order: &mut Vec<PathBuf>,
) -> Result<()> {
    if !seen.insert(name.to_string()) {
        return Ok(());
    }
    let Some(path) = by_name.get(name) else {
        ensure!(builtin.contains(name), "module {name} is neither built in nor in the package");
        return Ok(());
    };
    let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    for dep in depends(&bytes) {
        visit(&normalize(&dep), by_name, builtin, seen, order)?;
    }
    order.push(path.clone());
    Ok(())
}

/// The `depends=` entry of a module's `.modinfo` strings (NUL-separated).
fn depends(ko: &[u8]) -> Vec<String> {
    const KEY: &[u8] = b"\0depends=";
    let Some(at) = ko.windows(KEY.len()).position(|w| w == KEY) else {
        return Vec::new();
    };
    let rest = &ko[at + KEY.len()..];
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    String::from_utf8_lossy(&rest[..end]).split(',').filter(|s| !s.is_empty()).map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::depends;

    #[test]
    fn reads_depends_from_modinfo() {
        let ko = b"\x7fELF...\0license=GPL\0depends=9pnet,fscache,netfs\0retpoline=Y\0";
        assert_eq!(depends(ko), ["9pnet", "fscache", "netfs"]);
        assert!(depends(b"\0depends=\0").is_empty());
        assert!(depends(b"no modinfo").is_empty());
    }
}
