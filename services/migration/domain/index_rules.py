"""Index builds, drops and rebuilds: CONCURRENTLY or a lock for the whole operation."""

from __future__ import annotations

from typing import TYPE_CHECKING

from schemas.events.enums import LockMode
from services.migration.domain.change_state import Namespace
from services.migration.domain.sql_nodes import (
    Node,
    ObjectName,
    children,
    defelem_names,
    flag,
    relation,
    text,
    too_long,
    unwrap,
)

if TYPE_CHECKING:
    from services.migration.domain.sql_analysis import StatementReport

OUTSIDE_TRANSACTION_FIX = (
    "Put it in a migration of its own that the runner does not wrap in a transaction "
    "(Diesel: run_in_transaction = false in metadata.toml; Flyway: executeInTransaction=false; "
    "Rails: disable_ddl_transaction!; sqlx: -- no-transaction), with no BEGIN around it.")


def create_index(node: Node, report: StatementReport) -> None:
    table = relation(node)
    if table is None:
        return
    name = text(node, "idxname")
    index = ObjectName(name, table.schema) if name else None
    shown = f"index {index} on {table}" if index else f"an index on {table}"
    new_table = report.is_new(table)
    keys = _index_keys(node)
    if index is not None or keys is not None:
        report.knowledge.add_index(
            index.key if index else f"{table.key}({', '.join(map(str, keys or ()))})",
            table.key, keys or ())
    if index is not None:
        report.scope.created.add((Namespace.RELATION, index.key))
        if too_long(name):
            report.report("identifier-too-long", f"index name {name!r} is over 63 bytes: "
                          "PostgreSQL truncates it silently.", target=index,
                          fix="Choose a name of at most 63 bytes.")
    robust_fix = "CREATE INDEX CONCURRENTLY IF NOT EXISTS ..."
    if flag(node, "concurrent"):
        report.lock(table, LockMode.SHARE_UPDATE_EXCLUSIVE, preexisting=not new_table)
        if report.session.in_transaction:
            report.report(
                "ban-concurrent-index-creation-in-transaction",
                f"CREATE INDEX CONCURRENTLY ({shown}) cannot run inside a transaction block.",
                target=index or table, fix=OUTSIDE_TRANSACTION_FIX, preexisting=not new_table)
        elif index is not None:  # a failed concurrent build leaves an INVALID index behind
            report.robust(not flag(node, "if_not_exists"), "CREATE INDEX CONCURRENTLY without "
                          "IF NOT EXISTS", robust_fix, index)
        return
    report.lock(table, LockMode.SHARE, preexisting=not new_table)
    if not new_table:
        unique = "UNIQUE " if flag(node, "unique") else ""
        report.report(
            "require-concurrent-index-creation",
            f"CREATE {unique}INDEX without CONCURRENTLY: building {shown} blocks writes to "
            f"{table} (SHARE lock) until it is done.", target=table, lock=LockMode.SHARE,
            fix=f"CREATE {unique}INDEX CONCURRENTLY {index or ''} ON {table} (...), outside a "
                "transaction block. " + OUTSIDE_TRANSACTION_FIX)
        if flag(node, "unique"):
            report.report(
                "adding-unique-index", f"unique {shown}: the build fails if {table} already "
                "holds duplicates.", target=table,
                fix="Check first: SELECT <columns>, count(*) FROM ... GROUP BY <columns> "
                    "HAVING count(*) > 1.")
    if index is not None:
        report.robust(not flag(node, "if_not_exists"), "CREATE INDEX without IF NOT EXISTS",
                      robust_fix, index)


def _index_keys(node: Node) -> tuple[str | None, ...] | None:
    """The index's key columns (None for an expression); None for a partial index, which a
    foreign key's lookups cannot count on."""
    if node.get("whereClause"):
        return None
    return tuple(text(unwrap(item)[1], "name") for item in children(node, "indexParams"))


def drop_indexes(node: Node, indexes: list[ObjectName], report: StatementReport) -> None:
    concurrent = flag(node, "concurrent")
    for index in indexes:
        table_key = report.knowledge.index_tables.get(index.key)
        report.knowledge.forget_index(index.key)
        table = ObjectName.from_key(table_key) if table_key else None
        new = report.is_new(index) or (table is not None and report.is_new(table))
        report.scope.created.discard((Namespace.RELATION, index.key))
        target = table or index
        if concurrent:
            report.lock(target, LockMode.SHARE_UPDATE_EXCLUSIVE, preexisting=not new)
            if report.session.in_transaction:
                report.report("cannot-run-in-transaction", f"DROP INDEX CONCURRENTLY {index} "
                              "cannot run inside a transaction block.", target=index,
                              fix=OUTSIDE_TRANSACTION_FIX, preexisting=not new)
        else:
            report.lock(target, LockMode.ACCESS_EXCLUSIVE, preexisting=not new)
            if not new:
                on = f" on {table}" if table else " (and its table)"
                report.report(
                    "require-concurrent-index-deletion",
                    f"DROP INDEX {index} without CONCURRENTLY takes ACCESS EXCLUSIVE{on}: "
                    "reads and writes wait.", target=index, lock=LockMode.ACCESS_EXCLUSIVE,
                    fix=f"DROP INDEX CONCURRENTLY IF EXISTS {index}; outside a transaction "
                        "block.")
        report.robust(not flag(node, "missing_ok"), f"DROP INDEX {index} without IF EXISTS",
                      f"DROP INDEX CONCURRENTLY IF EXISTS {index}", index)


def reindex(node: Node, report: StatementReport) -> None:
    kind = (text(node, "kind") or "").removeprefix("REINDEX_OBJECT_")
    concurrent = "concurrently" in defelem_names(node, "params")
    named = relation(node)
    if named is None:  # SCHEMA / DATABASE / SYSTEM
        if report.session.in_transaction:
            report.report("cannot-run-in-transaction", f"REINDEX {kind} cannot run inside a "
                          "transaction block.", target=text(node, "name"),
                          fix=OUTSIDE_TRANSACTION_FIX)
        return
    if kind == "INDEX":
        table_key = report.knowledge.index_tables.get(named.key)
        table = ObjectName.from_key(table_key) if table_key else named
    else:
        table = named
    new = report.is_new(named) or report.is_new(table)
    if concurrent:
        report.lock(table, LockMode.SHARE_UPDATE_EXCLUSIVE, preexisting=not new)
        if report.session.in_transaction:
            report.report("cannot-run-in-transaction", f"REINDEX CONCURRENTLY {named} cannot "
                          "run inside a transaction block.", target=named,
                          fix=OUTSIDE_TRANSACTION_FIX, preexisting=not new)
        return
    mode = LockMode.ACCESS_EXCLUSIVE if kind == "INDEX" else LockMode.SHARE
    report.lock(table, mode, preexisting=not new)
    if new:
        return
    fix = (f"REINDEX {kind} CONCURRENTLY {named}; outside a transaction block."
           if report.options.pg_version >= 12 else
           "CREATE INDEX CONCURRENTLY a replacement, DROP INDEX CONCURRENTLY the old one, "
           "then rename the new one (REINDEX CONCURRENTLY needs PostgreSQL 12).")
    report.report("require-concurrent-reindex", f"REINDEX {kind} {named} without CONCURRENTLY "
                  "blocks writes (and reads that use the index) until it is done.",
                  target=named, lock=mode, fix=fix)


HANDLERS = {"IndexStmt": create_index, "ReindexStmt": reindex}
