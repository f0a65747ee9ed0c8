//! Differential test: dns-xdp against NSD 4.6.1, the server whose behaviour
//! `authority.rs` follows.
//!
//! One network namespace (loopback only) runs NSD on 127.0.0.1:5301 and the
//! dns-xdp daemon (`--xdp-mode off`) on 127.0.0.1:5302, both serving
//! `tests/zones/{diff.test,alt.test,kid.diff.test}.zone`. Every query is sent
//! to both from inside the namespace and the replies are compared field by
//! field: rcode (extended included), header flags, the question as echoed,
//! each section as an ordered list of records (owner names and names inside
//! RDATA compared case-insensitively, TTLs exactly), and the OPT record.
//!
//! Where the two may legitimately differ, [`ALLOWED`] names the difference,
//! the RFC text that allows it, and how the comparison checks that the
//! difference is only that. Everything else fails the test with both
//! answers printed. `comparison_catches_wrong_answers` proves that a wrong
//! answer is not waved through.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket},
    path::PathBuf,
    time::Duration,
};

use dns_xdp_tests::{
    ChildGuard, NetNs, NetNsExt as _, daemon_bin, in_netns, require_root, tcp_exchange, udp_socket,
    wire::{header, spell, wire_name},
    workspace_root,
};

const NSD_ADDR: &str = "127.0.0.1:5301";
const XDP_ADDR: &str = "127.0.0.1:5302";
const TIMEOUT: Duration = Duration::from_secs(2);
/// The UDP payload size both servers advertise and cap UDP replies at
/// (dns-xdp by default; NSD by `ipv4-edns-size` in the generated config).
const SERVER_PAYLOAD: u16 = 1232;
/// dns-xdp's `authority::MAX_REDIRECTIONS`.
const MAX_REDIRECTIONS: usize = 16;

const ZONES: &[(&str, &str)] =
    &[("diff.test", "diff.test.zone"), ("alt.test", "alt.test.zone"), ("kid.diff.test", "kid.diff.test.zone")];

// ---------------------------------------------------------------------------
// The allowed differences
// ---------------------------------------------------------------------------

/// A difference between NSD's answer and dns-xdp's that the RFCs allow.
struct Allowed {
    id: &'static str,
    rfc: &'static str,
    what: &'static str,
}

/// Every difference the comparison accepts. Each is checked narrowly (see
/// the function named in `what`); anything else is a failure.
const ALLOWED: &[Allowed] = &[
    Allowed {
        id: "truncation",
        rfc: "RFC 2181 §9, RFC 1035 §4.2.1, RFC 6891 §6.2.5, RFC 7766 §5 (TC, then retry over TCP)",
        what: "UDP answer larger than the client's limit: dns-xdp sends TC=1 with the question only; NSD 4.6 \
               first drops additional and optional authority RRsets (TC=0; for a referral it keeps the glue \
               that fits), and sets TC keeping the RRsets that fit when a required one does not fit. \
               Checked (truncation_explains): each UDP answer is its own server's TCP answer or a part of \
               it, dns-xdp's TCP answer is really over the limit, and the two TCP answers agree.",
    },
    Allowed {
        id: "rrset-ttl",
        rfc: "RFC 2181 §5.2",
        what: "An RRset whose records have different TTLs in the zone file: dns-xdp serves every record \
               with the lowest TTL (what §5.2 tells clients to use), NSD each record's own. Checked: only \
               NSD RRsets with mixed TTLs are lowered to their minimum before comparing.",
    },
    Allowed {
        id: "chain-limit",
        rfc: "RFC 1034 §4.3.2 step 3a (no bound given); dns-xdp authority::MAX_REDIRECTIONS",
        what: "A CNAME/DNAME chain longer than 16 steps: dns-xdp stops after 16 redirections (17 answer \
               records, no authority section), NSD follows as far as its buffer allows. Checked: dns-xdp's \
               answer section is exactly the first 17 records of NSD's.",
    },
    Allowed {
        id: "cd-bit",
        rfc: "RFC 4035 §3.1.6 (SHOULD clear) vs §3.2.2 / RFC 6840 §5.9 (copy)",
        what: "A query with CD=1: dns-xdp copies CD into the reply (dns-xdp-common COPIED_FROM_QUERY, \
               shared with the XDP program), NSD clears it as §3.1.6 suggests for authoritative answers. \
               Checked: only when the query had CD and only that bit.",
    },
    Allowed {
        id: "error-shape",
        rfc: "RFC 1035 §4.1.1, RFC 6891 §6.1.1 / §7",
        what: "FORMERR and NOTIMP replies carry the same rcode, opcode and no records, but NSD drops the \
               question and the OPT record (and clears RD for QDCOUNT != 1) where dns-xdp echoes the \
               question and, as RFC 6891 §6.1.1 requires, includes an OPT when the query had one.",
    },
    Allowed {
        id: "notify",
        rfc: "RFC 1996 (NOTIFY is an optional extension), RFC 1035 §4.1.1 (NOTIMP)",
        what: "NOTIFY (opcode 4) is not implemented in dns-xdp yet: NOTIMP; NSD handles it (REFUSED, \
               NXDOMAIN or SERVFAIL depending on its ACLs).",
    },
    Allowed {
        id: "cookie",
        rfc: "RFC 7873 5.2.2, RFC 9018 (NSD 4.6 does not implement cookies)",
        what: "A COOKIE option: dns-xdp answers it with the client cookie and a server cookie, NSD ignores it.",
    },
    Allowed {
        id: "axfr-udp",
        rfc: "RFC 5936 §4.2 (AXFR over UDP is not defined)",
        what: "AXFR over UDP: dns-xdp REFUSED (it offers no transfers at all), NSD NOTIMP.",
    },
    Allowed {
        id: "qclass",
        rfc: "RFC 1035 §3.2.4/§3.2.5, RFC 4892 (CHAOS identity is optional)",
        what: "Classes other than IN: dns-xdp REFUSED; NSD answers CH id.server/version.bind-style names \
               and treats QCLASS * (ANY) as IN.",
    },
    Allowed {
        id: "empty-question",
        rfc: "RFC 1035 §4.1.2, RFC 7873 §5.4 (QDCOUNT 0 is only valid with a COOKIE, for servers with cookies)",
        what: "A query with no question and an OPT record: dns-xdp FORMERR (with OPT); NSD 4.6 answers \
               NOERROR with an OPT (its FLAGS_SET after query_error clears the rcode). Checked: QDCOUNT 0, \
               no records either side.",
    },
    Allowed {
        id: "lenient-query",
        rfc: "RFC 1035 §4.1 (does not say what to do with records in a query's answer section)",
        what: "A QUERY with records in the answer or authority section, or additional records other than \
               OPT: NSD answers FORMERR, dns-xdp ignores the extra records and answers the question.",
    },
];

fn allowed(id: &str) -> &'static Allowed {
    ALLOWED.iter().find(|a| a.id == id).unwrap_or_else(|| panic!("no allowed difference {id}"))
}

// ---------------------------------------------------------------------------
// Queries
// ---------------------------------------------------------------------------

/// The OPT record of a query.
#[derive(Clone, Debug)]
struct QueryEdns {
    payload: u16,
    dnssec_ok: bool,
    version: u8,
    options: Vec<(u16, Vec<u8>)>,
}

impl QueryEdns {
    fn size(payload: u16) -> Self {
        Self { payload, dnssec_ok: false, version: 0, options: Vec::new() }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = vec![0, 0, 41];
        out.extend_from_slice(&self.payload.to_be_bytes());
        out.extend_from_slice(&[0, self.version, if self.dnssec_ok { 0x80 } else { 0 }, 0]);
        let rdata: Vec<u8> = self
            .options
            .iter()
            .flat_map(|(code, data)| {
                let mut o = code.to_be_bytes().to_vec();
                o.extend_from_slice(&(data.len() as u16).to_be_bytes());
                o.extend_from_slice(data);
                o
            })
            .collect();
        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(&rdata);
        out
    }
}

/// A one-question query.
fn build_query(id: u16, flags: u16, qname: &[u8], qtype: u16, qclass: u16, edns: Option<&QueryEdns>) -> Vec<u8> {
    let mut out = header(id, flags, [1, 0, 0, u16::from(edns.is_some())]);
    out.extend_from_slice(qname);
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&qclass.to_be_bytes());
    if let Some(edns) = edns {
        out.extend_from_slice(&edns.bytes());
    }
    out
}

const RD: u16 = 0x0100;
const CD: u16 = 0x0010;
const TC: u16 = 0x0200;
const QR: u16 = 0x8000;
const AA: u16 = 0x0400;
const OPCODE: u16 = 0x7800;

