//! One authoritative zone in memory, and the master-file loader that builds it.
//!
//! The loader reads RFC 1035 §5 master files. Where the RFC leaves room it
//! does what NSD 4.6 does, because the daemon's answers are tested against
//! NSD's:
//!
//! * owner names and the domain names inside RDATA are stored lower-cased
//!   (NSD normalises them the same way, so its answers carry lower-case
//!   names too);
//! * a record without a TTL gets the `$TTL` value, else 3600 (NSD's default;
//!   RFC 1035's "last stated TTL" is not used);
//! * records of one RRset with different TTLs are kept, with a warning, and
//!   the RRset's TTL is the lowest of them. NSD keeps each record's own TTL;
//!   RFC 2181 §5.2 tells clients to treat such an RRset as if every TTL were
//!   the lowest, so both answers mean the same to a resolver;
//! * identical records are merged (RFC 2181 §5).
//!
//! Record data is parsed by hickory's zone-file parser, one record at a time,
//! so that every error can name the file and line. hickory cannot parse a
//! few things this loader handles itself: DNAME and DS records, TXT strings
//! with `\DDD` escapes or inside parentheses, and the RFC 3597 generic
//! `\# <length> <hex>` form, which is accepted for every type (it is the way
//! to load types hickory's text parser does not know).
//!
//! Rejected like `named-checkzone`/`nsd-checkzone` do, with `file:line`:
//! syntax errors, classes other than IN, records outside the zone, a SOA
//! that is missing (no line), repeated or not at the apex, CNAME next to
//! other data, more than one CNAME or DNAME at a name, and data below a
//! DNAME (RFC 6672 §2.4; NSD refuses it too).

use std::{
    collections::BTreeMap,
    fmt,
    ops::Bound,
    path::{Path, PathBuf},
    str::FromStr,
};

use hickory_proto::{
    rr::{
        DNSClass, LowerName, Name, RData, Record, RecordType,
        rdata::{NULL, TXT},
    },
    serialize::{
        binary::{BinDecodable, BinDecoder, BinEncodable, BinEncoder, Restrict},
        txt::{Parser, parse_ttl},
    },
};

/// TTL of records that state none when the file has no `$TTL` (NSD's
/// default).
const DEFAULT_TTL: u32 = 3600;

/// How deep `$INCLUDE` may nest. Also what stops a file including itself.
const MAX_INCLUDE_DEPTH: usize = 16;

/// The longest character-string (RFC 1035 §3.3).
const MAX_CHARACTER_STRING: usize = 255;

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Why a zone could not be loaded.
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum ZoneError {
    /// The zone file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The text is not a valid master file, e.g. `zones/bad.zone:7: invalid
    /// A record data: ...`.
    #[error("{file}:{line}: {message}")]
    Syntax { file: String, line: usize, message: String },
    /// The records parse but do not make a valid zone.
    #[error("{}{problem}", location_prefix(.file, *.line))]
    Invalid {
        file: String,
        /// Absent for problems of the zone as a whole (a missing SOA).
        line: Option<usize>,
        problem: Box<Problem>,
    },
    /// No origin was given, the file has no `$ORIGIN`, and its name does not
    /// make one.
    #[error("{}: cannot tell the zone origin: give it explicitly or add $ORIGIN", path.display())]
    UnknownOrigin { path: PathBuf },
}

impl ZoneError {
    /// The line the error is on, when it has one.
    pub fn line(&self) -> Option<usize> {
        match self {
            Self::Syntax { line, .. } => Some(*line),
            Self::Invalid { line, .. } => *line,
            Self::Io { .. } | Self::UnknownOrigin { .. } => None,
        }
    }
}

fn location_prefix(file: &str, line: Option<usize>) -> String {
    match line {
        Some(line) => format!("{file}:{line}: "),
        None => format!("{file}: "),
    }
}

/// What is wrong with a zone whose records parse (see [`ZoneError::Invalid`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    MissingSoa { origin: Name },
    MultipleSoa,
    SoaNotAtApex { owner: Name },
    OutOfZone { owner: Name, origin: Name },
    CnameAndOtherData { owner: Name },
    MultipleCnames { owner: Name },
    MultipleDnames { owner: Name },
    DataBelowDname { owner: Name, dname: Name },
    UnsupportedClass { class: DNSClass },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingSoa { origin } => write!(f, "zone {origin} has no SOA record at its apex"),
            Self::MultipleSoa => f.write_str("more than one SOA record"),
            Self::SoaNotAtApex { owner } => write!(f, "SOA record at {owner} is not at the zone apex"),
            Self::OutOfZone { owner, origin } => write!(f, "{owner} is outside the zone {origin}"),
            Self::CnameAndOtherData { owner } => write!(f, "CNAME and other data at {owner}"),
            Self::MultipleCnames { owner } => write!(f, "more than one CNAME record at {owner}"),
            Self::MultipleDnames { owner } => write!(f, "more than one DNAME record at {owner}"),
            Self::DataBelowDname { owner, dname } => {
                write!(f, "{owner} is below the DNAME at {dname}; data below a DNAME is not allowed")
            }
            Self::UnsupportedClass { class } => write!(f, "class {class} is not supported, only IN"),
        }
    }
}

// ---------------------------------------------------------------------------
// Zone data
// ---------------------------------------------------------------------------

/// One RRset: the records of one type at one owner, in zone-file order.
#[derive(Debug, Clone)]
pub struct RrSet {
    record_type: RecordType,
    ttl: u32,
    records: Vec<Record>,
}

impl RrSet {
    pub fn record_type(&self) -> RecordType {
        self.record_type
    }

    /// The TTL every record of the set carries.
    pub fn ttl(&self) -> u32 {
        self.ttl
    }

    /// Never empty; owners are the lower-cased owner name.
    pub fn records(&self) -> &[Record] {
        &self.records
    }
}

/// The data at one name. A node without RRsets is an empty non-terminal: it
/// exists (queries for it get NODATA, not NXDOMAIN) because names below it
/// have data.
#[derive(Debug, Clone, Default)]
pub struct Node {
    /// In the order each type first appears in the zone file; answers to
    /// ANY depend on it.
    rrsets: Vec<RrSet>,
}

impl Node {
    pub fn rrsets(&self) -> &[RrSet] {
        &self.rrsets
    }

    pub fn rrset(&self, record_type: RecordType) -> Option<&RrSet> {
        self.rrsets.iter().find(|set| set.record_type == record_type)
    }

    pub fn is_empty_non_terminal(&self) -> bool {
        self.rrsets.is_empty()
    }
}

/// One zone's data. Names are compared case-insensitively: every key is a
/// lower-cased [`LowerName`], and so is every stored owner.
#[derive(Debug, Clone)]
pub struct Zone {
    origin: Name,
    soa: Record,
    /// Every name that exists, empty non-terminals included, in canonical
    /// order (RFC 4034 §6.1), so the names below a name follow it.
    nodes: BTreeMap<LowerName, Node>,
    record_count: usize,
    source: String,
}

