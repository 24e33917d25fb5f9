//! `constraint_rules.py`: constraints added NOT VALID and validated later, or built under a
//! lock with a full scan.
//!
//! The safe sequence is the same for CHECK, FOREIGN KEY and (PostgreSQL 18) NOT NULL: add it
//! NOT VALID (a brief lock, no scan), then VALIDATE it in a later transaction (SHARE UPDATE
//! EXCLUSIVE: reads and writes go on). UNIQUE and PRIMARY KEY are built as an index
//! CONCURRENTLY first, then attached with USING INDEX.

use crate::analysis::{Extra, StatementReport};
use crate::findings::LockMode;
use crate::nodes::{
    child, children, flag, nonempty, py_repr, py_str, relation, strings, text, too_long, unwrap,
    Node, ObjectName,
};
use crate::state::Namespace;

const LATER: &str = "then, in a later transaction (its own migration), ";

/// A table constraint, or a column constraint of ADD COLUMN (`column` set).
pub fn add_constraint(
    table: &ObjectName,
    constraint: &Node,
    report: &mut StatementReport,
    column: Option<&str>,
) {
    let contype = text(constraint, "contype").unwrap_or("");
    let kind = contype.strip_prefix("CONSTR_").unwrap_or(contype);
    let name = text(constraint, "conname");
    let new_table = report.is_new_relation(table);
    if too_long(name) {
        report.report(
            "identifier-too-long",
            format!(
                "constraint name {} is over 63 bytes: PostgreSQL truncates it silently.",
                py_repr(name.unwrap_or(""))
            ),
            Extra {
                target: Some(table.to_string()),
                fix: Some("Choose a name of at most 63 bytes.".into()),
                ..Extra::default()
            },
        );
    }
    let shown = match nonempty(name) {
        Some(name) => format!("constraint {name}"),
        None => format!("a {kind} constraint"),
    };
    let validated = !flag(constraint, "skip_validation");
    note_key_index(table, constraint, report, column);
    if kind == "FOREIGN" {
        foreign_key(table, constraint, report, &shown, validated, column);
        return;
    }
    report.lock(table, LockMode::AccessExclusive, !new_table);
    let or_name = nonempty(name).unwrap_or("<name>");
    if kind == "CHECK" {
        note_not_null_check(table, constraint, name, report, validated);
        if !validated {
            note_not_valid(name, report);
        } else if !new_table && column.is_none() {
            report.report(
                "constraint-missing-not-valid",
                format!(
                    "adding {shown} on {table} checks every row while holding ACCESS EXCLUSIVE \
                     (and fails if a row violates it)."
                ),
                Extra {
                    target: Some(table.to_string()),
                    lock: Some(LockMode::AccessExclusive),
                    fix: Some(format!(
                        "ALTER TABLE {table} ADD CONSTRAINT {or_name} CHECK (...) NOT VALID; \
                         {LATER}ALTER TABLE {table} VALIDATE CONSTRAINT {or_name};"
                    )),
                    ..Extra::default()
                },
            );
        }
    } else if (kind == "UNIQUE" || kind == "PRIMARY") && text(constraint, "indexname").is_none() {
        if new_table {
            return;
        }
        let what = if kind == "UNIQUE" {
            "UNIQUE"
        } else {
            "PRIMARY KEY"
        };
        let rule = if kind == "UNIQUE" {
            "disallowed-unique-constraint"
        } else if column.is_none() {
            "adding-primary-key-constraint"
        } else {
            "adding-serial-primary-key-field"
        };
        let joined = strings(children(constraint, "keys")).join(", ");
        let columns = if !joined.is_empty() {
            joined
        } else {
            nonempty(column).unwrap_or("...").to_string()
        };
        let index = format!("{}_{}_idx", table.name, columns.replace(", ", "_"));
        report.report(
            rule,
            format!(
                "adding {what} {} on {table} builds its index while holding ACCESS EXCLUSIVE: \
                 reads and writes wait for the whole build.",
                nonempty(name).unwrap_or("")
            )
            .replace("  ", " "),
            Extra {
                target: Some(table.to_string()),
                lock: Some(LockMode::AccessExclusive),
                fix: Some(format!(
                    "CREATE UNIQUE INDEX CONCURRENTLY {index} ON {table} ({columns}); then \
                     ALTER TABLE {table} ADD CONSTRAINT {or_name} {what} USING INDEX {index};"
                )),
                ..Extra::default()
            },
        );
    } else if kind == "PRIMARY" && !new_table {
        // USING INDEX: the branch above took every PRIMARY KEY without an index name.
        let using = text(constraint, "indexname").unwrap_or("None");
        report.report(
            "adding-primary-key-using-index",
            format!(
                "PRIMARY KEY USING INDEX {using} on {table} makes its columns NOT NULL: any that \
                 is still nullable is checked by a scan of the whole table while ACCESS \
                 EXCLUSIVE is held."
            ),
            Extra {
                target: Some(table.to_string()),
                lock: Some(LockMode::AccessExclusive),
                fix: Some(format!(
                    "Make the index's columns NOT NULL first without the long lock (ADD \
                     CONSTRAINT ... CHECK (col IS NOT NULL) NOT VALID, VALIDATE it, SET NOT NULL), \
                     then ALTER TABLE {table} ADD CONSTRAINT {or_name} PRIMARY KEY USING INDEX {using};"
                )),
                ..Extra::default()
            },
        );
    } else if kind == "EXCLUSION" && !new_table {
        report.report(
            "adding-exclusion-constraint",
            format!(
                "adding exclusion {shown} on {table} builds its index under ACCESS EXCLUSIVE; \
                 there is no concurrent way to add one."
            ),
            Extra {
                target: Some(table.to_string()),
                lock: Some(LockMode::AccessExclusive),
                fix: Some(
                    "Add it while the table is small, or in a maintenance window with \
                     lock_timeout set; consider a trigger-based check instead."
                        .into(),
                ),
                ..Extra::default()
            },
        );
    } else if kind == "NOTNULL" && column.is_none() {
        if validated {
            for key in strings(children(constraint, "keys")) {
                set_not_null(table, &key, report);
            }
        } else {
            note_not_valid(name, report);
        }
    }
}

