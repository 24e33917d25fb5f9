"""Incident service: emergency procedures, the incident log, escalation.

Failures open incidents, deduplicated by service and cause family (one open incident per
problem, with a count): `deploy.failed`, `deploy.rolled_back`, `backup.failed` (once it
will not retry), `health.changed` to red, and `migration.blocked` when configured. Each
incident runs its procedure as a durable state machine in `incidents`: the automatic action
of its cause (a signed `deploy.rollback.requested`, `service.restart.requested` or
`backup.restore.requested`) and the outcome event it waits for, with a deadline; an action
that fails or times out escalates along the service's levels (each step an
`incident.escalated` and an `ops.alerts` page), level after level until a person
acknowledges or resolves it (`incident.update.requested`, signed). Every step is a
timeline entry (`incident.updated`), the log a post-incident review starts from.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from schemas.base import Event
from schemas.events.backup import BackupFailed, BackupRestored, BackupRestoreRequested
from schemas.events.deploy import (
    DeployFailed,
    DeployFailure,
    DeployRollbackRequested,
    DeployRolledBack,
    DeployStage,
)
from schemas.events.health import HealthChanged, HealthGrade, ServiceRestartRequested
from schemas.events.incident import (
    IncidentAction,
    IncidentCause,
    IncidentDurations,
    IncidentEscalated,
    IncidentOpened,
    IncidentResolved,
    IncidentSeverity,
    IncidentStatus,
    IncidentUpdated,
    IncidentUpdateRequested,
    RemediationAction,
    TimelineEntry,
    TimelineKind,
)
from schemas.events.migration import MigrationBlocked
from schemas.events.ops import AlertSeverity, OpsAlert
from services.incident.domain.policy import (
    SEVERITY,
    action_for,
    dedup_key,
    escalate,
    incident_id,
)
from services.runtime import Context, Guardian
from services.runtime.config import IncidentPolicy

log = logging.getLogger(__name__)
guardian = Guardian("incident", migrations=Path(__file__).parent / "migrations")
ACTOR = "incident"
SWEEP_SECONDS = 1.0
NOT_IN_PRODUCTION = {DeployStage.STAGING, DeployStage.STAGING_TESTS}


def _policy(service: str) -> IncidentPolicy:
    return guardian.settings.config.service(service).incident


def _now() -> datetime:
    return datetime.now(UTC)


# -- the log ---------------------------------------------------------------------------------


async def _entry(ctx: Context, row: Any, kind: TimelineKind, message: str, *,
                 actor: str = ACTOR, action: RemediationAction | None = None,
                 status: IncidentStatus | None = None, count: int | None = None) -> None:
    """Record one timeline entry and say it (`incident.updated`)."""
    at = _now()
    event_id = ctx.incoming.id if ctx.incoming else None
    await ctx.conn.execute(
        "INSERT INTO timeline (incident_id, at, kind, actor, message, action, event_id)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)",
        row["incident_id"], at, kind.value, actor, message[:2000],
        action.value if action else None, event_id)
    ctx.emit(IncidentUpdated(
        incident_id=row["incident_id"], service=row["service"],
        status=status or IncidentStatus(row["status"]),
        severity=IncidentSeverity(row["severity"]), count=count or row["count"],
        entry=TimelineEntry(at=at, kind=kind, actor=actor, message=message[:2000],
                            action=action, event_id=event_id),
    ))


async def _open(ctx: Context, *, service: str, cause: IncidentCause, summary: str,
                failed_at: datetime, change_id: str | None = None,
                version: str | None = None) -> tuple[Any, bool]:
    """The open incident for this problem (count + 1, a duplicate entry), or a new one."""
    key = dedup_key(service, cause)
    row = await ctx.conn.fetchrow(
        "UPDATE incidents SET count = count + 1 WHERE dedup_key = $1 AND status <> 'resolved'"
        " RETURNING *", key)
    if row is not None:
        await _entry(ctx, row, TimelineKind.DUPLICATE, f"reported again: {summary}")
        return row, False
    new_id = incident_id(service, cause, _now())
    severity = SEVERITY[cause]
    # Every incident time is the database's clock (now(): the transaction's start), so the
    # durations never mix two clocks.
    row = await ctx.conn.fetchrow(
        "INSERT INTO incidents (incident_id, dedup_key, service, cause, severity, status,"
        " summary, change_id, version, first_failure_at, opened_at)"
        " VALUES ($1,$2,$3,$4,$5,'triggered',$6,$7,$8,least($9, now()),now()) RETURNING *",
        new_id, key, service, cause.value, severity.value, summary[:2000], change_id,
        version, failed_at)
    ctx.emit(IncidentOpened(incident_id=new_id, dedup_key=key, service=service,
                            severity=severity, cause=cause, summary=summary[:2000],
                            change_id=change_id, version=version))
    await _entry(ctx, row, TimelineKind.DETECTED, summary)
    return row, True


async def _request(ctx: Context, row: Any, action: RemediationAction, reason: str) -> Any:
    """Send the action's signed command and wait for its outcome until the deadline."""
    policy = _policy(row["service"])
    iid, service = row["incident_id"], row["service"]
    command: Event
    if action is RemediationAction.ROLLBACK:
        assert row["change_id"] is not None
        command = DeployRollbackRequested(change_id=row["change_id"], service=service,
                                          requested_by=ACTOR, reason=reason[:500],
                                          incident_id=iid)
    elif action is RemediationAction.RESTART:
        command = ServiceRestartRequested(service=service, requested_by=ACTOR,
                                          reason=reason[:500], incident_id=iid)
    else:
        command = BackupRestoreRequested(service=service, requested_by=ACTOR,
                                         reason=reason[:500], change_id=row["change_id"],
                                         incident_id=iid)
    ctx.emit(command)
    row = await ctx.conn.fetchrow(
        "UPDATE incidents SET action = $2, action_state = 'requested', status = 'mitigating',"
        " action_deadline = now() + make_interval(secs => $3) WHERE incident_id = $1"
        " RETURNING *", iid, action.value, policy.action_timeout_seconds)
    await _entry(ctx, row, TimelineKind.ACTION_REQUESTED, f"{action.value} requested: {reason}",
                 action=action)
    return row


