//! Statements on the rows themselves: TRUNCATE, DELETE, UPDATE, and the table rewrites of
//! VACUUM FULL and CLUSTER (`data_rules.py`). None of them matter on a table the same change
//! created. (Python's `FIELDS_READ`, the partial decoding of an INSERT, has no equivalent here:
//! the trees are decoded whole.)

use std::collections::HashSet;

use crate::nodes::Value;

use crate::analysis::{Extra, StatementReport};
use crate::findings::{Effect, LockMode};
use crate::nodes::{
    child, children, defelem_names, flag, relation, text, truthy, unwrap_value, Node, ObjectName,
    IDENTIFIER_MAX_BYTES,
};
use crate::rules::index_rules::OUTSIDE_TRANSACTION_FIX;

const BATCHES: &str = "Run it in batches outside the migration (a job, or a later migration per batch: UPDATE ... WHERE id BETWEEN ... AND ...), so no transaction holds row locks for long.";

/// `_range_vars`: the tables of a `RangeVar` (or `VacuumRelation`) list.
fn range_vars(node: &Node, key: &str) -> Vec<ObjectName> {
    let mut names = Vec::new();
    for item in children(node, key) {
        let (kind, mut inner) = unwrap_value(item);
        if kind == "VacuumRelation" {
            // `unwrap({"RangeVar": inner.get("relation")})[1]`
            inner = child(inner, "relation");
        }
        if let Some(name) = text(inner, "relname") {
            names.push(ObjectName::new(
                name,
                text(inner, "schemaname").map(str::to_string),
            ));
        }
    }
    names
}

/// TRUNCATE: ban-truncate, ban-truncate-cascade.
pub fn truncate(node: &Node, report: &mut StatementReport) {
    let cascade = text(node, "behavior") == Some("DROP_CASCADE");
    for table in range_vars(node, "relations") {
        let new = report.is_new_relation(&table);
        report.lock(&table, LockMode::AccessExclusive, !new);
        if new {
            continue;
        }
        if cascade {
            report.report(
                "ban-truncate-cascade",
                format!("TRUNCATE {table} CASCADE empties {table} and every table whose foreign keys reference it."),
                Extra {
                    target: Some(table.to_string()),
                    lock: Some(LockMode::AccessExclusive),
                    fix: Some("Name every table to empty explicitly, after a backup.".into()),
                    ..Extra::default()
                },
            );
        } else {
            report.report(
                "ban-truncate",
                format!("TRUNCATE {table} deletes every row."),
                Extra {
                    target: Some(table.to_string()),
                    lock: Some(LockMode::AccessExclusive),
                    fix: Some("Delete only what must go, in batches, after a backup.".into()),
                    ..Extra::default()
                },
            );
        }
    }
}

/// DELETE: ban-delete-without-where, or backfill-in-migration with a WHERE.
pub fn delete(node: &Node, report: &mut StatementReport) {
    let Some(table) = relation(node, "relation") else {
        return;
    };
    if report.is_new_relation(&table) {
        return;
    }
    report.lock(&table, LockMode::RowExclusive, true);
    if is_none(node.get("whereClause")) {
        report.report(
            "ban-delete-without-where",
            format!("DELETE FROM {table} without WHERE deletes every row."),
            Extra {
                target: Some(table.to_string()),
                lock: Some(LockMode::RowExclusive),
                fix: Some(
                    "Add the WHERE clause you mean, back the rows up, delete in batches.".into(),
                ),
                ..Extra::default()
            },
        );
    } else {
        report.report(
            "backfill-in-migration",
            format!("DELETE FROM {table} WHERE ...: locks every matching row until the migration commits."),
            Extra {
                target: Some(table.to_string()),
                lock: Some(LockMode::RowExclusive),
                fix: Some(BATCHES.into()),
                ..Extra::default()
            },
        );
    }
}

/// squawk's ban-duplicate-column-assignments: PostgreSQL rejects a statement that names
/// a column twice (names are compared as stored: cut to 63 bytes).
pub fn named_twice(names: &[String], what: &str, report: &mut StatementReport) {
    let mut seen: HashSet<&[u8]> = HashSet::new();
    let mut twice: Vec<&str> = Vec::new();
    for name in names {
        let bytes = name.as_bytes();
        let stored = &bytes[..bytes.len().min(IDENTIFIER_MAX_BYTES)];
        if seen.contains(stored) && !twice.contains(&name.as_str()) {
            twice.push(name);
        }
        seen.insert(stored);
    }
    if !twice.is_empty() {
        let shown = twice.join(", ");
        report.report(
            "ban-duplicate-column-assignments",
            format!(
                "{what} names column(s) {shown} more than once: PostgreSQL rejects the statement."
            ),
            Extra {
                fix: Some(format!("Name each column once in {what}.")),
                ..Extra::default()
            },
        );
    }
}

/// `_assigned`: the columns a SET list or an INSERT column list assigns whole (`a[1] = ...`
/// and `a.f = ...` assign part of a column, and may repeat it).
fn assigned(targets: &[Value]) -> Vec<String> {
    let mut names = Vec::new();
    for item in targets {
        let target = unwrap_value(item).1;
        if let Some(name) = text(target, "name") {
            if !truthy(target.get("indirection")) {
                names.push(name.to_string());
            }
        }
    }
    names
}

