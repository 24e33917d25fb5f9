"""Verification on a shadow database, on the real PostgreSQL: up, down back to the baseline,
up again; statement traces; and the scratch database never outlives a check."""

from __future__ import annotations

import asyncpg
import pytest

from schemas.events.change import MigrationScript
from schemas.events.migration import LockMode, LockTaken, Severity, StepOutcome
from services.migration.adapters import shadow
from services.migration.adapters.shadow import BaselineError, VerificationResult, verify
from services.migration.domain.findings import Effect

pytestmark = pytest.mark.integration

BASELINE = ["CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL, age int);"]


def script(up: str, down: str | None, name: str = "0002_change/up.sql") -> MigrationScript:
    return MigrationScript(name=name, up_sql=up, down_sql=down)


async def check(database_url: str, up: str, down: str | None) -> VerificationResult:
    return await verify(database_url, [script(up, down)], baseline=BASELINE)


def steps(result: VerificationResult) -> tuple[StepOutcome, StepOutcome, StepOutcome]:
    v = result.verification
    return v.up_applied, v.rollback_restored, v.reapplied


PASSED, FAILED, SKIPPED = StepOutcome.PASSED, StepOutcome.FAILED, StepOutcome.SKIPPED


async def test_a_correct_up_and_down_pass_all_three_steps(database_url: str) -> None:
    result = await check(
        database_url,
        "CREATE INDEX users_email_idx ON users (email);\n"
        "ALTER TABLE users ADD COLUMN nickname text;",
        "ALTER TABLE users DROP COLUMN nickname;\nDROP INDEX users_email_idx;",
    )
    assert steps(result) == (PASSED, PASSED, PASSED)
    assert result.passed and result.findings == () and result.verification.error is None
    assert [t.line for t in result.verification.statements] == [1, 2]


async def test_down_migration_that_forgets_an_index_fails_verification(
    database_url: str,
) -> None:
    result = await check(
        database_url,
        "CREATE INDEX users_email_idx ON users (email);\nALTER TABLE users ADD COLUMN n int;",
        "ALTER TABLE users DROP COLUMN n;",
    )
    assert not result.passed
    [difference] = result.differences
    assert str(difference.object) == "index public.users_email_idx on public.users"
    rollback = [f for f in result.findings if f.effect is Effect.ROLLBACK_DEFECT]
    assert any(f.target == "index public.users_email_idx on public.users"
               and f.severity is Severity.ERROR and f.file == "0002_change/down.sql"
               for f in rollback)
    # The forgotten index is still there, so the up cannot run a second time either.
    assert steps(result) == (PASSED, FAILED, FAILED)


async def test_a_down_script_that_errors_fails_the_rollback_with_its_statement(
    database_url: str,
) -> None:
    result = await check(
        database_url,
        "ALTER TABLE users ADD COLUMN n int;",
        "ALTER TABLE users DROP COLUMN n;\n\nDROP INDEX no_such_index;",
    )
    assert steps(result) == (PASSED, FAILED, SKIPPED)
    [finding] = result.findings
    assert (finding.rule, finding.effect, finding.line) == (
        "rollback-failed", Effect.ROLLBACK_DEFECT, 3)
    assert finding.statement == "DROP INDEX no_such_index"
    assert 'index "no_such_index" does not exist' in finding.message


async def test_an_up_script_that_errors_is_a_validation_failure_with_statement_and_message(
    database_url: str,
) -> None:
    result = await check(
        database_url,
        "ALTER TABLE users ADD COLUMN n int;\n-- then\nALTER TABLE users\n"
        "  ADD COLUMN m int REFERENCES missing (id);",
        "ALTER TABLE users DROP COLUMN n, DROP COLUMN m;",
    )
    assert steps(result) == (FAILED, SKIPPED, SKIPPED)
    [finding] = result.findings
    assert (finding.effect, finding.severity, finding.line) == (
        Effect.VALIDATION_FAILED, Severity.ERROR, 3)
    assert finding.statement == "ALTER TABLE users\n  ADD COLUMN m int REFERENCES missing (id)"
    assert 'relation "missing" does not exist' in finding.message
    error = result.verification.error
    assert error is not None and "ADD COLUMN m int" in error


