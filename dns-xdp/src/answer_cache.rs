//! The daemon's in-process cache of prepared answers, per catalog: a
//! repeated question skips the lookup and the encoding. (The XDP answer
//! table is another thing: the map writer fills it.)

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use hickory_proto::rr::Name;

use crate::prepared::PreparedAnswer;

/// Prepared answers of one catalog, so that a repeated question skips the
/// lookup and the encoding (most of the daemon's work per query). It belongs
/// to one catalog: a reload starts a new, empty one, so it can never serve
/// old data.
pub struct AnswerCache {
    entries: RwLock<HashMap<CacheKey, CachedAnswer>>,
    limit: usize,
}

/// The folded wire-format qname, the query type, and the DO bit (signed
/// zones answer DO queries with their DNSSEC records).
pub type CacheKey = (Box<[u8]>, u16, bool);

#[derive(Clone)]
pub struct CachedAnswer {
    pub prepared: Arc<PreparedAnswer>,
    /// The answer came from zone data (not REFUSED), so the fast path may
    /// serve it too.
    pub from_zone: bool,
    /// The zone that answered (none for REFUSED), for the per-zone counters.
    pub zone: Option<Name>,
}

impl AnswerCache {
    /// A cache of at most `limit` questions; when full it starts over, so a
    /// flood of random names costs memory only up to the limit.
    pub fn new(limit: usize) -> Self {
        Self { entries: RwLock::new(HashMap::new()), limit }
    }

    pub fn get(&self, key: &CacheKey) -> Option<CachedAnswer> {
        self.entries.read().unwrap_or_else(|p| p.into_inner()).get(key).cloned()
    }

    pub fn insert(&self, key: CacheKey, value: CachedAnswer) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= self.limit {
            entries.clear();
        }
        entries.insert(key, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        authority::Catalog,
        wire::{ReplySettings, Transport, respond, respond_cached},
    };
    use hickory_proto::op::Message;
    use hickory_proto::{
        op::Query,
        rr::{Name, RecordType},
    };

    fn catalog() -> Catalog {
        let zone = crate::zone::Zone::parse(
            "$TTL 300\n@ SOA ns hm 1 2 3 4 5\n@ NS ns\nns A 192.0.2.1\nwww A 192.0.2.80\n",
            &Name::from_ascii("example.test.").expect("origin"),
            "test",
        )
        .expect("zone");
        let mut catalog = Catalog::default();
        catalog.insert(Arc::new(zone));
        catalog
    }

    fn query(name: &str, id: u16) -> Vec<u8> {
        let mut msg = Message::query();
        msg.metadata.id = id;
        msg.add_query(Query::query(Name::from_ascii(name).expect("name"), RecordType::A));
        msg.to_vec().expect("encode")
    }

    /// A cached answer is the answer: the same bytes as a fresh lookup, for
    /// any spelling and ID, and a miss in another spelling is served from it.
    #[test]
    fn cached_replies_equal_fresh_replies() {
        let catalog = catalog();
        let cache = AnswerCache::new(16);
        let settings = ReplySettings::default();
        for (i, name) in
            ["www.example.test.", "WWW.Example.TEST.", "nosuch.example.test.", "www.other.test."].iter().enumerate()
        {
            for round in 0..2 {
                let q = query(name, (i * 10 + round) as u16);
                let fresh = respond(&catalog, &settings, &q, Transport::Udp).expect("reply");
                let cached = respond_cached(&catalog, Some(&cache), &settings, &q, Transport::Udp).expect("reply");
                assert_eq!(fresh.bytes, cached.bytes, "{name} round {round}");
                assert_eq!(fresh.cacheable.is_some(), cached.cacheable.is_some(), "{name}");
            }
        }
        // Two spellings of www share one entry; nosuch and other.test one each.
        assert_eq!(cache.entries.read().expect("lock").len(), 3);
    }

    #[test]
    fn a_full_cache_starts_over() {
        let catalog = catalog();
        let cache = AnswerCache::new(2);
        let settings = ReplySettings::default();
        for (i, name) in ["a.example.test.", "b.example.test.", "c.example.test."].iter().enumerate() {
            respond_cached(&catalog, Some(&cache), &settings, &query(name, i as u16), Transport::Udp).expect("reply");
        }
        assert_eq!(cache.entries.read().expect("lock").len(), 1);
    }
}
