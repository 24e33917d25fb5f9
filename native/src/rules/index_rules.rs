//! `index_rules.py`: index builds, drops and rebuilds: CONCURRENTLY or a lock for the whole
//! operation.

use crate::analysis::{Extra, StatementReport};
use crate::findings::LockMode;
use crate::nodes::{
    children, defelem_names, flag, py_repr, relation, text, too_long, truthy, unwrap_value, Node,
    ObjectName,
};
use crate::state::{IndexKeys, Namespace};

pub const OUTSIDE_TRANSACTION_FIX: &str = "Put it in a migration of its own that the runner does not wrap in a transaction (Diesel: run_in_transaction = false in metadata.toml; Flyway: executeInTransaction=false; Rails: disable_ddl_transaction!; sqlx: -- no-transaction), with no BEGIN around it.";

/// `CREATE [UNIQUE] INDEX [CONCURRENTLY]`: the lock it takes, and what the schema learns.
pub fn create_index(node: &Node, report: &mut StatementReport) {
    let Some(table) = relation(node, "relation") else {
        return;
    };
    let name = text(node, "idxname");
    // Python: `ObjectName(name, table.schema) if name else None` (an empty name is no name).
    let index = match name {
        Some(name) if !name.is_empty() => Some(ObjectName::new(name, table.schema.clone())),
        _ => None,
    };
    let shown = match &index {
        Some(index) => format!("index {index} on {table}"),
        None => format!("an index on {table}"),
    };
    let new_table = report.is_new_relation(&table);
    let keys = index_keys(node);
    if index.is_some() || keys.is_some() {
        let key = match &index {
            Some(index) => index.key(),
            // `', '.join(map(str, keys))`: an expression key shows as `None`.
            None => {
                let shown_keys: Vec<&str> = keys
                    .iter()
                    .flatten()
                    .map(|key| key.as_deref().unwrap_or("None"))
                    .collect();
                format!("{}({})", table.key(), shown_keys.join(", "))
            }
        };
        report
            .analysis
            .knowledge
            .add_index(&key, &table.key(), keys.clone().unwrap_or_default());
    }
    if let Some(index) = &index {
        report
            .analysis
            .scope
            .created
            .insert((Namespace::Relation, index.key()));
        if too_long(name) {
            report.report(
                "identifier-too-long",
                format!(
                    "index name {} is over 63 bytes: PostgreSQL truncates it silently.",
                    py_repr(name.unwrap_or_default())
                ),
                Extra {
                    target: Some(index.to_string()),
                    fix: Some("Choose a name of at most 63 bytes.".into()),
                    ..Extra::default()
                },
            );
        }
    }
    let robust_fix = "CREATE INDEX CONCURRENTLY IF NOT EXISTS ...";
    if flag(node, "concurrent") {
        report.lock(&table, LockMode::ShareUpdateExclusive, !new_table);
        if report.analysis.session.in_transaction() {
            report.report(
                "ban-concurrent-index-creation-in-transaction",
                format!(
                    "CREATE INDEX CONCURRENTLY ({shown}) cannot run inside a transaction block."
                ),
                Extra {
                    target: Some(index.as_ref().unwrap_or(&table).to_string()),
                    fix: Some(OUTSIDE_TRANSACTION_FIX.into()),
                    preexisting: Some(!new_table),
                    ..Extra::default()
                },
            );
        } else if let Some(index) = &index {
            // A failed concurrent build leaves an INVALID index behind.
            report.robust(
                !flag(node, "if_not_exists"),
                "CREATE INDEX CONCURRENTLY without IF NOT EXISTS",
                robust_fix,
                index.to_string(),
            );
        }
        return;
    }
    report.lock(&table, LockMode::Share, !new_table);
    if !new_table {
        let unique = if flag(node, "unique") { "UNIQUE " } else { "" };
        let index_shown = index.as_ref().map(ToString::to_string).unwrap_or_default();
        report.report(
            "require-concurrent-index-creation",
            format!(
                "CREATE {unique}INDEX without CONCURRENTLY: building {shown} blocks writes to {table} (SHARE lock) until it is done."
            ),
            Extra {
                target: Some(table.to_string()),
                lock: Some(LockMode::Share),
                fix: Some(format!(
                    "CREATE {unique}INDEX CONCURRENTLY {index_shown} ON {table} (...), outside a transaction block. {OUTSIDE_TRANSACTION_FIX}"
                )),
                ..Extra::default()
            },
        );
        if flag(node, "unique") {
            report.report(
                "adding-unique-index",
                format!("unique {shown}: the build fails if {table} already holds duplicates."),
                Extra {
                    target: Some(table.to_string()),
                    fix: Some(
                        "Check first: SELECT <columns>, count(*) FROM ... GROUP BY <columns> HAVING count(*) > 1."
                            .into(),
                    ),
                    ..Extra::default()
                },
            );
        }
    }
    if let Some(index) = &index {
        report.robust(
            !flag(node, "if_not_exists"),
            "CREATE INDEX without IF NOT EXISTS",
            robust_fix,
            index.to_string(),
        );
    }
}

