//! Reloads (SIGHUP) as an operator does them: a zone whose file breaks keeps
//! its old data serving (as NSD and Knot do), good ones are served at once, and once the daemon logs "reload
//! done" no answer from the old data, from XDP or the daemon, ever follows.

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use dns_xdp_tests::{
    SRV_V4, Topology, TopologyExt as _,
    daemon::{Daemon, EXAMPLE_ZONE, PUBLISH_WAIT, ask, client_pass, counter, query},
    log_field, require_root, udp_exchange, udp_socket,
};
use hickory_proto::{
    op::Message,
    rr::{RData, RecordType},
};

/// A zone file in a temp dir whose `changing` A record we rewrite.
struct ZoneFile {
    dir: tempfile::TempDir,
    path: PathBuf,
}

impl ZoneFile {
    fn new(tag: &str) -> Self {
        let dir = dns_xdp_tests::temp_dir(&format!("reload-{tag}"));
        let path = dir.path().join("reload.test.zone");
        Self { dir, path }
    }

    fn text(serial: u32, last_octet: u32) -> String {
        format!(
            "$ORIGIN reload.test.\n$TTL 300\n@ SOA ns hostmaster {serial} 7200 3600 1209600 300\n@ NS ns\nns A 198.18.0.1\n\
             steady A 198.18.30.1\nchanging A 198.18.20.{last_octet}\n"
        )
    }

    /// Replaces the file atomically, as an operator's tooling should.
    fn write(&self, text: &str) {
        let tmp = self.dir.path().join("zone.tmp");
        std::fs::write(&tmp, text).expect("write zone");
        std::fs::rename(&tmp, &self.path).expect("rename zone");
    }

    fn path(&self) -> &str {
        self.path.to_str().expect("utf-8")
    }
}

fn last_octet(msg: &Message) -> Option<u8> {
    msg.answers.iter().find_map(|r| match &r.data {
        RData::A(a) => Some(a.0.octets()[3]),
        _ => None,
    })
}

