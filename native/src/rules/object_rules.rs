//! `object_rules.py`: objects as a whole: creating, dropping, renaming and moving tables,
//! views, functions, types, schemas, triggers; enum values; materialized view refreshes.
//!
//! Grading choices: dropping a table, schema or database loses data (DATA_LOSS); dropping a
//! view, function, type, sequence or extension breaks its users but loses no rows
//! (INCOMPATIBLE), or DATA_LOSS with CASCADE where that drops columns; and a view or function
//! the same change re-creates (the usual drop-and-recreate) is only ADVISORY.

use crate::analysis::{Extra, StatementReport};
use crate::findings::{Effect, LockMode, Severity};
use crate::nodes::{
    children, dropped_names, flag, py_repr_opt, py_str, relation, strings, text, too_long, unwrap,
    Node, ObjectName,
};
use crate::rules::data_rules;
use crate::rules::index_rules::{drop_indexes, OUTSIDE_TRANSACTION_FIX};
use crate::state::Namespace;

/// `_DROPS`: removeType -> (rule, namespace, what).
fn drops(remove_type: &str) -> Option<(&'static str, Namespace, &'static str)> {
    Some(match remove_type {
        "OBJECT_TABLE" => ("ban-drop-table", Namespace::Relation, "table"),
        "OBJECT_VIEW" => ("ban-drop-view", Namespace::Relation, "view"),
        "OBJECT_MATVIEW" => ("ban-drop-view", Namespace::Relation, "materialized view"),
        "OBJECT_SEQUENCE" => ("ban-drop-sequence", Namespace::Relation, "sequence"),
        "OBJECT_FUNCTION" => ("ban-drop-function", Namespace::Function, "function"),
        "OBJECT_PROCEDURE" => ("ban-drop-function", Namespace::Function, "procedure"),
        "OBJECT_ROUTINE" => ("ban-drop-function", Namespace::Function, "routine"),
        "OBJECT_TYPE" => ("ban-drop-type", Namespace::Type, "type"),
        "OBJECT_DOMAIN" => ("ban-drop-domain", Namespace::Type, "domain"),
        "OBJECT_SCHEMA" => ("ban-drop-schema", Namespace::Schema, "schema"),
        "OBJECT_EXTENSION" => ("ban-drop-extension", Namespace::Schema, "extension"),
        _ => return None,
    })
}

/// `_RECREATABLE`: what a change may drop and re-create.
fn recreatable(remove_type: &str) -> bool {
    matches!(
        remove_type,
        "OBJECT_VIEW"
            | "OBJECT_MATVIEW"
            | "OBJECT_FUNCTION"
            | "OBJECT_PROCEDURE"
            | "OBJECT_ROUTINE"
            | "OBJECT_TYPE"
            | "OBJECT_DOMAIN"
    )
}

/// `_CASCADE_LOSES_DATA`: what drops columns with CASCADE.
fn cascade_loses_data(remove_type: &str) -> bool {
    matches!(
        remove_type,
        "OBJECT_TYPE" | "OBJECT_DOMAIN" | "OBJECT_EXTENSION" | "OBJECT_SEQUENCE"
    )
}

