//! CREATE TABLE, LOCK TABLE, and ALTER TABLE dispatched by subcommand to the rule for it
//! (`table_rules.py`).

use std::collections::HashSet;

use crate::analysis::{Extra, StatementReport};
use crate::column_types::{aligned_order, row_padding, TypeRef};
use crate::findings::LockMode;
use crate::nodes::{
    child, children, flag, nonempty, py_repr, relation, strings, text, too_long, unwrap,
    unwrap_value, Node, ObjectName,
};
use crate::rules::index_rules::OUTSIDE_TRANSACTION_FIX;
use crate::rules::{column_rules, constraint_rules, data_rules};
use crate::state::Namespace;

/// Python's `text(node, key) or "?"`: an absent or empty string is `?`.
fn or_unknown(value: Option<&str>) -> &str {
    nonempty(value).unwrap_or("?")
}

/// CREATE TABLE: the new table, its columns' types, keys and foreign keys.
pub fn create_table(node: &Node, report: &mut StatementReport) {
    let Some(table) = relation(node, "relation") else {
        return;
    };
    if text(child(node, "relation"), "relpersistence") == Some("t") {
        return;
    }
    let key = table.key();
    report
        .analysis
        .scope
        .created
        .insert((Namespace::Relation, key.clone()));
    report
        .analysis
        .soften_drop(Namespace::Relation, &key, "by this change");
    if too_long(Some(&table.name)) {
        report.report(
            "identifier-too-long",
            format!(
                "table name {} is over 63 bytes: PostgreSQL truncates it silently.",
                py_repr(&table.name)
            ),
            Extra {
                target: Some(table.to_string()),
                fix: Some("Choose a name of at most 63 bytes.".into()),
                ..Extra::default()
            },
        );
    }
    report.robust(
        !flag(node, "if_not_exists"),
        &format!("CREATE TABLE {table} without IF NOT EXISTS"),
        &format!("CREATE TABLE IF NOT EXISTS {table} (...)"),
        table.to_string(),
    );
    let mut keys: HashSet<String> = HashSet::new();
    let elements: Vec<(&str, &Node)> = children(node, "tableElts")
        .iter()
        .map(unwrap_value)
        .collect();
    for &(kind, element) in &elements {
        if kind == "Constraint"
            && matches!(
                text(element, "contype"),
                Some("CONSTR_PRIMARY" | "CONSTR_FOREIGN")
            )
        {
            keys.extend(strings(children(element, "keys")));
            keys.extend(strings(children(element, "fk_attrs")));
        }
    }
    let names: Vec<String> = elements
        .iter()
        .filter(|(kind, _)| *kind == "ColumnDef")
        .map(|(_, e)| or_unknown(text(e, "colname")).to_string())
        .collect();
    data_rules::named_twice(&names, &format!("CREATE TABLE {table}"), report);
    report
        .analysis
        .knowledge
        .columns
        .entry(key.clone())
        .or_default()
        .clear();
    for &(kind, element) in &elements {
        if kind == "ColumnDef" {
            let name = or_unknown(text(element, "colname"));
            // Python holds the table's dict and fills it; here it is looked up per column.
            report
                .analysis
                .knowledge
                .columns
                .entry(key.clone())
                .or_default()
                .insert(
                    name.to_string(),
                    TypeRef::from_node(child(element, "typeName")),
                );
            column_rules::advise_column_type(&table, element, report, keys.contains(name));
            for constraint in column_rules::column_constraints(element) {
                table_constraint(&table, constraint, report, Some(name));
            }
        } else if kind == "Constraint" {
            table_constraint(&table, element, report, None);
        }
    }
    column_order(&table, &elements, report);
}

/// Padding per row worth a finding: one whole 8-byte word that a reorder would save.
const ALIGNMENT_WASTE_BYTES: i64 = 8;

