"""What the page shows, computed from read-model rows: pure functions, no I/O.

Two jobs. The ranks that break ties between events stamped with the same instant (so that
folding events in any order gives one answer), and the shaping of rows into the JSON the
page renders: a change's badge ("canary 20%", "rolled back"), a service's failing checks, a
backup's last recovery test. The page stays a renderer; what a stage is called and what
counts as failing is decided here, where it is unit-tested.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from schemas.events.deploy import DeployStage
from schemas.events.health import CheckResult, CheckStatus, HealthGrade
from schemas.events.incident import IncidentStatus

Row = Mapping[str, Any]
JSON = dict[str, Any]

MIGRATION_RANK: dict[str, int] = {
    "assessed": 1,
    "review_requested": 2,
    "approved": 3,
    "blocked": 4,
}
"""Migration outcomes in causal order: an approval stamped with its assessment's instant wins."""

STAGE_RANK: dict[DeployStage, int] = {
    DeployStage.STAGING: 1,
    DeployStage.STAGING_TESTS: 2,
    DeployStage.CANARY: 3,
    DeployStage.PAUSED: 4,
    DeployStage.PRODUCTION: 5,
    DeployStage.MONITORING: 6,
    DeployStage.COMPLETED: 7,
    DeployStage.ROLLING_BACK: 8,
    DeployStage.FAILED: 9,
    DeployStage.ROLLED_BACK: 10,
}
"""Deploy stages in the order a rollout moves through them; a rollback ends it."""

INCIDENT_RANK: dict[IncidentStatus, int] = {
    IncidentStatus.TRIGGERED: 0,
    IncidentStatus.ACKNOWLEDGED: 1,
    IncidentStatus.MITIGATING: 2,
    IncidentStatus.RESOLVED: 3,
}

HEALTH_RANK = {"reported": 0, "changed": 1}
"""A transition carries the checks that caused it: it outranks a report of the same instant."""

GRADE_ORDER = {HealthGrade.RED: 0, HealthGrade.YELLOW: 1, HealthGrade.UNKNOWN: 2,
               HealthGrade.GREEN: 3}
"""Worst first, so the service that needs a look is at the top."""

TONE_OF_STAGE: dict[str, str] = {
    "submitted": "info",
    "assessed": "info",
    "review_requested": "warn",
    "approved": "ok",
    "blocked": "bad",
    DeployStage.STAGING: "progress",
    DeployStage.STAGING_TESTS: "progress",
    DeployStage.CANARY: "progress",
    DeployStage.PAUSED: "warn",
    DeployStage.PRODUCTION: "progress",
    DeployStage.MONITORING: "progress",
    DeployStage.COMPLETED: "ok",
    DeployStage.ROLLING_BACK: "bad",
    DeployStage.ROLLED_BACK: "bad",
    DeployStage.FAILED: "bad",
}


def stage_label(stage: str, weight: int | None) -> str:
    """The badge text of a deploy stage, with the canary's weight where it has one."""
    if stage == DeployStage.CANARY:
        return f"canary {weight}%" if weight is not None else "canary"
    if stage == DeployStage.PAUSED:
        return f"paused at {weight}%" if weight is not None else "paused"
    return stage.replace("_", " ")


def badge(row: Row) -> tuple[str, str, str]:
    """(state, label, tone) of a change: its deploy stage once it has one, before that what
    the migration guardian decided, and before that `submitted`."""
    stage = row.get("deploy_stage")
    if stage:
        return stage, stage_label(stage, row.get("canary_weight")), TONE_OF_STAGE[stage]
    status = row.get("migration_status")
    if status:
        label = "in review" if status == "review_requested" else status
        return status, label, TONE_OF_STAGE[status]
    return "submitted", "submitted", TONE_OF_STAGE["submitted"]


def failing_checks(checks: tuple[CheckResult, ...]) -> list[JSON]:
    """The checks a person should look at: every one that did not pass (unknown included:
    no data is never read as healthy)."""
    return [
        {
            "name": check.name,
            "kind": check.kind.value,
            "status": check.status.value,
            "critical": check.critical,
            "observed": check.observed,
            "unit": check.unit,
            "condition": check.condition,
            "message": check.message,
        }
        for check in checks
        if check.status is not CheckStatus.PASS
    ]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _json(value: Any) -> Any:
    """A jsonb column as asyncpg returns it without a codec (text), decoded."""
    return json.loads(value) if isinstance(value, str) else value


