//! Loading, attaching and feeding the XDP program.

use std::{
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, anyhow, bail};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap as BpfHashMap, MapData},
    programs::{Xdp, XdpMode},
};
use dns_xdp_common::{AnswerKey, AnswerSlot, Config, DaemonStats, ServiceKey, maps};

use crate::{
    config::{AttachMode, DEFAULT_PIN_DIR},
    table::{AnswerTable, Placement},
};

/// The XDP object built by build.rs from the dns-xdp-ebpf crate.
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/dns-xdp"));

/// Name of the answering program in the object.
pub const PROGRAM: &str = "dns_xdp";

const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

#[derive(Clone, Debug)]
pub struct FastPathOptions {
    /// Interfaces to attach to (none for BPF_PROG_TEST_RUN only).
    pub ifaces: Vec<String>,
    pub mode: AttachMode,
    /// Slots in the answer table; rounded up to a power of two.
    pub map_entries: u32,
    pub pin_dir: Option<PathBuf>,
    pub heartbeat_timeout: Duration,
    pub edns_udp_payload: u16,
    pub services: Vec<SocketAddr>,
    /// The server's identity (NSID option, CH TXT `id.server.`).
    pub nsid: Option<Vec<u8>>,
}

/// The loaded and attached XDP program with the maps the daemon writes.
/// Dropping it disables the fast path, detaches the program and removes the
/// pins.
pub struct FastPath {
    answers: AnswerTable,
    config_map: Array<MapData, Config>,
    config: Config,
    identity: Option<Vec<u8>>,
    _pins: Pins,
    ifaces: Vec<String>,
    // Last: owns the program and its link; dropped after the maps are done.
    _ebpf: Ebpf,
}

/// BPF helpers the XDP program calls that not every kernel has: id, name,
/// the release that added it. A verifier without one rejects the call as
/// `invalid func unknown#ID` (or `unknown func NAME#ID`).
const NEWER_HELPERS: &[(u32, &str, &str)] = &[
    (160, "bpf_ktime_get_coarse_ns", "5.11"),
    (189, "bpf_xdp_load_bytes", "5.18"),
    (190, "bpf_xdp_store_bytes", "5.18"),
];

/// Names the missing helper, and the kernel that has it, if a verifier log
/// shows the program was refused for calling one this kernel lacks.
fn missing_helper(log: &str) -> Option<String> {
    let (_, name, since) = NEWER_HELPERS.iter().find(|(id, name, _)| {
        log.contains(&format!("func unknown#{id}")) || log.contains(&format!("unknown func {name}#{id}"))
    })?;
    Some(format!(
        "this kernel lacks the BPF helper {name}, which the XDP program needs: it arrived in Linux {since}; \
         dns-xdp needs Linux 6.1 or newer"
    ))
}

impl FastPath {
    pub fn load(opts: &FastPathOptions) -> anyhow::Result<Self> {
        if EBPF_OBJECT.is_empty() {
            bail!(
                "this binary was built with AYA_BUILD_SKIP set and carries no XDP program; rebuild without it or run with --xdp-mode off"
            );
        }
        let slots = answer_slots(opts.map_entries)?;
        let mut ebpf = EbpfLoader::new().map_max_entries(maps::ANSWERS, slots).load(EBPF_OBJECT).context(
            "loading the XDP object (is this running as root, with BPF enabled in the kernel? \
                 the answer table is a BPF_F_MMAPABLE array, Linux 5.5 or newer)",
        )?;
        let program: &mut Xdp = ebpf
            .program_mut(PROGRAM)
            .ok_or_else(|| anyhow!("program {PROGRAM} missing from the object"))?
            .try_into()?;
        program.load().map_err(|err| {
            let log = err.to_string();
            let err = anyhow::Error::new(err).context("the kernel verifier rejected the XDP program");
            match missing_helper(&log) {
                Some(hint) => err.context(hint),
                None => err,
            }
        })?;

        let mut pinned = Pins(Vec::new());
        if let Some(dir) = &opts.pin_dir {
            pin_maps(&ebpf, dir, &mut pinned).with_context(|| format!("pinning maps under {}", dir.display()))?;
        }
        let mut services: BpfHashMap<MapData, ServiceKey, u8> = take_map(&mut ebpf, maps::SERVICES)?;
        for addr in &opts.services {
            services.insert(service_key(*addr), 1, 0).with_context(|| format!("registering service address {addr}"))?;
        }
        let answers = match ebpf.take_map(maps::ANSWERS) {
            Some(aya::maps::Map::Array(data)) => AnswerTable::new(data)?,
            _ => bail!("map {} missing from the object, or not an array", maps::ANSWERS),
        };
        let mut config_map: Array<MapData, Config> = take_map(&mut ebpf, maps::CONFIG)?;
        let mut config = Config {
            heartbeat_ns: monotonic_ns(),
            heartbeat_timeout_ns: u64::try_from(opts.heartbeat_timeout.as_nanos()).unwrap_or(u64::MAX),
            edns_udp_payload: opts.edns_udp_payload,
            enabled: 1,
            answer_slot_mask: answers.slot_mask(),
            daemon: DaemonStats::default(),
            ..Config::default()
        };
        if !config.set_nsid(opts.nsid.as_deref()) {
            bail!("the nsid is longer than {} bytes", dns_xdp_common::MAX_NSID_LEN);
        }
        config_map.set(0, config, 0).context("writing the XDP configuration")?;

        Ok(Self {
            answers,
            config_map,
            config,
            identity: opts.nsid.clone(),
            _pins: pinned,
            ifaces: opts.ifaces.clone(),
            _ebpf: ebpf,
        })
    }

