//! `guardians lint --format json` without a Python object per finding: the files are parsed
//! on two threads, one of which also runs the rules (the parser is most of the time), then the
//! findings are put in reading order (`change_analysis.in_reading_order`), graded
//! (`risk_policy.grade`, default policy, no table statistics) and written as
//! `cli.lint.render_json` writes them, byte for byte.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::analysis::{SqlAnalysis, SqlFile, SqlOptions};
use crate::findings::{Catalog, Effect, Finding};
use crate::source::{read_script, Script};

/// One migration of the lint: its name, up script and down script.
pub struct Migration {
    pub name: String,
    pub up: String,
    pub down: Option<String>,
}

/// How `guardians lint` reads the migrations (`change_analysis.lint_migrations` /
/// `analyse_migrations`).
#[derive(Clone, Copy)]
pub struct LintMode {
    /// All migrations are one change (else each is its own, the ones before it applied).
    pub one_change: bool,
    /// With `one_change`: the down scripts too, in rollback order.
    pub down: bool,
}

/// The files in analysis order, and where each change starts.
fn plan(migrations: &[Migration], mode: LintMode) -> Vec<(SqlFile, bool)> {
    let mut files = Vec::new();
    for m in migrations {
        let file = SqlFile {
            name: m.name.clone(),
            sql: m.up.clone(),
            rollback: false,
        };
        files.push((file, !mode.one_change));
    }
    if mode.one_change && mode.down {
        for m in migrations.iter().rev() {
            if let Some(down) = &m.down {
                let file = SqlFile {
                    name: format!("{}/down", m.name),
                    sql: down.clone(),
                    rollback: true,
                };
                files.push((file, false));
            }
        }
    }
    files
}

/// How far ahead of the analysis the files are parsed (their trees wait in memory).
const AHEAD: usize = 16;

/// The files' parse trees, parsed ahead of the analysis by a helper thread and by the
/// analysing thread itself when the script it needs next is not ready: the parser is most of
/// the work, so on two cores the analysis is what is left over.
struct Parsing<'f> {
    files: &'f [(SqlFile, bool)],
    state: Mutex<ParseState>,
    changed: Condvar,
}

struct ParseState {
    scripts: Vec<Option<Script>>,
    /// The next file no thread has taken to parse.
    next: usize,
    /// The files the analysis has taken (it is on file `taken`).
    taken: usize,
    /// The analysis is over (done, or failed): the helpers stop.
    stopped: bool,
    /// A helper's parse failed (a panic): the analysis stops too, with a panic of its own.
    failed: bool,
}

