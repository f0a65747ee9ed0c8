//! `GET /health`: whether this instance should be receiving traffic, for a
//! load balancer or the route controller that announces the service
//! prefixes. 200 when everything below holds, 503 with the failing reasons
//! otherwise; the body is JSON either way.
//!
//! - the fast path is attached to every configured interface (or is off by
//!   configuration), its program loaded, its heartbeat fresh;
//! - every configured zone is loaded: the last reload did not fail;
//! - a query for each zone's SOA to each service address is answered
//!   NOERROR with AA set.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket},
    time::Duration,
};

use aya::programs::links::LinkType;
use hickory_proto::{
    op::{Message, Query, ResponseCode},
    rr::{Name, RecordType},
};

use crate::{server::Shared, stats};

/// How long a self-query may take before it counts as unanswered.
const QUERY_TIMEOUT: Duration = Duration::from_millis(500);

/// What the checks need besides the shared state.
#[derive(Clone, Debug)]
pub struct Expected {
    /// The XDP program's ID; `None` when the fast path is off by
    /// configuration.
    pub program_id: Option<u32>,
    pub ifaces: Vec<String>,
    pub heartbeat_timeout: Duration,
    /// The addresses the daemon answers on, as bound.
    pub services: Vec<SocketAddr>,
}

#[derive(Debug, serde::Serialize)]
pub struct Health {
    pub healthy: bool,
    /// `attached`, `off`, or what is wrong with it.
    pub fast_path: String,
    pub zones: Vec<String>,
    /// Every failed check, for the operator.
    pub reasons: Vec<String>,
}

/// Runs every check (blocking: syscalls and self-queries).
pub fn check(shared: &Shared, expected: &Expected) -> Health {
    let mut reasons = Vec::new();
    let fast_path = match expected.program_id {
        None => "off".to_owned(),
        Some(id) => match fast_path_problem(id, expected) {
            None => "attached".to_owned(),
            Some(problem) => {
                reasons.push(format!("fast path: {problem}"));
                problem
            }
        },
    };
    if let Some(problem) = shared.zone_problem.read().unwrap_or_else(|p| p.into_inner()).as_ref() {
        reasons.push(format!("zones: {problem}"));
    }
    let catalog = shared.live.read().unwrap_or_else(|p| p.into_inner()).catalog.clone();
    let zones: Vec<Name> = catalog.zones().map(|zone| zone.origin().clone()).collect();
    for addr in &expected.services {
        for zone in &zones {
            if let Err(problem) = answers_soa(*addr, zone) {
                reasons.push(format!("{addr}: SOA {zone}: {problem}"));
            }
        }
    }
    Health { healthy: reasons.is_empty(), fast_path, zones: zones.iter().map(Name::to_ascii).collect(), reasons }
}

/// Why the fast path is not serving, if it is not.
fn fast_path_problem(program_id: u32, expected: &Expected) -> Option<String> {
    let inst = match stats::read_program(program_id) {
        Ok(inst) => inst,
        Err(err) => return Some(format!("program {program_id} not loaded ({err:#})")),
    };
    if let Some(age) = inst.heartbeat_age_ms
        && Duration::from_millis(age) > expected.heartbeat_timeout
    {
        return Some(format!("heartbeat {age} ms old, past the timeout: the program passes everything up"));
    }
    let attached = match xdp_link_ifindexes(program_id) {
        Ok(ifindexes) => ifindexes,
        Err(err) => return Some(format!("cannot list XDP links: {err:#}")),
    };
    for iface in &expected.ifaces {
        let ifindex = ifindex(iface);
        if ifindex == 0 || !attached.contains(&ifindex) {
            return Some(format!("not attached to {iface}"));
        }
    }
    None
}

/// The interfaces the program's XDP links are attached to; a link detached
/// (`bpftool link detach`, or its interface gone) reports none.
fn xdp_link_ifindexes(program_id: u32) -> anyhow::Result<Vec<u32>> {
    let mut out = Vec::new();
    for link in aya::programs::loaded_links() {
        let link = link?;
        if link.program_id() != program_id || !matches!(link.link_type(), Ok(LinkType::Xdp)) {
            continue;
        }
        if let Some(ifindex) = link_ifindex(link.id())? {
            out.push(ifindex);
        }
    }
    Ok(out)
}

