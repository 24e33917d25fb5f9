"""The enumerations of the change and migration events, in a module without pydantic.

The migration guardian's pure domain (and so `guardians lint`) uses these and no model:
importing them from here does not load pydantic nor build any event model, which is most of
the CLI's start-up. `schemas.events.change` and `schemas.events.migration` re-export them
(the same classes), so either import path reads the contract the same way.
"""

from __future__ import annotations

from enum import StrEnum


class ChangeKind(StrEnum):
    """The four kinds of change the migration guardian assesses."""

    DATABASE = "database"
    CONFIG = "config"
    DEPENDENCY = "dependency"
    INFRASTRUCTURE = "infrastructure"


class RiskLevel(StrEnum):
    """The grade of a change; it decides the path: approve, review, team review, or stop."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    BLOCKED = "blocked"


class Severity(StrEnum):
    """How much one finding matters on its own (the grade weighs them together)."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class LockMode(StrEnum):
    """PostgreSQL's table lock modes, weakest first."""

    ACCESS_SHARE = "access_share"
    ROW_SHARE = "row_share"
    ROW_EXCLUSIVE = "row_exclusive"
    SHARE_UPDATE_EXCLUSIVE = "share_update_exclusive"
    SHARE = "share"
    SHARE_ROW_EXCLUSIVE = "share_row_exclusive"
    EXCLUSIVE = "exclusive"
    ACCESS_EXCLUSIVE = "access_exclusive"


class StepOutcome(StrEnum):
    """How one step of the shadow-database verification ended."""

    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


class ReviewKind(StrEnum):
    """MEDIUM risk gets a checklist review by one person; HIGH risk, or an escalation, a team."""

    CHECKLIST = "checklist"
    TEAM = "team"


class ReviewDecision(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    ESCALATE_TO_TEAM = "escalate-to-team"


class ApprovalPath(StrEnum):
    """How a change got through: on its own (LOW), by checklist, or by the team."""

    AUTOMATIC = "automatic"
    CHECKLIST = "checklist"
    TEAM = "team"


class BlockReason(StrEnum):
    FAILED_VALIDATION = "failed_validation"
    """The up script does not apply, or cannot run at all: risk BLOCKED."""
    REVIEW_REJECTED = "review_rejected"
    REVIEW_TIMED_OUT = "review_timed_out"

