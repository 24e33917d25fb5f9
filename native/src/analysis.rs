//! The SQL analysis (`sql_analysis.py`): the migrations of one change, statement by statement,
//! in order. Each statement goes to the handler for its parse-node type (`rules::dispatch`),
//! which reports findings and the locks the statement requests through a `StatementReport`.

use std::collections::HashSet;
use std::sync::Arc;

use indexmap::IndexMap;

use crate::findings::{Catalog, Effect, Finding, LockMode, Severity};
use crate::nodes::ObjectName;
use crate::rules;
use crate::source::{long_identifiers, read_script, Script, SourceStatement};
use crate::state::{ChangeScope, Namespace, SchemaKnowledge, Session, Transaction};
use crate::suppressions::read_suppressions;

#[derive(Clone, Copy, Debug)]
pub struct SqlOptions {
    /// The target's PostgreSQL major version.
    pub pg_version: i64,
    /// The migration runner wraps each file in a transaction (Diesel, Flyway, sqlx, Rails).
    pub transaction_per_file: bool,
}

#[derive(Clone, Debug)]
pub struct SqlFile {
    pub name: String,
    pub sql: String,
    /// A down script: its findings are reported but only grade as a rollback defect.
    pub rollback: bool,
}

#[derive(Clone, Debug)]
pub struct LockRequest {
    pub target: ObjectName,
    pub mode: LockMode,
    pub preexisting: bool,
}

/// The keyword arguments of Python's `StatementReport.report` / `finding`, all optional:
/// `Extra { target: Some(name.to_string()), fix: Some(...), ..Extra::default() }`.
/// `preexisting: None` is Python's default `True`.
#[derive(Clone, Debug, Default)]
pub struct Extra {
    pub target: Option<String>,
    pub fix: Option<String>,
    pub effect: Option<Effect>,
    pub lock: Option<LockMode>,
    pub preexisting: Option<bool>,
    pub severity: Option<Severity>,
}

/// What one statement's handler sees and says. The analysis' state is reached through
/// `report.analysis` (`.options`, `.knowledge`, `.scope`, `.session`, `.altered`).
pub struct StatementReport<'a> {
    pub analysis: &'a mut SqlAnalysis,
    pub file: &'a SqlFile,
    pub statement: &'a SourceStatement,
    pub suppressed: HashSet<String>,
    pub locks: Vec<LockRequest>,
}

impl StatementReport<'_> {
    pub fn is_new(&self, name: &ObjectName, namespace: Namespace) -> bool {
        self.analysis.scope.is_new(namespace, &name.key())
    }

    /// `is_new(name, Namespace.RELATION)`, the default namespace.
    pub fn is_new_relation(&self, name: &ObjectName) -> bool {
        self.is_new(name, Namespace::Relation)
    }

    /// Add a finding; its index in the analysis' findings, or None when suppressed.
    pub fn report(
        &mut self,
        rule_id: &str,
        message: impl Into<String>,
        extra: Extra,
    ) -> Option<usize> {
        let finding = self.finding(rule_id, message, extra)?;
        self.analysis.findings.push(finding);
        Some(self.analysis.findings.len() - 1)
    }

    /// The finding `report` would add, at this statement, or None when suppressed.
    pub fn finding(
        &self,
        rule_id: &str,
        message: impl Into<String>,
        extra: Extra,
    ) -> Option<Finding> {
        if self.suppressed.contains(rule_id) {
            return None;
        }
        let (severity, effect) = self.analysis.catalog.rule(rule_id);
        Some(Finding {
            rule: rule_id.to_string(),
            severity: extra.severity.unwrap_or(severity),
            message: message.into(),
            effect: extra.effect.unwrap_or(effect),
            file: Some(self.file.name.clone()),
            line: Some(self.statement.line),
            column: Some(self.statement.column),
            statement: Some(self.statement.text.clone()),
            target: extra.target,
            fix: extra.fix,
            lock: extra.lock,
            preexisting: extra.preexisting.unwrap_or(true),
            rollback: self.file.rollback,
        })
    }

    pub fn lock(&mut self, target: &ObjectName, mode: LockMode, preexisting: bool) {
        self.locks.push(LockRequest {
            target: target.clone(),
            mode,
            preexisting,
        });
    }

    /// Outside a transaction a failed migration cannot simply be re-run: ask for
    /// IF [NOT] EXISTS. Inside one, the failure rolls everything back, so no finding.
    pub fn robust(&mut self, missing: bool, what: &str, fix: &str, target: String) {
        if missing && !self.analysis.session.in_transaction() {
            self.report(
                "prefer-robust-stmts",
                format!("{what} outside a transaction: re-running the migration after a failure part way fails here."),
                Extra { target: Some(target), fix: Some(fix.to_string()), ..Extra::default() },
            );
        }
    }
}