fn reload_and_wait(daemon: &mut Daemon, needle: &str, count: usize) {
    daemon.child.signal(libc::SIGHUP).expect("signalling the process");
    let deadline = Instant::now() + Duration::from_secs(5);
    while daemon.log_count(needle) < count {
        assert!(Instant::now() < deadline, "no '{needle}' #{count} in the log:\n{}", daemon.child.stderr());
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn broken_zone_keeps_old_data_and_good_zone_is_served_at_once() {
    require_root();
    let zone = ZoneFile::new("broken");
    zone.write(&ZoneFile::text(1, 1));
    let topo = Topology::new();
    let _pass = client_pass(&topo);
    let mut daemon = Daemon::on_veth(&topo, zone.path(), &[]);
    let server = SocketAddr::from((SRV_V4, 53));
    assert_eq!(last_octet(&ask(topo.cli(), server, "changing.reload.test.", RecordType::A, 1)), Some(1));

    zone.write("$ORIGIN reload.test.\n@ SOA ns hostmaster 2 1 1 1 1\nchanging A 198.18.20.999\n");
    reload_and_wait(&mut daemon, "still serving its previous copy", 1);
    let log = daemon.child.stderr();
    assert!(log.contains(&format!("{}:3", zone.path())), "the failure names file and line:\n{log}");
    for id in 2..5 {
        assert_eq!(
            last_octet(&ask(topo.cli(), server, "changing.reload.test.", RecordType::A, id)),
            Some(1),
            "old data served"
        );
    }

    zone.write(&ZoneFile::text(3, 3));
    let started = Instant::now();
    // The broken reload was done too (with the zone kept): this is the second.
    reload_and_wait(&mut daemon, "reload done", 2);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "reload took {took:?}");
    std::thread::sleep(PUBLISH_WAIT);
    let (before, _) = daemon.stats();
    assert_eq!(last_octet(&ask(topo.cli(), server, "changing.reload.test.", RecordType::A, 9)), Some(3));
    std::thread::sleep(PUBLISH_WAIT);
    let (after, _) = daemon.stats();
    assert_eq!(counter(&after, "tx_answer"), counter(&before, "tx_answer") + 1, "new data served by XDP");
}

/// 100 changes of one record while a client queries it without pause: every
/// answer to a query sent after "reload done" N carries change N or later.
#[test]
fn no_stale_answer_across_100_changes_under_load() {
    require_root();
    const CHANGES: u32 = 100;
    let zone = ZoneFile::new("load");
    zone.write(&ZoneFile::text(1, 0));
    let topo = Topology::new();
    let _pass = client_pass(&topo);
    let mut daemon = Daemon::on_veth(&topo, zone.path(), &[]);
    let server = SocketAddr::from((SRV_V4, 53));
    std::thread::sleep(PUBLISH_WAIT);
    let (xdp_before, _) = daemon.stats();

    // (send time, last octet) of every answer.
    let answers: Arc<Mutex<Vec<(Instant, u8)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let socket = udp_socket(topo.cli(), "0.0.0.0:0".parse().expect("addr"));
    let load = {
        let (answers, stop) = (Arc::clone(&answers), Arc::clone(&stop));
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut id: u16 = 0;
            // Bounded in count and time.
            for _ in 0..2_000_000 {
                if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                    break;
                }
                id = id.wrapping_add(1);
                let sent = Instant::now();
                let Some(reply) = udp_exchange(
                    &socket,
                    server,
                    &query("changing.reload.test.", RecordType::A, id),
                    Duration::from_millis(200),
                ) else {
                    continue;
                };
                let Ok(msg) = Message::from_vec(&reply) else { continue };
                if msg.metadata.id != id {
                    continue;
                }
                if let Some(octet) = last_octet(&msg) {
                    answers.lock().expect("lock").push((sent, octet));
                }
            }
        })
    };

    let mut done_at = Vec::new();
    for change in 1..=CHANGES {
        zone.write(&ZoneFile::text(change + 1, change));
        reload_and_wait(&mut daemon, "reload done", change as usize);
        done_at.push((Instant::now(), change));
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Relaxed);
    load.join().expect("load thread");

    let answers = answers.lock().expect("lock");
    let mut stale = Vec::new();
    for &(sent, octet) in answers.iter() {
        // The newest change reported done before this query was sent.
        if let Some(&(_, change)) = done_at.iter().rev().find(|(at, _)| *at <= sent)
            && u32::from(octet) < change
        {
            stale.push(format!("answer {octet} after change {change} was done"));
        }
    }
    assert!(answers.len() > 1000, "only {} answers under load", answers.len());
    assert!(stale.is_empty(), "{} stale answers of {}:\n{}", stale.len(), answers.len(), stale.join("\n"));
    std::thread::sleep(PUBLISH_WAIT);
    let (xdp_after, _) = daemon.stats();
    let from_xdp = counter(&xdp_after, "tx_answer") - counter(&xdp_before, "tx_answer");
    assert!(from_xdp > answers.len() as u64 / 2, "only {from_xdp} of {} answers came from XDP", answers.len());
}

