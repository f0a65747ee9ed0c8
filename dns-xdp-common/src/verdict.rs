//! What the XDP program decided about a packet, and the counter it bumps.
//!
//! `DNS_STATS` is a per-CPU array with one `u64` per verdict, indexed by the
//! verdict's number; `dns-xdp stats` prints each under its name from
//! [`Verdict::NAMES`]. Adding a verdict is one line of the list below: its
//! variant, the XDP action it leads to, and its name (user interface: never
//! rename or reorder one; new ones go at the end).

/// The XDP actions the program returns (the kernel's `enum xdp_action`,
/// UAPI since 4.8).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Drop = 1,
    Pass = 2,
    Tx = 3,
}

macro_rules! verdicts {
    ($( $(#[doc = $doc:literal])* $verdict:ident => $action:ident, $name:literal; )+) => {
        /// A verdict; its number indexes `DNS_STATS`.
        #[repr(u32)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Verdict {
            $( $(#[doc = $doc])* $verdict, )+
        }

        impl Verdict {
            /// Every verdict, in counter order.
            pub const ALL: [Verdict; Self::COUNT] = [$(Verdict::$verdict),+];
            /// Each verdict's counter name, indexed by the verdict.
            pub const NAMES: [&'static str; Self::COUNT] = [$($name),+];
            pub const COUNT: usize = [$($name),+].len();

            /// The XDP action that carries the verdict out.
            #[inline(always)]
            pub const fn action(self) -> Action {
                match self {
                    $(Verdict::$verdict => Action::$action,)+
                }
            }
        }
    };
}

verdicts! {
    /// Answered from the map (XDP_TX).
    TxAnswer => Tx, "tx_answer";
    /// Not for us: not IP, not UDP, or not a service address/port.
    PassNotDns => Pass, "pass_not_dns";
    /// IPv4 options, IPv6 extension headers or stacked VLAN tags.
    PassUnusualHeaders => Pass, "pass_unusual_headers";
    /// IP fragments.
    PassFragment => Pass, "pass_fragment";
    /// DNS header the fast path does not answer (opcode, counts, TC).
    PassHeader => Pass, "pass_header";
    /// qname with compression or other encodings the fast path leaves alone.
    PassQname => Pass, "pass_qname";
    /// Class other than IN.
    PassQclass => Pass, "pass_qclass";
    /// EDNS the fast path does not handle (version, options, layout).
    PassEdns => Pass, "pass_edns";
    /// No entry for the question.
    PassMiss => Pass, "pass_miss";
    /// An entry with the same hash but another name.
    PassCollision => Pass, "pass_collision";
    /// The answer does not fit the client's UDP limit (the daemon truncates).
    PassTooBig => Pass, "pass_too_big";
    /// The frame could not grow to hold the answer.
    PassNoRoom => Pass, "pass_no_room";
    /// The daemon's heartbeat is stale or the fast path is disabled.
    PassStale => Pass, "pass_stale";
    /// Query longer than the fast path parses.
    PassLongQuery => Pass, "pass_long_query";
    /// Malformed: lengths inconsistent with the frame, DNS header too short,
    /// or a response (QR=1) sent to the service.
    DropMalformed => Drop, "drop_malformed";
    /// Internal inconsistency after the packet was modified; never expected.
    DropInternal => Drop, "drop_internal";
    /// The answer was overwritten while it was being copied (a reload or an
    /// insert on another CPU); the client retries.
    DropTorn => Drop, "drop_torn";
    /// Over the rate limit of its source prefix: not answered.
    DropRrl => Drop, "drop_rrl";
    /// Over the rate limit, slipped: answered truncated (TC=1, question
    /// only) so a real client retries over TCP.
    TxRrlSlip => Tx, "tx_rrl_slip";
    /// Answered a query with a valid server cookie (RFC 9018), with a
    /// fresh one; not rate limited (the source is proven).
    TxCookie => Tx, "tx_cookie";
    /// Answered a query with a client cookie alone, with a server cookie.
    TxCookieClientOnly => Tx, "tx_cookie_client_only";
    /// A server cookie this server did not issue, or a stale one: the
    /// daemon answers it (with a new cookie).
    PassCookie => Pass, "pass_cookie";
}

impl Verdict {
    /// The name its counter is shown under.
    #[inline(always)]
    pub const fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_index_the_tables() {
        for (i, verdict) in Verdict::ALL.iter().enumerate() {
            assert_eq!(*verdict as usize, i);
            assert_eq!(verdict.name(), Verdict::NAMES[i]);
        }
    }

    #[test]
    fn names_are_distinct_and_say_the_action() {
        for (i, a) in Verdict::NAMES.iter().enumerate() {
            assert!(!Verdict::NAMES[..i].contains(a), "{a} twice");
            let prefix = match Verdict::ALL[i].action() {
                Action::Tx => "tx_",
                Action::Pass => "pass_",
                Action::Drop => "drop_",
            };
            assert!(a.starts_with(prefix), "{a} is a {:?}", Verdict::ALL[i].action());
        }
    }
}