async def _succeeded(ctx: Context, row: Any, action: RemediationAction, message: str) -> None:
    row = await ctx.conn.fetchrow(
        "UPDATE incidents SET action_state = 'succeeded', action_deadline = NULL,"
        " mitigated_at = coalesce(mitigated_at, now()) WHERE incident_id = $1 RETURNING *",
        row["incident_id"])
    await _entry(ctx, row, TimelineKind.ACTION_SUCCEEDED, message, action=action)
    await _resolve(ctx, row, ACTOR, f"mitigated automatically: {message}")


async def _failed(ctx: Context, row: Any, action: RemediationAction | None, message: str,
                  kind: TimelineKind = TimelineKind.ACTION_FAILED) -> None:
    row = await ctx.conn.fetchrow(
        "UPDATE incidents SET action_state = $2, action_deadline = NULL"
        " WHERE incident_id = $1 RETURNING *", row["incident_id"],
        "timed_out" if kind is TimelineKind.ACTION_TIMED_OUT else "failed")
    await _entry(ctx, row, kind, message, action=action)
    await _escalate(ctx, row, f"automation did not fix it: {message}")


async def _escalate(ctx: Context, row: Any, reason: str) -> None:
    policy = _policy(row["service"])
    step = escalate(policy.levels, row["escalation_level"], _now())
    if step is None:
        return
    row = await ctx.conn.fetchrow(
        "UPDATE incidents SET escalation_level = $2, next_escalation_at = $3"
        " WHERE incident_id = $1 RETURNING *", row["incident_id"], step.level, step.next_at)
    ctx.emit(IncidentEscalated(
        incident_id=row["incident_id"], service=row["service"],
        severity=IncidentSeverity(row["severity"]), level=step.level,
        policy=policy.escalation_policy, notify=step.notify, reason=reason[:2000],
        next_escalation_at=step.next_at))
    ctx.emit(OpsAlert(
        dedup_key=f"{row['dedup_key']}/page", severity=AlertSeverity.CRITICAL,
        raised_by=ACTOR, service=row["service"], incident_id=row["incident_id"],
        change_id=row["change_id"], summary=f"{row['service']}: {row['summary']}"[:500],
        details=reason[:2000], notify=step.notify, escalation_level=step.level,
        count=row["count"]))
    await _entry(ctx, row, TimelineKind.ESCALATED,
                 f"level {step.level} paged ({', '.join(step.notify)}): {reason}")


