//! The counters `dns-xdp stats` shows: the XDP program's, one per verdict
//! (`DNS_STATS`), and the daemon's, which it publishes in `DNS_CONFIG`.
//! Read from the kernel by program ID, so they work from any network or
//! mount namespace and without pins.

use std::{
    collections::{BTreeMap, HashMap},
    path::Path,
};

use anyhow::{Context as _, anyhow, bail};
use aya::{
    maps::{Array, Map, MapData, PerCpuArray},
    programs::ProgramInfo,
};
use dns_xdp_common::{Config, DaemonStats, Verdict, maps};

use crate::fastpath::{PROGRAM, monotonic_ns};

/// Counters of one running instance, as `dns-xdp stats` shows them.
#[derive(Debug, serde::Serialize)]
pub struct InstanceStats {
    pub program_id: u32,
    /// Each verdict's count over all CPUs, by [`Verdict::name`].
    pub xdp: BTreeMap<&'static str, u64>,
    pub daemon: BTreeMap<&'static str, u64>,
    /// XDP answers (`tx_answer`) by CPU, indexed by CPU number.
    pub answers_per_cpu: Vec<u64>,
    /// Bytes of kernel memory per DNS_ANSWERS slot and the number of slots.
    pub answer_entry_bytes: u32,
    pub answer_capacity: u32,
    /// Milliseconds since the daemon's last heartbeat (the program stops
    /// answering once this passes the heartbeat timeout); `None` without
    /// the config map.
    pub heartbeat_age_ms: Option<u64>,
}

/// Finds every loaded dns-xdp program and reads its maps.
pub fn read_stats() -> anyhow::Result<Vec<InstanceStats>> {
    let mut out = Vec::new();
    for info in aya::programs::loaded_programs() {
        let info = info.context("listing loaded BPF programs")?;
        if info.name_as_str() != Some(PROGRAM) {
            continue;
        }
        if let Some(stats) = read_instance(&info)? {
            out.push(stats);
        }
    }
    Ok(out)
}

/// The counters of the loaded program with this ID.
pub fn read_program(program_id: u32) -> anyhow::Result<InstanceStats> {
    for info in aya::programs::loaded_programs() {
        let info = info.context("listing loaded BPF programs")?;
        if info.id() == program_id {
            return read_instance(&info)?.ok_or_else(|| anyhow!("program {program_id} has no maps"));
        }
    }
    bail!("no loaded BPF program has ID {program_id}")
}

/// The counters of this daemon's own program (`program_id`): by ID when
/// the process may look programs up (CAP_SYS_ADMIN), else through the maps
/// it pinned under `pin_dir`, which need no capability (a daemon that
/// dropped its capabilities after attaching).
pub fn read_own(program_id: u32, pin_dir: &Path) -> anyhow::Result<InstanceStats> {
    let by_id = match read_program(program_id) {
        Ok(inst) => return Ok(inst),
        Err(err) => err,
    };
    let mut by_name = HashMap::new();
    for name in [maps::STATS, maps::CONFIG, maps::ANSWERS] {
        let path = pin_dir.join(name);
        let data =
            MapData::from_pin(&path).with_context(|| format!("opening {} (and by ID: {by_id:#})", path.display()))?;
        let info = data.info()?;
        by_name.insert(name.to_owned(), (data, info.value_size(), info.max_entries()));
    }
    from_maps(program_id, by_name)
}

fn read_instance(info: &ProgramInfo) -> anyhow::Result<Option<InstanceStats>> {
    let Some(map_ids) = info.map_ids().context("listing the program's maps")? else { return Ok(None) };
    let mut by_name = HashMap::new();
    for id in map_ids {
        let data = MapData::from_id(id).with_context(|| format!("opening map {id}"))?;
        let info = data.info()?;
        if let Some(name) = info.name_as_str() {
            by_name.insert(name.to_owned(), (data, info.value_size(), info.max_entries()));
        }
    }
    from_maps(info.id(), by_name).map(Some)
}