#[test]
fn dnsperf_loses_no_query_across_reloads() {
    require_root();
    let zone = ZoneFile::new("dnsperf");
    zone.write(&ZoneFile::text(1, 1));
    let topo = Topology::new();
    let _pass = client_pass(&topo);
    let mut daemon = Daemon::on_veth(&topo, zone.path(), &[]);
    let queries = zone.dir.path().join("queries");
    std::fs::write(&queries, "changing.reload.test A\nsteady.reload.test A\nnosuch.reload.test A\nreload.test SOA\n")
        .expect("queries");
    // Rate-limited and time-bounded load, from the client namespace.
    let mut perf = dns_xdp_tests::spawn(
        {
            let mut cmd = topo.cli().command("dnsperf");
            cmd.args(["-s", "198.18.0.1", "-d", queries.to_str().expect("utf-8"), "-l", "4", "-Q", "3000", "-c", "4"]);
            cmd
        },
        "dnsperf",
    );
    std::thread::sleep(Duration::from_millis(500));
    for change in 2..=6 {
        zone.write(&ZoneFile::text(change, change));
        reload_and_wait(&mut daemon, "reload done", (change - 1) as usize);
        std::thread::sleep(Duration::from_millis(400));
    }
    let status =
        perf.wait_timeout(Duration::from_secs(15)).expect("waiting for the process").expect("dnsperf finishes");
    let out = perf.stdout();
    assert!(status.success(), "dnsperf failed:\n{out}\n{}", perf.stderr());
    let lost = out
        .lines()
        .find(|l| l.trim_start().starts_with("Queries lost:"))
        .unwrap_or_else(|| panic!("no loss line in:\n{out}"));
    assert!(lost.split_whitespace().nth(2) == Some("0"), "queries lost across reloads: {lost}\n{out}");
    let completed = out.lines().find(|l| l.trim_start().starts_with("Queries completed:")).unwrap_or_default();
    assert!(!completed.contains(" 0 ("), "nothing completed: {out}");
}

/// Must-show 2 for a file: a reload after one record changed reads only
/// that zone's file, looks up a fraction of the table again and rewrites
/// only the entries of the changed RRsets; a reload with nothing changed
/// reads and writes nothing.
#[test]
fn a_reload_of_one_changed_record_rewrites_only_its_entries() {
    require_root();
    const HOSTS: u32 = 30;
    let text = |serial, octet| {
        let mut text = ZoneFile::text(serial, octet);
        for host in 1..=HOSTS {
            text.push_str(&format!("h{host} A 198.18.31.{host}\n"));
        }
        text
    };
    let zone = ZoneFile::new("targeted");
    zone.write(&text(1, 1));
    let topo = Topology::new();
    let _pass = client_pass(&topo);
    let mut daemon = Daemon::on_veth(&topo, zone.path(), &["--zone", EXAMPLE_ZONE]);
    let server = SocketAddr::from((SRV_V4, 53));
    assert_eq!(last_octet(&ask(topo.cli(), server, "changing.reload.test.", RecordType::A, 1)), Some(1));
    std::thread::sleep(PUBLISH_WAIT);
    let (_, before) = daemon.stats();
    let held = counter(&before, "map_entries");
    assert!(held > u64::from(HOSTS) * 2, "only {held} entries preloaded");

    zone.write(&text(2, 2));
    reload_and_wait(&mut daemon, "reload done", 1);
    let log = daemon.child.stderr();
    let done = log.lines().rfind(|l| l.contains("reload done")).expect("reload done");
    // changing A and the SOA, each with and without DO.
    assert_eq!(log_field(done, "table_writes"), Some(4), "{done}");
    assert_eq!(log_field(done, "zone_files_read"), Some(1), "only the changed file is read: {done}");
    let checked = log_field(done, "checked").expect(done);
    assert!(checked < held / 4, "{checked} of {held} entries looked up again: {done}");
    std::thread::sleep(PUBLISH_WAIT);
    let (xdp0, _) = daemon.stats();
    assert_eq!(last_octet(&ask(topo.cli(), server, "changing.reload.test.", RecordType::A, 2)), Some(2));
    std::thread::sleep(PUBLISH_WAIT);
    let (xdp1, _) = daemon.stats();
    assert_eq!(counter(&xdp1, "tx_answer"), counter(&xdp0, "tx_answer") + 1, "new data served by XDP");

    reload_and_wait(&mut daemon, "reload done", 2);
    let log = daemon.child.stderr();
    let done = log.lines().rfind(|l| l.contains("reload done")).expect("reload done");
    assert_eq!(log_field(done, "zone_files_read"), Some(0), "{done}");
    assert_eq!(log_field(done, "table_writes"), Some(0), "{done}");
}