def shape_change(row: Row, analyses: Sequence[Row]) -> JSON:
    state, label, tone = badge(row)
    backup = _json(row.get("backup"))
    return {
        "change_id": row["change_id"],
        "service": row.get("service"),
        "version": row.get("version"),
        "previous_version": row.get("previous_version"),
        "submitted_by": row.get("submitted_by"),
        "submitted_at": _iso(row.get("submitted_at")),
        "risk": row.get("risk"),
        "findings": row.get("findings"),
        "risk_causes": _json(row.get("risk_causes")) or [],
        "state": state,
        "label": label,
        "tone": tone,
        "canary_weight": row.get("canary_weight"),
        "stage_reason": row.get("stage_reason"),
        "migration": _json(row.get("migration_detail")),
        "tests": _json(row.get("tests")),
        "completed": _json(row.get("completed")),
        "rolled_back": _json(row.get("rolled_back")),
        "failed": _json(row.get("failed")),
        "backup": backup,
        "infra_ready": _json(row.get("infra_ready")),
        "analyses": [shape_analysis(a) for a in analyses],
        "updated_at": _iso(row["last_event_at"]),
    }


def shape_analysis(row: Row) -> JSON:
    return {
        "metric": row["metric"],
        "analysis": row["analysis"],
        "stage": row["stage"],
        "query": row["query"],
        "condition": row["condition"],
        "values": _json(row["vals"]),
        "baseline_values": _json(row["baseline_vals"]),
        "outcome": row["outcome"],
        "error": row.get("error"),
        "critical": row["critical"],
        "canary_weight": row.get("canary_weight"),
        "measured_at": _iso(row["measured_at"]),
        "measurements": row["measurements"],
        "failures": row["failures"],
    }


def shape_review(row: Row) -> JSON:
    return {
        "change_id": row["change_id"],
        "service": row["service"],
        "version": row["version"],
        "risk": row.get("risk"),
        "review": row.get("review_kind"),
        "required_approvals": row.get("required_approvals"),
        "checklist_items": row.get("checklist_items"),
        "deadline": _iso(row.get("deadline")),
        "requested_at": _iso(row.get("requested_at")),
    }


def shape_health(row: Row) -> JSON:
    return {
        "service": row["service"],
        "grade": row["grade"],
        "previous_grade": row.get("previous_grade"),
        "failing": _json(row["failing"]),
        "checks_total": row.get("checks_total"),
        "change_id": row.get("change_id"),
        "graded_at": _iso(row["graded_at"]),
        "changed_at": _iso(row.get("changed_at")),
    }


def health_order(item: JSON) -> tuple[int, str]:
    return GRADE_ORDER.get(HealthGrade(item["grade"]), 9), item["service"]


def shape_backup(row: Row) -> JSON:
    """Last backup, last recovery test (its result and recovery time), size, next run.

    The recovery test is part of every run: a verified backup passed it; a run that failed in
    its recovery test failed it. A newer failure in another phase leaves the last test's result
    as it was and is shown as the last failure."""
    verified = _json(row.get("verified"))
    failure = _json(row.get("failure"))
    verified_at, failed_at = row.get("verified_at"), row.get("failed_at")
    test: JSON | None = None
    if verified is not None:
        test = {"result": "passed", "at": _iso(verified_at),
                "recovery_seconds": verified.get("recovery_seconds")}
    if (failure is not None and failure.get("phase") == "recovery_test"
            and (verified_at is None or failed_at > verified_at)):
        test = {"result": "failed", "at": _iso(failed_at), "recovery_seconds": None,
                "reason": failure.get("reason")}
    return {
        "service": row["service"],
        "last_backup_at": _iso(verified_at),
        "last_backup": verified,
        "recovery_test": test,
        "size_bytes": verified.get("size_bytes") if verified else None,
        "next_backup_at": verified.get("next_backup_at") if verified else None,
        "last_failure": (
            {**failure, "at": _iso(failed_at)}
            if failure is not None and (verified_at is None or failed_at > verified_at)
            else None
        ),
    }


def shape_incident(row: Row) -> JSON:
    return {
        "incident_id": row["incident_id"],
        "service": row["service"],
        "severity": row.get("severity"),
        "cause": row.get("cause"),
        "summary": row.get("summary"),
        "change_id": row.get("change_id"),
        "status": row["status"],
        "count": row["count"],
        "last_entry": _json(row.get("last_entry")),
        "opened_at": _iso(row.get("opened_at")),
        "updated_at": _iso(row["status_at"]),
        "resolved": _json(row.get("resolved")),
    }


def shape_alert(row: Row) -> JSON:
    return {
        "dedup_key": row["dedup_key"],
        "severity": row["severity"],
        "summary": row["summary"],
        "raised_by": row["raised_by"],
        "service": row.get("service"),
        "count": row["count"],
        "at": _iso(row["at"]),
    }
