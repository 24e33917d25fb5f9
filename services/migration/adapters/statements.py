"""A migration script cut into statements, and how a migration runner would execute it.

Splitting uses pglast's `parse_sql` (PostgreSQL's own parser) and each statement's
`stmt_location` / `stmt_len`: the location skips leading comments, so the line we report is
the statement's first token. A script pglast cannot parse (a syntax error, or syntax newer
than its parser) is sent whole: the server then reports the error and its position.
"""

from __future__ import annotations

from dataclasses import dataclass

from pglast import ast, parser

_CLUSTER_WIDE = (
    ast.CreatedbStmt, ast.DropdbStmt, ast.AlterDatabaseStmt, ast.AlterDatabaseSetStmt,
    ast.CreateRoleStmt, ast.AlterRoleStmt, ast.AlterRoleSetStmt, ast.DropRoleStmt,
    ast.GrantRoleStmt, ast.CreateTableSpaceStmt, ast.DropTableSpaceStmt, ast.AlterSystemStmt,
)
"""Statements that act outside the database they run in. The shadow server is shared (the
services' own database lives there), so these are never executed on it."""


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
    """False: pglast could not parse the script; `statements` is the whole script."""

    @property
    def in_transaction(self) -> bool:
        """Run in one transaction, as Diesel, Flyway and sqlx do, unless a statement cannot
        run in one or the script manages its own transactions."""
        return not any(s.outside_transaction or s.transaction_control for s in self.statements)


def plan_script(name: str, sql: str, server_version: int = 180000) -> ScriptPlan:
    """`server_version` as `server_version_num` (ADD VALUE needs autocommit before 12)."""
    try:
        raw = parser.parse_sql(sql)
    except parser.ParseError:
        whole = sql.strip()
        first = len(sql) - len(sql.lstrip())
        return ScriptPlan(name, (Statement(whole, sql.count("\n", 0, first) + 1),), parsed=False)
    statements = []
    for item in raw:
        start = item.stmt_location or 0
        end = start + item.stmt_len if item.stmt_len else len(sql)
        node = item.stmt
        statements.append(Statement(
            text=sql[start:end].strip(),
            line=sql.count("\n", 0, start) + 1,
            outside_transaction=node is not None and _outside_transaction(node, server_version),
            cluster_wide=isinstance(node, _CLUSTER_WIDE),
            transaction_control=isinstance(node, ast.TransactionStmt),
        ))
    return ScriptPlan(name, tuple(statements), parsed=True)


def _outside_transaction(node: ast.Node, server_version: int) -> bool:
    if isinstance(node, ast.IndexStmt | ast.DropStmt):
        return bool(node.concurrent)
    if isinstance(node, ast.ReindexStmt):
        return any(p.defname == "concurrently" for p in node.params or ())
    if isinstance(node, ast.AlterEnumStmt):
        return node.oldVal is None and server_version < 120000
    return isinstance(node, ast.VacuumStmt | ast.CreatedbStmt | ast.DropdbStmt
                      | ast.CreateTableSpaceStmt | ast.DropTableSpaceStmt | ast.AlterSystemStmt)
