"""Process guardian: continuous health, graded green / yellow / red.

Watches every service whose `health:` section lists checks, ports or processes
(monitor.py), continuously, one lease per service across replicas. Hears `backup.verified`
(opens the post-deploy health gate of that change: green for `gate_seconds` says
`infra.ready`, the end of the pipeline) and the signed `service.restart.requested`
(carried out by the service's watcher, under Monit-style restart limits). Says
`health.reported`, `health.changed`, `infra.ready` and `ops.alerts`.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

from schemas.events.backup import BackupVerified
from schemas.events.health import ServiceRestartRequested
from services.process.domain.gate import Gate
from services.process.monitor import Monitor
from services.runtime import Context, Guardian

log = logging.getLogger(__name__)
guardian = Guardian("process", migrations=Path(__file__).parent / "migrations")
monitor = Monitor(guardian)
guardian.runs(monitor.run)


@guardian.handles(BackupVerified)
async def open_health_gate(event: BackupVerified, ctx: Context) -> None:
    if not guardian.settings.config.service(event.service).health.watched:
        log.warning("no health checks configured for %s: its gate cannot open",
                    event.service, extra={"change_id": event.change_id})
    if event.version is None:
        return  # a scheduled or manual backup: no release to gate
    gate = Gate(change_id=event.change_id, service=event.service, version=event.version,
                opened_at=datetime.now(UTC))
    await ctx.conn.execute(
        "INSERT INTO gates (change_id, service, version, gate, status, cause_id)"
        " VALUES ($1, $2, $3, $4::jsonb, 'open', $5) ON CONFLICT (change_id) DO NOTHING",
        event.change_id, event.service, event.version, json.dumps(gate.to_json()),
        ctx.incoming.id if ctx.incoming else None)


@guardian.handles(ServiceRestartRequested)
async def queue_restart(event: ServiceRestartRequested, ctx: Context) -> None:
    assert ctx.incoming is not None
    await ctx.conn.execute(
        "INSERT INTO restart_requests (request_id, service, instance, request)"
        " VALUES ($1, $2, $3, $4::jsonb) ON CONFLICT (request_id) DO NOTHING",
        ctx.incoming.id, event.service, event.instance,
        json.dumps(event.model_dump(mode="json")))