    /// Attaches the program to every interface. Call after the map holds
    /// the preloaded answers, so the first packets already find them. On an
    /// error, the attachments already made go with the program.
    pub fn attach(&mut self, mode: AttachMode) -> anyhow::Result<()> {
        let xdp_mode = match mode {
            AttachMode::Native => XdpMode::Driver,
            AttachMode::Generic => XdpMode::Skb,
            AttachMode::Off => return Ok(()),
        };
        let program: &mut Xdp = self
            ._ebpf
            .program_mut(PROGRAM)
            .ok_or_else(|| anyhow!("program {PROGRAM} missing from the object"))?
            .try_into()?;
        for iface in &self.ifaces {
            program.attach(iface, xdp_mode).map_err(|err| {
                let hint = if mode == AttachMode::Native {
                    " (the driver may not support native XDP: try --xdp-mode generic)"
                } else {
                    ""
                };
                anyhow!("attaching XDP to {iface} in {mode:?} mode: {err}{hint}")
            })?;
        }
        Ok(())
    }

    /// Puts an answer in the table, replacing another question's if both
    /// of this one's slots are taken (and `evict` is set).
    pub fn insert(&mut self, value: &AnswerSlot, evict: bool) -> Placement {
        self.answers.insert(value, evict)
    }

    /// Removes a question's answer; false if the table had none.
    pub fn remove(&mut self, key: &AnswerKey) -> bool {
        self.answers.remove(key)
    }

    /// The kernel's ID of the answer table's map.
    pub fn answer_map_id(&self) -> Option<u32> {
        self.answers.map_id()
    }

    /// The server's identity, if it has one.
    pub fn identity(&self) -> Option<&[u8]> {
        self.identity.as_deref()
    }

    /// Slots in the answer table.
    pub fn capacity(&self) -> u32 {
        self.answers.slot_count()
    }

    /// Answers in the table.
    pub fn len(&self) -> usize {
        self.answers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.answers.is_empty()
    }

    /// The kernel's ID of the answering program (what `dns-xdp stats` and
    /// `bpftool prog` show).
    pub fn program_id(&self) -> Option<u32> {
        let program: &Xdp = self._ebpf.program(PROGRAM)?.try_into().ok()?;
        program.info().ok().map(|info| info.id())
    }

    /// Every answer in the table.
    pub fn entries(&self) -> Vec<AnswerSlot> {
        self.answers.entries()
    }

    /// The answer the table holds for a question.
    pub fn get(&self, key: &AnswerKey) -> Option<AnswerSlot> {
        self.answers.get(key)
    }

    /// Refreshes the heartbeat and publishes the daemon's counters.
    pub fn heartbeat(&mut self, stats: &DaemonStats) -> anyhow::Result<()> {
        self.config.heartbeat_ns = monotonic_ns();
        self.config.daemon = *stats;
        self.config_map.set(0, self.config, 0).context("writing the heartbeat")
    }

    /// The loaded answering program (the lab runs it with BPF_PROG_TEST_RUN).
    #[cfg_attr(not(feature = "lab"), expect(dead_code, reason = "only the lab runs the program by hand"))]
    pub(crate) fn program(&self) -> anyhow::Result<&Xdp> {
        Ok(self
            ._ebpf
            .program(PROGRAM)
            .ok_or_else(|| anyhow!("program {PROGRAM} missing from the object"))?
            .try_into()?)
    }

    /// Stops the fast path answering (it passes every query to the daemon).
    pub fn disable(&mut self) -> anyhow::Result<()> {
        self.config.enabled = 0;
        self.config_map.set(0, self.config, 0).context("disabling the fast path")
    }

    /// Lets the fast path answer again (after a sync that succeeded).
    pub fn enable(&mut self) -> anyhow::Result<()> {
        self.config.enabled = 1;
        self.config_map.set(0, self.config, 0).context("enabling the fast path")
    }
}

impl Drop for FastPath {
    fn drop(&mut self) {
        if let Err(err) = self.disable() {
            tracing::warn!("{err:#}");
        }
    }
}