impl Zone {
    /// Parses master-file `text` for the zone `origin`. `source` names the
    /// text in errors (`source:line: ...`); a relative `$INCLUDE` is read
    /// from the directory part of `source`.
    pub fn parse(text: &str, origin: &Name, source: &str) -> Result<Zone, ZoneError> {
        Loader::load(text, canonical_origin(origin), source, Path::new(source).parent())
    }

    /// Reads and parses the zone file at `path`. Without `origin`, the zone
    /// is named by the file's first `$ORIGIN`, else by the file name without
    /// a trailing `.zone` (`zones/example.test.zone` is `example.test.`).
    pub fn load(path: &Path, origin: Option<&Name>) -> Result<Zone, ZoneError> {
        let text = std::fs::read_to_string(path).map_err(|source| ZoneError::Io { path: path.to_owned(), source })?;
        Self::parse_file_text(&text, path, origin)
    }

    /// [`Zone::load`] for a file whose text the caller has already read.
    pub fn parse_file_text(text: &str, path: &Path, origin: Option<&Name>) -> Result<Zone, ZoneError> {
        let origin = match origin {
            Some(origin) => canonical_origin(origin),
            None => first_origin_directive(text)
                .or_else(|| origin_from_file_name(path))
                .ok_or_else(|| ZoneError::UnknownOrigin { path: path.to_owned() })?,
        };
        Loader::load(text, origin, &path.display().to_string(), path.parent())
    }

    /// The zone's name: lower-case, fully qualified.
    pub fn origin(&self) -> &Name {
        &self.origin
    }

    /// The SOA record at the apex.
    pub fn soa(&self) -> &Record {
        &self.soa
    }

    pub fn serial(&self) -> u32 {
        match &self.soa.data {
            RData::SOA(soa) => soa.serial,
            _ => 0,
        }
    }

    /// The SOA record as NXDOMAIN and NODATA answers carry it: with the TTL
    /// lowered to the SOA MINIMUM field when that is smaller (RFC 2308 §3,
    /// as NSD does).
    pub fn negative_soa(&self) -> Record {
        let mut soa = self.soa.clone();
        if let RData::SOA(data) = &self.soa.data {
            soa.ttl = soa.ttl.min(data.minimum);
        }
        soa
    }

    /// Where the text came from, as given to [`Zone::parse`] or [`Zone::load`].
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Number of records (duplicates merged).
    pub fn record_count(&self) -> usize {
        self.record_count
    }

    /// The node at `name`, if the name exists (empty non-terminals exist).
    pub fn node(&self, name: &LowerName) -> Option<&Node> {
        self.nodes.get(name)
    }

    /// Every existing name and its node, in canonical order.
    pub fn nodes(&self) -> impl Iterator<Item = (&LowerName, &Node)> {
        self.nodes.iter()
    }

    pub fn is_empty_non_terminal(&self, name: &LowerName) -> bool {
        self.nodes.get(name).is_some_and(Node::is_empty_non_terminal)
    }

    /// Whether `name` is a zone cut: it has NS records and is not the apex.
    pub fn is_delegation(&self, name: &LowerName) -> bool {
        **name != self.origin && self.nodes.get(name).is_some_and(|node| node.rrset(RecordType::NS).is_some())
    }

    /// The zone cuts, in canonical order. Cuts below another cut are listed
    /// too, although only the topmost one is ever used.
    pub fn delegations(&self) -> impl Iterator<Item = &LowerName> {
        self.nodes
            .iter()
            .filter(|(name, node)| ***name != self.origin && node.rrset(RecordType::NS).is_some())
            .map(|(name, _)| name)
    }

    /// Whether `name` is at or below a zone cut, i.e. not authoritative data
    /// of this zone (the cut's own DS and NS excepted, which the caller must
    /// handle).
    pub fn is_at_or_below_cut(&self, name: &Name) -> bool {
        let origin_labels = label_count(&self.origin);
        let name_labels = label_count(name);
        if !self.origin.zone_of(name) {
            return false;
        }
        (origin_labels + 1..=name_labels).any(|depth| self.is_delegation(&LowerName::new(&name.trim_to(depth))))
    }
}

/// The number of labels of `name`, a leading `*` included (unlike
/// [`Name::num_labels`]).
pub(crate) fn label_count(name: &Name) -> usize {
    name.iter().count()
}

fn canonical_origin(origin: &Name) -> Name {
    let mut origin = origin.to_lowercase();
    origin.set_fqdn(true);
    origin
}

/// The argument of the first `$ORIGIN` in `text`, if any.
fn first_origin_directive(text: &str) -> Option<Name> {
    let mut lexer = Lexer::new(text);
    while let Ok(Some(entry)) = lexer.next_entry() {
        if entry.continues_owner {
            continue;
        }
        if let [Token::Word(directive), Token::Word(argument), ..] = entry.tokens.as_slice()
            && directive.eq_ignore_ascii_case("$ORIGIN")
        {
            return Name::parse(argument, Some(&Name::root())).ok().map(|name| canonical_origin(&name));
        }
    }
    None
}

fn origin_from_file_name(path: &Path) -> Option<Name> {
    let file_name = path.file_name()?.to_str()?;
    let stem = file_name.strip_suffix(".zone").unwrap_or(file_name);
    if stem.is_empty() {
        return None;
    }
    Name::parse(stem, Some(&Name::root())).ok().map(|name| canonical_origin(&name))
}

// ---------------------------------------------------------------------------
// Lexer
// ---------------------------------------------------------------------------

/// A token of a master-file entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// An unquoted word exactly as written, escapes included: domain names
    /// decode their own escapes.
    Word(String),
    /// The inside of a quoted string, escapes not yet decoded.
    Quoted(String),
}

/// One logical line: a directive or a record, parentheses joined.
#[derive(Debug)]
struct Entry {
    /// Where the entry starts.
    line: usize,
    /// The entry starts with white space: it has no owner of its own.
    continues_owner: bool,
    tokens: Vec<Token>,
}

#[derive(Debug)]
struct LexError {
    line: usize,
    message: &'static str,
}

/// Splits master-file text into entries (RFC 1035 §5.1). Works on bytes: the
/// characters with a meaning are all ASCII, so multi-byte UTF-8 characters
/// pass through words and strings untouched.
struct Lexer<'a> {
    text: &'a str,
    pos: usize,
    line: usize,
}

