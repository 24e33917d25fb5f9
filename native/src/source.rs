//! A migration script cut into parsed statements, each with its text and 1-based position
//! (`sql_source.py`). PostgreSQL reports statement locations as byte offsets into the UTF-8
//! text and error positions as character positions; both become character offsets, then
//! line and column (columns count characters), as Python's string indexes do. A syntax error
//! never stops the analysis: the script is cut at its `;` tokens and every piece that parses
//! is still analysed.

use std::fmt;

use crate::nodes::Value;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::nodes::{Node, IDENTIFIER_MAX_BYTES};
use crate::pg;
use crate::pytext::{is_digit, is_space, is_word, strip};
use crate::rules;

#[derive(Clone, Debug)]
pub struct SourceStatement {
    /// The parse node's type, as PostgreSQL names it (`AlterTableStmt`).
    pub kind: String,
    /// Its node as far as the rules read it (`Script::node`), or empty when it is decoded
    /// later from `raw`.
    pub node: Node,
    /// Where its `{"Kind": {...}}` is in `Script::json`, when it is decoded on demand.
    pub raw: Option<std::ops::Range<usize>>,
    /// The statement's text, stripped.
    pub text: String,
    /// Character offset of the first token in the script.
    pub start: usize,
    pub line: i64,
    pub column: i64,
}

#[derive(Clone, Debug)]
pub struct SyntaxProblem {
    pub message: String,
    pub line: i64,
    pub column: i64,
}

#[derive(Clone, Debug, Default)]
pub struct Script {
    pub statements: Vec<SourceStatement>,
    pub errors: Vec<SyntaxProblem>,
    /// The parser's JSON, kept when the statements are decoded one by one (a long script).
    pub json: String,
}

/// Parse trees of at most this much JSON are decoded when the script is read, on the thread
/// that parsed it; a longer one statement by statement as the analysis reaches each, so that a
/// long script's tree is never all in memory at once (5,000 statements: ~60 MB).
const DECODE_AT_ONCE_BYTES: usize = 1 << 20;

impl Script {
    /// A statement's node, decoded now if it was left in the JSON.
    pub fn node<'a>(&'a self, statement: &'a SourceStatement) -> std::borrow::Cow<'a, Node> {
        match &statement.raw {
            None => std::borrow::Cow::Borrowed(&statement.node),
            Some(range) => std::borrow::Cow::Owned(
                serde_json::from_str::<Stmt>(&self.json[range.clone()])
                    .map(|s| s.node)
                    .unwrap_or_default(),
            ),
        }
    }
}

/// Byte offsets -> character offsets -> (line, column), cheap when called in order.
struct Positions<'a> {
    sql: &'a str,
    ascii: bool,
    byte: usize,
    char: usize,
}

impl<'a> Positions<'a> {
    fn new(sql: &'a str) -> Self {
        Positions {
            sql,
            ascii: sql.is_ascii(),
            byte: 0,
            char: 0,
        }
    }

    /// The character offset of a byte offset (bytes of a cut character are not counted).
    fn char(&mut self, byte_offset: usize) -> usize {
        if self.ascii {
            return byte_offset;
        }
        if byte_offset < self.byte {
            self.byte = 0;
            self.char = 0;
        }
        let end = byte_offset.min(self.sql.len());
        let piece = &self.sql.as_bytes()[self.byte.min(end)..end];
        self.char += String::from_utf8_lossy(piece)
            .chars()
            .filter(|c| *c != '\u{fffd}')
            .count()
            + piece_replacements(piece);
        self.byte = byte_offset;
        self.char
    }
}

/// U+FFFD characters that are really in `piece` (not produced by decoding errors).
fn piece_replacements(piece: &[u8]) -> usize {
    piece
        .windows(3)
        .filter(|w| *w == [0xef, 0xbf, 0xbd])
        .count()
}

/// The byte offset of character offset `chars` in `sql`.
fn byte_of(sql: &str, chars: usize) -> usize {
    sql.char_indices().nth(chars).map_or(sql.len(), |(b, _)| b)
}

fn char_count(text: &str) -> usize {
    if text.is_ascii() {
        text.len()
    } else {
        text.chars().count()
    }
}

