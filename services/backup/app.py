"""Backup guardian: backups that are proven restorable.

Hears `deploy.completed` (a backup run of that release is queued) and the signed
`backup.restore.requested` (a restore is queued); says `backup.verified` only after the
recovery test of every part passed, `backup.failed` with the phase and reason, and
`backup.restored` with the recovery report. The runs themselves are durable jobs
(`jobs.py`) driven outside the consumer. Every 30 s the schedule is looked at: a cron fire
time that is due queues a run, and `ops.alerts` says when a scheduled backup is late or the
newest verified backup is older than the configured maximum (with a resolved notice once
it is not).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

from schemas.events.backup import BackupRestoreRequested
from schemas.events.deploy import DeployCompleted
from schemas.events.ops import AlertSeverity, AlertValue, OpsAlert
from services.backup.domain.schedule import (
    Alertable,
    due,
    lateness,
    run_id_for_schedule,
    staleness,
)
from services.backup.jobs import BackupJobs
from services.runtime import Context, Guardian

log = logging.getLogger(__name__)
guardian = Guardian("backup", migrations=Path(__file__).parent / "migrations")
jobs = BackupJobs(guardian)
guardian.runs(jobs.runs.run)
guardian.runs(jobs.restores.run)
LATE_GRACE = timedelta(minutes=15)


@guardian.handles(DeployCompleted)
async def back_up_release(event: DeployCompleted, ctx: Context) -> None:
    await ctx.conn.execute(
        "INSERT INTO backup_runs (run_id, service, version, trigger, status, cause_id)"
        " VALUES ($1, $2, $3, 'deploy', 'queued', $4) ON CONFLICT (run_id) DO NOTHING",
        event.change_id, event.service, event.version, ctx.incoming.id if ctx.incoming else None,
    )


@guardian.handles(BackupRestoreRequested)
async def queue_restore(event: BackupRestoreRequested, ctx: Context) -> None:
    assert ctx.incoming is not None
    await ctx.conn.execute(
        "INSERT INTO restores (request_id, service, request, status, cause_id)"
        " VALUES ($1, $2, $3::jsonb, 'queued', $1) ON CONFLICT (request_id) DO NOTHING",
        ctx.incoming.id, event.service, json.dumps(event.model_dump(mode="json")),
    )


@guardian.every(guardian.settings.schedule_sweep_seconds)
async def follow_schedules(ctx: Context) -> None:
    now = datetime.now(UTC)
    for service, managed in guardian.settings.config.services.items():
        policy = managed.backup
        if not policy.has_sources:
            continue
        row = await ctx.conn.fetchrow(
            "INSERT INTO schedules (service) VALUES ($1) ON CONFLICT (service) DO UPDATE"
            " SET service = EXCLUDED.service RETURNING last_fire, alerts", service)
        assert row is not None
        last_fire = row["last_fire"]
        fire = due(policy, now, last_fire)
        if fire is not None:
            await ctx.conn.execute(
                "INSERT INTO backup_runs (run_id, service, trigger, status)"
                " VALUES ($1, $2, 'schedule', 'queued') ON CONFLICT (run_id) DO NOTHING",
                run_id_for_schedule(service, fire), service)
            await ctx.conn.execute("UPDATE schedules SET last_fire = $2 WHERE service = $1",
                                   service, fire)
            last_fire = fire
        verified = await ctx.conn.fetchval(
            "SELECT max(finished_at) FROM backup_runs WHERE service = $1"
            " AND status = 'verified'", service)
        # Late: a fire time passed and no scheduled run since has been verified.
        last_scheduled = await ctx.conn.fetchval(
            "SELECT max(created_at) FROM backup_runs WHERE service = $1"
            " AND trigger = 'schedule' AND status = 'verified'", service)
        alerts = json.loads(row["alerts"]) if isinstance(row["alerts"], str) else row["alerts"]
        current = [a for a in (
            lateness(policy, now, last_scheduled, LATE_GRACE, service=service),
            staleness(policy, now, verified, service=service)) if a is not None]
        raised = {a.dedup_key for a in current}
        for alert in current:
            if alert.dedup_key not in alerts:
                ctx.emit(_alert(service, alert, AlertSeverity.WARNING))
        for key, summary in alerts.items():
            if key not in raised:
                ctx.emit(OpsAlert(dedup_key=key, severity=AlertSeverity.INFO,
                                  summary=f"resolved: {summary}", raised_by="backup",
                                  service=service, resolved=True))
        await ctx.conn.execute("UPDATE schedules SET alerts = $2::jsonb WHERE service = $1",
                               service, json.dumps({a.dedup_key: a.summary for a in current}))


def _alert(service: str, alert: Alertable, severity: AlertSeverity) -> OpsAlert:
    return OpsAlert(
        dedup_key=alert.dedup_key, severity=severity, summary=alert.summary,
        raised_by="backup", service=service, details=alert.details,
        values=tuple(AlertValue(name=n, value=v, unit=u, threshold=t)
                     for n, v, u, t in alert.values),
    )
