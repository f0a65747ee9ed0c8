//! The guest's initramfs: a static busybox, the modules needed to reach
//! the host's root over 9p, and an init that mounts it and runs the tests.
//!
//! Debian's 6.1 builds virtio, virtio-pci, 9p and veth as modules, so they
//! are loaded here, before the root exists; everything after runs from the
//! host's own filesystem (read-only), where this checkout already is.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The 9p tag qemu exports the host's `/` under.
pub const ROOT_TAG: &str = "hostroot";

/// Where the init copies the guest script, inside the new root.
const GUEST_SCRIPT: &str = "/run/vmtest.sh";

/// Marker lines the guest prints for the host to read.
pub const MARK: &str = "@@vmtest";

/// Modules the guest needs: the 9p root over virtio-pci, veth for the
/// end-to-end test's pair. Dependencies are added by the caller.
pub const MODULES: &[&str] = &["virtio_pci", "9pnet_virtio", "9p", "veth"];

/// Writes the initramfs (an uncompressed newc cpio) to `out`.
pub fn build(out: &Path, busybox: &Path, modules: &[PathBuf], guest_script: &str) -> Result<()> {
    let mut cpio = Cpio::default();
    for dir in ["bin", "dev", "proc", "sys", "newroot", "modules"] {
        cpio.dir(dir);
    }
    // The kernel opens /dev/console for init's stdio before init runs.
    cpio.node("dev/console", 0o020600, 5, 1);
    cpio.file("bin/busybox", 0o755, &fs::read(busybox).with_context(|| format!("reading {}", busybox.display()))?);
    let mut insmods = String::new();
    for ko in modules {
        let name = ko.file_name().context("module path without a name")?.to_string_lossy().into_owned();
        cpio.file(
            &format!("modules/{name}"),
            0o644,
            &fs::read(ko).with_context(|| format!("reading {}", ko.display()))?,
        );
        insmods.push_str(&format!("$B insmod /modules/{name} || fail \"insmod {name}\"\n"));
    }
    cpio.file("init", 0o755, init_script(&insmods).as_bytes());
    cpio.file("vmtest.sh", 0o755, guest_script.as_bytes());
    fs::write(out, cpio.finish()).with_context(|| format!("writing {}", out.display()))
}

fn init_script(insmods: &str) -> String {
    format!(
        r#"#!/bin/busybox sh
B=/bin/busybox
fail() {{
    echo "{MARK} init-failed: $*"
    echo b > /proc/sysrq-trigger
    $B sleep 60
}}
$B mount -t devtmpfs dev /dev
$B mount -t proc proc /proc
$B mount -t sysfs sys /sys
{insmods}
# msize: 128 KiB is the largest every 6.x 9p client accepts over virtio.
$B mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=131072,cache=loose {ROOT_TAG} /newroot \
    || fail "mounting the host root over 9p"
R=/newroot
$B mount -t proc proc $R/proc || fail "proc"
$B mount -t sysfs sys $R/sys || fail "sysfs"
$B mount -t devtmpfs dev $R/dev || fail "devtmpfs"
$B mount -t bpf bpf $R/sys/fs/bpf || fail "bpffs"
# No tmpfs over /tmp: the checkout or its target/ may be under the host's
# /tmp (a CI clone often is). Scratch space goes to /run/tmp (TMPDIR).
$B mount -t tmpfs -o mode=755 run $R/run || fail "tmpfs /run"
$B mkdir -m 1777 $R/run/tmp || fail "/run/tmp"
$B mkdir -p $R/dev/shm && $B mount -t tmpfs shm $R/dev/shm
$B cp /vmtest.sh $R{GUEST_SCRIPT} || fail "copying the guest script"
exec $B chroot $R /bin/bash {GUEST_SCRIPT}
fail "chroot"
"#
    )
}

/// A newc ("070701") cpio archive, the format the kernel unpacks.
#[derive(Default)]
struct Cpio {
    buf: Vec<u8>,
    ino: u32,
}

impl Cpio {
    fn dir(&mut self, name: &str) {
        self.entry(name, 0o040755, 0, 0, &[]);
    }

    fn file(&mut self, name: &str, perm: u32, data: &[u8]) {
        self.entry(name, 0o100000 | perm, 0, 0, data);
    }

    fn node(&mut self, name: &str, mode: u32, major: u32, minor: u32) {
        self.entry(name, mode, major, minor, &[]);
    }

    fn entry(&mut self, name: &str, mode: u32, rmajor: u32, rminor: u32, data: &[u8]) {
        self.ino += 1;
        let nlink = if mode & 0o170000 == 0o040000 { 2 } else { 1 };
        let fields =
            [self.ino, mode, 0, 0, nlink, 0, data.len() as u32, 0, 0, rmajor, rminor, name.len() as u32 + 1, 0];
        self.buf.extend_from_slice(b"070701");
        for f in fields {
            self.buf.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(0);
        self.pad();
        self.buf.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, 0, 0, &[]);
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::Cpio;

    #[test]
    fn newc_entries_are_aligned_and_end_with_the_trailer() {
        let mut c = Cpio::default();
        c.file("init", 0o755, b"#!/bin/sh\n");
        let out = c.finish();
        assert!(out.starts_with(b"070701"));
        assert_eq!(out.len() % 4, 0);
        assert!(out.windows(10).any(|w| w == b"TRAILER!!!"));
        // Header (110 bytes) + "init\0" padded to 116, then 10 bytes of data padded to 12.
        assert_eq!(&out[116..126], b"#!/bin/sh\n");
    }
}
