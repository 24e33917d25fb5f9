"""Constraints: added NOT VALID and validated later, or built under a lock with a full scan.

The safe sequence is the same for CHECK, FOREIGN KEY and (PostgreSQL 18) NOT NULL: add it
NOT VALID (a brief lock, no scan), then VALIDATE it in a later transaction (SHARE UPDATE
EXCLUSIVE: reads and writes go on). UNIQUE and PRIMARY KEY are built as an index
CONCURRENTLY first, then attached with USING INDEX.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from schemas.events.enums import LockMode
from services.migration.domain.change_state import Namespace
from services.migration.domain.sql_nodes import (
    Node,
    ObjectName,
    child,
    children,
    flag,
    relation,
    strings,
    text,
    too_long,
    unwrap,
)

if TYPE_CHECKING:
    from services.migration.domain.sql_analysis import StatementReport

_LATER = "then, in a later transaction (its own migration), "


def add_constraint(table: ObjectName, constraint: Node, report: StatementReport,
                   *, column: str | None = None) -> None:
    """A table constraint, or a column constraint of ADD COLUMN (`column` set)."""
    kind = (text(constraint, "contype") or "").removeprefix("CONSTR_")
    name = text(constraint, "conname")
    new_table = report.is_new(table)
    if too_long(name):
        report.report("identifier-too-long", f"constraint name {name!r} is over 63 bytes: "
                      "PostgreSQL truncates it silently.", target=table,
                      fix="Choose a name of at most 63 bytes.")
    shown = f"constraint {name}" if name else f"a {kind} constraint"
    validated = not flag(constraint, "skip_validation")
    note_key_index(table, constraint, report, column=column)
    if kind == "FOREIGN":
        _foreign_key(table, constraint, report, shown, validated=validated, column=column)
        return
    report.lock(table, LockMode.ACCESS_EXCLUSIVE, preexisting=not new_table)
    if kind == "CHECK":
        _note_not_null_check(table, constraint, name, report, validated=validated)
        if not validated:
            _note_not_valid(name, report)
        elif not new_table and column is None:
            report.report(
                "constraint-missing-not-valid",
                f"adding {shown} on {table} checks every row while holding ACCESS EXCLUSIVE "
                "(and fails if a row violates it).", target=table,
                lock=LockMode.ACCESS_EXCLUSIVE,
                fix=f"ALTER TABLE {table} ADD CONSTRAINT {name or '<name>'} CHECK (...) "
                    f"NOT VALID; {_LATER}ALTER TABLE {table} VALIDATE CONSTRAINT "
                    f"{name or '<name>'};")
    elif kind in {"UNIQUE", "PRIMARY"} and text(constraint, "indexname") is None:
        if new_table:
            return
        what = "UNIQUE" if kind == "UNIQUE" else "PRIMARY KEY"
        rule = "disallowed-unique-constraint" if kind == "UNIQUE" else (
            "adding-primary-key-constraint" if column is None else
            "adding-serial-primary-key-field")
        columns = ", ".join(strings(children(constraint, "keys"))) or column or "..."
        index = f"{table.name}_{columns.replace(', ', '_')}_idx"
        report.report(
            rule, f"adding {what} {name or ''} on {table} builds its index while holding "
            "ACCESS EXCLUSIVE: reads and writes wait for the whole build.".replace("  ", " "),
            target=table, lock=LockMode.ACCESS_EXCLUSIVE,
            fix=f"CREATE UNIQUE INDEX CONCURRENTLY {index} ON {table} ({columns}); then "
                f"ALTER TABLE {table} ADD CONSTRAINT {name or '<name>'} {what} USING INDEX "
                f"{index};")
    elif kind == "PRIMARY" and not new_table:  # USING INDEX
        using = text(constraint, "indexname")
        report.report(
            "adding-primary-key-using-index", f"PRIMARY KEY USING INDEX {using} on {table} "
            "makes its columns NOT NULL: any that is still nullable is checked by a scan of "
            "the whole table while ACCESS EXCLUSIVE is held.", target=table,
            lock=LockMode.ACCESS_EXCLUSIVE,
            fix=f"Make the index's columns NOT NULL first without the long lock (ADD "
                f"CONSTRAINT ... CHECK (col IS NOT NULL) NOT VALID, VALIDATE it, SET NOT NULL), "
                f"then ALTER TABLE {table} ADD CONSTRAINT {name or '<name>'} PRIMARY KEY USING "
                f"INDEX {using};")
    elif kind == "EXCLUSION" and not new_table:
        report.report(
            "adding-exclusion-constraint", f"adding exclusion {shown} on {table} builds its "
            "index under ACCESS EXCLUSIVE; there is no concurrent way to add one.",
            target=table, lock=LockMode.ACCESS_EXCLUSIVE,
            fix="Add it while the table is small, or in a maintenance window with "
                "lock_timeout set; consider a trigger-based check instead.")
    elif kind == "NOTNULL" and column is None:
        if validated:
            for key in strings(children(constraint, "keys")):
                set_not_null(table, key, report)
        else:
            _note_not_valid(name, report)


def _foreign_key(table: ObjectName, constraint: Node, report: StatementReport, shown: str,
                 *, validated: bool, column: str | None) -> None:
    referenced = relation(constraint, "pktable")
    new_table = report.is_new(table)
    report.lock(table, LockMode.SHARE_ROW_EXCLUSIVE, preexisting=not new_table)
    if referenced is not None:
        report.lock(referenced, LockMode.SHARE_ROW_EXCLUSIVE,
                    preexisting=not report.is_new(referenced))
    note_foreign_key(table, constraint, report, column=column)
    if not validated:
        _note_not_valid(text(constraint, "conname"), report)
        return
    if new_table:
        return
    name = text(constraint, "conname") or "<name>"
    columns = ", ".join(strings(children(constraint, "fk_attrs"))) or column or "..."
    report.report(
        "adding-foreign-key-constraint",
        f"adding foreign key {shown} on {table} takes SHARE ROW EXCLUSIVE on {table} and on "
        f"{referenced} (writes to both wait) while every row is checked.", target=table,
        lock=LockMode.SHARE_ROW_EXCLUSIVE,
        fix=f"ALTER TABLE {table} ADD CONSTRAINT {name} FOREIGN KEY ({columns}) REFERENCES "
            f"{referenced} NOT VALID; {_LATER}ALTER TABLE {table} VALIDATE CONSTRAINT {name};")


def note_foreign_key(table: ObjectName, constraint: Node, report: StatementReport,
                     *, column: str | None) -> None:
    """Eugene's E15, decided when the change ends (`SqlAnalysis.end_change`): a foreign key
    whose columns no index on `table` starts with. Every DELETE, and every UPDATE of the key,
    on the referenced table then scans `table` for referencing rows (holding their row
    locks). Only reported for a table whose definition the analysis read, so its indexes
    are known."""
    if report.file.rollback:
        return
    columns = tuple(strings(children(constraint, "fk_attrs"))) or (
        (column,) if column else ())
    referenced = relation(constraint, "pktable")
    if not columns or referenced is None:
        return
    shown = ", ".join(columns)
    index = f"{table.name}_{'_'.join(columns)}_idx"
    concurrently = "" if report.is_new(table) else "CONCURRENTLY "
    finding = report.finding(
        "foreign-key-missing-index",
        f"foreign key ({shown}) on {table} references {referenced}, but no index on {table} "
        f"starts with {shown}: each row deleted from {referenced} (or whose key is changed) "
        f"makes PostgreSQL scan {table} for the rows that reference it.", target=table,
        preexisting=not report.is_new(table),
        fix=f"CREATE INDEX {concurrently}{index} ON {table} ({shown});")
    if finding is not None:
        report.scope.foreign_keys.append((table.key, columns, finding))


def note_key_index(table: ObjectName, constraint: Node, report: StatementReport,
                   *, column: str | None = None) -> None:
    """The index a PRIMARY KEY or UNIQUE constraint builds, under PostgreSQL's default name
    when the constraint has none (`t_pkey`, `t_a_b_key`)."""
    kind = text(constraint, "contype")
    if kind not in {"CONSTR_PRIMARY", "CONSTR_UNIQUE"} or text(constraint, "indexname"):
        return
    columns = tuple(strings(children(constraint, "keys"))) or ((column,) if column else ())
    if not columns:
        return
    name = text(constraint, "conname") or (
        f"{table.name}_pkey" if kind == "CONSTR_PRIMARY" else
        f"{table.name}_{'_'.join(columns)}_key")
    report.knowledge.add_index(ObjectName(name, table.schema).key, table.key, columns)


def _note_not_valid(name: str | None, report: StatementReport) -> None:
    if name:
        report.scope.not_valid[name] = report.session.transaction_serial


def _note_not_null_check(table: ObjectName, constraint: Node, name: str | None,
                         report: StatementReport, *, validated: bool) -> None:
    kind, test = unwrap(constraint.get("raw_expr"))
    if kind != "NullTest" or text(test, "nulltesttype") != "IS_NOT_NULL":
        return
    columns = strings(children(child(child(test, "arg"), "ColumnRef"), "fields"))
    if len(columns) != 1:
        return
    if validated:
        report.scope.proven_not_null.add((table.key, columns[0]))
    elif name:
        report.scope.not_null_checks[name] = (table.key, columns[0])


def validate_constraint(table: ObjectName, name: str, report: StatementReport) -> None:
    new_table = report.is_new(table)
    report.lock(table, LockMode.SHARE_UPDATE_EXCLUSIVE, preexisting=not new_table)
    same_transaction = (report.session.in_transaction
                        and report.scope.not_valid.get(name) == report.session.transaction_serial)
    if name in report.scope.not_null_checks:
        report.scope.proven_not_null.add(report.scope.not_null_checks[name])
    if same_transaction and not new_table:
        report.report(
            "constraint-missing-not-valid",
            f"VALIDATE CONSTRAINT {name} runs in the same transaction that added it NOT VALID: "
            f"the lock taken by ADD CONSTRAINT on {table} is held through the whole scan.",
            target=table, lock=LockMode.ACCESS_EXCLUSIVE,
            fix=f"Commit after ADD CONSTRAINT ... NOT VALID, and run ALTER TABLE {table} "
                f"VALIDATE CONSTRAINT {name}; in a later transaction (its own migration).")


def drop_constraint(table: ObjectName, command: Node, report: StatementReport) -> None:
    name = text(command, "name") or "?"
    new_table = report.is_new(table)
    report.lock(table, LockMode.ACCESS_EXCLUSIVE, preexisting=not new_table)
    index = ObjectName(name, table.schema).key  # a PRIMARY KEY's or UNIQUE's index
    if report.knowledge.index_tables.get(index) == table.key:
        report.knowledge.forget_index(index)
    if not new_table:
        report.report("ban-drop-constraint", f"dropping constraint {name} on {table}: the "
                      "guarantee it gave (and the index behind a UNIQUE or PRIMARY KEY) goes "
                      "away.", target=table, lock=LockMode.ACCESS_EXCLUSIVE,
                      fix="Drop it only after no code relies on it; keep the down script able "
                          "to re-create it (NOT VALID, then VALIDATE).")
    report.robust(not flag(command, "missing_ok"), f"DROP CONSTRAINT {name} without IF EXISTS",
                  f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name}", table)


def set_not_null(table: ObjectName, column: str, report: StatementReport) -> None:
    new_table = report.is_new(table)
    report.lock(table, LockMode.ACCESS_EXCLUSIVE, preexisting=not new_table)
    pg = report.options.pg_version
    if new_table or (pg >= 12 and (table.key, column) in report.scope.proven_not_null):
        return
    check = f"{table.name}_{column}_not_null"
    if pg >= 18:
        fix = (f"ALTER TABLE {table} ADD CONSTRAINT {check} NOT NULL {column} NOT VALID; "
               f"{_LATER}ALTER TABLE {table} VALIDATE CONSTRAINT {check};")
    elif pg >= 12:
        fix = (f"ALTER TABLE {table} ADD CONSTRAINT {check} CHECK ({column} IS NOT NULL) NOT "
               f"VALID; {_LATER}VALIDATE CONSTRAINT {check}; then SET NOT NULL (no scan: the "
               f"valid check proves it) and DROP CONSTRAINT {check}.")
    else:
        fix = (f"Before PostgreSQL 12 SET NOT NULL always scans: keep a CHECK ({column} IS NOT "
               "NULL) constraint added NOT VALID and validated later instead.")
    report.report(
        "adding-not-nullable-field", f"SET NOT NULL on {table}.{column} scans the whole table "
        "while holding ACCESS EXCLUSIVE (and fails if a NULL is found).", target=table,
        lock=LockMode.ACCESS_EXCLUSIVE, fix=fix)


def create_domain(node: Node, report: StatementReport) -> None:
    name = ObjectName.from_parts(strings(children(node, "domainname")))
    report.scope.created.add((Namespace.TYPE, name.key))
    report.analysis.soften_drop(Namespace.TYPE, name.key, "by this change")
    checks = [c for c in children(node, "constraints")
              if text(unwrap(c)[1], "contype") == "CONSTR_CHECK"]
    if checks:
        report.report("ban-create-domain-with-constraint", f"domain {name} has a CHECK: "
                      "changing it later re-checks every column of that domain, under locks.",
                      target=name, fix="Put the CHECK on the table columns instead, where it "
                                       "can be added NOT VALID and validated later.")


def alter_domain(node: Node, report: StatementReport) -> None:
    name = ObjectName.from_parts(strings(children(node, "typeName")))
    if text(node, "subtype") != "C":
        return
    constraint = unwrap(node.get("def"))[1]
    if flag(constraint, "skip_validation") or report.is_new(name, Namespace.TYPE):
        return
    report.report(
        "ban-alter-domain-with-add-constraint", f"ALTER DOMAIN {name} ADD CONSTRAINT checks "
        "every column of every table that uses the domain, holding their locks.",
        target=name, fix=f"ALTER DOMAIN {name} ADD CONSTRAINT ... NOT VALID; {_LATER}"
                         f"ALTER DOMAIN {name} VALIDATE CONSTRAINT ...;")


HANDLERS = {"CreateDomainStmt": create_domain, "AlterDomainStmt": alter_domain}
