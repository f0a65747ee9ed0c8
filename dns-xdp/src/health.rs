//! `GET /health`: whether this instance should be receiving traffic, for a
//! load balancer or the route controller that announces the service
//! prefixes. 200 when everything below holds, 503 with the failing reasons
//! otherwise; the body is JSON either way.
//!
//! - the fast path is attached to every configured interface (or is off by
//!   configuration), its program loaded, its heartbeat fresh;
//! - every configured zone is loaded: the last reload did not fail;
//! - a query for each zone's SOA to each service address is answered
//!   NOERROR with AA set;
//! - the daemon is not draining (`dns-xdp drain`, or a stop signal with
//!   `drain_delay`): it still answers, but wants its routes withdrawn.
//!
//! A zone that can no longer be served (a secondary's zone past its SOA
//! expire) belongs in `Shared::zone_problem`, like a zone that failed to
//! load: it fails health, and the route controller withdraws the PoP.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket},
    time::Duration,
};

use anyhow::{Context as _, anyhow};
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
    /// Where its maps are pinned: read there when the daemon has dropped
    /// the capability to look its program up by ID.
    pub pin_dir: std::path::PathBuf,
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
    if shared.draining.load(std::sync::atomic::Ordering::Relaxed) {
        reasons.push("draining: withdrawing the routes before stopping".to_owned());
    }
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
    let inst = match stats::read_own(program_id, &expected.pin_dir) {
        Ok(inst) => inst,
        Err(err) => return Some(format!("program {program_id} not loaded ({err:#})")),
    };
    if let Some(age) = inst.heartbeat_age_ms
        && Duration::from_millis(age) > expected.heartbeat_timeout
    {
        return Some(format!("heartbeat {age} ms old, past the timeout: the program passes everything up"));
    }
    for iface in &expected.ifaces {
        let ifindex = ifindex(iface);
        if ifindex == 0 {
            return Some(format!("not attached to {iface}: the interface is gone"));
        }
        match xdp_program_on(ifindex) {
            Ok(Some(id)) if id == program_id => {}
            Ok(Some(id)) => return Some(format!("not attached to {iface}: program {id} is attached there instead")),
            Ok(None) => return Some(format!("not attached to {iface}")),
            Err(err) => return Some(format!("cannot read the XDP attachment of {iface}: {err:#}")),
        }
    }
    None
}

/// The ID of the XDP program attached to `iface`, if any (in any mode).
pub fn attached_program(iface: &str) -> Option<u32> {
    let ifindex = ifindex(iface);
    if ifindex == 0 {
        return None;
    }
    xdp_program_on(ifindex).ok().flatten()
}

