"""Verification on a shadow database: apply the up scripts on a scratch copy of the baseline,
roll them back with their down scripts, check the catalog is the baseline again, and apply
the up scripts once more.

The scratch database lives on the given server (never the target), is created per check and
dropped in `finally` with FORCE; nothing here touches any other database on that server.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg

from schemas.events.change import MigrationScript
from schemas.events.migration import Severity, ShadowVerification, StatementTrace, StepOutcome
from services.migration.adapters.catalog_snapshot import take_snapshot
from services.migration.adapters.runner import ScriptRun, StatementFailure, run_script
from services.migration.adapters.statements import plan_script
from services.migration.domain.catalog import (
    CatalogDifference,
    CatalogSnapshot,
    ObjectKind,
    additions_only,
    compare,
)
from services.migration.domain.findings import Effect, Finding

SCRATCH_PREFIX = "guardians_shadow_"

UP_FAILED = "shadow-up-failed"
ROLLBACK_FAILED = "rollback-failed"
REAPPLY_FAILED = "reapply-failed"
MISSING_ROLLBACK = "missing-rollback"
SKIPPED_STATEMENT = "shadow-skipped-statement"
"""Rule ids of the verification's own findings (the catalog differences add theirs)."""
BASELINE_FAILED = "shadow-baseline-failed"
"""The rule of the finding a caller reports for a `BaselineError` (the change unverified)."""


class ShadowDatabaseError(RuntimeError):
    """The shadow server cannot be reached, or refuses a scratch database."""


class BaselineError(RuntimeError):
    """A baseline script does not apply: nothing can be verified on top of it."""

    def __init__(self, failure: StatementFailure, *, postgres_version: str | None = None,
                 duration_seconds: float | None = None) -> None:
        super().__init__(f"the baseline does not apply: {failure.describe()}")
        self.failure = failure
        """The baseline script, line and statement PostgreSQL refused, and its error."""
        self.postgres_version = postgres_version
        self.duration_seconds = duration_seconds


@dataclass(frozen=True)
class VerificationResult:
    verification: ShadowVerification
    """What the `migration.assessed` event publishes: step outcomes, error, traces."""
    findings: tuple[Finding, ...]
    """Validation failure, rollback defects (one per catalog difference), missing rollbacks."""
    differences: tuple[CatalogDifference, ...]
    """What the rollback left different from the baseline, harmless ones last."""
    untraced_locks: tuple[str, ...] = ()
    """Scripts run outside a transaction (CONCURRENTLY...): each statement commits and
    releases its locks before they can be read, so their traces carry none."""
    baseline_tables: frozenset[str] = frozenset()
    """The tables and materialized views (`schema.name`) that existed before the change:
    the ones whose locks and rewrites production would feel (`domain.trace_check`)."""

    @property
    def passed(self) -> bool:
        """The up applied, the down restored the baseline and the up re-applied."""
        steps = (self.verification.up_applied, self.verification.rollback_restored,
                 self.verification.reapplied)
        return all(step is StepOutcome.PASSED for step in steps)


def redacted(dsn: str) -> str:
    """The DSN without its password, fit for an error message."""
    head, sep, tail = dsn.rpartition("@")
    if not sep or ":" not in head.split("//", 1)[-1]:
        return dsn
    scheme, _, credentials = head.partition("//")
    return f"{scheme}//{credentials.split(':', 1)[0]}:***@{tail}"


def scratch_name() -> str:
    """A fresh name per check: two checks at once never share a scratch database."""
    return SCRATCH_PREFIX + secrets.token_hex(6)