/// Python: `_foreign_key(table, constraint, report, shown, *, validated, column)`.
fn foreign_key(
    table: &ObjectName,
    constraint: &Node,
    report: &mut StatementReport,
    shown: &str,
    validated: bool,
    column: Option<&str>,
) {
    let referenced = relation(constraint, "pktable");
    let new_table = report.is_new_relation(table);
    report.lock(table, LockMode::ShareRowExclusive, !new_table);
    if let Some(referenced) = &referenced {
        let preexisting = !report.is_new_relation(referenced);
        report.lock(referenced, LockMode::ShareRowExclusive, preexisting);
    }
    note_foreign_key(table, constraint, report, column);
    if !validated {
        note_not_valid(text(constraint, "conname"), report);
        return;
    }
    if new_table {
        return;
    }
    let name = nonempty(text(constraint, "conname")).unwrap_or("<name>");
    let joined = strings(children(constraint, "fk_attrs")).join(", ");
    let columns = if !joined.is_empty() {
        joined
    } else {
        nonempty(column).unwrap_or("...").to_string()
    };
    let referenced = py_str(referenced.as_ref());
    report.report(
        "adding-foreign-key-constraint",
        format!(
            "adding foreign key {shown} on {table} takes SHARE ROW EXCLUSIVE on {table} and on \
             {referenced} (writes to both wait) while every row is checked."
        ),
        Extra {
            target: Some(table.to_string()),
            lock: Some(LockMode::ShareRowExclusive),
            fix: Some(format!(
                "ALTER TABLE {table} ADD CONSTRAINT {name} FOREIGN KEY ({columns}) REFERENCES \
                 {referenced} NOT VALID; {LATER}ALTER TABLE {table} VALIDATE CONSTRAINT {name};"
            )),
            ..Extra::default()
        },
    );
}

/// Eugene's E15, decided when the change ends (`SqlAnalysis::end_change`): a foreign key
/// whose columns no index on `table` starts with; only a finding kept for later here.
pub fn note_foreign_key(
    table: &ObjectName,
    constraint: &Node,
    report: &mut StatementReport,
    column: Option<&str>,
) {
    if report.file.rollback {
        return;
    }
    let mut columns = strings(children(constraint, "fk_attrs"));
    if columns.is_empty() {
        if let Some(column) = nonempty(column) {
            columns.push(column.to_string());
        }
    }
    let referenced = relation(constraint, "pktable");
    let Some(referenced) = referenced.filter(|_| !columns.is_empty()) else {
        return;
    };
    let shown = columns.join(", ");
    let index = format!("{}_{}_idx", table.name, columns.join("_"));
    let new_table = report.is_new_relation(table);
    let concurrently = if new_table { "" } else { "CONCURRENTLY " };
    let finding = report.finding(
        "foreign-key-missing-index",
        format!(
            "foreign key ({shown}) on {table} references {referenced}, but no index on {table} \
             starts with {shown}: each row deleted from {referenced} (or whose key is changed) \
             makes PostgreSQL scan {table} for the rows that reference it."
        ),
        Extra {
            target: Some(table.to_string()),
            preexisting: Some(!new_table),
            fix: Some(format!(
                "CREATE INDEX {concurrently}{index} ON {table} ({shown});"
            )),
            ..Extra::default()
        },
    );
    if let Some(finding) = finding {
        report
            .analysis
            .scope
            .foreign_keys
            .push((table.key(), columns, finding));
    }
}

