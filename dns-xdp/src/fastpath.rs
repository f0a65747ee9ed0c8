//! Loading, attaching and feeding the XDP program.

use std::{
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, anyhow, bail};
use aya::{
    Ebpf, EbpfLoader,
    maps::{
        Array, HashMap as BpfHashMap, Map, MapData,
        lpm_trie::{Key, LpmTrie},
    },
    programs::{
        ProgramInfo, Xdp, XdpMode,
        links::{FdLink, PinnedLink},
        xdp::XdpLink,
    },
};
use dns_xdp_common::{AnswerKey, AnswerSlot, Config, DaemonStats, LAYOUT_VERSION, ServiceKey, maps, rrl};

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
    /// Response rate limiting; `None` when off.
    pub rrl: Option<crate::config::RrlSettings>,
    /// DNS cookie secrets; `None` when cookies are off.
    pub cookies: Option<dns_xdp_common::cookie::Secrets>,
}

/// The maps a restarted daemon adopts (pinned as `PIN_DIR/NAME`); the
/// per-CPU scratch map is the program's alone and never pinned.
const PINNED_MAPS: [&str; 6] = [maps::ANSWERS, maps::SERVICES, maps::CONFIG, maps::STATS, maps::RRL, maps::RRL_EXEMPT];
/// The program's pin in the pin directory.
const PROGRAM_PIN: &str = "program";
/// Prefix of a link's pin: `link_IFACE`, one per interface.
const LINK_PIN_PREFIX: &str = "link_";

/// The loaded and attached XDP program with the maps the daemon writes.
///
/// With a pin directory, the program, its links and its maps are pinned
/// there and outlive the process: a restarted daemon adopts them (see
/// [`FastPath::load`]), and `dns-xdp detach` removes them. Without one
/// (tests, benchmarks) dropping it disables the fast path and everything
/// goes with the process.
pub struct FastPath {
    answers: AnswerTable,
    config_map: Array<MapData, Config>,
    config: Config,
    identity: Option<Vec<u8>>,
    pin_dir: Option<PathBuf>,
    /// What `load` found pinned and kept.
    adoption: Adoption,
    ifaces: Vec<String>,
    /// Links pinned for the interfaces, held so they stay while we run.
    links: Vec<PinnedLink>,
    /// The kernel's ID of the pinned program, when adopted (ours, in
    /// `_ebpf`, is then unloaded); else ours runs.
    adopted: Option<u32>,
    /// The program's rare diagnostic events (aya-log's ring buffer), read
    /// into the daemon's log by [`FastPath::drain_program_log`].
    program_log: Option<aya_log::EbpfLogger<&'static dyn log::Log>>,
    // Last: owns our program and its links when not pinned.
    _ebpf: Ebpf,
}