async def _resolve(ctx: Context, row: Any, by: str, resolution: str) -> None:
    row = await ctx.conn.fetchrow(
        "UPDATE incidents SET status = 'resolved', resolved_at = now(), resolved_by = $2,"
        " resolution = $3, next_escalation_at = NULL, action_deadline = NULL"
        " WHERE incident_id = $1 AND status <> 'resolved' RETURNING *",
        row["incident_id"], by, resolution[:2000])
    if row is None:
        return
    await _entry(ctx, row, TimelineKind.RESOLVED, resolution, actor=by,
                 status=IncidentStatus.RESOLVED)
    opened, resolved = row["opened_at"], row["resolved_at"]
    durations = IncidentDurations(
        detect_seconds=max(0.0, (opened - row["first_failure_at"]).total_seconds()),
        mitigate_seconds=(max(0.0, (row["mitigated_at"] - opened).total_seconds())
                          if row["mitigated_at"] else None),
        resolve_seconds=max(0.0, (resolved - opened).total_seconds()))
    ctx.emit(IncidentResolved(
        incident_id=row["incident_id"], service=row["service"],
        severity=IncidentSeverity(row["severity"]), resolved_by=by,
        resolution=resolution[:2000], durations=durations, count=row["count"],
        change_id=row["change_id"], version=row["version"]))


async def _pending(ctx: Context, service: str, action: RemediationAction) -> Any:
    return await ctx.conn.fetchrow(
        "SELECT * FROM incidents WHERE service = $1 AND status <> 'resolved' AND action = $2"
        " AND action_state = 'requested' ORDER BY opened_at LIMIT 1 FOR UPDATE",
        service, action.value)


# -- failures in -----------------------------------------------------------------------------


@guardian.handles(DeployFailed)
async def on_deploy_failed(event: DeployFailed, ctx: Context) -> None:
    pending = await _pending(ctx, event.service, RemediationAction.ROLLBACK)
    if pending is not None and event.failure is DeployFailure.ROLLBACK_FAILED:
        await _failed(ctx, pending, RemediationAction.ROLLBACK, event.reason)
        return
    row, new = await _open(ctx, service=event.service, cause=IncidentCause.DEPLOY_FAILED,
                           summary=f"deploy of {event.version} failed in {event.stage.value}:"
                                   f" {event.reason}", failed_at=event.occurred_at,
                           change_id=event.change_id, version=event.version)
    if not new or row["action_state"] is not None:
        return
    if event.rolled_back:
        await _succeeded(ctx, row, RemediationAction.ROLLBACK,
                         f"the deploy guardian rolled back to {event.restored_version}")
    elif event.stage in NOT_IN_PRODUCTION:
        await _entry(ctx, row, TimelineKind.NOTE, "production was never touched: nothing to "
                     "roll back; the release needs a fix and a new change")
        await _escalate(ctx, row, "a release failed before production")
    elif action_for(_policy(event.service), IncidentCause.DEPLOY_FAILED) is not None:
        await _request(ctx, row, RemediationAction.ROLLBACK, event.reason)
    else:
        await _escalate(ctx, row, "no automatic action is configured")


@guardian.handles(DeployRolledBack)
async def on_rolled_back(event: DeployRolledBack, ctx: Context) -> None:
    pending = await _pending(ctx, event.service, RemediationAction.ROLLBACK)
    if pending is not None:
        await _succeeded(ctx, pending, RemediationAction.ROLLBACK,
                         f"rolled back to {event.restored_version} in "
                         f"{event.rollback_seconds or 0:.1f} s ({event.trigger.value})")
        return
    row, new = await _open(ctx, service=event.service,
                           cause=IncidentCause.DEPLOY_ROLLED_BACK,
                           summary=f"{event.version} rolled back from {event.stage.value}: "
                                   f"{event.reason}", failed_at=event.occurred_at,
                           change_id=event.change_id, version=event.version)
    if new:
        await _succeeded(ctx, row, RemediationAction.ROLLBACK,
                         f"the deploy guardian rolled back to {event.restored_version} "
                         f"({event.trigger.value})")


@guardian.handles(BackupFailed)
async def on_backup_failed(event: BackupFailed, ctx: Context) -> None:
    if event.will_retry:
        return  # the backup guardian is still on it
    row, new = await _open(ctx, service=event.service, cause=IncidentCause.BACKUP_FAILED,
                           summary=f"backup {event.phase.value} failed: {event.reason}",
                           failed_at=event.occurred_at, change_id=event.change_id,
                           version=event.version)
    if new:
        await _escalate(ctx, row, "backups of this service are not proven restorable")