/// The index a PRIMARY KEY or UNIQUE constraint builds, under PostgreSQL's default name
/// when the constraint has none (`t_pkey`, `t_a_b_key`).
pub fn note_key_index(
    table: &ObjectName,
    constraint: &Node,
    report: &mut StatementReport,
    column: Option<&str>,
) {
    let kind = text(constraint, "contype");
    if !matches!(kind, Some("CONSTR_PRIMARY" | "CONSTR_UNIQUE"))
        || nonempty(text(constraint, "indexname")).is_some()
    {
        return;
    }
    let mut columns = strings(children(constraint, "keys"));
    if columns.is_empty() {
        if let Some(column) = nonempty(column) {
            columns.push(column.to_string());
        }
    }
    if columns.is_empty() {
        return;
    }
    let name = match nonempty(text(constraint, "conname")) {
        Some(name) => name.to_string(),
        None if kind == Some("CONSTR_PRIMARY") => format!("{}_pkey", table.name),
        None => format!("{}_{}_key", table.name, columns.join("_")),
    };
    let index = ObjectName::new(name, table.schema.clone()).key();
    let keys = columns.into_iter().map(Some).collect();
    report
        .analysis
        .knowledge
        .add_index(&index, &table.key(), keys);
}

/// Python: `_note_not_valid(name, report)`: the transaction a named constraint was added
/// NOT VALID in.
fn note_not_valid(name: Option<&str>, report: &mut StatementReport) {
    if let Some(name) = nonempty(name) {
        let serial = report.analysis.session.transaction_serial;
        report
            .analysis
            .scope
            .not_valid
            .insert(name.to_string(), serial);
    }
}

/// Python: `_note_not_null_check(...)`: a CHECK (col IS NOT NULL), proven now or once the
/// named constraint is validated.
fn note_not_null_check(
    table: &ObjectName,
    constraint: &Node,
    name: Option<&str>,
    report: &mut StatementReport,
    validated: bool,
) {
    let (kind, test) = unwrap(constraint.get("raw_expr"));
    if kind != "NullTest" || text(test, "nulltesttype") != Some("IS_NOT_NULL") {
        return;
    }
    let mut columns = strings(children(child(child(test, "arg"), "ColumnRef"), "fields"));
    if columns.len() != 1 {
        return;
    }
    let column = columns.remove(0);
    if validated {
        report
            .analysis
            .scope
            .proven_not_null
            .insert((table.key(), column));
    } else if let Some(name) = nonempty(name) {
        report
            .analysis
            .scope
            .not_null_checks
            .insert(name.to_string(), (table.key(), column));
    }
}

/// VALIDATE CONSTRAINT: flagged when it runs in the transaction that added it NOT VALID.
pub fn validate_constraint(table: &ObjectName, name: &str, report: &mut StatementReport) {
    let new_table = report.is_new_relation(table);
    report.lock(table, LockMode::ShareUpdateExclusive, !new_table);
    let session = &report.analysis.session;
    let same_transaction = session.in_transaction()
        && report.analysis.scope.not_valid.get(name) == Some(&session.transaction_serial);
    if let Some(proven) = report.analysis.scope.not_null_checks.get(name).cloned() {
        report.analysis.scope.proven_not_null.insert(proven);
    }
    if same_transaction && !new_table {
        report.report(
            "constraint-missing-not-valid",
            format!(
                "VALIDATE CONSTRAINT {name} runs in the same transaction that added it NOT VALID: \
                 the lock taken by ADD CONSTRAINT on {table} is held through the whole scan."
            ),
            Extra {
                target: Some(table.to_string()),
                lock: Some(LockMode::AccessExclusive),
                fix: Some(format!(
                    "Commit after ADD CONSTRAINT ... NOT VALID, and run ALTER TABLE {table} \
                     VALIDATE CONSTRAINT {name}; in a later transaction (its own migration)."
                )),
                ..Extra::default()
            },
        );
    }
}

