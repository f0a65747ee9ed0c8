//! DNS cookies in the daemon (RFC 7873 5.2): what a query's COOKIE option
//! is, with the server cookie of `dns_xdp_common::cookie` (RFC 9018) that
//! the XDP program makes the same way.
//!
//! The policy, chosen as Knot DNS's cookies module behaves by default: a
//! well-formed COOKIE option never stops an answer. A client cookie alone,
//! a valid server cookie and an invalid one are all answered normally,
//! with a fresh server cookie (RFC 7873 5.2.2-5.2.4); BADCOOKIE is only for
//! a server that requires cookies, which this one never does. A malformed
//! option (a length RFC 7873 4 does not allow, or two COOKIE options) is
//! FORMERR (5.2.1). What a valid cookie buys is an exemption from response
//! rate limiting: its source address is proven.

use std::{
    net::IpAddr,
    time::{SystemTime, UNIX_EPOCH},
};

use dns_xdp_common::cookie::{self, ClientAddr, Received, SECRET_LEN, Secrets};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption, OPT};

use crate::config::CookieSettings;

/// What the cookie computation needs to know about one query besides its
/// bytes: who sent it and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    pub client: ClientAddr,
    /// Seconds since the epoch (RFC 9018's timestamp).
    pub now: u32,
}

impl Peer {
    /// The peer `addr`, now.
    pub fn now(addr: IpAddr) -> Self {
        Self { client: client_addr(addr), now: unix_now() }
    }
}

/// An address as the cookie hash covers it: IPv4, whether it came on an
/// IPv4 socket or IPv4-mapped on a dual-stack one, by its 4 bytes (the
/// program sees the IPv4 header).
pub fn client_addr(addr: IpAddr) -> ClientAddr {
    match addr {
        IpAddr::V4(v4) => ClientAddr::V4(v4.octets()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => ClientAddr::V4(v4.octets()),
            None => ClientAddr::V6(v6.octets()),
        },
    }
}

/// Seconds since the epoch, as a 32-bit RFC 9018 timestamp (which wraps in
/// 2106 and is compared as a serial number).
pub fn unix_now() -> u32 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as u32)
}

/// The secrets to run with: the configured ones, or a random one drawn now
/// (logged, since cookies then differ across PoPs and restarts).
pub fn secrets(settings: &CookieSettings) -> anyhow::Result<Secrets> {
    if let Some(current) = settings.secret {
        return Ok(Secrets { current, previous: settings.previous });
    }
    let mut current = [0u8; SECRET_LEN];
    use std::io::Read as _;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut current))
        .map_err(|err| anyhow::anyhow!("drawing a random cookie secret from /dev/urandom: {err}"))?;
    tracing::warn!(
        "no cookie_secret configured: using a random one, so server cookies differ across PoPs and restarts \
         (set --cookie-secret on every PoP for cookies that stay valid)"
    );
    Ok(Secrets { current, previous: None })
}

/// A query's COOKIE option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryCookie<'a> {
    /// None in the OPT record.
    Absent,
    /// A length RFC 7873 4 does not allow, or more than one option: FORMERR.
    Malformed,
    /// The option's data: a client cookie, maybe a server cookie.
    Present(&'a [u8]),
}

/// Finds the COOKIE option among a query's EDNS options.
pub fn find(options: &OPT) -> QueryCookie<'_> {
    let mut found = QueryCookie::Absent;
    for (code, option) in &options.options {
        if *code != EdnsCode::Cookie {
            continue;
        }
        let EdnsOption::Unknown(_, data) = option else { return QueryCookie::Malformed };
        if found != QueryCookie::Absent || !cookie::well_formed_len(data.len()) {
            return QueryCookie::Malformed;
        }
        found = QueryCookie::Present(data);
    }
    found
}

