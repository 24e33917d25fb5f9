//! `session_rules.py`: transaction blocks and timeout settings, the session state the other
//! rules depend on.
//!
//! A timeout counts only while it is in effect: `SET` lasts for the session (undone if its
//! transaction rolls back), `SET LOCAL` until the transaction ends, `RESET`/`RESET ALL`/`SET ...
//! TO DEFAULT` and a zero value mean none. The runner's per-file transaction
//! (`transaction_per_file`) is a transaction like any other.

use crate::analysis::{Extra, SqlAnalysis, SqlFile, StatementReport};
use crate::findings::{Effect, Finding, Severity};
use crate::nodes::{children, constant_text, flag, strings, text, unwrap, unwrap_value, Node};
use crate::pytext::{decimal_digit, is_space};
use crate::state::Transaction;

const BEGIN: [&str; 2] = ["TRANS_STMT_BEGIN", "TRANS_STMT_START"];

/// `_END`: COMMIT commits, ROLLBACK does not; None for any other kind.
fn end_committed(kind: &str) -> Option<bool> {
    match kind {
        "TRANS_STMT_COMMIT" => Some(true),
        "TRANS_STMT_ROLLBACK" => Some(false),
        _ => None,
    }
}

/// BEGIN / START TRANSACTION / COMMIT / ROLLBACK: open and close transaction blocks.
pub fn transaction(node: &Node, report: &mut StatementReport) {
    let kind = text(node, "kind").unwrap_or("");
    if BEGIN.contains(&kind) {
        if report.analysis.session.transaction == Some(Transaction::Runner) {
            report.report(
                "transaction-nesting",
                "BEGIN inside the migration runner's transaction is ignored by PostgreSQL; a COMMIT here would end the runner's transaction early.",
                Extra {
                    effect: Some(Effect::Advisory),
                    severity: Some(Severity::Warning),
                    fix: Some("Remove BEGIN/COMMIT: the runner already runs the file in one transaction.".into()),
                    ..Extra::default()
                },
            );
            report.analysis.session.begin(Transaction::Nested, None);
        } else if report.analysis.session.in_transaction() {
            report.report(
                "transaction-nesting",
                "BEGIN while a transaction is already open: the blocks are unbalanced.",
                Extra {
                    fix: Some("Close each BEGIN with one COMMIT.".into()),
                    ..Extra::default()
                },
            );
        } else {
            let line = report.statement.line;
            report
                .analysis
                .session
                .begin(Transaction::Explicit, Some(line));
        }
    } else if let Some(committed) = end_committed(kind) {
        let shown = kind.strip_prefix("TRANS_STMT_").unwrap_or(kind);
        if report.analysis.session.transaction == Some(Transaction::Runner) {
            report.report(
                "transaction-nesting",
                format!(
                    "{shown} ends the migration runner's transaction early: the statements after it run outside any transaction."
                ),
                Extra {
                    effect: Some(Effect::Advisory),
                    severity: Some(Severity::Warning),
                    fix: Some("Remove BEGIN/COMMIT: the runner already runs the file in one transaction.".into()),
                    ..Extra::default()
                },
            );
        } else if !report.analysis.session.in_transaction() {
            report.report(
                "transaction-nesting",
                format!("{shown} with no transaction open: the blocks are unbalanced."),
                Extra {
                    fix: Some("Pair each COMMIT/ROLLBACK with a BEGIN.".into()),
                    ..Extra::default()
                },
            );
            return;
        }
        report.analysis.session.end(committed);
    }
}

