//! Master-file text into entries (RFC 1035 §5.1): one directive or record
//! per entry, parentheses joined, comments dropped, quoted strings and
//! escapes kept for the RDATA parsers.

/// A token of a master-file entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Token {
    /// An unquoted word exactly as written, escapes included: domain names
    /// decode their own escapes.
    Word(String),
    /// The inside of a quoted string, escapes not yet decoded.
    Quoted(String),
}

/// One logical line: a directive or a record, parentheses joined.
#[derive(Debug)]
pub(super) struct Entry {
    /// Where the entry starts.
    pub(super) line: usize,
    /// The entry starts with white space: it has no owner of its own.
    pub(super) continues_owner: bool,
    pub(super) tokens: Vec<Token>,
}

#[derive(Debug)]
pub(super) struct LexError {
    pub(super) line: usize,
    pub(super) message: &'static str,
}

/// Splits master-file text into entries (RFC 1035 §5.1). Works on bytes: the
/// characters with a meaning are all ASCII, so multi-byte UTF-8 characters
/// pass through words and strings untouched.
pub(super) struct Lexer<'a> {
    text: &'a str,
    pos: usize,
    pub(super) line: usize,
}

impl<'a> Lexer<'a> {
    pub(super) fn new(text: &'a str) -> Self {
        Self { text, pos: 0, line: 1 }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    pub(super) fn next_entry(&mut self) -> Result<Option<Entry>, LexError> {
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
pub(super) fn decode_escapes(raw: &str) -> Result<Vec<u8>, String> {
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
