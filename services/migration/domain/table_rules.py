"""CREATE TABLE, LOCK TABLE, and ALTER TABLE dispatched by subcommand to the rule for it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from schemas.events.enums import LockMode
from services.migration.domain import column_rules, constraint_rules, data_rules
from services.migration.domain.change_state import Namespace
from services.migration.domain.column_types import TypeRef, aligned_order, row_padding
from services.migration.domain.index_rules import OUTSIDE_TRANSACTION_FIX
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

Subcommand = Callable[[ObjectName, Node, "StatementReport"], None]


def create_table(node: Node, report: StatementReport) -> None:
    table = relation(node)
    if table is None or child(node, "relation").get("relpersistence") == "t":
        return
    report.scope.created.add((Namespace.RELATION, table.key))
    report.analysis.soften_drop(Namespace.RELATION, table.key, "by this change")
    if too_long(table.name):
        report.report("identifier-too-long", f"table name {table.name!r} is over 63 bytes: "
                      "PostgreSQL truncates it silently.", target=table,
                      fix="Choose a name of at most 63 bytes.")
    report.robust(not flag(node, "if_not_exists"), f"CREATE TABLE {table} without IF NOT "
                  "EXISTS", f"CREATE TABLE IF NOT EXISTS {table} (...)", table)
    keys: set[str] = set()
    elements = [unwrap(e) for e in children(node, "tableElts")]
    for kind, element in elements:
        if kind == "Constraint" and text(element, "contype") in {"CONSTR_PRIMARY",
                                                                 "CONSTR_FOREIGN"}:
            keys |= set(strings(children(element, "keys")))
            keys |= set(strings(children(element, "fk_attrs")))
    data_rules.named_twice([text(e, "colname") or "?" for kind, e in elements
                            if kind == "ColumnDef"], f"CREATE TABLE {table}", report)
    columns = report.knowledge.columns.setdefault(table.key, {})
    columns.clear()
    for kind, element in elements:
        if kind == "ColumnDef":
            name = text(element, "colname") or "?"
            columns[name] = TypeRef.from_node(child(element, "typeName"))
            column_rules.advise_column_type(table, element, report, key=name in keys)
            for constraint in column_rules.column_constraints(element):
                _table_constraint(table, constraint, report, column=name)
        elif kind == "Constraint":
            _table_constraint(table, element, report)
    _column_order(table, elements, report)


ALIGNMENT_WASTE_BYTES = 8
"""Padding per row worth a finding: one whole 8-byte word that a reorder would save."""


def _column_order(table: ObjectName, elements: list[tuple[str, Node]],
                  report: StatementReport) -> None:
    """Atlas's PG110: PostgreSQL stores columns in the order written, each aligned to its
    type (8 bytes for bigint and timestamptz, 4 for integer...), so a boolean or integer
    before a bigint leaves padding in every row, on disk and in memory. A new table's
    columns are free to reorder; an existing table's are not."""
    columns = [(text(e, "colname") or "?", TypeRef.from_node(child(e, "typeName")))
               for kind, e in elements if kind == "ColumnDef"]
    if len(columns) < 3:
        return
    types = [t for _, t in columns]
    order = aligned_order(types)
    saved = row_padding(types) - row_padding([types[i] for i in order])
    if saved < ALIGNMENT_WASTE_BYTES:
        return
    report.report(
        "non-optimal-column-alignment", f"the column order of {table} leaves about {saved} "
        "bytes of alignment padding in every row that another order avoids.", target=table,
        preexisting=False,
        fix="Order the columns by alignment, widest first: " + ", ".join(
            f"{columns[i][0]} {columns[i][1]}" for i in order) + ".")


def _table_constraint(table: ObjectName, constraint: Node, report: StatementReport,
                      *, column: str | None = None) -> None:
    constraint_rules.note_key_index(table, constraint, report, column=column)
    if text(constraint, "contype") == "CONSTR_FOREIGN":
        constraint_rules.note_foreign_key(table, constraint, report, column=column)
    _lock_referenced(constraint, report)