/// What the comparison needs to know about a query.
#[derive(Clone, Debug)]
struct QueryInfo {
    bytes: Vec<u8>,
    tcp: bool,
}

impl QueryInfo {
    fn flags(&self) -> u16 {
        u16::from_be_bytes([self.bytes[2], self.bytes[3]])
    }

    fn count(&self, i: usize) -> u16 {
        u16::from_be_bytes([self.bytes[4 + 2 * i], self.bytes[5 + 2 * i]])
    }

    /// Type and class of the first question, when it parses.
    fn qtype_class(&self) -> Option<(u16, u16)> {
        let mut pos = 12;
        loop {
            let len = *self.bytes.get(pos)? as usize;
            if len == 0 || len & 0xc0 != 0 {
                pos += if len == 0 { 1 } else { 2 };
                break;
            }
            pos += 1 + len;
        }
        let b = self.bytes.get(pos..pos + 4)?;
        Some((u16::from_be_bytes([b[0], b[1]]), u16::from_be_bytes([b[2], b[3]])))
    }

    /// The client's UDP payload limit as RFC 6891 §6.2.5 lets the server
    /// apply it: 512 without EDNS, else the client's size within
    /// [512, server's size].
    fn udp_limit(&self) -> usize {
        let parsed = parse(&self.bytes).ok();
        let client = parsed.and_then(|p| p.opt.map(|o| o.payload));
        usize::from(client.map_or(512, |c| c.clamp(512, SERVER_PAYLOAD)))
    }

    fn describe(&self) -> String {
        let proto = if self.tcp { "TCP" } else { "UDP" };
        match parse(&self.bytes) {
            Ok(p) => {
                let mut s = format!("{proto} {}", p.question_text());
                let _ = write!(s, " flags={:#06x}", self.flags());
                match &p.opt {
                    Some(o) => {
                        let _ = write!(s, " EDNS({}{}", o.payload, if o.flags & 0x8000 != 0 { " DO" } else { "" });
                        if o.version != 0 {
                            let _ = write!(s, " v{}", o.version);
                        }
                        if !o.options.is_empty() {
                            let _ = write!(s, " opts={:?}", o.options.iter().map(|(c, _)| c).collect::<Vec<_>>());
                        }
                        s.push(')');
                    }
                    None => s.push_str(" no-EDNS"),
                }
                s
            }
            Err(e) => format!("{proto} raw query ({e}): {:02x?}", self.bytes),
        }
    }
}

// ---------------------------------------------------------------------------
// Replies, parsed and normalised for comparison
// ---------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq)]
struct Rec {
    /// Lower-cased presentation form.
    owner: String,
    rtype: u16,
    class: u16,
    ttl: u32,
    /// Canonical presentation form: names in RDATA lower-cased and
    /// decompressed, other data exact.
    rdata: String,
}

impl Rec {
    fn text(&self) -> String {
        format!("{} {} {} {} {}", self.owner, self.ttl, class_name(self.class), type_name(self.rtype), self.rdata)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Opt {
    payload: u16,
    ext_rcode: u8,
    version: u8,
    flags: u16,
    options: Vec<(u16, Vec<u8>)>,
}

/// A reply as compared: everything but the ID and the wire encoding.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Normal {
    flags: u16,
    qdcount: u16,
    /// The question section exactly as received (names keep their case).
    question: Vec<u8>,
    sections: [Vec<Rec>; 3],
    opt: Option<Opt>,
}

impl Normal {
    fn tc(&self) -> bool {
        self.flags & TC != 0
    }

    fn rcode(&self) -> u16 {
        (u16::from(self.opt.as_ref().map_or(0, |o| o.ext_rcode)) << 4) | (self.flags & 0xf)
    }

    fn record_count(&self) -> usize {
        self.sections.iter().map(Vec::len).sum()
    }

    fn question_text(&self) -> String {
        if self.question.is_empty() {
            return format!("<no question, QDCOUNT {}>", self.qdcount);
        }
        match read_name(&self.question, 0) {
            Ok((name, end)) if self.question.len() >= end + 4 => {
                let t = u16::from_be_bytes([self.question[end], self.question[end + 1]]);
                let c = u16::from_be_bytes([self.question[end + 2], self.question[end + 3]]);
                // The question keeps its case: show it as sent.
                let raw = raw_name_text(&self.question);
                let _ = name;
                format!("{raw} {} {}", class_name(c), type_name(t))
            }
            _ => format!("<question {:02x?}>", self.question),
        }
    }

    fn render(&self) -> String {
        let mut s = String::new();
        let names =
            [(QR, "qr"), (AA, "aa"), (TC, "tc"), (RD, "rd"), (0x80, "ra"), (0x40, "z"), (0x20, "ad"), (CD, "cd")];
        let flags: Vec<&str> = names.iter().filter(|(bit, _)| self.flags & bit != 0).map(|(_, n)| *n).collect();
        let _ = writeln!(
            s,
            "    opcode {} rcode {} flags [{}]; question {}",
            (self.flags & OPCODE) >> 11,
            rcode_name(self.rcode()),
            flags.join(" "),
            self.question_text()
        );
        for (title, records) in ["answer", "authority", "additional"].iter().zip(&self.sections) {
            if !records.is_empty() {
                let _ = writeln!(s, "    {title}:");
                for r in records {
                    let _ = writeln!(s, "      {}", r.text());
                }
            }
        }
        match &self.opt {
            Some(o) => {
                let _ = writeln!(
                    s,
                    "    OPT payload {} version {} ext-rcode {} flags {:#06x} options {:?}",
                    o.payload, o.version, o.ext_rcode, o.flags, o.options
                );
            }
            None => s.push_str("    no OPT\n"),
        }
        s
    }
}

fn type_name(t: u16) -> String {
    match t {
        1 => "A".into(),
        2 => "NS".into(),
        5 => "CNAME".into(),
        6 => "SOA".into(),
        12 => "PTR".into(),
        13 => "HINFO".into(),
        15 => "MX".into(),
        16 => "TXT".into(),
        28 => "AAAA".into(),
        33 => "SRV".into(),
        39 => "DNAME".into(),
        41 => "OPT".into(),
        43 => "DS".into(),
        251 => "IXFR".into(),
        252 => "AXFR".into(),
        255 => "ANY".into(),
        257 => "CAA".into(),
        other => format!("TYPE{other}"),
    }
}

fn class_name(c: u16) -> String {
    match c {
        1 => "IN".into(),
        3 => "CH".into(),
        254 => "NONE".into(),
        255 => "ANY".into(),
        other => format!("CLASS{other}"),
    }
}

fn rcode_name(r: u16) -> String {
    format!("{}({r})", dns_xdp::wire::rcode_mnemonic(r))
}

/// The presentation form of the uncompressed name at the start of `bytes`,
/// case kept.
fn raw_name_text(bytes: &[u8]) -> String {
    let mut out = String::new();
    let mut pos = 0;
    while let Some(&len) = bytes.get(pos) {
        if len == 0 || len & 0xc0 != 0 {
            break;
        }
        let label = bytes.get(pos + 1..pos + 1 + len as usize).unwrap_or_default();
        push_label(&mut out, label, false);
        out.push('.');
        pos += 1 + len as usize;
    }
    if out.is_empty() { ".".into() } else { out }
}

fn push_label(out: &mut String, label: &[u8], lower: bool) {
    for &b in label {
        match b {
            b'.' | b'\\' | b'"' | b'(' | b')' | b';' | b'@' | b'$' => {
                out.push('\\');
                out.push(char::from(b));
            }
            0x21..=0x7e => out.push(char::from(if lower { b.to_ascii_lowercase() } else { b })),
            _ => {
                let _ = write!(out, "\\{b:03}");
            }
        }
    }
}

/// Reads a possibly compressed name at `pos`; returns its lower-cased
/// presentation form and the position after it.
fn read_name(msg: &[u8], mut pos: usize) -> Result<(String, usize), String> {
    let mut out = String::new();
    let mut end = None;
    let mut wire_len = 0;
    for _ in 0..256 {
        let len = *msg.get(pos).ok_or("name runs past the end")? as usize;
        match len & 0xc0 {
            0xc0 => {
                let low = *msg.get(pos + 1).ok_or("pointer runs past the end")? as usize;
                end.get_or_insert(pos + 2);
                pos = ((len & 0x3f) << 8) | low;
            }
            0x00 if len == 0 => {
                if out.is_empty() {
                    out.push('.');
                }
                return Ok((out, end.unwrap_or(pos + 1)));
            }
            0x00 => {
                let label = msg.get(pos + 1..pos + 1 + len).ok_or("label runs past the end")?;
                wire_len += len + 1;
                if wire_len > 255 {
                    return Err("name longer than 255 octets".into());
                }
                push_label(&mut out, label, true);
                out.push('.');
                pos += 1 + len;
            }
            _ => return Err(format!("label type {len:#04x}")),
        }
    }
    Err("compression loop".into())
}

fn be16(msg: &[u8], pos: usize) -> Result<u16, String> {
    msg.get(pos..pos + 2).map(|b| u16::from_be_bytes([b[0], b[1]])).ok_or_else(|| "truncated".into())
}

fn be32(msg: &[u8], pos: usize) -> Result<u32, String> {
    msg.get(pos..pos + 4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]])).ok_or_else(|| "truncated".into())
}

