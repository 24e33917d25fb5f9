"""A baseline that cannot be used is the guardian's configuration, not the change: the change
is still analysed, then blocked unverified with a `shadow-baseline-failed` finding.

(A baseline whose SQL PostgreSQL refuses goes through the same path on the real stack:
tests/integration/test_migration_workflow.py.)"""

from __future__ import annotations

from pathlib import Path

from schemas.events.change import ChangeSubmitted, MigrationScript
from schemas.events.migration import RiskLevel, Severity, StepOutcome
from services.migration.adapters import shadow
from services.migration.assessment import BrokenBaseline, assess
from services.migration.domain.findings import Effect
from services.migration.domain.risk_policy import grade
from services.migration.domain.rule_catalog import RULES
from services.runtime.config import MigrationPolicy

UNREACHABLE = "postgresql://nobody:secret@127.0.0.1:1/none"
"""Never dialled: a broken baseline skips the shadow database."""


def change(*migrations: MigrationScript) -> ChangeSubmitted:
    return ChangeSubmitted(change_id="shop-2.0.0", service="shop", version="2.0.0",
                           submitted_by="ci", migrations=migrations)


ADD_COLUMN = MigrationScript(name="0002/up.sql", up_sql="ALTER TABLE t ADD COLUMN x int NOT NULL;",
                             down_sql="ALTER TABLE t DROP COLUMN x;")


def test_the_rule_is_catalogued_as_a_blocking_error() -> None:
    info = RULES[shadow.BASELINE_FAILED]
    assert info.severity is Severity.ERROR and info.effect is Effect.VALIDATION_FAILED


def test_a_baseline_postgresql_refuses_blocks_with_a_finding_naming_script_statement_and_error(
) -> None:
    broken = BrokenBaseline(Path("/etc/guardians/shop.sql"),
                            'schema.sql line 3: relation "users" does not exist [SQLSTATE 42P01]',
                            "ALTER TABLE users ADD COLUMN x int;")
    finding = broken.finding()
    assert finding.rule == "shadow-baseline-failed"
    assert 'schema.sql line 3: relation "users" does not exist' in finding.message
    assert "ALTER TABLE users ADD COLUMN x int;" in finding.message
    assert finding.statement == "ALTER TABLE users ADD COLUMN x int;"
    assert finding.fix is not None
    assert "migration.baseline" in finding.fix and "/etc/guardians/shop.sql" in finding.fix
    assert "resubmit" in finding.fix
    assert grade([finding]).risk is RiskLevel.BLOCKED
    verification = broken.verification("17.2", 0.1)
    assert (verification.up_applied, verification.rollback_restored, verification.reapplied) \
        == (StepOutcome.SKIPPED,) * 3
    assert verification.error is not None and "42P01" in verification.error
    assert "statement: ALTER TABLE users" in verification.error


async def test_an_unreadable_baseline_blocks_the_change_unverified_and_keeps_the_analysis(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "no-such-schema.sql"
    assessment = await assess(change(ADD_COLUMN), MigrationPolicy(baseline=missing), UNREACHABLE)
    assert assessment.risk is RiskLevel.BLOCKED
    assert assessment.broken_baseline is not None
    assert str(missing) in assessment.broken_baseline.problem
    rules = [f.rule for f in assessment.findings]
    assert rules[-1] == "shadow-baseline-failed"
    assert "adding-required-field" in rules, "the static analysis is still reported"
    causes = [assessment.findings[i].rule for i in assessment.grade.causes]
    assert causes == ["shadow-baseline-failed"]
    published = assessment.published(change(ADD_COLUMN))
    assert published.verification is not None
    assert published.verification.up_applied is StepOutcome.SKIPPED
    assert not assessment.rollback_verified


async def test_a_change_without_migrations_does_not_need_the_baseline(tmp_path: Path) -> None:
    assessment = await assess(change(), MigrationPolicy(baseline=tmp_path / "gone.sql"),
                              UNREACHABLE)
    assert assessment.broken_baseline is None
    assert assessment.verification is None
    assert assessment.risk is RiskLevel.LOW