@guardian.handles(HealthChanged)
async def on_health_changed(event: HealthChanged, ctx: Context) -> None:
    if event.grade is HealthGrade.GREEN:
        for action in (RemediationAction.RESTART, RemediationAction.RESTORE):
            pending = await _pending(ctx, event.service, action)
            if pending is not None:
                await _succeeded(ctx, pending, action, f"{event.service} is green again")
        return
    if event.grade is not HealthGrade.RED:
        return
    causes = "; ".join(f"{c.name}: {c.message}" for c in event.causes[:3]) or "red"
    row, new = await _open(ctx, service=event.service, cause=IncidentCause.HEALTH_RED,
                           summary=f"{event.service} is red: {causes}",
                           failed_at=event.occurred_at, change_id=event.change_id)
    if not new:
        return
    remedy = action_for(_policy(event.service), IncidentCause.HEALTH_RED)
    if remedy is None:
        await _escalate(ctx, row, "no automatic action is configured")
    else:
        await _request(ctx, row, remedy, causes)


@guardian.handles(BackupRestored)
async def on_restored(event: BackupRestored, ctx: Context) -> None:
    pending = await _pending(ctx, event.service, RemediationAction.RESTORE)
    if pending is None:
        return
    report = "; ".join(f"{p.source} -> {p.target}: {p.checks_passed} checks passed, "
                       f"{len(p.differences)} difference(s), {p.duration_seconds:.1f} s"
                       for p in event.parts) or "nothing restored"
    if event.outcome.value == "restored":
        await _entry(ctx, pending, TimelineKind.NOTE, f"recovery report: {report}",
                     action=RemediationAction.RESTORE)
        await _succeeded(ctx, pending, RemediationAction.RESTORE,
                         f"restored and validated in {event.duration_seconds:.1f} s")
    else:
        await _failed(ctx, pending, RemediationAction.RESTORE,
                      f"restore failed: {event.reason}; {report}")


@guardian.handles(MigrationBlocked)
async def on_migration_blocked(event: MigrationBlocked, ctx: Context) -> None:
    if not _policy(event.service).open_on_migration_blocked:
        return
    await _open(ctx, service=event.service, cause=IncidentCause.MIGRATION_BLOCKED,
                summary=f"{event.version} blocked ({event.reason.value}): "
                        + ("; ".join(event.details[:2]) or event.risk.value),
                failed_at=event.occurred_at, change_id=event.change_id,
                version=event.version)


# -- people ----------------------------------------------------------------------------------


@guardian.handles(IncidentUpdateRequested)
async def on_update(event: IncidentUpdateRequested, ctx: Context) -> None:
    row = await ctx.conn.fetchrow("SELECT * FROM incidents WHERE incident_id = $1 FOR UPDATE",
                                  event.incident_id)
    if row is None:
        log.warning("update for unknown incident %s ignored", event.incident_id)
        return
    if event.action is IncidentAction.NOTE:
        await _entry(ctx, row, TimelineKind.NOTE, event.text or "(empty note)", actor=event.by)
    elif event.action is IncidentAction.ACKNOWLEDGE and row["status"] != "resolved":
        row = await ctx.conn.fetchrow(
            "UPDATE incidents SET status = 'acknowledged', acknowledged_at = now(),"
            " next_escalation_at = NULL WHERE incident_id = $1 RETURNING *",
            event.incident_id)
        await _entry(ctx, row, TimelineKind.ACKNOWLEDGED, f"acknowledged by {event.by}",
                     actor=event.by, status=IncidentStatus.ACKNOWLEDGED)
    elif event.action is IncidentAction.RESOLVE:
        await _resolve(ctx, row, event.by, event.text or f"resolved by {event.by}")


# -- timers ----------------------------------------------------------------------------------


@guardian.every(SWEEP_SECONDS)
async def follow_timers(ctx: Context) -> None:
    """Actions past their deadline time out and escalate; an escalation not acknowledged in
    its level's time pages the next level."""
    for row in await ctx.conn.fetch(
            "SELECT * FROM incidents WHERE status <> 'resolved' AND action_state = 'requested'"
            " AND action_deadline < now() FOR UPDATE SKIP LOCKED"):
        await _failed(ctx, row, RemediationAction(row["action"]),
                      f"{row['action']} had no outcome within "
                      f"{_policy(row['service']).action_timeout_seconds:g} s",
                      kind=TimelineKind.ACTION_TIMED_OUT)
    for row in await ctx.conn.fetch(
            "SELECT * FROM incidents WHERE status IN ('triggered', 'mitigating')"
            " AND next_escalation_at < now() FOR UPDATE SKIP LOCKED"):
        await _escalate(ctx, row, f"level {row['escalation_level']} did not acknowledge in "
                                  "time")
