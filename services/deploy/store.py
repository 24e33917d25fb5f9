"""The deploy guardian's rows: one rollout per approved change, leased to one driver."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.deploy.domain.plan import RolloutPlan
from services.runtime.db import Connection
from services.runtime.leases import LeaseLostError

LEASE_SECONDS = 6.0
"""A driver that stops renewing (killed) loses its rollouts after this long."""
ACTIVE = ("queued", "running", "paused")


@dataclass(frozen=True)
class RolloutRow:
    change_id: str
    service: str
    version: str
    previous_version: str | None
    artifact: str | None
    plan: RolloutPlan
    status: str
    stage: str
    progress: dict[str, Any]
    decision: dict[str, Any] | None
    rollback_request: dict[str, Any] | None
    approved_at: datetime
    started_at: datetime | None
    cause_id: str | None = None


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _row(record: Any) -> RolloutRow:
    return RolloutRow(
        change_id=record["change_id"], service=record["service"], version=record["version"],
        previous_version=record["previous_version"], artifact=record["artifact"],
        plan=RolloutPlan.from_json(_json(record["plan"])), status=record["status"],
        stage=record["stage"], progress=_json(record["progress"]) or {},
        decision=_json(record["decision"]), rollback_request=_json(record["rollback_request"]),
        approved_at=record["approved_at"], started_at=record["started_at"],
        cause_id=record["cause_id"],
    )


async def insert(conn: Connection, *, change_id: str, service: str, version: str,
                 previous_version: str | None, artifact: str | None, plan: RolloutPlan,
                 cause_id: str | None = None) -> bool:
    """False when this change already has a rollout (a re-delivered approval)."""
    done = await conn.fetchval(
        "INSERT INTO rollouts (change_id, service, version, previous_version, artifact, plan,"
        " status, stage, cause_id) VALUES ($1,$2,$3,$4,$5,$6::jsonb,'queued','queued',$7)"
        " ON CONFLICT (change_id) DO NOTHING RETURNING 1",
        change_id, service, version, previous_version, artifact, json.dumps(plan.to_json()),
        cause_id,
    )
    return done is not None


async def get(conn: Connection, change_id: str) -> RolloutRow | None:
    record = await conn.fetchrow("SELECT * FROM rollouts WHERE change_id = $1", change_id)
    return _row(record) if record else None


async def claim(conn: Connection, owner: str, exclude: list[str], limit: int = 8
                ) -> list[str]:
    """Lease the rollouts that need a driver: active ones whose lease expired, a queued one
    only when nothing else of its service is ahead of it, and finished ones with a
    rollback request. One claim at a time (advisory lock), so two replicas never start two
    rollouts of one service together."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('guardians-deploy-claim'))")
    rows = await conn.fetch(
        """
        UPDATE rollouts SET lease_owner = $1,
               lease_until = now() + make_interval(secs => $3)
        WHERE change_id IN (
            SELECT r.change_id FROM rollouts r
            WHERE (r.status IN ('running', 'paused')
                   OR (r.status = 'queued' AND NOT EXISTS (
                        SELECT 1 FROM rollouts o
                        WHERE o.service = r.service AND o.change_id <> r.change_id
                          AND (o.status IN ('running', 'paused')
                               OR (o.status = 'queued' AND o.approved_at < r.approved_at))))
                   OR (r.rollback_request IS NOT NULL AND r.status = 'completed'))
              AND (r.lease_until IS NULL OR r.lease_until < now() OR r.lease_owner = $1)
              AND NOT (r.change_id = ANY($2::text[]))
            ORDER BY r.approved_at
            LIMIT $4)
        RETURNING change_id
        """,
        owner, exclude, LEASE_SECONDS, limit,
    )
    return [r["change_id"] for r in rows]


async def save(conn: Connection, owner: str, change_id: str, *, status: str, stage: str,
               progress: dict[str, Any], finished: bool = False, outcome: str | None = None,
               clear_decision: bool = False, clear_rollback: bool = False) -> None:
    """Write a checkpoint; LeaseLostError when another driver holds the rollout."""
    done = await conn.fetchval(
        """
        UPDATE rollouts SET status = $3, stage = $4, progress = $5::jsonb,
               started_at = coalesce(started_at, now()),
               finished_at = CASE WHEN $6 THEN now() ELSE finished_at END,
               outcome = coalesce($7, outcome),
               decision = CASE WHEN $8 THEN NULL ELSE decision END,
               rollback_request = CASE WHEN $9 THEN NULL ELSE rollback_request END,
               updated_at = now()
        WHERE change_id = $1 AND lease_owner = $2
        RETURNING 1
        """,
        change_id, owner, status, stage, json.dumps(progress), finished, outcome,
        clear_decision, clear_rollback,
    )
    if done is None:
        raise LeaseLostError(change_id)


async def interrupts(conn: Connection, change_id: str
                     ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(decision, rollback request) waiting for the driver."""
    record = await conn.fetchrow(
        "SELECT decision, rollback_request FROM rollouts WHERE change_id = $1", change_id)
    if record is None:
        return None, None
    return _json(record["decision"]), _json(record["rollback_request"])


async def set_decision(conn: Connection, change_id: str, decision: dict[str, Any]) -> str | None:
    """Record a promote/abort for an active rollout; returns its status, None if unknown or
    finished (then nothing is recorded)."""
    status: str | None = await conn.fetchval(
        "UPDATE rollouts SET decision = $2::jsonb, updated_at = now()"
        " WHERE change_id = $1 AND status IN ('queued', 'running', 'paused')"
        " RETURNING status", change_id, json.dumps(decision),
    )
    return status


async def request_rollback(conn: Connection, change_id: str, request: dict[str, Any]
                           ) -> str | None:
    """Record a rollback request for a rollout that is active or completed; returns its
    status, None if unknown or already rolled back or failed."""
    status: str | None = await conn.fetchval(
        "UPDATE rollouts SET rollback_request = $2::jsonb, updated_at = now()"
        " WHERE change_id = $1 AND status IN ('queued', 'running', 'paused', 'completed')"
        " RETURNING status", change_id, json.dumps(request),
    )
    return status
