//! Batched UDP I/O: `recvmmsg` takes every query waiting on the socket in
//! one system call and `sendmmsg` sends their answers in one more, which is
//! what a socket server spends most of its time on once answers are cached.

use std::{
    io,
    mem::{MaybeUninit, size_of, zeroed},
    net::{SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket},
    os::fd::AsRawFd,
};

/// Datagrams handled per system call at most.
pub const BATCH: usize = 32;
/// Receive buffer per datagram. A query is far smaller; a longer one arrives
/// cut and is answered FORMERR from its header.
const DATAGRAM_BUF: usize = 4096;

/// Receive and send buffers for one thread.
pub struct Batch {
    bufs: Vec<[u8; DATAGRAM_BUF]>,
    peers: Vec<libc::sockaddr_storage>,
    lens: Vec<usize>,
    /// The datagram was longer than its buffer and arrived cut.
    cut: Vec<bool>,
    count: usize,
}

impl Batch {
    pub fn new() -> Self {
        Self {
            bufs: vec![[0u8; DATAGRAM_BUF]; BATCH],
            // SAFETY: an all-zero sockaddr_storage is a valid (AF_UNSPEC) value.
            peers: vec![unsafe { zeroed() }; BATCH],
            lens: vec![0; BATCH],
            cut: vec![false; BATCH],
            count: 0,
        }
    }

    /// Waits for at least one datagram and takes all that are queued, up
    /// to [`BATCH`].
    pub fn receive(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        self.receive_with(socket, libc::MSG_WAITFORONE)
    }

    /// Like [`Batch::receive`], without waiting: `WouldBlock` when nothing
    /// is queued.
    pub fn receive_queued(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        self.receive_with(socket, libc::MSG_DONTWAIT)
    }

    fn receive_with(&mut self, socket: &UdpSocket, flags: libc::c_int) -> io::Result<usize> {
        let mut iovecs: [MaybeUninit<libc::iovec>; BATCH] = [const { MaybeUninit::uninit() }; BATCH];
        // SAFETY: an all-zero mmsghdr is valid; every pointer set below
        // stays valid for the call.
        let mut headers: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        // Raw pointers taken once: indexing the Vecs again per iteration
        // would re-borrow them whole and invalidate the earlier pointers.
        let bufs = self.bufs.as_mut_ptr();
        let peers = self.peers.as_mut_ptr();
        for i in 0..BATCH {
            // SAFETY: i < BATCH, the length of both Vecs.
            let (buf, peer) = unsafe { (bufs.add(i), peers.add(i)) };
            let iov = iovecs[i].write(libc::iovec { iov_base: buf.cast(), iov_len: DATAGRAM_BUF });
            let hdr = &mut headers[i].msg_hdr;
            hdr.msg_name = peer.cast();
            hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as u32;
            hdr.msg_iov = iov;
            hdr.msg_iovlen = 1;
        }
        // SAFETY: headers, iovecs, buffers and addresses outlive the call.
        let n = unsafe {
            libc::recvmmsg(socket.as_raw_fd(), headers.as_mut_ptr(), BATCH as u32, flags, std::ptr::null_mut())
        };
        if n < 0 {
            self.count = 0;
            return Err(io::Error::last_os_error());
        }
        self.count = n as usize;
        for (i, header) in headers.iter().enumerate().take(self.count) {
            self.lens[i] = (header.msg_len as usize).min(DATAGRAM_BUF);
            self.cut[i] = header.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
        }
        Ok(self.count)
    }

    /// The datagrams of the last [`receive`](Self::receive): index, bytes,
    /// and whether the datagram was cut to fit the buffer.
    pub fn datagrams(&self) -> impl Iterator<Item = (usize, &[u8], bool)> {
        (0..self.count).map(|i| (i, &self.bufs[i][..self.lens[i]], self.cut[i]))
    }

    /// The sender of datagram `i` of the last receive.
    pub fn peer(&self, i: usize) -> Option<SocketAddr> {
        self.peers.get(i).and_then(peer_addr)
    }