/// 1-based line and column (in characters) of a character offset in `sql`.
fn line_column(sql: &str, offset: i64) -> (i64, i64) {
    let total = char_count(sql);
    let offset = offset.clamp(0, total as i64) as usize;
    let byte = if sql.is_ascii() {
        offset
    } else {
        byte_of(sql, offset)
    };
    let before = &sql[..byte];
    let line = before.bytes().filter(|b| *b == b'\n').count() as i64 + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, char_count(&sql[line_start..byte]) as i64 + 1)
}

/// Every statement of `sql`, in order; syntax errors as `SyntaxProblem`s.
pub fn read_script(sql: &str) -> Script {
    match pg::parse_json(sql) {
        Ok(tree) if tree.len() > DECODE_AT_ONCE_BYTES => {
            let statements = raw_statements(sql, &tree);
            Script {
                statements,
                errors: Vec::new(),
                json: tree,
            }
        }
        Ok(tree) => Script {
            statements: statements(sql, &tree, 0),
            errors: Vec::new(),
            json: String::new(),
        },
        Err(error) => parse_piecewise(sql, error),
    }
}

#[derive(Deserialize)]
struct Tree {
    #[serde(default)]
    stmts: Vec<RawItem>,
}

#[derive(Deserialize)]
struct RawItem {
    #[serde(default)]
    stmt: Stmt,
    #[serde(default)]
    stmt_location: i64,
    #[serde(default)]
    stmt_len: i64,
}

#[derive(Deserialize)]
struct RawTree<'a> {
    #[serde(borrow, default)]
    stmts: Vec<RawStmtItem<'a>>,
}

#[derive(Deserialize)]
struct RawStmtItem<'a> {
    #[serde(borrow, default)]
    stmt: Option<&'a RawValue>,
    #[serde(default)]
    stmt_location: i64,
    #[serde(default)]
    stmt_len: i64,
}

/// A statement's type and as much of its node as the handlers read (`rules::wanted`), decoded
/// in the one pass over the parser's JSON: the rest is skipped, never built into values.
#[derive(Default)]
struct Stmt {
    kind: String,
    node: Node,
}

impl<'de> Deserialize<'de> for Stmt {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(StmtVisitor)
    }
}

struct StmtVisitor;

impl<'de> Visitor<'de> for StmtVisitor {
    type Value = Stmt;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a statement node")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Stmt, A::Error> {
        let mut found = Stmt::default();
        let mut keys = 0;
        while let Some(kind) = map.next_key::<String>()? {
            keys += 1;
            match rules::wanted(&kind) {
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
                Some([]) => match map.next_value::<Value>()? {
                    Value::Object(node) => found.node = node,
                    _ => continue, // `unwrap`: not a node
                },
                Some(fields) => found.node = map.next_value_seed(Fields(fields))?,
            }
            found.kind = kind;
        }
        // `sql_nodes.unwrap`: anything but `{"Kind": {...}}` is ("", {}).
        Ok(if keys == 1 { found } else { Stmt::default() })
    }
}

