//! Entries into a [`Zone`]: directives (`$ORIGIN`, `$TTL`, `$INCLUDE`), owner
//! and TTL inheritance, then the checks that make a zone servable (see the
//! module docs of [`crate::zone`] for what is rejected and why).

use std::{
    collections::BTreeMap,
    ops::Bound,
    path::{Path, PathBuf},
    str::FromStr,
};

use hickory_proto::{
    rr::{DNSClass, LowerName, Name, Record, RecordType},
    serialize::{
        binary::{BinEncodable, BinEncoder},
        txt::parse_ttl,
    },
};

use super::{
    DEFAULT_TTL, MAX_INCLUDE_DEPTH, Node, Nsec3Chain, Problem, RrSet, Zone, ZoneError, label_count,
    lexer::{Entry, Lexer, Token},
    rdata::{is_meta_type, lowercase_rdata_names, parse_rdata, parse_record_type, rrsig_covered, type_mnemonic},
};

pub(super) fn syntax(file: &str, line: usize, message: impl Into<String>) -> ZoneError {
    ZoneError::Syntax { file: file.to_owned(), line, message: message.into() }
}

/// Parses master files into a [`ZoneBuilder`].
pub(super) struct Loader {
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
    pub(super) fn load(text: &str, origin: Name, source: &str, base_dir: Option<&Path>) -> Result<Zone, ZoneError> {
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

pub(super) struct ZoneBuilder {
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
    pub(super) fn new(origin: Name) -> Self {
        Self { origin, soa: None, nodes: BTreeMap::new(), record_count: 0, dname_count: 0 }
    }

    pub(super) fn add(&mut self, record: Record, file: &str, line: usize) -> Result<(), ZoneError> {
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

        let covered = rrsig_covered(&record.data);
        let existing = match covered {
            Some(covered) => node.signatures.iter_mut().find(|(of, _)| *of == covered).map(|(_, set)| set),
            None => node.rrsets.iter_mut().find(|set| set.record_type == record_type),
        };
        match existing {
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
                        "{file}:{line}: {owner} {} TTL {} differs from the RRset's TTL {}; using the lower one",
                        type_mnemonic(record_type),
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
                let set = RrSet { record_type, ttl: record.ttl, records: vec![record] };
                match covered {
                    Some(covered) => node.signatures.push((covered, set)),
                    None => node.rrsets.push(set),
                }
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

    pub(super) fn finish(mut self, source: &str) -> Result<Zone, ZoneError> {
        let Some(mut soa) = self.soa.take() else {
            return Err(ZoneError::Invalid {
                file: source.to_owned(),
                line: None,
                problem: Box::new(Problem::MissingSoa { origin: self.origin.clone() }),
            });
        };

        for node in self.nodes.values_mut() {
            for set in node.rrsets.iter_mut().chain(node.signatures.iter_mut().map(|(_, set)| set)) {
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
        self.nodes.entry(apex.clone()).or_default();
        let nsec3 = nsec3_chain(&self.nodes, &apex);

        Ok(Zone {
            origin: self.origin,
            soa,
            nodes: self.nodes,
            record_count: self.record_count,
            source: source.to_owned(),
            loaded_at: std::time::SystemTime::now(),
            nsec3,
        })
    }
}

/// The NSEC3 chain of a zone whose apex has an NSEC3PARAM (RFC 5155 §4):
/// every NSEC3 owner with the hash its first label spells in base32hex.
/// `None` without NSEC3PARAM or without NSEC3 records.
fn nsec3_chain(nodes: &BTreeMap<LowerName, Node>, apex: &LowerName) -> Option<Nsec3Chain> {
    let param = nodes.get(apex)?.rrset(RecordType::NSEC3PARAM)?.records().first()?;
    let mut wire = Vec::new();
    param.data.emit(&mut BinEncoder::new(&mut wire)).ok()?;
    // Hash algorithm, flags, iterations, salt length, salt (RFC 5155 §4.2).
    let [_algorithm, _flags, iterations_high, iterations_low, salt_len, salt @ ..] = wire.as_slice() else {
        return None;
    };
    let salt = salt.get(..usize::from(*salt_len))?.to_vec();
    let mut owners: Vec<(Vec<u8>, LowerName)> = nodes
        .iter()
        .filter(|(_, node)| node.rrset(RecordType::NSEC3).is_some())
        .filter_map(|(owner, _)| {
            let label = Name::from(owner.clone()).iter().next()?.to_ascii_uppercase();
            let hash = data_encoding::BASE32HEX_NOPAD.decode(&label).ok()?;
            Some((hash, owner.clone()))
        })
        .collect();
    if owners.is_empty() {
        return None;
    }
    owners.sort();
    Some(Nsec3Chain { iterations: u16::from_be_bytes([*iterations_high, *iterations_low]), salt, owners })
}