/// Reads an instance's counters from its maps, by name: (map, value size,
/// max entries).
fn from_maps(program_id: u32, mut by_name: HashMap<String, (MapData, u32, u32)>) -> anyhow::Result<InstanceStats> {
    let mut xdp = BTreeMap::new();
    let mut answers_per_cpu = Vec::new();
    if let Some((data, ..)) = by_name.remove(maps::STATS) {
        let (totals, answers) = xdp_counters(data)?;
        xdp.extend(Verdict::NAMES.into_iter().zip(totals));
        answers_per_cpu = answers;
    }
    let mut daemon = BTreeMap::new();
    let mut heartbeat_age_ms = None;
    if let Some((data, ..)) = by_name.remove(maps::CONFIG) {
        let map: Array<MapData, Config> = Map::from_map_data(data)?.try_into()?;
        let config = map.get(&0, 0).context("reading DNS_CONFIG")?;
        daemon.extend(daemon_stats_fields(&config.daemon));
        // The heartbeat is on the clock the program reads (coarse
        // monotonic), which is the same for every network namespace.
        heartbeat_age_ms = Some(monotonic_ns().saturating_sub(config.heartbeat_ns) / 1_000_000);
    }
    // An array's slots are its values, back to back.
    let (answer_entry_bytes, answer_capacity) =
        by_name.get(maps::ANSWERS).map(|(_, v, max)| (*v, *max)).unwrap_or_default();
    Ok(InstanceStats {
        program_id,
        xdp,
        daemon,
        answers_per_cpu,
        answer_entry_bytes,
        answer_capacity,
        heartbeat_age_ms,
    })
}

/// Each verdict's count summed over the CPUs, indexed by the verdict; and
/// the answers' counts by CPU.
fn xdp_counters(data: MapData) -> anyhow::Result<([u64; Verdict::COUNT], Vec<u64>)> {
    let map: PerCpuArray<MapData, u64> = Map::from_map_data(data)?
        .try_into()
        .context("DNS_STATS is not an array of u64 (a program from another version of dns-xdp?)")?;
    let mut total = [0u64; Verdict::COUNT];
    let mut answers = Vec::new();
    for (index, slot) in (0u32..).zip(total.iter_mut()) {
        let per_cpu = map.get(&index, 0).with_context(|| format!("reading DNS_STATS[{index}]"))?;
        *slot = per_cpu.iter().sum();
        if index == Verdict::TxAnswer as u32 {
            answers = per_cpu.iter().copied().collect();
        }
    }
    Ok((total, answers))
}

fn daemon_stats_fields(s: &DaemonStats) -> [(&'static str, u64); 15] {
    [
        ("udp_queries", s.udp_queries),
        ("tcp_queries", s.tcp_queries),
        ("responses", s.responses),
        ("truncated", s.truncated),
        ("dropped", s.dropped),
        ("map_entries", s.map_entries),
        ("map_inserts", s.map_inserts),
        ("map_no_room", s.map_no_room),
        ("tcp_refused", s.tcp_refused),
        ("udp_shed", s.udp_shed),
        ("rrl_dropped", s.rrl_dropped),
        ("rrl_slipped", s.rrl_slipped),
        ("cookie_valid", s.cookie_valid),
        ("cookie_invalid", s.cookie_invalid),
        ("cookie_client_only", s.cookie_client_only),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names `dns-xdp stats` and `--json` have always shown, in the
    /// counter order of the XdpStats struct they replace: user interface.
    #[test]
    fn verdict_names_are_the_published_ones() {
        assert_eq!(
            Verdict::NAMES,
            [
                "tx_answer",
                "pass_not_dns",
                "pass_unusual_headers",
                "pass_fragment",
                "pass_header",
                "pass_qname",
                "pass_qclass",
                "pass_edns",
                "pass_miss",
                "pass_collision",
                "pass_too_big",
                "pass_no_room",
                "pass_stale",
                "pass_long_query",
                "drop_malformed",
                "drop_internal",
                "drop_torn",
                "drop_rrl",
                "tx_rrl_slip",
                "tx_cookie",
                "tx_cookie_client_only",
                "pass_cookie",
            ]
        );
    }
}
