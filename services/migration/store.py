"""The migration guardian's rows: changes under assessment or review, and review decisions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from schemas.events.migration import (
    DetailedPlan,
    MigrationAssessed,
    MonitoringPlan,
    ReviewKind,
    RiskLevel,
)
from services.migration.domain.review import Decision, Review
from services.runtime.db import Connection


@dataclass(frozen=True)
class ChangeRow:
    change_id: str
    service: str
    version: str
    previous_version: str | None
    artifact: str | None
    risk: RiskLevel
    status: str
    review: Review | None
    deadline: datetime | None
    plan: DetailedPlan | None
    monitoring_plan: MonitoringPlan | None


async def insert_change(
    conn: Connection,
    assessed: MigrationAssessed,
    *,
    previous_version: str | None,
    artifact: str | None,
    status: str,
    review: Review | None,
    deadline: datetime | None,
    plan: DetailedPlan | None,
    monitoring_plan: MonitoringPlan | None,
) -> bool:
    """False when the change id is already known (a resubmission is not re-assessed)."""
    row = await conn.fetchval(
        "INSERT INTO changes (change_id, service, version, previous_version, artifact, risk,"
        " status, review_kind, required_approvals, authorised, checklist_ids, deadline,"
        " assessment, plan, monitoring_plan)"
        " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13::jsonb,$14::jsonb,$15::jsonb)"
        " ON CONFLICT (change_id) DO NOTHING RETURNING 1",
        assessed.change_id, assessed.service, assessed.version, previous_version, artifact,
        assessed.risk.value, status,
        review.kind.value if review else None,
        review.required_approvals if review else None,
        sorted(review.authorised) if review else [],
        sorted(review.checklist_ids) if review else [],
        deadline,
        assessed.model_dump_json(),
        plan.model_dump_json() if plan else None,
        monitoring_plan.model_dump_json() if monitoring_plan else None,
    )
    return row is not None


async def change_for_update(conn: Connection, change_id: str) -> ChangeRow | None:
    row = await conn.fetchrow("SELECT * FROM changes WHERE change_id = $1 FOR UPDATE",
                              change_id)
    if row is None:
        return None
    review = None
    if row["review_kind"] is not None:
        review = Review(
            kind=ReviewKind(row["review_kind"]),
            required_approvals=row["required_approvals"],
            checklist_ids=frozenset(row["checklist_ids"]),
            authorised=frozenset(row["authorised"]),
            approvals=tuple(row["approvals"]),
        )
    return ChangeRow(
        change_id=row["change_id"], service=row["service"], version=row["version"],
        previous_version=row["previous_version"], artifact=row["artifact"],
        risk=RiskLevel(row["risk"]), status=row["status"], review=review,
        deadline=row["deadline"],
        plan=DetailedPlan.model_validate_json(row["plan"]) if row["plan"] else None,
        monitoring_plan=(MonitoringPlan.model_validate_json(row["monitoring_plan"])
                         if row["monitoring_plan"] else None),
    )


async def save_review(conn: Connection, change_id: str, review: Review,
                      deadline: datetime | None) -> None:
    await conn.execute(
        "UPDATE changes SET review_kind = $2, required_approvals = $3, authorised = $4,"
        " checklist_ids = $5, approvals = $6, deadline = $7 WHERE change_id = $1",
        change_id, review.kind.value, review.required_approvals, sorted(review.authorised),
        sorted(review.checklist_ids), list(review.approvals), deadline,
    )


async def set_status(conn: Connection, change_id: str, status: str) -> None:
    await conn.execute(
        "UPDATE changes SET status = $2, decided_at = now() WHERE change_id = $1",
        change_id, status,
    )


async def record_decision(conn: Connection, change_id: str, decision: Decision,
                          ignored: str | None) -> None:
    await conn.execute(
        "INSERT INTO review_decisions (change_id, reviewer, signer, decision, acknowledged,"
        " counted, ignored_reason) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        change_id, decision.reviewer, decision.signer, decision.decision.value,
        sorted(decision.acknowledged), ignored is None, ignored,
    )


async def overdue_reviews(conn: Connection, limit: int = 100) -> list[str]:
    rows = await conn.fetch(
        "SELECT change_id FROM changes WHERE status = 'in_review' AND deadline < now()"
        " ORDER BY deadline LIMIT $1 FOR UPDATE SKIP LOCKED",
        limit,
    )
    return [r["change_id"] for r in rows]


async def baseline_was_broken(conn: Connection, service: str, *, other_than: str) -> bool:
    """Whether the last change of `service` verified before `other_than` found its baseline
    broken (a `shadow-baseline-failed` finding): the alert raised then can be resolved."""
    broken = await conn.fetchval(
        "SELECT assessment->'findings' @> '[{\"rule\": \"shadow-baseline-failed\"}]'::jsonb"
        " FROM changes WHERE service = $1 AND change_id <> $2"
        " AND jsonb_typeof(assessment->'verification') = 'object'"
        " ORDER BY assessed_at DESC, change_id DESC LIMIT 1",
        service, other_than,
    )
    return broken is True