async def test_create_index_concurrently_runs_outside_a_transaction_and_verifies(
    database_url: str,
) -> None:
    result = await check(
        database_url,
        "CREATE INDEX CONCURRENTLY users_age_idx ON users (age);",
        "DROP INDEX CONCURRENTLY users_age_idx;",
    )
    assert result.passed, result.verification.error
    assert result.untraced_locks == ("0002_change/up.sql",)
    [trace] = result.verification.statements
    assert trace.locks == () and trace.rewrote == ()


async def test_lock_and_rewrite_tracing_tells_an_access_exclusive_lock_from_a_rewrite(
    database_url: str,
) -> None:
    result = await check(
        database_url,
        "ALTER TABLE users ADD COLUMN score int DEFAULT 0;\n"
        "ALTER TABLE users ALTER COLUMN age TYPE bigint;",
        "ALTER TABLE users ALTER COLUMN age TYPE int;\nALTER TABLE users DROP COLUMN score;",
    )
    add_column, change_type = result.verification.statements
    access_exclusive = LockTaken(relation="public.users", mode=LockMode.ACCESS_EXCLUSIVE)
    # A constant default has not rewritten the table since PostgreSQL 11.
    assert access_exclusive in add_column.locks and add_column.rewrote == ()
    assert change_type.rewrote == ("public.users",)
    assert steps(result) == (PASSED, PASSED, PASSED)


async def test_no_down_script_is_a_missing_rollback_finding(database_url: str) -> None:
    result = await check(database_url, "ALTER TABLE users DROP COLUMN age;", None)
    assert steps(result) == (PASSED, SKIPPED, SKIPPED)
    [finding] = result.findings
    assert (finding.rule, finding.severity) == ("missing-rollback", Severity.WARNING)
    assert "table public.users column age" in finding.message


async def test_a_statement_acting_outside_the_database_is_not_run_on_the_shared_server(
    database_url: str,
) -> None:
    result = await check(
        database_url,
        "CREATE ROLE guardians_should_never_exist;\nALTER TABLE users ADD COLUMN n int;",
        "ALTER TABLE users DROP COLUMN n;",
    )
    assert result.passed
    assert [f.rule for f in result.findings] == ["shadow-skipped-statement"]
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM pg_roles WHERE rolname = "
                                   "'guardians_should_never_exist'") == 0
    finally:
        await conn.close()


async def _scratch_exists(database_url: str, name: str) -> bool:
    conn = await asyncpg.connect(database_url)
    try:
        return bool(await conn.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1",
                                        name))
    finally:
        await conn.close()


@pytest.mark.parametrize("case", ["passes", "up fails", "baseline fails"])
async def test_the_scratch_database_is_always_dropped(
    database_url: str, monkeypatch: pytest.MonkeyPatch, case: str,
) -> None:
    name = f"{shadow.SCRATCH_PREFIX}pytest_{case.replace(' ', '_')}"
    created: list[str] = []

    def scratch_name() -> str:
        created.append(name)
        return name

    monkeypatch.setattr(shadow, "scratch_name", scratch_name)
    up = "ALTER TABLE nope ADD COLUMN n int;" if case == "up fails" else "SELECT 1;"
    baseline = ["CREATE TABLE broken (;"] if case == "baseline fails" else BASELINE
    if case == "baseline fails":
        with pytest.raises(BaselineError, match="baseline #1"):
            await verify(database_url, [script(up, "SELECT 1;")], baseline=baseline)
    else:
        await verify(database_url, [script(up, "SELECT 1;")], baseline=baseline)
    assert created == [name]
    assert not await _scratch_exists(database_url, name)