@asynccontextmanager
async def scratch_database(
    dsn: str, *, statement_timeout_s: float = 300
) -> AsyncIterator[asyncpg.Connection]:
    """A connection to a new, empty database on `dsn`'s server, dropped on the way out
    (WITH FORCE, so a stuck session cannot keep it alive)."""
    try:
        maintenance = await asyncpg.connect(dsn, timeout=10)
    except (OSError, asyncpg.PostgresError, TimeoutError) as error:
        raise ShadowDatabaseError(f"cannot reach the shadow PostgreSQL at {redacted(dsn)}: "
                                  f"{error}") from error
    name = scratch_name()
    try:
        try:
            # template0: a scratch database must not inherit whatever was added to template1.
            await maintenance.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        except asyncpg.PostgresError as error:
            raise ShadowDatabaseError(f"cannot create a scratch database on {redacted(dsn)} "
                                      f"(the role needs CREATEDB): {error}") from error
        try:
            conn = await asyncpg.connect(dsn, database=name, timeout=10, server_settings={
                "application_name": "guardians-shadow",
                "statement_timeout": str(int(statement_timeout_s * 1000)),
                "client_min_messages": "warning",
            })
            try:
                yield conn
            finally:
                await conn.close()
        finally:
            await maintenance.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await maintenance.close()


async def server_version(conn: asyncpg.Connection) -> tuple[int, str]:
    """(`server_version_num`, `server_version`) of the shadow server."""
    row = await conn.fetchrow("SELECT current_setting('server_version_num')::int AS num,"
                              " current_setting('server_version') AS text")
    assert row is not None
    return row["num"], row["text"]


async def verify(
    dsn: str,
    scripts: Sequence[MigrationScript],
    *,
    baseline: Sequence[str | MigrationScript] = (),
    trace: bool = True,
    statement_timeout_s: float = 300,
) -> VerificationResult:
    """Up, down, compare with the baseline, up again, on a scratch database on `dsn`'s server.

    `baseline`: SQL applied in order first (prior migrations, a schema dump); a
    `MigrationScript` applies its `up_sql` and is named in errors. Raises
    `ShadowDatabaseError` when the server is unusable and `BaselineError` when the baseline
    does not apply: neither says anything about the change itself.
    """
    started = time.perf_counter()
    async with scratch_database(dsn, statement_timeout_s=statement_timeout_s) as conn:
        version, version_text = await server_version(conn)
        for index, item in enumerate(baseline, start=1):
            name, sql = ((item.name, item.up_sql) if isinstance(item, MigrationScript)
                         else (f"baseline #{index}", item))
            run = await run_script(conn, plan_script(name, sql, version))
            if run.failure:
                raise BaselineError(
                    run.failure, postgres_version=version_text,
                    duration_seconds=round(time.perf_counter() - started, 3))
        check = _Check(conn, version)
        await check.run(scripts, trace=trace)
    verification = ShadowVerification(
        up_applied=check.up, rollback_restored=check.rollback, reapplied=check.reapply,
        error=check.error, postgres_version=version_text, statements=tuple(check.traces),
        duration_seconds=round(time.perf_counter() - started, 3),
    )
    return VerificationResult(verification, tuple(check.findings), check.differences,
                              tuple(check.untraced), check.baseline_tables)


def down_name(up_name: str) -> str:
    """How the down script is named in findings: `0042-orders/down.sql` for `.../up.sql`."""
    if up_name.endswith("up.sql"):
        return up_name[: -len("up.sql")] + "down.sql"
    return f"{up_name} (down)"


