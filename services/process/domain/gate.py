"""The post-deploy health gate: a release is ready when its service held green long enough.

After `backup.verified`, a release has been deployed and its data is safe; what is left is
to see the service healthy in production for `gate_seconds`, continuously: a grade that is
not green restarts the clock, so a service that is green, yellow, green, green is measured
from its last return to green. Green for the whole span is `ready` (the caller emits
`infra.ready`); anything else is `wait`. RED is reported as `red`: the gate does not open
incidents or roll back (the incident service does, from `health.changed`); the caller
decides what to do with the gate, and if it keeps it, the gate can still become ready once
the service is green long enough again.

Grades are observed at intervals, so "green since" is the first green observation: the
service is not assumed to have been green before it was seen so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from schemas.events.health import HealthGrade
from services.process.domain import require_aware

GateVerdict = Literal["wait", "ready", "red"]


def _time(value: Any, what: str) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be an ISO 8601 string, got {value!r}")
    return require_aware(datetime.fromisoformat(value), what)


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"gate {key} must be a non-empty string, got {value!r}")
    return value


@dataclass(frozen=True)
class Gate:
    """One release's gate, opened when its backup was verified."""

    change_id: str
    service: str
    version: str
    opened_at: datetime
    green_since: datetime | None = None
    """The first green observation of the current green run; None when not green."""

    def green_for(self, now: datetime) -> timedelta:
        """How long the service has been seen green without a break (zero when not green)."""
        return now - self.green_since if self.green_since is not None else timedelta(0)

    def to_json(self) -> dict[str, Any]:
        return {"change_id": self.change_id, "service": self.service, "version": self.version,
                "opened_at": self.opened_at.isoformat(),
                "green_since": self.green_since.isoformat() if self.green_since else None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Gate:
        """Read back `to_json`'s dict; ValueError when it is not one."""
        green_since = data.get("green_since")
        return cls(change_id=_text(data, "change_id"), service=_text(data, "service"),
                   version=_text(data, "version"),
                   opened_at=_time(data.get("opened_at"), "opened_at"),
                   green_since=_time(green_since, "green_since") if green_since else None)


def observe_gate(gate: Gate, grade: HealthGrade, now: datetime,
                 seconds: float) -> tuple[Gate, GateVerdict]:
    """The gate after one graded observation at `now`: `ready` once green continuously for
    `seconds` (at exactly `seconds` too; at once when 0), `red` on RED, else `wait`."""
    require_aware(now, "now")
    if math.isnan(seconds) or seconds < 0:
        raise ValueError(f"seconds must be 0 or more, got {seconds}")
    if grade != HealthGrade.GREEN:
        cleared = replace(gate, green_since=None)
        return cleared, "red" if grade == HealthGrade.RED else "wait"
    green = gate if gate.green_since is not None else replace(gate, green_since=now)
    ready = green.green_for(now) >= timedelta(seconds=seconds)
    return green, "ready" if ready else "wait"
