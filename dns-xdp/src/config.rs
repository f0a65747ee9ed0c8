//! Settings from a TOML file and the command line (the command line wins).

use std::{
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, anyhow, bail};
use hickory_proto::rr::{Name, TSigner, rdata::tsig::TsigAlgorithm};
use serde::Deserialize;

pub const DEFAULT_LISTEN: &str = "0.0.0.0:53";
pub const DEFAULT_MAP_ENTRIES: u32 = 65_536;
pub const DEFAULT_EDNS_UDP_PAYLOAD: u16 = 1232;
pub const DEFAULT_HEARTBEAT_TIMEOUT_SECS: u64 = 5;
pub const DEFAULT_UDP_QUEUE: usize = 1024;
/// The daemon threads' nice value: below the kernel's packet threads (see `RunArgs::nice`).
pub const DEFAULT_NICE: i32 = 10;
/// The metrics endpoint's default: localhost only, on the port CoreDNS and
/// other DNS exporters use.
pub const DEFAULT_METRICS: &str = "127.0.0.1:9153";
/// Where the daemon listens for `dns-xdp reload`, `cache` and `stats`.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/dns-xdp/control.sock";
/// Where the maps are pinned for bpftool.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/dns-xdp";

/// How to attach: the user-facing names of aya's modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttachMode {
    /// Driver (native) mode: the program runs in the NIC driver.
    Native,
    /// Generic (SKB) mode: works on every interface, after the stack has
    /// built an skb; slower, for testing and for drivers without XDP.
    Generic,
    /// No XDP program: the daemon answers everything.
    Off,
}

/// Whether the server speaks DNS cookies (RFC 7873).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CookieMode {
    /// Answer every COOKIE option with a server cookie (RFC 9018).
    #[default]
    On,
    /// Ignore COOKIE options, as a server without cookies does.
    Off,
}

/// What to preload for each zone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preload {
    /// Every name of the zone with each type it has (up to the map's size).
    #[default]
    All,
    /// Nothing: the map fills as queries miss.
    None,
}

/// Where the metrics endpoint listens: `ADDR:PORT`, or `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct MetricsListen(pub Option<SocketAddr>);

impl std::str::FromStr for MetricsListen {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.eq_ignore_ascii_case("off") {
            return Ok(Self(None));
        }
        text.parse().map(|addr| Self(Some(addr))).map_err(|_| format!("{text:?} is neither ADDR:PORT nor off"))
    }
}

impl TryFrom<String> for MetricsListen {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

/// Where the control socket is: a path, or `off`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ControlSocket(pub Option<PathBuf>);

impl std::str::FromStr for ControlSocket {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.eq_ignore_ascii_case("off") {
            return Ok(Self(None));
        }
        if text.is_empty() {
            return Err("the control socket path is empty (give a path or off)".into());
        }
        Ok(Self(Some(PathBuf::from(text))))
    }
}

impl TryFrom<String> for ControlSocket {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

/// Limits on TCP clients (RFC 7766 6.2.3: a server should limit what each
/// client can hold and close connections that do not make progress).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpLimits {
    /// Time allowed without the first byte of a next query.
    pub idle_timeout: Duration,
    /// Time allowed from a query's first byte to its last (slow senders,
    /// slowloris clients). Writing a reply may take `idle_timeout`.
    pub read_timeout: Duration,
    pub max_connections: usize,
    /// Connections from one IP address at a time.
    pub max_per_source: usize,
    /// Replies one connection may have waiting to be written; at the limit
    /// the daemon reads no further queries from it.
    pub max_pipelined: usize,
    /// Bytes of each kernel socket buffer (send and receive) of a
    /// connection: with `max_pipelined` this bounds a connection's memory.
    pub connection_buffer: usize,
}

impl TcpLimits {
    /// The smallest `connection_buffer`: below it the kernel rounds up anyway
    /// (SOCK_MIN_SNDBUF), and a reply of one segment must fit.
    pub const MIN_CONNECTION_BUFFER: usize = 4096;
}

impl Default for TcpLimits {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(2),
            max_connections: 256,
            max_per_source: 32,
            max_pipelined: 32,
            connection_buffer: 65_536,
        }
    }
}