/// RDATA in canonical presentation form.
fn rdata_text(msg: &[u8], rtype: u16, start: usize, len: usize) -> Result<String, String> {
    let rd = msg.get(start..start + len).ok_or("RDATA runs past the end")?;
    let name_at = |pos: usize| read_name(msg, start + pos);
    let text = match rtype {
        1 if len == 4 => Ipv4Addr::new(rd[0], rd[1], rd[2], rd[3]).to_string(),
        28 if len == 16 => Ipv6Addr::from(<[u8; 16]>::try_from(rd).map_err(|_| "AAAA")?).to_string(),
        2 | 5 | 12 | 39 => {
            let (name, end) = name_at(0)?;
            if end != start + len {
                return Err(format!("{} RDATA length mismatch", type_name(rtype)));
            }
            name
        }
        15 => format!("{} {}", be16(rd, 0)?, name_at(2)?.0),
        33 => format!("{} {} {} {}", be16(rd, 0)?, be16(rd, 2)?, be16(rd, 4)?, name_at(6)?.0),
        6 => {
            let (mname, p) = name_at(0)?;
            let (rname, p) = read_name(msg, p)?;
            let nums: Result<Vec<String>, String> =
                (0..5).map(|i| be32(msg, p + 4 * i).map(|v| v.to_string())).collect();
            format!("{mname} {rname} {}", nums?.join(" "))
        }
        16 => {
            let mut parts = Vec::new();
            let mut p = 0;
            while p < rd.len() {
                let l = rd[p] as usize;
                let s = rd.get(p + 1..p + 1 + l).ok_or("TXT string runs past RDATA")?;
                let mut q = String::from("\"");
                for &b in s {
                    match b {
                        b'"' | b'\\' => {
                            q.push('\\');
                            q.push(char::from(b));
                        }
                        0x20..=0x7e => q.push(char::from(b)),
                        _ => {
                            let _ = write!(q, "\\{b:03}");
                        }
                    }
                }
                q.push('"');
                parts.push(q);
                p += 1 + l;
            }
            parts.join(" ")
        }
        _ => format!("\\# {len} {}", rd.iter().map(|b| format!("{b:02x}")).collect::<String>()),
    };
    Ok(text)
}

/// Parses a whole reply; an error names what is malformed.
fn parse(msg: &[u8]) -> Result<Normal, String> {
    if msg.len() < 12 {
        return Err(format!("{} bytes: shorter than a header", msg.len()));
    }
    let flags = be16(msg, 2)?;
    let counts = [be16(msg, 4)?, be16(msg, 6)?, be16(msg, 8)?, be16(msg, 10)?];
    let mut pos = 12;
    for _ in 0..counts[0] {
        let (_, end) = read_name(msg, pos)?;
        pos = end + 4;
        if pos > msg.len() {
            return Err("question runs past the end".into());
        }
    }
    let question = msg[12..pos].to_vec();
    let mut sections: [Vec<Rec>; 3] = Default::default();
    let mut opt = None;
    for (i, &count) in counts[1..].iter().enumerate() {
        for _ in 0..count {
            let (owner, p) = read_name(msg, pos)?;
            let rtype = be16(msg, p)?;
            let class = be16(msg, p + 2)?;
            let ttl = be32(msg, p + 4)?;
            let rdlen = usize::from(be16(msg, p + 8)?);
            let rstart = p + 10;
            if rstart + rdlen > msg.len() {
                return Err(format!("record {owner} {} runs past the end", type_name(rtype)));
            }
            if rtype == 41 {
                if i != 2 || owner != "." || opt.is_some() {
                    return Err("misplaced or repeated OPT record".into());
                }
                let mut options = Vec::new();
                let mut q = rstart;
                while q < rstart + rdlen {
                    let code = be16(msg, q)?;
                    let olen = usize::from(be16(msg, q + 2)?);
                    let data = msg.get(q + 4..q + 4 + olen).ok_or("option runs past the end")?;
                    options.push((code, data.to_vec()));
                    q += 4 + olen;
                }
                opt = Some(Opt {
                    payload: class,
                    ext_rcode: (ttl >> 24) as u8,
                    version: (ttl >> 16) as u8,
                    flags: ttl as u16,
                    options,
                });
            } else {
                let rdata = rdata_text(msg, rtype, rstart, rdlen)?;
                sections[i].push(Rec { owner, rtype, class, ttl, rdata });
            }
            pos = rstart + rdlen;
        }
    }
    if pos != msg.len() {
        return Err(format!("{} bytes after the last record", msg.len() - pos));
    }
    Ok(Normal { flags, qdcount: counts[0], question, sections, opt })
}

// ---------------------------------------------------------------------------
// Comparison
// ---------------------------------------------------------------------------

#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Same,
    /// Differences, all allowed: the ids of the [`ALLOWED`] entries used.
    Explained(Vec<&'static str>),
    Unexplained(String),
}

#[derive(Clone, Copy, Debug)]
enum Side {
    Xdp,
    Nsd,
}

/// Sends the query again over TCP to one server (the truncation check needs
/// both TCP answers).
type Refetch<'a> = dyn FnMut(Side) -> Option<Vec<u8>> + 'a;

/// Compares dns-xdp's reply `x` with NSD's reply `n` to `query`.
fn compare(query: &QueryInfo, x: Option<&[u8]>, n: Option<&[u8]>, refetch: &mut Refetch<'_>) -> Verdict {
    let (x, n) = match (x, n) {
        (None, None) => return Verdict::Same,
        (Some(_), None) => return Verdict::Unexplained("NSD did not answer, dns-xdp did".into()),
        (None, Some(_)) => return Verdict::Unexplained("dns-xdp did not answer, NSD did".into()),
        (Some(x), Some(n)) => (x, n),
    };
    if x.get(..2) != query.bytes.get(..2) {
        return Verdict::Unexplained("dns-xdp's reply ID differs from the query's".into());
    }
    let xn = match parse(x) {
        Ok(p) => p,
        Err(e) => return Verdict::Unexplained(format!("dns-xdp's reply does not parse: {e}")),
    };
    let nn = match parse(n) {
        Ok(p) => p,
        Err(e) => return Verdict::Unexplained(format!("NSD's reply does not parse: {e}")),
    };
    if xn == nn {
        return Verdict::Same;
    }

    // Normalisations: each undoes one allowed difference on NSD's side.
    let mut used = Vec::new();
    let mut nn = nn;
    if lower_mixed_ttls(&mut nn) {
        used.push("rrset-ttl");
    }
    // dns-xdp answers a COOKIE option with the client cookie and a server
    // cookie (RFC 7873 5.2.2); NSD 4.6 has no cookies and ignores it.
    if let (Some(xo), Some(no)) = (&xn.opt, &mut nn.opt) {
        let cookie: Vec<_> =
            xo.options.iter().filter(|(code, data)| *code == 10 && data.len() == 24).cloned().collect();
        if cookie.len() == 1 && !no.options.iter().any(|(code, _)| *code == 10) {
            let mut with_cookie = no.options.clone();
            with_cookie.push(cookie[0].clone());
            with_cookie.sort();
            let mut ours = xo.options.clone();
            ours.sort();
            if with_cookie == ours {
                no.options = xo.options.clone();
                used.push("cookie");
            }
        }
    }
    if query.flags() & CD != 0 && xn.flags & CD != 0 && nn.flags & CD == 0 {
        nn.flags |= CD;
        used.push("cd-bit");
    }
    if xn == nn {
        return Verdict::Explained(used);
    }

    let qflags = query.flags();
    let opcode = (qflags & OPCODE) >> 11;
    let qtc = query.qtype_class();
    let no_records = |m: &Normal| m.record_count() == 0;
    let structural: Option<&'static str> = if xn.rcode() == nn.rcode()
        && matches!(xn.rcode(), 1 | 4)
        && no_records(&xn)
        && no_records(&nn)
        && xn.flags & (QR | OPCODE) == nn.flags & (QR | OPCODE)
    {
        Some("error-shape")
    } else if query.count(0) == 0
        && xn.rcode() == 1
        && nn.rcode() == 0
        && no_records(&xn)
        && no_records(&nn)
        && xn.opt.is_some()
    {
        Some("empty-question")
    } else if opcode == 4 && xn.rcode() == 4 && no_records(&xn) {
        Some("notify")
    } else if !query.tcp && qtc.is_some_and(|(t, _)| t == 252) && xn.rcode() == 5 && nn.rcode() == 4 {
        Some("axfr-udp")
    } else if qtc.is_some_and(|(_, c)| c != 1) && xn.rcode() == 5 && no_records(&xn) {
        Some("qclass")
    } else if (query.count(1) > 0 || query.count(2) > 0 || query.count(3) > 1) && nn.rcode() == 1 && xn.rcode() != 1 {
        Some("lenient-query")
    } else if chain_limit_explains(&xn, &nn) {
        Some("chain-limit")
    } else {
        None
    };
    if let Some(rule) = structural {
        used.push(rule);
        return Verdict::Explained(used);
    }
    if !query.tcp {
        match truncation_explains(query, &xn, &nn, refetch) {
            Ok(mut rules) => {
                used.append(&mut rules);
                used.dedup();
                return Verdict::Explained(used);
            }
            Err(why) => return Verdict::Unexplained(why),
        }
    }
    Verdict::Unexplained(first_difference(&xn, &nn))
}

