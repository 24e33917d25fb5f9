"""A migration script cut into statements, and how a migration runner would execute it.

The cutting is the analysis' own (`domain.sql_source.parse_script`: PostgreSQL's parser, each
statement's text and the line of its first token, comments before it skipped), so the
shadow run and `guardians lint` always agree on what a statement is and where it starts.
This module only adds what executing the statements needs: which ones must run in
autocommit, which act outside the database, which manage transactions themselves. A script
the parser rejects (a syntax error, psql meta-commands, syntax newer than the parser) is
sent whole: the server then reports the error and its position.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.migration.domain.sql_nodes import Node, defelem_names, flag
from services.migration.domain.sql_source import SourceStatement, parse_script

_CLUSTER_WIDE = frozenset({
    "CreatedbStmt", "DropdbStmt", "AlterDatabaseStmt", "AlterDatabaseSetStmt",
    "CreateRoleStmt", "AlterRoleStmt", "AlterRoleSetStmt", "DropRoleStmt",
    "GrantRoleStmt", "CreateTableSpaceStmt", "DropTableSpaceStmt", "AlterSystemStmt",
})
"""Statements that act outside the database they run in. The shadow server is shared (the
services' own database lives there), so these are never executed on it."""

_NEVER_IN_TRANSACTION = frozenset({
    "VacuumStmt", "CreatedbStmt", "DropdbStmt", "CreateTableSpaceStmt", "DropTableSpaceStmt",
    "AlterSystemStmt",
})
"""Statement types run in autocommit whatever their options (VACUUM also covers ANALYZE,
which could run in a transaction: autocommit costs it nothing)."""


@dataclass(frozen=True)
class Statement:
    text: str
    line: int
    """1-based line of the statement's first token in its script."""
    outside_transaction: bool = False
    """Cannot run inside a transaction block (CONCURRENTLY, VACUUM...)."""
    cluster_wide: bool = False
    transaction_control: bool = False
    """BEGIN / COMMIT / ROLLBACK / SAVEPOINT written in the script itself."""

    def line_of(self, position: int | None) -> int:
        """The script line of a 1-based character position inside this statement."""
        if not position or position < 1:
            return self.line
        return self.line + self.text.count("\n", 0, position - 1)


@dataclass(frozen=True)
class ScriptPlan:
    name: str
    statements: tuple[Statement, ...]
    parsed: bool
    """False: the parser rejected the script; `statements` is the whole script."""

    @property
    def in_transaction(self) -> bool:
        """Run in one transaction, as Diesel, Flyway and sqlx do, unless a statement cannot
        run in one or the script manages its own transactions."""
        return not any(s.outside_transaction or s.transaction_control for s in self.statements)


def plan_script(name: str, sql: str, server_version: int = 180000) -> ScriptPlan:
    """`server_version` as `server_version_num` (ADD VALUE needs autocommit before 12)."""
    script = parse_script(sql)
    if script.errors:
        whole = sql.strip()
        first = len(sql) - len(sql.lstrip())
        return ScriptPlan(name, (Statement(whole, sql.count("\n", 0, first) + 1),), parsed=False)
    return ScriptPlan(name, tuple(_planned(s, server_version) for s in script.statements),
                      parsed=True)


def _planned(statement: SourceStatement, server_version: int) -> Statement:
    kind = statement.kind
    return Statement(
        text=statement.text,
        line=statement.line,
        outside_transaction=_outside_transaction(kind, statement.node, server_version),
        cluster_wide=kind in _CLUSTER_WIDE,
        transaction_control=kind == "TransactionStmt",
    )


def _outside_transaction(kind: str, node: Node, server_version: int) -> bool:
    if kind in ("IndexStmt", "DropStmt"):
        return flag(node, "concurrent")
    if kind == "ReindexStmt":
        return "concurrently" in defelem_names(node, "params")
    if kind == "AlterEnumStmt":  # ADD VALUE (RENAME VALUE names the old value)
        return "oldVal" not in node and server_version < 120000
    return kind in _NEVER_IN_TRANSACTION