/// `dns-xdp run` options. Every one can also be set in the config file.
#[derive(Debug, Default, clap::Args)]
pub struct RunArgs {
    /// TOML configuration file; options given here override it.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Zone to serve, as FILE or ORIGIN=FILE (repeatable). Without ORIGIN the
    /// file's $ORIGIN is used, else its name without ".zone".
    #[arg(long = "zone", value_name = "[ORIGIN=]FILE")]
    pub zones: Vec<String>,
    /// Secondary zone, transferred by AXFR from the primaries given (port
    /// 53 unless told), refreshed on the SOA's timers (repeatable). TSIG
    /// keys are configured in the config file's [[zone]] entries.
    #[arg(long = "secondary", value_name = "ORIGIN=ADDR[:PORT][,ADDR...]")]
    pub secondaries: Vec<String>,
    /// Directory for the last good copy of each secondary zone, served at
    /// start while the primaries are down [default: /var/lib/dns-xdp].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Address and port to answer on, UDP and TCP (repeatable)
    /// [default: 0.0.0.0:53].
    #[arg(long = "listen", value_name = "ADDR:PORT")]
    pub listen: Vec<SocketAddr>,
    /// Interface to attach the XDP program to (repeatable; every interface
    /// that receives queries; required unless --xdp-mode off).
    #[arg(long = "iface", value_name = "IFACE")]
    pub ifaces: Vec<String>,
    /// native: in the driver (fastest; needs driver support). generic: after
    /// the skb is built (any interface). off: no XDP, the daemon answers all.
    #[arg(long, visible_alias = "xdp", value_enum, value_name = "MODE")]
    pub xdp_mode: Option<AttachMode>,
    /// Slots in the answer table, rounded up to a power of two (832 bytes
    /// each). It holds about half as many answers before questions compete
    /// for slots; then the answers served least lately are replaced
    /// [default: 65536].
    #[arg(long, value_name = "N")]
    pub map_entries: Option<u32>,
    /// What to put in the answer map at start and reload [default: all].
    #[arg(long, value_enum, value_name = "WHAT")]
    pub preload: Option<Preload>,
    /// UDP payload size advertised with EDNS and the largest UDP reply
    /// [default: 1232].
    #[arg(long, value_name = "BYTES")]
    pub edns_udp_payload: Option<u16>,
    /// Seconds without a daemon heartbeat after which the XDP program stops
    /// answering [default: 5].
    #[arg(long, value_name = "SECS")]
    pub heartbeat_timeout: Option<u64>,
    /// bpffs directory to pin the maps in (for bpftool)
    /// [default: /sys/fs/bpf/dns-xdp].
    #[arg(long, value_name = "DIR")]
    pub pin_dir: Option<PathBuf>,
    /// On SIGTERM/SIGINT, report unhealthy ("draining") and keep answering
    /// for this many seconds before stopping, so the route controller
    /// (`dns-xdp announce`) withdraws the anycast prefixes while the
    /// daemon still answers [default: 0, stop at once]. Set it to more
    /// than announce's fall x interval plus BGP propagation.
    #[arg(long, value_name = "SECS")]
    pub drain_delay: Option<u64>,
    /// Where to write the daemon's PID (used by `dns-xdp reload`).
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// UDP worker threads per listen address [default: one per CPU the
    /// daemon may run on].
    #[arg(long, value_name = "N")]
    pub udp_threads: Option<usize>,
    /// UDP queries received and waiting for a worker, per listen address;
    /// when the workers fall behind (a flood of misses), queries beyond it
    /// are dropped and counted (udp_shed) instead of queueing in the kernel
    /// [default: 1024; held in batches of up to 32].
    #[arg(long, value_name = "N")]
    pub udp_queue: Option<usize>,
    /// CPU priority of the daemon's threads, as a nice value from 0 to 19
    /// [default: 10]. Below the kernel's packet processing, where the XDP
    /// fast path runs: under a flood of misses the daemon gets the CPU the
    /// fast path leaves, and the answers from the table keep their rate.
    /// 0 shares the CPU equally with the kernel's packet threads.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(0..=19))]
    pub nice: Option<i32>,
    /// This server's identity (e.g. the PoP's name), sent to clients that
    /// ask with the EDNS NSID option (`dig +nsid`) or query `id.server.`
    /// CH TXT, so operators can tell which anycast instance answered.
    #[arg(long, value_name = "ID")]
    pub nsid: Option<String>,
    /// Seconds a TCP connection may stay without the start of a query, or
    /// take to accept a reply, before it is closed (RFC 7766 6.2.3)
    /// [default: 10].
    #[arg(long, value_name = "SECS")]
    pub tcp_idle_timeout: Option<u64>,
    /// Concurrent TCP connections; more are refused at accept
    /// [default: 256].
    #[arg(long, value_name = "N")]
    pub tcp_max_connections: Option<usize>,
    /// Concurrent TCP connections from one IP address; more are refused at
    /// accept, so one client cannot take every connection [default: 32].
    #[arg(long, value_name = "N")]
    pub tcp_max_connections_per_source: Option<usize>,
    /// Seconds a TCP query may take to arrive from its first byte to its
    /// last before the connection is closed (slow senders) [default: 2].
    #[arg(long, value_name = "SECS")]
    pub tcp_read_timeout: Option<u64>,
    /// Replies one TCP connection may have waiting to be written; at the
    /// limit the daemon reads no more of its queries until the client reads
    /// its answers [default: 32].
    #[arg(long, value_name = "N")]
    pub tcp_max_pipelined: Option<usize>,
    /// Bytes of each kernel socket buffer (send, receive) of a TCP
    /// connection; with --tcp-max-pipelined it bounds the memory one
    /// connection holds [default: 65536, at least 4096].
    #[arg(long, value_name = "BYTES")]
    pub tcp_connection_buffer: Option<usize>,
    /// Prometheus metrics at http://ADDR:PORT/metrics, or `off`
    /// [default: 127.0.0.1:9153]. Anything but a GET of /metrics is refused.
    #[arg(long, value_name = "ADDR:PORT|off")]
    pub metrics: Option<MetricsListen>,
    /// Unix socket for `dns-xdp reload`, `dns-xdp cache` and the health in
    /// `dns-xdp stats`, or `off` [default: /run/dns-xdp/control.sock].
    /// Mode 0600; only root and the daemon's user are answered.
    #[arg(long, value_name = "PATH|off")]
    pub control_socket: Option<ControlSocket>,
    /// Log one query in N that reaches the daemon (client, question, rcode,
    /// zone) as a `query` event; 0 turns query logging off [default: 0].
    /// Queries answered by XDP never reach the daemon and are not logged.
    #[arg(long, value_name = "N")]
    pub query_log_sample: Option<u64>,
    /// Response rate limiting: UDP answers per second to one source prefix
    /// (see --rrl-ipv4-prefix), with a burst of one second's worth; answers
    /// over it are dropped or slipped, in the XDP program and the daemon
    /// alike [default: off].
    #[arg(long, value_name = "N")]
    pub rrl_rate: Option<u32>,
    /// Every Nth answer over the rate limit goes out truncated (TC=1,
    /// question only) so a real client retries over TCP; 0 drops them all
    /// [default: 2].
    #[arg(long, value_name = "N")]
    pub rrl_slip: Option<u32>,
    /// Prefix length IPv4 sources are rate limited by [default: 24].
    #[arg(long, value_name = "BITS")]
    pub rrl_ipv4_prefix: Option<u8>,
    /// Prefix length IPv6 sources are rate limited by [default: 56].
    #[arg(long, value_name = "BITS")]
    pub rrl_ipv6_prefix: Option<u8>,
    /// A source prefix never rate limited (e.g. 192.0.2.0/24, 2001:db8::/32
    /// or an address); repeatable, added to the config file's list.
    #[arg(long = "rrl-exempt", value_name = "PREFIX")]
    pub rrl_exempt: Vec<String>,
    /// DNS cookies (RFC 7873, server cookies as RFC 9018 makes them):
    /// `off` ignores COOKIE options as a server without cookies does
    /// [default: on].
    #[arg(long, value_name = "on|off")]
    pub cookies: Option<CookieMode>,
    /// The server cookie secret, 16 bytes as 32 hex digits; give every PoP
    /// of an anycast service the same one [default: a random one at each
    /// start, so cookies differ across PoPs and restarts].
    #[arg(long, value_name = "HEX")]
    pub cookie_secret: Option<String>,
    /// The secret before --cookie-secret, during a roll-over: cookies made
    /// with it are still accepted, never issued.
    #[arg(long, value_name = "HEX")]
    pub cookie_secret_previous: Option<String>,
    /// A file holding the cookie secret in hex on its first line and,
    /// optionally, the previous one on the second (instead of
    /// --cookie-secret, which shows in the process list).
    #[arg(long, value_name = "PATH")]
    pub cookie_secret_file: Option<PathBuf>,
}