/// What a daemon started with a pin directory found there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Adoption {
    /// Nothing usable: new maps (and the old pins, if any, replaced).
    Fresh,
    /// The pinned maps matched this layout and were kept (answers, counters
    /// and heartbeat with them); the pinned program differed and is replaced
    /// atomically on its links.
    Maps,
    /// Program, links and maps matched and were all kept as they were.
    All,
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
    /// Loads the program and creates its maps, or, with a pin directory
    /// holding an earlier daemon's, adopts what is pinned there: the maps
    /// when their definitions and [`LAYOUT_VERSION`] match this binary's
    /// (the answer table then keeps serving, its heartbeat left as it was
    /// until the first sync is done), and the program too when the kernel's
    /// tag of it equals ours. Otherwise [`FastPath::attach`] replaces the
    /// program on the pinned links atomically (`bpf_link_update`).
    pub fn load(opts: &FastPathOptions) -> anyhow::Result<Self> {
        if EBPF_OBJECT.is_empty() {
            bail!(
                "this binary was built with AYA_BUILD_SKIP set and carries no XDP program; rebuild without it or run with --xdp-mode off"
            );
        }
        let slots = answer_slots(opts.map_entries)?;
        let load_object = |pins: Option<&Path>| -> anyhow::Result<Ebpf> {
            let mut loader = EbpfLoader::new();
            loader.map_max_entries(maps::ANSWERS, slots);
            let paths: Vec<(&str, PathBuf)> =
                pins.map(|dir| PINNED_MAPS.iter().map(|name| (*name, dir.join(name))).collect()).unwrap_or_default();
            for (name, path) in &paths {
                loader.map_pin_path(name, path.as_path());
            }
            loader.load(EBPF_OBJECT).context(
                "loading the XDP object (is this running as root, with BPF enabled in the kernel? \
                 the answer table is a BPF_F_MMAPABLE array, Linux 5.5 or newer)",
            )
        };
        if let Some(dir) = &opts.pin_dir {
            ensure_bpffs(dir)?;
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        // The object as this binary defines it, with maps of its own: what
        // pinned maps must match to be adopted.
        let mut ebpf = load_object(None)?;
        let mut adoption = Adoption::Fresh;
        if let Some(dir) = &opts.pin_dir {
            match pinned_maps_match(&ebpf, dir) {
                Ok(()) => {
                    drop(ebpf);
                    ebpf = load_object(Some(dir))?;
                    adoption = Adoption::Maps;
                }
                Err(why) => {
                    if dir.join(maps::CONFIG).exists() {
                        tracing::warn!(pin_dir = %dir.display(), "not adopting the pinned maps: {why}; new maps replace them");
                    }
                    pin_maps(&ebpf, dir).with_context(|| format!("pinning maps under {}", dir.display()))?;
                }
            }
        }
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
        // The lab can make a restart replace an identical program, to test
        // the upgrade path without a second build.
        #[cfg(feature = "lab")]
        let keep_pinned_program = std::env::var_os("DNS_XDP_LAB_REPLACE_PROGRAM").is_none();
        #[cfg(not(feature = "lab"))]
        let keep_pinned_program = true;
        let mut adopted = None;
        if let Some(dir) = &opts.pin_dir {
            if adoption == Adoption::Maps
                && keep_pinned_program
                && let Some(pinned) = same_pinned_program(program, dir, &opts.ifaces)
            {
                // The pinned program is the same code as ours: keep it
                // running, and unload ours so only one instance shows.
                program.unload().context("unloading our copy of the adopted program")?;
                adopted = Some(pinned);
                adoption = Adoption::All;
            } else {
                // Ours takes the pin; the earlier program stays on its
                // links until attach updates them.
                let path = dir.join(PROGRAM_PIN);
                if path.exists() {
                    std::fs::remove_file(&path).with_context(|| format!("removing pin {}", path.display()))?;
                }
                program.pin(&path).with_context(|| format!("pinning the program at {}", path.display()))?;
            }
        }

        // The log of the program that runs: ours, or the adopted one's.
        let program_log = match adopted {
            Some(id) => aya_log::EbpfLogger::init_from_id(id),
            None => aya_log::EbpfLogger::init(&mut ebpf),
        }
        .inspect_err(|err| tracing::warn!("the XDP program's diagnostics will not reach this log: {err}"))
        .ok();

        let mut services: BpfHashMap<MapData, ServiceKey, u8> = take_map(&mut ebpf, maps::SERVICES)?;
        let wanted: Vec<ServiceKey> = opts.services.iter().map(|addr| service_key(*addr)).collect();
        let stale: Vec<ServiceKey> = services.keys().filter_map(Result::ok).filter(|k| !wanted.contains(k)).collect();
        for key in stale {
            services.remove(&key).context("removing a service address the earlier daemon had")?;
        }
        for (addr, key) in opts.services.iter().zip(&wanted) {
            services.insert(key, 1, 0).with_context(|| format!("registering service address {addr}"))?;
        }
        let mut exempt: LpmTrie<MapData, [u8; 16], u8> = take_map(&mut ebpf, maps::RRL_EXEMPT)?;
        let wanted: Vec<Key<[u8; 16]>> =
            opts.rrl.iter().flat_map(|rrl| rrl.exempt.iter().map(|net| exempt_key(*net))).collect();
        let stale: Vec<Key<[u8; 16]>> = exempt
            .keys()
            .filter_map(Result::ok)
            .filter(|k| !wanted.iter().any(|w| w.prefix_len() == k.prefix_len() && w.data() == k.data()))
            .collect();
        for key in stale {
            exempt.remove(&key).context("removing an exempt prefix the earlier daemon had")?;
        }
        for key in &wanted {
            exempt.insert(key, 1, 0).context("registering an exempt prefix (--rrl-exempt)")?;
        }
        let answers = match ebpf.take_map(maps::ANSWERS) {
            Some(aya::maps::Map::Array(data)) => AnswerTable::new(data)?,
            _ => bail!("map {} missing from the object, or not an array", maps::ANSWERS),
        };
        let mut config_map: Array<MapData, Config> = take_map(&mut ebpf, maps::CONFIG)?;
        let previous = if adoption == Adoption::Fresh { None } else { config_map.get(&0, 0).ok() };
        let mut config = Config {
            heartbeat_ns: monotonic_ns(),
            heartbeat_timeout_ns: u64::try_from(opts.heartbeat_timeout.as_nanos()).unwrap_or(u64::MAX),
            edns_udp_payload: opts.edns_udp_payload,
            enabled: 1,
            answer_slot_mask: answers.slot_mask(),
            daemon: DaemonStats::default(),
            ..Config::default()
        };
        if let Some(previous) = previous {
            // The table keeps answering for the earlier daemon's heartbeat
            // until the first sync has made it agree with our zones; only
            // then does our own heartbeat start (see MapWriter::sync).
            config.heartbeat_ns = previous.heartbeat_ns;
            config.enabled = previous.enabled;
            config.daemon = previous.daemon;
        }
        config.set_rrl(opts.rrl.as_ref().map(|rrl| rrl.limits));
        config.set_cookies(opts.cookies.as_ref());
        config.wall_offset_ns = wall_offset_ns();
        if !config.set_nsid(opts.nsid.as_deref()) {
            bail!("the nsid is longer than {} bytes", dns_xdp_common::MAX_NSID_LEN);
        }
        config_map.set(0, config, 0).context("writing the XDP configuration")?;
        if let Some(dir) = &opts.pin_dir {
            tracing::info!(
                pin_dir = %dir.display(), adopted = ?adoption, answers = answers.len(),
                "fast path state: {}", match adoption {
                    Adoption::Fresh => "nothing adoptable pinned, new maps",
                    Adoption::Maps => "adopted the pinned maps, the program will be replaced on its links",
                    Adoption::All => "adopted the pinned program, links and maps",
                },
            );
        }

        Ok(Self {
            answers,
            config_map,
            config,
            identity: opts.nsid.clone(),
            pin_dir: opts.pin_dir.clone(),
            adoption,
            ifaces: opts.ifaces.clone(),
            links: Vec::new(),
            adopted,
            program_log,
            _ebpf: ebpf,
        })
    }

    /// Moves the program's diagnostic events (`aya_log_ebpf` records: rare
    /// paths only, never one per packet) into the daemon's log.
    pub fn drain_program_log(&mut self) {
        if let Some(log) = &mut self.program_log {
            log.flush();
        }
    }

    /// What `load` adopted from the pin directory.
    pub fn adoption(&self) -> Adoption {
        self.adoption
    }

    /// Attaches the program to every interface. Call after the map holds
    /// the preloaded answers, so the first packets already find them. With
    /// a pin directory, an interface whose link an earlier daemon pinned
    /// keeps that link: its program is replaced in one step
    /// (`bpf_link_update`, no moment without a program), or kept when
    /// adopted; new links are pinned; links pinned for interfaces no longer
    /// configured are removed. On an error, the attachments already made go
    /// with the program.
    pub fn attach(&mut self, mode: AttachMode) -> anyhow::Result<()> {
        let xdp_mode = match mode {
            AttachMode::Native => XdpMode::Driver,
            AttachMode::Generic => XdpMode::Skb,
            AttachMode::Off => return Ok(()),
        };
        let program_id = self.program_id().unwrap_or(0);
        let adopted_all = self.adoption == Adoption::All;
        for iface in self.ifaces.clone() {
            let pin = self.pin_dir.as_ref().map(|dir| dir.join(format!("{LINK_PIN_PREFIX}{iface}")));
            if let Some(pin) = &pin
                && pin.exists()
            {
                let link =
                    PinnedLink::from_pin(pin).with_context(|| format!("opening the pinned link {}", pin.display()))?;
                if adopted_all {
                    tracing::info!(%iface, program_id, "kept the pinned XDP link and program");
                    self.links.push(link);
                    continue;
                }
                let link = XdpLink::try_from(FdLink::from(link)).context("the pinned link is not an XDP link")?;
                let program = self.program_mut()?;
                match program.attach_to_link(link) {
                    Ok(id) => {
                        // The pin still names the link; hold it by the pin,
                        // not by the program, so that dropping the program
                        // leaves it.
                        drop(program.take_link(id)?);
                        self.links.push(PinnedLink::from_pin(pin)?);
                        tracing::info!(%iface, program_id, "replaced the program on the pinned XDP link");
                        continue;
                    }
                    // A link whose interface went away (ENOLINK), or that
                    // cannot take the program: make a new one.
                    Err(err) => {
                        tracing::warn!(%iface, pin = %pin.display(), "the pinned XDP link cannot be updated ({err}); attaching anew");
                        detach_pinned_link(pin)?;
                    }
                }
            }
            let program = self.program_mut()?;
            let id = program.attach(&iface, xdp_mode).map_err(|err| {
                let hint = if mode == AttachMode::Native {
                    " (the driver may not support native XDP: try --xdp-mode generic)"
                } else {
                    ""
                };
                anyhow!("attaching XDP to {iface} in {mode:?} mode: {err}{hint}")
            })?;
            if let Some(pin) = &pin {
                let link = program.take_link(id)?;
                let link = FdLink::try_from(link).map_err(|err| {
                    anyhow!("{err}: XDP on {iface} is attached by netlink, not a bpf link, and cannot be pinned (Linux 5.9 or newer has bpf links)")
                })?;
                self.links.push(link.pin(pin).with_context(|| format!("pinning the XDP link at {}", pin.display()))?);
            }
        }
        if let Some(dir) = self.pin_dir.clone() {
            for (iface, pin) in pinned_links(&dir) {
                if !self.ifaces.contains(&iface) {
                    tracing::warn!(%iface, pin = %pin.display(), "removing the XDP link an earlier daemon pinned for an interface no longer configured");
                    detach_pinned_link(&pin)?;
                }
            }
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
        self.adopted.or_else(|| self.program().ok()?.info().ok().map(|info| info.id()))
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
        self.config.wall_offset_ns = wall_offset_ns();
        self.config.daemon = *stats;
        self.config_map.set(0, self.config, 0).context("writing the heartbeat")
    }

    /// The loaded answering program (the lab runs it with BPF_PROG_TEST_RUN).
    pub(crate) fn program(&self) -> anyhow::Result<&Xdp> {
        Ok(self
            ._ebpf
            .program(PROGRAM)
            .ok_or_else(|| anyhow!("program {PROGRAM} missing from the object"))?
            .try_into()?)
    }

    fn program_mut(&mut self) -> anyhow::Result<&mut Xdp> {
        Ok(self
            ._ebpf
            .program_mut(PROGRAM)
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
        // Pinned, the program keeps answering after we exit, for as long
        // as our last heartbeat is fresh: the gap a restart needs. After
        // that it passes everything up (`dns-xdp detach` removes it).
        if self.pin_dir.is_none()
            && let Err(err) = self.disable()
        {
            tracing::warn!("{err:#}");
        }
    }
}

/// Whether the maps pinned in `dir` can serve `ebpf`'s program: every one
/// pinned, each with the definition (type, key and value size, entries,
/// flags) of the object's own, and the configuration stamped with our
/// [`LAYOUT_VERSION`]. The reason when not.
fn pinned_maps_match(ebpf: &Ebpf, dir: &Path) -> Result<(), String> {
    for name in PINNED_MAPS {
        let path = dir.join(name);
        if !path.exists() {
            return Err(format!("{} is not pinned", path.display()));
        }
        let pinned = MapData::from_pin(&path).map_err(|e| format!("opening {}: {e}", path.display()))?;
        let pinned = pinned.info().map_err(|e| e.to_string())?;
        let ours = ebpf.map(name).ok_or_else(|| format!("{name} missing from the object"))?;
        let ours = map_info(ours).map_err(|e| e.to_string())?;
        let def =
            |i: &aya::maps::MapInfo| (i.map_type().ok(), i.key_size(), i.value_size(), i.max_entries(), i.map_flags());
        if def(&pinned) != def(&ours) {
            return Err(format!("{name} is defined differently ({:?}, ours {:?})", def(&pinned), def(&ours)));
        }
    }
    let config = MapData::from_pin(dir.join(maps::CONFIG)).map_err(|e| e.to_string())?;
    let config: Array<MapData, Config> =
        Map::from_map_data(config).and_then(Array::try_from).map_err(|e| e.to_string())?;
    let layout = config.get(&0, 0).map_err(|e| e.to_string())?.layout;
    if layout != LAYOUT_VERSION {
        return Err(format!("their layout version is {layout}, ours {LAYOUT_VERSION}"));
    }
    Ok(())
}

fn map_info(map: &Map) -> Result<aya::maps::MapInfo, aya::maps::MapError> {
    let data: &MapData = match map {
        Map::Array(d) | Map::HashMap(d) | Map::PerCpuArray(d) | Map::LpmTrie(d) => d,
        _ => return Err(aya::maps::MapError::InvalidName { name: "unexpected map type".into() }),
    };
    data.info()
}

/// Pins the maps (`bpftool map dump pinned DIR/NAME`), replacing the pins
/// of maps an earlier daemon left that do not fit this binary.
fn pin_maps(ebpf: &Ebpf, dir: &Path) -> anyhow::Result<()> {
    for name in PINNED_MAPS {
        let map = ebpf.map(name).ok_or_else(|| anyhow!("map {name} missing from the object"))?;
        let path = dir.join(name);
        if path.exists() {
            std::fs::remove_file(&path).with_context(|| format!("removing pin {}", path.display()))?;
        }
        map.pin(&path).with_context(|| format!("pinning {name} at {}", path.display()))?;
    }
    Ok(())
}

/// The ID of the pinned program in `dir`, when it is the same code as
/// `ours` (equal kernel tags) and every interface has its pinned link.
fn same_pinned_program(ours: &Xdp, dir: &Path, ifaces: &[String]) -> Option<u32> {
    let pinned = ProgramInfo::from_pin(dir.join(PROGRAM_PIN)).ok()?;
    let our_tag = ours.info().ok()?.tag();
    let linked = ifaces.iter().all(|i| dir.join(format!("{LINK_PIN_PREFIX}{i}")).exists());
    (pinned.tag() == our_tag && linked).then(|| pinned.id())
}

/// Links pinned in `dir`, by interface name.
fn pinned_links(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let iface = name.strip_prefix(LINK_PIN_PREFIX)?.to_owned();
            Some((iface, e.path()))
        })
        .collect()
}