/// What the server answers a well-formed COOKIE option with: the verdict,
/// and the option data to send (the client cookie and a fresh server
/// cookie).
pub fn answer(secrets: &Secrets, data: &[u8], peer: &Peer) -> (Received, [u8; cookie::COOKIE_DATA_LEN]) {
    let verdict = cookie::classify(secrets, data, &peer.client, peer.now);
    let mut client_cookie = [0u8; cookie::CLIENT_COOKIE_LEN];
    client_cookie.copy_from_slice(&data[..cookie::CLIENT_COOKIE_LEN]);
    (verdict, cookie::answer_data(&secrets.current, &client_cookie, &peer.client, peer.now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_ipv4_is_hashed_as_ipv4() {
        assert_eq!(client_addr("::ffff:198.18.0.2".parse().unwrap()), ClientAddr::V4([198, 18, 0, 2]));
        assert_eq!(client_addr("198.18.0.2".parse().unwrap()), ClientAddr::V4([198, 18, 0, 2]));
        assert!(matches!(client_addr("2001:db8::2".parse().unwrap()), ClientAddr::V6(_)));
    }

    #[test]
    fn a_random_secret_is_drawn_when_none_is_configured() {
        let a = secrets(&CookieSettings { secret: None, previous: None }).expect("random");
        let b = secrets(&CookieSettings { secret: None, previous: None }).expect("random");
        assert_ne!(a.current, b.current);
        let set = secrets(&CookieSettings { secret: Some([1; 16]), previous: Some([2; 16]) }).expect("set");
        assert_eq!(set, Secrets { current: [1; 16], previous: Some([2; 16]) });
    }

    /// The daemon's handling of COOKIE options, through `wire` as a query
    /// takes it (a unit test may use the modules above).
    mod in_replies {
        use std::sync::Arc;

        use hickory_proto::{
            op::{Message, ResponseCode},
            rr::Name,
        };

        use super::super::*;
        use crate::{
            authority::Catalog,
            wire::{ReplySettings, Transport, respond_to},
            zone::Zone,
        };

        const SECRETS: Secrets = Secrets { current: [0x11; 16], previous: Some([0x22; 16]) };
        const CLIENT_COOKIE: [u8; 8] = *b"cl1ent!!";

        fn catalog() -> Catalog {
            let text = "$ORIGIN t.test.\n$TTL 60\n@ SOA ns hm 1 2 3 4 5\n@ NS ns\nns A 192.0.2.1\n";
            let mut catalog = Catalog::new();
            catalog.insert(Arc::new(Zone::parse(text, &Name::from_ascii("t.test.").unwrap(), "t").unwrap()));
            catalog
        }

        /// `ns.t.test. A` with an OPT record holding `options` (code, data).
        fn query(options: &[(u16, &[u8])], qdcount: u16) -> Vec<u8> {
            let mut q = vec![0x12, 0x34, 0, 0];
            q.extend_from_slice(&qdcount.to_be_bytes());
            q.extend_from_slice(&[0, 0, 0, 0, 0, 1]);
            if qdcount == 1 {
                q.extend_from_slice(b"\x02ns\x01t\x04test\x00\x00\x01\x00\x01");
            }
            let rdata: Vec<u8> = options
                .iter()
                .flat_map(|(code, data)| [&code.to_be_bytes()[..], &(data.len() as u16).to_be_bytes(), data].concat())
                .collect();
            q.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0]);
            q.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            q.extend_from_slice(&rdata);
            q
        }

        fn peer() -> Peer {
            Peer { client: ClientAddr::V4([198, 18, 0, 2]), now: 1_700_000_000 }
        }

        fn ask(
            secrets: Option<Secrets>,
            query: &[u8],
            peer: &Peer,
            transport: Transport,
        ) -> (Message, Option<Received>) {
            let settings = ReplySettings { cookies: secrets, ..ReplySettings::default() };
            let reply = respond_to(&catalog(), None, &settings, query, transport, Some(peer)).expect("a reply");
            (Message::from_vec(&reply.bytes).expect("reply parses"), reply.cookie)
        }

        fn cookie_of(msg: &Message) -> Option<Vec<u8>> {
            match msg.edns.as_ref()?.option(EdnsCode::Cookie)? {
                EdnsOption::Unknown(_, data) => Some(data.clone()),
                other => panic!("cookie parsed as {other:?}"),
            }
        }

        #[test]
        fn a_client_cookie_gets_a_server_cookie_that_is_then_accepted() {
            for transport in [Transport::Udp, Transport::Tcp] {
                let (first, verdict) = ask(Some(SECRETS), &query(&[(10, &CLIENT_COOKIE)], 1), &peer(), transport);
                assert_eq!(verdict, Some(Received::ClientOnly));
                assert_eq!(first.metadata.response_code, ResponseCode::NoError);
                assert_eq!(first.answers.len(), 1, "answered as usual");
                let cookie = cookie_of(&first).expect("a server cookie in the reply");
                assert_eq!(cookie.len(), 24);
                assert_eq!(cookie[..8], CLIENT_COOKIE, "the client cookie echoed");
                assert_eq!(cookie[8], 1, "RFC 9018 version");
                // Later, with the server cookie it was given.
                let later = Peer { now: peer().now + 1800, ..peer() };
                let (second, verdict) = ask(Some(SECRETS), &query(&[(10, &cookie)], 1), &later, transport);
                assert_eq!(verdict, Some(Received::Valid), "over {transport:?}");
                let fresh = cookie_of(&second).expect("a fresh cookie");
                assert_eq!(fresh, cookie::answer_data(&SECRETS.current, &CLIENT_COOKIE, &later.client, later.now));
            }
        }

        #[test]
        fn a_cookie_of_the_previous_secret_is_accepted_and_renewed_with_the_current() {
            let old = cookie::answer_data(&[0x22; 16], &CLIENT_COOKIE, &peer().client, peer().now);
            let (reply, verdict) = ask(Some(SECRETS), &query(&[(10, &old)], 1), &peer(), Transport::Udp);
            assert_eq!(verdict, Some(Received::Valid));
            let fresh = cookie_of(&reply).expect("cookie");
            assert_eq!(fresh, cookie::answer_data(&SECRETS.current, &CLIENT_COOKIE, &peer().client, peer().now));
        }

        #[test]
        fn an_invalid_server_cookie_is_answered_normally_with_a_new_one() {
            let mut bad = cookie::answer_data(&SECRETS.current, &CLIENT_COOKIE, &peer().client, peer().now);
            bad[23] ^= 1;
            for transport in [Transport::Udp, Transport::Tcp] {
                let (reply, verdict) = ask(Some(SECRETS), &query(&[(10, &bad)], 1), &peer(), transport);
                assert_eq!(verdict, Some(Received::Invalid));
                assert_eq!(reply.metadata.response_code, ResponseCode::NoError, "no BADCOOKIE (RFC 7873 5.2.3)");
                assert_eq!(reply.answers.len(), 1);
                let fresh = cookie_of(&reply).expect("cookie");
                assert_eq!(fresh, cookie::answer_data(&SECRETS.current, &CLIENT_COOKIE, &peer().client, peer().now));
            }
            // Another client's cookie is not this one's.
            let theirs = cookie::answer_data(&SECRETS.current, &CLIENT_COOKIE, &ClientAddr::V4([198, 18, 0, 3]), 1);
            let (_, verdict) = ask(Some(SECRETS), &query(&[(10, &theirs)], 1), &peer(), Transport::Udp);
            assert_eq!(verdict, Some(Received::Invalid));
        }

        #[test]
        fn malformed_cookie_options_are_formerr() {
            let long = [0u8; 41];
            for data in [&long[..7], &long[..9], &long[..15], &long[..41], &[][..]] {
                let (reply, verdict) = ask(Some(SECRETS), &query(&[(10, data)], 1), &peer(), Transport::Udp);
                assert_eq!(reply.metadata.response_code, ResponseCode::FormErr, "{} bytes", data.len());
                assert_eq!(verdict, None);
                assert!(cookie_of(&reply).is_none());
            }
            let twice = query(&[(10, &CLIENT_COOKIE), (10, &CLIENT_COOKIE)], 1);
            let (reply, _) = ask(Some(SECRETS), &twice, &peer(), Transport::Udp);
            assert_eq!(reply.metadata.response_code, ResponseCode::FormErr, "two COOKIE options");
            // Every length RFC 7873 allows is answered.
            for len in [8, 16, 24, 40] {
                let (reply, _) = ask(Some(SECRETS), &query(&[(10, &long[..len])], 1), &peer(), Transport::Udp);
                assert_eq!(reply.metadata.response_code, ResponseCode::NoError, "{len} bytes");
            }
        }

        #[test]
        fn with_cookies_off_the_option_is_ignored() {
            let (reply, verdict) = ask(None, &query(&[(10, &CLIENT_COOKIE)], 1), &peer(), Transport::Udp);
            assert_eq!(verdict, None);
            assert!(cookie_of(&reply).is_none());
            let (reply, _) = ask(None, &query(&[(10, &[1, 2, 3])], 1), &peer(), Transport::Udp);
            assert_eq!(reply.metadata.response_code, ResponseCode::NoError, "not even its length is checked");
        }

        #[test]
        fn a_query_for_a_cookie_alone_gets_one() {
            let (reply, verdict) = ask(Some(SECRETS), &query(&[(10, &CLIENT_COOKIE)], 0), &peer(), Transport::Udp);
            assert_eq!(reply.metadata.response_code, ResponseCode::NoError, "RFC 7873 5.4");
            assert_eq!(verdict, Some(Received::ClientOnly));
            assert!(reply.queries.is_empty());
            assert!(cookie_of(&reply).is_some());
            let (reply, _) = ask(Some(SECRETS), &query(&[], 0), &peer(), Transport::Udp);
            assert_eq!(reply.metadata.response_code, ResponseCode::FormErr, "no question and no cookie");
        }
    }
}