/// DROP TABLE / VIEW / FUNCTION / TYPE / SCHEMA / INDEX / TRIGGER / ...
pub fn drop(node: &Node, report: &mut StatementReport) {
    let remove_type = text(node, "removeType").unwrap_or("");
    let names = dropped_names(node);
    if remove_type == "OBJECT_INDEX" {
        drop_indexes(node, &names, report);
        return;
    }
    if remove_type == "OBJECT_TRIGGER" {
        drop_trigger(&names, report);
        return;
    }
    let Some((rule_id, namespace, what)) = drops(remove_type) else {
        return;
    };
    let cascade = text(node, "behavior") == Some("DROP_CASCADE");
    let what_upper = what.to_uppercase();
    for name in &names {
        let key = if namespace == Namespace::Schema {
            name.name.clone()
        } else {
            name.key()
        };
        let new = report.analysis.scope.is_new(namespace, &key);
        report
            .analysis
            .scope
            .created
            .remove(&(namespace, key.clone()));
        if namespace == Namespace::Relation {
            report.lock(name, LockMode::AccessExclusive, !new);
            if remove_type == "OBJECT_TABLE" {
                report.analysis.knowledge.drop_table(&name.key());
            }
        }
        if new {
            // created by this same change: nothing to lose, no one to break
            continue;
        }
        let effect = if cascade && cascade_loses_data(remove_type) {
            Some(Effect::DataLoss)
        } else {
            None
        };
        let message = format!(
            "DROP {what_upper} {name}{}: {}",
            if cascade { " CASCADE" } else { "" },
            consequence(remove_type, cascade)
        );
        let index = report.report(
            rule_id,
            message,
            Extra {
                target: Some(name.to_string()),
                effect,
                lock: if namespace == Namespace::Relation {
                    Some(LockMode::AccessExclusive)
                } else {
                    None
                },
                fix: Some(drop_fix(what, name)),
                ..Extra::default()
            },
        );
        if let Some(index) = index {
            if recreatable(remove_type) && !cascade {
                report
                    .analysis
                    .scope
                    .dropped
                    .entry((namespace, key))
                    .or_default()
                    .push(index);
            }
        }
        report.robust(
            !flag(node, "missing_ok"),
            &format!("DROP {what_upper} {name} without IF EXISTS"),
            &format!("DROP {what_upper} IF EXISTS {name}"),
            name.to_string(),
        );
    }
}

/// `_consequence`: what dropping it does.
fn consequence(remove_type: &str, cascade: bool) -> &'static str {
    if remove_type == "OBJECT_TABLE" || remove_type == "OBJECT_SCHEMA" {
        return "its data is gone, and running clients that use it fail.";
    }
    if cascade && cascade_loses_data(remove_type) {
        return "CASCADE also drops the columns and objects that depend on it.";
    }
    "clients and objects that use it fail."
}

/// `_drop_fix`: how to drop it safely.
fn drop_fix(what: &str, name: &ObjectName) -> String {
    if what == "table" || what == "schema" {
        return format!(
            "Ship code that no longer uses {name} first; rename it aside (or keep a backup) and drop it in a later release."
        );
    }
    format!(
        "Drop {name} only after no release uses it, or re-create it in the same change (CREATE OR REPLACE where possible)."
    )
}

/// `_drop_trigger`: DROP TRIGGER name ON table.
fn drop_trigger(names: &[ObjectName], report: &mut StatementReport) {
    for name in names {
        // DROP TRIGGER name ON table: the list is [schema, table, trigger]
        let table_name = match name.schema.as_deref() {
            Some(schema) if !schema.is_empty() => schema.to_string(),
            _ => "?".to_string(),
        };
        let table = ObjectName::new(table_name, None);
        let new = report.is_new_relation(&table);
        report.lock(&table, LockMode::AccessExclusive, !new);
        if !new {
            report.report(
                "ban-drop-trigger",
                format!(
                    "DROP TRIGGER {} on {table}: what it enforced or kept in sync stops.",
                    name.name
                ),
                Extra {
                    target: Some(table.to_string()),
                    lock: Some(LockMode::AccessExclusive),
                    fix: Some("Make sure nothing relies on the trigger's effect any more.".into()),
                    ..Extra::default()
                },
            );
        }
    }
}

/// DROP DATABASE.
pub fn drop_database(node: &Node, report: &mut StatementReport) {
    let name = match text(node, "dbname") {
        Some(name) if !name.is_empty() => name,
        _ => "?",
    };
    report.report(
        "ban-drop-database",
        format!("DROP DATABASE {name}: every table in it is gone."),
        Extra {
            target: Some(name.to_string()),
            fix: Some("Never from a migration; do it by hand, after a backup.".into()),
            ..Extra::default()
        },
    );
    outside_transaction(&format!("DROP DATABASE {name}"), name, report);
}

/// `_outside_transaction`: a statement PostgreSQL refuses inside a transaction block.
fn outside_transaction(what: &str, target: &str, report: &mut StatementReport) {
    if report.analysis.session.in_transaction() {
        report.report(
            "cannot-run-in-transaction",
            format!("{what} cannot run inside a transaction block."),
            Extra {
                target: Some(target.to_string()),
                fix: Some(OUTSIDE_TRANSACTION_FIX.into()),
                ..Extra::default()
            },
        );
    }
}