/// Lowers every NSD RRset whose records have different TTLs to its lowest
/// TTL; true when something changed.
fn lower_mixed_ttls(m: &mut Normal) -> bool {
    let mut changed = false;
    for section in &mut m.sections {
        let mut min: BTreeMap<(String, u16, u16), u32> = BTreeMap::new();
        for r in section.iter() {
            let e = min.entry((r.owner.clone(), r.rtype, r.class)).or_insert(r.ttl);
            *e = (*e).min(r.ttl);
        }
        for r in section.iter_mut() {
            let lowest = min[&(r.owner.clone(), r.rtype, r.class)];
            if r.ttl != lowest {
                r.ttl = lowest;
                changed = true;
            }
        }
    }
    changed
}

/// dns-xdp stopped a redirection chain after [`MAX_REDIRECTIONS`] steps
/// where NSD went on.
fn chain_limit_explains(x: &Normal, n: &Normal) -> bool {
    let limit = MAX_REDIRECTIONS + 1;
    let [xa, xs, xd] = &x.sections;
    x.rcode() == 0
        && !x.tc()
        && !n.tc()
        && xa.len() == limit
        && xs.is_empty()
        && xd.is_empty()
        && n.sections[0].len() > limit
        && n.sections[0][..limit] == xa[..]
        && xa.iter().all(|r| matches!(r.rtype, 5 | 39))
        && x.flags == n.flags
        && x.question == n.question
        && x.opt == n.opt
}

/// Whether `part` is `full` with some records left out and maybe TC set:
/// what NSD sends when its full answer does not fit.
fn is_part_of(part: &Normal, full: &Normal) -> bool {
    part.flags & !TC == full.flags & !TC
        && part.question == full.question
        && part.opt == full.opt
        && part.sections.iter().zip(&full.sections).all(|(p, f)| {
            let mut rest = f.clone();
            p.iter().all(|r| match rest.iter().position(|c| c == r) {
                Some(i) => {
                    rest.remove(i);
                    true
                }
                None => false,
            })
        })
}

/// The truncation rule (see [`ALLOWED`]): returns the rules used, or why the
/// UDP difference is not explained by truncation.
fn truncation_explains(
    query: &QueryInfo,
    x: &Normal,
    n: &Normal,
    refetch: &mut Refetch<'_>,
) -> Result<Vec<&'static str>, String> {
    let plain = || first_difference(x, n);
    let xt_bytes = refetch(Side::Xdp).ok_or_else(|| format!("{}; and dns-xdp gave no TCP answer", plain()))?;
    let nt_bytes = refetch(Side::Nsd).ok_or_else(|| format!("{}; and NSD gave no TCP answer", plain()))?;
    let (xt, nt) = match (parse(&xt_bytes), parse(&nt_bytes)) {
        (Ok(xt), Ok(nt)) => (xt, nt),
        _ => return Err(format!("{}; and a TCP answer does not parse", plain())),
    };
    let limit = query.udp_limit();
    let x_full = *x == xt;
    let x_truncated = x.tc()
        && x.record_count() == 0
        && x.question == xt.question
        && x.opt == xt.opt
        && x.flags & !TC == xt.flags
        && xt_bytes.len() > limit;
    if x_full && xt_bytes.len() > limit {
        return Err(format!("dns-xdp sent {} bytes over UDP, over the limit of {limit}", xt_bytes.len()));
    }
    if !(x_full || x_truncated) {
        return Err(format!(
            "{}; and dns-xdp's UDP answer is neither its TCP answer nor a proper TC reply \
             (TCP answer {} bytes, limit {limit})",
            plain(),
            xt_bytes.len()
        ));
    }
    let mut nsd_udp = n.clone();
    let mut nsd_tcp = nt.clone();
    lower_mixed_ttls(&mut nsd_udp);
    lower_mixed_ttls(&mut nsd_tcp);
    if !is_part_of(&nsd_udp, &nsd_tcp) {
        return Err(format!("{}; and NSD's UDP answer is not part of its TCP answer", plain()));
    }
    let tcp_query = QueryInfo { bytes: query.bytes.clone(), tcp: true };
    let mut no_refetch = |_: Side| None;
    match compare(&tcp_query, Some(&xt_bytes), Some(&nt_bytes), &mut no_refetch) {
        Verdict::Same => Ok(vec!["truncation"]),
        Verdict::Explained(mut rules) => {
            if !(x_full && nsd_udp == nsd_tcp) {
                rules.insert(0, "truncation");
            }
            Ok(rules)
        }
        Verdict::Unexplained(why) => {
            Err(format!("{}; over TCP: {why}\n  dns-xdp TCP:\n{}  NSD TCP:\n{}", plain(), xt.render(), nt.render()))
        }
    }
}

/// A one-line description of the first field where the replies differ.
fn first_difference(x: &Normal, n: &Normal) -> String {
    if x.rcode() != n.rcode() {
        return format!("rcode {} vs NSD {}", rcode_name(x.rcode()), rcode_name(n.rcode()));
    }
    if x.flags != n.flags {
        return format!("flags {:#06x} vs NSD {:#06x}", x.flags, n.flags);
    }
    if x.question != n.question {
        return "question section differs".into();
    }
    for (i, title) in ["answer", "authority", "additional"].iter().enumerate() {
        let (xs, ns) = (&x.sections[i], &n.sections[i]);
        if xs != ns {
            let mut xs_sorted = xs.clone();
            let mut ns_sorted = ns.clone();
            xs_sorted.sort_by_key(Rec::text);
            ns_sorted.sort_by_key(Rec::text);
            if xs_sorted == ns_sorted {
                return format!("{title} section: same records in another order");
            }
            return format!("{title} section differs");
        }
    }
    if x.opt != n.opt {
        return "OPT record differs".into();
    }
    "no difference found".into()
}

// ---------------------------------------------------------------------------
// The servers
// ---------------------------------------------------------------------------

/// NSD and dns-xdp in one namespace. Fields drop in order: the processes,
/// then the directory, then the namespace.
struct Lab {
    daemon: ChildGuard,
    nsd: ChildGuard,
    dir: tempfile::TempDir,
    udp: UdpSocket,
    tcp: [Option<TcpStream>; 2],
    ns: NetNs,
}

fn zone_path(file: &str) -> PathBuf {
    workspace_root().join("tests/zones").join(file)
}

