"""What the page says about a change, a service and a backup (services/dashboard/view.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from schemas.events.deploy import DeployStage
from schemas.events.health import CheckKind, CheckResult, CheckStatus
from services.dashboard import view

T = datetime(2026, 11, 28, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({}, ("submitted", "submitted", "info")),
        ({"migration_status": "assessed"}, ("assessed", "assessed", "info")),
        ({"migration_status": "review_requested"}, ("review_requested", "in review", "warn")),
        ({"migration_status": "blocked"}, ("blocked", "blocked", "bad")),
        ({"migration_status": "approved", "deploy_stage": "staging"},
         ("staging", "staging", "progress")),
        ({"deploy_stage": "staging_tests"}, ("staging_tests", "staging tests", "progress")),
        ({"deploy_stage": "canary", "canary_weight": 20}, ("canary", "canary 20%", "progress")),
        ({"deploy_stage": "canary"}, ("canary", "canary", "progress")),
        ({"deploy_stage": "paused", "canary_weight": 50}, ("paused", "paused at 50%", "warn")),
        ({"deploy_stage": "monitoring"}, ("monitoring", "monitoring", "progress")),
        ({"deploy_stage": "completed"}, ("completed", "completed", "ok")),
        ({"deploy_stage": "rolled_back"}, ("rolled_back", "rolled back", "bad")),
        ({"deploy_stage": "failed"}, ("failed", "failed", "bad")),
    ],
)
def test_a_change_s_badge_is_its_deploy_stage_else_the_migration_verdict(
    row: dict[str, object], expected: tuple[str, str, str]
) -> None:
    assert view.badge(row) == expected


def test_every_deploy_stage_has_a_rank_and_a_tone_and_a_rollback_ends_the_order() -> None:
    assert set(view.STAGE_RANK) == set(DeployStage)
    assert all(stage in view.TONE_OF_STAGE for stage in DeployStage)
    assert max(view.STAGE_RANK, key=view.STAGE_RANK.__getitem__) is DeployStage.ROLLED_BACK
    ranks = [view.STAGE_RANK[s] for s in (DeployStage.STAGING, DeployStage.CANARY,
                                          DeployStage.PRODUCTION, DeployStage.COMPLETED)]
    assert ranks == sorted(ranks)


def test_failing_checks_are_every_check_that_did_not_pass_unknown_included() -> None:
    checks = tuple(
        CheckResult(name=status.value, kind=CheckKind.HTTP, status=status,
                    condition="[STATUS] == 200")
        for status in CheckStatus
    )
    failing = view.failing_checks(checks)
    assert [c["name"] for c in failing] == ["warn", "fail", "unknown"]
    assert failing[0]["condition"] == "[STATUS] == 200"


def _backup(verified_at: datetime | None, failed_at: datetime | None, phase: str = "backup"
            ) -> dict[str, object]:
    return {
        "service": "shop",
        "verified_at": verified_at,
        "verified": ({"size_bytes": 10, "recovery_seconds": 2.5,
                      "next_backup_at": "2026-11-29T02:00:00+00:00"} if verified_at else None),
        "failed_at": failed_at,
        "failure": {"phase": phase, "reason": "boom"} if failed_at else None,
    }


def test_a_verified_backup_passed_its_recovery_test_with_its_time_size_and_next_run() -> None:
    shaped = view.shape_backup(_backup(T, None))
    assert shaped["recovery_test"] == {"result": "passed", "at": T.isoformat(),
                                       "recovery_seconds": 2.5}
    assert (shaped["size_bytes"], shaped["next_backup_at"]) == (10, "2026-11-29T02:00:00+00:00")
    assert shaped["last_failure"] is None


def test_a_newer_failed_recovery_test_is_the_last_test_and_an_older_failure_is_history() -> None:
    later = T + timedelta(hours=1)
    failed_test = view.shape_backup(_backup(T, later, "recovery_test"))
    assert failed_test["recovery_test"]["result"] == "failed"
    assert failed_test["last_failure"]["reason"] == "boom"
    other_phase = view.shape_backup(_backup(T, later, "repository_check"))
    assert other_phase["recovery_test"]["result"] == "passed"  # the last test did pass
    assert other_phase["last_failure"]["phase"] == "repository_check"
    old_failure = view.shape_backup(_backup(later, T, "recovery_test"))
    assert old_failure["recovery_test"]["result"] == "passed"
    assert old_failure["last_failure"] is None


def test_services_are_listed_worst_grade_first() -> None:
    items = [{"service": n, "grade": g} for n, g in
             [("a", "green"), ("b", "red"), ("c", "unknown"), ("d", "yellow")]]
    assert [i["service"] for i in sorted(items, key=view.health_order)] == ["b", "d", "c", "a"]
