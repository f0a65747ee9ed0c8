//! The zone loader on arbitrary text: no panic; a zone that loads can be
//! looked up and its answers encoded, as the daemon does when it preloads.

#![no_main]

use std::sync::Arc;

use dns_xdp::{authority::Catalog, prepared::PreparedAnswer, zone::Zone};
use hickory_proto::rr::Name;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // `$INCLUDE` reads files: left out, or the fuzzer would read the
    // machine's (and hang on a device such as /dev/zero).
    if text.to_ascii_uppercase().contains("$INCLUDE") {
        return;
    }
    let origin = Name::from_ascii("fuzz.test.").expect("origin");
    let Ok(zone) = Zone::parse(text, &origin, "fuzz.test.zone") else { return };
    let mut catalog = Catalog::default();
    catalog.insert(Arc::new(zone));
    for (qname, qtype) in catalog.preload_questions(&origin).into_iter().take(256) {
        let answer = catalog.lookup(&qname, qtype);
        let _ = PreparedAnswer::encode(&qname, qtype, &answer);
    }
});