/// Atlas's PG110: PostgreSQL stores columns in the order written, each aligned to its
/// type, so a narrow column before a wide one leaves padding in every row.
fn column_order(table: &ObjectName, elements: &[(&str, &Node)], report: &mut StatementReport) {
    let columns: Vec<(&str, TypeRef)> = elements
        .iter()
        .filter(|(kind, _)| *kind == "ColumnDef")
        .map(|(_, e)| {
            (
                or_unknown(text(e, "colname")),
                TypeRef::from_node(child(e, "typeName")),
            )
        })
        .collect();
    if columns.len() < 3 {
        return;
    }
    let types: Vec<TypeRef> = columns.iter().map(|(_, t)| t.clone()).collect();
    let order = aligned_order(&types);
    let reordered: Vec<TypeRef> = order.iter().map(|&i| types[i].clone()).collect();
    let saved = row_padding(&types) - row_padding(&reordered);
    if saved < ALIGNMENT_WASTE_BYTES {
        return;
    }
    let shown: Vec<String> = order
        .iter()
        .map(|&i| format!("{} {}", columns[i].0, columns[i].1))
        .collect();
    report.report(
        "non-optimal-column-alignment",
        format!(
            "the column order of {table} leaves about {saved} bytes of alignment padding in every row that another order avoids."
        ),
        Extra {
            target: Some(table.to_string()),
            preexisting: Some(false),
            fix: Some(format!("Order the columns by alignment, widest first: {}.", shown.join(", "))),
            ..Extra::default()
        },
    );
}

/// A table or column constraint of CREATE TABLE: its key index, foreign key, referenced lock.
fn table_constraint(
    table: &ObjectName,
    constraint: &Node,
    report: &mut StatementReport,
    column: Option<&str>,
) {
    constraint_rules::note_key_index(table, constraint, report, column);
    if text(constraint, "contype") == Some("CONSTR_FOREIGN") {
        constraint_rules::note_foreign_key(table, constraint, report, column);
    }
    lock_referenced(constraint, report);
}

/// A new table's foreign key still locks the table it references (briefly, no scan).
fn lock_referenced(constraint: &Node, report: &mut StatementReport) {
    if let Some(referenced) = relation(constraint, "pktable") {
        let preexisting = !report.is_new_relation(&referenced);
        report.lock(&referenced, LockMode::ShareRowExclusive, preexisting);
    }
}