/// The interface of an XDP link, from the kernel's `bpf_link_info` (aya
/// does not expose its per-type part): `None` when detached.
fn link_ifindex(link_id: u32) -> anyhow::Result<Option<u32>> {
    use std::os::fd::{FromRawFd as _, OwnedFd};
    const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
    const BPF_LINK_GET_FD_BY_ID: libc::c_long = 30;
    // bpf_link_info: type, id, prog_id (u32 each), then the per-type union
    // 8-aligned at 16; for XDP its first field is the ifindex.
    const XDP_IFINDEX_AT: usize = 16;
    let mut attr = [0u64; 16];
    attr[0] = u64::from(link_id);
    // SAFETY: BPF_LINK_GET_FD_BY_ID reads `link_id` from a zeroed attr
    // larger than the kernel's union bpf_attr prefix it uses.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, BPF_LINK_GET_FD_BY_ID, attr.as_mut_ptr(), 128u32) };
    if fd < 0 {
        // Gone between listing and opening: not attached.
        return Ok(None);
    }
    // SAFETY: a new fd the kernel just returned, owned here.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let mut info = [0u8; 64];
    let mut attr = [0u64; 16];
    attr[0] = std::os::fd::AsRawFd::as_raw_fd(&fd) as u64 | ((info.len() as u64) << 32);
    attr[1] = info.as_mut_ptr() as u64;
    // SAFETY: BPF_OBJ_GET_INFO_BY_FD writes at most info_len bytes to `info`.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, BPF_OBJ_GET_INFO_BY_FD, attr.as_mut_ptr(), 128u32) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    let ifindex = u32::from_ne_bytes(info[XDP_IFINDEX_AT..XDP_IFINDEX_AT + 4].try_into()?);
    Ok((ifindex != 0).then_some(ifindex))
}

fn ifindex(iface: &str) -> u32 {
    let Ok(name) = std::ffi::CString::new(iface) else { return 0 };
    // SAFETY: a NUL-terminated name.
    unsafe { libc::if_nametoindex(name.as_ptr()) }
}

/// Where a client on this host reaches a service address: a wildcard bind
/// (`0.0.0.0`, `::`) is reached on loopback, which is also where its
/// replies come from.
fn reachable(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

/// Asks `addr` for `zone`'s SOA the way a client would.
fn answers_soa(addr: SocketAddr, zone: &Name) -> Result<(), String> {
    let addr = reachable(addr);
    let bind: SocketAddr = if addr.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().map_err(|e| format!("{e}"))?;
    let socket = UdpSocket::bind(bind).map_err(|e| format!("socket: {e}"))?;
    socket.set_read_timeout(Some(QUERY_TIMEOUT)).map_err(|e| format!("{e}"))?;
    let id = std::process::id() as u16 ^ 0x5aa5;
    let mut query = Message::query();
    query.metadata.id = id;
    query.add_query(Query::query(zone.clone(), RecordType::SOA));
    let bytes = query.to_vec().map_err(|e| format!("encoding: {e}"))?;
    socket.send_to(&bytes, addr).map_err(|e| format!("send: {e}"))?;
    let mut buf = [0u8; 4096];
    loop {
        let (len, from) = socket.recv_from(&mut buf).map_err(|_| format!("no answer within {QUERY_TIMEOUT:?}"))?;
        if from != addr {
            continue;
        }
        let reply = Message::from_vec(&buf[..len]).map_err(|e| format!("unreadable reply: {e}"))?;
        if reply.metadata.id != id {
            continue;
        }
        if reply.metadata.response_code != ResponseCode::NoError || !reply.metadata.authoritative {
            return Err(format!("answered {} (aa={})", reply.metadata.response_code, reply.metadata.authoritative));
        }
        return Ok(());
    }
}

#[cfg(test)]
mod tests {
    use super::reachable;

    #[test]
    fn a_wildcard_service_address_is_probed_on_loopback() {
        assert_eq!(reachable("0.0.0.0:53".parse().expect("addr")), "127.0.0.1:53".parse().expect("addr"));
        assert_eq!(reachable("[::]:53".parse().expect("addr")), "[::1]:53".parse().expect("addr"));
        assert_eq!(reachable("198.18.0.1:53".parse().expect("addr")), "198.18.0.1:53".parse().expect("addr"));
    }
}
