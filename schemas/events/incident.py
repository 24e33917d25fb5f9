"""The incident service's events: an incident's life, keyed by `incident_id`.

CDEvents mappings: `incident.opened` ~ `incident.detected` and `incident.resolved` ~
`incident.resolved` (subject id = `incident_id`, `description` = `summary` / `resolution`,
`service`, `environment.id` = `environment`, `artifactId` = `artifact`).
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

from pydantic import Field

from schemas.base import (
    ChangeId,
    DedupKey,
    Event,
    IncidentId,
    Seconds,
    ServiceName,
    StrictModel,
    Timestamp,
)
from schemas.events.change import Version
from schemas.events.deploy import EnvironmentName


class IncidentSeverity(StrEnum):
    """Set from the cause; decides the escalation policy."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class IncidentStatus(StrEnum):
    TRIGGERED = "triggered"
    ACKNOWLEDGED = "acknowledged"
    MITIGATING = "mitigating"
    """An automatic action (rollback, restore, restart) is under way."""
    RESOLVED = "resolved"


class IncidentCause(StrEnum):
    DEPLOY_FAILED = "deploy_failed"
    DEPLOY_ROLLED_BACK = "deploy_rolled_back"
    BACKUP_FAILED = "backup_failed"
    HEALTH_RED = "health_red"
    MIGRATION_BLOCKED = "migration_blocked"
    MANUAL = "manual"


class RemediationAction(StrEnum):
    """The automatic actions, each a signed command whose outcome the incident waits for."""

    ROLLBACK = "rollback"
    RESTORE = "restore"
    RESTART = "restart"


class TimelineKind(StrEnum):
    DETECTED = "detected"
    DUPLICATE = "duplicate"
    """Another report of the same problem (same dedup key): the count goes up."""
    ACTION_REQUESTED = "action_requested"
    ACTION_SUCCEEDED = "action_succeeded"
    ACTION_FAILED = "action_failed"
    ACTION_TIMED_OUT = "action_timed_out"
    ESCALATED = "escalated"
    ACKNOWLEDGED = "acknowledged"
    NOTE = "note"
    SEVERITY_CHANGED = "severity_changed"
    RESOLVED = "resolved"


class TimelineEntry(StrictModel):
    """One typed, time-stamped line of the incident log (as Dispatch's timeline)."""

    at: Timestamp
    kind: TimelineKind
    actor: str = Field(min_length=1)
    """A guardian or a person."""
    message: str = Field(min_length=1)
    action: RemediationAction | None = None
    event_id: str | None = None
    """The `ce_id` of the event this entry records, for replay."""


class IncidentDurations(StrictModel):
    detect_seconds: Seconds | None = None
    """From the first failing event to the incident."""
    mitigate_seconds: Seconds | None = None
    """From the incident to the first successful action."""
    resolve_seconds: Seconds


class IncidentOpened(Event):
    """Incident service → people, dashboard: a new incident (~ CDEvents incident.detected)."""

    TOPIC: ClassVar[str] = "incident.opened"

    incident_id: IncidentId
    dedup_key: DedupKey
    service: ServiceName
    severity: IncidentSeverity
    cause: IncidentCause
    summary: str = Field(min_length=1)
    change_id: ChangeId | None = None
    version: Version | None = None
    artifact: str | None = None
    environment: EnvironmentName | None = None


class IncidentUpdated(Event):
    """Incident service → people, dashboard: a timeline entry and the incident's state after it."""

    TOPIC: ClassVar[str] = "incident.updated"

    incident_id: IncidentId
    service: ServiceName
    status: IncidentStatus
    severity: IncidentSeverity
    count: int = Field(default=1, ge=1)
    """Reports folded into this incident so far."""
    entry: TimelineEntry


class IncidentEscalated(Event):
    """Incident service → people: automation did not fix it; the next level is paged."""

    TOPIC: ClassVar[str] = "incident.escalated"

    incident_id: IncidentId
    service: ServiceName
    severity: IncidentSeverity
    level: int = Field(ge=1)
    policy: str = Field(min_length=1)
    """The escalation policy's name in `guardians.yaml`."""
    notify: tuple[str, ...] = ()
    """Who this level pages."""
    reason: str = Field(min_length=1)
    next_escalation_at: Timestamp | None = None


class IncidentResolved(Event):
    """Incident service → people, dashboard: resolved (~ CDEvents incident.resolved)."""

    TOPIC: ClassVar[str] = "incident.resolved"

    incident_id: IncidentId
    service: ServiceName
    severity: IncidentSeverity
    resolved_by: str = Field(min_length=1)
    resolution: str = Field(min_length=1)
    durations: IncidentDurations
    count: int = Field(default=1, ge=1)
    change_id: ChangeId | None = None
    version: Version | None = None
    artifact: str | None = None
    environment: EnvironmentName | None = None


class IncidentAction(StrEnum):
    ACKNOWLEDGE = "acknowledge"
    NOTE = "note"
    RESOLVE = "resolve"


class IncidentUpdateRequested(Event):
    """People (`guardians incident ack|note|resolve`) → incident service. A signed command."""

    TOPIC: ClassVar[str] = "incident.update.requested"

    incident_id: IncidentId
    action: IncidentAction
    by: str = Field(min_length=1)
    text: str | None = None
    """The note, or the resolution."""
