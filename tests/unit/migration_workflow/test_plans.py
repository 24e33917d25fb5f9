"""The checklist, the detailed plan and the monitoring plan follow from the findings."""

from __future__ import annotations

from schemas.events.migration import LockMode, RiskLevel, Severity
from services.migration.domain.findings import Effect, Finding
from services.migration.domain.plans import checklist, detailed_plan, monitoring_plan

INDEX = Finding("require-concurrent-index-creation", Severity.WARNING,
                "CREATE INDEX on orders blocks writes", Effect.BLOCKING_LOCK, file="0002/up.sql",
                line=2, target="public.orders", fix="CREATE INDEX CONCURRENTLY",
                lock=LockMode.SHARE)
DROP = Finding("ban-drop-column", Severity.ERROR, "drops orders.total", Effect.DATA_LOSS,
               target="public.orders", lock=LockMode.ACCESS_EXCLUSIVE)
STYLE = Finding("prefer-text-field", Severity.INFO, "varchar(20)", Effect.ADVISORY)


def test_the_checklist_has_one_item_per_finding_plus_the_general_checks() -> None:
    items = checklist([INDEX, STYLE])
    assert [i.finding_id for i in items[:2]] == ["F1", "F2"]
    assert "CREATE INDEX CONCURRENTLY" in items[0].text
    assert {i.id for i in items[2:]} == {"backup-recent", "off-peak"}


def test_the_detailed_plan_skips_advisories_and_names_the_strongest_lock() -> None:
    plan = detailed_plan([INDEX, STYLE, DROP], rollback_verified=True, has_rollback=True)
    actions = [s.action for s in plan.steps]
    assert any("blocks writes" in a for a in actions)
    assert not any("varchar" in a for a in actions)
    assert [s.order for s in plan.steps] == list(range(1, len(plan.steps) + 1))
    assert plan.lock_impact is not None and "access_exclusive" in plan.lock_impact
    assert plan.rollback_verified and "verified" in plan.rollback


def test_a_plan_without_a_down_script_says_the_rollback_is_a_restore() -> None:
    plan = detailed_plan([DROP], rollback_verified=False, has_rollback=False)
    assert "restoring the database from the backup" in plan.rollback


def test_a_lock_puts_latency_and_errors_on_the_watch_list_for_longer_when_high() -> None:
    medium = monitoring_plan([INDEX], RiskLevel.MEDIUM, 600)
    high = monitoring_plan([INDEX, DROP], RiskLevel.HIGH, 600)
    assert medium is not None and high is not None
    assert {m.name for m in medium.metrics} == {"latency-p99", "error-rate"}
    assert medium.duration_seconds == 600 and high.duration_seconds == 1200
    errors = next(m for m in high.metrics if m.name == "error-rate")
    assert errors.finding_ids == ("F1", "F2")


def test_advisories_alone_need_no_monitoring_plan() -> None:
    assert monitoring_plan([STYLE], RiskLevel.LOW, 600) is None
