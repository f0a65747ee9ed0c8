//! The XDP program loaded with no interface, its answer table filled from
//! zone files, run on crafted frames with BPF_PROG_TEST_RUN, and the
//! daemon's answer to the same query computed in-process from the same
//! catalog: what `xdp_prog.rs` and `mutation.rs` compare.

use std::{collections::BTreeMap, net::SocketAddr, sync::Arc, time::Duration};

use dns_xdp_common::cookie::{Received, Secrets};

use dns_xdp::lab::frame::{Endpoints, ParsedFrame, parse_udp_frame};
use dns_xdp::{
    authority::Catalog,
    config::{AttachMode, Preload},
    cookies::Peer,
    counters::Counters,
    fastpath::{FastPath, FastPathOptions},
    map_writer::MapWriter,
    wire::{ReplySettings, Transport, respond, respond_to},
    zone::Zone,
};

/// The reply settings of both sides: the program's EDNS size is loaded from
/// the same value.
pub const SETTINGS: ReplySettings = ReplySettings { edns_udp_payload: 1232, nsid: None, cookies: None };

/// The service addresses the program is loaded with (the frames'
/// `Endpoints::v4(53)` and `Endpoints::v6(53)` destinations).
pub const SERVICES: [&str; 2] = ["198.18.0.1:53", "[2001:db8::1]:53"];

/// A loaded program whose map holds the preloaded answers of the zones.
pub struct Rig {
    pub writer: MapWriter,
    pub catalog: Arc<Catalog>,
    /// The daemon side's settings (`SETTINGS`, with the rig's identity).
    pub settings: ReplySettings,
}

impl Rig {
    pub fn new(zone_files: &[&str]) -> Self {
        Self::with_table(zone_files, 4096, Preload::All)
    }

    pub fn with_table(zone_files: &[&str], map_entries: u32, preload: Preload) -> Self {
        Self::with_identity(zone_files, map_entries, preload, None)
    }

    /// A rig whose server has the identity `nsid` (`--nsid`).
    pub fn with_identity(zone_files: &[&str], map_entries: u32, preload: Preload, nsid: Option<&'static [u8]>) -> Self {
        Self::with_options(zone_files, map_entries, preload, nsid, None)
    }

    /// A rig whose server answers DNS cookies with `cookies`.
    pub fn with_cookies(zone_files: &[&str], cookies: Secrets) -> Self {
        Self::with_options(zone_files, 4096, Preload::All, None, Some(cookies))
    }

    fn with_options(
        zone_files: &[&str],
        map_entries: u32,
        preload: Preload,
        nsid: Option<&'static [u8]>,
        cookies: Option<Secrets>,
    ) -> Self {
        let root = crate::workspace_root();
        let mut catalog = Catalog::default();
        let mut plan = Vec::new();
        for file in zone_files {
            let zone = Zone::load(&root.join(file), None).unwrap_or_else(|e| panic!("loading {file}: {e}"));
            plan.push((zone.origin().clone(), preload));
            catalog.insert(Arc::new(zone));
        }
        let catalog = Arc::new(catalog);
        let fast_path = FastPath::load(&FastPathOptions {
            ifaces: Vec::new(),
            mode: AttachMode::Off,
            map_entries,
            pin_dir: None,
            heartbeat_timeout: Duration::from_secs(60),
            edns_udp_payload: SETTINGS.edns_udp_payload,
            services: SERVICES.iter().map(|s| s.parse::<SocketAddr>().expect("literal")).collect(),
            nsid: nsid.map(<[u8]>::to_vec),
            rrl: None,
            cookies,
        })
        .expect("loading the XDP program (needs root)");
        let mut writer = MapWriter::new(fast_path, Arc::new(Counters::default()));
        let report = writer.sync(&catalog, 0, &plan);
        assert!(preload == Preload::None || (report.preloaded > 0 && report.left_out == 0), "preload: {report:?}");
        Self { writer, catalog, settings: ReplySettings { nsid, cookies, ..SETTINGS } }
    }

    /// Each verdict's counter, by the name `dns-xdp stats` shows.
    pub fn counters(&self) -> BTreeMap<&'static str, u64> {
        let id = self.writer.fast_path().program_id().expect("a loaded program");
        dns_xdp::stats::read_program(id).expect("reading the program's counters").xdp
    }

    /// The program's action and output frame for one input frame.
    pub fn run(&mut self, frame: &[u8]) -> (u32, Vec<u8>) {
        let out = self.writer.fast_path_mut().test_run(frame, 1).expect("BPF_PROG_TEST_RUN");
        (out.action, out.frame)
    }

    /// The daemon's reply bytes for a query it answers.
    pub fn daemon_reply(&self, query: &[u8]) -> Vec<u8> {
        self.daemon_reply_if_any(query).expect("daemon answers")
    }

    /// The daemon's reply bytes, or `None` when it sends nothing (as for a
    /// response or garbage shorter than a header).
    pub fn daemon_reply_if_any(&self, query: &[u8]) -> Option<Vec<u8>> {
        respond(&self.catalog, &self.settings, query, Transport::Udp).map(|reply| reply.bytes)
    }

    /// The daemon's reply to a query from `peer` (what its cookies are
    /// computed over), and its verdict on the query's server cookie.
    pub fn daemon_reply_from(&self, query: &[u8], peer: &Peer) -> (Vec<u8>, Option<Received>) {
        let reply =
            respond_to(&self.catalog, None, &self.settings, query, Transport::Udp, Some(peer)).expect("a reply");
        (reply.bytes, reply.cookie)
    }
}

/// Checks a reply frame: addresses and ports swapped, checksums valid.
pub fn check_reply_frame(ep: &Endpoints, frame: &[u8]) -> Result<ParsedFrame, String> {
    let reply = parse_udp_frame(frame).ok_or("reply frame does not parse")?;
    let checks = [
        ((reply.src_mac, reply.dst_mac) == (ep.dst_mac, ep.src_mac), "MACs not swapped"),
        ((reply.src, reply.dst) == (ep.dst, ep.src), "addresses not swapped"),
        ((reply.sport, reply.dport) == (ep.dport, ep.sport), "ports not swapped"),
        (reply.ip_checksum_ok, "bad IPv4 header checksum"),
        (reply.udp_checksum_ok, "bad UDP checksum"),
        (reply.trailing == 0, "bytes after the IP packet"),
    ];
    match checks.iter().find(|(ok, _)| !ok) {
        Some((_, problem)) => Err(problem.to_string()),
        None => Ok(reply),
    }
}