/// The config file's layout.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub listen: Vec<SocketAddr>,
    /// One interface name or a list of them.
    pub iface: Option<OneOrMany>,
    pub xdp_mode: Option<AttachMode>,
    pub map_entries: Option<u32>,
    pub preload: Option<Preload>,
    pub edns_udp_payload: Option<u16>,
    pub heartbeat_timeout: Option<u64>,
    pub pin_dir: Option<PathBuf>,
    pub drain_delay: Option<u64>,
    pub pid_file: Option<PathBuf>,
    pub udp_threads: Option<usize>,
    pub udp_queue: Option<usize>,
    pub nice: Option<i32>,
    pub tcp_idle_timeout: Option<u64>,
    pub tcp_max_connections: Option<usize>,
    pub tcp_max_connections_per_source: Option<usize>,
    pub tcp_read_timeout: Option<u64>,
    pub tcp_max_pipelined: Option<usize>,
    pub tcp_connection_buffer: Option<usize>,
    pub nsid: Option<String>,
    pub metrics: Option<MetricsListen>,
    pub control_socket: Option<ControlSocket>,
    pub query_log_sample: Option<u64>,
    pub rrl_rate: Option<u32>,
    pub rrl_slip: Option<u32>,
    pub rrl_ipv4_prefix: Option<u8>,
    pub rrl_ipv6_prefix: Option<u8>,
    #[serde(default)]
    pub rrl_exempt: Vec<String>,
    pub cookies: Option<CookieMode>,
    pub cookie_secret: Option<String>,
    pub cookie_secret_previous: Option<String>,
    pub cookie_secret_file: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    #[serde(default, rename = "zone")]
    pub zones: Vec<ZoneConfig>,
    #[serde(default)]
    pub tsig: Vec<TsigConfig>,
}

/// A `[[tsig]]` key: `name`, `algorithm` (hmac-sha256, ...), base64 `secret`
/// as `tsig-keygen` or `keymgr -t` print it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TsigConfig {
    pub name: String,
    pub algorithm: String,
    pub secret: String,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(one) => vec![one],
            Self::Many(many) => many,
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ZoneConfig {
    pub origin: Option<String>,
    /// The zone file; for a secondary, where its copy is kept (default:
    /// `<state_dir>/<origin>zone`).
    pub file: Option<PathBuf>,
    pub preload: Option<Preload>,
    /// Makes the zone a secondary of these primaries (`ADDR[:PORT]`).
    #[serde(default)]
    pub primaries: Vec<String>,
    /// The `[[tsig]]` key transfers from the primaries are signed with.
    pub tsig: Option<String>,
    /// Seconds that override the SOA's REFRESH, RETRY and EXPIRE.
    pub refresh: Option<u64>,
    pub retry: Option<u64>,
    pub expire: Option<u64>,
}

/// TSIG fudge (RFC 8945 recommends 300 s).
const TSIG_FUDGE: u16 = 300;

/// A TSIG key as `tsig-keygen` and `keymgr -t` print it: a name, an
/// algorithm name and a base64 secret.
#[derive(Clone)]
pub struct TsigKey {
    pub name: Name,
    signer: TSigner,
}

impl std::fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        write!(f, "TsigKey({} {})", self.name, algorithm_name(self.signer.algorithm()))
    }
}

impl PartialEq for TsigKey {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.signer.algorithm() == other.signer.algorithm()
            && self.signer.key() == other.signer.key()
    }
}

impl Eq for TsigKey {}

fn algorithm_name(algorithm: &TsigAlgorithm) -> String {
    algorithm.to_name().to_ascii().trim_end_matches('.').to_ascii_lowercase()
}

impl TsigKey {
    pub fn signer(&self) -> &TSigner {
        &self.signer
    }

    /// `algorithm` is one of hmac-sha224/256/384/512 (as BIND and Knot
    /// spell them); `secret` is base64.
    pub fn new(name: &str, algorithm: &str, secret: &str) -> anyhow::Result<Self> {
        let mut key_name = Name::from_ascii(name).with_context(|| format!("invalid TSIG key name {name:?}"))?;
        key_name.set_fqdn(true);
        let key_name = key_name.to_lowercase();
        let algorithm = match algorithm.trim_end_matches('.').to_ascii_lowercase().as_str() {
            "hmac-sha224" => TsigAlgorithm::HmacSha224,
            "hmac-sha256" => TsigAlgorithm::HmacSha256,
            "hmac-sha384" => TsigAlgorithm::HmacSha384,
            "hmac-sha512" => TsigAlgorithm::HmacSha512,
            other => bail!(
                "TSIG key {key_name}: algorithm {other:?} is not supported (hmac-sha224, hmac-sha256, hmac-sha384, hmac-sha512)"
            ),
        };
        let secret = data_encoding::BASE64
            .decode(secret.trim().as_bytes())
            .map_err(|err| anyhow!("TSIG key {key_name}: the secret is not base64: {err}"))?;
        if secret.is_empty() {
            bail!("TSIG key {key_name}: the secret is empty");
        }
        let signer = TSigner::new(secret, algorithm, key_name.clone(), TSIG_FUDGE)
            .map_err(|err| anyhow!("TSIG key {key_name}: {err}"))?;
        Ok(Self { name: key_name, signer })
    }
}