    /// Sends `replies` (index of the query they answer, bytes) to the
    /// queries' senders. A reply that cannot be sent is dropped, as a lost
    /// datagram would be; the client retries.
    pub fn send(&self, socket: &UdpSocket, replies: &[(usize, Vec<u8>)]) {
        let mut iovecs: Vec<libc::iovec> = replies
            .iter()
            .map(|(_, bytes)| libc::iovec { iov_base: bytes.as_ptr().cast_mut().cast(), iov_len: bytes.len() })
            .collect();
        // SAFETY: an all-zero mmsghdr is valid; pointers set below outlive
        // the calls.
        let mut headers: Vec<libc::mmsghdr> = (0..replies.len()).map(|_| unsafe { zeroed() }).collect();
        for ((header, iov), (index, _)) in headers.iter_mut().zip(iovecs.iter_mut()).zip(replies) {
            let hdr = &mut header.msg_hdr;
            hdr.msg_name = (&raw const self.peers[*index]).cast_mut().cast();
            hdr.msg_namelen = peer_len(&self.peers[*index]);
            hdr.msg_iov = iov;
            hdr.msg_iovlen = 1;
        }
        let mut sent = 0;
        while sent < headers.len() {
            // SAFETY: as above; the slice from `sent` is in bounds.
            let n = unsafe {
                libc::sendmmsg(socket.as_raw_fd(), headers[sent..].as_mut_ptr(), (headers.len() - sent) as u32, 0)
            };
            if n <= 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // Skip the datagram that failed (e.g. an unroutable peer)
                // and go on with the rest.
                tracing::debug!(peer = ?peer_addr(&self.peers[replies[sent].0]), %err, "UDP send failed");
                sent += 1;
                continue;
            }
            sent += n as usize;
        }
    }
}

impl Default for Batch {
    fn default() -> Self {
        Self::new()
    }
}

fn peer_len(peer: &libc::sockaddr_storage) -> u32 {
    match i32::from(peer.ss_family) {
        libc::AF_INET => size_of::<libc::sockaddr_in>() as u32,
        _ => size_of::<libc::sockaddr_in6>() as u32,
    }
}

/// The peer's address, for logs.
pub fn peer_addr(peer: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(peer.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says this storage holds a sockaddr_in.
            let sin = unsafe { &*(std::ptr::from_ref(peer).cast::<libc::sockaddr_in>()) };
            Some(SocketAddr::V4(SocketAddrV4::new(
                u32::from_be(sin.sin_addr.s_addr).into(),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this storage holds a sockaddr_in6.
            let sin6 = unsafe { &*(std::ptr::from_ref(peer).cast::<libc::sockaddr_in6>()) };
            Some(SocketAddr::V6(SocketAddrV6::new(
                sin6.sin6_addr.s6_addr.into(),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Several datagrams queued before one receive come back in one batch,
    /// and the replies reach each sender.
    #[test]
    fn batches_round_trip_on_loopback() {
        let server = UdpSocket::bind("127.0.0.1:0").expect("bind server");
        let addr = server.local_addr().expect("addr");
        let clients: Vec<UdpSocket> = (0..3).map(|_| UdpSocket::bind("127.0.0.1:0").expect("bind client")).collect();
        for (i, c) in clients.iter().enumerate() {
            c.send_to(&[i as u8; 5], addr).expect("send");
        }
        let mut batch = Batch::new();
        let mut got = 0;
        let mut replies = Vec::new();
        while got < 3 {
            let n = batch.receive(&server).expect("recvmmsg");
            for (i, data, _) in batch.datagrams() {
                assert_eq!(data.len(), 5);
                replies.push((i, vec![data[0] + 100]));
            }
            batch.send(&server, &replies);
            replies.clear();
            got += n;
        }
        for (i, c) in clients.iter().enumerate() {
            c.set_read_timeout(Some(std::time::Duration::from_secs(2))).expect("timeout");
            let mut buf = [0u8; 8];
            let (len, from) = c.recv_from(&mut buf).expect("reply");
            assert_eq!((&buf[..len], from), (&[i as u8 + 100][..], addr));
        }
    }
}
