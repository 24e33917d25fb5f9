"""Migration guardian: assesses, verifies and gates every change before it deploys.

Hears `change.submitted` (signed by CI) and `migration.review.decided` (signed by a reviewer);
says `migration.assessed`, then `migration.approved`, `migration.review.requested` or
`migration.blocked`. A review not decided in time blocks the change (a durable timer: the
deadline is a column, swept every few seconds).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path

from schemas.base import utcnow
from schemas.events.change import ChangeSubmitted
from schemas.events.migration import (
    ApprovalPath,
    BlockReason,
    MigrationApproved,
    MigrationBlocked,
    MigrationReviewDecided,
    MigrationReviewRequested,
    ReviewKind,
    RiskLevel,
)
from schemas.events.ops import AlertSeverity, OpsAlert
from services.migration import store
from services.migration.adapters import shadow
from services.migration.assessment import Assessment, assess
from services.migration.domain.plans import checklist, detailed_plan, monitoring_plan
from services.migration.domain.review import Decision, Review, Verdict, decide
from services.runtime import Context, Guardian, RetryLaterError
from services.runtime.config import MigrationPolicy

log = logging.getLogger(__name__)
guardian = Guardian("migration", migrations=Path(__file__).parent / "migrations")
REVIEW_SWEEP_SECONDS = 2.0


def _policy(service: str) -> MigrationPolicy:
    return guardian.settings.config.service(service).migration


def _shadow_dsn() -> str:
    s = guardian.settings
    return (s.shadow_database_url or s.database_url).get_secret_value()


@guardian.handles(ChangeSubmitted)
async def assess_change(event: ChangeSubmitted, ctx: Context) -> None:
    policy = _policy(event.service)
    try:
        assessment = await assess(event, policy, _shadow_dsn())
    except shadow.ShadowDatabaseError as error:
        # The shadow server is down: not the change's fault. Retried until it is back.
        raise RetryLaterError(str(error)) from error
    assessed = assessment.published(event)
    plan = detailed_plan(assessment.findings, rollback_verified=assessment.rollback_verified,
                         has_rollback=all(m.down_sql for m in event.migrations))
    watch = monitoring_plan(assessment.findings, assessment.risk, policy.monitoring_seconds)
    review, deadline, status = _review_for(assessment, policy)
    if not await store.insert_change(
        ctx.conn, assessed, previous_version=event.previous_version, artifact=event.artifact,
        status=status, review=review, deadline=deadline, plan=plan, monitoring_plan=watch,
    ):
        log.warning("change %s was already assessed; a resubmission needs a new change id",
                    event.change_id, extra={"change_id": event.change_id})
        return
    ctx.emit(assessed)
    await _tell_about_the_baseline(event, assessment, ctx)
    if assessment.risk is RiskLevel.BLOCKED:
        ctx.emit(MigrationBlocked(
            change_id=event.change_id, service=event.service, version=event.version,
            risk=assessment.risk, reason=BlockReason.FAILED_VALIDATION,
            details=tuple(assessed.findings[i].message for i in assessment.grade.causes),
            finding_ids=assessed.risk_causes,
        ))
    elif review is None:
        ctx.emit(MigrationApproved(
            change_id=event.change_id, service=event.service, version=event.version,
            previous_version=event.previous_version, artifact=event.artifact,
            risk=assessment.risk, approval=ApprovalPath.AUTOMATIC, monitoring_plan=watch,
        ))
    else:
        assert deadline is not None
        ctx.emit(MigrationReviewRequested(
            change_id=event.change_id, service=event.service, version=event.version,
            risk=assessment.risk, review=review.kind,
            checklist=checklist(assessment.findings),
            plan=plan if review.kind is ReviewKind.TEAM else None,
            required_approvals=review.required_approvals, deadline=deadline,
        ))


async def _tell_about_the_baseline(event: ChangeSubmitted, assessment: Assessment,
                                   ctx: Context) -> None:
    """A baseline that does not apply is the guardian's configuration, not the change: people
    hear it on `ops.alerts` (one dedup key per managed service), and hear when a change of
    that service is verified on it again."""
    key = f"baseline-broken:{event.service}"
    broken = assessment.broken_baseline
    if broken is not None:
        log.warning("the baseline of %s does not apply: %s", event.service, broken.problem,
                    extra={"change_id": event.change_id})
        ctx.emit(OpsAlert(
            dedup_key=key, severity=AlertSeverity.WARNING,
            summary=f"migration: the baseline configured for {event.service} does not apply; "
                    "its changes are blocked unverified",
            raised_by=guardian.name, service=event.service, change_id=event.change_id,
            details=(f"{broken.problem}. Fix `migration.baseline` ({broken.path}) for "
                     f"{event.service} in guardians.yaml, then resubmit {event.change_id}."),
        ))
    elif assessment.verification is not None and await store.baseline_was_broken(
            ctx.conn, event.service, other_than=event.change_id):
        ctx.emit(OpsAlert(
            dedup_key=key, severity=AlertSeverity.WARNING, resolved=True,
            summary=f"migration: the baseline configured for {event.service} applies again",
            raised_by=guardian.name, service=event.service, change_id=event.change_id,
            details=f"{event.change_id} was verified on it",
        ))


def _review_for(
    assessment: Assessment, policy: MigrationPolicy
) -> tuple[Review | None, datetime | None, str]:
    """LOW: no review. MEDIUM: one checklist decision. HIGH: the team. BLOCKED: none."""
    deadline = utcnow() + timedelta(seconds=policy.review_timeout_seconds)
    items = frozenset(item.id for item in checklist(assessment.findings))
    if assessment.risk is RiskLevel.MEDIUM:
        return (Review(ReviewKind.CHECKLIST, 1, items, policy.checklist_deciders),
                deadline, "in_review")
    if assessment.risk is RiskLevel.HIGH:
        return (Review(ReviewKind.TEAM, policy.team_approvals, items,
                       frozenset(policy.team_reviewers)), deadline, "in_review")
    if assessment.risk is RiskLevel.BLOCKED:
        return None, None, "blocked"
    return None, None, "approved"


@guardian.handles(MigrationReviewDecided)
async def record_review_decision(event: MigrationReviewDecided, ctx: Context) -> None:
    change = await store.change_for_update(ctx.conn, event.change_id)
    decision = Decision(
        reviewer=event.reviewer,
        signer=ctx.incoming.signer if ctx.incoming else None,
        decision=event.decision,
        acknowledged=frozenset(event.acknowledged),
    )
    if change is None or change.status != "in_review" or change.review is None:
        log.warning("review decision for %s ignored: the change is not awaiting review",
                    event.change_id, extra={"change_id": event.change_id})
        if change is not None:
            await store.record_decision(ctx.conn, event.change_id, decision,
                                        "the change is not awaiting review")
        return
    outcome = decide(change.review, decision)
    await store.record_decision(ctx.conn, change.change_id, decision, outcome.ignored)
    if outcome.ignored:
        log.warning("review decision by %s not counted: %s", event.reviewer, outcome.ignored,
                    extra={"change_id": event.change_id})
        return
    policy = _policy(change.service)
    if outcome.verdict is Verdict.APPROVED:
        await store.save_review(ctx.conn, change.change_id, outcome.review, change.deadline)
        await store.set_status(ctx.conn, change.change_id, "approved")
        ctx.emit(MigrationApproved(
            change_id=change.change_id, service=change.service, version=change.version,
            previous_version=change.previous_version, artifact=change.artifact,
            risk=change.risk,
            approval=(ApprovalPath.TEAM if outcome.review.kind is ReviewKind.TEAM
                      else ApprovalPath.CHECKLIST),
            approved_by=outcome.review.approvals, monitoring_plan=change.monitoring_plan,
        ))
    elif outcome.verdict is Verdict.REJECTED:
        await store.set_status(ctx.conn, change.change_id, "blocked")
        ctx.emit(MigrationBlocked(
            change_id=change.change_id, service=change.service, version=change.version,
            risk=change.risk, reason=BlockReason.REVIEW_REJECTED,
            details=(event.comment,) if event.comment else (), rejected_by=(event.reviewer,),
        ))
    elif outcome.verdict is Verdict.ESCALATED:
        team = outcome.review.sent_to_team(frozenset(policy.team_reviewers),
                                           policy.team_approvals)
        deadline = utcnow() + timedelta(seconds=policy.review_timeout_seconds)
        await store.save_review(ctx.conn, change.change_id, team, deadline)
        ctx.emit(MigrationReviewRequested(
            change_id=change.change_id, service=change.service, version=change.version,
            risk=change.risk, review=ReviewKind.TEAM, plan=change.plan,
            required_approvals=team.required_approvals, deadline=deadline,
        ))
    else:
        await store.save_review(ctx.conn, change.change_id, outcome.review, change.deadline)


@guardian.every(REVIEW_SWEEP_SECONDS)
async def block_overdue_reviews(ctx: Context) -> None:
    for change_id in await store.overdue_reviews(ctx.conn):
        change = await store.change_for_update(ctx.conn, change_id)
        assert change is not None
        await store.set_status(ctx.conn, change_id, "blocked")
        ctx.emit(MigrationBlocked(
            change_id=change_id, service=change.service, version=change.version,
            risk=change.risk, reason=BlockReason.REVIEW_TIMED_OUT,
            details=(f"no decision by {change.deadline.isoformat() if change.deadline else '?'}",),
        ))
