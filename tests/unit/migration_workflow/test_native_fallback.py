"""A failure of the native SQL analysis (a bug: a Rust panic, raised as `NativeError`) costs
the change nothing: the migration guardian logs it and runs the Python analysis, which finds
the same."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from schemas.events.change import ChangeSubmitted, MigrationScript
from schemas.events.migration import RiskLevel
from services.migration.assessment import assess
from services.migration.domain import native_sql
from services.migration.domain.sql_analysis import SqlFile
from services.runtime.config import MigrationPolicy

UNREACHABLE = "postgresql://nobody:secret@127.0.0.1:1/none"
"""Never dialled: a broken baseline skips the shadow database."""


async def test_a_failing_native_analysis_falls_back_to_the_python_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    if not native_sql.available():
        pytest.fail("the native SQL analysis is not built: run `make native`")
    calls: list[str] = []

    def fail(self: native_sql.NativeAnalysis, file: SqlFile) -> None:
        calls.append(file.name)
        raise native_sql.NativeError("boom at rules/table_rules.rs")

    monkeypatch.setattr(native_sql.NativeAnalysis, "analyse_file", fail)
    change = ChangeSubmitted(
        change_id="shop-2.0.0", service="shop", version="2.0.0", submitted_by="ci",
        migrations=(MigrationScript(name="0002/up.sql",
                                    up_sql="ALTER TABLE t ADD COLUMN x int NOT NULL;",
                                    down_sql="ALTER TABLE t DROP COLUMN x;"),))
    with caplog.at_level(logging.ERROR, logger="services.migration.assessment"):
        assessment = await assess(change, MigrationPolicy(baseline=tmp_path / "gone.sql"),
                                  UNREACHABLE)
    assert calls == ["0002/up.sql"], "the native analysis was tried first"
    assert "adding-required-field" in [f.rule for f in assessment.findings]
    assert assessment.risk is RiskLevel.BLOCKED  # the missing baseline, as without the failure
    assert any("boom at rules/table_rules.rs" in r.getMessage() and "shop-2.0.0" in r.getMessage()
               for r in caplog.records)