impl Lab {
    fn start() -> Lab {
        require_root();
        let ns = NetNs::with_role("diff");
        let dir = dns_xdp_tests::temp_dir("diff");
        let d = dir.path().display();
        let mut conf = format!(
            "server:\n  ip-address: 127.0.0.1@5301\n  port: 5301\n  username: \"\"\n  chroot: \"\"\n  \
             pidfile: \"{d}/nsd.pid\"\n  zonelistfile: \"{d}/zone.list\"\n  xfrdfile: \"{d}/xfrd.state\"\n  \
             xfrdir: \"{d}\"\n  database: \"\"\n  logfile: \"{d}/nsd.log\"\n  server-count: 1\n  \
             ipv4-edns-size: {SERVER_PAYLOAD}\n  verbosity: 1\n  \
             rrl-ratelimit: 0\n  rrl-whitelist-ratelimit: 0\nremote-control:\n  control-enable: no\n"
        );
        for (origin, file) in ZONES {
            let _ = write!(conf, "zone:\n  name: {origin}\n  zonefile: \"{}\"\n", zone_path(file).display());
        }
        let conf_path = dir.path().join("nsd.conf");
        std::fs::write(&conf_path, conf).expect("writing nsd.conf");

        let mut cmd = ns.command("nsd");
        cmd.args(["-d", "-c", conf_path.to_str().expect("utf-8")]);
        let nsd = dns_xdp_tests::spawn(cmd, "nsd");

        let mut cmd = ns.command(daemon_bin().to_str().expect("utf-8 path"));
        cmd.current_dir(workspace_root()).args(["run", "--xdp-mode", "off", "--listen", XDP_ADDR]);
        for (origin, file) in ZONES {
            cmd.arg("--zone").arg(format!("{origin}={}", zone_path(file).display()));
        }
        cmd.env("RUST_LOG", "info");
        let mut daemon = dns_xdp_tests::spawn(cmd, "dns-xdp");
        assert!(
            daemon.wait_for_output("serving", Duration::from_secs(20)).is_ok(),
            "dns-xdp did not start:\n{}",
            daemon.stderr()
        );
        let udp = udp_socket(&ns, "127.0.0.1:0".parse().expect("literal"));
        let lab = Lab { daemon, nsd, dir, udp, tcp: [None, None], ns };
        let probe = build_query(1, 0, &wire_name("diff.test."), 6, 1, None);
        let ready = dns_xdp_tests::wait_until(Duration::from_secs(20), || {
            lab.udp_exchange(Side::Nsd, &probe, Duration::from_millis(200)).is_some()
        });
        let log = std::fs::read_to_string(lab.dir.path().join("nsd.log")).unwrap_or_default();
        assert!(ready, "NSD did not answer:\n{log}\n{}", lab.nsd.stderr());
        lab
    }

    fn addr(side: Side) -> SocketAddr {
        match side {
            Side::Xdp => XDP_ADDR,
            Side::Nsd => NSD_ADDR,
        }
        .parse()
        .expect("literal")
    }

    /// One UDP exchange: the first reply from the server with the query's ID.
    fn udp_exchange(&self, side: Side, query: &[u8], timeout: Duration) -> Option<Vec<u8>> {
        netlab::udp::exchange(&self.udp, Self::addr(side), query, timeout, netlab::udp::same_id(query))
            .expect("exchanging a query over UDP")
    }

    /// One TCP exchange on a kept-open connection, reconnecting once.
    fn tcp_exchange(&mut self, side: Side, query: &[u8]) -> Option<Vec<u8>> {
        let server = Self::addr(side);
        let slot = side as usize;
        for _ in 0..2 {
            if self.tcp[slot].is_none() {
                self.tcp[slot] = in_netns(&self.ns, move || TcpStream::connect_timeout(&server, TIMEOUT)).ok();
            }
            let stream = self.tcp[slot].as_mut()?;
            match tcp_exchange(stream, query, TIMEOUT) {
                Some(reply) => return Some(reply),
                None => self.tcp[slot] = None,
            }
        }
        None
    }

    /// Sends `query` to both servers and compares the replies.
    fn check(&mut self, query: &QueryInfo, timeout: Duration) -> (Verdict, Option<Vec<u8>>, Option<Vec<u8>>) {
        let (x, n) = if query.tcp {
            (self.tcp_exchange(Side::Xdp, &query.bytes), self.tcp_exchange(Side::Nsd, &query.bytes))
        } else {
            (self.udp_exchange(Side::Xdp, &query.bytes, timeout), self.udp_exchange(Side::Nsd, &query.bytes, timeout))
        };
        let bytes = query.bytes.clone();
        let mut refetch = |side: Side| self.tcp_exchange(side, &bytes);
        let verdict = compare(query, x.as_deref(), n.as_deref(), &mut refetch);
        (verdict, x, n)
    }
}

fn show(reply: Option<&[u8]>) -> String {
    match reply {
        None => "    (no reply)\n".into(),
        Some(bytes) => match parse(bytes) {
            Ok(p) => p.render(),
            Err(e) => format!("    unparseable ({e}): {bytes:02x?}\n"),
        },
    }
}

/// Tallies verdicts and renders the report.
#[derive(Default)]
struct Tally {
    compared: usize,
    same: usize,
    explained: BTreeMap<&'static str, (usize, String)>,
    failures: Vec<String>,
}

impl Tally {
    fn record(&mut self, query: &QueryInfo, verdict: Verdict, x: Option<&[u8]>, n: Option<&[u8]>) {
        self.compared += 1;
        match verdict {
            Verdict::Same => self.same += 1,
            Verdict::Explained(rules) => {
                for rule in rules {
                    let entry = self.explained.entry(rule).or_insert_with(|| (0, query.describe()));
                    entry.0 += 1;
                }
            }
            Verdict::Unexplained(why) => self.failures.push(format!(
                "== {}\n  {why}\n  dns-xdp:\n{}  NSD:\n{}",
                query.describe(),
                show(x),
                show(n)
            )),
        }
    }

    fn summary(&self) -> String {
        let mut s = format!(
            "{} queries compared: {} identical, {} with allowed differences, {} unexplained\n",
            self.compared,
            self.same,
            self.compared - self.same - self.failures.len(),
            self.failures.len()
        );
        for (rule, (count, example)) in &self.explained {
            let a = allowed(rule);
            let _ = writeln!(s, "  {count:5} {rule} [{}]\n        e.g. {example}\n        {}", a.rfc, a.what);
        }
        s
    }

    fn assert_clean(&self) {
        eprintln!("{}", self.summary());
        let shown: Vec<&String> = self.failures.iter().take(40).collect();
        assert!(
            self.failures.is_empty(),
            "{}\n{} unexplained differences (first {} shown):\n{}",
            self.summary(),
            self.failures.len(),
            shown.len(),
            shown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n")
        );
    }
}

// ---------------------------------------------------------------------------
// The battery
// ---------------------------------------------------------------------------

/// Names asked for, relative to diff.test unless they end in a dot.
const NAMES: &[&str] = &[
    // Apex, hosts, case variants.
    "@",
    "ns1",
    "ns2",
    "mail",
    "www",
    "WWW",
    "ttlmix",
    "mixed.case",
    "MiXeD.cAsE",
    "MIXED.CASE",
    // SRV and MX targets.
    "_sip._tcp",
    "_sip._udp",
    "_xmpp._tcp",
    "_tcp",
    "sip",
    "mxwild",
    "mxdeleg",
    "mxalt",
    // CNAMEs.
    "alias",
    "chain1",
    "chain2",
    "toalt",
    "toaltnx",
    "toaltback",
    "tokid",
    "toout",
    "dangling",
    "loop1",
    "self",
    "tosub",
    "todname",
    "towild",
    "toent",
    "c00",
    "c04",
    "c10",
    // Empty non-terminals and names that do not exist.
    "a.b.ent",
    "b.ent",
    "ent",
    "x.b.ent",
    "nothere",
    "a.nothere",
    "Does.Not.Exist",
    // Wildcards.
    "foo.wild",
    "a.b.foo.wild",
    "*.wild",
    "exists.wild",
    "sub.exists.wild",
    "wild",
    "y.wild",
    "q.y.wild",
    "x.y.wild",
    "srv.wild",
    "foo.cwild",
    "Bar.CWild",
    "foo.cwild2",
    "foo.cwalt",
    // Delegations.
    "sub",
    "host.sub",
    "ns1.sub",
    "ns2.sub",
    "deep.x.sub",
    "occluded.sub",
    "SUB",
    "nods",
    "x.nods",
    "kid",
    "ns1.kid",
    "www.kid",
    "nx.kid",
    "wide",
    "ns05.wide",
    // DNAME.
    "dn",
    "www.dn",
    "WWW.DN",
    "nope.dn",
    "a.b.dn",
    "dtarget",
    "www.dtarget",
    "www.dnalt",
    "nx.dnalt",
    "dnalt",
    "www.dnout",
    "x.dnloop1",
    // Types and sizes.
    "anyorder",
    "anynormal",
    "misc",
    "esc",
    "generic",
    "mid",
    "medium",
    "big",
    "huge",
    // Other zones, and outside every zone.
    "alt.test.",
    "www.alt.test.",
    "back.alt.test.",
    "mail.alt.test.",
    "nx.alt.test.",
    "x.sub.alt.test.",
    "nowhere.test.",
    "test.",
    ".",
    "elsewhere.example.",
];

