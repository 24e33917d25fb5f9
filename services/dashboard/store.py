"""The read model's SQL: folding events into rows, and reading the page's sections.

Every write is an upsert that is safe in any order: a value changes only for an event newer
than the one that set it (occurred_at, then a rank for ties; see view.py), the first event of
a change creates its row whichever it is, and counters only grow (each event is counted
once: the runtime's dedupe table sits in the same transaction). Every write also says which
section of the page changed, with a NOTIFY on the schema's channel (`dashboard.<schema>`,
payload the section). PostgreSQL delivers it only when the transaction commits and folds
repeats within one transaction, so the web side hears once per batch per section, and never
about a batch that rolled back.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Any

from schemas.events.backup import BackupFailed, BackupTrigger, BackupVerified
from schemas.events.change import ChangeSubmitted
from schemas.events.deploy import (
    DeployAnalysisMeasured,
    DeployCompleted,
    DeployFailed,
    DeployRolledBack,
    DeployStage,
    DeployStageChanged,
)
from schemas.events.health import HealthChanged, HealthReported, InfraReady
from schemas.events.incident import (
    IncidentOpened,
    IncidentResolved,
    IncidentStatus,
    IncidentUpdated,
)
from schemas.events.migration import (
    ApprovalPath,
    BlockReason,
    MigrationApproved,
    MigrationAssessed,
    MigrationBlocked,
    MigrationReviewRequested,
)
from schemas.events.ops import OpsAlert
from services.dashboard import view
from services.runtime.db import Connection

CHANNEL_PREFIX = "dashboard."
RECENT_CHANGES = 30
RECENT_RESOLVED_INCIDENTS = 10
MAX_ROWS = 200
"""A page lists what people can read; the API says how many rows it left out."""


class Section(StrEnum):
    """The parts of the page; a NOTIFY names the one that changed."""

    CHANGES = "changes"
    REVIEWS = "reviews"
    HEALTH = "health"
    BACKUPS = "backups"
    INCIDENTS = "incidents"
    ALERTS = "alerts"


def _dump(value: Any) -> str:
    return json.dumps(value, default=str, separators=(",", ":"))


def channel(schema: str) -> str:
    """The NOTIFY channel of the read model in `schema`: channels are per database, and two
    read models in one database (a test's copy beside the live one) must not wake each other."""
    return CHANNEL_PREFIX + schema


async def notify(conn: Connection, section: Section) -> None:
    await conn.execute("SELECT pg_notify($1 || current_schema(), $2)", CHANNEL_PREFIX,
                       section.value)


# -- changes --------------------------------------------------------------------------------


async def _touch(conn: Connection, change_id: str, service: str | None, version: str | None,
                 at: datetime) -> None:
    """The change's row, created by whichever of its events comes first."""
    await conn.execute(
        "INSERT INTO changes (change_id, service, version, last_event_at) VALUES ($1,$2,$3,$4)"
        " ON CONFLICT (change_id) DO UPDATE SET"
        " service = COALESCE(changes.service, EXCLUDED.service),"
        " version = COALESCE(changes.version, EXCLUDED.version),"
        " last_event_at = GREATEST(changes.last_event_at, EXCLUDED.last_event_at)",
        change_id, service, version, at,
    )
    await notify(conn, Section.CHANGES)


async def _migration(conn: Connection, change_id: str, status: str, at: datetime,
                     detail: dict[str, Any] | None, risk: str) -> None:
    await conn.execute(
        "UPDATE changes SET migration_status = $2, migration_at = $3, migration_rank = $4,"
        " migration_detail = $5::jsonb, risk = COALESCE(risk, $6)"
        " WHERE change_id = $1 AND (migration_at IS NULL"
        "  OR (migration_at, migration_rank) < ($3::timestamptz, $4::int))",
        change_id, status, at, view.MIGRATION_RANK[status],
        _dump(detail) if detail is not None else None, risk,
    )


async def _stage(conn: Connection, change_id: str, stage: DeployStage, at: datetime,
                 reason: str | None) -> None:
    await conn.execute(
        "UPDATE changes SET deploy_stage = $2, deploy_at = $3, deploy_rank = $4,"
        " stage_reason = $5"
        " WHERE change_id = $1 AND (deploy_at IS NULL"
        "  OR (deploy_at, deploy_rank) < ($3::timestamptz, $4::int)"
        # deploy.rolled_back and its stage change say the same stage at the same instant;
        # whichever comes second, the one with the reason is kept.
        "  OR ((deploy_at, deploy_rank) = ($3::timestamptz, $4::int)"
        "      AND stage_reason IS NULL AND $5::text IS NOT NULL))",
        change_id, stage.value, at, view.STAGE_RANK[stage], reason,
    )


async def change_submitted(conn: Connection, event: ChangeSubmitted) -> None:
    await _touch(conn, event.change_id, event.service, event.version, event.occurred_at)
    await conn.execute(
        "UPDATE changes SET previous_version = $2, submitted_by = $3, submitted_at = $4,"
        " service = $5, version = $6 WHERE change_id = $1",
        event.change_id, event.previous_version, event.submitted_by, event.occurred_at,
        event.service, event.version,
    )


async def migration_assessed(conn: Connection, event: MigrationAssessed) -> None:
    await _touch(conn, event.change_id, event.service, event.version, event.occurred_at)
    causes = [
        {"rule": f.rule, "severity": f.severity.value, "message": f.message}
        for f in event.findings if f.id in set(event.risk_causes)
    ]
    await conn.execute(
        "UPDATE changes SET risk = $2, findings = $3, risk_causes = $4::jsonb"
        " WHERE change_id = $1",
        event.change_id, event.risk.value, len(event.findings), _dump(causes),
    )
    await _migration(conn, event.change_id, "assessed", event.occurred_at, None,
                     event.risk.value)


async def review_requested(conn: Connection, event: MigrationReviewRequested) -> None:
    await _touch(conn, event.change_id, event.service, event.version, event.occurred_at)
    await _migration(conn, event.change_id, "review_requested", event.occurred_at,
                     {"review": event.review.value,
                      "required_approvals": event.required_approvals,
                      "deadline": event.deadline.isoformat()}, event.risk.value)
    await conn.execute(
        "INSERT INTO reviews (change_id, service, version, risk, review_kind,"
        " required_approvals, checklist_items, deadline, requested_at)"
        " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)"
        " ON CONFLICT (change_id) DO UPDATE SET (risk, review_kind, required_approvals,"
        "  checklist_items, deadline, requested_at) = (EXCLUDED.risk, EXCLUDED.review_kind,"
        "  EXCLUDED.required_approvals, EXCLUDED.checklist_items, EXCLUDED.deadline,"
        "  EXCLUDED.requested_at)"
        " WHERE reviews.requested_at IS NULL OR reviews.requested_at < EXCLUDED.requested_at",
        event.change_id, event.service, event.version, event.risk.value, event.review.value,
        event.required_approvals, len(event.checklist), event.deadline, event.occurred_at,
    )
    await notify(conn, Section.REVIEWS)


async def _review_decided(conn: Connection, change_id: str, service: str, version: str,
                          decision: str, at: datetime) -> None:
    """A decision ends the review requested before it; a request after it opens a new one."""
    await conn.execute(
        "INSERT INTO reviews (change_id, service, version, decided_at, decision)"
        " VALUES ($1,$2,$3,$4,$5)"
        " ON CONFLICT (change_id) DO UPDATE SET (decided_at, decision) ="
        "  (EXCLUDED.decided_at, EXCLUDED.decision)"
        " WHERE reviews.decided_at IS NULL OR reviews.decided_at < EXCLUDED.decided_at",
        change_id, service, version, at, decision,
    )
    await notify(conn, Section.REVIEWS)


async def migration_approved(conn: Connection, event: MigrationApproved) -> None:
    await _touch(conn, event.change_id, event.service, event.version, event.occurred_at)
    await _migration(conn, event.change_id, "approved", event.occurred_at,
                     {"approval": event.approval.value,
                      "approved_by": list(event.approved_by)}, event.risk.value)
    if event.approval is not ApprovalPath.AUTOMATIC:  # an automatic one was never in review
        await _review_decided(conn, event.change_id, event.service, event.version,
                              "approved", event.occurred_at)


async def migration_blocked(conn: Connection, event: MigrationBlocked) -> None:
    await _touch(conn, event.change_id, event.service, event.version, event.occurred_at)
    await _migration(conn, event.change_id, "blocked", event.occurred_at,
                     {"reason": event.reason.value, "details": list(event.details),
                      "rejected_by": list(event.rejected_by)}, event.risk.value)
    if event.reason is not BlockReason.FAILED_VALIDATION:
        await _review_decided(conn, event.change_id, event.service, event.version,
                              "blocked", event.occurred_at)


async def stage_changed(conn: Connection, event: DeployStageChanged) -> None:
    await _touch(conn, event.change_id, event.service, event.version, event.occurred_at)
    await _stage(conn, event.change_id, event.stage, event.occurred_at, event.reason)
    if event.canary_weight is not None:
        await conn.execute(
            "UPDATE changes SET canary_weight = $2, weight_at = $3"
            " WHERE change_id = $1 AND (weight_at IS NULL OR weight_at < $3)",
            event.change_id, event.canary_weight, event.occurred_at,
        )
    if event.tests is not None:
        await conn.execute(
            "UPDATE changes SET tests = $2::jsonb WHERE change_id = $1",
            event.change_id, event.tests.model_dump_json(exclude={"cases"}),
        )


async def analysis_measured(conn: Connection, event: DeployAnalysisMeasured) -> None:
    await _touch(conn, event.change_id, event.service, event.version, event.occurred_at)
    failed = 1 if event.outcome.value == "failed" else 0
    values = (event.stage.value, event.query, event.condition, _dump(list(event.values)),
              _dump(list(event.baseline_values)), event.outcome.value, event.error,
              event.critical, event.canary_weight, event.occurred_at, event.analysis)
    inserted = await conn.fetchval(
        "INSERT INTO analyses (change_id, metric, stage, query, condition, vals, baseline_vals,"
        " outcome, error, critical, canary_weight, measured_at, analysis, failures)"
        " VALUES ($1,$2,$3,$4,$5,$6::jsonb,$7::jsonb,$8,$9,$10,$11,$12,$13,$14)"
        " ON CONFLICT (change_id, metric) DO UPDATE SET"
        "  measurements = analyses.measurements + 1,"
        "  failures = analyses.failures + EXCLUDED.failures"
        " RETURNING xmax = 0",
        event.change_id, event.metric, *values, failed,
    )
    if not inserted:  # the latest measurement's values replace older ones only
        await conn.execute(
            "UPDATE analyses SET (stage, query, condition, vals, baseline_vals, outcome, error,"
            " critical, canary_weight, measured_at, analysis) ="
            " ($3, $4, $5, $6::jsonb, $7::jsonb, $8, $9, $10, $11, $12, $13)"
            " WHERE change_id = $1 AND metric = $2 AND measured_at < $12",
            event.change_id, event.metric, *values,
        )


def _breach(event: DeployRolledBack | DeployFailed) -> dict[str, Any] | None:
    return event.breach.model_dump(mode="json") if event.breach is not None else None


async def deploy_completed(conn: Connection, event: DeployCompleted) -> None:
    await _touch(conn, event.change_id, event.service, event.version, event.occurred_at)
    await _stage(conn, event.change_id, DeployStage.COMPLETED, event.occurred_at, None)
    await conn.execute(
        "UPDATE changes SET completed = $2::jsonb WHERE change_id = $1", event.change_id,
        _dump({"at": event.occurred_at.isoformat(), "environment": event.environment,
               "duration_seconds": event.duration_seconds,
               "previous_version": event.previous_version}),
    )


async def deploy_rolled_back(conn: Connection, event: DeployRolledBack) -> None:
    await _touch(conn, event.change_id, event.service, event.version, event.occurred_at)
    await _stage(conn, event.change_id, DeployStage.ROLLED_BACK, event.occurred_at,
                 event.reason)
    await conn.execute(
        "UPDATE changes SET rolled_back = $2::jsonb WHERE change_id = $1", event.change_id,
        _dump({"at": event.occurred_at.isoformat(), "stage": event.stage.value,
               "trigger": event.trigger.value, "reason": event.reason,
               "restored_version": event.restored_version, "breach": _breach(event),
               "requested_by": event.requested_by,
               "rollback_seconds": event.rollback_seconds}),
    )


async def deploy_failed(conn: Connection, event: DeployFailed) -> None:
    await _touch(conn, event.change_id, event.service, event.version, event.occurred_at)
    await _stage(conn, event.change_id, DeployStage.FAILED, event.occurred_at, event.reason)
    await conn.execute(
        "UPDATE changes SET failed = $2::jsonb WHERE change_id = $1", event.change_id,
        _dump({"at": event.occurred_at.isoformat(), "stage": event.stage.value,
               "failure": event.failure.value, "reason": event.reason,
               "breach": _breach(event), "rolled_back": event.rolled_back}),
    )


async def infra_ready(conn: Connection, event: InfraReady) -> None:
    await _touch(conn, event.change_id, event.service, event.version, event.occurred_at)
    await conn.execute(
        "UPDATE changes SET infra_ready = $2::jsonb WHERE change_id = $1", event.change_id,
        _dump({"at": event.occurred_at.isoformat(), "gate_seconds": event.gate_seconds,
               "checks_passed": event.checks_passed}),
    )


# -- backups ---------------------------------------------------------------------------------


async def backup_verified(conn: Connection, event: BackupVerified) -> None:
    summary = {
        "change_id": event.change_id,
        "version": event.version,
        "trigger": event.trigger.value,
        "repository": event.repository,
        "size_bytes": sum(s.size_bytes for s in event.snapshots),
        "added_bytes": sum(s.added_bytes or 0 for s in event.snapshots),
        "recovery_seconds": event.recovery_seconds,
        "parts": [{"kind": s.kind.value, "source": s.source, "snapshot_id": s.snapshot_id,
                   "size_bytes": s.size_bytes, "recovery_seconds": s.recovery_seconds}
                  for s in event.snapshots],
        "next_backup_at": event.next_backup_at.isoformat() if event.next_backup_at else None,
    }
    await conn.execute(
        "INSERT INTO backups (service, verified_at, verified) VALUES ($1, $2, $3::jsonb)"
        " ON CONFLICT (service) DO UPDATE SET (verified_at, verified) ="
        "  (EXCLUDED.verified_at, EXCLUDED.verified)"
        " WHERE backups.verified_at IS NULL OR backups.verified_at < EXCLUDED.verified_at",
        event.service, event.occurred_at, _dump(summary),
    )
    await notify(conn, Section.BACKUPS)
    await _change_backup(conn, event, {"result": "verified",
                                       "recovery_seconds": event.recovery_seconds,
                                       "size_bytes": summary["size_bytes"]})


async def backup_failed(conn: Connection, event: BackupFailed) -> None:
    failure = {
        "change_id": event.change_id,
        "trigger": event.trigger.value,
        "phase": event.phase.value,
        "reason": event.reason,
        "kind": event.kind.value if event.kind else None,
        "source": event.source,
        "differences": [d.model_dump(mode="json") for d in event.differences[:20]],
        "will_retry": event.will_retry,
    }
    await conn.execute(
        "INSERT INTO backups (service, failed_at, failure) VALUES ($1, $2, $3::jsonb)"
        " ON CONFLICT (service) DO UPDATE SET (failed_at, failure) ="
        "  (EXCLUDED.failed_at, EXCLUDED.failure)"
        " WHERE backups.failed_at IS NULL OR backups.failed_at < EXCLUDED.failed_at",
        event.service, event.occurred_at, _dump(failure),
    )
    await notify(conn, Section.BACKUPS)
    await _change_backup(conn, event, {"result": "failed", "phase": event.phase.value,
                                       "reason": event.reason})


async def _change_backup(conn: Connection, event: BackupVerified | BackupFailed,
                         backup: dict[str, Any]) -> None:
    """A deploy's backup is a step of its change; a scheduled or manual run's change id is
    named after its schedule (see schemas/events/backup.py) and is no release to list."""
    if event.trigger is not BackupTrigger.DEPLOY:
        return
    change_id, at = event.change_id, event.occurred_at
    await _touch(conn, change_id, event.service, event.version, at)
    await conn.execute(
        "UPDATE changes SET backup = $2::jsonb, backup_at = $3"
        " WHERE change_id = $1 AND (backup_at IS NULL OR backup_at < $3)",
        change_id, _dump({**backup, "at": at.isoformat()}), at,
    )


# -- health ----------------------------------------------------------------------------------


async def health_reported(conn: Connection, event: HealthReported) -> None:
    await _grade(conn, event.service, event.grade.value, view.failing_checks(event.checks),
                 event.change_id, event.occurred_at, "reported")
    await conn.execute(
        "UPDATE service_health SET checks_total = $2, reported_at = $3"
        " WHERE service = $1 AND (reported_at IS NULL OR reported_at < $3)",
        event.service, len(event.checks), event.occurred_at,
    )


async def health_changed(conn: Connection, event: HealthChanged) -> None:
    await _grade(conn, event.service, event.grade.value, view.failing_checks(event.causes),
                 event.change_id, event.occurred_at, "changed")
    await conn.execute(
        "UPDATE service_health SET previous_grade = $2, changed_at = $3"
        " WHERE service = $1 AND (changed_at IS NULL OR changed_at < $3)",
        event.service, event.previous_grade.value, event.occurred_at,
    )


async def _grade(conn: Connection, service: str, grade: str, failing: list[dict[str, Any]],
                 change_id: str | None, at: datetime, kind: str) -> None:
    """The grade and the checks behind it, from the newest report or transition."""
    await conn.execute(
        "INSERT INTO service_health (service, grade, failing, change_id, graded_at,"
        " graded_rank) VALUES ($1, $2, $3::jsonb, $4, $5, $6)"
        " ON CONFLICT (service) DO UPDATE SET (grade, failing, change_id, graded_at,"
        "  graded_rank) = (EXCLUDED.grade, EXCLUDED.failing, EXCLUDED.change_id,"
        "  EXCLUDED.graded_at, EXCLUDED.graded_rank)"
        " WHERE (service_health.graded_at, service_health.graded_rank)"
        "  < (EXCLUDED.graded_at, EXCLUDED.graded_rank)",
        service, grade, _dump(failing), change_id, at, view.HEALTH_RANK[kind],
    )
    await notify(conn, Section.HEALTH)


# -- incidents and alerts --------------------------------------------------------------------

async def _incident_state(conn: Connection, incident_id: str, service: str, severity: str,
                          status: IncidentStatus, at: datetime, count: int) -> None:
    """The incident's current status and severity: the newest event's (status rank for ties)."""
    rank = view.INCIDENT_RANK[status]
    await conn.execute(
        "INSERT INTO incidents (incident_id, service, severity, status, status_at, status_rank,"
        " count) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        " ON CONFLICT (incident_id) DO UPDATE SET"
        " count = GREATEST(incidents.count, EXCLUDED.count)",
        incident_id, service, severity, status.value, at, rank, count,
    )
    await conn.execute(
        "UPDATE incidents SET (severity, status, status_at, status_rank) = ($2, $3, $4, $5)"
        " WHERE incident_id = $1 AND (status_at, status_rank) < ($4::timestamptz, $5::int)",
        incident_id, severity, status.value, at, rank,
    )
    await notify(conn, Section.INCIDENTS)


async def incident_opened(conn: Connection, event: IncidentOpened) -> None:
    await _incident_state(conn, event.incident_id, event.service, event.severity.value,
                          IncidentStatus.TRIGGERED, event.occurred_at, 1)
    await conn.execute(
        "UPDATE incidents SET cause = $2, summary = $3, change_id = $4, opened_at = $5"
        " WHERE incident_id = $1",
        event.incident_id, event.cause.value, event.summary, event.change_id,
        event.occurred_at,
    )


async def incident_updated(conn: Connection, event: IncidentUpdated) -> None:
    await _incident_state(conn, event.incident_id, event.service, event.severity.value,
                          event.status, event.occurred_at, event.count)
    entry = event.entry
    await conn.execute(
        "UPDATE incidents SET last_entry = $2::jsonb, last_entry_at = $3"
        " WHERE incident_id = $1 AND (last_entry_at IS NULL OR last_entry_at < $3)",
        event.incident_id,
        _dump({"at": entry.at.isoformat(), "kind": entry.kind.value, "actor": entry.actor,
               "message": entry.message,
               "action": entry.action.value if entry.action else None}),
        entry.at,
    )


async def incident_resolved(conn: Connection, event: IncidentResolved) -> None:
    await _incident_state(conn, event.incident_id, event.service, event.severity.value,
                          IncidentStatus.RESOLVED, event.occurred_at, event.count)
    await conn.execute(
        "UPDATE incidents SET resolved = $2::jsonb, change_id = COALESCE(change_id, $3)"
        " WHERE incident_id = $1",
        event.incident_id,
        _dump({"at": event.occurred_at.isoformat(), "resolved_by": event.resolved_by,
               "resolution": event.resolution,
               "durations": event.durations.model_dump(mode="json")}),
        event.change_id,
    )


async def ops_alert(conn: Connection, event: OpsAlert) -> None:
    await conn.execute(
        "INSERT INTO alerts (dedup_key, severity, summary, raised_by, service, resolved,"
        " count, at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)"
        " ON CONFLICT (dedup_key) DO UPDATE SET (severity, summary, raised_by, service,"
        "  resolved, count, at) = (EXCLUDED.severity, EXCLUDED.summary, EXCLUDED.raised_by,"
        "  EXCLUDED.service, EXCLUDED.resolved, GREATEST(alerts.count, EXCLUDED.count),"
        "  EXCLUDED.at)"
        " WHERE alerts.at < EXCLUDED.at OR (alerts.at = EXCLUDED.at AND EXCLUDED.resolved)",
        event.dedup_key, event.severity.value, event.summary, event.raised_by, event.service,
        event.resolved, event.count, event.occurred_at,
    )
    await notify(conn, Section.ALERTS)


# -- reading ---------------------------------------------------------------------------------


async def read_sections(conn: Connection, sections: Iterable[Section]) -> dict[str, Any]:
    """The named sections of the page, shaped for it (view.py), in one snapshot."""
    wanted = set(sections)
    out: dict[str, Any] = {}
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        if Section.CHANGES in wanted:
            out["changes"] = await _changes(conn)
        if Section.REVIEWS in wanted:
            rows = await conn.fetch(
                "SELECT * FROM reviews WHERE requested_at IS NOT NULL"
                " AND (decided_at IS NULL OR decided_at < requested_at)"
                " ORDER BY deadline NULLS LAST, change_id LIMIT $1", MAX_ROWS)
            out["reviews"] = [view.shape_review(dict(r)) for r in rows]
        if Section.HEALTH in wanted:
            rows = await conn.fetch("SELECT * FROM service_health ORDER BY service LIMIT $1",
                                    MAX_ROWS)
            out["health"] = sorted((view.shape_health(dict(r)) for r in rows),
                                   key=view.health_order)
        if Section.BACKUPS in wanted:
            rows = await conn.fetch("SELECT * FROM backups ORDER BY service LIMIT $1", MAX_ROWS)
            out["backups"] = [view.shape_backup(dict(r)) for r in rows]
        if Section.INCIDENTS in wanted:
            rows = await conn.fetch(
                "(SELECT * FROM incidents WHERE status <> 'resolved'"
                "  ORDER BY status_at DESC LIMIT $1)"
                " UNION ALL (SELECT * FROM incidents WHERE status = 'resolved'"
                "  ORDER BY status_at DESC LIMIT $2)", MAX_ROWS, RECENT_RESOLVED_INCIDENTS)
            out["incidents"] = [view.shape_incident(dict(r)) for r in rows]
        if Section.ALERTS in wanted:
            rows = await conn.fetch(
                "SELECT * FROM alerts WHERE NOT resolved ORDER BY at DESC LIMIT $1", MAX_ROWS)
            out["alerts"] = [view.shape_alert(dict(r)) for r in rows]
    return out


async def _changes(conn: Connection) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT * FROM changes ORDER BY last_event_at DESC, change_id LIMIT $1", RECENT_CHANGES)
    ids = [r["change_id"] for r in rows]
    measured = await conn.fetch(
        "SELECT * FROM analyses WHERE change_id = ANY($1::text[]) ORDER BY metric", ids)
    by_change: dict[str, list[dict[str, Any]]] = {}
    for m in measured:
        by_change.setdefault(m["change_id"], []).append(dict(m))
    return [view.shape_change(dict(r), by_change.get(r["change_id"], [])) for r in rows]