/// The ID of the XDP program attached to interface `ifindex`, from the
/// kernel's link attributes (RTM_GETLINK, IFLA_XDP, IFLA_XDP_PROG_ID): any
/// process may ask, so this works after the daemon dropped its
/// capabilities, where listing BPF links by ID needs CAP_SYS_ADMIN.
fn xdp_program_on(ifindex: u32) -> anyhow::Result<Option<u32>> {
    use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
    const RTM_GETLINK: u16 = 18;
    const NLM_F_REQUEST: u16 = 1;
    const NLMSG_ERROR: u16 = 2;
    const IFLA_XDP: u16 = 43;
    const IFLA_XDP_PROG_ID: u16 = 4;
    const NLA_TYPE_MASK: u16 = 0x3fff;
    const NLMSG_HDR: usize = 16;
    const IFINFOMSG: usize = 16;
    // SAFETY: a new socket, owned below.
    let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_ROUTE) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("opening a netlink socket");
    }
    // SAFETY: the kernel just returned it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let timeout = libc::timeval { tv_sec: 1, tv_usec: 0 };
    // SAFETY: a timeval of the size given.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const timeout).cast(),
            size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    // nlmsghdr (len, type, flags, seq, pid), then ifinfomsg (family, pad,
    // type, index, flags, change): all host order.
    let mut request = [0u8; NLMSG_HDR + IFINFOMSG];
    let request_len = request.len() as u32;
    request[0..4].copy_from_slice(&request_len.to_ne_bytes());
    request[4..6].copy_from_slice(&RTM_GETLINK.to_ne_bytes());
    request[6..8].copy_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    request[8..12].copy_from_slice(&1u32.to_ne_bytes());
    request[NLMSG_HDR + 4..NLMSG_HDR + 8].copy_from_slice(&(ifindex as i32).to_ne_bytes());
    // SAFETY: sends the request buffer.
    if unsafe { libc::send(fd.as_raw_fd(), request.as_ptr().cast(), request.len(), 0) } < 0 {
        return Err(std::io::Error::last_os_error()).context("asking the kernel for the link");
    }
    let mut reply = vec![0u8; 64 * 1024];
    // SAFETY: receives into the buffer, at most its length.
    let len = unsafe { libc::recv(fd.as_raw_fd(), reply.as_mut_ptr().cast(), reply.len(), 0) };
    if len < 0 {
        return Err(std::io::Error::last_os_error()).context("reading the link from the kernel");
    }
    let reply = &reply[..len as usize];
    let u16_at = |at: usize| reply.get(at..at + 2).map(|b| u16::from_ne_bytes([b[0], b[1]]));
    let msg_type = u16_at(4).ok_or_else(|| anyhow!("short netlink reply"))?;
    if msg_type == NLMSG_ERROR {
        let errno = reply.get(NLMSG_HDR..NLMSG_HDR + 4).map_or(0, |b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
        return Err(std::io::Error::from_raw_os_error(-errno)).context("the kernel refused RTM_GETLINK");
    }
    let msg_len = reply.get(0..4).map_or(0, |b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]])) as usize;
    let attrs = reply.get(NLMSG_HDR + IFINFOMSG..msg_len.min(reply.len())).unwrap_or_default();
    let Some(xdp) = find_attr(attrs, IFLA_XDP, NLA_TYPE_MASK) else { return Ok(None) };
    let id = find_attr(xdp, IFLA_XDP_PROG_ID, NLA_TYPE_MASK)
        .and_then(|v| v.get(0..4))
        .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
    Ok(id.filter(|id| *id != 0))
}

/// The payload of attribute `kind` in a run of netlink attributes (each a
/// 4-byte length and type, then the payload, padded to 4 bytes).
fn find_attr(mut attrs: &[u8], kind: u16, type_mask: u16) -> Option<&[u8]> {
    while attrs.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([attrs[0], attrs[1]]));
        let attr_type = u16::from_ne_bytes([attrs[2], attrs[3]]) & type_mask;
        if len < 4 || len > attrs.len() {
            return None;
        }
        if attr_type == kind {
            return Some(&attrs[4..len]);
        }
        attrs = attrs.get(len.next_multiple_of(4)..).unwrap_or_default();
    }
    None
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
    answers_soa_within(addr, zone, QUERY_TIMEOUT)
}

/// [`answers_soa`] with its own timeout (the route controller's check).
pub fn answers_soa_within(addr: SocketAddr, zone: &Name, timeout: Duration) -> Result<(), String> {
    let addr = reachable(addr);
    let bind: SocketAddr = if addr.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().map_err(|e| format!("{e}"))?;
    let socket = UdpSocket::bind(bind).map_err(|e| format!("socket: {e}"))?;
    socket.set_read_timeout(Some(timeout)).map_err(|e| format!("{e}"))?;
    let id = std::process::id() as u16 ^ 0x5aa5;
    let mut query = Message::query();
    query.metadata.id = id;
    query.add_query(Query::query(zone.clone(), RecordType::SOA));
    let bytes = query.to_vec().map_err(|e| format!("encoding: {e}"))?;
    socket.send_to(&bytes, addr).map_err(|e| format!("send: {e}"))?;
    let mut buf = [0u8; 4096];
    loop {
        let (len, from) = socket.recv_from(&mut buf).map_err(|_| format!("no answer within {timeout:?}"))?;
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