fn is_write_blocking(mode: LockMode) -> bool {
    matches!(
        mode,
        LockMode::Share
            | LockMode::ShareRowExclusive
            | LockMode::Exclusive
            | LockMode::AccessExclusive
    )
}

/// Statements that take no time: run while a lock is held, they do not lengthen the hold.
fn under_lock_harmless(kind: &str) -> bool {
    kind == "TransactionStmt" || kind == "VariableSetStmt"
}

/// Feed it migration files in apply order; read `findings`.
pub struct SqlAnalysis {
    pub options: SqlOptions,
    pub catalog: Arc<Catalog>,
    pub knowledge: SchemaKnowledge,
    pub scope: ChangeScope,
    pub session: Session,
    pub findings: Vec<Finding>,
    /// Pre-existing tables an ALTER TABLE of the current file changed -> where the first one
    /// is (character offset, line).
    pub altered: IndexMap<String, (usize, Option<i64>)>,
}

impl SqlAnalysis {
    pub fn new(options: SqlOptions, catalog: Arc<Catalog>) -> Self {
        SqlAnalysis {
            options,
            catalog,
            knowledge: SchemaKnowledge::default(),
            scope: ChangeScope::default(),
            session: Session::default(),
            findings: Vec::new(),
            altered: IndexMap::new(),
        }
    }

    /// Later files are a new change, deployed on its own connection.
    pub fn new_change(&mut self) {
        self.end_change();
        self.scope = ChangeScope::default();
        self.session = Session::default();
    }

    /// A foreign key added without an index on its columns, judged once the change is whole.
    pub fn end_change(&mut self) {
        let foreign_keys = std::mem::take(&mut self.scope.foreign_keys);
        for (table, columns, finding) in foreign_keys {
            if self.knowledge.columns.contains_key(&table)
                && !self.knowledge.indexed(&table, &columns)
            {
                self.findings.push(finding);
            }
        }
    }

    pub fn forget_findings(&mut self) {
        self.findings.clear();
    }

    pub fn analyse_file(&mut self, file: &SqlFile) {
        self.analyse_script(file, &read_script(&file.sql));
    }

    /// `analyse_file` with the file already parsed (`read_script`), by another thread.
    pub fn analyse_script(&mut self, file: &SqlFile, script: &Script) {
        for problem in &script.errors {
            self.findings.push(Finding {
                rule: "syntax-error".into(),
                severity: Severity::Error,
                message: problem.message.clone(),
                effect: if file.rollback {
                    Effect::RollbackDefect
                } else {
                    Effect::CannotRun
                },
                file: Some(file.name.clone()),
                line: Some(problem.line),
                column: Some(problem.column),
                statement: None,
                target: None,
                fix: Some("Fix the SQL so PostgreSQL's parser accepts it.".into()),
                lock: None,
                preexisting: true,
                rollback: file.rollback,
            });
        }
        let suppressions = read_suppressions(&file.sql, &self.catalog);
        for unknown in &suppressions.unknown {
            let known = self
                .catalog
                .canonical(&unknown.name)
                .is_some_and(|id| self.catalog.unsuppressible.contains(&id));
            let message = if known {
                format!("`{}` cannot be suppressed", unknown.name)
            } else {
                format!(
                    "no rule is named `{}`: this suppression does nothing",
                    unknown.name
                )
            };
            self.findings.push(Finding {
                rule: "unknown-suppression".into(),
                severity: Severity::Error,
                message,
                effect: Effect::Advisory,
                file: Some(file.name.clone()),
                line: Some(unknown.line),
                column: Some(unknown.column),
                statement: None,
                target: None,
                fix: Some(
                    "Name rules from docs/rules.md (`guardians:ignore rule-a,rule-b`).".into(),
                ),
                lock: None,
                preexisting: true,
                rollback: file.rollback,
            });
        }
        if self.options.transaction_per_file {
            self.session.begin(Transaction::Runner, None);
        }
        self.altered.clear();
        let mut previous: i64 = -1;
        for statement in &script.statements {
            let suppressed = suppressions.for_statement(statement.start, previous);
            previous = statement.start as i64;
            let mut report = StatementReport {
                analysis: self,
                file,
                statement,
                suppressed,
                locks: Vec::new(),
            };
            if !report.analysis.session.exclusive.is_empty()
                && !under_lock_harmless(&statement.kind)
            {
                check_held_exclusive(&mut report);
            }
            let node = script.node(statement);
            rules::dispatch(&statement.kind, &node, &mut report);
            for name in long_identifiers(&statement.text) {
                let shown: String = name.chars().take(20).collect();
                let target: String = name.chars().take(63).collect();
                report.report(
                    "identifier-too-long",
                    format!(
                        "identifier {shown}... is {} bytes: PostgreSQL silently truncates it to 63, so the object gets another name than written.",
                        name.len()
                    ),
                    Extra { target: Some(target), fix: Some("Choose a name of at most 63 bytes.".into()), ..Extra::default() },
                );
            }
            check_timeouts(&mut report);
            let locks = std::mem::take(&mut report.locks);
            if self.session.in_transaction() {
                for lock in locks {
                    if lock.preexisting && lock.mode == LockMode::AccessExclusive {
                        self.session
                            .exclusive
                            .entry(lock.target.key())
                            .or_insert(statement.line);
                    }
                }
            }
        }
        rules::session_rules::end_of_file(self, file);
    }

