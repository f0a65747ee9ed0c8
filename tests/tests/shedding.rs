//! Miss floods (root, a namespace of its own): a flood of random-subdomain
//! queries, each a miss for the fast path, is more than the daemon's one UDP
//! worker can answer. The daemon must drop and count the excess (shed)
//! instead of letting the kernel queue it, hits must keep being answered by
//! XDP throughout, and once the flood ends a miss is answered again.
//! Functional, not a timing target: the throughput ratio is a benchmark.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use dns_xdp_tests::daemon::{Daemon, EXAMPLE_ZONE, PUBLISH_WAIT, counter};
use dns_xdp_tests::wire::{header, wire_name};
use dns_xdp_tests::{NetNs, NetNsExt as _, udp_exchange, udp_socket, workspace_root};
use hickory_proto::op::{Message, ResponseCode};

const LISTEN: &str = "127.0.0.1:5300";
/// Bounds of the flood: whichever comes first.
const FLOOD_PACKETS: u64 = 2_000_000;
const FLOOD_TIME: Duration = Duration::from_secs(4);
/// The hit client asks for this long while the flood runs.
const HIT_TIME: Duration = Duration::from_secs(3);

fn query(id: u16, name: &str) -> Vec<u8> {
    let mut q = header(id, 0, [1, 0, 0, 0]);
    q.extend_from_slice(&wire_name(name));
    q.extend_from_slice(&[0, 1, 0, 1]); // A, IN
    q
}

/// Sends random-subdomain queries from `sockets` until told to stop or the
/// bounds are reached; returns how many were sent.
fn flood(sockets: Vec<UdpSocket>, server: SocketAddr, stop: &AtomicBool) -> u64 {
    let started = Instant::now();
    let mut sent = 0u64;
    // A different name each time (xorshift), as a random-subdomain attack.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    while sent < FLOOD_PACKETS && started.elapsed() < FLOOD_TIME && !stop.load(Relaxed) {
        for socket in &sockets {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let q = query(state as u16, &format!("r{state:016x}.example.test."));
            if socket.send_to(&q, server).is_ok() {
                sent += 1;
            }
        }
    }
    sent
}

#[test]
fn a_miss_flood_is_shed_and_counted_while_xdp_keeps_answering_hits() {
    let ns = NetNs::with_role("shed");
    let pin_dir = format!("/sys/fs/bpf/dns-xdp-shed-{}", std::process::id());
    let zone = format!("example.test={}", workspace_root().join(EXAMPLE_ZONE).display());
    let daemon = Daemon::start(
        &ns,
        &[
            "--zone",
            &zone,
            "--listen",
            LISTEN,
            "--iface",
            "lo",
            "--xdp-mode",
            "generic",
            "--pin-dir",
            &pin_dir,
            "--udp-threads",
            "1",
            "--udp-queue",
            "32",
        ],
    );
    assert!(daemon.program_id.is_some(), "no XDP program:\n{}", daemon.child.stderr());
    let server: SocketAddr = LISTEN.parse().expect("literal");
    let hits = udp_socket(&ns, "127.0.0.1:0".parse().expect("literal"));
    let ask_hit = |id: u16| {
        // Only this query's reply: a late one to an earlier query is skipped.
        let ours = |reply: &[u8]| reply.get(..2) == Some(&id.to_be_bytes()[..]);
        let q = query(id, "www.example.test.");
        let reply =
            netlab::udp::exchange(&hits, server, &q, Duration::from_millis(500), ours).expect("UDP exchange")?;
        let msg = Message::from_vec(&reply).ok()?;
        (msg.metadata.id == id && msg.metadata.response_code == ResponseCode::NoError && !msg.answers.is_empty())
            .then_some(())
    };
    assert!(ask_hit(1).is_some(), "www.example.test. not answered before the flood");
    std::thread::sleep(PUBLISH_WAIT);
    let (xdp_before, daemon_before) = daemon.stats();

    let stop = Arc::new(AtomicBool::new(false));
    let flooders: Vec<UdpSocket> = (0..4).map(|_| udp_socket(&ns, "127.0.0.1:0".parse().expect("literal"))).collect();
    let flooding = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || flood(flooders, server, &stop))
    };
    // Let the flood build up, then ask for a hit every 10 ms.
    std::thread::sleep(Duration::from_millis(300));
    let (mut asked, mut answered) = (0u32, 0u32);
    let started = Instant::now();
    while started.elapsed() < HIT_TIME {
        asked += 1;
        if ask_hit(asked as u16 + 1).is_some() {
            answered += 1;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Relaxed);
    let sent = flooding.join().expect("flood thread");
    std::thread::sleep(PUBLISH_WAIT);
    let (xdp_after, daemon_after) = daemon.stats();
    let delta = |after: &serde_json::Value, before: &serde_json::Value, name: &str| {
        counter(after, name) - counter(before, name)
    };
    let received = delta(&daemon_after, &daemon_before, "udp_queries");
    let shed = delta(&daemon_after, &daemon_before, "udp_shed");
    let responses = delta(&daemon_after, &daemon_before, "responses");
    let tx = delta(&xdp_after, &xdp_before, "tx_answer");
    let missed = delta(&xdp_after, &xdp_before, "pass_miss");
    // Passed up by XDP but never read by the daemon: the kernel's queue
    // overflowed while the receiver was off the CPU.
    let kernel_drops = missed.saturating_sub(received);
    eprintln!(
        "flood: {sent} sent, {missed} passed by XDP as misses; daemon received {received}, shed {shed}, \
         answered {responses}; the kernel dropped {kernel_drops}; hits {answered}/{asked}, XDP answers {tx}"
    );
    assert!(sent > 10_000, "the flood sent only {sent} queries");
    assert!(shed > 0, "nothing shed: the daemon received {received} and answered {responses} of {sent}");
    assert!(shed <= received, "shed {shed} of {received} received");
    // The daemon drains its socket: most of what XDP passed up was read
    // (and answered or shed), not left to overflow the kernel's queue.
    assert!(kernel_drops < received, "the kernel dropped {kernel_drops}, the daemon read only {received}");
    assert!(answered * 100 >= asked * 95, "only {answered} of {asked} hits answered during the flood");
    assert!(tx >= u64::from(answered), "{answered} hits answered, but XDP answered only {tx}");
    assert!(daemon.log_count("UDP workers are behind") >= 1, "shedding not logged:\n{}", daemon.child.stderr());
    // The flood is over: a miss is answered again, by the daemon.
    let socket = udp_socket(&ns, "127.0.0.1:0".parse().expect("literal"));
    let reply = udp_exchange(&socket, server, &query(0x7777, "after-the-flood.example.test."), Duration::from_secs(1))
        .expect("a miss after the flood gets an answer");
    let msg = Message::from_vec(&reply).expect("reply parses");
    assert_eq!(msg.metadata.response_code, ResponseCode::NXDomain, "{msg}");
}