/// Detaches a pinned link now, whoever else holds it (a running daemon's
/// handle included: BPF_LINK_DETACH, Linux 5.9), and removes its pin.
pub(crate) fn detach_pinned_link(pin: &Path) -> anyhow::Result<()> {
    use std::os::{fd::FromRawFd as _, unix::ffi::OsStrExt as _};
    // aya has no call for either command; their attributes are a few words
    // of `union bpf_attr` (include/uapi/linux/bpf.h).
    const BPF_OBJ_GET: libc::c_long = 7;
    const BPF_LINK_DETACH: libc::c_long = 34;
    let path = std::ffi::CString::new(pin.as_os_str().as_bytes()).context("pin path")?;
    let mut attr = [0u64; 8];
    attr[0] = path.as_ptr() as u64; // obj_get.pathname
    // SAFETY: bpf(2) reads the attribute union we own; the path outlives it.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, BPF_OBJ_GET, attr.as_ptr(), std::mem::size_of_val(&attr)) };
    if fd < 0 {
        return Err(anyhow!("opening the pinned link {}: {}", pin.display(), std::io::Error::last_os_error()));
    }
    // SAFETY: a new fd that bpf(2) returned and nobody else owns.
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) };
    let mut attr = [0u64; 8];
    attr[0] = std::os::fd::AsRawFd::as_raw_fd(&fd) as u64; // link_detach.link_fd
    // SAFETY: as above.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, BPF_LINK_DETACH, attr.as_ptr(), std::mem::size_of_val(&attr)) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        // ENOLINK: detached already (its interface went away).
        if err.raw_os_error() != Some(libc::ENOLINK) {
            return Err(anyhow!("detaching the link pinned at {}: {err}", pin.display()));
        }
    }
    std::fs::remove_file(pin).with_context(|| format!("removing {}", pin.display()))
}