/// Timer values that override the zone's SOA.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimerOverrides {
    pub refresh: Option<Duration>,
    pub retry: Option<Duration>,
    pub expire: Option<Duration>,
}

/// What the configuration says about one secondary zone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecondarySpec {
    pub origin: Name,
    pub primaries: Vec<SocketAddr>,
    pub tsig: Option<TsigKey>,
    pub timers: TimerOverrides,
    /// Where the last good copy is kept (the zone's file).
    pub file: PathBuf,
}

/// Settings resolved from file and command line.
#[derive(Clone, Debug)]
pub struct Settings {
    pub listen: Vec<SocketAddr>,
    pub ifaces: Vec<String>,
    pub xdp_mode: AttachMode,
    pub map_entries: u32,
    pub preload: Preload,
    pub edns_udp_payload: u16,
    pub heartbeat_timeout: Duration,
    pub pin_dir: PathBuf,
    /// How long a stop signal keeps the daemon answering while unhealthy.
    pub drain_delay: Duration,
    pub pid_file: Option<PathBuf>,
    pub udp_threads: usize,
    /// Queries waiting for a UDP worker before more are shed.
    pub udp_queue: usize,
    /// The daemon threads' nice value (0 to 19).
    pub nice: i32,
    pub tcp: TcpLimits,
    pub nsid: Option<String>,
    /// The metrics endpoint's address; `None` when off.
    pub metrics: Option<SocketAddr>,
    /// The control socket's path; `None` when off.
    pub control_socket: Option<PathBuf>,
    /// Log one query in this many; 0: off.
    pub query_log_sample: u64,
    /// Response rate limiting; `None` when off.
    pub rrl: Option<RrlSettings>,
    /// DNS cookies; `None` when off.
    pub cookies: Option<CookieSettings>,
    pub zones: Vec<ZoneSpec>,
    /// The secondary zones (each also in `zones`, with its copy's file).
    pub secondaries: Vec<SecondarySpec>,
}

/// Response rate limiting as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RrlSettings {
    pub limits: dns_xdp_common::rrl::RrlLimits,
    /// Source prefixes never limited.
    pub exempt: Vec<ipnet::IpNet>,
}

/// DNS cookies as configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CookieSettings {
    /// The secret cookies are issued with; `None` when none is configured
    /// (the daemon then draws one at start).
    pub secret: Option<[u8; dns_xdp_common::cookie::SECRET_LEN]>,
    /// The secret before it, still accepted.
    pub previous: Option<[u8; dns_xdp_common::cookie::SECRET_LEN]>,
}

impl CookieSettings {
    fn resolve(args: &RunArgs, file: &FileConfig) -> anyhow::Result<Option<Self>> {
        let inline = args.cookie_secret.clone().or(file.cookie_secret.clone());
        let previous = args.cookie_secret_previous.clone().or(file.cookie_secret_previous.clone());
        let secret_file = args.cookie_secret_file.clone().or(file.cookie_secret_file.clone());
        if args.cookies.or(file.cookies).unwrap_or_default() == CookieMode::Off {
            if inline.is_some() || previous.is_some() || secret_file.is_some() {
                bail!("cookie_secret, cookie_secret_previous and cookie_secret_file need cookies on");
            }
            return Ok(None);
        }
        let (secret, previous) = match secret_file {
            Some(path) => {
                if inline.is_some() || previous.is_some() {
                    bail!(
                        "give the cookie secret either in cookie_secret_file or as cookie_secret(_previous), not both"
                    );
                }
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading the cookie secret file {}", path.display()))?;
                let mut lines = text.lines().map(str::trim).filter(|line| !line.is_empty());
                let secret = lines.next().ok_or_else(|| anyhow!("{}: no cookie secret in it", path.display()))?;
                let previous = lines.next();
                if lines.next().is_some() {
                    bail!("{}: more than two lines (the secret, then the previous one)", path.display());
                }
                (
                    Some(parse_secret(secret).with_context(|| format!("{}, line 1", path.display()))?),
                    previous.map(parse_secret).transpose().with_context(|| format!("{}, line 2", path.display()))?,
                )
            }
            None => (
                inline.as_deref().map(parse_secret).transpose().context("cookie_secret")?,
                previous.as_deref().map(parse_secret).transpose().context("cookie_secret_previous")?,
            ),
        };
        if secret.is_none() && previous.is_some() {
            bail!("cookie_secret_previous needs cookie_secret (the one to issue cookies with)");
        }
        Ok(Some(Self { secret, previous }))
    }
}

/// A cookie secret: 16 bytes as 32 hex digits.
fn parse_secret(text: &str) -> anyhow::Result<[u8; dns_xdp_common::cookie::SECRET_LEN]> {
    let bytes = data_encoding::HEXLOWER_PERMISSIVE
        .decode(text.trim().as_bytes())
        .map_err(|_| anyhow!("a cookie secret is 32 hex digits, not {:?}", text.trim()))?;
    bytes.try_into().map_err(|b: Vec<u8>| anyhow!("a cookie secret is 16 bytes (32 hex digits), not {}", b.len()))
}

/// Default `--rrl-slip`: every second answer over the limit slips (BIND's
/// default), so a real client behind a spoofed flood gets through soon.
pub const DEFAULT_RRL_SLIP: u32 = 2;

