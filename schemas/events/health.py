"""The process guardian's events: health snapshots and transitions, restarts, and `infra.ready`.

Health events are keyed by `service`, so one service's grades stay in order. `infra.ready`
ends a release's pipeline and is keyed by its `change_id` like the other pipeline events.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

from pydantic import Field

from schemas.base import ChangeId, Event, IncidentId, Seconds, ServiceName, StrictModel
from schemas.events.change import Version


class HealthGrade(StrEnum):
    """Green: all pass. Yellow: degraded. Red: a critical check failed. Unknown: no data."""

    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"
    UNKNOWN = "unknown"


class CheckStatus(StrEnum):
    PASS = "pass"  # noqa: S105 (a check status, not a password)
    WARN = "warn"
    FAIL = "fail"
    UNKNOWN = "unknown"
    """No result (timed out, target unreachable for the probe itself): never read as pass."""


class CheckKind(StrEnum):
    HTTP = "http"
    TCP = "tcp"
    DEPENDENCY = "dependency"
    PORT = "port"
    RESOURCE = "resource"
    PROCESS = "process"


class CheckResult(StrictModel):
    """One check's latest result."""

    name: str = Field(min_length=1)
    kind: CheckKind
    status: CheckStatus
    critical: bool = False
    """A failing critical check turns the grade red; others turn it yellow."""
    observed: float | None = None
    """The measured value (response time, CPU %, restart count); null when none was measured."""
    unit: str | None = None
    condition: str | None = None
    """The condition it was held to (`[RESPONSE_TIME] < 300`)."""
    message: str | None = None
    duration_seconds: Seconds | None = None


class HealthReported(Event):
    """Process guardian → dashboard: a service's grade and checks, on an interval."""

    TOPIC: ClassVar[str] = "health.reported"

    service: ServiceName
    grade: HealthGrade
    checks: tuple[CheckResult, ...] = ()
    change_id: ChangeId | None = None
    """The release whose post-deploy health gate is running, if any."""


class HealthChanged(Event):
    """Process guardian → incident service: a service's grade changed, and the checks why."""

    TOPIC: ClassVar[str] = "health.changed"

    service: ServiceName
    grade: HealthGrade
    previous_grade: HealthGrade
    causes: tuple[CheckResult, ...] = ()
    consecutive: int = Field(default=1, ge=1)
    """How many results in a row confirmed the new grade (hysteresis)."""
    change_id: ChangeId | None = None


class ServiceRestartRequested(Event):
    """Incident service or people → process guardian: restart this service. Signed."""

    TOPIC: ClassVar[str] = "service.restart.requested"

    service: ServiceName
    requested_by: str = Field(min_length=1)
    reason: str = Field(min_length=1)
    instance: str | None = None
    """One instance or process; null: every instance."""
    incident_id: IncidentId | None = None


class InfraReady(Event):
    """Process guardian → dashboard, people: the release held green through its health gate."""

    TOPIC: ClassVar[str] = "infra.ready"

    change_id: ChangeId
    service: ServiceName
    version: Version
    gate_seconds: Seconds
    """How long the service stayed green after the backup was verified."""
    checks_passed: int = Field(ge=0)