/// ALTER ... RENAME.
pub fn rename(node: &Node, report: &mut StatementReport) {
    let rename_type = text(node, "renameType").unwrap_or("");
    let kind = rename_type.strip_prefix("OBJECT_").unwrap_or(rename_type);
    let table = relation(node, "relation");
    let new_name = match text(node, "newname") {
        Some(name) if !name.is_empty() => name,
        _ => "?",
    };
    if too_long(Some(new_name)) {
        report.report(
            "identifier-too-long",
            format!(
                "new name {} is over 63 bytes: PostgreSQL truncates it silently.",
                py_repr_opt(Some(new_name))
            ),
            Extra {
                target: table.as_ref().map(ObjectName::to_string),
                fix: Some("Choose a name of at most 63 bytes.".into()),
                ..Extra::default()
            },
        );
    }
    if let Some(table) = &table {
        if matches!(
            kind,
            "TABLE" | "COLUMN" | "VIEW" | "MATVIEW" | "TABCONSTRAINT" | "INDEX" | "SEQUENCE"
        ) {
            let new = report.is_new_relation(table);
            report.lock(table, LockMode::AccessExclusive, !new);
            let renamed = ObjectName::new(new_name, table.schema.clone());
            if kind == "COLUMN" {
                let old = match text(node, "subname") {
                    Some(old) if !old.is_empty() => old,
                    _ => "?",
                };
                report
                    .analysis
                    .knowledge
                    .rename_column(&table.key(), old, new_name);
                if !new {
                    report.report(
                        "renaming-column",
                        format!(
                            "RENAME COLUMN {table}.{old} TO {new_name}: running clients still use the old name."
                        ),
                        Extra {
                            target: Some(table.to_string()),
                            lock: Some(LockMode::AccessExclusive),
                            fix: Some(RENAME_FIX.into()),
                            ..Extra::default()
                        },
                    );
                }
                return;
            }
            if kind == "TABLE" {
                report
                    .analysis
                    .knowledge
                    .rename_table(&table.key(), &renamed.key());
            }
            if new {
                report
                    .analysis
                    .scope
                    .created
                    .insert((Namespace::Relation, renamed.key()));
                return;
            }
            if kind == "TABLE" {
                report.report(
                    "renaming-table",
                    format!(
                        "RENAME {table} TO {new_name}: running clients still use the old name."
                    ),
                    Extra {
                        target: Some(table.to_string()),
                        lock: Some(LockMode::AccessExclusive),
                        fix: Some(RENAME_FIX.into()),
                        ..Extra::default()
                    },
                );
            } else if kind == "VIEW" || kind == "MATVIEW" {
                report.report(
                    "renaming-object",
                    format!("RENAME view {table} TO {new_name}: running clients still query the old name."),
                    Extra {
                        target: Some(table.to_string()),
                        fix: Some(RENAME_FIX.into()),
                        ..Extra::default()
                    },
                );
            }
            return;
        }
    }
    if kind == "SCHEMA" {
        let subname = text(node, "subname");
        report.report(
            "renaming-object",
            format!(
                "RENAME SCHEMA {} TO {new_name}: every object in it moves.",
                py_str(subname)
            ),
            Extra {
                target: subname.map(str::to_string),
                fix: Some(RENAME_FIX.into()),
                ..Extra::default()
            },
        );
    } else if matches!(kind, "FUNCTION" | "PROCEDURE" | "TYPE" | "DOMAIN") {
        let subject = renamed_subject(node);
        report.report(
            "renaming-object",
            format!(
                "RENAME {} {subject} TO {new_name}: callers and columns using the old name break.",
                kind.to_lowercase()
            ),
            Extra {
                target: Some(subject.clone()),
                effect: Some(Effect::Incompatible),
                severity: Some(Severity::Warning),
                fix: Some(RENAME_FIX.into()),
                ..Extra::default()
            },
        );
    }
}

/// `_RENAME_FIX`.
const RENAME_FIX: &str = "Add the new name alongside (a new column kept in sync, or a view under the new name), move the clients, and drop the old name in a later release.";

/// `_renamed_subject`: the name of the object a RENAME / SET SCHEMA applies to.
fn renamed_subject(node: &Node) -> String {
    let (kind, inner) = unwrap(node.get("object"));
    if kind == "ObjectWithArgs" {
        return ObjectName::from_parts(&strings(children(inner, "objname"))).to_string();
    }
    if kind == "List" {
        return ObjectName::from_parts(&strings(children(inner, "items"))).to_string();
    }
    match text(node, "subname") {
        Some(subname) if !subname.is_empty() => subname.to_string(),
        _ => "?".to_string(),
    }
}