/// The index's key columns (None for an expression); None for a partial index, which a
/// foreign key's lookups cannot count on.
fn index_keys(node: &Node) -> Option<IndexKeys> {
    if truthy(node.get("whereClause")) {
        return None;
    }
    Some(
        children(node, "indexParams")
            .iter()
            .map(|item| text(unwrap_value(item).1, "name").map(str::to_string))
            .collect(),
    )
}

/// `DROP INDEX [CONCURRENTLY]` of each named index (called by `object_rules.drop`).
pub fn drop_indexes(node: &Node, indexes: &[ObjectName], report: &mut StatementReport) {
    let concurrent = flag(node, "concurrent");
    for index in indexes {
        let index_key = index.key();
        let table_key = report
            .analysis
            .knowledge
            .index_tables
            .get(&index_key)
            .cloned();
        report.analysis.knowledge.forget_index(&index_key);
        let table = table_key
            .filter(|key| !key.is_empty())
            .map(|key| ObjectName::from_key(&key));
        let new = report.is_new_relation(index)
            || table
                .as_ref()
                .is_some_and(|table| report.is_new_relation(table));
        report
            .analysis
            .scope
            .created
            .remove(&(Namespace::Relation, index_key));
        let target = table.as_ref().unwrap_or(index);
        if concurrent {
            report.lock(target, LockMode::ShareUpdateExclusive, !new);
            if report.analysis.session.in_transaction() {
                report.report(
                    "cannot-run-in-transaction",
                    format!(
                        "DROP INDEX CONCURRENTLY {index} cannot run inside a transaction block."
                    ),
                    Extra {
                        target: Some(index.to_string()),
                        fix: Some(OUTSIDE_TRANSACTION_FIX.into()),
                        preexisting: Some(!new),
                        ..Extra::default()
                    },
                );
            }
        } else {
            report.lock(target, LockMode::AccessExclusive, !new);
            if !new {
                let on = match &table {
                    Some(table) => format!(" on {table}"),
                    None => " (and its table)".to_string(),
                };
                report.report(
                    "require-concurrent-index-deletion",
                    format!(
                        "DROP INDEX {index} without CONCURRENTLY takes ACCESS EXCLUSIVE{on}: reads and writes wait."
                    ),
                    Extra {
                        target: Some(index.to_string()),
                        lock: Some(LockMode::AccessExclusive),
                        fix: Some(format!(
                            "DROP INDEX CONCURRENTLY IF EXISTS {index}; outside a transaction block."
                        )),
                        ..Extra::default()
                    },
                );
            }
        }
        report.robust(
            !flag(node, "missing_ok"),
            &format!("DROP INDEX {index} without IF EXISTS"),
            &format!("DROP INDEX CONCURRENTLY IF EXISTS {index}"),
            index.to_string(),
        );
    }
}

/// `REINDEX [CONCURRENTLY]` of an index, a table, or a whole schema / database / system.
pub fn reindex(node: &Node, report: &mut StatementReport) {
    let kind = text(node, "kind").unwrap_or("");
    let kind = kind.strip_prefix("REINDEX_OBJECT_").unwrap_or(kind);
    let concurrent = defelem_names(node, "params").contains("concurrently");
    let Some(named) = relation(node, "relation") else {
        // SCHEMA / DATABASE / SYSTEM
        if report.analysis.session.in_transaction() {
            report.report(
                "cannot-run-in-transaction",
                format!("REINDEX {kind} cannot run inside a transaction block."),
                Extra {
                    target: text(node, "name").map(str::to_string),
                    fix: Some(OUTSIDE_TRANSACTION_FIX.into()),
                    ..Extra::default()
                },
            );
        }
        return;
    };
    let table = if kind == "INDEX" {
        match report.analysis.knowledge.index_tables.get(&named.key()) {
            Some(table_key) if !table_key.is_empty() => ObjectName::from_key(table_key),
            _ => named.clone(),
        }
    } else {
        named.clone()
    };
    let new = report.is_new_relation(&named) || report.is_new_relation(&table);
    if concurrent {
        report.lock(&table, LockMode::ShareUpdateExclusive, !new);
        if report.analysis.session.in_transaction() {
            report.report(
                "cannot-run-in-transaction",
                format!("REINDEX CONCURRENTLY {named} cannot run inside a transaction block."),
                Extra {
                    target: Some(named.to_string()),
                    fix: Some(OUTSIDE_TRANSACTION_FIX.into()),
                    preexisting: Some(!new),
                    ..Extra::default()
                },
            );
        }
        return;
    }
    let mode = if kind == "INDEX" {
        LockMode::AccessExclusive
    } else {
        LockMode::Share
    };
    report.lock(&table, mode, !new);
    if new {
        return;
    }
    let fix = if report.analysis.options.pg_version >= 12 {
        format!("REINDEX {kind} CONCURRENTLY {named}; outside a transaction block.")
    } else {
        "CREATE INDEX CONCURRENTLY a replacement, DROP INDEX CONCURRENTLY the old one, then rename the new one (REINDEX CONCURRENTLY needs PostgreSQL 12).".to_string()
    };
    report.report(
        "require-concurrent-reindex",
        format!(
            "REINDEX {kind} {named} without CONCURRENTLY blocks writes (and reads that use the index) until it is done."
        ),
        Extra {
            target: Some(named.to_string()),
            lock: Some(mode),
            fix: Some(fix),
            ..Extra::default()
        },
    );
}
