//! `-- guardians:ignore RULE[,RULE]` (the next statement) and `-- guardians:ignore-file RULE`
//! (`suppressions.py`).
//!
//! An unknown rule name suppresses nothing and is reported as `unknown-suppression`. The crate
//! has no regex engine: the two Python regexes are matched by hand, with Python `re` semantics
//! (`\b` and `\s` on Unicode characters), and offsets, lines and columns count characters like
//! Python string indexes.

use std::collections::HashSet;

use crate::findings::Catalog;
use crate::pytext::{is_space, is_word};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownRuleName {
    pub name: String,
    pub line: i64,
    pub column: i64,
}

#[derive(Clone, Debug, Default)]
pub struct Suppressions {
    pub whole_file: HashSet<String>,
    /// (character offset of the directive, rules) in file order.
    pub next_statement: Vec<(usize, HashSet<String>)>,
    pub unknown: Vec<UnknownRuleName>,
}

impl Suppressions {
    /// The rules suppressed for the statement starting at character offset `start`, the
    /// previous statement having started at `previous_start` (-1 for none): the whole file's,
    /// and those of the directives after the previous statement's start.
    pub fn for_statement(&self, start: usize, previous_start: i64) -> HashSet<String> {
        if self.next_statement.is_empty() {
            return self.whole_file.clone();
        }
        let mut rules = self.whole_file.clone();
        for (offset, names) in &self.next_statement {
            if previous_start < *offset as i64 && *offset < start {
                rules.extend(names.iter().cloned());
            }
        }
        rules
    }
}

/// Offsets are character offsets into `sql` (Python string indexes), lines and columns
/// 1-based, columns in characters.
pub fn read_suppressions(sql: &str, catalog: &Catalog) -> Suppressions {
    let mut found = Suppressions::default();
    if !sql.contains("guardians:") {
        return found;
    }
    let mut whole: HashSet<String> = HashSet::new();
    let mut cursor = Cursor {
        byte: 0,
        chars: 0,
        line: 1,
        line_start: 0,
    };
    for directive in directives(sql) {
        cursor.advance(sql, directive.start);
        let mut names: HashSet<String> = HashSet::new();
        // `match.group(2).split("--", 1)[0]`
        let listed = match directive.listed.find("--") {
            Some(end) => &directive.listed[..end],
            None => directive.listed,
        };
        // `re.split(r"[,\s]+", listed.strip())` without its empty pieces.
        for raw in listed.split(|c: char| c == ',' || is_space(c)) {
            if raw.is_empty() {
                continue;
            }
            match catalog.canonical(raw) {
                Some(rule) if !catalog.unsuppressible.contains(&rule) => {
                    names.insert(rule);
                }
                _ => found.unknown.push(UnknownRuleName {
                    name: raw.to_string(),
                    line: cursor.line,
                    column: cursor.column(),
                }),
            }
        }
        if directive.whole_file {
            whole.extend(names);
        } else {
            found.next_statement.push((cursor.chars, names));
        }
    }
    found.whole_file = whole;
    found
}

/// One match of `--[ \t]*guardians:(ignore-file|ignore)\b([^\n]*)`.
struct Directive<'a> {
    /// Byte offset of the match (its `--`).
    start: usize,
    /// Group 1 is `ignore-file`.
    whole_file: bool,
    /// Group 2: the rest of the line.
    listed: &'a str,
}

/// `_DIRECTIVE.finditer(sql)`: left to right, non-overlapping. Every literal of the pattern is
/// ASCII, so matching on bytes keeps the offsets on character boundaries.
fn directives(sql: &str) -> Vec<Directive<'_>> {
    let bytes = sql.as_bytes();
    let mut found = Vec::new();
    let mut pos = 0;
    while let Some(found_at) = sql[pos..].find("--") {
        let start = pos + found_at;
        let mut at = start + 2;
        while at < bytes.len() && (bytes[at] == b' ' || bytes[at] == b'\t') {
            at += 1;
        }
        let rest = &sql[at..];
        let mut matched = None;
        if let Some(after) = rest.strip_prefix("guardians:") {
            let name_at = at + "guardians:".len();
            // The alternation tries `ignore-file` first, then backtracks to `ignore`.
            if after.starts_with("ignore-file") && boundary_before(&sql[name_at + 11..]) {
                matched = Some((true, name_at + 11));
            } else if after.starts_with("ignore") && boundary_before(&sql[name_at + 6..]) {
                matched = Some((false, name_at + 6));
            }
        }
        match matched {
            Some((whole_file, listed_at)) => {
                let end = sql[listed_at..]
                    .find('\n')
                    .map_or(sql.len(), |n| listed_at + n);
                found.push(Directive {
                    start,
                    whole_file,
                    listed: &sql[listed_at..end],
                });
                pos = end;
            }
            // `---guardians:` matches one character later.
            None => pos = start + 1,
        }
    }
    found
}

/// `\b` after a word character (the `e` of `ignore`): the end of the text or a non-word
/// character follows.
fn boundary_before(rest: &str) -> bool {
    rest.chars().next().is_none_or(|c| !is_word(c))
}

/// Where the scan of the directives is: the character offset, line and line start of a byte
/// offset, counted once over the text.
struct Cursor {
    byte: usize,
    chars: usize,
    line: i64,
    /// Character offset of the line's first character.
    line_start: usize,
}

impl Cursor {
    /// Move forward to byte offset `to` (a character boundary).
    fn advance(&mut self, sql: &str, to: usize) {
        for c in sql[self.byte..to].chars() {
            self.chars += 1;
            if c == '\n' {
                self.line += 1;
                self.line_start = self.chars;
            }
        }
        self.byte = to;
    }

    /// `match.start() - (sql.rfind("\n", 0, match.start()) + 1) + 1`.
    fn column(&self) -> i64 {
        (self.chars - self.line_start) as i64 + 1
    }
}
