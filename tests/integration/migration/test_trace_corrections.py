"""The shadow run corrects and confirms the static findings (`assess` on the real
PostgreSQL): a rewrite the rules could only guess at is graded by what the server did, and a
rewrite hidden where no rule looks (a DO block) is found by watching the table's storage."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.events.change import ChangeSubmitted, MigrationScript
from schemas.events.migration import RiskLevel
from services.migration.assessment import assess
from services.migration.domain.findings import Effect
from services.runtime.config import MigrationPolicy

pytestmark = pytest.mark.integration

# Built in a DO block, so the static analysis learns nothing of the column types: it has to
# guess whether a type change rewrites, and the shadow run knows.
BASELINE = """DO $$ BEGIN
  EXECUTE 'CREATE TABLE notes (id int PRIMARY KEY, body varchar(100) NOT NULL)';
END $$;
"""


def _change(up: str, down: str) -> ChangeSubmitted:
    return ChangeSubmitted(
        change_id="notes-2.0.0", service="notes", version="2.0.0", submitted_by="ci",
        migrations=(MigrationScript(name="0002/up.sql", up_sql=up, down_sql=down),))


@pytest.fixture
def policy(tmp_path: Path) -> MigrationPolicy:
    baseline = tmp_path / "schema.sql"
    baseline.write_text(BASELINE)
    return MigrationPolicy(baseline=baseline)


async def test_a_guessed_rewrite_that_did_not_happen_grades_as_the_lock_it_is(
    policy: MigrationPolicy, database_url: str,
) -> None:
    # varchar(100) -> varchar(200) only widens the limit: no rewrite, the catalog changes.
    assessment = await assess(
        _change("SET lock_timeout = '2s';\nALTER TABLE notes ALTER COLUMN body TYPE varchar(200);",
                "SET lock_timeout = '2s';\nALTER TABLE notes ALTER COLUMN body TYPE varchar(100);"),
        policy, database_url)
    [typed] = [f for f in assessment.findings if f.rule == "changing-column-type"]
    assert typed.effect is Effect.BLOCKING_LOCK
    assert "did not rewrite public.notes (it held ACCESS EXCLUSIVE)" in typed.message
    assert assessment.risk is RiskLevel.MEDIUM, "a rewrite would have been HIGH"
    assert not [f for f in assessment.findings if f.rule == "rewrite-observed"]


async def test_a_guessed_rewrite_that_happened_is_confirmed_and_stays_high(
    policy: MigrationPolicy, database_url: str,
) -> None:
    assessment = await assess(
        _change("SET lock_timeout = '2s';\nALTER TABLE notes ALTER COLUMN id TYPE bigint;",
                "SET lock_timeout = '2s';\nALTER TABLE notes ALTER COLUMN id TYPE int;"),
        policy, database_url)
    [typed] = [f for f in assessment.findings if f.rule == "changing-column-type"]
    assert typed.effect is Effect.REWRITE
    assert typed.message.endswith("Confirmed by the shadow run: public.notes was rewritten.")
    assert assessment.risk is RiskLevel.HIGH


async def test_a_rewrite_no_rule_predicted_is_found_on_the_shadow_run(
    policy: MigrationPolicy, database_url: str,
) -> None:
    hidden = ("SET lock_timeout = '2s';\n"
              "DO $$ BEGIN\n"
              "  EXECUTE 'ALTER TABLE notes ALTER COLUMN id TYPE bigint';\n"
              "END $$;")
    assessment = await assess(
        _change(hidden, "ALTER TABLE notes ALTER COLUMN id TYPE int;"), policy, database_url)
    [seen] = [f for f in assessment.findings if f.rule == "rewrite-observed"]
    assert (seen.file, seen.line, seen.target) == ("0002/up.sql", 2, "public.notes")
    assert "ACCESS EXCLUSIVE" in seen.message
    assert assessment.risk is RiskLevel.HIGH
    assert seen in [assessment.findings[i] for i in assessment.grade.causes]