impl<'f> Parsing<'f> {
    fn new(files: &'f [(SqlFile, bool)]) -> Self {
        let state = ParseState {
            scripts: files.iter().map(|_| None).collect(),
            next: 0,
            taken: 0,
            stopped: false,
            failed: false,
        };
        Parsing {
            files,
            state: Mutex::new(state),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, ParseState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Parse file `index` and put its tree where the analysis finds it.
    fn parse(&self, index: usize) {
        let script = read_script(&self.files[index].0.sql);
        self.lock().scripts[index] = Some(script);
        self.changed.notify_all();
    }

    /// A helper thread: parse the next file while there is one within `AHEAD` of the analysis,
    /// until the analysis is over. A panic here stops the analysis (which waits for nothing).
    fn help(&self) {
        loop {
            let mut state = self.lock();
            while !state.stopped
                && state.next < self.files.len()
                && state.next >= state.taken + AHEAD
            {
                state = self
                    .changed
                    .wait(state)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
            if state.stopped || state.next >= self.files.len() {
                return;
            }
            let index = state.next;
            state.next += 1;
            drop(state);
            let parsed =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.parse(index)));
            if parsed.is_err() {
                let mut state = self.lock();
                state.failed = true;
                state.stopped = true;
                drop(state);
                self.changed.notify_all();
                return;
            }
        }
    }

    /// The analysis is over: the helpers stop waiting for it.
    fn stop(&self) {
        self.lock().stopped = true;
        self.changed.notify_all();
    }

    /// The tree of file `index` (files are taken in order), parsing other files meanwhile.
    fn take(&self, index: usize) -> Script {
        let mut state = self.lock();
        state.taken = index;
        self.changed.notify_all();
        loop {
            if let Some(script) = state.scripts[index].take() {
                return script;
            }
            if state.failed {
                drop(state);
                panic!("a parsing thread panicked");
            }
            if state.next < self.files.len() {
                let next = state.next;
                state.next += 1;
                drop(state);
                if next == index {
                    return read_script(&self.files[index].0.sql);
                }
                self.parse(next);
                state = self.lock();
            } else {
                state = self
                    .changed
                    .wait(state)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
        }
    }
}

/// The findings of `guardians lint` over `migrations`, in reading order.
pub fn lint(
    migrations: &[Migration],
    options: SqlOptions,
    mode: LintMode,
    catalog: Arc<Catalog>,
) -> Vec<Finding> {
    let files = plan(migrations, mode);
    let mut analysis = SqlAnalysis::new(options, catalog);
    let parsing = Parsing::new(&files);
    std::thread::scope(|scope| {
        for _ in 0..HELPERS {
            scope.spawn(|| parsing.help());
        }
        // However the loop below ends (a panic too), the helpers stop: the scope waits for them.
        let _stop = StopOnDrop(&parsing);
        let ups = migrations.len();
        for (index, (file, new_change)) in files.iter().enumerate() {
            if *new_change {
                analysis.new_change();
            }
            let script = parsing.take(index);
            analysis.analyse_script(file, &script);
            if mode.one_change && index + 1 == ups {
                analysis.end_change();
            }
        }
        if !mode.one_change || files.is_empty() {
            analysis.end_change();
        }
    });
    let names: Vec<&str> = migrations.iter().map(|m| m.name.as_str()).collect();
    in_reading_order(analysis.findings, &names)
}

/// Stops the helpers when dropped.
struct StopOnDrop<'p, 'f>(&'p Parsing<'f>);

impl Drop for StopOnDrop<'_, '_> {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// Threads that parse beside the analysing one: one, for two cores (a second one made
/// `guardians lint` over Lemmy 10 % slower, the three threads taking turns on two cores).
const HELPERS: usize = 1;

/// Up scripts in order, then down scripts; by line within a file (stable otherwise).
pub fn in_reading_order(mut findings: Vec<Finding>, names: &[&str]) -> Vec<Finding> {
    let position: HashMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    findings.sort_by_cached_key(|finding| {
        let file = finding.file.as_deref().unwrap_or("");
        let down = file.ends_with("/down");
        let stem = if down { &file[..file.len() - 5] } else { file };
        let index = position.get(stem).copied().unwrap_or(names.len());
        (
            down,
            index,
            finding.line.unwrap_or(0),
            finding.column.unwrap_or(0),
        )
    });
    findings
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RiskLevel {
    Low,
    Medium,
    High,
    Blocked,
}

impl RiskLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            RiskLevel::Low => "low",
            RiskLevel::Medium => "medium",
            RiskLevel::High => "high",
            RiskLevel::Blocked => "blocked",
        }
    }
}

fn effect_level(effect: Effect) -> RiskLevel {
    match effect {
        Effect::CannotRun | Effect::ValidationFailed => RiskLevel::Blocked,
        Effect::DataLoss
        | Effect::BreakingRename
        | Effect::Rewrite
        | Effect::FailsOnExistingRows => RiskLevel::High,
        Effect::BlockingLock | Effect::Backfill | Effect::Incompatible | Effect::RollbackDefect => {
            RiskLevel::Medium
        }
        Effect::MissingTimeout | Effect::Advisory => RiskLevel::Low,
    }
}

/// `risk_policy.finding_level` with the default policy and no statistics.
fn finding_level(finding: &Finding, destructive: bool) -> RiskLevel {
    let effect = finding.effect;
    let level = if effect == Effect::RollbackDefect && destructive {
        RiskLevel::High
    } else {
        effect_level(effect)
    };
    let never_softened = matches!(
        effect,
        Effect::CannotRun | Effect::ValidationFailed | Effect::RollbackDefect
    );
    if !never_softened && (finding.rollback || !finding.preexisting) {
        return RiskLevel::Low;
    }
    level
}

/// `risk_policy.grade`: the highest level, and the indexes of the findings at it.
pub fn grade(findings: &[Finding]) -> (RiskLevel, Vec<usize>) {
    let destructive = findings.iter().any(|f| {
        f.effect != Effect::RollbackDefect
            && matches!(
                finding_level(f, false),
                RiskLevel::High | RiskLevel::Blocked
            )
    });
    let levels: Vec<RiskLevel> = findings
        .iter()
        .map(|f| finding_level(f, destructive))
        .collect();
    let risk = levels.iter().copied().max().unwrap_or(RiskLevel::Low);
    let causes = levels
        .iter()
        .enumerate()
        .filter(|(_, l)| **l == risk)
        .map(|(i, _)| i)
        .collect();
    (risk, causes)
}

/// `json.dumps`'s string (`ensure_ascii`): `"`, `\` and control characters escaped, every
/// non-ASCII character as `\uXXXX` (UTF-16 surrogate pairs beyond the BMP). Runs of plain
/// ASCII are copied whole.
pub fn json_string(out: &mut String, value: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    let bytes = value.as_bytes();
    let mut plain = 0;
    let mut index = 0;
    while index < bytes.len() {
        // eight bytes at a time while none needs escaping
        if index + 8 <= bytes.len() {
            let word = u64::from_le_bytes(bytes[index..index + 8].try_into().unwrap_or([0; 8]));
            if !needs_escape(word) {
                index += 8;
                continue;
            }
        }
        let byte = bytes[index];
        if (0x20..0x80).contains(&byte) && byte != b'"' && byte != b'\\' {
            index += 1;
            continue;
        }
        out.push_str(&value[plain..index]);
        let escape = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            _ => "",
        };
        let width = if byte < 0x80 {
            1
        } else {
            value[index..].chars().next().map_or(1, char::len_utf8)
        };
        if escape.is_empty() {
            let c = value[index..].chars().next().unwrap_or('\u{fffd}');
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let u = *unit as usize;
                out.push_str("\\u");
                for shift in [12, 8, 4, 0] {
                    out.push(HEX[(u >> shift) & 0xf] as char);
                }
            }
        } else {
            out.push_str(escape);
        }
        index += width;
        plain = index;
    }
    out.push_str(&value[plain..]);
    out.push('"');
}