/// What `dns-xdp detach` removed.
#[derive(Debug, Default)]
pub struct Detached {
    pub links: Vec<String>,
    pub pins: Vec<PathBuf>,
}

/// Removes everything a daemon pinned under `dir`: detaches its links from
/// their interfaces (even under a running daemon, which keeps answering
/// over its sockets), then removes the program's and the maps' pins, so
/// the kernel frees them once nothing holds them, and the directory.
pub fn detach(dir: &Path) -> anyhow::Result<Detached> {
    let mut done = Detached::default();
    if !dir.exists() {
        return Ok(done);
    }
    for (iface, pin) in pinned_links(dir) {
        detach_pinned_link(&pin)?;
        done.links.push(iface);
    }
    for name in std::iter::once(PROGRAM_PIN).chain(PINNED_MAPS) {
        let pin = dir.join(name);
        if pin.exists() {
            std::fs::remove_file(&pin).with_context(|| format!("removing {}", pin.display()))?;
            done.pins.push(pin);
        }
    }
    // Left when it holds something else: that is not ours to remove.
    if let Err(err) = std::fs::remove_dir(dir) {
        tracing::warn!(dir = %dir.display(), %err, "pins removed, the directory left");
    }
    Ok(done)
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

/// The `DNS_RRL_EXEMPT` key of a prefix (IPv4 as `::ffff:0:0/96`).
fn exempt_key(net: ipnet::IpNet) -> Key<[u8; 16]> {
    match net {
        ipnet::IpNet::V4(v4) => {
            Key::new(rrl::EXEMPT_V4_OFFSET_BITS + u32::from(v4.prefix_len()), rrl::exempt_key_v4(v4.network().octets()))
        }
        ipnet::IpNet::V6(v6) => Key::new(u32::from(v6.prefix_len()), v6.network().octets()),
    }
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

/// CLOCK_REALTIME_COARSE minus CLOCK_MONOTONIC_COARSE (both advance at the
/// same tick), for the program's wall clock (`Config::wall_offset_ns`).
pub fn wall_offset_ns() -> u64 {
    let read = |clock| {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: clock_gettime writes into the timespec we own.
        unsafe { libc::clock_gettime(clock, &mut ts) };
        (ts.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec as u64)
    };
    read(libc::CLOCK_REALTIME_COARSE).wrapping_sub(read(libc::CLOCK_MONOTONIC_COARSE))
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