/// The named fields of a node; the others are skipped.
struct Fields(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for Fields {
    type Value = Node;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Fields {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a node")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut node = Node::new();
        while let Some(key) = map.next_key::<String>()? {
            if self.0.contains(&key.as_str()) {
                node.insert(key, map.next_value::<Value>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(node)
    }
}

/// The statements of a parse tree of `sql`; `base`: added to their character offsets.
fn statements(sql: &str, tree_json: &str, base: usize) -> Vec<SourceStatement> {
    let Ok(tree) = serde_json::from_str::<Tree>(tree_json) else {
        return Vec::new();
    };
    let items = tree.stmts.into_iter().map(|item| {
        let Stmt { kind, node } = item.stmt;
        (kind, node, None, item.stmt_location, item.stmt_len)
    });
    place(sql, items, base)
}

/// The statements of a long script's parse tree, their nodes left in `tree_json` (each kind
/// read from the front of its `{"Kind": {...}}`).
fn raw_statements(sql: &str, tree_json: &str) -> Vec<SourceStatement> {
    let Ok(tree) = serde_json::from_str::<RawTree>(tree_json) else {
        return Vec::new();
    };
    let items: Vec<_> = tree
        .stmts
        .into_iter()
        .map(|item| {
            let (kind, raw) = match item.stmt {
                Some(raw) => {
                    let text = raw.get();
                    let start = text.as_ptr() as usize - tree_json.as_ptr() as usize;
                    (raw_kind(text), Some(start..start + text.len()))
                }
                None => (String::new(), None),
            };
            (kind, Node::new(), raw, item.stmt_location, item.stmt_len)
        })
        .collect();
    place(sql, items.into_iter(), 0)
}

/// The type of a `{"Kind":{...}}` statement, as `Stmt` would read it ("" for anything else).
fn raw_kind(text: &str) -> String {
    let kind = text
        .strip_prefix("{\"")
        .and_then(|rest| rest.split_once("\":{"))
        .map(|(kind, _)| kind)
        .filter(|kind| kind.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    match kind {
        Some(kind) => kind.to_string(),
        None => serde_json::from_str::<Stmt>(text)
            .map(|s| s.kind)
            .unwrap_or_default(),
    }
}

type Item = (String, Node, Option<std::ops::Range<usize>>, i64, i64);

/// Each statement's text and position in `sql`.
fn place(sql: &str, items: impl Iterator<Item = Item>, base: usize) -> Vec<SourceStatement> {
    let mut positions = Positions::new(sql);
    let mut out = Vec::with_capacity(items.size_hint().0);
    let mut line = 1i64;
    let mut line_byte = 0usize;
    for (kind, node, raw, stmt_location, stmt_len) in items {
        let location = stmt_location.max(0) as usize;
        let length = stmt_len.max(0) as usize;
        let start_byte = location.min(sql.len());
        let end_byte = if length > 0 {
            (location + length).min(sql.len())
        } else {
            sql.len()
        };
        let piece = sql.get(start_byte..end_byte.max(start_byte)).unwrap_or("");
        let stripped_start = piece.len() - piece.trim_start_matches(is_space).len();
        let text = strip(piece).to_string();
        let first_byte = start_byte + stripped_start;
        let start = positions.char(first_byte);
        // line and column, counted on from the previous statement (offsets only grow)
        if first_byte < line_byte {
            line = 1;
            line_byte = 0;
        }
        line += sql.as_bytes()[line_byte..first_byte]
            .iter()
            .filter(|b| **b == b'\n')
            .count() as i64;
        line_byte = first_byte;
        let line_start = sql[..first_byte].rfind('\n').map_or(0, |i| i + 1);
        let column = char_count(&sql[line_start..first_byte]) as i64 + 1;
        out.push(SourceStatement {
            kind,
            node,
            raw,
            text,
            start: base + start,
            line,
            column,
        });
    }
    out
}

fn parse_piecewise(sql: &str, first_error: pg::ParseError) -> Script {
    let pieces = match split_at_semicolons(sql) {
        Ok(pieces) => pieces,
        Err(_) => {
            return Script {
                statements: Vec::new(),
                errors: vec![problem(sql, &first_error, sql, 0)],
                json: String::new(),
            }
        }
    };
    let mut statements_out = Vec::new();
    let mut errors = Vec::new();
    for (start_byte, end_byte) in pieces {
        let piece = &sql[start_byte..end_byte];
        let start = char_count(&sql[..start_byte]);
        match pg::parse_json(piece) {
            Err(error) => errors.push(problem(piece, &error, sql, start)),
            Ok(tree) => {
                for statement in statements(piece, &tree, 0) {
                    let offset = start + statement.start;
                    let (line, column) = line_column(sql, offset as i64);
                    statements_out.push(SourceStatement {
                        start: offset,
                        line,
                        column,
                        ..statement
                    });
                }
            }
        }
    }
    if errors.is_empty() {
        // the pieces parse alone but not together: report the first error whole
        errors.push(problem(sql, &first_error, sql, 0));
    }
    Script {
        statements: statements_out,
        errors,
        json: String::new(),
    }
}

/// The script cut at its `;` tokens: byte ranges of the non-blank pieces.
fn split_at_semicolons(sql: &str) -> Result<Vec<(usize, usize)>, pg::ParseError> {
    let mut pieces = Vec::new();
    let mut start = 0usize;
    for token in pg::scan(sql)? {
        if token.name == "ASCII_59" {
            pieces.push((start, token.start.min(sql.len())));
            start = token.end.min(sql.len());
        }
    }
    if !strip(&sql[start..]).is_empty() {
        pieces.push((start, sql.len()));
    }
    Ok(pieces
        .into_iter()
        .filter(|(s, e)| s <= e && !strip(&sql[*s..*e]).is_empty())
        .collect())
}

fn problem(piece: &str, error: &pg::ParseError, sql: &str, base: usize) -> SyntaxProblem {
    let offset = error_offset(piece, error);
    let (line, column) = line_column(sql, (base + offset) as i64);
    SyntaxProblem {
        message: error.message.clone(),
        line,
        column,
    }
}

/// pglast's error position: `cursorpos - 1` taken as a byte offset and converted to
/// characters (wrong after a multibyte character), None when there is none.
fn pglast_location(piece: &str, error: &pg::ParseError) -> Option<usize> {
    if error.cursorpos <= 0 {
        return None;
    }
    let byte = ((error.cursorpos - 1) as usize).min(piece.len());
    Some(
        String::from_utf8_lossy(&piece.as_bytes()[..byte])
            .chars()
            .filter(|c| *c != '\u{fffd}')
            .count(),
    )
}

/// The error's character offset in `piece`: the same text with each non-ASCII character
/// replaced by one ASCII letter fails at the same place, where bytes and characters agree.
fn error_offset(piece: &str, error: &pg::ParseError) -> usize {
    let Some(location) = pglast_location(piece, error) else {
        return char_count(piece.trim_end_matches(is_space));
    };
    if piece.is_ascii() {
        return location;
    }
    let ascii: String = piece
        .chars()
        .map(|c| if c.is_ascii() { c } else { 'x' })
        .collect();
    if let Err(ascii_error) = pg::parse_json(&ascii) {
        if let Some(ascii_location) = pglast_location(&ascii, &ascii_error) {
            return ascii_location;
        }
    }
    location
}

/// `[^\W\d][\w$]{31,}|"[^"]{32,}"` searched anywhere in `text`.
fn has_long_word(text: &str) -> bool {
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if is_word(chars[i]) || chars[i] == '$' {
            let run_start = i;
            while i < chars.len() && (is_word(chars[i]) || chars[i] == '$') {
                i += 1;
            }
            let first = (run_start..i).find(|&j| is_word(chars[j]) && !is_digit(chars[j]));
            if first.is_some_and(|j| i - j >= 32) {
                return true;
            }
        } else {
            i += 1;
        }
    }
    let quotes: Vec<usize> = chars
        .iter()
        .enumerate()
        .filter(|(_, c)| **c == '"')
        .map(|(i, _)| i)
        .collect();
    quotes.windows(2).any(|w| w[1] - w[0] > 32)
}

/// The length in characters of the longest run of non-blank characters (`max(map(len,
/// statement.split()))`), counted on bytes for ASCII text.
fn widest_word(statement: &str) -> usize {
    if !statement.is_ascii() {
        return statement.split(is_space).map(char_count).max().unwrap_or(0);
    }
    let (mut widest, mut run) = (0, 0);
    for byte in statement.bytes() {
        if matches!(byte, b'\t'..=b'\r' | 0x1c..=0x1f | b' ') {
            widest = widest.max(run);
            run = 0;
        } else {
            run += 1;
        }
    }
    widest.max(run)
}

/// Identifiers over 63 bytes in a statement's text (the parse tree has them truncated).
pub fn long_identifiers(statement: &str) -> Vec<String> {
    if !statement.contains('"') {
        let widest = widest_word(statement);
        if widest < 32 || (widest <= IDENTIFIER_MAX_BYTES && statement.is_ascii()) {
            return Vec::new();
        }
    }
    if !has_long_word(statement) {
        return Vec::new();
    }
    let Ok(tokens) = pg::scan(statement) else {
        return Vec::new();
    };
    let mut names = Vec::new();
    for token in tokens {
        if token.name == "IDENT" || token.kind != "NO_KEYWORD" {
            let raw = statement
                .get(token.start..token.end.min(statement.len()))
                .unwrap_or("");
            let name = raw.trim_matches('"');
            if name.len() > IDENTIFIER_MAX_BYTES {
                names.push(name.to_string());
            }
        }
    }
    names
}
