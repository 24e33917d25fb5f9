"""Deploy guardian: staged rollouts with canary analysis and automatic rollback.

Hears `migration.approved` (a rollout is queued with its plan resolved from guardians.yaml
and the change's monitoring plan), `deploy.rollout.decided` (signed promote / abort of a
paused rollout) and `deploy.rollback.requested` (signed; rolls back a rollout in progress
or a completed deploy). The handlers only record; the driver (`driver.py`) walks each
rollout outside the consumer, one checkpointed step at a time, and says
`deploy.stage.changed`, `deploy.analysis.measured`, then `deploy.completed`,
`deploy.rolled_back` or `deploy.failed`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from schemas.events.deploy import DeployRollbackRequested, DeployRolloutDecided
from schemas.events.migration import MigrationApproved
from services.deploy import store
from services.deploy.domain.plan import resolve
from services.deploy.driver import Driver
from services.runtime import Context, Guardian

log = logging.getLogger(__name__)
guardian = Guardian("deploy", migrations=Path(__file__).parent / "migrations")
driver = Driver(guardian)
guardian.runs(driver.run)


@guardian.handles(MigrationApproved)
async def queue_rollout(event: MigrationApproved, ctx: Context) -> None:
    policy = guardian.settings.config.service(event.service).deploy
    plan = resolve(policy, event.monitoring_plan)
    if not await store.insert(ctx.conn, change_id=event.change_id, service=event.service,
                              version=event.version, previous_version=event.previous_version,
                              artifact=event.artifact, plan=plan,
                              cause_id=ctx.incoming.id if ctx.incoming else None):
        log.info("rollout of %s already queued", event.change_id,
                 extra={"change_id": event.change_id})


@guardian.handles(DeployRolloutDecided)
async def record_decision(event: DeployRolloutDecided, ctx: Context) -> None:
    status = await store.set_decision(ctx.conn, event.change_id, {
        "decision": event.decision.value, "decided_by": event.decided_by,
        "reason": event.reason,
        "signer": ctx.incoming.signer if ctx.incoming else None,
    })
    if status is None:
        log.warning("rollout decision for %s ignored: no rollout in progress",
                    event.change_id, extra={"change_id": event.change_id})


@guardian.handles(DeployRollbackRequested)
async def record_rollback_request(event: DeployRollbackRequested, ctx: Context) -> None:
    status = await store.request_rollback(ctx.conn, event.change_id, {
        "requested_by": event.requested_by, "reason": event.reason,
        "incident_id": event.incident_id, "to_version": event.to_version,
    })
    if status is None:
        log.warning("rollback request for %s ignored: no rollout in progress or completed",
                    event.change_id, extra={"change_id": event.change_id})
