//! `dns-xdp bench-prog`: the XDP program's cost per packet, measured with
//! BPF_PROG_TEST_RUN (no network, no generator in the way), beside the bare
//! bounce program that does no DNS work at all.
//!
//! Each measurement is one run per syscall, averaged over many syscalls: the
//! kernel's own `repeat` re-runs the program on the frame the previous run
//! rewrote (a reply, which is then passed), so it would time the wrong path.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::{Context as _, anyhow};
use aya::{
    Ebpf,
    programs::{TestRun as _, TestRunOptions, Xdp},
};
use hickory_proto::{
    op::{Message, Query},
    rr::{Name, RecordType},
    serialize::binary::BinEncodable as _,
};

use crate::{
    authority::Catalog,
    config::{AttachMode, Preload},
    counters::Counters,
    fastpath::{EBPF_OBJECT, FastPath, FastPathOptions},
    lab::{
        BOUNCE_PROGRAM, XDP_PASS, XDP_TX,
        frame::{Endpoints, udp_frame},
    },
    map_writer::MapWriter,
    zone::Zone,
};

#[derive(Debug, serde::Serialize)]
pub struct CaseResult {
    pub case: &'static str,
    pub qname_octets: usize,
    pub action: &'static str,
    pub ns_per_packet: f64,
}

/// A qname of about 200 octets: 12 labels of 15 characters under the zone.
fn long_label_prefix() -> String {
    (0..12).map(|i| format!("l{i:02}abcdefghijkl.")).collect()
}

fn query_frame(name: &str, qtype: RecordType) -> anyhow::Result<(Vec<u8>, usize)> {
    let name = Name::from_ascii(name)?;
    let octets = name.to_bytes()?.len();
    let mut msg = Message::query();
    msg.add_query(Query::query(name, qtype));
    let payload = msg.to_vec()?;
    Ok((udp_frame(&Endpoints::v4(53), &payload, None, 0), octets))
}

fn action_name(action: u32) -> &'static str {
    match action {
        XDP_TX => "TX",
        XDP_PASS => "PASS",
        1 => "DROP",
        _ => "other",
    }
}

pub fn run(runs: u32) -> anyhow::Result<Vec<CaseResult>> {
    let long = long_label_prefix();
    let text = format!(
        "$ORIGIN bench.test.\n$TTL 300\n@ SOA ns hostmaster 1 7200 3600 1209600 300\n@ NS ns\nns A 198.18.0.1\n\
         www A 198.18.0.80\n{} A 198.18.0.81\n",
        long.trim_end_matches('.')
    );
    let origin = Name::from_ascii("bench.test.")?;
    let zone = Zone::parse(&text, &origin, "bench-prog").context("building the benchmark zone")?;
    let mut catalog = Catalog::default();
    catalog.insert(Arc::new(zone));
    let service: SocketAddr = "198.18.0.1:53".parse()?;
    let fast_path = FastPath::load(&FastPathOptions {
        ifaces: Vec::new(),
        mode: AttachMode::Off,
        map_entries: 1024,
        pin_dir: None,
        heartbeat_timeout: Duration::from_secs(3600),
        edns_udp_payload: 1232,
        services: vec![service],
        nsid: None,
        rrl: None,
        cookies: None,
    })?;
    let mut writer = MapWriter::new(fast_path, Arc::new(Counters::default()));
    writer.sync(&catalog, 0, &[(origin, Preload::All)]);

    let cases = [
        ("hit, short qname", "www.bench.test.".to_owned()),
        ("hit, ~200-octet qname", format!("{long}bench.test.")),
        ("miss (passed to the daemon)", "nosuch.bench.test.".to_owned()),
    ];
    let mut results = Vec::new();
    for (case, name) in &cases {
        let (frame, octets) = query_frame(name, RecordType::A)?;
        let (action, ns) = average(runs, || {
            let out = writer.fast_path_mut().test_run(&frame, 1)?;
            Ok((out.action, out.duration))
        })?;
        results.push(CaseResult { case, qname_octets: octets, action: action_name(action), ns_per_packet: ns });
    }

    // The bounce program on the short query: the floor of any XDP answer.
    let mut ebpf = Ebpf::load(EBPF_OBJECT).context("loading the XDP object")?;
    let mut services: aya::maps::HashMap<aya::maps::MapData, dns_xdp_common::ServiceKey, u8> =
        ebpf.take_map(dns_xdp_common::maps::SERVICES).ok_or_else(|| anyhow!("no services map"))?.try_into()?;
    services.insert(crate::fastpath::service_key(service), 1, 0)?;
    let bounce: &mut Xdp = ebpf.program_mut(BOUNCE_PROGRAM).ok_or_else(|| anyhow!("no bounce program"))?.try_into()?;
    bounce.load()?;
    let (frame, octets) = query_frame("www.bench.test.", RecordType::A)?;
    let mut out = vec![0u8; frame.len() + 64];
    let (action, ns) = average(runs, || {
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(&frame);
        opts.data_out = Some(&mut out);
        let r = bounce.test_run(opts).context("BPF_PROG_TEST_RUN of the bounce program")?;
        Ok((r.return_value, r.duration))
    })?;
    results.push(CaseResult {
        case: "bare bounce (no DNS work)",
        qname_octets: octets,
        action: action_name(action),
        ns_per_packet: ns,
    });
    Ok(results)
}

/// Mean of the kernel-measured run time over `runs` single runs, and the
/// action of the last.
fn average(runs: u32, mut run_once: impl FnMut() -> anyhow::Result<(u32, Duration)>) -> anyhow::Result<(u32, f64)> {
    let runs = runs.max(1);
    let mut total = Duration::ZERO;
    let mut action = 0;
    for _ in 0..runs {
        let (a, d) = run_once()?;
        action = a;
        total += d;
    }
    Ok((action, total.as_nanos() as f64 / f64::from(runs)))
}
