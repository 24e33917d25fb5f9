//! Findings and the enums they carry (`findings.py`, `schemas/events/enums.py`), and the rule
//! catalog's severity and effect per rule (handed over by Python from `rule_catalog.py`).

use std::collections::HashMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "info" => Severity::Info,
            "warning" => Severity::Warning,
            "error" => Severity::Error,
            _ => return None,
        })
    }
}

/// What a finding could do when the change runs against production.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Effect {
    CannotRun,
    ValidationFailed,
    DataLoss,
    BreakingRename,
    Rewrite,
    FailsOnExistingRows,
    BlockingLock,
    Backfill,
    Incompatible,
    RollbackDefect,
    MissingTimeout,
    Advisory,
}

impl Effect {
    pub const ALL: [Effect; 12] = [
        Effect::CannotRun,
        Effect::ValidationFailed,
        Effect::DataLoss,
        Effect::BreakingRename,
        Effect::Rewrite,
        Effect::FailsOnExistingRows,
        Effect::BlockingLock,
        Effect::Backfill,
        Effect::Incompatible,
        Effect::RollbackDefect,
        Effect::MissingTimeout,
        Effect::Advisory,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Effect::CannotRun => "cannot_run",
            Effect::ValidationFailed => "validation_failed",
            Effect::DataLoss => "data_loss",
            Effect::BreakingRename => "breaking_rename",
            Effect::Rewrite => "rewrite",
            Effect::FailsOnExistingRows => "fails_on_existing_rows",
            Effect::BlockingLock => "blocking_lock",
            Effect::Backfill => "backfill",
            Effect::Incompatible => "incompatible",
            Effect::RollbackDefect => "rollback_defect",
            Effect::MissingTimeout => "missing_timeout",
            Effect::Advisory => "advisory",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Effect::ALL.into_iter().find(|e| e.as_str() == value)
    }
}

/// PostgreSQL's table lock modes, weakest first (the derived order is that order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LockMode {
    AccessShare,
    RowShare,
    RowExclusive,
    ShareUpdateExclusive,
    Share,
    ShareRowExclusive,
    Exclusive,
    AccessExclusive,
}

impl LockMode {
    /// The enum's value (`share_row_exclusive`).
    pub fn as_str(self) -> &'static str {
        match self {
            LockMode::AccessShare => "access_share",
            LockMode::RowShare => "row_share",
            LockMode::RowExclusive => "row_exclusive",
            LockMode::ShareUpdateExclusive => "share_update_exclusive",
            LockMode::Share => "share",
            LockMode::ShareRowExclusive => "share_row_exclusive",
            LockMode::Exclusive => "exclusive",
            LockMode::AccessExclusive => "access_exclusive",
        }
    }

    /// As messages show it: `mode.value.upper().replace('_', ' ')` (`SHARE ROW EXCLUSIVE`).
    pub fn shown(self) -> String {
        self.as_str().to_uppercase().replace('_', " ")
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    pub rule: String,
    pub severity: Severity,
    pub message: String,
    pub effect: Effect,
    /// Always `database` here (the SQL analysis).
    pub file: Option<String>,
    pub line: Option<i64>,
    pub column: Option<i64>,
    pub statement: Option<String>,
    pub target: Option<String>,
    pub fix: Option<String>,
    pub lock: Option<LockMode>,
    pub preexisting: bool,
    pub rollback: bool,
}

/// Each rule's default severity and effect (`rule_catalog.RULES`), the ids that cannot be
/// suppressed, and squawk's alias spellings.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    pub rules: HashMap<String, (Severity, Effect)>,
    pub unsuppressible: Vec<String>,
    pub aliases: HashMap<String, String>,
}

impl Catalog {
    /// The catalog compiled in (`rule_table.rs`, generated from `rule_catalog.py`).
    pub fn builtin() -> Catalog {
        use crate::rule_table::{ALIASES, RULES, UNSUPPRESSIBLE};
        Catalog {
            rules: RULES
                .iter()
                .map(|(id, severity, effect)| (id.to_string(), (*severity, *effect)))
                .collect(),
            unsuppressible: UNSUPPRESSIBLE.iter().map(|id| id.to_string()).collect(),
            aliases: ALIASES
                .iter()
                .map(|(alias, id)| (alias.to_string(), id.to_string()))
                .collect(),
        }
    }

    pub fn rule(&self, id: &str) -> (Severity, Effect) {
        *self
            .rules
            .get(id)
            .unwrap_or_else(|| panic!("rule {id} is not in the catalog"))
    }

    /// The rule id a suppression names, or None when no rule has that name.
    pub fn canonical(&self, id: &str) -> Option<String> {
        let name = self.aliases.get(id).map(String::as_str).unwrap_or(id);
        self.rules.contains_key(name).then(|| name.to_string())
    }
}