/// SET / SET LOCAL / RESET / RESET ALL / SET ... TO DEFAULT of `lock_timeout` and
/// `statement_timeout`.
pub fn variable_set(node: &Node, report: &mut StatementReport) {
    let kind = text(node, "kind").unwrap_or("");
    let session = &mut report.analysis.session;
    if kind == "VAR_RESET_ALL" {
        session.lock_timeout.reset();
        session.statement_timeout.reset();
        return;
    }
    // Read before `setting` borrows the session (nothing changes it in between).
    let in_transaction = session.in_transaction();
    let Some(setting) = session.setting(text(node, "name").unwrap_or("")) else {
        return;
    };
    if kind == "VAR_RESET" || kind == "VAR_SET_DEFAULT" {
        if kind == "VAR_RESET" || !flag(node, "is_local") {
            setting.reset();
        } else {
            setting.set(false, true, in_transaction);
        }
    } else if kind == "VAR_SET_VALUE" {
        let values = children(node, "args");
        let value = values.first().and_then(constant_text);
        setting.set(
            nonzero(value.as_deref()),
            flag(node, "is_local"),
            in_transaction,
        );
    }
}

/// `SELECT set_config('lock_timeout', '5s', false)`, the function form of SET.
pub fn select(node: &Node, report: &mut StatementReport) {
    for target in children(node, "targetList") {
        let (_, res) = unwrap_value(target);
        let (kind, call) = unwrap(res.get("val"));
        // `strings(...)[-1:] != ["set_config"]`
        if kind != "FuncCall"
            || strings(children(call, "funcname"))
                .last()
                .map(String::as_str)
                != Some("set_config")
        {
            continue;
        }
        let args = children(call, "args");
        if args.len() != 3 {
            continue;
        }
        let name = constant_text(&args[0]).unwrap_or_default();
        let session = &mut report.analysis.session;
        let in_transaction = session.in_transaction();
        if let Some(setting) = session.setting(&name) {
            let local = matches!(
                constant_text(&args[2]).as_deref(),
                Some("true" | "t" | "on")
            );
            setting.set(
                nonzero(constant_text(&args[1]).as_deref()),
                local,
                in_transaction,
            );
        }
    }
}

/// `'5s'` and `5000` set a timeout; `0`, `'0ms'` and an unreadable value do not.
fn nonzero(value: Option<&str>) -> bool {
    let Some(value) = value else { return false };
    // value.strip().rstrip("smindhu ").strip()
    let digits = value
        .trim_matches(is_space)
        .trim_end_matches(|c| "smindhu ".contains(c))
        .trim_matches(is_space);
    py_float(digits).is_some_and(|number| number > 0.0)
}

/// Python's `float(text)` for a text with no surrounding whitespace, None where it raises
/// ValueError: Unicode digits count as ASCII ones, `_` only between two digits; the rest
/// (sign, fraction, exponent, inf/infinity/nan in any case, overflow to inf, underflow to 0)
/// is the same grammar as Rust's, correctly rounded in both.
fn py_float(text: &str) -> Option<f64> {
    let mut ascii = String::with_capacity(text.len());
    let mut previous = '\0';
    for c in text.chars() {
        let c = if c.is_ascii() { c } else { decimal_digit(c)? };
        if c == '_' {
            if !previous.is_ascii_digit() {
                return None;
            }
        } else {
            if previous == '_' && !c.is_ascii_digit() {
                return None;
            }
            ascii.push(c);
        }
        previous = c;
    }
    if previous == '_' {
        return None;
    }
    ascii.parse::<f64>().ok()
}

/// The file ends with its BEGIN never committed: PostgreSQL rolls it back. Then the runner's
/// transaction, if any, commits.
pub fn end_of_file(analysis: &mut SqlAnalysis, file: &SqlFile) {
    let session = &mut analysis.session;
    if session.transaction == Some(Transaction::Explicit) {
        analysis.findings.push(Finding {
            rule: "ban-uncommitted-transaction".into(),
            severity: Severity::Error,
            message: "BEGIN is never committed: the session ends and PostgreSQL rolls the migration back.".into(),
            effect: if file.rollback { Effect::RollbackDefect } else { Effect::CannotRun },
            file: Some(file.name.clone()),
            line: session.began_at_line,
            column: None,
            statement: None,
            target: None,
            fix: Some("Add COMMIT at the end of the file.".into()),
            lock: None,
            preexisting: true,
            rollback: file.rollback,
        });
    }
    if session.in_transaction() {
        session.end(true);
    }
}