/// A, AAAA, MX, TXT, CNAME, NS, SOA, DNAME, DS, ANY, SRV, PTR, CAA, the
/// generic TYPE65280, and HINFO (absent everywhere).
const TYPES: &[u16] = &[1, 28, 15, 16, 5, 2, 6, 39, 43, 255, 33, 12, 257, 65280, 13];

fn absolute(name: &str) -> String {
    match name {
        "@" => "diff.test.".into(),
        n if n.ends_with('.') => n.into(),
        n => format!("{n}.diff.test."),
    }
}

/// EDNS variants: none, 512, 1232, 4096, and 1232 with DO (that one also
/// sets CD).
fn edns_variants() -> Vec<Option<QueryEdns>> {
    vec![
        None,
        Some(QueryEdns::size(512)),
        Some(QueryEdns::size(1232)),
        Some(QueryEdns::size(4096)),
        Some(QueryEdns { dnssec_ok: true, ..QueryEdns::size(1232) }),
    ]
}

#[test]
fn answers_match_nsd() {
    let mut lab = Lab::start();
    let mut tally = Tally::default();
    let mut id: u16 = 0x100;
    let mut silent = 0;
    for (ni, name) in NAMES.iter().enumerate() {
        let qname = absolute(name);
        for (ti, &qtype) in TYPES.iter().enumerate() {
            for (ei, edns) in edns_variants().iter().enumerate() {
                id = id.wrapping_add(1);
                let v = ni + ti + ei;
                let mut flags = if v % 2 == 0 { RD } else { 0 };
                if edns.as_ref().is_some_and(|e| e.dnssec_ok) {
                    flags |= CD;
                }
                let bytes = build_query(id, flags, &wire_name(&spell(&qname, v)), qtype, 1, edns.as_ref());
                // Over UDP always; over TCP too for the plain variant, so
                // full answers are compared even where UDP truncates.
                let mut queries = vec![QueryInfo { bytes: bytes.clone(), tcp: false }];
                if ei == 0 || ei == 4 {
                    queries.push(QueryInfo { bytes, tcp: true });
                }
                for query in queries {
                    let (verdict, x, n) = lab.check(&query, TIMEOUT);
                    silent = if x.is_none() || n.is_none() { silent + 1 } else { 0 };
                    assert!(silent < 10, "servers stopped answering:\n{}", tally.summary());
                    tally.record(&query, verdict, x.as_deref(), n.as_deref());
                }
            }
        }
    }
    assert!(tally.compared >= 500, "only {} queries", tally.compared);
    // The zones are built to exercise these; if one never fires, the test
    // lost coverage.
    for rule in ["truncation", "rrset-ttl", "chain-limit", "cd-bit"] {
        assert!(tally.explained.contains_key(rule), "no query exercised {rule}:\n{}", tally.summary());
    }
    tally.assert_clean();
    assert!(lab.daemon.try_wait().expect("checking on the process").is_none(), "dns-xdp exited");
}

