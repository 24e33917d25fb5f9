"""The static findings checked against what the shadow run saw each statement do.

The static rules predict from the SQL alone; the shadow run (adapters/runner.py) records, per
statement, the locks taken on relations that existed before it (pg_locks) and the relations
whose storage was replaced (a new relfilenode: a rewrite). Where the two disagree, the run
wins, since it ran the statement on the real schema of the baseline:

- a predicted rewrite of a baseline table that the run did not see (an `ALTER COLUMN TYPE`
  whose old type the analysis could not know, and that turned out binary-compatible) is
  only the lock it takes: the finding is kept at BLOCKING_LOCK, saying why;
- a rewrite of a baseline table that no finding predicted is a new `rewrite-observed`
  finding (Eugene's E10), graded as a rewrite;
- a predicted lock or rewrite the run confirms says so in its message.

Only statements of up scripts that ran and were traced are compared: a finding whose
statement has no trace (the run stopped before it, or it ran untraced) is left as it is. A
rewrite depends on the types and the statement, not on the rows, so the baseline's empty
tables show what production's full ones would go through.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Protocol

from schemas.events.enums import LockMode, Severity
from services.migration.domain.findings import Effect, Finding

REWRITE_OBSERVED = "rewrite-observed"
_EXPECTS_REWRITE = frozenset({Effect.REWRITE, Effect.DATA_LOSS})
"""A finding with one of these effects already grades its statement at least as a rewrite
would (a lossy type change rewrites too): a rewrite seen there adds no finding."""


class LockLike(Protocol):
    @property
    def relation(self) -> str: ...
    @property
    def mode(self) -> LockMode: ...


class TraceLike(Protocol):
    @property
    def statement(self) -> str: ...
    @property
    def file(self) -> str | None: ...
    @property
    def line(self) -> int | None: ...
    @property
    def locks(self) -> Sequence[LockLike]: ...
    @property
    def rewrote(self) -> Sequence[str]: ...


def qualified(name: str) -> str:
    """`t` -> `public.t`: how the traces name relations (`schema.name`)."""
    return name if "." in name else f"public.{name}"


def reconcile(findings: Iterable[Finding], traces: Sequence[TraceLike],
              baseline_tables: frozenset[str]) -> list[Finding]:
    """`findings` corrected and confirmed by `traces`; `baseline_tables` names (as
    `schema.name`) the tables and materialized views that existed before the change."""
    traced: dict[tuple[str | None, int | None], TraceLike] = {
        (t.file, t.line): t for t in traces if t.file and t.line}
    predicted: set[tuple[str | None, int | None, str]] = set()
    checked = []
    for finding in findings:
        trace = None if finding.rollback else traced.get((finding.file, finding.line))
        if trace is None or finding.target is None:
            checked.append(finding)
            continue
        target = qualified(finding.target)
        if finding.effect in _EXPECTS_REWRITE:
            predicted.add((trace.file, trace.line, target))
        if finding.effect is Effect.REWRITE:
            checked.append(_rewrite_seen(finding, trace, target, baseline_tables))
        elif finding.lock is not None:
            checked.append(_lock_seen(finding, trace, target))
        else:
            checked.append(finding)
    for trace in traces:
        for relation in trace.rewrote:
            if relation in baseline_tables and (trace.file, trace.line, relation) not in predicted:
                checked.append(_unexpected_rewrite(trace, relation))
    return checked


def _rewrite_seen(finding: Finding, trace: TraceLike, target: str,
                  baseline_tables: frozenset[str]) -> Finding:
    if target in trace.rewrote:
        return replace(finding, message=f"{finding.message} Confirmed by the shadow run: "
                                        f"{target} was rewritten.")
    if target not in baseline_tables:
        return finding  # created by the change: nothing to compare with
    held = _modes(trace, target)
    lock = f" (it held {held})" if held else ""
    return replace(
        finding, effect=Effect.BLOCKING_LOCK, severity=Severity.WARNING,
        message=f"{finding.message} The shadow run did not rewrite {target}{lock}: the "
                "statement changes the catalog only, so what remains is its lock.")


def _lock_seen(finding: Finding, trace: TraceLike, target: str) -> Finding:
    held = _modes(trace, target)
    if not held:
        return finding
    return replace(finding, message=f"{finding.message} Observed on the shadow run: {held} "
                                    f"on {target}.")


def _modes(trace: TraceLike, target: str) -> str:
    return ", ".join(sorted({lock.mode.value.upper().replace("_", " ")
                             for lock in trace.locks if lock.relation == target}))


def _unexpected_rewrite(trace: TraceLike, relation: str) -> Finding:
    held = _modes(trace, relation) or "its lock"
    return Finding(
        rule=REWRITE_OBSERVED, severity=Severity.WARNING, effect=Effect.REWRITE,
        message=f"the shadow run rewrote {relation} (its storage was replaced) while holding "
                f"{held}: on the real table that is a copy of every row, and every query on "
                "it waits until the copy is done. No rule predicted it.",
        file=trace.file, line=trace.line, statement=trace.statement, target=relation,
        lock=LockMode.ACCESS_EXCLUSIVE,
        fix="Find which part of the statement forces the rewrite (a type change, a volatile "
            "default, SET LOGGED, a new storage parameter) and do that part the online way: "
            "add a new column, backfill in batches, then switch.")