impl RrlSettings {
    fn resolve(args: &RunArgs, file: &FileConfig) -> anyhow::Result<Option<Self>> {
        let Some(rate) = args.rrl_rate.or(file.rrl_rate) else {
            if args.rrl_slip.is_some()
                || file.rrl_slip.is_some()
                || !args.rrl_exempt.is_empty()
                || !file.rrl_exempt.is_empty()
            {
                bail!("rrl_slip and rrl_exempt need rrl_rate (rate limiting is off without it)");
            }
            return Ok(None);
        };
        if rate == 0 {
            bail!("rrl_rate must be at least 1 answer per second");
        }
        let slip = args.rrl_slip.or(file.rrl_slip).unwrap_or(DEFAULT_RRL_SLIP);
        let v4 = args.rrl_ipv4_prefix.or(file.rrl_ipv4_prefix).unwrap_or(24);
        let v6 = args.rrl_ipv6_prefix.or(file.rrl_ipv6_prefix).unwrap_or(56);
        if v4 > 32 || v6 > 128 {
            bail!("rrl_ipv4_prefix must be 0 to 32 and rrl_ipv6_prefix 0 to 128, not {v4} and {v6}");
        }
        let mut exempt = Vec::new();
        for text in file.rrl_exempt.iter().chain(&args.rrl_exempt) {
            let net = text
                .parse::<ipnet::IpNet>()
                .or_else(|_| text.parse::<IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| anyhow::anyhow!("rrl_exempt {text:?} is not a prefix (ADDR/LEN) or an address"))?;
            exempt.push(net.trunc());
        }
        Ok(Some(Self { limits: dns_xdp_common::rrl::RrlLimits::new(rate, slip, v4, v6), exempt }))
    }

    /// Whether `addr` is in an exempt prefix.
    pub fn is_exempt(&self, addr: IpAddr) -> bool {
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        self.exempt.iter().any(|net| net.contains(&addr))
    }
}
pub const DEFAULT_STATE_DIR: &str = "/var/lib/dns-xdp";
pub const DEFAULT_PRIMARY_PORT: u16 = 53;

/// Longest identity: it must fit one TXT character-string (RFC 1035 3.3),
/// which is also what the fast path's NSID option holds.
pub const MAX_NSID_LEN: usize = dns_xdp_common::MAX_NSID_LEN;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneSpec {
    pub origin: Option<Name>,
    pub file: PathBuf,
    pub preload: Preload,
}

impl FileConfig {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).map_err(|err| {
            let line = err.span().map(|span| text[..span.start.min(text.len())].lines().count().max(1)).unwrap_or(0);
            anyhow::anyhow!("{}:{line}: {}", path.display(), err.message())
        })
    }
}

