"""What a reviewer reads and what the deploy guardian is told to watch, derived from findings:
the safety checklist (MEDIUM), the detailed plan (HIGH) and the monitoring plan."""

from __future__ import annotations

from collections.abc import Sequence

from schemas.events.migration import (
    ChecklistItem,
    DetailedPlan,
    LockMode,
    MonitoringPlan,
    PlanStep,
    RiskLevel,
    WatchedMetric,
)
from services.migration.domain.findings import Effect, Finding

GENERAL_CHECKS = (
    ("backup-recent", "A verified backup of the database is recent enough to restore from."),
    ("off-peak", "The deploy is scheduled when the affected tables see the least traffic."),
)

# Which of the service's analysis metrics an effect puts at risk, and why.
_WATCH: dict[Effect, tuple[tuple[str, str], ...]] = {
    Effect.BLOCKING_LOCK: (("latency-p99", "queries queue behind the lock"),
                           ("error-rate", "requests time out while the lock is held")),
    Effect.REWRITE: (("latency-p99", "the table is rewritten under an exclusive lock"),
                     ("error-rate", "requests time out during the rewrite")),
    Effect.BACKFILL: (("latency-p99", "the backfill competes with live queries"),),
    Effect.DATA_LOSS: (("error-rate", "code that still reads the dropped data fails"),),
    Effect.BREAKING_RENAME: (("error-rate", "running clients still use the old name"),),
    Effect.FAILS_ON_EXISTING_ROWS: (("error-rate", "writes fail against the new constraint"),),
    Effect.INCOMPATIBLE: (("error-rate", "the new configuration or dependency misbehaves"),),
    Effect.ROLLBACK_DEFECT: (("error-rate", "the rollback cannot be trusted"),),
}


def finding_id(index: int) -> str:
    return f"F{index + 1}"


def checklist(findings: Sequence[Finding]) -> tuple[ChecklistItem, ...]:
    """One item per finding, then the general checks every risky change gets."""
    items = [
        ChecklistItem(
            id=f"C{i + 1}",
            finding_id=finding_id(i),
            text=f"{f.message}" + (f" Safe alternative: {f.fix}" if f.fix else ""),
        )
        for i, f in enumerate(findings)
    ]
    items += [ChecklistItem(id=key, text=text) for key, text in GENERAL_CHECKS]
    return tuple(items)


def detailed_plan(
    findings: Sequence[Finding], *, rollback_verified: bool, has_rollback: bool
) -> DetailedPlan:
    """Ordered steps for a team review: the risky statements with their safe alternatives."""
    steps = [
        PlanStep(order=1, action="Confirm a verified backup exists and note its snapshot id.")
    ]
    for i, f in enumerate(findings):
        if f.effect in (Effect.ADVISORY, Effect.MISSING_TIMEOUT):
            continue
        where = f"{f.file}:{f.line}" if f.file and f.line else (f.file or "the change")
        steps.append(PlanStep(
            order=len(steps) + 1,
            action=f"{where}: {f.message}",
            finding_ids=(finding_id(i),),
            safe_alternative=f.fix,
            expected_lock=f.lock,
        ))
    steps.append(PlanStep(order=len(steps) + 1,
                          action="Deploy through the canary and watch the monitoring plan."))
    locks = sorted({f.lock for f in findings if f.lock is not None},
                   key=list(LockMode).index)
    if not has_rollback:
        rollback = "No down script: rolling back means restoring the database from the backup."
    elif rollback_verified:
        rollback = ("Run the down scripts in reverse order; verified on a shadow database to "
                    "restore the schema exactly, and the change re-applies afterwards.")
    else:
        rollback = ("The down scripts did NOT restore the schema on the shadow database (see "
                    "the rollback findings): fix them, or plan a restore from backup.")
    return DetailedPlan(
        steps=tuple(steps),
        rollback=rollback,
        rollback_verified=rollback_verified,
        lock_impact=(
            f"Strongest lock taken: {locks[-1].value} (statements: "
            f"{sum(1 for f in findings if f.lock is not None)})" if locks else None
        ),
    )


def monitoring_plan(
    findings: Sequence[Finding], risk: RiskLevel, base_seconds: float
) -> MonitoringPlan | None:
    """Metrics the deploy guardian must watch because of this change, and for how long."""
    by_metric: dict[str, tuple[list[str], list[str]]] = {}
    for i, f in enumerate(findings):
        for metric, reason in _WATCH.get(f.effect, ()):
            reasons, ids = by_metric.setdefault(metric, ([], []))
            if reason not in reasons:
                reasons.append(reason)
            ids.append(finding_id(i))
    if not by_metric:
        return None
    factor = 2 if risk in (RiskLevel.HIGH, RiskLevel.BLOCKED) else 1
    return MonitoringPlan(
        duration_seconds=base_seconds * factor,
        metrics=tuple(
            WatchedMetric(name=name, reason="; ".join(reasons), finding_ids=tuple(ids))
            for name, (reasons, ids) in sorted(by_metric.items())
        ),
    )