/// ALTER ... SET SCHEMA.
pub fn set_schema(node: &Node, report: &mut StatementReport) {
    let object_type = text(node, "objectType").unwrap_or("");
    let kind = object_type.strip_prefix("OBJECT_").unwrap_or(object_type);
    let table = relation(node, "relation");
    // An ObjectName is always truthy in Python: `if table` is `table is not None`.
    let subject = match &table {
        Some(table) => table.to_string(),
        None => renamed_subject(node),
    };
    let new = table
        .as_ref()
        .is_some_and(|table| report.is_new_relation(table));
    if let Some(table) = &table {
        report.lock(table, LockMode::AccessExclusive, !new);
    }
    let breaking = matches!(kind, "TABLE" | "VIEW" | "MATVIEW");
    report.report(
        "ban-set-schema",
        format!(
            "{} {subject} moves to schema {}: clients using the old qualified name fail.",
            kind.to_lowercase(),
            py_str(text(node, "newschema"))
        ),
        Extra {
            target: Some(subject.clone()),
            preexisting: Some(!new),
            effect: if breaking {
                None
            } else {
                Some(Effect::Incompatible)
            },
            fix: Some(RENAME_FIX.into()),
            ..Extra::default()
        },
    );
}

/// CREATE VIEW.
pub fn create_view(node: &Node, report: &mut StatementReport) {
    let view = relation(node, "view");
    data_rules::named_twice(
        &strings(children(node, "aliases")),
        "the view's column list",
        report,
    );
    if let Some(view) = view {
        let key = view.key();
        report
            .analysis
            .scope
            .created
            .insert((Namespace::Relation, key.clone()));
        report
            .analysis
            .soften_drop(Namespace::Relation, &key, "by this change");
    }
}

/// CREATE FUNCTION / PROCEDURE.
pub fn create_function(node: &Node, report: &mut StatementReport) {
    let name = ObjectName::from_parts(&strings(children(node, "funcname")));
    let key = name.key();
    report
        .analysis
        .scope
        .created
        .insert((Namespace::Function, key.clone()));
    report
        .analysis
        .soften_drop(Namespace::Function, &key, "by this change");
}

/// CREATE TYPE (composite, range; and enum through `create_enum`).
pub fn create_type(node: &Node, report: &mut StatementReport) {
    let parts = strings(children(node, "typeName"));
    let name = if !parts.is_empty() {
        Some(ObjectName::from_parts(&parts))
    } else {
        relation(node, "typevar")
    };
    if let Some(name) = name {
        let key = name.key();
        report
            .analysis
            .scope
            .created
            .insert((Namespace::Type, key.clone()));
        report
            .analysis
            .soften_drop(Namespace::Type, &key, "by this change");
    }
}

/// CREATE TYPE ... AS ENUM: Eugene's W13.
pub fn create_enum(node: &Node, report: &mut StatementReport) {
    create_type(node, report);
    let name = ObjectName::from_parts(&strings(children(node, "typeName")));
    report.report(
        "creating-enum",
        format!(
            "enum type {name}: a value can be added but never removed or renamed in place, and nothing can be stored alongside a value."
        ),
        Extra {
            target: Some(name.to_string()),
            fix: Some(format!(
                "A lookup table ({}(name text PRIMARY KEY) and a foreign key to it), or a text column with a CHECK constraint that can be replaced NOT VALID.",
                name.name
            )),
            ..Extra::default()
        },
    );
}

/// CREATE SCHEMA.
pub fn create_schema(node: &Node, report: &mut StatementReport) {
    let name = match text(node, "schemaname") {
        Some(name) if !name.is_empty() => name,
        _ => "?",
    };
    report
        .analysis
        .scope
        .created
        .insert((Namespace::Schema, name.to_string()));
}

/// CREATE SEQUENCE.
pub fn create_sequence(node: &Node, report: &mut StatementReport) {
    if let Some(name) = relation(node, "sequence") {
        report
            .analysis
            .scope
            .created
            .insert((Namespace::Relation, name.key()));
    }
}