def _lock_referenced(constraint: Node, report: StatementReport) -> None:
    """A new table's foreign key still locks the table it references (briefly, no scan)."""
    referenced = relation(constraint, "pktable")
    if referenced is not None:
        report.lock(referenced, LockMode.SHARE_ROW_EXCLUSIVE,
                    preexisting=not report.is_new(referenced))


def create_table_as(node: Node, report: StatementReport) -> None:
    table = relation(child(node, "into"), "rel")
    data_rules.named_twice(strings(children(child(node, "into"), "colNames")),
                           f"CREATE TABLE {table} AS", report)
    if table is not None:
        report.scope.created.add((Namespace.RELATION, table.key))
        report.analysis.soften_drop(Namespace.RELATION, table.key, "by this change")


def lock_table(node: Node, report: StatementReport) -> None:
    modes = list(LockMode)
    mode = modes[int(node.get("mode", 8)) - 1] if 1 <= int(node.get("mode", 8)) <= 8 \
        else LockMode.ACCESS_EXCLUSIVE
    for item in children(node, "relations"):
        range_var = unwrap(item)[1]
        name = text(range_var, "relname")
        if name is None:
            continue
        table = ObjectName(name, text(range_var, "schemaname"))
        new = report.is_new(table)
        report.lock(table, mode, preexisting=not new)
        if not new and modes.index(mode) >= modes.index(LockMode.SHARE):
            report.report("explicit-table-lock", f"LOCK TABLE {table} IN "
                          f"{mode.value.upper().replace('_', ' ')} MODE blocks writes until the "
                          "transaction ends.", target=table, lock=mode,
                          fix="Take the weakest lock that protects what the migration needs, "
                              "with lock_timeout set, and keep the transaction short.")


def alter_table(node: Node, report: StatementReport) -> None:
    table = relation(node)
    if table is None or text(node, "objtype") not in {None, "OBJECT_TABLE", "OBJECT_MATVIEW"}:
        return
    if not report.is_new(table) and text(node, "objtype") != "OBJECT_MATVIEW":
        _once_per_table(table, report)
    for item in children(node, "cmds"):
        command = unwrap(item)[1]
        subtype = (text(command, "subtype") or "").removeprefix("AT_")
        handler = _SUBCOMMANDS.get(subtype)
        if handler is not None:
            handler(table, command, report)
        else:
            report.lock(table, _LOCKS.get(subtype, LockMode.ACCESS_EXCLUSIVE),
                        preexisting=not report.is_new(table))


def _once_per_table(table: ObjectName, report: StatementReport) -> None:
    """Eugene's W12: each ALTER TABLE on a pre-existing table takes its lock again (and a
    scan or rewrite each, when its actions need one); one statement with all the actions
    queues once and does the work once."""
    statement = report.statement
    start, line = report.analysis.altered.setdefault(table.key, (statement.start,
                                                                 statement.line))
    if start == statement.start:
        return
    report.report(
        "multiple-alter-table", f"another ALTER TABLE on {table} in this file (the first is at "
        f"line {line}): each one queues for the lock again, and does its own scan or rewrite "
        "when its actions need one.", target=table,
        fix=f"Combine the actions into one statement: ALTER TABLE {table} <action>, <action>, "
            "...;")


def _add_constraint(table: ObjectName, command: Node, report: StatementReport) -> None:
    constraint_rules.add_constraint(table, unwrap(command.get("def"))[1], report)


def _validate(table: ObjectName, command: Node, report: StatementReport) -> None:
    constraint_rules.validate_constraint(table, text(command, "name") or "?", report)


def _set_not_null(table: ObjectName, command: Node, report: StatementReport) -> None:
    constraint_rules.set_not_null(table, text(command, "name") or "?", report)


def _rewrite_table(what: str, rule: str) -> Subcommand:
    def check(table: ObjectName, command: Node, report: StatementReport) -> None:
        new = report.is_new(table)
        report.lock(table, LockMode.ACCESS_EXCLUSIVE, preexisting=not new)
        if not new:
            report.report(rule, f"{what} rewrites {table} under ACCESS EXCLUSIVE.",
                          target=table, lock=LockMode.ACCESS_EXCLUSIVE,
                          fix="Create the new table alongside, copy in batches, and swap, or "
                              "run it in a maintenance window.")
    return check