impl<'a> Lexer<'a> {
    fn new(text: &'a str) -> Self {
        Self { text, pos: 0, line: 1 }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn next_entry(&mut self) -> Result<Option<Entry>, LexError> {
        loop {
            let Some(first) = self.peek() else { return Ok(None) };
            let line = self.line;
            let continues_owner = matches!(first, b' ' | b'\t');
            let mut tokens = Vec::new();
            // The line of the open '(', while inside parentheses.
            let mut open_paren: Option<usize> = None;
            loop {
                let Some(byte) = self.peek() else {
                    if let Some(open_line) = open_paren {
                        return Err(LexError { line: open_line, message: "'(' is never closed" });
                    }
                    break;
                };
                match byte {
                    b'\n' => {
                        self.pos += 1;
                        self.line += 1;
                        if open_paren.is_none() {
                            break;
                        }
                    }
                    b' ' | b'\t' | b'\r' => self.pos += 1,
                    b';' => self.skip_comment(),
                    b'(' => {
                        if open_paren.is_some() {
                            return Err(LexError { line: self.line, message: "nested '('" });
                        }
                        open_paren = Some(self.line);
                        self.pos += 1;
                    }
                    b')' => {
                        if open_paren.take().is_none() {
                            return Err(LexError { line: self.line, message: "')' without '('" });
                        }
                        self.pos += 1;
                    }
                    b'"' => tokens.push(Token::Quoted(self.quoted()?)),
                    _ => tokens.push(Token::Word(self.word())),
                }
            }
            if !tokens.is_empty() {
                return Ok(Some(Entry { line, continues_owner, tokens }));
            }
        }
    }

    fn skip_comment(&mut self) {
        while self.peek().is_some_and(|byte| byte != b'\n') {
            self.pos += 1;
        }
    }

    /// Reads a quoted string; `self.pos` is at the opening quote. The
    /// string may span lines.
    fn quoted(&mut self) -> Result<String, LexError> {
        let start_line = self.line;
        self.pos += 1;
        let start = self.pos;
        loop {
            match self.peek() {
                None => return Err(LexError { line: start_line, message: "quoted string is never closed" }),
                Some(b'"') => break,
                Some(b'\\') => {
                    self.pos += 1;
                    if self.peek() == Some(b'\n') {
                        self.line += 1;
                    }
                    if self.peek().is_some() {
                        self.pos += 1;
                    }
                }
                Some(byte) => {
                    if byte == b'\n' {
                        self.line += 1;
                    }
                    self.pos += 1;
                }
            }
        }
        // Both ends are ASCII quotes, so the slice is on char boundaries.
        let inside = self.text.get(start..self.pos).unwrap_or_default().to_owned();
        self.pos += 1;
        Ok(inside)
    }

    /// Reads a word up to white space, a comment or a parenthesis; a
    /// backslash keeps the next character in the word.
    fn word(&mut self) -> String {
        let start = self.pos;
        while let Some(byte) = self.peek() {
            match byte {
                b' ' | b'\t' | b'\r' | b'\n' | b';' | b'(' | b')' => break,
                b'\\' => {
                    self.pos += 1;
                    if self.peek().is_some_and(|next| next != b'\n') {
                        self.pos += 1;
                    }
                }
                _ => self.pos += 1,
            }
        }
        // The word ends before an ASCII byte or at the end of the text, and
        // a skipped escaped byte is at most the first byte of a character
        // whose other bytes the loop then consumes: char boundaries both.
        self.text.get(start..self.pos).unwrap_or_default().to_owned()
    }
}

/// Decodes `\X` and `\DDD` (decimal) escapes of a character-string.
fn decode_escapes(raw: &str) -> Result<Vec<u8>, String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        if byte != b'\\' {
            out.push(byte);
            i += 1;
            continue;
        }
        match bytes.get(i + 1) {
            None => return Err("a backslash ends the string".into()),
            Some(digit) if digit.is_ascii_digit() => {
                let digits = bytes.get(i + 1..i + 4).filter(|d| d.iter().all(u8::is_ascii_digit));
                let value = digits
                    .map(|d| d.iter().fold(0u32, |value, digit| value * 10 + u32::from(digit - b'0')))
                    .and_then(|value| u8::try_from(value).ok())
                    .ok_or_else(|| format!("invalid escape in {raw:?}: \\DDD needs three digits up to 255"))?;
                out.push(value);
                i += 4;
            }
            Some(&escaped) => {
                out.push(escaped);
                i += 2;
            }
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Loader
// ---------------------------------------------------------------------------

/// Parses master files into a [`ZoneBuilder`].
struct Loader {
    builder: ZoneBuilder,
    /// `$TTL`, else NSD's default. Shared with included files.
    default_ttl: u32,
}

/// State that an `$INCLUDE`d file must not change in the including file
/// (RFC 1035 §5.1).
struct FileState {
    origin: Name,
    last_owner: Option<Name>,
}

impl Loader {
    fn load(text: &str, origin: Name, source: &str, base_dir: Option<&Path>) -> Result<Zone, ZoneError> {
        let mut loader = Self { builder: ZoneBuilder::new(origin.clone()), default_ttl: DEFAULT_TTL };
        let mut state = FileState { origin, last_owner: None };
        loader.load_text(text, source, base_dir, &mut state, 0)?;
        loader.builder.finish(source)
    }

    fn load_text(
        &mut self,
        text: &str,
        file: &str,
        base_dir: Option<&Path>,
        state: &mut FileState,
        depth: usize,
    ) -> Result<(), ZoneError> {
        let mut lexer = Lexer::new(text);
        loop {
            let entry = match lexer.next_entry() {
                Ok(Some(entry)) => entry,
                Ok(None) => return Ok(()),
                Err(err) => return Err(syntax(file, err.line, err.message)),
            };
            let directive = match entry.tokens.first() {
                Some(Token::Word(word)) if !entry.continues_owner && word.starts_with('$') => {
                    Some(word.to_ascii_uppercase())
                }
                _ => None,
            };
            match directive.as_deref() {
                None => {
                    let (record, line) = self.parse_record(&entry, file, state)?;
                    self.builder.add(record, file, line)?;
                }
                Some("$ORIGIN") => {
                    let [_, Token::Word(name)] = entry.tokens.as_slice() else {
                        return Err(syntax(file, entry.line, "$ORIGIN takes one domain name"));
                    };
                    let origin = Name::parse(name, Some(&state.origin))
                        .map_err(|err| syntax(file, entry.line, format!("invalid $ORIGIN {name:?}: {err}")))?;
                    state.origin = origin;
                }
                Some("$TTL") => {
                    let [_, Token::Word(ttl)] = entry.tokens.as_slice() else {
                        return Err(syntax(file, entry.line, "$TTL takes one TTL"));
                    };
                    self.default_ttl =
                        parse_ttl(ttl).map_err(|_| syntax(file, entry.line, format!("invalid TTL {ttl:?}")))?;
                }
                Some("$INCLUDE") => self.include(&entry, file, base_dir, state, depth)?,
                Some(other) => return Err(syntax(file, entry.line, format!("unknown directive {other}"))),
            }
        }
    }

    fn include(
        &mut self,
        entry: &Entry,
        file: &str,
        base_dir: Option<&Path>,
        state: &FileState,
        depth: usize,
    ) -> Result<(), ZoneError> {
        let (path, origin) = match entry.tokens.as_slice() {
            [_, Token::Word(path)] => (path, None),
            [_, Token::Word(path), Token::Word(origin)] => (path, Some(origin)),
            _ => return Err(syntax(file, entry.line, "$INCLUDE takes a file name and an optional origin")),
        };
        if depth >= MAX_INCLUDE_DEPTH {
            return Err(syntax(file, entry.line, "$INCLUDE nested too deeply (an include loop?)"));
        }
        let origin = match origin {
            Some(origin) => Name::parse(origin, Some(&state.origin))
                .map_err(|err| syntax(file, entry.line, format!("invalid $INCLUDE origin {origin:?}: {err}")))?,
            None => state.origin.clone(),
        };
        // Relative to the including file's directory, hickory's rule (NSD and
        // BIND use their working directory, usually the same place).
        let path = match base_dir {
            Some(dir) => dir.join(path),
            None => PathBuf::from(path),
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|err| syntax(file, entry.line, format!("cannot read $INCLUDE file {}: {err}", path.display())))?;
        let mut included = FileState { origin, last_owner: state.last_owner.clone() };
        self.load_text(&text, &path.display().to_string(), path.parent(), &mut included, depth + 1)
    }

    /// Parses a record entry: `[owner] [ttl] [class] type rdata...` with TTL
    /// and class in either order.
    fn parse_record(&mut self, entry: &Entry, file: &str, state: &mut FileState) -> Result<(Record, usize), ZoneError> {
        let line = entry.line;
        let err = |message: String| syntax(file, line, message);
        let mut tokens = entry.tokens.iter();

        let owner = if entry.continues_owner {
            state
                .last_owner
                .clone()
                .ok_or_else(|| err("no owner name, and no previous record to take it from".into()))?
        } else {
            let owner = match tokens.next() {
                Some(Token::Word(word)) if word == "@" => state.origin.clone(),
                Some(Token::Word(word)) => Name::parse(word, Some(&state.origin))
                    .map_err(|e| err(format!("invalid owner name {word:?}: {e}")))?,
                _ => return Err(err("expected an owner name".into())),
            };
            let owner = owner.to_lowercase();
            state.last_owner = Some(owner.clone());
            owner
        };

        let mut ttl = None;
        let mut class = None;
        let record_type = loop {
            let word = match tokens.next() {
                Some(Token::Word(word)) => word,
                Some(Token::Quoted(_)) => return Err(err("expected a record type, found a quoted string".into())),
                None => return Err(err("missing record type".into())),
            };
            // Types and classes never start with a digit, TTLs always do.
            if ttl.is_none() && word.starts_with(|c: char| c.is_ascii_digit()) {
                ttl = Some(parse_ttl(word).map_err(|_| err(format!("invalid TTL {word:?}")))?);
                continue;
            }
            let upper = word.to_ascii_uppercase();
            if class.is_none()
                && let Ok(parsed) = DNSClass::from_str(&upper)
            {
                class = Some(parsed);
                continue;
            }
            break parse_record_type(&upper).ok_or_else(|| err(format!("unknown record type {word:?}")))?;
        };

        // RFC 1035 lets a record omit the class to repeat the previous one;
        // as only IN gets this far, that is always IN.
        let class = class.unwrap_or(DNSClass::IN);
        if class != DNSClass::IN {
            return Err(ZoneError::Invalid {
                file: file.to_owned(),
                line: Some(line),
                problem: Box::new(Problem::UnsupportedClass { class }),
            });
        }
        if is_meta_type(record_type) {
            return Err(err(format!("{record_type} is a query type, not record data")));
        }
        let ttl = ttl.unwrap_or(self.default_ttl);

        let rdata_tokens: Vec<&Token> = tokens.collect();
        let mut rdata = parse_rdata(record_type, &rdata_tokens, &state.origin, ttl)
            .map_err(|message| err(format!("invalid {} record data: {message}", type_mnemonic(record_type))))?;
        lowercase_rdata_names(&mut rdata);
        let record = Record::from_rdata(owner, ttl, rdata);
        // Catch what would only fail when an answer is encoded (over-long
        // strings, oversized RDATA) while the line is still known.
        let mut wire = Vec::new();
        record
            .emit(&mut BinEncoder::new(&mut wire))
            .map_err(|e| err(format!("{record_type} record cannot be encoded: {e}")))?;
        Ok((record, line))
    }
}

fn syntax(file: &str, line: usize, message: impl Into<String>) -> ZoneError {
    ZoneError::Syntax { file: file.to_owned(), line, message: message.into() }
}

/// A type mnemonic or the RFC 3597 `TYPEnnn` form.
fn parse_record_type(upper: &str) -> Option<RecordType> {
    if let Some(number) = upper.strip_prefix("TYPE")
        && let Ok(code) = number.parse::<u16>()
    {
        return Some(RecordType::from(code));
    }
    RecordType::from_str(upper).ok()
}

/// Types that exist only in queries or messages (RFC 6895 §3.1: 0, OPT and
/// the 128-255 range).
fn is_meta_type(record_type: RecordType) -> bool {
    let code = u16::from(record_type);
    code == 0 || record_type == RecordType::OPT || (128..=255).contains(&code)
}

/// Builds the RDATA of a record from its tokens.
fn parse_rdata(record_type: RecordType, tokens: &[&Token], origin: &Name, ttl: u32) -> Result<RData, String> {
    if matches!(tokens.first(), Some(Token::Word(word)) if word == "\\#") {
        return parse_generic_rdata(record_type, tokens.get(1..).unwrap_or_default());
    }
    match record_type {
        RecordType::TXT => parse_txt(tokens),
        RecordType::DNAME => parse_dname(tokens, origin),
        RecordType::DS | RecordType::CDS => parse_ds(record_type, tokens),
        // hickory's text parser refuses these (it builds DNSSEC records
        // itself, or does not know the type).
        RecordType::DNSKEY
        | RecordType::CDNSKEY
        | RecordType::KEY
        | RecordType::SIG
        | RecordType::RRSIG
        | RecordType::NSEC
        | RecordType::NSEC3
        | RecordType::NSEC3PARAM
        | RecordType::NULL
        | RecordType::Unknown(_) => Err("this type can only be given in the RFC 3597 form \\# <length> <hex>".into()),
        _ => parse_with_hickory(record_type, tokens, origin, ttl),
    }
}

/// RFC 3597 §5: `\# <length> <hex>...`.
fn parse_generic_rdata(record_type: RecordType, tokens: &[&Token]) -> Result<RData, String> {
    let Some((Token::Word(length), hex)) = tokens.split_first() else {
        return Err("\\# must be followed by the RDATA length".into());
    };
    let length: u16 = length.parse().map_err(|_| format!("invalid RDATA length {length:?}"))?;
    let mut hex_text = String::new();
    for token in hex {
        match token {
            Token::Word(word) => hex_text.push_str(word),
            Token::Quoted(_) => return Err("\\# data must be hexadecimal".into()),
        }
    }
    let bytes = decode_hex(&hex_text)?;
    if bytes.len() != usize::from(length) {
        return Err(format!("\\# says {length} octets but has {}", bytes.len()));
    }
    let mut decoder = BinDecoder::new(&bytes);
    let rdata = RData::read(&mut decoder, record_type, Restrict::new(length)).map_err(|e| e.to_string())?;
    if !decoder.is_empty() {
        return Err("trailing data after the RDATA".into());
    }
    if record_type == RecordType::DNAME {
        dname_target(&rdata).ok_or("invalid DNAME target")?;
    }
    Ok(rdata)
}

fn decode_hex(text: &str) -> Result<Vec<u8>, String> {
    fn nibble(digit: u8) -> Option<u8> {
        char::from(digit).to_digit(16).and_then(|value| u8::try_from(value).ok())
    }
    let digits = text.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return Err("odd number of hex digits".into());
    }
    digits
        .chunks_exact(2)
        .map(|pair| match (nibble(pair[0]), nibble(pair[1])) {
            (Some(high), Some(low)) => Ok(high << 4 | low),
            _ => Err(format!("invalid hex {text:?}")),
        })
        .collect()
}

/// TXT is parsed here because hickory's lexer mistakes quotes inside
/// parentheses and decodes `\DDD` wrongly.
fn parse_txt(tokens: &[&Token]) -> Result<RData, String> {
    if tokens.is_empty() {
        return Err("TXT needs at least one string".into());
    }
    let strings = tokens
        .iter()
        .map(|token| {
            let (Token::Word(raw) | Token::Quoted(raw)) = token;
            let bytes = decode_escapes(raw)?;
            if bytes.len() > MAX_CHARACTER_STRING {
                return Err(format!("a string is longer than {MAX_CHARACTER_STRING} octets; split it"));
            }
            Ok(bytes)
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(RData::TXT(TXT::from_bytes(strings.iter().map(Vec::as_slice).collect())))
}

/// DNAME (RFC 6672): hickory has no DNAME RDATA type, so it is kept as
/// opaque RDATA holding the uncompressed target name (RFC 6672 §2.5 forbids
/// compressing it). [`dname_target`] reads it back.
fn parse_dname(tokens: &[&Token], origin: &Name) -> Result<RData, String> {
    let [Token::Word(target)] = tokens else {
        return Err("DNAME takes one domain name".into());
    };
    let target = if target == "@" {
        origin.clone()
    } else {
        Name::parse(target, Some(origin)).map_err(|e| format!("invalid target {target:?}: {e}"))?
    };
    dname_rdata(&target).ok_or_else(|| "cannot encode the target".into())
}

fn dname_rdata(target: &Name) -> Option<RData> {
    let wire = target.to_bytes().ok()?;
    Some(RData::Unknown { code: RecordType::DNAME, rdata: NULL::with(wire) })
}

/// The target of a DNAME record's RDATA.
pub fn dname_target(rdata: &RData) -> Option<Name> {
    let RData::Unknown { code: RecordType::DNAME, rdata } = rdata else { return None };
    let mut decoder = BinDecoder::new(&rdata.anything);
    let name = Name::read(&mut decoder).ok()?;
    decoder.is_empty().then_some(name)
}

/// DS/CDS (RFC 4034 §5.3): hickory parses them only with its DNSSEC
/// features, so they are kept as opaque RDATA.
fn parse_ds(record_type: RecordType, tokens: &[&Token]) -> Result<RData, String> {
    let words = tokens
        .iter()
        .map(|token| match token {
            Token::Word(word) => Ok(word.as_str()),
            Token::Quoted(_) => Err("unexpected quoted string".to_owned()),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let [key_tag, algorithm, digest_type, digest @ ..] = words.as_slice() else {
        return Err("expected key tag, algorithm, digest type and digest".into());
    };
    let key_tag: u16 = key_tag.parse().map_err(|_| format!("invalid key tag {key_tag:?}"))?;
    let algorithm: u8 = algorithm.parse().map_err(|_| format!("invalid algorithm {algorithm:?}"))?;
    let digest_type: u8 = digest_type.parse().map_err(|_| format!("invalid digest type {digest_type:?}"))?;
    let digest = decode_hex(&digest.concat())?;
    if digest.is_empty() {
        return Err("missing digest".into());
    }
    let mut wire = Vec::with_capacity(4 + digest.len());
    wire.extend_from_slice(&key_tag.to_be_bytes());
    wire.push(algorithm);
    wire.push(digest_type);
    wire.extend_from_slice(&digest);
    Ok(RData::Unknown { code: record_type, rdata: NULL::with(wire) })
}

/// Every other type goes through hickory's parser as a one-record zone,
/// rebuilt on one line from the tokens: hickory then sees neither
/// parentheses nor comments, and quoted strings come re-escaped the way its
/// lexer reads them.
fn parse_with_hickory(record_type: RecordType, tokens: &[&Token], origin: &Name, ttl: u32) -> Result<RData, String> {
    let mut text = format!("@ {ttl} IN {record_type}");
    for token in tokens {
        text.push(' ');
        match token {
            // hickory's lexer has no '@' inside RDATA.
            Token::Word(word) if word == "@" => text.push_str(&origin.to_ascii()),
            Token::Word(word) => {
                if word.contains([' ', '\t', '\r', ';', '(', ')']) {
                    return Err(format!("escaped white space, ';' or parentheses in {word:?} are not supported here"));
                }
                text.push_str(word);
            }
            Token::Quoted(raw) => {
                let decoded = String::from_utf8(decode_escapes(raw)?)
                    .map_err(|_| format!("{record_type} strings must be UTF-8 text"))?;
                text.push('"');
                for c in decoded.chars() {
                    if matches!(c, '"' | '\\') {
                        text.push('\\');
                    }
                    text.push(c);
                }
                text.push('"');
            }
        }
    }
    let (_, rrsets) =
        Parser::new(text, None, Some(origin.clone())).parse().map_err(|e| e.to_string().trim_end().to_owned())?;
    rrsets
        .into_values()
        .find_map(|rrset| rrset.records_without_rrsigs().next().map(|record| record.data.clone()))
        .ok_or_else(|| "no data".into())
}

/// Lower-cases the domain names inside RDATA, as NSD stores them.
fn lowercase_rdata_names(rdata: &mut RData) {
    match rdata {
        RData::CNAME(name) => name.0 = name.0.to_lowercase(),
        RData::NS(name) => name.0 = name.0.to_lowercase(),
        RData::PTR(name) => name.0 = name.0.to_lowercase(),
        RData::ANAME(name) => name.0 = name.0.to_lowercase(),
        RData::MX(mx) => mx.exchange = mx.exchange.to_lowercase(),
        RData::SRV(srv) => srv.target = srv.target.to_lowercase(),
        RData::NAPTR(naptr) => naptr.replacement = naptr.replacement.to_lowercase(),
        RData::SVCB(svcb) => svcb.target_name = svcb.target_name.to_lowercase(),
        RData::HTTPS(https) => https.0.target_name = https.0.target_name.to_lowercase(),
        RData::SOA(soa) => {
            soa.mname = soa.mname.to_lowercase();
            soa.rname = soa.rname.to_lowercase();
        }
        RData::Unknown { code: RecordType::DNAME, .. } => {
            if let Some(lowered) = dname_target(rdata).and_then(|target| dname_rdata(&target.to_lowercase())) {
                *rdata = lowered;
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------
// Building and checking
// ---------------------------------------------------------------------------

struct ZoneBuilder {
    origin: Name,
    soa: Option<Record>,
    nodes: BTreeMap<LowerName, Node>,
    record_count: usize,
    /// DNAMEs seen so far; while there are none, the check for data below
    /// one is skipped.
    dname_count: usize,
}

/// Types that may share a name with a CNAME (RFC 4035 §2.5).
fn may_accompany_cname(record_type: RecordType) -> bool {
    matches!(record_type, RecordType::CNAME | RecordType::RRSIG | RecordType::NSEC)
}

impl ZoneBuilder {
    fn new(origin: Name) -> Self {
        Self { origin, soa: None, nodes: BTreeMap::new(), record_count: 0, dname_count: 0 }
    }

    fn add(&mut self, record: Record, file: &str, line: usize) -> Result<(), ZoneError> {
        let invalid =
            |problem| ZoneError::Invalid { file: file.to_owned(), line: Some(line), problem: Box::new(problem) };
        let owner = record.name.clone();
        let record_type = record.record_type();
        if !self.origin.zone_of(&owner) {
            return Err(invalid(Problem::OutOfZone { owner, origin: self.origin.clone() }));
        }
        if record_type == RecordType::SOA {
            if owner != self.origin {
                return Err(invalid(Problem::SoaNotAtApex { owner }));
            }
            if self.soa.is_some() {
                return Err(invalid(Problem::MultipleSoa));
            }
        }
        if self.dname_count > 0
            && let Some(dname) = self.dname_above(&owner)
        {
            return Err(invalid(Problem::DataBelowDname { owner, dname }));
        }
        let key = LowerName::new(&owner);
        if record_type == RecordType::DNAME
            && let Some((below, _)) = self.nodes.range::<LowerName, _>((Bound::Excluded(&key), Bound::Unbounded)).next()
            && key.zone_of(below)
        {
            return Err(invalid(Problem::DataBelowDname { owner: Name::from(below.clone()), dname: owner }));
        }

        let node = self.nodes.entry(key).or_default();
        let conflicts_with_cname = if record_type == RecordType::CNAME {
            node.rrsets.iter().any(|set| !may_accompany_cname(set.record_type))
        } else {
            !may_accompany_cname(record_type) && node.rrset(RecordType::CNAME).is_some()
        };
        if conflicts_with_cname {
            return Err(invalid(Problem::CnameAndOtherData { owner }));
        }

        match node.rrsets.iter_mut().find(|set| set.record_type == record_type) {
            Some(set) => {
                if set.records.iter().any(|existing| existing.data == record.data) {
                    tracing::debug!("{file}:{line}: duplicate {record_type} record at {owner} ignored");
                    return Ok(());
                }
                match record_type {
                    RecordType::CNAME => return Err(invalid(Problem::MultipleCnames { owner })),
                    RecordType::DNAME => return Err(invalid(Problem::MultipleDnames { owner })),
                    _ => {}
                }
                if record.ttl != set.ttl {
                    tracing::warn!(
                        "{file}:{line}: {owner} {record_type} TTL {} differs from the RRset's TTL {}; using the lower one",
                        record.ttl,
                        set.ttl,
                    );
                    set.ttl = set.ttl.min(record.ttl);
                }
                set.records.push(record);
            }
            None => {
                if record_type == RecordType::SOA {
                    self.soa = Some(record.clone());
                }
                if record_type == RecordType::DNAME {
                    self.dname_count += 1;
                }
                node.rrsets.push(RrSet { record_type, ttl: record.ttl, records: vec![record] });
            }
        }
        self.record_count += 1;
        Ok(())
    }

    /// The owner of a DNAME at a proper ancestor of `owner`, within the zone.
    fn dname_above(&self, owner: &Name) -> Option<Name> {
        let origin_labels = label_count(&self.origin);
        (origin_labels..label_count(owner)).rev().find_map(|depth| {
            let ancestor = owner.trim_to(depth);
            let node = self.nodes.get(&LowerName::new(&ancestor))?;
            node.rrset(RecordType::DNAME).map(|_| ancestor)
        })
    }

    fn finish(mut self, source: &str) -> Result<Zone, ZoneError> {
        let Some(mut soa) = self.soa.take() else {
            return Err(ZoneError::Invalid {
                file: source.to_owned(),
                line: None,
                problem: Box::new(Problem::MissingSoa { origin: self.origin.clone() }),
            });
        };

        for node in self.nodes.values_mut() {
            for set in &mut node.rrsets {
                for record in &mut set.records {
                    record.ttl = set.ttl;
                }
            }
        }
        let apex = LowerName::new(&self.origin);
        if let Some(set) = self.nodes.get(&apex).and_then(|node| node.rrset(RecordType::SOA)) {
            soa.ttl = set.ttl;
        }

        // Empty non-terminals: every name between an owner and the apex.
        let owners: Vec<LowerName> = self.nodes.keys().cloned().collect();
        for owner in owners {
            let mut name = owner.base_name();
            while name != apex && apex.zone_of(&name) && !self.nodes.contains_key(&name) {
                let parent = name.base_name();
                self.nodes.insert(name, Node::default());
                name = parent;
            }
        }
        self.nodes.entry(apex).or_default();

        Ok(Zone {
            origin: self.origin,
            soa,
            nodes: self.nodes,
            record_count: self.record_count,
            source: source.to_owned(),
        })
    }
}

// ---------------------------------------------------------------------------
// Presentation
// ---------------------------------------------------------------------------

/// A record in presentation format the way `dig` prints it, fields
/// separated by single spaces: `owner TTL class type rdata`. For logs and
/// tests; DS digests come unsplit.
pub fn format_record(record: &Record) -> String {
    format!(
        "{} {} {} {} {}",
        record.name.to_ascii(),
        record.ttl,
        record.dns_class,
        type_mnemonic(record.record_type()),
        format_rdata(&record.data)
    )
}

/// The type's mnemonic, or RFC 3597's `TYPEnnn` for types without one.
fn type_mnemonic(record_type: RecordType) -> String {
    match record_type {
        RecordType::Unknown(code) => format!("TYPE{code}"),
        known => known.to_string(),
    }
}

fn format_rdata(rdata: &RData) -> String {
    match rdata {
        RData::TXT(txt) => {
            txt.txt_data.iter().map(|string| quote_character_string(string)).collect::<Vec<_>>().join(" ")
        }
        RData::Unknown { code: RecordType::DNAME, .. } => match dname_target(rdata) {
            Some(target) => target.to_ascii(),
            None => generic_rdata(rdata),
        },
        RData::Unknown { code: RecordType::DS | RecordType::CDS, rdata: data } => match data.anything.as_slice() {
            [tag_high, tag_low, algorithm, digest_type, digest @ ..] if !digest.is_empty() => format!(
                "{} {algorithm} {digest_type} {}",
                u16::from_be_bytes([*tag_high, *tag_low]),
                digest.iter().map(|byte| format!("{byte:02X}")).collect::<String>()
            ),
            _ => generic_rdata(rdata),
        },
        RData::Unknown { .. } => generic_rdata(rdata),
        other => other.to_string(),
    }
}

fn generic_rdata(rdata: &RData) -> String {
    let bytes = match rdata {
        RData::Unknown { rdata, .. } => rdata.anything.clone(),
        other => {
            let mut bytes = Vec::new();
            if other.emit(&mut BinEncoder::new(&mut bytes)).is_err() {
                bytes.clear();
            }
            bytes
        }
    };
    if bytes.is_empty() {
        return "\\# 0".to_owned();
    }
    let hex: String = bytes.iter().map(|byte| format!("{byte:02X}")).collect();
    format!("\\# {} {hex}", bytes.len())
}

fn quote_character_string(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for &byte in bytes {
        match byte {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(char::from(byte));
            }
            0x20..=0x7e => out.push(char::from(byte)),
            _ => out.push_str(&format!("\\{byte:03}")),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> Name {
        Name::from_ascii(text).expect("test name")
    }

    const HEADER: &str = "$ORIGIN bad.test.\n$TTL 300\n@ SOA ns hm 1 2 3 4 5\n@ NS ns\nns A 192.0.2.1\n";

    fn parse_error(text: &str) -> ZoneError {
        match Zone::parse(text, &name("bad.test."), "zones/bad.zone") {
            Ok(_) => panic!("{text:?} should not load"),
            Err(err) => err,
        }
    }

    #[test]
    fn syntax_errors_name_file_and_line() {
        let cases: &[(&str, usize, &str)] = &[
            // a bad IPv4 address after a comment and a blank line
            ("; comment\n\nwww A 192.0.2.999\n", 8, "invalid A record data"),
            ("www FOO 192.0.2.1\n", 6, "unknown record type \"FOO\""),
            ("www 1x A 192.0.2.1\n", 6, "invalid TTL \"1x\""),
            ("$TTL forever\n", 6, "invalid TTL"),
            ("www A 192.0.2.1\nx TXT ( \"a\"\n\"b\"\ny A 192.0.2.2\n", 7, "'(' is never closed"),
            ("x TXT \"no end\n", 6, "quoted string is never closed"),
            ("www A 192.0.2.1 )\n", 6, "')' without '('"),
        ];
        for (body, line, message) in cases {
            let err = parse_error(&format!("{HEADER}{body}"));
            assert_eq!(err.line(), Some(*line), "{body:?}: {err}");
            let text = err.to_string();
            assert!(text.starts_with(&format!("zones/bad.zone:{line}: ")), "{text}");
            assert!(text.contains(message), "{text}");
        }
    }

    #[test]
    fn multi_line_record_errors_point_at_its_first_line() {
        let text = format!("{HEADER}\nmx MX (\n  10\n  bad..name )\nok A 192.0.2.3\n");
        let err = parse_error(&text);
        assert_eq!(err.line(), Some(7), "{err}");
    }

    #[test]
    fn semantic_errors() {
        let cases: &[(&str, Option<usize>, &str)] = &[
            ("www.other.test. A 192.0.2.1\n", Some(6), "outside the zone"),
            ("@ SOA ns hm 2 2 3 4 5\n", Some(6), "more than one SOA"),
            ("sub SOA ns hm 2 2 3 4 5\n", Some(6), "not at the zone apex"),
            ("a A 192.0.2.1\nA CNAME ns\n", Some(7), "CNAME and other data at a.bad.test."),
            ("a CNAME ns\na TXT x\n", Some(7), "CNAME and other data"),
            ("a CNAME ns\na CNAME www\n", Some(7), "more than one CNAME"),
            ("d DNAME x.test.\nd DNAME y.test.\n", Some(7), "more than one DNAME"),
            ("d DNAME x.test.\nx.y.d A 192.0.2.1\n", Some(7), "below the DNAME"),
            ("x.y.d A 192.0.2.1\nd DNAME x.test.\n", Some(7), "below the DNAME"),
            ("a CH TXT x\n", Some(6), "class CH is not supported"),
        ];
        for (body, line, message) in cases {
            let err = parse_error(&format!("{HEADER}{body}"));
            assert_eq!(err.line(), *line, "{body:?}: {err}");
            assert!(err.to_string().contains(message), "{body:?}: {err}");
        }

        let err = parse_error("$ORIGIN bad.test.\nns A 192.0.2.1\n");
        assert_eq!(err.line(), None);
        assert_eq!(err.to_string(), "zones/bad.zone: zone bad.test. has no SOA record at its apex");
    }

    #[test]
    fn identical_cname_lines_are_one_record() {
        let zone = Zone::parse(&format!("{HEADER}a CNAME ns\na CNAME NS\n"), &name("bad.test."), "t").expect("loads");
        let node = zone.node(&LowerName::new(&name("a.bad.test."))).expect("node");
        assert_eq!(node.rrset(RecordType::CNAME).map(|set| set.records().len()), Some(1));
    }

    #[test]
    fn names_are_case_insensitive_and_stored_lower_case() {
        let text = format!("{HEADER}Mixed.Case A 192.0.2.9\nmixed.CASE TXT \"x\"\nm MX 10 MAIL.Bad.Test.\n");
        let zone = Zone::parse(&text, &name("Bad.Test"), "t").expect("loads");
        assert_eq!(zone.origin().to_ascii(), "bad.test.");
        let node = zone.node(&LowerName::new(&name("MIXED.case.bad.test."))).expect("node");
        let types: Vec<_> = node.rrsets().iter().map(RrSet::record_type).collect();
        assert_eq!(types, [RecordType::A, RecordType::TXT]);
        assert_eq!(format_record(&node.rrsets()[0].records()[0]), "mixed.case.bad.test. 300 IN A 192.0.2.9");
        let mx = zone.node(&LowerName::new(&name("m.bad.test."))).expect("mx");
        assert_eq!(format_record(&mx.rrsets()[0].records()[0]), "m.bad.test. 300 IN MX 10 mail.bad.test.");
    }

    #[test]
    fn ttl_defaults_and_rrset_ttl() {
        let text = "$ORIGIN t.\n@ SOA ns hm 1 2 3 4 5\na 600 A 192.0.2.1\na A 192.0.2.2\n$TTL 60\nb A 192.0.2.3\n";
        let zone = Zone::parse(text, &name("t."), "t").expect("loads");
        // No $TTL yet: NSD's default of 3600, then the lowest TTL of the set.
        assert_eq!(zone.soa().ttl, 3600);
        let a = zone.node(&LowerName::new(&name("a.t."))).and_then(|n| n.rrset(RecordType::A)).expect("a");
        assert_eq!(a.ttl(), 600);
        assert!(a.records().iter().all(|r| r.ttl == 600));
        let b = zone.node(&LowerName::new(&name("b.t."))).and_then(|n| n.rrset(RecordType::A)).expect("b");
        assert_eq!(b.ttl(), 60);
    }

    #[test]
    fn empty_non_terminals_and_cuts() {
        let text = format!("{HEADER}a.b.c A 192.0.2.1\nsub NS ns.sub\nns.sub A 192.0.2.2\n");
        let zone = Zone::parse(&text, &name("bad.test."), "t").expect("loads");
        let lower = |text: &str| LowerName::new(&name(text));
        assert!(zone.is_empty_non_terminal(&lower("b.c.bad.test.")));
        assert!(zone.is_empty_non_terminal(&lower("c.bad.test.")));
        assert!(!zone.is_empty_non_terminal(&lower("a.b.c.bad.test.")));
        assert!(zone.node(&lower("x.c.bad.test.")).is_none());
        assert!(zone.is_delegation(&lower("sub.bad.test.")));
        assert!(!zone.is_delegation(&lower("bad.test.")));
        assert!(zone.is_at_or_below_cut(&name("ns.sub.bad.test.")));
        assert!(!zone.is_at_or_below_cut(&name("ns.bad.test.")));
        assert_eq!(zone.delegations().map(|n| n.to_string()).collect::<Vec<_>>(), ["sub.bad.test."]);
    }

    #[test]
    fn record_data_hickory_cannot_parse_alone() {
        let text = format!(
            "{HEADER}\
             t TXT ( \"v=DKIM1; k=rsa; \"\n   \"p=AB\\\"C\\065\" )\n\
             d DNAME Target.Example.\n\
             ds DS 1 8 2 ( 0a0B\n 0C )\n\
             g TYPE65280 \\# 3 010203\n\
             ga A \\# 4 C0000207\n\
             c CNAME @\n\
             n NAPTR 100 10 \"S\" \"SIP+D2U\" \"\" _sip._udp\n"
        );
        let zone = Zone::parse(&text, &name("bad.test."), "t").expect("loads");
        let shown = |owner: &str| -> Vec<String> {
            let node = zone.node(&LowerName::new(&name(owner))).expect(owner);
            node.rrsets().iter().flat_map(|set| set.records().iter().map(format_record)).collect()
        };
        assert_eq!(shown("t.bad.test."), ["t.bad.test. 300 IN TXT \"v=DKIM1; k=rsa; \" \"p=AB\\\"CA\""]);
        assert_eq!(shown("d.bad.test."), ["d.bad.test. 300 IN DNAME target.example."]);
        assert_eq!(shown("ds.bad.test."), ["ds.bad.test. 300 IN DS 1 8 2 0A0B0C"]);
        assert_eq!(shown("g.bad.test."), ["g.bad.test. 300 IN TYPE65280 \\# 3 010203"]);
        assert_eq!(shown("ga.bad.test."), ["ga.bad.test. 300 IN A 192.0.2.7"]);
        assert_eq!(shown("c.bad.test."), ["c.bad.test. 300 IN CNAME bad.test."]);
        assert_eq!(
            shown("n.bad.test."),
            ["n.bad.test. 300 IN NAPTR 100 10 \"S\" \"SIP+D2U\" \"\" _sip._udp.bad.test."]
        );
    }

    #[test]
    fn long_strings_are_rejected_with_their_line() {
        let err = parse_error(&format!("{HEADER}big TXT \"{}\"\n", "a".repeat(256)));
        assert_eq!(err.line(), Some(6));
        assert!(err.to_string().contains("longer than 255"), "{err}");
    }

    #[test]
    fn origin_comes_from_origin_directive_or_file_name() {
        let dir = std::env::temp_dir().join(format!("dns-xdp-zone-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let named = dir.join("example.test.zone");
        std::fs::write(&named, "@ 300 SOA ns hm 1 2 3 4 5\nwww 300 A 192.0.2.1\n").expect("write");
        let zone = Zone::load(&named, None).expect("loads");
        assert_eq!(zone.origin().to_ascii(), "example.test.");
        assert!(zone.node(&LowerName::new(&name("www.example.test."))).is_some());

        let with_origin = dir.join("whatever.zone");
        std::fs::write(
            &with_origin,
            "$ORIGIN Other.Test.\n@ 300 SOA ns hm 1 2 3 4 5\n$ORIGIN sub.other.test.\nwww 300 A 192.0.2.1\n",
        )
        .expect("write");
        let zone = Zone::load(&with_origin, None).expect("loads");
        assert_eq!(zone.origin().to_ascii(), "other.test.");
        assert!(zone.node(&LowerName::new(&name("www.sub.other.test."))).is_some());

        let include = dir.join("included.db");
        std::fs::write(&include, "www 300 A 192.0.2.5\n").expect("write");
        let main = dir.join("inc.test.zone");
        std::fs::write(&main, "@ 300 SOA ns hm 1 2 3 4 5\n$INCLUDE included.db sub\nafter 300 A 192.0.2.6\n")
            .expect("write");
        let zone = Zone::load(&main, None).expect("loads");
        assert!(zone.node(&LowerName::new(&name("www.sub.inc.test."))).is_some());
        // The include's origin does not leak back.
        assert!(zone.node(&LowerName::new(&name("after.inc.test."))).is_some());

        let bad_include = dir.join("broken.db");
        std::fs::write(&bad_include, "\nwww 300 A 192.0.2.500\n").expect("write");
        std::fs::write(&main, "@ 300 SOA ns hm 1 2 3 4 5\n$INCLUDE broken.db\n").expect("write");
        let err = Zone::load(&main, None).expect_err("fails");
        assert!(err.to_string().starts_with(&format!("{}:2: ", bad_include.display())), "{err}");

        let missing = Zone::load(&dir.join("absent.zone"), None).expect_err("fails");
        assert!(matches!(missing, ZoneError::Io { .. }));
        std::fs::remove_dir_all(&dir).ok();
    }

    /// Mangled zone files must fail cleanly, never panic.
    #[test]
    fn mangled_input_never_panics() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
        let original = std::fs::read_to_string(dir.join("example.test.zone")).expect("test zone");
        let pieces = [
            "(", ")", ";", "\"", "\\", "\\0", "\\#", "$", "$ORIGIN", "@", "*", ".", "\n", " ", "\t", "9", "IN",
            "CNAME", "DNAME", "NS", "é", "\r",
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |bound: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % bound as u64) as usize
        };
        for _ in 0..300 {
            let mut text = original.clone();
            for _ in 0..1 + next(4) {
                let mut at = next(text.len() + 1);
                while !text.is_char_boundary(at) {
                    at -= 1;
                }
                if next(2) == 0 {
                    text.insert_str(at, pieces[next(pieces.len())]);
                } else {
                    let mut end = (at + 1 + next(8)).min(text.len());
                    while !text.is_char_boundary(end) {
                        end += 1;
                    }
                    text.replace_range(at..end, "");
                }
            }
            if let Ok(zone) = Zone::parse(&text, &name("example.test."), "mangled") {
                let mut catalog = crate::authority::Catalog::new();
                catalog.insert(zone);
                for qname in ["www.example.test.", "a.b.c.example.test.", "x.dn.example.test.", "q.wild.example.test."]
                {
                    for qtype in [RecordType::A, RecordType::ANY, RecordType::MX, RecordType::DS] {
                        catalog.lookup(&name(qname), qtype);
                    }
                }
            }
        }
    }

    #[test]
    fn test_zones_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
        for file in ["example.test.zone", "other.test.zone", "hosted.example.test.zone"] {
            let zone = Zone::load(&dir.join(file), None).unwrap_or_else(|err| panic!("{err}"));
            assert!(zone.record_count() > 3);
        }
    }
}