/// Whether any of the eight bytes is a control character, `"`, `\\` or not ASCII.
fn needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let below_space = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
    (word & HIGH) != 0
        || below_space != 0
        || zero_byte(word ^ (ONES * b'"' as u64)) != 0
        || zero_byte(word ^ (ONES * b'\\' as u64)) != 0
}

fn json_opt(out: &mut String, value: Option<&str>) {
    match value {
        Some(value) => json_string(out, value),
        None => out.push_str("null"),
    }
}

fn json_number(out: &mut String, value: Option<i64>) {
    match value {
        Some(value) => out.push_str(&value.to_string()),
        None => out.push_str("null"),
    }
}

/// A JSON string field that is often the same as the previous finding's (its statement, its
/// message): escaped once, then copied from where it was written.
struct Repeated<'f> {
    last: Option<&'f str>,
    at: std::ops::Range<usize>,
}

impl<'f> Repeated<'f> {
    fn new() -> Self {
        Repeated {
            last: None,
            at: 0..0,
        }
    }

    fn write(&mut self, out: &mut String, value: Option<&'f str>) {
        match value {
            None => out.push_str("null"),
            Some(text) if self.last == Some(text) => {
                let start = out.len();
                out.extend_from_within(self.at.clone());
                self.at = start..out.len();
            }
            Some(text) => {
                let start = out.len();
                json_string(out, text);
                self.last = Some(text);
                self.at = start..out.len();
            }
        }
    }
}

/// `cli.lint.render_json`'s bytes. The two halves of the findings are written on two threads.
pub fn render_json(findings: &[Finding], risk: RiskLevel, causes: &[usize]) -> String {
    let (first, second) = findings.split_at(findings.len() / 2);
    let (first, second) = std::thread::scope(|scope| {
        let other = scope.spawn(|| render_findings(second));
        (
            render_findings(first),
            other.join().unwrap_or_else(|_| render_findings(second)),
        )
    });
    let mut out = String::with_capacity(first.len() + second.len() + 64 + causes.len() * 6);
    out.push_str("{\"risk\": ");
    json_string(&mut out, risk.as_str());
    out.push_str(", \"findings\": [");
    out.push_str(&first);
    if !first.is_empty() && !second.is_empty() {
        out.push_str(", ");
    }
    out.push_str(&second);
    out.push_str("], \"causes\": [");
    let causes: Vec<String> = causes.iter().map(usize::to_string).collect();
    out.push_str(&causes.join(", "));
    out.push_str("]}\n");
    out
}

/// The findings as the JSON objects of `render_json`'s list, `, `-separated.
fn render_findings(findings: &[Finding]) -> String {
    let mut out = String::with_capacity(findings.len() * 900);
    let (mut messages, mut files, mut statements, mut fixes, mut targets) = (
        Repeated::new(),
        Repeated::new(),
        Repeated::new(),
        Repeated::new(),
        Repeated::new(),
    );
    for (index, f) in findings.iter().enumerate() {
        if index > 0 {
            out.push_str(", ");
        }
        out.push_str("{\"rule\": ");
        json_string(&mut out, &f.rule);
        out.push_str(", \"severity\": ");
        json_string(&mut out, f.severity.as_str());
        out.push_str(", \"message\": ");
        messages.write(&mut out, Some(&f.message));
        out.push_str(", \"file\": ");
        files.write(&mut out, f.file.as_deref());
        out.push_str(", \"line\": ");
        json_number(&mut out, f.line);
        out.push_str(", \"column\": ");
        json_number(&mut out, f.column);
        out.push_str(", \"statement\": ");
        statements.write(&mut out, f.statement.as_deref());
        out.push_str(", \"fix\": ");
        fixes.write(&mut out, f.fix.as_deref());
        out.push_str(", \"effect\": ");
        json_string(&mut out, f.effect.as_str());
        out.push_str(", \"kind\": \"database\", \"target\": ");
        targets.write(&mut out, f.target.as_deref());
        out.push_str(", \"lock\": ");
        json_opt(&mut out, f.lock.map(|l| l.as_str()));
        out.push_str(if f.preexisting {
            ", \"preexisting\": true"
        } else {
            ", \"preexisting\": false"
        });
        out.push_str(if f.rollback {
            ", \"rollback\": true}"
        } else {
            ", \"rollback\": false}"
        });
    }
    out
}