/// Protocol corner cases: each is compared with NSD like the battery, and
/// dns-xdp's reply is also checked against what the RFC asks for.
#[test]
fn protocol_corner_cases() {
    let mut lab = Lab::start();
    let mut tally = Tally::default();
    let mut rfc_failures = Vec::new();
    let www = wire_name("www.diff.test.");
    let edns = QueryEdns::size(1232);
    let mut id: u16 = 0x7000;
    let mut next_id = || {
        id += 1;
        id
    };
    let rcode_is = |want: u16| -> Check {
        Box::new(move |r: Option<&Normal>| {
            let r = r.ok_or("no reply")?;
            if r.rcode() == want {
                Ok(())
            } else {
                Err(format!("rcode {} wanted {}", rcode_name(r.rcode()), rcode_name(want)))
            }
        })
    };
    let and = |a: Check, b: Check| -> Check { Box::new(move |r| a(r).and_then(|()| b(r))) };
    let opt_present = |want: bool| -> Check {
        Box::new(move |r: Option<&Normal>| {
            let r = r.ok_or("no reply")?;
            match (&r.opt, want) {
                (Some(o), true) if o.version == 0 && o.payload == SERVER_PAYLOAD && o.options.is_empty() => Ok(()),
                (None, false) => Ok(()),
                (o, _) => Err(format!(
                    "OPT {o:?}, wanted {}",
                    if want { "version 0, payload 1232, no options" } else { "none" }
                )),
            }
        })
    };
    // The OPT carries exactly one option, an Extended DNS Error with this
    // INFO-CODE and no text (RFC 8914; what NSD sends).
    let ede_is = |want: u16| -> Check {
        Box::new(move |r: Option<&Normal>| {
            let r = r.ok_or("no reply")?;
            let options = r.opt.as_ref().map(|o| o.options.clone()).unwrap_or_default();
            if options == [(15, want.to_be_bytes().to_vec())] {
                Ok(())
            } else {
                Err(format!("options {options:?}, wanted EDE {want}"))
            }
        })
    };
    let has_answer: Check = Box::new(|r| {
        let r = r.ok_or("no reply")?;
        if r.sections[0].is_empty() || r.tc() { Err("no answer records".into()) } else { Ok(()) }
    });
    let question_echoed = |q: Vec<u8>| -> Check {
        Box::new(move |r: Option<&Normal>| {
            let r = r.ok_or("no reply")?;
            if r.question == q { Ok(()) } else { Err("question not echoed as sent".into()) }
        })
    };
    let no_reply: Check = Box::new(|r| if r.is_none() { Ok(()) } else { Err("answered a response".into()) });
    let flag = |bit: u16, set: bool| -> Check {
        Box::new(move |r: Option<&Normal>| {
            let r = r.ok_or("no reply")?;
            if (r.flags & bit != 0) == set { Ok(()) } else { Err(format!("flag {bit:#06x} should be {set}")) }
        })
    };
    let www_question = {
        let mut q = www.clone();
        q.extend_from_slice(&[0, 1, 0, 1]);
        q
    };

    let mut cases: Vec<(&str, QueryInfo, Check)> = Vec::new();
    let udp = |bytes: Vec<u8>| QueryInfo { bytes, tcp: false };
    let tcp = |bytes: Vec<u8>| QueryInfo { bytes, tcp: true };

    // EDNS (RFC 6891).
    let v1 = QueryEdns { version: 1, ..edns.clone() };
    cases.push((
        "EDNS version 1: BADVERS, OPT version 0",
        udp(build_query(next_id(), RD, &www, 1, 1, Some(&v1))),
        and(and(rcode_is(16), opt_present(true)), question_echoed(www_question.clone())),
    ));
    let unknown =
        QueryEdns { options: vec![(65001, vec![1, 2, 3, 4]), (8, vec![0, 1, 24, 0, 192, 0, 2])], ..edns.clone() };
    cases.push((
        "unknown EDNS options are ignored",
        udp(build_query(next_id(), 0, &www, 1, 1, Some(&unknown))),
        and(and(rcode_is(0), opt_present(true)), has_answer),
    ));
    let cookie = QueryEdns { options: vec![(10, vec![1, 2, 3, 4, 5, 6, 7, 8])], ..edns.clone() };
    cases.push((
        "client cookie answered with a server cookie (RFC 7873 5.2.2, RFC 9018)",
        udp(build_query(next_id(), 0, &www, 1, 1, Some(&cookie))),
        and(
            rcode_is(0),
            Box::new(|r| {
                let r = r.ok_or("no reply")?;
                if r.sections[0].is_empty() {
                    return Err("no answer".into());
                }
                // The one option: the client cookie echoed, then a 16-byte
                // server cookie of version 1.
                match r.opt.as_ref().map(|o| (o.version, o.payload, o.options.as_slice())) {
                    Some((0, SERVER_PAYLOAD, [(10, data)]))
                        if data.len() == 24 && data[..8] == [1, 2, 3, 4, 5, 6, 7, 8] && data[8] == 1 =>
                    {
                        Ok(())
                    }
                    other => Err(format!("OPT {other:?}, wanted the client cookie and an RFC 9018 server cookie")),
                }
            }),
        ),
    ));
    let do_bit = QueryEdns { dnssec_ok: true, ..edns.clone() };
    cases.push((
        "DO echoed",
        udp(build_query(next_id(), 0, &www, 1, 1, Some(&do_bit))),
        Box::new(|r| {
            let r = r.ok_or("no reply")?;
            if r.opt.as_ref().is_some_and(|o| o.flags == 0x8000) { Ok(()) } else { Err(format!("OPT {:?}", r.opt)) }
        }),
    ));
    cases.push((
        "payload below 512 counts as 512",
        udp(build_query(next_id(), 0, &www, 1, 1, Some(&QueryEdns::size(100)))),
        and(has_answer_check(), flag(TC, false)),
    ));
    cases.push((
        "payload above the server's: capped at 1232",
        udp(build_query(next_id(), 0, &wire_name("big.diff.test."), 16, 1, Some(&QueryEdns::size(65535)))),
        and(and(rcode_is(0), flag(TC, true)), opt_present(true)),
    ));
    cases.push((
        "TC with question only when over the limit; full answer over TCP",
        udp(build_query(next_id(), 0, &wire_name("medium.diff.test."), 16, 1, None)),
        Box::new(|r| {
            let r = r.ok_or("no reply")?;
            if r.tc() && r.record_count() == 0 && r.qdcount == 1 {
                Ok(())
            } else {
                Err("not TC with question only".into())
            }
        }),
    ));
    cases.push((
        "the same over TCP: the whole answer",
        tcp(build_query(next_id(), 0, &wire_name("medium.diff.test."), 16, 1, None)),
        Box::new(|r| {
            let r = r.ok_or("no reply")?;
            if !r.tc() && r.sections[0].len() == 12 { Ok(()) } else { Err("not the 12 TXT records".into()) }
        }),
    ));
    let mut two_opts = build_query(next_id(), 0, &www, 1, 1, Some(&edns));
    two_opts.extend_from_slice(&edns.bytes());
    two_opts[11] = 2;
    cases.push(("two OPT records: FORMERR (RFC 6891 6.1.1)", udp(two_opts), rcode_is(1)));

    // Opcodes.
    for opcode in [1u16, 2, 3, 5, 6, 15] {
        cases.push((
            "opcode other than QUERY: NOTIMP",
            udp(build_query(next_id(), opcode << 11, &www, 1, 1, Some(&edns))),
            and(
                rcode_is(4),
                Box::new(move |r| {
                    let r = r.ok_or("no reply")?;
                    if (r.flags & OPCODE) >> 11 == opcode { Ok(()) } else { Err("opcode not echoed".into()) }
                }),
            ),
        ));
    }
    let mut garbage_body = header(next_id(), 3 << 11, [3, 1, 4, 1]);
    garbage_body.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef, 0xc0, 0x0c, 0xff]);
    cases.push(("unknown opcode with an unparseable body: NOTIMP", udp(garbage_body), rcode_is(4)));
    cases.push((
        "NOTIFY: NOTIMP (not implemented yet)",
        udp(build_query(next_id(), 4 << 11 | AA, &wire_name("diff.test."), 6, 1, None)),
        rcode_is(4),
    ));

    // Header and question counts.
    cases.push(("QDCOUNT 0: FORMERR", udp(header(next_id(), RD, [0, 0, 0, 0])), and(rcode_is(1), opt_present(false))));
    let mut qd0_opt = header(next_id(), 0, [0, 0, 0, 1]);
    qd0_opt.extend_from_slice(&edns.bytes());
    cases.push(("QDCOUNT 0 with OPT: FORMERR with OPT", udp(qd0_opt), and(rcode_is(1), opt_present(true))));
    let mut qd2 = header(next_id(), 0, [2, 0, 0, 0]);
    for _ in 0..2 {
        qd2.extend_from_slice(&www);
        qd2.extend_from_slice(&[0, 1, 0, 1]);
    }
    cases.push(("QDCOUNT 2: FORMERR", udp(qd2), rcode_is(1)));
    cases.push(("QR=1: never answered", udp(build_query(next_id(), QR, &www, 1, 1, None)), no_reply));
    cases.push((
        "TC=1 in the query: answered, TC clear",
        udp(build_query(next_id(), TC, &www, 1, 1, None)),
        and(has_answer_check(), flag(TC, false)),
    ));
    cases.push((
        "AD and Z in the query: cleared",
        udp(build_query(next_id(), 0x0020 | 0x0040 | RD, &www, 1, 1, None)),
        and(and(flag(0x0020, false), flag(0x0040, false)), flag(RD, true)),
    ));
    let mut with_answer = build_query(next_id(), 0, &www, 1, 1, None);
    with_answer[7] = 1;
    with_answer.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]);
    cases.push(("a record in the query's answer section", udp(with_answer), rcode_is(0)));
    let mut trailing = build_query(next_id(), 0, &www, 1, 1, None);
    trailing.extend_from_slice(&[1, 2, 3]);
    cases.push(("trailing bytes after the question", udp(trailing), rcode_is(0)));

    // Classes and transfers.
    cases.push((
        "CH TXT version.bind: REFUSED",
        udp(build_query(next_id(), 0, &wire_name("version.bind."), 16, 3, Some(&edns))),
        and(rcode_is(5), opt_present(true)),
    ));
    cases.push((
        "CH TXT id.server: REFUSED",
        udp(build_query(next_id(), 0, &wire_name("id.server."), 16, 3, None)),
        rcode_is(5),
    ));
    // RFC 1035 §3.2.5 QCLASS *: NSD answers from its class IN data with AA
    // clear (and so no apex NS or negative SOA); the battery compares the rest.
    cases.push((
        "QCLASS ANY: the IN data, AA clear",
        udp(build_query(next_id(), 0, &www, 1, 255, None)),
        and(rcode_is(0), flag(AA, false)),
    ));
    cases.push((
        "QCLASS ANY over TCP with EDNS, nonexistent name: NXDOMAIN, AA clear",
        tcp(build_query(next_id(), 0, &wire_name("nosuch.diff.test."), 1, 255, Some(&QueryEdns::size(1232)))),
        and(rcode_is(3), flag(AA, false)),
    ));

    cases.push(("QCLASS NONE: REFUSED", udp(build_query(next_id(), 0, &www, 1, 254, None)), rcode_is(5)));
    let apex = wire_name("diff.test.");
    cases.push(("AXFR over UDP: REFUSED", udp(build_query(next_id(), 0, &apex, 252, 1, None)), rcode_is(5)));
    cases.push((
        "AXFR over TCP: REFUSED (no transfers offered)",
        tcp(build_query(next_id(), 0, &apex, 252, 1, None)),
        and(
            rcode_is(5),
            Box::new(|r| {
                let r = r.ok_or("no reply")?;
                if r.record_count() == 0 { Ok(()) } else { Err("records in a refusal".into()) }
            }),
        ),
    ));
    cases.push(("IXFR over UDP: REFUSED", udp(build_query(next_id(), 0, &apex, 251, 1, None)), rcode_is(5)));
    cases.push(("IXFR over TCP: REFUSED", tcp(build_query(next_id(), 0, &apex, 251, 1, None)), rcode_is(5)));
    cases.push((
        "outside every zone: REFUSED with the question and EDE 20, Not Authoritative",
        udp(build_query(next_id(), RD, &wire_name("www.example.org."), 1, 1, Some(&edns))),
        and(and(rcode_is(5), ede_is(20)), flag(AA, false)),
    ));

    // Odd but valid questions.
    for qtype in [0u16, 41, 65535, 128] {
        cases.push((
            "meta and unassigned qtypes",
            udp(build_query(next_id(), 0, &www, qtype, 1, None)),
            Box::new(|r| r.map(|_| ()).ok_or_else(|| "no reply".into())),
        ));
    }
    let mut binary = vec![3, 0, b'.', 0xff];
    binary.extend_from_slice(&apex);
    cases.push(("binary label", udp(build_query(next_id(), 0, &binary, 1, 1, None)), rcode_is(3)));
    let mut long = Vec::new();
    for _ in 0..3 {
        long.push(63);
        long.extend(std::iter::repeat_n(b'a', 63));
    }
    long.push(51);
    long.extend(std::iter::repeat_n(b'b', 51));
    long.extend_from_slice(&apex);
    assert_eq!(long.len(), 255);
    cases.push(("a 255-octet name", udp(build_query(next_id(), 0, &long, 1, 1, None)), rcode_is(3)));
    let mut too_long = long.clone();
    too_long.insert(0, b'c');
    too_long.insert(0, 1);
    cases.push(("a 257-octet name: FORMERR", udp(build_query(next_id(), 0, &too_long, 1, 1, None)), rcode_is(1)));
    let mut label64 = vec![64];
    label64.extend(std::iter::repeat_n(b'a', 64));
    label64.extend_from_slice(&apex);
    cases.push(("a 64-octet label: FORMERR", udp(build_query(next_id(), 0, &label64, 1, 1, None)), rcode_is(1)));

    for (what, query, check) in &cases {
        let timeout = if query.flags() & QR != 0 { Duration::from_millis(500) } else { TIMEOUT };
        let (verdict, x, n) = lab.check(query, timeout);
        let parsed = x.as_deref().map(parse);
        let result = match &parsed {
            Some(Err(e)) => Err(format!("reply does not parse: {e}")),
            Some(Ok(p)) => check(Some(p)),
            None => check(None),
        };
        if let Err(why) = result {
            rfc_failures.push(format!("== {what}: {}\n  {why}\n  dns-xdp:\n{}", query.describe(), show(x.as_deref())));
        }
        if x.is_some() && x.as_deref().map(|b| b[..2] != query.bytes[..2]).unwrap_or(false) {
            rfc_failures.push(format!("== {what}: reply ID differs"));
        }
        tally.record(query, verdict, x.as_deref(), n.as_deref());
    }
    assert!(
        rfc_failures.is_empty(),
        "{} of {} corner cases answered wrongly by dns-xdp:\n{}",
        rfc_failures.len(),
        cases.len(),
        rfc_failures.join("\n")
    );
    tally.assert_clean();
    assert!(lab.daemon.try_wait().expect("checking on the process").is_none(), "dns-xdp exited");
}

