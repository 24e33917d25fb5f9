"""Run a migration script the way a migration runner would, statement by statement, and
record what each statement really did: the locks it took and the relations it rewrote.

Tracing follows Eugene: after each statement, still inside the script's transaction, read
pg_locks for this backend (locks are held until the transaction ends, so they are all
there) and compare every user relation's relfilenode with its value before the statement
(a new relfilenode means the relation was rewritten).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import asyncpg

from schemas.events.migration import LockMode, LockTaken, StatementTrace
from services.migration.adapters.statements import ScriptPlan, Statement

_LOCK_MODES = {
    "AccessShareLock": LockMode.ACCESS_SHARE,
    "RowShareLock": LockMode.ROW_SHARE,
    "RowExclusiveLock": LockMode.ROW_EXCLUSIVE,
    "ShareUpdateExclusiveLock": LockMode.SHARE_UPDATE_EXCLUSIVE,
    "ShareLock": LockMode.SHARE,
    "ShareRowExclusiveLock": LockMode.SHARE_ROW_EXCLUSIVE,
    "ExclusiveLock": LockMode.EXCLUSIVE,
    "AccessExclusiveLock": LockMode.ACCESS_EXCLUSIVE,
}

_RELATIONS = """
SELECT c.oid, n.nspname || '.' || c.relname AS name, c.relfilenode, c.relkind::text AS relkind,
       coalesce(i.indrelid, 0::oid) AS table_oid
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_index i ON i.indexrelid = c.oid
WHERE c.relkind IN ('r', 'p', 'm', 'i', 'I', 'S', 'v', 'f')
  AND n.nspname !~ '^(pg_|information_schema$)'
"""

_LOCKS = """
SELECT l.relation, n.nspname || '.' || c.relname AS name, l.mode
FROM pg_locks l
JOIN pg_class c ON c.oid = l.relation
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.granted
  AND n.nspname !~ '^(pg_|information_schema$)'
