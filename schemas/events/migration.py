"""The migration guardian's events: its assessment, the review it asks for, and its verdict."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field, StringConstraints, model_validator

from schemas.base import ChangeId, Event, Seconds, ServiceName, StrictModel, Timestamp
from schemas.events.change import Version
from schemas.events.enums import ApprovalPath as ApprovalPath
from schemas.events.enums import BlockReason as BlockReason
from schemas.events.enums import ChangeKind
from schemas.events.enums import LockMode as LockMode
from schemas.events.enums import ReviewDecision as ReviewDecision
from schemas.events.enums import ReviewKind as ReviewKind
from schemas.events.enums import RiskLevel as RiskLevel
from schemas.events.enums import Severity as Severity
from schemas.events.enums import StepOutcome as StepOutcome

LocalId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")]
"""An id unique within one change (a finding, a checklist item), so others can point at it."""

RuleId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
"""A rule's stable name (`require-concurrent-index-creation`), the one suppressions use."""


class Finding(StrictModel):
    """One thing the analysis or the verification found, in the format `guardians lint` prints."""

    id: LocalId
    rule: RuleId
    severity: Severity
    message: str = Field(min_length=1)
    kind: ChangeKind = ChangeKind.DATABASE
    """Which part of the change it is about."""
    file: str | None = None
    line: int | None = Field(default=None, ge=1)
    column: int | None = Field(default=None, ge=1)
    statement: str | None = None
    target: str | None = None
    """The object it concerns: a table, index, config key, package or infrastructure resource."""
    fix: str | None = None
    """The safe alternative."""


class LockTaken(StrictModel):
    relation: str = Field(min_length=1)
    mode: LockMode


class StatementTrace(StrictModel):
    """What one statement really did on the shadow database (locks from pg_locks, rewrites)."""

    statement: str
    file: str | None = None
    line: int | None = Field(default=None, ge=1)
    locks: tuple[LockTaken, ...] = ()
    rewrote: tuple[str, ...] = ()
    """Relations whose storage was rewritten (their relfilenode changed)."""
    duration_seconds: Seconds | None = None


class ShadowVerification(StrictModel):
    """The up / down / up-again run on a scratch database; differences are findings."""

    up_applied: StepOutcome
    rollback_restored: StepOutcome
    """The down script brought the catalog back to the baseline."""
    reapplied: StepOutcome
    """The up script ran again after the rollback."""
    error: str | None = None
    """PostgreSQL's error and the statement that raised it, when a step failed."""
    postgres_version: str | None = None
    statements: tuple[StatementTrace, ...] = ()
    duration_seconds: Seconds | None = None


class MigrationAssessed(Event):
    """Migration guardian → dashboard, people: every finding, the verification, the grade."""

    TOPIC: ClassVar[str] = "migration.assessed"

    change_id: ChangeId
    service: ServiceName
    version: Version
    risk: RiskLevel
    findings: tuple[Finding, ...] = ()
    risk_causes: tuple[LocalId, ...] = ()
    """The ids of the findings that set the grade (every grade says why)."""
    verification: ShadowVerification | None = None
    """null when the change has no database migrations."""

    @model_validator(mode="after")
    def _causes_are_findings(self) -> MigrationAssessed:
        ids = [f.id for f in self.findings]
        if len(ids) != len(set(ids)):
            raise ValueError("finding ids must be unique within a change")
        unknown = sorted(set(self.risk_causes) - set(ids))
        if unknown:
            raise ValueError(f"risk_causes name no finding: {', '.join(unknown)}")
        return self


class ChecklistItem(StrictModel):
    """One thing a reviewer must acknowledge; one per finding, plus general items."""

    id: LocalId
    text: str = Field(min_length=1)
    finding_id: LocalId | None = None


class PlanStep(StrictModel):
    order: int = Field(ge=1)
    action: str = Field(min_length=1)
    finding_ids: tuple[LocalId, ...] = ()
    safe_alternative: str | None = None
    expected_lock: LockMode | None = None


class DetailedPlan(StrictModel):
    """The plan a team reviews for a HIGH-risk change."""

    steps: tuple[PlanStep, ...]
    rollback: str = Field(min_length=1)
    """How to roll back, in words and commands."""
    rollback_verified: bool
    """The down script restored the baseline on the shadow database."""
    lock_impact: str | None = None


class MigrationReviewRequested(Event):
    """Migration guardian → people (CLI, dashboard): a MEDIUM or HIGH change waits for review."""

    TOPIC: ClassVar[str] = "migration.review.requested"

    change_id: ChangeId
    service: ServiceName
    version: Version
    risk: RiskLevel
    review: ReviewKind
    checklist: tuple[ChecklistItem, ...] = ()
    plan: DetailedPlan | None = None
    """Present for team reviews."""
    required_approvals: int = Field(default=1, ge=1)
    """Distinct authorised reviewers needed."""
    deadline: Timestamp
    """Undecided by then, the change is blocked."""


class MigrationReviewDecided(Event):
    """A reviewer → migration guardian: approve, reject, or send to the team. A signed command."""

    TOPIC: ClassVar[str] = "migration.review.decided"

    change_id: ChangeId
    service: ServiceName
    reviewer: str = Field(min_length=1)
    decision: ReviewDecision
    acknowledged: tuple[LocalId, ...] = ()
    """The checklist item ids the reviewer acknowledged; an approval must cover them all."""
    comment: str | None = None


class WatchedMetric(StrictModel):
    """A metric the deploy guardian must watch because of what the change does."""

    name: str = Field(min_length=1)
    """A metric of the service's analysis templates in `guardians.yaml`, or a new one."""
    query: str | None = None
    """PromQL, when the metric is not one the service's templates already define."""
    condition: str | None = None
    """The success condition (`result < 0.05`), when not the template's."""
    reason: str = Field(min_length=1)
    finding_ids: tuple[LocalId, ...] = ()


class MonitoringPlan(StrictModel):
    """What the deploy guardian adds to this change's rollout: metrics, and for how long."""

    duration_seconds: Seconds
    metrics: tuple[WatchedMetric, ...] = ()


class MigrationApproved(Event):
    """Migration guardian → deploy guardian: the change may deploy, with its monitoring plan."""

    TOPIC: ClassVar[str] = "migration.approved"

    change_id: ChangeId
    service: ServiceName
    version: Version
    previous_version: Version | None = None
    artifact: str | None = None
    risk: RiskLevel
    approval: ApprovalPath
    approved_by: tuple[str, ...] = ()
    """The reviewers whose approvals counted; empty for an automatic approval."""
    monitoring_plan: MonitoringPlan | None = None
    """null when the change needs no more than the service's usual analysis."""


class MigrationBlocked(Event):
    """Migration guardian → incident service, people: the change does not deploy, and why."""

    TOPIC: ClassVar[str] = "migration.blocked"

    change_id: ChangeId
    service: ServiceName
    version: Version
    risk: RiskLevel
    reason: BlockReason
    details: tuple[str, ...] = ()
    """Human-readable reasons (PostgreSQL's error, the reviewer's comment)."""
    finding_ids: tuple[LocalId, ...] = ()
    rejected_by: tuple[str, ...] = ()