/// Pinned map paths, removed on drop (also when loading fails part way).
struct Pins(Vec<PathBuf>);

impl Drop for Pins {
    fn drop(&mut self) {
        for path in &self.0 {
            if let Err(err) = std::fs::remove_file(path) {
                tracing::warn!(path = %path.display(), %err, "could not remove pin");
            }
        }
        // Only removed when empty: another instance may pin there too.
        if let Some(dir) = self.0.first().and_then(|p| p.parent()) {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Pins the maps users inspect (`bpftool map dump pinned DIR/NAME`).
/// Pins go into `pinned` as they are made, so a failure part way still
/// removes the ones already made.
fn pin_maps(ebpf: &Ebpf, dir: &Path, pinned: &mut Pins) -> anyhow::Result<()> {
    ensure_bpffs(dir)?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for name in [maps::ANSWERS, maps::SERVICES, maps::CONFIG, maps::STATS] {
        let map = ebpf.map(name).ok_or_else(|| anyhow!("map {name} missing from the object"))?;
        let path = dir.join(name);
        // Left by a daemon that was killed, or held by another instance
        // given the same --pin-dir: the new instance takes the name over.
        if path.exists() {
            tracing::warn!(pin = %path.display(), "replacing an existing pin (a stopped daemon's, or another instance's with the same --pin-dir)");
            std::fs::remove_file(&path).with_context(|| format!("removing pin {}", path.display()))?;
        }
        map.pin(&path).with_context(|| format!("pinning {name} at {}", path.display()))?;
        pinned.0.push(path);
    }
    Ok(())
}

pub(crate) fn take_map<T>(ebpf: &mut Ebpf, name: &str) -> anyhow::Result<T>
where
    T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf.take_map(name).ok_or_else(|| anyhow!("map {name} missing from the object"))?;
    T::try_from(map).with_context(|| format!("map {name} has an unexpected type"))
}

/// The answer table's slot count for `--map-entries`: the next power of two
/// (the program finds a slot by masking a hash).
fn answer_slots(map_entries: u32) -> anyhow::Result<u32> {
    let slots = map_entries
        .checked_next_power_of_two()
        .ok_or_else(|| anyhow!("map_entries {map_entries} is too large (at most 2^31)"))?;
    if slots != map_entries {
        tracing::info!(map_entries, slots, "answer table size rounded up to a power of two");
    }
    Ok(slots)
}

pub fn service_key(addr: SocketAddr) -> ServiceKey {
    match addr.ip() {
        IpAddr::V4(ip) => ServiceKey::v4(ip.octets(), addr.port().to_be_bytes()),
        IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
            Some(v4) => ServiceKey::v4(v4.octets(), addr.port().to_be_bytes()),
            None => ServiceKey::v6(ip.octets(), addr.port().to_be_bytes()),
        },
    }
}

/// CLOCK_MONOTONIC_COARSE in nanoseconds: the clock
/// `bpf_ktime_get_coarse_ns` reads.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec as u64)
}

/// Makes sure `dir`'s parent is on a bpf filesystem, mounting one at
/// /sys/fs/bpf when it is missing there (a fresh boot, or `ip netns exec`,
/// which gives the command a new /sys).
fn ensure_bpffs(dir: &Path) -> anyhow::Result<()> {
    let parent = dir.parent().unwrap_or(dir);
    if is_bpffs(parent) {
        return Ok(());
    }
    let default_root = Path::new(DEFAULT_PIN_DIR).parent().unwrap_or(Path::new("/sys/fs/bpf"));
    if parent != default_root {
        bail!("{} is not on a bpf filesystem; mount one there or choose another --pin-dir", parent.display());
    }
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let status = std::process::Command::new("mount")
        .args(["-t", "bpf", "bpf"])
        .arg(parent)
        .status()
        .context("running mount -t bpf")?;
    if !status.success() || !is_bpffs(parent) {
        bail!("could not mount a bpf filesystem at {}", parent.display());
    }
    tracing::info!(path = %parent.display(), "mounted bpffs");
    Ok(())
}

fn is_bpffs(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt as _;
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else { return false };
    // SAFETY: statfs writes into the zeroed struct we own.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid NUL-terminated path and out pointer.
    let rc = unsafe { libc::statfs(c_path.as_ptr(), &mut st) };
    rc == 0 && st.f_type as i64 == BPF_FS_MAGIC
}
#[cfg(test)]
mod missing_helper_tests {
    use super::missing_helper;

    #[test]
    fn names_the_helper_an_older_verifier_does_not_know() {
        let old = "1296: (85) call unknown#189\ninvalid func unknown#189\nprocessed 1300 insns";
        let hint = missing_helper(old).expect("a hint");
        assert!(hint.contains("bpf_xdp_load_bytes") && hint.contains("5.18"), "{hint}");
        assert!(missing_helper("invalid access to map value, value_size=832 off=2088 size=8").is_none());
    }
}
