"""What an incident is, from the failure that opens it (pure).

The dedup key is the service plus the family of the cause (PagerDuty's dedup key, Opsgenie's
alias): every report of one problem folds into one open incident with a count, also when
one release produces both `deploy.failed` and `deploy.rolled_back`. The severity follows the
cause; the automatic action follows the service's policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from schemas.events.incident import IncidentCause, IncidentSeverity, RemediationAction
from services.runtime.config import EscalationLevel, IncidentPolicy

FAMILY = {
    IncidentCause.DEPLOY_FAILED: "deploy",
    IncidentCause.DEPLOY_ROLLED_BACK: "deploy",
    IncidentCause.BACKUP_FAILED: "backup",
    IncidentCause.HEALTH_RED: "health",
    IncidentCause.MIGRATION_BLOCKED: "migration",
    IncidentCause.MANUAL: "manual",
}
SEVERITY = {
    IncidentCause.DEPLOY_FAILED: IncidentSeverity.HIGH,
    IncidentCause.DEPLOY_ROLLED_BACK: IncidentSeverity.MEDIUM,
    IncidentCause.BACKUP_FAILED: IncidentSeverity.HIGH,
    IncidentCause.HEALTH_RED: IncidentSeverity.CRITICAL,
    IncidentCause.MIGRATION_BLOCKED: IncidentSeverity.LOW,
    IncidentCause.MANUAL: IncidentSeverity.MEDIUM,
}


def dedup_key(service: str, cause: IncidentCause) -> str:
    return f"incident/{service}/{FAMILY[cause]}"


def incident_id(service: str, cause: IncidentCause, at: datetime) -> str:
    return f"inc-{service}-{FAMILY[cause]}-{at.strftime('%Y%m%dT%H%M%S%f')}"


def action_for(policy: IncidentPolicy, cause: IncidentCause) -> RemediationAction | None:
    if cause is IncidentCause.DEPLOY_FAILED and policy.on_deploy_failed == "rollback":
        return RemediationAction.ROLLBACK
    if cause is IncidentCause.HEALTH_RED:
        return {"restart": RemediationAction.RESTART, "restore": RemediationAction.RESTORE,
                "none": None}[policy.on_health_red]
    return None


@dataclass(frozen=True)
class Escalation:
    level: int
    """1-based: the level being paged now."""
    notify: tuple[str, ...]
    next_at: datetime | None
    """When the following level is paged; None at the last level."""


def escalate(levels: list[EscalationLevel], current: int, now: datetime) -> Escalation | None:
    """The next level after `current` (0: none paged yet), or None when all were paged."""
    if current >= len(levels):
        return None
    level = levels[current]
    has_next = current + 1 < len(levels)
    return Escalation(current + 1, tuple(level.notify),
                      now + timedelta(seconds=level.after_seconds) if has_next else None)