/// DROP CONSTRAINT: the guarantee (and a UNIQUE's or PRIMARY KEY's index) goes away.
pub fn drop_constraint(table: &ObjectName, command: &Node, report: &mut StatementReport) {
    let name = nonempty(text(command, "name")).unwrap_or("?");
    let new_table = report.is_new_relation(table);
    report.lock(table, LockMode::AccessExclusive, !new_table);
    let index = ObjectName::new(name, table.schema.clone()).key(); // a PRIMARY KEY's or UNIQUE's index
    let knowledge = &mut report.analysis.knowledge;
    if knowledge.index_tables.get(&index) == Some(&table.key()) {
        knowledge.forget_index(&index);
    }
    if !new_table {
        report.report(
            "ban-drop-constraint",
            format!(
                "dropping constraint {name} on {table}: the guarantee it gave (and the index \
                 behind a UNIQUE or PRIMARY KEY) goes away."
            ),
            Extra {
                target: Some(table.to_string()),
                lock: Some(LockMode::AccessExclusive),
                fix: Some(
                    "Drop it only after no code relies on it; keep the down script able to \
                     re-create it (NOT VALID, then VALIDATE)."
                        .into(),
                ),
                ..Extra::default()
            },
        );
    }
    report.robust(
        !flag(command, "missing_ok"),
        &format!("DROP CONSTRAINT {name} without IF EXISTS"),
        &format!("ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name}"),
        table.to_string(),
    );
}

/// SET NOT NULL: a full scan under ACCESS EXCLUSIVE unless a valid CHECK proves it.
pub fn set_not_null(table: &ObjectName, column: &str, report: &mut StatementReport) {
    let new_table = report.is_new_relation(table);
    report.lock(table, LockMode::AccessExclusive, !new_table);
    let pg = report.analysis.options.pg_version;
    if new_table
        || (pg >= 12
            && report
                .analysis
                .scope
                .proven_not_null
                .contains(&(table.key(), column.to_string())))
    {
        return;
    }
    let check = format!("{}_{column}_not_null", table.name);
    let fix = if pg >= 18 {
        format!(
            "ALTER TABLE {table} ADD CONSTRAINT {check} NOT NULL {column} NOT VALID; \
             {LATER}ALTER TABLE {table} VALIDATE CONSTRAINT {check};"
        )
    } else if pg >= 12 {
        format!(
            "ALTER TABLE {table} ADD CONSTRAINT {check} CHECK ({column} IS NOT NULL) NOT \
             VALID; {LATER}VALIDATE CONSTRAINT {check}; then SET NOT NULL (no scan: the \
             valid check proves it) and DROP CONSTRAINT {check}."
        )
    } else {
        format!(
            "Before PostgreSQL 12 SET NOT NULL always scans: keep a CHECK ({column} IS NOT \
             NULL) constraint added NOT VALID and validated later instead."
        )
    };
    report.report(
        "adding-not-nullable-field",
        format!(
            "SET NOT NULL on {table}.{column} scans the whole table while holding ACCESS \
             EXCLUSIVE (and fails if a NULL is found)."
        ),
        Extra {
            target: Some(table.to_string()),
            lock: Some(LockMode::AccessExclusive),
            fix: Some(fix),
            ..Extra::default()
        },
    );
}

/// CREATE DOMAIN: a new type of this change; a CHECK on it is flagged.
pub fn create_domain(node: &Node, report: &mut StatementReport) {
    let name = ObjectName::from_parts(&strings(children(node, "domainname")));
    let key = name.key();
    report
        .analysis
        .scope
        .created
        .insert((Namespace::Type, key.clone()));
    report
        .analysis
        .soften_drop(Namespace::Type, &key, "by this change");
    let has_check = children(node, "constraints")
        .iter()
        .any(|c| text(unwrap(Some(c)).1, "contype") == Some("CONSTR_CHECK"));
    if has_check {
        report.report(
            "ban-create-domain-with-constraint",
            format!(
                "domain {name} has a CHECK: changing it later re-checks every column of that \
                 domain, under locks."
            ),
            Extra {
                target: Some(name.to_string()),
                fix: Some(
                    "Put the CHECK on the table columns instead, where it can be added NOT VALID \
                     and validated later."
                        .into(),
                ),
                ..Extra::default()
            },
        );
    }
}

/// ALTER DOMAIN ... ADD CONSTRAINT (validated): checks every column using the domain.
pub fn alter_domain(node: &Node, report: &mut StatementReport) {
    let name = ObjectName::from_parts(&strings(children(node, "typeName")));
    if text(node, "subtype") != Some("C") {
        return;
    }
    let constraint = unwrap(node.get("def")).1;
    if flag(constraint, "skip_validation") || report.is_new(&name, Namespace::Type) {
        return;
    }
    report.report(
        "ban-alter-domain-with-add-constraint",
        format!(
            "ALTER DOMAIN {name} ADD CONSTRAINT checks every column of every table that uses the \
             domain, holding their locks."
        ),
        Extra {
            target: Some(name.to_string()),
            fix: Some(format!(
                "ALTER DOMAIN {name} ADD CONSTRAINT ... NOT VALID; {LATER}ALTER DOMAIN {name} \
                 VALIDATE CONSTRAINT ...;"
            )),
            ..Extra::default()
        },
    );
}