/// ALTER TYPE ... ADD VALUE / RENAME VALUE.
pub fn alter_enum(node: &Node, report: &mut StatementReport) {
    let name = ObjectName::from_parts(&strings(children(node, "typeName")));
    let new_type = report.is_new(&name, Namespace::Type);
    let value = py_repr_opt(text(node, "newVal"));
    if let Some(old) = text(node, "oldVal") {
        report.report(
            "renaming-object",
            format!(
                "RENAME VALUE {} of {name}: rows and clients using the old label break.",
                py_repr_opt(Some(old))
            ),
            Extra {
                target: Some(name.to_string()),
                preexisting: Some(!new_type),
                effect: Some(Effect::Incompatible),
                fix: Some(RENAME_FIX.into()),
                ..Extra::default()
            },
        );
        return;
    }
    if report.analysis.session.in_transaction() && report.analysis.options.pg_version < 12 {
        report.report(
            "adding-enum-value",
            format!(
                "ALTER TYPE {name} ADD VALUE {value} cannot run inside a transaction block before PostgreSQL 12."
            ),
            Extra {
                target: Some(name.to_string()),
                effect: Some(Effect::CannotRun),
                severity: Some(Severity::Error),
                fix: Some(OUTSIDE_TRANSACTION_FIX.into()),
                ..Extra::default()
            },
        );
    } else if !new_type {
        report.report(
            "adding-enum-value",
            format!(
                "ALTER TYPE {name} ADD VALUE {value}: the new value cannot be used until this transaction commits, and old releases may not know it."
            ),
            Extra {
                target: Some(name.to_string()),
                fix: Some("Use the new value only in a later migration or release.".into()),
                ..Extra::default()
            },
        );
    }
    if text(node, "newValNeighbor").is_none() && !new_type {
        report.report(
            "require-enum-value-ordering",
            format!(
                "{value} is appended at the end of {name}: ORDER BY on the column sorts it last."
            ),
            Extra {
                target: Some(name.to_string()),
                fix: Some(format!(
                    "ALTER TYPE {name} ADD VALUE {value} BEFORE|AFTER '<existing>'"
                )),
                ..Extra::default()
            },
        );
    }
}

/// CREATE TRIGGER.
pub fn create_trigger(node: &Node, report: &mut StatementReport) {
    let Some(table) = relation(node, "relation") else {
        return;
    };
    let new = report.is_new_relation(&table);
    report.lock(&table, LockMode::ShareRowExclusive, !new);
    if !new && !flag(node, "replace") {
        report.report(
            "creating-trigger-on-existing-table",
            format!(
                "CREATE TRIGGER {} on {table}: SHARE ROW EXCLUSIVE (writes wait), and every later write runs it.",
                py_str(text(node, "trigname"))
            ),
            Extra {
                target: Some(table.to_string()),
                lock: Some(LockMode::ShareRowExclusive),
                fix: Some("Set lock_timeout first, and keep the trigger function cheap.".into()),
                ..Extra::default()
            },
        );
    }
}

/// REFRESH MATERIALIZED VIEW.
pub fn refresh_view(node: &Node, report: &mut StatementReport) {
    let Some(view) = relation(node, "relation") else {
        return;
    };
    let new = report.is_new_relation(&view);
    if flag(node, "concurrent") {
        report.lock(&view, LockMode::Exclusive, !new);
        return;
    }
    report.lock(&view, LockMode::AccessExclusive, !new);
    if !new && !flag(node, "skipData") {
        report.report(
            "require-concurrent-refresh",
            format!(
                "REFRESH MATERIALIZED VIEW {view} without CONCURRENTLY blocks every reader of the view until done."
            ),
            Extra {
                target: Some(view.to_string()),
                lock: Some(LockMode::AccessExclusive),
                fix: Some(format!(
                    "REFRESH MATERIALIZED VIEW CONCURRENTLY {view}; (needs a unique index on the view)."
                )),
                ..Extra::default()
            },
        );
    }
}

/// CREATE DATABASE, ALTER SYSTEM.
pub fn cluster_wide(node: &Node, report: &mut StatementReport) {
    let target = match text(node, "dbname") {
        Some(name) if !name.is_empty() => name,
        _ => "?",
    };
    outside_transaction("CREATE DATABASE / ALTER SYSTEM", target, report);
}
