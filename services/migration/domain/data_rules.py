"""Statements on the rows themselves: TRUNCATE, DELETE, UPDATE, and the table rewrites of
VACUUM FULL and CLUSTER. None of them matter on a table the same change created."""

from __future__ import annotations

from typing import TYPE_CHECKING

from schemas.events.enums import LockMode
from services.migration.domain.findings import Effect
from services.migration.domain.index_rules import OUTSIDE_TRANSACTION_FIX
from services.migration.domain.sql_nodes import (
    IDENTIFIER_MAX_BYTES,
    Node,
    ObjectName,
    children,
    defelem_names,
    flag,
    relation,
    text,
    unwrap,
)

if TYPE_CHECKING:
    from services.migration.domain.sql_analysis import StatementReport

_BATCHES = ("Run it in batches outside the migration (a job, or a later migration per batch: "
            "UPDATE ... WHERE id BETWEEN ... AND ...), so no transaction holds row locks for "
            "long.")


def _range_vars(node: Node, key: str) -> list[ObjectName]:
    names = []
    for item in children(node, key):
        kind, inner = unwrap(item)
        if kind == "VacuumRelation":
            inner = unwrap({"RangeVar": inner.get("relation")})[1]
        name = text(inner, "relname")
        if name is not None:
            names.append(ObjectName(name, text(inner, "schemaname")))
    return names


def truncate(node: Node, report: StatementReport) -> None:
    cascade = text(node, "behavior") == "DROP_CASCADE"
    for table in _range_vars(node, "relations"):
        new = report.is_new(table)
        report.lock(table, LockMode.ACCESS_EXCLUSIVE, preexisting=not new)
        if new:
            continue
        if cascade:
            report.report("ban-truncate-cascade", f"TRUNCATE {table} CASCADE empties {table} "
                          "and every table whose foreign keys reference it.", target=table,
                          lock=LockMode.ACCESS_EXCLUSIVE,
                          fix="Name every table to empty explicitly, after a backup.")
        else:
            report.report("ban-truncate", f"TRUNCATE {table} deletes every row.", target=table,
                          lock=LockMode.ACCESS_EXCLUSIVE,
                          fix="Delete only what must go, in batches, after a backup.")


def delete(node: Node, report: StatementReport) -> None:
    table = relation(node)
    if table is None or report.is_new(table):
        return
    report.lock(table, LockMode.ROW_EXCLUSIVE, preexisting=True)
    if node.get("whereClause") is None:
        report.report("ban-delete-without-where", f"DELETE FROM {table} without WHERE deletes "  # noqa: S608 (a message)
                      "every row.", target=table, lock=LockMode.ROW_EXCLUSIVE,
                      fix="Add the WHERE clause you mean, back the rows up, delete in batches.")
    else:
        report.report("backfill-in-migration", f"DELETE FROM {table} WHERE ...: locks every "  # noqa: S608 (a message)
                      "matching row until the migration commits.", target=table,
                      lock=LockMode.ROW_EXCLUSIVE, fix=_BATCHES)


def named_twice(names: list[str], what: str, report: StatementReport) -> None:
    """squawk's ban-duplicate-column-assignments: PostgreSQL rejects a statement that names
    a column twice (names are compared as stored: cut to 63 bytes)."""
    seen: set[bytes] = set()
    twice: list[str] = []
    for name in names:
        stored = name.encode()[:IDENTIFIER_MAX_BYTES]
        if stored in seen and name not in twice:
            twice.append(name)
        seen.add(stored)
    if twice:
        shown = ", ".join(twice)
        report.report("ban-duplicate-column-assignments", f"{what} names column(s) {shown} "
                      "more than once: PostgreSQL rejects the statement.",
                      fix=f"Name each column once in {what}.")


def _assigned(targets: list[object]) -> list[str]:
    """The columns a SET list or an INSERT column list assigns whole (`a[1] = ...` and
    `a.f = ...` assign part of a column, and may repeat it)."""
    names = []
    for item in targets:
        target = unwrap(item)[1]
        name = text(target, "name")
        if name is not None and not target.get("indirection"):
            names.append(name)
    return names