    /// The change re-creates what it dropped: clients see no missing object.
    pub fn soften_drop(&mut self, namespace: Namespace, key: &str, where_: &str) {
        if let Some(indexes) = self.scope.dropped.remove(&(namespace, key.to_string())) {
            for index in indexes {
                let finding = &mut self.findings[index];
                finding.effect = Effect::Advisory;
                finding.severity = Severity::Info;
                finding.message = format!("{} It is re-created {where_}.", finding.message);
            }
        }
    }
}

/// Eugene's E4: a statement run while this transaction holds ACCESS EXCLUSIVE on a
/// pre-existing table. Once per transaction: the first such statement names the lock.
fn check_held_exclusive(report: &mut StatementReport) {
    let session = &mut report.analysis.session;
    if session.exclusive_reported {
        return;
    }
    session.exclusive_reported = true;
    let (table, line) = session
        .exclusive
        .iter()
        .next()
        .map(|(t, l)| (t.clone(), *l))
        .unwrap();
    let held = ObjectName::from_key(&table);
    let more = session.exclusive.len() - 1;
    let others = if more > 0 {
        format!(
            " (and {more} more table{})",
            if more > 1 { "s" } else { "" }
        )
    } else {
        String::new()
    };
    report.report(
        "holding-access-exclusive",
        format!(
            "runs while this transaction holds ACCESS EXCLUSIVE on {held}{others}, taken at line {line}: every read and write of {held} waits until the transaction ends, so this statement's time is added to the outage."
        ),
        Extra {
            target: Some(held.to_string()),
            lock: Some(LockMode::AccessExclusive),
            fix: Some("Commit right after the statement that takes ACCESS EXCLUSIVE and run the rest in a later transaction (its own migration); or make the locked statement the last one of its transaction.".into()),
            ..Extra::default()
        },
    );
}

fn check_timeouts(report: &mut StatementReport) {
    let mut strongest: Option<&LockRequest> = None;
    for lock in &report.locks {
        if lock.preexisting
            && is_write_blocking(lock.mode)
            && strongest.is_none_or(|s| lock.mode > s.mode)
        {
            strongest = Some(lock);
        }
    }
    let Some(strongest) = strongest.cloned() else {
        return;
    };
    if report.analysis.session.lock_timeout.in_effect() {
        return;
    }
    let statement_note = if report.analysis.session.statement_timeout.in_effect() {
        " (statement_timeout is set, but it lets the lock wait block everyone behind it for that long)"
    } else {
        ""
    };
    report.report(
        "require-timeout-settings",
        format!(
            "waits for {} on {} with no lock_timeout in effect{statement_note}: queued behind a long query, it blocks every later query on the table.",
            strongest.mode.shown(),
            strongest.target
        ),
        Extra {
            target: Some(strongest.target.to_string()),
            lock: Some(strongest.mode),
            fix: Some("SET lock_timeout = '5s'; (or SET LOCAL inside the transaction) before this statement, and retry the migration when it times out.".into()),
            ..Extra::default()
        },
    );
}