/// CREATE TABLE ... AS: its column names, and the new table.
pub fn create_table_as(node: &Node, report: &mut StatementReport) {
    let into = child(node, "into");
    let table = relation(into, "rel");
    // Python's f-string shows a missing table as `None`.
    let shown = table
        .as_ref()
        .map_or_else(|| "None".to_string(), ObjectName::to_string);
    data_rules::named_twice(
        &strings(children(into, "colNames")),
        &format!("CREATE TABLE {shown} AS"),
        report,
    );
    if let Some(table) = table {
        let key = table.key();
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

/// `list(LockMode)`: PostgreSQL's lock modes, weakest first, as LOCK TABLE numbers them (1-8).
const MODES: [LockMode; 8] = [
    LockMode::AccessShare,
    LockMode::RowShare,
    LockMode::RowExclusive,
    LockMode::ShareUpdateExclusive,
    LockMode::Share,
    LockMode::ShareRowExclusive,
    LockMode::Exclusive,
    LockMode::AccessExclusive,
];

/// LOCK TABLE: the lock it takes, and a finding when it blocks writes on an existing table.
pub fn lock_table(node: &Node, report: &mut StatementReport) {
    let number = node.get("mode").and_then(|m| m.as_i64()).unwrap_or(8);
    let mode = if (1..=8).contains(&number) {
        MODES[(number - 1) as usize]
    } else {
        LockMode::AccessExclusive
    };
    for item in children(node, "relations") {
        let range_var = unwrap_value(item).1;
        let Some(name) = text(range_var, "relname") else {
            continue;
        };
        let table = ObjectName::new(name, text(range_var, "schemaname").map(str::to_string));
        let new = report.is_new_relation(&table);
        report.lock(&table, mode, !new);
        if !new && mode >= LockMode::Share {
            report.report(
                "explicit-table-lock",
                format!(
                    "LOCK TABLE {table} IN {} MODE blocks writes until the transaction ends.",
                    mode.shown()
                ),
                Extra {
                    target: Some(table.to_string()),
                    lock: Some(mode),
                    fix: Some("Take the weakest lock that protects what the migration needs, with lock_timeout set, and keep the transaction short.".into()),
                    ..Extra::default()
                },
            );
        }
    }
}

/// ALTER TABLE: each subcommand to its rule, or just its lock.
pub fn alter_table(node: &Node, report: &mut StatementReport) {
    let Some(table) = relation(node, "relation") else {
        return;
    };
    let objtype = text(node, "objtype");
    if !matches!(objtype, None | Some("OBJECT_TABLE" | "OBJECT_MATVIEW")) {
        return;
    }
    if !report.is_new_relation(&table) && objtype != Some("OBJECT_MATVIEW") {
        once_per_table(&table, report);
    }
    for item in children(node, "cmds") {
        let command = unwrap_value(item).1;
        let subtype = text(command, "subtype").unwrap_or("");
        let subtype = subtype.strip_prefix("AT_").unwrap_or(subtype);
        if !subcommand(subtype, &table, command, report) {
            let preexisting = !report.is_new_relation(&table);
            report.lock(&table, locks(subtype), preexisting);
        }
    }
}

/// Eugene's W12: each ALTER TABLE on a pre-existing table takes its lock again; one statement
/// with all the actions queues once and does the work once.
fn once_per_table(table: &ObjectName, report: &mut StatementReport) {
    let statement = report.statement;
    let (start, line) = *report
        .analysis
        .altered
        .entry(table.key())
        .or_insert((statement.start, Some(statement.line)));
    if start == statement.start {
        return;
    }
    let line = line.map_or_else(|| "None".to_string(), |l| l.to_string());
    report.report(
        "multiple-alter-table",
        format!(
            "another ALTER TABLE on {table} in this file (the first is at line {line}): each one queues for the lock again, and does its own scan or rewrite when its actions need one."
        ),
        Extra {
            target: Some(table.to_string()),
            fix: Some(format!(
                "Combine the actions into one statement: ALTER TABLE {table} <action>, <action>, ...;"
            )),
            ..Extra::default()
        },
    );
}

/// ADD CONSTRAINT.
fn add_constraint(table: &ObjectName, command: &Node, report: &mut StatementReport) {
    constraint_rules::add_constraint(table, unwrap(command.get("def")).1, report, None);
}

/// VALIDATE CONSTRAINT.
fn validate(table: &ObjectName, command: &Node, report: &mut StatementReport) {
    constraint_rules::validate_constraint(table, or_unknown(text(command, "name")), report);
}

/// ALTER COLUMN ... SET NOT NULL.
fn set_not_null(table: &ObjectName, command: &Node, report: &mut StatementReport) {
    constraint_rules::set_not_null(table, or_unknown(text(command, "name")), report);
}

/// A subcommand that rewrites the table under ACCESS EXCLUSIVE (Python returns a closure over
/// `what` and `rule`; here they are the first arguments).
fn rewrite_table(
    what: &str,
    rule: &str,
    table: &ObjectName,
    _command: &Node,
    report: &mut StatementReport,
) {
    let new = report.is_new_relation(table);
    report.lock(table, LockMode::AccessExclusive, !new);
    if !new {
        report.report(
            rule,
            format!("{what} rewrites {table} under ACCESS EXCLUSIVE."),
            Extra {
                target: Some(table.to_string()),
                lock: Some(LockMode::AccessExclusive),
                fix: Some("Create the new table alongside, copy in batches, and swap, or run it in a maintenance window.".into()),
                ..Extra::default()
            },
        );
    }
}

/// ENABLE / DISABLE TRIGGER.
fn triggers(table: &ObjectName, command: &Node, report: &mut StatementReport) {
    let new = report.is_new_relation(table);
    report.lock(table, LockMode::ShareRowExclusive, !new);
    let subtype = text(command, "subtype").unwrap_or("");
    if subtype.starts_with("AT_DisableTrig") && !new {
        let which = match text(command, "name") {
            Some(name) if !name.is_empty() => name,
            _ => {
                if subtype.ends_with("All") {
                    "ALL"
                } else {
                    "USER"
                }
            }
        };
        let tail = if which == "ALL" {
            " (ALL includes foreign-key checks)."
        } else {
            "."
        };
        report.report(
            "ban-disable-trigger",
            format!("DISABLE TRIGGER {which} on {table}: writes skip it from now on{tail}"),
            Extra {
                target: Some(table.to_string()),
                lock: Some(LockMode::ShareRowExclusive),
                fix: Some("Re-enable it in the same transaction, or drop the trigger on purpose; never leave foreign-key triggers off.".into()),
                ..Extra::default()
            },
        );
    }
}

/// DETACH PARTITION [CONCURRENTLY].
fn detach_partition(table: &ObjectName, command: &Node, report: &mut StatementReport) {
    let partition_command = unwrap(command.get("def")).1;
    // Python's f-string shows a missing partition as `None`.
    let partition =
        relation(partition_command, "name").map_or_else(|| "None".to_string(), |p| p.to_string());
    let new = report.is_new_relation(table);
    if flag(partition_command, "concurrent") {
        report.lock(table, LockMode::ShareUpdateExclusive, !new);
        if report.analysis.session.in_transaction() {
            report.report(
                "cannot-run-in-transaction",
                format!("DETACH PARTITION {partition} CONCURRENTLY cannot run inside a transaction block."),
                Extra {
                    target: Some(table.to_string()),
                    fix: Some(OUTSIDE_TRANSACTION_FIX.into()),
                    preexisting: Some(!new),
                    ..Extra::default()
                },
            );
        }
        return;
    }
    report.lock(table, LockMode::AccessExclusive, !new);
    if !new && report.analysis.options.pg_version >= 14 {
        report.report(
            "require-concurrent-partition-detach",
            format!("DETACH PARTITION {partition} takes ACCESS EXCLUSIVE on {table}: reads and writes wait."),
            Extra {
                target: Some(table.to_string()),
                lock: Some(LockMode::AccessExclusive),
                fix: Some(format!(
                    "ALTER TABLE {table} DETACH PARTITION {partition} CONCURRENTLY; outside a transaction block."
                )),
                ..Extra::default()
            },
        );
    }
}

/// `_SUBCOMMANDS`: run the rule for an ALTER TABLE subcommand (its `AT_` name without the
/// prefix); false when no rule looks at it.
fn subcommand(
    subtype: &str,
    table: &ObjectName,
    command: &Node,
    report: &mut StatementReport,
) -> bool {
    match subtype {
        "AddColumn" => column_rules::add_column(table, command, report),
        "AlterColumnType" => column_rules::alter_column_type(table, command, report),
        "DropColumn" => column_rules::drop_column(table, command, report),
        "DropNotNull" => column_rules::drop_not_null(table, command, report),
        "SetNotNull" => set_not_null(table, command, report),
        "ColumnDefault" => column_rules::column_default(table, command, report),
        "AddIdentity" | "SetIdentity" | "DropIdentity" => {
            column_rules::alter_identity(table, command, report)
        }
        "DropExpression" => column_rules::drop_expression(table, command, report),
        "AddConstraint" => add_constraint(table, command, report),
        "ValidateConstraint" => validate(table, command, report),
        "DropConstraint" => constraint_rules::drop_constraint(table, command, report),
        "SetLogged" => rewrite_table(
            "SET LOGGED",
            "changing-table-persistence",
            table,
            command,
            report,
        ),
        "SetUnLogged" => rewrite_table(
            "SET UNLOGGED",
            "changing-table-persistence",
            table,
            command,
            report,
        ),
        "SetTableSpace" => rewrite_table(
            "SET TABLESPACE",
            "changing-tablespace",
            table,
            command,
            report,
        ),
        "DetachPartition" => detach_partition(table, command, report),
        "EnableTrig" | "EnableAlwaysTrig" | "EnableReplicaTrig" | "DisableTrig"
        | "EnableTrigAll" | "DisableTrigAll" | "EnableTrigUser" | "DisableTrigUser" => {
            triggers(table, command, report)
        }
        _ => return false,
    }
    true
}

/// `_LOCKS`: lock levels of the subcommands no rule looks at (ALTER TABLE's documented
/// levels); ACCESS EXCLUSIVE for the rest.
fn locks(subtype: &str) -> LockMode {
    match subtype {
        "SetStatistics" | "SetRelOptions" | "ResetRelOptions" | "ClusterOn" | "DropCluster"
        | "AttachPartition" => LockMode::ShareUpdateExclusive,
        _ => LockMode::AccessExclusive,
    }
}
