"""`ops.alerts`: what the guardians tell people, grouped and deduplicated like Alertmanager.

Keyed by `dedup_key`, so a problem's firing, repeat and resolved notices stay in order.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

from pydantic import Field

from schemas.base import ChangeId, DedupKey, Event, IncidentId, ServiceName, StrictModel


class AlertSeverity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class Guardian(StrEnum):
    """The five services; the keys of `schemas.topics.SERVICES`."""

    MIGRATION = "migration"
    DEPLOY = "deploy"
    BACKUP = "backup"
    PROCESS = "process"
    INCIDENT = "incident"


class AlertValue(StrictModel):
    """A measured value that explains the alert (a yellow check's response time)."""

    name: str = Field(min_length=1)
    value: float | None
    """null when there was no data."""
    unit: str | None = None
    threshold: float | None = None


class OpsAlert(Event):
    """Any guardian → people: a notice, a warning, an escalation step, or its resolution."""

    TOPIC: ClassVar[str] = "ops.alerts"

    dedup_key: DedupKey
    severity: AlertSeverity
    summary: str = Field(min_length=1)
    raised_by: ServiceName
    """The service that raised it: one of the five guardians (`Guardian`) or another service
    on the runtime, such as the dashboard's read model."""
    service: ServiceName | None = None
    details: str | None = None
    resolved: bool = False
    """A resolved notice for the alert with this dedup key."""
    count: int = Field(default=1, ge=1)
    """How many times this problem was seen since it fired."""
    values: tuple[AlertValue, ...] = ()
    notify: tuple[str, ...] = ()
    """Who should hear it (an escalation level's targets); empty: the default route."""
    escalation_level: int | None = Field(default=None, ge=1)
    incident_id: IncidentId | None = None
    change_id: ChangeId | None = None
