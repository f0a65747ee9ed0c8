//! A minimal DNS-over-UDP probe: is the server up, has it loaded the zone
//! (does it answer the last name in the file)? Sent from a socket created in
//! the client namespace, never from the host's.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use netlab::NetNs;

use super::procs;

pub const TYPE_A: u16 = 1;

/// What the probe needs from a reply.
#[derive(Debug, PartialEq, Eq)]
pub struct Reply {
    pub rcode: u8,
    pub answers: u16,
}

fn encode_query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>> {
    let mut msg = Vec::with_capacity(64);
    msg.extend_from_slice(&id.to_be_bytes());
    // Flags 0 (no RD: authoritative servers), one question.
    msg.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        let len = u8::try_from(label.len()).ok().filter(|&l| (1..64).contains(&l));
        let len = len.with_context(|| format!("bad label in {name:?}"))?;
        msg.push(len);
        msg.extend_from_slice(label.as_bytes());
    }
    msg.push(0);
    msg.extend_from_slice(&qtype.to_be_bytes());
    msg.extend_from_slice(&1u16.to_be_bytes());
    Ok(msg)
}

/// A reply to query `id` (QR set), or `None` for anything else.
fn decode_reply(id: u16, buf: &[u8]) -> Option<Reply> {
    if buf.len() < 12 || buf[0..2] != id.to_be_bytes() || buf[2] & 0x80 == 0 {
        return None;
    }
    Some(Reply { rcode: buf[3] & 0x0f, answers: u16::from_be_bytes([buf[6], buf[7]]) })
}

/// A UDP socket bound in `ns`'s network namespace.
pub fn socket_in(ns: &NetNs) -> Result<UdpSocket> {
    ns.enter(|| UdpSocket::bind("0.0.0.0:0"))?.context("binding a probe socket")
}

/// Asks `name` until a reply satisfies `accept` or `timeout` passes; returns
/// the time it took. Each attempt waits at most 50 ms for its reply, and
/// calls `alive` first, so a server that died is reported as such.
pub fn wait_for_reply(
    sock: &UdpSocket,
    server: SocketAddr,
    (name, qtype): (&str, u16),
    timeout: Duration,
    accept: impl Fn(&Reply) -> bool,
    mut alive: impl FnMut() -> Result<()>,
) -> Result<Duration> {
    let start = Instant::now();
    let mut id: u16 = 0x4242;
    let mut last = None;
    loop {
        procs::check_interrupted()?;
        alive()?;
        id = id.wrapping_add(1);
        let query = encode_query(id, name, qtype)?;
        // A send can fail while the server's address is not up yet: retried.
        let answer = netlab::udp::exchange(sock, server, &query, Duration::from_millis(50), |buf| {
            decode_reply(id, buf).is_some()
        });
        if let Ok(Some(buf)) = answer
            && let Some(reply) = decode_reply(id, &buf)
        {
            if accept(&reply) {
                return Ok(start.elapsed());
            }
            last = Some(reply);
        }
        if start.elapsed() > timeout {
            bail!("no acceptable reply from {server} for {name} within {timeout:?} (last reply: {last:?})");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Accepts a NOERROR reply with at least one answer: the name is loaded.
pub fn answered(reply: &Reply) -> bool {
    reply.rcode == 0 && reply.answers > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_and_decodes() {
        let q = encode_query(7, "host9.bench.test.", TYPE_A).unwrap();
        assert_eq!(&q[12..18], b"\x05host9");
        assert_eq!(q.len(), 12 + 18 + 4);
        let mut r = q.clone();
        r[2] |= 0x84;
        r[7] = 1;
        assert_eq!(decode_reply(7, &r), Some(Reply { rcode: 0, answers: 1 }));
        assert_eq!(decode_reply(8, &r), None);
        assert_eq!(decode_reply(7, &q), None, "a query is not a reply");
    }
}