"""


@dataclass(frozen=True)
class _Relation:
    name: str
    filenode: int
    kind: str
    table_oid: int


@dataclass(frozen=True)
class StatementFailure:
    """PostgreSQL refused a statement: its error, and where it is in which script."""

    script: str
    statement: str
    line: int
    sqlstate: str
    message: str

    def describe(self) -> str:
        return f"{self.script}:{self.line}: {self.message} [SQLSTATE {self.sqlstate}]"


@dataclass(frozen=True)
class ScriptRun:
    plan: ScriptPlan
    failure: StatementFailure | None = None
    traces: tuple[StatementTrace, ...] = ()
    skipped: tuple[Statement, ...] = ()
    """Cluster-wide statements (CREATE DATABASE, roles...) not executed on the shared server."""

    @property
    def ok(self) -> bool:
        return self.failure is None


@dataclass
class _Tracer:
    """Per-statement lock and rewrite tracing; `enabled=False` only times statements."""

    conn: asyncpg.Connection
    script: str
    enabled: bool
    relations: dict[int, _Relation] = field(default_factory=dict)
    preexisting: frozenset[int] = frozenset()
    held: set[tuple[int, str]] = field(default_factory=set)
    traces: list[StatementTrace] = field(default_factory=list)

    async def start(self) -> None:
        if self.enabled:
            self.relations = await _relations(self.conn)
            # A lock on a relation the script itself created blocks no one: not reported.
            self.preexisting = frozenset(self.relations)

    async def record(self, statement: Statement, seconds: float, in_transaction: bool) -> None:
        locks: tuple[LockTaken, ...] = ()
        rewrote: tuple[str, ...] = ()
        if self.enabled:
            if in_transaction:
                locks = await self._new_locks()
            after = await _relations(self.conn)
            rewrote = _rewritten(self.relations, after)
            self.relations = after
        self.traces.append(StatementTrace(
            statement=statement.text, file=self.script, line=statement.line, locks=locks,
            rewrote=rewrote, duration_seconds=round(seconds, 6),
        ))

    async def _new_locks(self) -> tuple[LockTaken, ...]:
        """Locks taken by the last statement: held now and not before it (locks accumulate
        until the transaction ends, so earlier statements' locks are still listed)."""
        rows = await self.conn.fetch(_LOCKS)
        now = {(r["relation"], r["mode"]): r["name"] for r in rows
               if r["relation"] in self.preexisting and r["mode"] in _LOCK_MODES}
        fresh = sorted((now[key], _LOCK_MODES[key[1]]) for key in now.keys() - self.held)
        self.held |= now.keys()
        return tuple(LockTaken(relation=name, mode=mode) for name, mode in fresh)


async def _relations(conn: asyncpg.Connection) -> dict[int, _Relation]:
    rows = await conn.fetch(_RELATIONS)
    return {r["oid"]: _Relation(r["name"], r["relfilenode"], r["relkind"], r["table_oid"])
            for r in rows}


def _rewritten(before: dict[int, _Relation], after: dict[int, _Relation]) -> tuple[str, ...]:
    # Sequences get a new relfilenode on some ALTER SEQUENCE forms: nothing is rewritten.
    changed = {oid for oid, rel in after.items()
               if oid in before and before[oid].filenode != rel.filenode and rel.kind != "S"}
    # A rewritten table rebuilds all its indexes; name the table once, and an index alone
    # only when it was rebuilt without its table (REINDEX, an index-only type change).
    return tuple(sorted(
        after[oid].name for oid in changed
        if after[oid].kind not in ("i", "I") or after[oid].table_oid not in changed
    ))


async def run_script(
    conn: asyncpg.Connection, plan: ScriptPlan, *, trace: bool = False
) -> ScriptRun:
    """Apply `plan` on `conn`: in one transaction (a savepoint when the caller already has
    one open) unless `plan.in_transaction` is False, then statement by statement in
    autocommit, as the migration runner does. Stops at the first failing statement."""
    tracer = _Tracer(conn, plan.name, trace)
    await tracer.start()
    runnable = [s for s in plan.statements if not s.cluster_wide]
    skipped = tuple(s for s in plan.statements if s.cluster_wide)
    if plan.in_transaction:
        failure = await _run_in_transaction(conn, plan.name, runnable, tracer)
    else:
        failure = await _run_autocommit(conn, plan.name, runnable, tracer)
    return ScriptRun(plan, failure, tuple(tracer.traces), skipped)


async def _run_in_transaction(
    conn: asyncpg.Connection, script: str, statements: list[Statement], tracer: _Tracer
) -> StatementFailure | None:
    transaction = conn.transaction()
    await transaction.start()
    try:
        for statement in statements:
            failure = await _execute(conn, script, statement, tracer, in_transaction=True)
            if failure:
                await transaction.rollback()
                return failure
    except BaseException:
        await transaction.rollback()
        raise
    try:
        await transaction.commit()
    except asyncpg.PostgresError as error:
        # Deferred constraints are checked at COMMIT: blame the script's last statement.
        last = statements[-1] if statements else Statement("COMMIT", 1)
        return _failure(script, last, error)
    return None


async def _run_autocommit(
    conn: asyncpg.Connection, script: str, statements: list[Statement], tracer: _Tracer
) -> StatementFailure | None:
    for statement in statements:
        failure = await _execute(conn, script, statement, tracer, in_transaction=False)
        if failure:
            return failure
    return None


async def _execute(
    conn: asyncpg.Connection, script: str, statement: Statement, tracer: _Tracer,
    *, in_transaction: bool,
) -> StatementFailure | None:
    started = time.perf_counter()
    try:
        await conn.execute(statement.text)
    except asyncpg.PostgresError as error:
        return _failure(script, statement, error)
    await tracer.record(statement, time.perf_counter() - started, in_transaction)
    return None


def _failure(script: str, statement: Statement, error: asyncpg.PostgresError) -> StatementFailure:
    position = getattr(error, "position", None)
    parts = [getattr(error, "message", None) or str(error)]
    if detail := getattr(error, "detail", None):
        parts.append(f"DETAIL: {detail}")
    if hint := getattr(error, "hint", None):
        parts.append(f"HINT: {hint}")
    return StatementFailure(
        script=script,
        statement=statement.text,
        line=statement.line_of(int(position) if position else None),
        sqlstate=str(getattr(error, "sqlstate", "") or ""),
        message=" ".join(parts),
    )