impl Settings {
    pub fn resolve(args: &RunArgs) -> anyhow::Result<Self> {
        let file = match &args.config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        let rrl = RrlSettings::resolve(args, &file)?;
        let cookies = CookieSettings::resolve(args, &file)?;
        // Relative zone paths in a config file are relative to the file.
        let base = args.config.as_deref().and_then(Path::parent).map(Path::to_path_buf).unwrap_or_default();
        let default_preload = args.preload.or(file.preload).unwrap_or_default();
        let state_dir =
            args.state_dir.clone().or(file.state_dir.clone()).unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
        let mut keys = std::collections::HashMap::new();
        for key in &file.tsig {
            let key = TsigKey::new(&key.name, &key.algorithm, &key.secret)?;
            if keys.insert(key.name.clone(), key.clone()).is_some() {
                bail!("TSIG key {} is defined twice", key.name);
            }
        }
        let mut zones = Vec::new();
        let mut secondaries = Vec::new();
        for z in &file.zones {
            let origin = z.origin.as_deref().map(parse_origin).transpose()?;
            let preload = z.preload.unwrap_or(default_preload);
            if z.primaries.is_empty() {
                if z.tsig.is_some() || z.refresh.is_some() || z.retry.is_some() || z.expire.is_some() {
                    bail!(
                        "zone {:?}: tsig, refresh, retry and expire need primaries",
                        z.origin.as_deref().unwrap_or("?")
                    );
                }
                let Some(zone_file) = &z.file else {
                    bail!(
                        "zone {:?}: give a file, or primaries for a secondary zone",
                        z.origin.as_deref().unwrap_or("?")
                    );
                };
                zones.push(ZoneSpec { origin, file: base.join(zone_file), preload });
                continue;
            }
            let Some(origin) = origin else { bail!("a secondary zone needs an origin") };
            let tsig = match &z.tsig {
                Some(name) => {
                    let name = parse_origin(name)?;
                    Some(
                        keys.get(&name)
                            .cloned()
                            .ok_or_else(|| anyhow!("zone {origin}: no [[tsig]] key named {name}"))?,
                    )
                }
                None => None,
            };
            let primaries = z.primaries.iter().map(|p| parse_primary(p)).collect::<anyhow::Result<_>>()?;
            let zone_file = z.file.as_ref().map_or_else(|| secondary_file(&state_dir, &origin), |f| base.join(f));
            let timers = TimerOverrides {
                refresh: z.refresh.map(Duration::from_secs),
                retry: z.retry.map(Duration::from_secs),
                expire: z.expire.map(Duration::from_secs),
            };
            zones.push(ZoneSpec { origin: Some(origin.clone()), file: zone_file.clone(), preload });
            secondaries.push(SecondarySpec { origin, primaries, tsig, timers, file: zone_file });
        }
        for spec in &args.secondaries {
            let Some((origin, primaries)) = spec.split_once('=') else {
                bail!("--secondary {spec:?}: expected ORIGIN=ADDR[:PORT][,ADDR...]");
            };
            let origin = parse_origin(origin)?;
            let primaries = primaries.split(',').map(parse_primary).collect::<anyhow::Result<Vec<_>>>()?;
            let zone_file = secondary_file(&state_dir, &origin);
            zones.push(ZoneSpec { origin: Some(origin.clone()), file: zone_file.clone(), preload: default_preload });
            secondaries.push(SecondarySpec {
                origin,
                primaries,
                tsig: None,
                timers: TimerOverrides::default(),
                file: zone_file,
            });
        }
        for spec in &args.zones {
            let (origin, file) = match spec.split_once('=') {
                Some((origin, file)) => (Some(parse_origin(origin)?), file),
                None => (None, spec.as_str()),
            };
            zones.push(ZoneSpec { origin, file: PathBuf::from(file), preload: default_preload });
        }
        if zones.is_empty() {
            bail!("no zones configured: give --zone FILE, --secondary or [[zone]] entries in the config file");
        }
        let listen = if !args.listen.is_empty() {
            args.listen.clone()
        } else if !file.listen.is_empty() {
            file.listen.clone()
        } else {
            vec![DEFAULT_LISTEN.parse()?]
        };
        let xdp_mode = args.xdp_mode.or(file.xdp_mode).unwrap_or(AttachMode::Native);
        let ifaces = if args.ifaces.is_empty() {
            file.iface.map(OneOrMany::into_vec).unwrap_or_default()
        } else {
            args.ifaces.clone()
        };
        if xdp_mode != AttachMode::Off && ifaces.is_empty() {
            bail!("--iface is required to attach XDP (or run with --xdp-mode off)");
        }
        let map_entries = args.map_entries.or(file.map_entries).unwrap_or(DEFAULT_MAP_ENTRIES);
        if map_entries == 0 {
            bail!("map_entries must be at least 1");
        }
        let edns_udp_payload = args.edns_udp_payload.or(file.edns_udp_payload).unwrap_or(DEFAULT_EDNS_UDP_PAYLOAD);
        if edns_udp_payload < dns_xdp_common::MIN_UDP_PAYLOAD {
            bail!("edns_udp_payload {edns_udp_payload} is below the 512 bytes every DNS server must accept");
        }
        let heartbeat = args.heartbeat_timeout.or(file.heartbeat_timeout).unwrap_or(DEFAULT_HEARTBEAT_TIMEOUT_SECS);
        if heartbeat == 0 {
            bail!("heartbeat_timeout must be at least 1 second");
        }
        let defaults = TcpLimits::default();
        let tcp_idle =
            args.tcp_idle_timeout.or(file.tcp_idle_timeout).map_or(defaults.idle_timeout, Duration::from_secs);
        if tcp_idle.is_zero() {
            bail!("tcp_idle_timeout must be at least 1 second");
        }
        let tcp_max = args.tcp_max_connections.or(file.tcp_max_connections).unwrap_or(defaults.max_connections);
        if tcp_max == 0 {
            bail!("tcp_max_connections must be at least 1");
        }
        let tcp_read =
            args.tcp_read_timeout.or(file.tcp_read_timeout).map_or(defaults.read_timeout, Duration::from_secs);
        if tcp_read.is_zero() {
            bail!("tcp_read_timeout must be at least 1 second");
        }
        let per_source = args
            .tcp_max_connections_per_source
            .or(file.tcp_max_connections_per_source)
            .unwrap_or(defaults.max_per_source);
        if per_source == 0 {
            bail!("tcp_max_connections_per_source must be at least 1");
        }
        let pipelined = args.tcp_max_pipelined.or(file.tcp_max_pipelined).unwrap_or(defaults.max_pipelined);
        if pipelined == 0 {
            bail!("tcp_max_pipelined must be at least 1");
        }
        let buffer = args.tcp_connection_buffer.or(file.tcp_connection_buffer).unwrap_or(defaults.connection_buffer);
        if !(TcpLimits::MIN_CONNECTION_BUFFER..=i32::MAX as usize / 2).contains(&buffer) {
            bail!(
                "tcp_connection_buffer {buffer} is out of range: {} to {} bytes",
                TcpLimits::MIN_CONNECTION_BUFFER,
                i32::MAX / 2
            );
        }
        let tcp = TcpLimits {
            idle_timeout: tcp_idle,
            read_timeout: tcp_read,
            max_connections: tcp_max,
            max_per_source: per_source,
            max_pipelined: pipelined,
            connection_buffer: buffer,
        };
        let udp_queue = args.udp_queue.or(file.udp_queue).unwrap_or(DEFAULT_UDP_QUEUE);
        if udp_queue == 0 {
            bail!("udp_queue must be at least 1");
        }
        let nice = args.nice.or(file.nice).unwrap_or(DEFAULT_NICE);
        if !(0..=19).contains(&nice) {
            bail!("nice {nice} is out of range: 0 to 19");
        }
        let nsid = args.nsid.clone().or(file.nsid);
        if let Some(id) = &nsid
            && (id.is_empty() || id.len() > MAX_NSID_LEN)
        {
            bail!("nsid must be 1 to {MAX_NSID_LEN} bytes, not {}", id.len());
        }
        let metrics = match args.metrics.or(file.metrics) {
            Some(MetricsListen(addr)) => addr,
            None => Some(DEFAULT_METRICS.parse()?),
        };
        let control_socket = match args.control_socket.clone().or(file.control_socket) {
            Some(ControlSocket(path)) => path,
            None => Some(PathBuf::from(DEFAULT_CONTROL_SOCKET)),
        };
        Ok(Self {
            rrl,
            cookies,
            control_socket,
            query_log_sample: args.query_log_sample.or(file.query_log_sample).unwrap_or(0),
            nsid,
            metrics,
            tcp,
            udp_queue,
            nice,
            listen,
            ifaces,
            xdp_mode,
            map_entries,
            preload: default_preload,
            edns_udp_payload,
            heartbeat_timeout: Duration::from_secs(heartbeat),
            pin_dir: args.pin_dir.clone().or(file.pin_dir).unwrap_or_else(|| PathBuf::from(DEFAULT_PIN_DIR)),
            drain_delay: Duration::from_secs(args.drain_delay.or(file.drain_delay).unwrap_or(0)),
            pid_file: args.pid_file.clone().or(file.pid_file),
            udp_threads: args
                .udp_threads
                .or(file.udp_threads)
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
            zones,
            secondaries,
        })
    }
}

/// `ADDR`, `ADDR:PORT`, `[V6]:PORT` or a bare IPv6 address.
fn parse_primary(text: &str) -> anyhow::Result<SocketAddr> {
    let text = text.trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    text.parse::<std::net::IpAddr>()
        .map(|ip| SocketAddr::new(ip, DEFAULT_PRIMARY_PORT))
        .map_err(|_| anyhow!("primary {text:?} is not ADDR or ADDR:PORT"))
}

/// Where a secondary zone's copy is kept unless its [[zone]] names a file.
/// A `/` in a label becomes `%2F`, so the copy stays inside the state dir.
fn secondary_file(state_dir: &Path, origin: &Name) -> PathBuf {
    let name = origin.to_ascii().replace('/', "%2F");
    let name = if name == "." { "root.".to_owned() } else { name };
    state_dir.join(format!("{name}zone"))
}

