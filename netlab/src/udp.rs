//! The one UDP query exchange: send a DNS message, wait for the matching
//! reply from the server within a timeout.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// Sends `query` from `socket` to `server` and returns the first datagram
/// from `server`'s address and port, within `timeout`, that `accept` takes
/// (see [`same_id`]); datagrams from anyone else, or refused by `accept`,
/// are skipped, as a resolver would. `Ok(None)` on timeout or an ICMP port
/// unreachable; errors if the send or a receive fails otherwise.
pub fn exchange(
    socket: &UdpSocket,
    server: SocketAddr,
    query: &[u8],
    timeout: Duration,
    mut accept: impl FnMut(&[u8]) -> bool,
) -> io::Result<Option<Vec<u8>>> {
    socket.send_to(query, server)?;
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; 65_535];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        socket.set_read_timeout(Some(left))?;
        match socket.recv_from(&mut buf) {
            Ok((len, from)) if from.ip() == server.ip() && from.port() == server.port() && accept(&buf[..len]) => {
                buf.truncate(len);
                return Ok(Some(buf));
            }
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => return Ok(None),
            // An ICMP port unreachable from an earlier send on this socket.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => return Ok(None),
            Err(e) => return Err(e),
        }
    }
}

/// An `accept` for [`exchange`]: a message carrying `query`'s ID.
pub fn same_id(query: &[u8]) -> impl Fn(&[u8]) -> bool + '_ {
    move |reply| query.len() >= 2 && reply.len() >= 2 && reply[..2] == query[..2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_other_ids_and_times_out() {
        let server = UdpSocket::bind("127.0.0.1:0").expect("server socket");
        let client = UdpSocket::bind("127.0.0.1:0").expect("client socket");
        let addr = server.local_addr().expect("server address");
        let echo = std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            let (n, from) = server.recv_from(&mut buf).expect("query");
            server.send_to(b"\x00\x00other", from).expect("wrong ID");
            server.send_to(&buf[..n], from).expect("echo");
        });
        let query = b"\x12\x34query";
        let reply = exchange(&client, addr, query, Duration::from_secs(2), same_id(query)).expect("exchange");
        assert_eq!(reply.as_deref(), Some(&query[..]));
        echo.join().expect("echo thread");
        let none = exchange(&client, addr, query, Duration::from_millis(50), same_id(query)).expect("exchange");
        assert_eq!(none, None);
    }
}