/// What `guardians lint` prints, or the unknown suppressions that make it a usage error
/// instead.
pub struct Report {
    pub risk: RiskLevel,
    pub text: String,
    pub unknown: Vec<Finding>,
}

/// The report formats written here (`--format`; sarif and github are written by Python).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Text,
}

/// `cli.lint.render_text`'s text.
pub fn render_text(findings: &[Finding], risk: RiskLevel, causes: &[usize]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(findings.len() * 300);
    let mut current: Option<Option<&str>> = None;
    for f in findings {
        if current != Some(f.file.as_deref()) {
            current = Some(f.file.as_deref());
            let _ = write!(out, "\n\n{}", f.file.as_deref().unwrap_or("None"));
        }
        let place = match (f.line, f.column) {
            (Some(line), column) if line != 0 => {
                format!("{line}:{}", column.map_or("None".into(), |c| c.to_string()))
            }
            _ => "-".to_string(),
        };
        let _ = write!(
            out,
            "\n  {place:>8} {:<7} {}: {}",
            f.severity.as_str(),
            f.rule,
            f.message
        );
        if let Some(fix) = f.fix.as_deref().filter(|fix| !fix.is_empty()) {
            let _ = write!(out, "\n  {:>8} fix: {fix}", "");
        }
    }
    let _ = write!(
        out,
        "\n\nrisk: {} ({} findings)",
        risk.as_str(),
        findings.len()
    );
    for &index in causes.iter().take(20) {
        let cause = &findings[index];
        let line = match cause.line {
            Some(line) if line != 0 => line.to_string(),
            _ => "-".to_string(),
        };
        let _ = write!(
            out,
            "\n  because {}:{line} {}",
            cause.file.as_deref().unwrap_or("None"),
            cause.rule
        );
    }
    if causes.len() > 20 {
        let _ = write!(out, "\n  ... and {} more", causes.len() - 20);
    }
    let mut text = out.trim_start_matches('\n').to_string();
    text.push('\n');
    text
}

pub fn lint_report(
    migrations: &[Migration],
    options: SqlOptions,
    mode: LintMode,
    catalog: Arc<Catalog>,
    excluded: &HashSet<String>,
    format: Format,
) -> Report {
    let mut findings = lint(migrations, options, mode, catalog);
    if !excluded.is_empty() {
        findings.retain(|f| !excluded.contains(&f.rule));
    }
    let unknown: Vec<Finding> = findings
        .iter()
        .filter(|f| f.rule == "unknown-suppression")
        .cloned()
        .collect();
    if !unknown.is_empty() {
        return Report {
            risk: RiskLevel::Blocked,
            text: String::new(),
            unknown,
        };
    }
    let (risk, causes) = grade(&findings);
    let text = match format {
        Format::Json => render_json(&findings, risk, &causes),
        Format::Text => render_text(&findings, risk, &causes),
    };
    Report {
        risk,
        text,
        unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dumped(value: &str) -> String {
        let mut out = String::new();
        json_string(&mut out, value);
        out
    }

    #[test]
    fn strings_are_written_as_json_dumps_writes_them() {
        assert_eq!(
            dumped("plain ASCII text, long enough for words"),
            "\"plain ASCII text, long enough for words\""
        );
        assert_eq!(
            dumped("a\"b\\c\nd\te\u{8}f\u{c}g\rh\u{1}"),
            "\"a\\\"b\\\\c\\nd\\te\\bf\\fg\\rh\\u0001\""
        );
        assert_eq!(
            dumped("caf\u{e9} \u{1f600}!"),
            "\"caf\\u00e9 \\ud83d\\ude00!\""
        );
        assert_eq!(dumped("12345678\"12345678"), "\"12345678\\\"12345678\"");
        assert_eq!(dumped("\u{7f}~ 01234567"), "\"\u{7f}~ 01234567\"");
    }
}