/// INSERT: only its column list matters.
pub fn insert(node: &Node, report: &mut StatementReport) {
    named_twice(
        &assigned(children(node, "cols")),
        "the INSERT column list",
        report,
    );
}

/// UPDATE: ban-update-without-where, or backfill-in-migration (with a WHERE, or of columns
/// this change adds).
pub fn update(node: &Node, report: &mut StatementReport) {
    named_twice(
        &assigned(children(node, "targetList")),
        "UPDATE ... SET",
        report,
    );
    let Some(table) = relation(node, "relation") else {
        return;
    };
    if report.is_new_relation(&table) {
        return;
    }
    report.lock(&table, LockMode::RowExclusive, true);
    // Python's set of names (None included), in first-seen order: only membership and the
    // sorted list below reach the output.
    let mut columns: Vec<Option<&str>> = Vec::new();
    for target in children(node, "targetList") {
        let name = text(unwrap_value(target).1, "name");
        if !columns.contains(&name) {
            columns.push(name);
        }
    }
    let key = table.key();
    let added = &report.analysis.scope.added_columns;
    let only_new = !columns.is_empty()
        && columns
            .iter()
            .all(|c| c.is_some_and(|c| added.contains(&(key.clone(), c.to_string()))));
    let mut named: Vec<&str> = columns
        .iter()
        .flatten()
        .copied()
        .filter(|c| !c.is_empty())
        .collect();
    named.sort_unstable();
    let shown = named.join(", ");
    if !is_none(node.get("whereClause")) {
        report.report(
            "backfill-in-migration",
            format!("UPDATE {table} SET {shown} WHERE ...: a backfill that locks every matching row until the migration commits."),
            Extra {
                target: Some(table.to_string()),
                lock: Some(LockMode::RowExclusive),
                fix: Some(BATCHES.into()),
                ..Extra::default()
            },
        );
    } else if only_new {
        report.report(
            "backfill-in-migration",
            format!("UPDATE {table} SET {shown} without WHERE: a full-table backfill of column(s) this change adds; every row is locked and rewritten in one transaction."),
            Extra {
                target: Some(table.to_string()),
                lock: Some(LockMode::RowExclusive),
                fix: Some(BATCHES.into()),
                ..Extra::default()
            },
        );
    } else {
        report.report(
            "ban-update-without-where",
            format!(
                "UPDATE {table} SET {shown} without WHERE overwrites the column(s) in every row."
            ),
            Extra {
                target: Some(table.to_string()),
                lock: Some(LockMode::RowExclusive),
                effect: Some(Effect::DataLoss),
                fix: Some("Add the WHERE clause you mean; back the values up first.".into()),
                ..Extra::default()
            },
        );
    }
}

/// VACUUM: cannot-run-in-transaction; VACUUM FULL rewrites (prefer-repack).
pub fn vacuum(node: &Node, report: &mut StatementReport) {
    if !flag(node, "is_vacuumcmd") {
        return; // ANALYZE: runs anywhere, takes SHARE UPDATE EXCLUSIVE
    }
    if report.analysis.session.in_transaction() {
        report.report(
            "cannot-run-in-transaction",
            "VACUUM cannot run inside a transaction block.",
            Extra {
                fix: Some(OUTSIDE_TRANSACTION_FIX.into()),
                ..Extra::default()
            },
        );
    }
    if !defelem_names(node, "options").contains("full") {
        return;
    }
    for table in range_vars(node, "rels") {
        rewrite(&table, "VACUUM FULL", report);
    }
}

/// CLUSTER: rewrites its table (prefer-repack); without one, cannot run in a transaction.
pub fn cluster(node: &Node, report: &mut StatementReport) {
    let Some(table) = relation(node, "relation") else {
        if report.analysis.session.in_transaction() {
            report.report(
                "cannot-run-in-transaction",
                "CLUSTER without a table cannot run inside a transaction block.",
                Extra {
                    fix: Some(OUTSIDE_TRANSACTION_FIX.into()),
                    ..Extra::default()
                },
            );
        }
        return;
    };
    rewrite(&table, "CLUSTER", report);
}

/// `_rewrite`: a table rewrite under ACCESS EXCLUSIVE (prefer-repack).
fn rewrite(table: &ObjectName, what: &str, report: &mut StatementReport) {
    let new = report.is_new_relation(table);
    report.lock(table, LockMode::AccessExclusive, !new);
    if !new {
        report.report(
            "prefer-repack",
            format!("{what} {table} rewrites the table under ACCESS EXCLUSIVE: reads and writes wait until it is done."),
            Extra {
                target: Some(table.to_string()),
                lock: Some(LockMode::AccessExclusive),
                fix: Some(format!("pg_repack (or pg_squeeze) on {table}, which holds the lock only briefly; or plain VACUUM if reclaiming space is not essential.")),
                ..Extra::default()
            },
        );
    }
}

/// Python's `value is None` for `node.get(key)`: absent or JSON null.
fn is_none(value: Option<&Value>) -> bool {
    value.is_none_or(Value::is_null)
}
