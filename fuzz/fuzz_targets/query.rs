//! The daemon's query handling on arbitrary bytes, over UDP and TCP, with
//! and without the answer cache: no panic; a reply, when there is one,
//! parses, echoes the ID, fits the UDP limit, and is the same bytes whether
//! its answer came from the cache or was looked up.

#![no_main]

use std::sync::OnceLock;

use dns_xdp::{
    answer_cache::AnswerCache,
    authority::Catalog,
    wire::{ReplySettings, Transport, respond, respond_cached},
    zone::Zone,
};
use hickory_proto::{op::Message, rr::Name};
use libfuzzer_sys::fuzz_target;

const ZONES: [(&str, &str); 2] = [
    ("example.test.", include_str!("../../zones/example.test.zone")),
    ("other.test.", include_str!("../../dns-xdp/testdata/other.test.zone")),
];

fn settings() -> &'static ReplySettings {
    static SETTINGS: OnceLock<ReplySettings> = OnceLock::new();
    SETTINGS.get_or_init(|| ReplySettings { edns_udp_payload: 1232, nsid: Some(b"fuzz"), cookies: None })
}

fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        let mut catalog = Catalog::default();
        for (origin, text) in ZONES {
            let origin = Name::from_ascii(origin).expect("origin");
            let zone = Zone::parse(text, &origin, origin.to_ascii().as_str()).expect("test zone parses");
            catalog.insert(std::sync::Arc::new(zone));
        }
        catalog
    })
}

/// One cache for the whole run, as the daemon keeps one per catalog: later
/// inputs are answered from what earlier ones put in.
fn cache() -> &'static AnswerCache {
    static CACHE: OnceLock<AnswerCache> = OnceLock::new();
    CACHE.get_or_init(|| AnswerCache::new(4096))
}

fuzz_target!(|query: &[u8]| {
    for transport in [Transport::Udp, Transport::Tcp] {
        let looked_up = respond(catalog(), settings(), query, transport);
        let cached = respond_cached(catalog(), Some(cache()), settings(), query, transport);
        let (Some(reply), Some(cached)) = (looked_up, cached) else {
            continue;
        };
        assert_eq!(reply.bytes, cached.bytes, "a cached answer differs from the looked-up one");
        let parsed = Message::from_vec(&reply.bytes).expect("the daemon's reply parses");
        assert_eq!(reply.bytes[..2], query[..2], "the reply echoes the ID");
        assert!(parsed.metadata.message_type == hickory_proto::op::MessageType::Response);
        if matches!(transport, Transport::Udp) {
            assert!(reply.bytes.len() <= 1232, "a UDP reply of {} bytes", reply.bytes.len());
        }
    }
});