def _triggers(table: ObjectName, command: Node, report: StatementReport) -> None:
    new = report.is_new(table)
    report.lock(table, LockMode.SHARE_ROW_EXCLUSIVE, preexisting=not new)
    subtype = text(command, "subtype") or ""
    if subtype.startswith("AT_DisableTrig") and not new:
        which = text(command, "name") or ("ALL" if subtype.endswith("All") else "USER")
        report.report("ban-disable-trigger", f"DISABLE TRIGGER {which} on {table}: writes skip "
                      "it from now on" + (" (ALL includes foreign-key checks)."
                                          if which == "ALL" else "."),
                      target=table, lock=LockMode.SHARE_ROW_EXCLUSIVE,
                      fix="Re-enable it in the same transaction, or drop the trigger on "
                          "purpose; never leave foreign-key triggers off.")


def _detach_partition(table: ObjectName, command: Node, report: StatementReport) -> None:
    partition_command = unwrap(command.get("def"))[1]
    partition = relation(partition_command, "name")
    new = report.is_new(table)
    if flag(partition_command, "concurrent"):
        report.lock(table, LockMode.SHARE_UPDATE_EXCLUSIVE, preexisting=not new)
        if report.session.in_transaction:
            report.report("cannot-run-in-transaction", f"DETACH PARTITION {partition} "
                          "CONCURRENTLY cannot run inside a transaction block.", target=table,
                          fix=OUTSIDE_TRANSACTION_FIX, preexisting=not new)
        return
    report.lock(table, LockMode.ACCESS_EXCLUSIVE, preexisting=not new)
    if not new and report.options.pg_version >= 14:
        report.report("require-concurrent-partition-detach", f"DETACH PARTITION {partition} "
                      f"takes ACCESS EXCLUSIVE on {table}: reads and writes wait.",
                      target=table, lock=LockMode.ACCESS_EXCLUSIVE,
                      fix=f"ALTER TABLE {table} DETACH PARTITION {partition} CONCURRENTLY; "
                          "outside a transaction block.")


_SUBCOMMANDS: dict[str, Subcommand] = {
    "AddColumn": column_rules.add_column,
    "AlterColumnType": column_rules.alter_column_type,
    "DropColumn": column_rules.drop_column,
    "DropNotNull": column_rules.drop_not_null,
    "SetNotNull": _set_not_null,
    "ColumnDefault": column_rules.column_default,
    "AddIdentity": column_rules.alter_identity,
    "SetIdentity": column_rules.alter_identity,
    "DropIdentity": column_rules.alter_identity,
    "DropExpression": column_rules.drop_expression,
    "AddConstraint": _add_constraint,
    "ValidateConstraint": _validate,
    "DropConstraint": constraint_rules.drop_constraint,
    "SetLogged": _rewrite_table("SET LOGGED", "changing-table-persistence"),
    "SetUnLogged": _rewrite_table("SET UNLOGGED", "changing-table-persistence"),
    "SetTableSpace": _rewrite_table("SET TABLESPACE", "changing-tablespace"),
    "DetachPartition": _detach_partition,
    **dict.fromkeys(("EnableTrig", "EnableAlwaysTrig", "EnableReplicaTrig", "DisableTrig",
                     "EnableTrigAll", "DisableTrigAll", "EnableTrigUser", "DisableTrigUser"),
                    _triggers),
}

_LOCKS = {
    "SetStatistics": LockMode.SHARE_UPDATE_EXCLUSIVE,
    "SetRelOptions": LockMode.SHARE_UPDATE_EXCLUSIVE,
    "ResetRelOptions": LockMode.SHARE_UPDATE_EXCLUSIVE,
    "ClusterOn": LockMode.SHARE_UPDATE_EXCLUSIVE,
    "DropCluster": LockMode.SHARE_UPDATE_EXCLUSIVE,
    "AttachPartition": LockMode.SHARE_UPDATE_EXCLUSIVE,
    "ReplicaIdentity": LockMode.ACCESS_EXCLUSIVE,
}
"""Lock levels of the subcommands no rule looks at (ALTER TABLE's documented levels)."""


HANDLERS = {"CreateStmt": create_table, "CreateTableAsStmt": create_table_as,
            "LockStmt": lock_table, "AlterTableStmt": alter_table}