fn parse_origin(text: &str) -> anyhow::Result<Name> {
    let mut name = Name::from_ascii(text).with_context(|| format!("invalid zone origin {text:?}"))?;
    name.set_fqdn(true);
    Ok(name.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_error_names_file_and_line() {
        let dir = std::env::temp_dir().join(format!("dns-xdp-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("bad.toml");
        std::fs::write(&path, "listen = [\"127.0.0.1:53\"]\niface = \"lo\"\nmap_entries = \"many\"\n").expect("write");
        let err = FileConfig::load(&path).expect_err("must fail").to_string();
        assert!(err.starts_with(&format!("{}:3:", path.display())), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn control_socket_is_a_path_or_off_and_query_logging_is_off_by_default() {
        let args = |extra: &str| {
            let dir = std::env::temp_dir().join(format!("dns-xdp-config3-{}-{}", std::process::id(), extra.len()));
            std::fs::create_dir_all(&dir).expect("temp dir");
            let path = dir.join("c.toml");
            std::fs::write(&path, format!("xdp_mode = \"off\"\n{extra}\n[[zone]]\nfile = \"a.zone\"\n"))
                .expect("write");
            let settings = Settings::resolve(&RunArgs { config: Some(path), ..Default::default() }).expect("resolves");
            std::fs::remove_dir_all(&dir).ok();
            settings
        };
        let default = args("");
        assert_eq!(default.control_socket, Some(PathBuf::from(DEFAULT_CONTROL_SOCKET)));
        assert_eq!(default.query_log_sample, 0);
        assert_eq!(args("control_socket = \"off\"").control_socket, None);
        assert_eq!(args("control_socket = \"/run/x.sock\"").control_socket, Some(PathBuf::from("/run/x.sock")));
        assert_eq!(args("query_log_sample = 100").query_log_sample, 100);
        assert!("".parse::<ControlSocket>().is_err());
    }

    #[test]
    fn secondaries_come_from_flags_and_zone_entries_with_their_tsig_key() {
        let dir = std::env::temp_dir().join(format!("dns-xdp-config4-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("sec.toml");
        std::fs::write(
            &path,
            "xdp_mode = \"off\"\nstate_dir = \"/srv/dx\"\n[[tsig]]\nname = \"xfr\"\nalgorithm = \"hmac-sha512\"\n\
             secret = \"c2VjcmV0\"\n[[zone]]\norigin = \"a.test\"\nprimaries = [\"192.0.2.1\", \"[2001:db8::1]:5353\"]\n\
             tsig = \"xfr\"\nexpire = 60\n",
        )
        .expect("write");
        let args = RunArgs {
            config: Some(path.clone()),
            secondaries: vec!["b.test=192.0.2.2:5300".into()],
            ..Default::default()
        };
        let s = Settings::resolve(&args).expect("resolves");
        assert_eq!(s.secondaries.len(), 2);
        let a = &s.secondaries[0];
        assert_eq!(a.primaries, ["192.0.2.1:53".parse().expect("addr"), "[2001:db8::1]:5353".parse().expect("addr")]);
        assert_eq!(a.tsig.as_ref().map(|k| k.name.to_string()), Some("xfr.".to_owned()));
        assert_eq!(a.timers.expire, Some(Duration::from_secs(60)));
        assert_eq!(a.file, PathBuf::from("/srv/dx/a.test.zone"));
        assert_eq!(s.zones.iter().filter(|z| z.file == a.file).count(), 1);
        assert_eq!(s.secondaries[1].primaries, ["192.0.2.2:5300".parse().expect("addr")]);
        std::fs::write(
            &path,
            "xdp_mode = \"off\"\n[[zone]]\norigin = \"a.test\"\nprimaries = [\"1.2.3.4\"]\ntsig = \"nokey\"\n",
        )
        .expect("write");
        let err = Settings::resolve(&RunArgs { config: Some(path.clone()), ..Default::default() }).expect_err("no key");
        assert!(err.to_string().contains("no [[tsig]] key named nokey."), "{err}");
        assert!(TsigKey::new("k", "hmac-md5", "c2VjcmV0").unwrap_err().to_string().contains("not supported"));
        assert!(TsigKey::new("k", "hmac-sha256", "not base64!").unwrap_err().to_string().contains("base64"));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn iface_is_one_name_or_a_list() {
        let one: FileConfig = toml::from_str("iface = \"eth0\"").expect("one");
        assert_eq!(one.iface.map(OneOrMany::into_vec), Some(vec!["eth0".to_owned()]));
        let many: FileConfig = toml::from_str("iface = [\"eth0\", \"eth1\"]").expect("many");
        assert_eq!(many.iface.map(OneOrMany::into_vec), Some(vec!["eth0".to_owned(), "eth1".to_owned()]));
    }

    #[test]
    fn tcp_limits_come_from_file_and_flags_and_are_checked() {
        let dir = std::env::temp_dir().join(format!("dns-xdp-config3-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("tcp.toml");
        std::fs::write(
            &path,
            "xdp_mode = \"off\"\ntcp_max_connections_per_source = 4\ntcp_read_timeout = 3\n\
             tcp_max_pipelined = 8\ntcp_connection_buffer = 8192\n[[zone]]\nfile = \"a.zone\"\n",
        )
        .expect("write");
        let args = RunArgs { config: Some(path.clone()), tcp_max_pipelined: Some(2), ..Default::default() };
        let tcp = Settings::resolve(&args).expect("resolves").tcp;
        assert_eq!(
            tcp,
            TcpLimits {
                read_timeout: Duration::from_secs(3),
                max_per_source: 4,
                max_pipelined: 2,
                connection_buffer: 8192,
                ..TcpLimits::default()
            }
        );
        for (bad, says) in [
            (RunArgs { tcp_max_connections_per_source: Some(0), ..Default::default() }, "per_source"),
            (RunArgs { tcp_read_timeout: Some(0), ..Default::default() }, "tcp_read_timeout"),
            (RunArgs { tcp_max_pipelined: Some(0), ..Default::default() }, "tcp_max_pipelined"),
            (RunArgs { tcp_connection_buffer: Some(100), ..Default::default() }, "tcp_connection_buffer"),
            (RunArgs { udp_queue: Some(0), ..Default::default() }, "udp_queue"),
            (RunArgs { nice: Some(20), ..Default::default() }, "nice"),
            (RunArgs { nice: Some(-1), ..Default::default() }, "nice"),
        ] {
            let err = Settings::resolve(&RunArgs { config: Some(path.clone()), ..bad }).expect_err(says).to_string();
            assert!(err.contains(says), "{err}");
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn command_line_overrides_file() {
        let dir = std::env::temp_dir().join(format!("dns-xdp-config2-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("ok.toml");
        std::fs::write(&path, "iface = \"eth9\"\nedns_udp_payload = 1400\n[[zone]]\nfile = \"a.zone\"\n")
            .expect("write");
        let args = RunArgs { config: Some(path), ifaces: vec!["lo".into()], ..Default::default() };
        let s = Settings::resolve(&args).expect("resolves");
        assert_eq!(s.ifaces, ["lo"]);
        assert_eq!(s.edns_udp_payload, 1400);
        assert_eq!(s.zones[0].file, dir.join("a.zone"));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn rrl_is_off_by_default_and_flags_set_it() {
        let zone = || vec!["a.zone".to_owned()];
        let base = || RunArgs { zones: zone(), xdp_mode: Some(AttachMode::Off), ..Default::default() };
        assert_eq!(Settings::resolve(&base()).expect("resolves").rrl, None);
        let args = RunArgs {
            rrl_rate: Some(100),
            rrl_slip: Some(3),
            rrl_exempt: vec!["192.0.2.7/24".to_owned(), "2001:db8::1".to_owned()],
            ..base()
        };
        let rrl = Settings::resolve(&args).expect("resolves").rrl.expect("on");
        assert_eq!(rrl.limits, dns_xdp_common::rrl::RrlLimits::new(100, 3, 24, 56));
        assert!(rrl.is_exempt("192.0.2.200".parse().expect("literal")));
        assert!(rrl.is_exempt("::ffff:192.0.2.1".parse().expect("literal")));
        assert!(rrl.is_exempt("2001:db8::1".parse().expect("literal")));
        assert!(!rrl.is_exempt("2001:db8::2".parse().expect("literal")));
        assert!(!rrl.is_exempt("192.0.3.1".parse().expect("literal")));
        for (args, needle) in [
            (RunArgs { rrl_rate: Some(0), ..base() }, "rrl_rate"),
            (RunArgs { rrl_slip: Some(2), ..base() }, "need rrl_rate"),
            (RunArgs { rrl_rate: Some(5), rrl_ipv4_prefix: Some(33), ..base() }, "rrl_ipv4_prefix"),
            (RunArgs { rrl_rate: Some(5), rrl_exempt: vec!["10.0.0.0/40".to_owned()], ..base() }, "10.0.0.0/40"),
        ] {
            let err = Settings::resolve(&args).expect_err(needle).to_string();
            assert!(err.contains(needle), "{err}");
        }
    }

    #[test]
    fn cookies_are_on_by_default_and_secrets_come_from_flags_the_file_or_a_secret_file() {
        let base =
            || RunArgs { zones: vec!["a.zone".to_owned()], xdp_mode: Some(AttachMode::Off), ..Default::default() };
        let resolve = |args: &RunArgs| Settings::resolve(args).map(|s| s.cookies);
        assert_eq!(resolve(&base()).expect("resolves"), Some(CookieSettings { secret: None, previous: None }));
        assert_eq!(resolve(&RunArgs { cookies: Some(CookieMode::Off), ..base() }).expect("resolves"), None);
        let current = "e5e973e5a6b2a43f48e7dc849e37bfcf";
        let previous = "DD3BDF9344B678B185A6F5CB60FCA715";
        let both = CookieSettings {
            secret: Some(*b"\xe5\xe9\x73\xe5\xa6\xb2\xa4\x3f\x48\xe7\xdc\x84\x9e\x37\xbf\xcf"),
            previous: Some(*b"\xdd\x3b\xdf\x93\x44\xb6\x78\xb1\x85\xa6\xf5\xcb\x60\xfc\xa7\x15"),
        };
        let args = RunArgs {
            cookie_secret: Some(current.to_owned()),
            cookie_secret_previous: Some(previous.to_owned()),
            ..base()
        };
        assert_eq!(resolve(&args).expect("resolves"), Some(both));
        let dir = std::env::temp_dir().join(format!("dns-xdp-config-cookies-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("cookie.secret");
        std::fs::write(&file, format!("{current}\n{previous}\n")).expect("write");
        let config = dir.join("c.toml");
        std::fs::write(&config, format!("cookie_secret_file = {:?}\n[[zone]]\nfile = \"a.zone\"\n", file))
            .expect("write");
        let from_file = RunArgs { config: Some(config.clone()), xdp_mode: Some(AttachMode::Off), ..Default::default() };
        assert_eq!(resolve(&from_file).expect("resolves"), Some(both));
        std::fs::write(&config, format!("cookie_secret = \"{current}\"\n[[zone]]\nfile = \"a.zone\"\n"))
            .expect("write");
        assert_eq!(resolve(&from_file).expect("resolves").and_then(|c| c.secret), both.secret);
        for (args, needle) in [
            (RunArgs { cookie_secret: Some("e5e973".to_owned()), ..base() }, "16 bytes"),
            (RunArgs { cookie_secret: Some("not hex at all, not hex at all!!".to_owned()), ..base() }, "32 hex digits"),
            (RunArgs { cookie_secret_previous: Some(previous.to_owned()), ..base() }, "needs cookie_secret"),
            (
                RunArgs { cookies: Some(CookieMode::Off), cookie_secret: Some(current.to_owned()), ..base() },
                "cookies on",
            ),
            (RunArgs { cookie_secret_file: Some(dir.join("missing")), ..base() }, "missing"),
            (
                RunArgs { cookie_secret_file: Some(file.clone()), cookie_secret: Some(current.to_owned()), ..base() },
                "not both",
            ),
        ] {
            let err = format!("{:#}", resolve(&args).expect_err(needle));
            assert!(err.contains(needle), "{err}");
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}