/// A check of dns-xdp's reply (`None`: no reply) in the corner cases.
type Check = Box<dyn Fn(Option<&Normal>) -> Result<(), String>>;

fn has_answer_check() -> Check {
    Box::new(|r| {
        let r = r.ok_or("no reply")?;
        if r.sections[0].is_empty() { Err("no answer records".into()) } else { Ok(()) }
    })
}

/// The comparison must not wave wrong answers through: real replies with
/// one thing changed each are reported as unexplained.
#[test]
fn comparison_catches_wrong_answers() {
    let mut lab = Lab::start();
    let q = |name: &str, qtype: u16, edns: Option<QueryEdns>, id: u16| QueryInfo {
        bytes: build_query(id, RD, &wire_name(name), qtype, 1, edns.as_ref()),
        tcp: false,
    };
    let cases = [
        q("www.diff.test.", 1, None, 0x501),
        q("nothere.diff.test.", 1, Some(QueryEdns::size(1232)), 0x502),
        q("mid.diff.test.", 16, Some(QueryEdns::size(1232)), 0x503),
        q("sub.diff.test.", 1, None, 0x504),
        q("ttlmix.diff.test.", 1, None, 0x505),
        q("c00.diff.test.", 1, Some(QueryEdns::size(4096)), 0x506),
    ];
    type Mutation = fn(&mut Vec<u8>) -> bool;
    // Each mutation edits dns-xdp's reply in place; false if it does not
    // apply to this reply.
    let mutations: &[(&str, Mutation)] = &[
        ("flip AA", |m| {
            m[2] ^= 0x04;
            true
        }),
        ("set RA", |m| {
            m[3] |= 0x80;
            true
        }),
        ("rcode SERVFAIL", |m| {
            m[3] = (m[3] & 0xf0) | 2;
            true
        }),
        ("clear RD", |m| {
            m[2] &= !0x01;
            true
        }),
        ("question case changed", |m| {
            m[13] ^= 0x20;
            true
        }),
        ("last byte of the last record changed", |m| {
            let Ok(p) = parse(m) else { return false };
            if p.record_count() == 0 || p.opt.is_some() {
                return false;
            }
            *m.last_mut().expect("non-empty") ^= 0x01;
            true
        }),
        ("TTL of every record +1", |m| add_to_ttls(m, 1)),
        ("last record dropped", |m| {
            let Ok(p) = parse(m) else { return false };
            if p.opt.is_some() || p.record_count() == 0 {
                return false;
            }
            drop_last_record(m)
        }),
        ("TC set, records removed (a needless truncation)", |m| {
            let Ok(p) = parse(m) else { return false };
            if p.tc() || p.sections[0].is_empty() {
                return false;
            }
            let end = 12 + p.question.len();
            m.truncate(end);
            m[2] |= 0x02;
            m[6..10].fill(0);
            let arcount = u16::from(p.opt.is_some());
            m[10..12].copy_from_slice(&arcount.to_be_bytes());
            if let Some(o) = &p.opt {
                m.extend_from_slice(&[0, 0, 41]);
                m.extend_from_slice(&o.payload.to_be_bytes());
                m.extend_from_slice(&[o.ext_rcode, o.version]);
                m.extend_from_slice(&o.flags.to_be_bytes());
                m.extend_from_slice(&[0, 0]);
            }
            true
        }),
        ("OPT payload changed", |m| {
            let Ok(p) = parse(m) else { return false };
            if p.opt.is_none() {
                return false;
            }
            // The OPT is the last record: root, type, then the payload.
            let at = m.len() - 11 + 3;
            m[at] ^= 0x01;
            true
        }),
        ("DO bit set", |m| {
            let Ok(p) = parse(m) else { return false };
            if p.opt.is_none() {
                return false;
            }
            let at = m.len() - 11 + 7;
            m[at] ^= 0x80;
            true
        }),
    ];
    let mut applied = 0;
    let mut missed = Vec::new();
    for query in &cases {
        let (verdict, x, n) = lab.check(query, TIMEOUT);
        assert!(
            !matches!(verdict, Verdict::Unexplained(_)),
            "the unmodified replies must compare clean: {} {verdict:?}\n{}{}",
            query.describe(),
            show(x.as_deref()),
            show(n.as_deref())
        );
        let (x, n) = (x.expect("dns-xdp answered"), n.expect("NSD answered"));
        for (what, mutate) in mutations {
            let mut wrong = x.clone();
            if !mutate(&mut wrong) {
                continue;
            }
            applied += 1;
            let bytes = query.bytes.clone();
            let mut refetch = |side: Side| lab.tcp_exchange(side, &bytes);
            let verdict = compare(query, Some(&wrong), Some(&n), &mut refetch);
            if !matches!(verdict, Verdict::Unexplained(_)) {
                missed.push(format!("{what} on {}: {verdict:?}", query.describe()));
            }
        }
    }
    // And the other way round: a reply missing altogether.
    let query = &cases[0];
    let mut no_refetch = |_: Side| None;
    let (_, _, n) = lab.check(query, TIMEOUT);
    assert!(matches!(compare(query, None, n.as_deref(), &mut no_refetch), Verdict::Unexplained(_)));
    assert!(applied >= 40, "only {applied} mutations applied");
    assert!(missed.is_empty(), "wrong answers passed the comparison:\n{}", missed.join("\n"));
}

/// Adds `delta` to the TTL of every non-OPT record; false when none.
fn add_to_ttls(m: &mut [u8], delta: u32) -> bool {
    let positions = record_positions(m);
    let mut changed = false;
    for (ttl_at, rtype) in positions {
        if rtype == 41 {
            continue;
        }
        let ttl = u32::from_be_bytes([m[ttl_at], m[ttl_at + 1], m[ttl_at + 2], m[ttl_at + 3]]).wrapping_add(delta);
        m[ttl_at..ttl_at + 4].copy_from_slice(&ttl.to_be_bytes());
        changed = true;
    }
    changed
}

/// (offset of the TTL, type) of each record, and the start of each record.
fn record_positions(m: &[u8]) -> Vec<(usize, u16)> {
    record_bounds(m).into_iter().map(|(_, ttl_at, rtype)| (ttl_at, rtype)).collect()
}

/// (start, offset of TTL, type) of each record.
fn record_bounds(m: &[u8]) -> Vec<(usize, usize, u16)> {
    let mut out = Vec::new();
    let counts: Vec<u16> = (0..4).map(|i| u16::from_be_bytes([m[4 + 2 * i], m[5 + 2 * i]])).collect();
    let mut pos = 12;
    for _ in 0..counts[0] {
        let Ok((_, end)) = read_name(m, pos) else { return out };
        pos = end + 4;
    }
    for _ in 0..counts[1] + counts[2] + counts[3] {
        let Ok((_, p)) = read_name(m, pos) else { return out };
        let rtype = u16::from_be_bytes([m[p], m[p + 1]]);
        let rdlen = usize::from(u16::from_be_bytes([m[p + 8], m[p + 9]]));
        out.push((pos, p + 4, rtype));
        pos = p + 10 + rdlen;
    }
    out
}

/// Removes the last record and decrements its section's count.
fn drop_last_record(m: &mut Vec<u8>) -> bool {
    let Some(&(start, _, _)) = record_bounds(m).last() else { return false };
    m.truncate(start);
    for i in [3usize, 2, 1] {
        let at = 4 + 2 * i;
        let c = u16::from_be_bytes([m[at], m[at + 1]]);
        if c > 0 {
            m[at..at + 2].copy_from_slice(&(c - 1).to_be_bytes());
            return true;
        }
    }
    false
}