def insert(node: Node, report: StatementReport) -> None:
    """Only its column list is decoded (`FIELDS_READ`)."""
    named_twice(_assigned(children(node, "cols")), "the INSERT column list", report)


def update(node: Node, report: StatementReport) -> None:
    named_twice(_assigned(children(node, "targetList")), "UPDATE ... SET", report)
    table = relation(node)
    if table is None or report.is_new(table):
        return
    report.lock(table, LockMode.ROW_EXCLUSIVE, preexisting=True)
    columns = {text(unwrap(t)[1], "name") for t in children(node, "targetList")}
    only_new = bool(columns) and all((table.key, c) in report.scope.added_columns
                                     for c in columns)
    shown = ", ".join(sorted(c for c in columns if c))
    if node.get("whereClause") is not None:
        report.report("backfill-in-migration", f"UPDATE {table} SET {shown} WHERE ...: a "  # noqa: S608 (a message)
                      "backfill that locks every matching row until the migration commits.",
                      target=table, lock=LockMode.ROW_EXCLUSIVE, fix=_BATCHES)
    elif only_new:
        report.report("backfill-in-migration", f"UPDATE {table} SET {shown} without WHERE: a "  # noqa: S608 (a message)
                      "full-table backfill of column(s) this change adds; every row is "
                      "locked and rewritten in one transaction.", target=table,
                      lock=LockMode.ROW_EXCLUSIVE, fix=_BATCHES)
    else:
        report.report("ban-update-without-where", f"UPDATE {table} SET {shown} without WHERE "  # noqa: S608 (a message)
                      "overwrites the column(s) in every row.", target=table,
                      lock=LockMode.ROW_EXCLUSIVE, effect=Effect.DATA_LOSS,
                      fix="Add the WHERE clause you mean; back the values up first.")


def vacuum(node: Node, report: StatementReport) -> None:
    if not flag(node, "is_vacuumcmd"):
        return  # ANALYZE: runs anywhere, takes SHARE UPDATE EXCLUSIVE
    if report.session.in_transaction:
        report.report("cannot-run-in-transaction", "VACUUM cannot run inside a transaction "
                      "block.", fix=OUTSIDE_TRANSACTION_FIX)
    if "full" not in defelem_names(node, "options"):
        return
    for table in _range_vars(node, "rels"):
        _rewrite(table, "VACUUM FULL", report)


def cluster(node: Node, report: StatementReport) -> None:
    table = relation(node)
    if table is None:
        if report.session.in_transaction:
            report.report("cannot-run-in-transaction", "CLUSTER without a table cannot run "
                          "inside a transaction block.", fix=OUTSIDE_TRANSACTION_FIX)
        return
    _rewrite(table, "CLUSTER", report)


def _rewrite(table: ObjectName, what: str, report: StatementReport) -> None:
    new = report.is_new(table)
    report.lock(table, LockMode.ACCESS_EXCLUSIVE, preexisting=not new)
    if not new:
        report.report("prefer-repack", f"{what} {table} rewrites the table under ACCESS "
                      "EXCLUSIVE: reads and writes wait until it is done.", target=table,
                      lock=LockMode.ACCESS_EXCLUSIVE,
                      fix=f"pg_repack (or pg_squeeze) on {table}, which holds the lock only "
                          "briefly; or plain VACUUM if reclaiming space is not essential.")


HANDLERS = {"TruncateStmt": truncate, "DeleteStmt": delete, "UpdateStmt": update,
            "VacuumStmt": vacuum, "ClusterStmt": cluster, "InsertStmt": insert}

FIELDS_READ = {"InsertStmt": frozenset({"relation", "cols"})}
"""An INSERT's rows and query are never decoded: only the leading fields of PostgreSQL's
InsertStmt struct up to its column list (`sql_source.Wanted`)."""