class _Check:
    """One verification's state, walked step by step (each step ends or skips the rest)."""

    def __init__(self, conn: asyncpg.Connection, version: int) -> None:
        self.conn = conn
        self.version = version
        self.up = self.rollback = self.reapply = StepOutcome.SKIPPED
        self.error: str | None = None
        self.traces: list[StatementTrace] = []
        self.findings: list[Finding] = []
        self.differences: tuple[CatalogDifference, ...] = ()
        self.untraced: list[str] = []
        self.skipped: set[tuple[str, int]] = set()
        self.baseline_tables: frozenset[str] = frozenset()

    async def run(self, scripts: Sequence[MigrationScript], *, trace: bool) -> None:
        states = [await take_snapshot(self.conn)]
        self.baseline_tables = frozenset(
            o.name for o in states[0].objects
            if o.kind in {ObjectKind.TABLE, ObjectKind.MATERIALIZED_VIEW})
        for script in scripts:
            run = await self._apply(script.name, script.up_sql, trace=trace)
            self.traces.extend(run.traces)
            if run.failure:
                self.up = StepOutcome.FAILED
                self._fail(UP_FAILED, Effect.VALIDATION_FAILED, run.failure,
                           "the up script fails on the shadow database")
                return
            states.append(await take_snapshot(self.conn))
        self.up = StepOutcome.PASSED
        # Rollback can only walk back through the scripts that ship a down, from the last one.
        first = len(scripts)
        while first > 0 and scripts[first - 1].down_sql is not None:
            first -= 1
        for index, script in enumerate(scripts[:first]):
            if script.down_sql is None:
                self.findings.append(_missing_rollback(script, states[index], states[index + 1]))
        if first == len(scripts):
            return
        if await self._roll_back(scripts[first:], states[first]):
            await self._reapply(scripts[first:])

    async def _roll_back(self, scripts: Sequence[MigrationScript], before: CatalogSnapshot
                         ) -> bool:
        """False when a down script fails: the up scripts are then still applied."""
        for script in reversed(scripts):
            assert script.down_sql is not None
            run = await self._apply(down_name(script.name), script.down_sql, trace=False)
            if run.failure:
                self.rollback = StepOutcome.FAILED
                self._fail(ROLLBACK_FAILED, Effect.ROLLBACK_DEFECT, run.failure,
                           "the down script fails")
                return False
        self.differences = compare(before, await take_snapshot(self.conn))
        file = down_name(scripts[0].name) if len(scripts) == 1 else None
        self.findings.extend(d.to_finding(file) for d in self.differences)
        restored = not any(d.severity is Severity.ERROR for d in self.differences)
        self.rollback = StepOutcome.PASSED if restored else StepOutcome.FAILED
        return True

    async def _reapply(self, scripts: Sequence[MigrationScript]) -> None:
        for script in scripts:
            run = await self._apply(script.name, script.up_sql, trace=False)
            if run.failure:
                self.reapply = StepOutcome.FAILED
                self._fail(REAPPLY_FAILED, Effect.ROLLBACK_DEFECT, run.failure,
                           "the up script does not run again after the rollback")
                return
        self.reapply = StepOutcome.PASSED

    async def _apply(self, name: str, sql: str, *, trace: bool) -> ScriptRun:
        plan = plan_script(name, sql, self.version)
        if trace and not plan.in_transaction:
            self.untraced.append(name)
        run = await run_script(self.conn, plan, trace=trace)
        for statement in run.skipped:
            if (name, statement.line) in self.skipped:
                continue  # the up script runs twice: one finding is enough
            self.skipped.add((name, statement.line))
            self.findings.append(Finding(
                rule=SKIPPED_STATEMENT, severity=Severity.WARNING, effect=Effect.ADVISORY,
                message="not run on the shadow database: it acts outside the database "
                        "(databases, roles, tablespaces, server settings), so it is unverified",
                file=name, line=statement.line, statement=statement.text,
            ))
        return run

    def _fail(self, rule: str, effect: Effect, failure: StatementFailure, what: str) -> None:
        self.error = f"{failure.describe()}\nstatement: {failure.statement}"
        self.findings.append(Finding(
            rule=rule, severity=Severity.ERROR, effect=effect,
            message=f"{what}: {failure.message}", file=failure.script, line=failure.line,
            statement=failure.statement,
        ))


def _missing_rollback(
    script: MigrationScript, before: CatalogSnapshot, after: CatalogSnapshot
) -> Finding:
    """No down script: a warning when the up script creates or alters schema objects (the
    message says whether a down could simply drop what it adds), info when it changes no
    schema object (data only). The risk policy decides what either weighs."""
    changes = compare(before, after)
    objects = ", ".join(str(d.object) for d in changes[:5]) + (", ..." if len(changes) > 5 else "")
    severity = Severity.WARNING if changes else Severity.INFO
    if not changes:
        message = ("no down script; the up script changes no schema object "
                   "(its data changes, if any, cannot be rolled back automatically)")
    elif additions_only(changes):
        message = f"no down script; the up script adds objects a down script could drop: {objects}"
    else:
        message = (f"no down script; the up script changes or removes existing objects, "
                   f"which cannot be undone without one: {objects}")
    return Finding(
        rule=MISSING_ROLLBACK, severity=severity, effect=Effect.ROLLBACK_DEFECT,
        message=message, file=script.name,
        fix="ship a down script that undoes the up script exactly",
    )
