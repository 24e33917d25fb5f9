"""Transaction blocks and timeout settings: the session state the other rules depend on.

A timeout counts only while it is in effect: `SET` lasts for the session (undone if its
transaction rolls back), `SET LOCAL` until the transaction ends, `RESET`/`RESET ALL`/`SET ...
TO DEFAULT` and a zero value mean none. The runner's per-file transaction
(`transaction_per_file`) is a transaction like any other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from schemas.events.enums import Severity
from services.migration.domain.change_state import Transaction
from services.migration.domain.findings import Effect, Finding
from services.migration.domain.sql_nodes import (
    Node,
    children,
    constant_text,
    flag,
    strings,
    text,
    unwrap,
)

if TYPE_CHECKING:
    from services.migration.domain.sql_analysis import SqlAnalysis, SqlFile, StatementReport

_BEGIN = {"TRANS_STMT_BEGIN", "TRANS_STMT_START"}
_END = {"TRANS_STMT_COMMIT": True, "TRANS_STMT_ROLLBACK": False}


def transaction(node: Node, report: StatementReport) -> None:
    kind = text(node, "kind") or ""
    session = report.session
    if kind in _BEGIN:
        if session.transaction is Transaction.RUNNER:
            report.report(
                "transaction-nesting", "BEGIN inside the migration runner's transaction is "
                "ignored by PostgreSQL; a COMMIT here would end the runner's transaction early.",
                effect=Effect.ADVISORY, severity=Severity.WARNING,
                fix="Remove BEGIN/COMMIT: the runner already runs the file in one transaction.")
            session.begin(Transaction.NESTED)
        elif session.in_transaction:
            report.report("transaction-nesting", "BEGIN while a transaction is already open: "
                          "the blocks are unbalanced.", fix="Close each BEGIN with one COMMIT.")
        else:
            session.begin(Transaction.EXPLICIT, report.statement.line)
    elif kind in _END:
        if session.transaction is Transaction.RUNNER:
            report.report(
                "transaction-nesting", f"{kind.removeprefix('TRANS_STMT_')} ends the migration "
                "runner's transaction early: the statements after it run outside any "
                "transaction.", effect=Effect.ADVISORY, severity=Severity.WARNING,
                fix="Remove BEGIN/COMMIT: the runner already runs the file in one transaction.")
        elif not session.in_transaction:
            report.report("transaction-nesting", f"{kind.removeprefix('TRANS_STMT_')} with no "
                          "transaction open: the blocks are unbalanced.",
                          fix="Pair each COMMIT/ROLLBACK with a BEGIN.")
            return
        session.end(committed=_END[kind])


def variable_set(node: Node, report: StatementReport) -> None:
    kind = text(node, "kind") or ""
    session = report.session
    if kind == "VAR_RESET_ALL":
        session.lock_timeout.reset()
        session.statement_timeout.reset()
        return
    setting = session.setting(text(node, "name") or "")
    if setting is None:
        return
    if kind in {"VAR_RESET", "VAR_SET_DEFAULT"}:
        if kind == "VAR_RESET" or not flag(node, "is_local"):
            setting.reset()
        else:
            setting.set(False, local=True, in_transaction=session.in_transaction)
    elif kind == "VAR_SET_VALUE":
        values = children(node, "args")
        value = constant_text(values[0]) if values else None
        setting.set(_nonzero(value), local=flag(node, "is_local"),
                    in_transaction=session.in_transaction)


def select(node: Node, report: StatementReport) -> None:
    """`SELECT set_config('lock_timeout', '5s', false)`, the function form of SET."""
    for target in children(node, "targetList"):
        _, res = unwrap(target)
        kind, call = unwrap(res.get("val"))
        if kind != "FuncCall" or strings(children(call, "funcname"))[-1:] != ["set_config"]:
            continue
        args = children(call, "args")
        if len(args) != 3:
            continue
        setting = report.session.setting(constant_text(args[0]) or "")
        if setting is not None:
            local = constant_text(args[2]) in {"true", "t", "on"}
            setting.set(_nonzero(constant_text(args[1])), local=local,
                        in_transaction=report.session.in_transaction)


def _nonzero(value: str | None) -> bool:
    """`'5s'` and `5000` set a timeout; `0`, `'0ms'` and an unreadable value do not."""
    if value is None:
        return False
    digits = value.strip().rstrip("smindhu ").strip()
    try:
        return float(digits) > 0
    except ValueError:
        return False


def end_of_file(analysis: SqlAnalysis, file: SqlFile) -> None:
    session = analysis.session
    if session.transaction is Transaction.EXPLICIT:
        analysis.findings.append(Finding(
            rule="ban-uncommitted-transaction", severity=Severity.ERROR,
            effect=Effect.ROLLBACK_DEFECT if file.rollback else Effect.CANNOT_RUN,
            message="BEGIN is never committed: the session ends and PostgreSQL rolls the "
                    "migration back.", file=file.name, line=session.began_at_line,
            fix="Add COMMIT at the end of the file.", rollback=file.rollback))
    if session.in_transaction:
        session.end(committed=True)


HANDLERS = {"TransactionStmt": transaction, "VariableSetStmt": variable_set,
            "SelectStmt": select}
