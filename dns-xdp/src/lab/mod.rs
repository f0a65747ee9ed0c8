//! Test and benchmark scaffolding, built only with the `lab` feature: the
//! production binary carries none of it.
//!
//! - [`frame`]: Ethernet/IP/UDP frames to run the program on and to read its
//!   replies;
//! - [`benchprog`]: `dns-xdp bench-prog`, the program's cost per packet;
//! - the helper programs `dns_xdp_pass` (needed on the peer of a veth that
//!   receives XDP_TX replies) and `dns_xdp_bounce` (the benchmark ceiling),
//!   which the eBPF object carries only when built with its `lab` feature;
//! - [`FastPath::test_run`]: the answering program on one crafted frame.

pub mod benchprog;
pub mod frame;

use std::{net::SocketAddr, time::Duration};

use anyhow::{Context as _, anyhow, bail};
use aya::{
    Ebpf,
    maps::{HashMap as BpfHashMap, MapData},
    programs::{Xdp, XdpMode},
};
use dns_xdp_common::{ServiceKey, maps};

use crate::{
    config::AttachMode,
    fastpath::{EBPF_OBJECT, FastPath, service_key, take_map},
};

/// The pass-through helper program in the lab object.
pub const PASS_PROGRAM: &str = "dns_xdp_pass";
/// The bounce helper program in the lab object.
pub const BOUNCE_PROGRAM: &str = "dns_xdp_bounce";

/// XDP action numbers as BPF_PROG_TEST_RUN returns them.
pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;

/// What one BPF_PROG_TEST_RUN gave back.
#[derive(Debug)]
pub struct TestRunOutcome {
    /// The XDP action ([`XDP_DROP`], [`XDP_PASS`], [`XDP_TX`]).
    pub action: u32,
    pub frame: Vec<u8>,
    /// Average time per run as the kernel measured it.
    pub duration: Duration,
}

impl FastPath {
    /// Runs the program on one frame with BPF_PROG_TEST_RUN, `repeat` times,
    /// without any network: for tests, and for the per-packet cost the
    /// benchmark reports.
    pub fn test_run(&mut self, frame: &[u8], repeat: u32) -> anyhow::Result<TestRunOutcome> {
        use aya::programs::{TestRun as _, TestRunOptions};
        let program = self.program()?;
        // Room for the reply to grow into.
        let mut out = vec![0u8; frame.len() + 2048];
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(frame);
        opts.data_out = Some(&mut out);
        opts.repeat = repeat.max(1);
        let result = program.test_run(opts).context("BPF_PROG_TEST_RUN")?;
        out.truncate(result.data_size_out as usize);
        Ok(TestRunOutcome { action: result.return_value, frame: out, duration: result.duration })
    }
}

/// Attaches the pass-through program to `iface` and returns the object that
/// holds the attachment (dropping it detaches). XDP_TX into a veth is only
/// delivered when the peer end runs an XDP program, so the client end of a
/// test or benchmark veth pair needs this one.
pub fn attach_pass_program(iface: &str, mode: AttachMode) -> anyhow::Result<Ebpf> {
    attach_helper_program(PASS_PROGRAM, iface, mode, &[])
}

/// Attaches one of the object's helper programs (pass-through, or the bare
/// bounce that is the benchmarks' ceiling) with `services` registered.
pub fn attach_helper_program(
    name: &str,
    iface: &str,
    mode: AttachMode,
    services: &[SocketAddr],
) -> anyhow::Result<Ebpf> {
    if EBPF_OBJECT.is_empty() {
        bail!("this binary carries no XDP object (built with AYA_BUILD_SKIP)");
    }
    let mut ebpf = Ebpf::load(EBPF_OBJECT).context("loading the XDP object")?;
    let mut service_map: BpfHashMap<MapData, ServiceKey, u8> = take_map(&mut ebpf, maps::SERVICES)?;
    for addr in services {
        service_map.insert(service_key(*addr), 1, 0).with_context(|| format!("registering {addr}"))?;
    }
    let program: &mut Xdp =
        ebpf.program_mut(name).ok_or_else(|| anyhow!("program {name} missing from the object"))?.try_into()?;
    program.load()?;
    let xdp_mode = if mode == AttachMode::Generic { XdpMode::Skb } else { XdpMode::Driver };
    program.attach(iface, xdp_mode).with_context(|| format!("attaching {name} to {iface}"))?;
    Ok(ebpf)
}
