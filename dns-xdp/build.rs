//! Builds the XDP program (crate dns-xdp-ebpf) with the nightly toolchain and
//! bpf-linker, so that `cargo build` alone gives a runnable daemon.
//!
//! `AYA_BUILD_SKIP=1` skips the eBPF build (for `cargo check`/`clippy` on
//! hosts without bpf-linker) and embeds an empty object instead; the daemon
//! then refuses to load it with a message that says so.

use std::{env, fs, path::PathBuf};

use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").ok_or_else(|| anyhow!("OUT_DIR not set"))?);
    let skip = env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    if skip {
        // aya_build returns early and leaves nothing behind: write the stub
        // include_bytes_aligned! needs.
        fs::write(out_dir.join("dns-xdp"), b"").context("writing the stub eBPF object")?;
    }
    let ebpf_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dns-xdp-ebpf");
    let ebpf_dir = ebpf_dir.to_str().ok_or_else(|| anyhow!("non UTF-8 path {}", ebpf_dir.display()))?;
    // The lab's helper programs go into the object only with the lab.
    let features: &[&str] = if env::var_os("CARGO_FEATURE_LAB").is_some() { &["lab"] } else { &[] };
    aya_build::build_ebpf(
        [Package { name: "dns-xdp-ebpf", root_dir: ebpf_dir, features, ..Default::default() }],
        Toolchain::default(),
    )
    .context("building the XDP program (run `cargo xtask setup` if bpf-linker or rust-src is missing)")
}
