"""One alert per degraded service, grouped, deduplicated and repeated like Alertmanager.

A yellow service is not an incident (the incident service opens those from red
`health.changed`), but someone should hear about it before it turns red, and hear it in a
way that does not train them to ignore it. Alertmanager's answers, applied to one service:

- grouping: one alert per service (dedup key `health/<service>`), whatever its checks and
  grades do while it is degraded; going yellow -> red or red -> yellow does not fire a new
  alert but sends the same alert again at once, with its count grown and the new grade;
- deduplication: nothing more is sent while the grade stays the same...
- ...except a repeat every `repeat` (Alertmanager's repeat_interval), the count growing, so
  a long degradation is not forgotten;
- a resolved notice once the service is green again.

UNKNOWN neither fires nor resolves, and does not repeat: an alert that is open stays open
(the service was not seen to recover, so resolving would claim health nobody saw), and no
repeat is sent (nobody saw it still degraded either). When a grade is known again the alert
carries on: resolved if green, an update if the grade differs, a repeat if one is due. An
unknown service is still reported (`health.changed` to unknown); it just raises no
degradation alert.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import TypeAdapter

from schemas.base import DedupKey, ServiceName
from schemas.events.health import HealthGrade
from services.process.domain import require_aware

_DEDUP_KEY: TypeAdapter[str] = TypeAdapter(DedupKey)
_SERVICE: TypeAdapter[str] = TypeAdapter(ServiceName)
_DEGRADED = frozenset({HealthGrade.YELLOW, HealthGrade.RED})


def dedup_key(service: str) -> str:
    """`health/<service>`: the service checked as the contract's ServiceName and the key as
    its DedupKey (ValueError if either is not)."""
    return _DEDUP_KEY.validate_python(f"health/{_SERVICE.validate_python(service)}")


def _time(value: Any, what: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{what} must be an ISO 8601 string, got {value!r}")
    return require_aware(datetime.fromisoformat(value), what)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


@dataclass(frozen=True)
class AlertState:
    """A service's alert: open while `raised_at` is set."""

    raised_at: datetime | None = None
    last_sent_at: datetime | None = None
    count: int = 0
    """Notices sent since it fired (fire, updates and repeats)."""
    grade: HealthGrade | None = None
    """The grade the last notice said."""

    @property
    def open(self) -> bool:
        return self.raised_at is not None

    def to_json(self) -> dict[str, Any]:
        return {"raised_at": _iso(self.raised_at), "last_sent_at": _iso(self.last_sent_at),
                "count": self.count, "grade": self.grade.value if self.grade else None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AlertState:
        """Read back `to_json`'s dict; ValueError when it is not one."""
        count = data.get("count", 0)
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise ValueError(f"alert count must be a non-negative integer, got {count!r}")
        grade = data.get("grade")
        return cls(raised_at=_time(data.get("raised_at"), "raised_at"),
                   last_sent_at=_time(data.get("last_sent_at"), "last_sent_at"),
                   count=count, grade=HealthGrade(grade) if grade is not None else None)


@dataclass(frozen=True)
class AlertAction:
    """A notice to send: `fire` (new), `repeat` (still, or now at another grade), `resolve`."""

    kind: Literal["fire", "repeat", "resolve"]
    dedup_key: str
    count: int
    """Notices sent for this alert, this one included (a resolve: those sent before it)."""
    grade: HealthGrade
    """The grade the notice is about (green for a resolve)."""
    raised_at: datetime
    previous_grade: HealthGrade | None = None
    """For a repeat sent because the grade changed: the grade before."""


def _send(state: AlertState, kind: Literal["fire", "repeat"], service: str,
          graded: HealthGrade, now: datetime) -> tuple[AlertState, AlertAction]:
    raised_at = state.raised_at or now
    count = state.count + 1
    changed = state.grade if kind == "repeat" and state.grade != graded else None
    return (AlertState(raised_at, now, count, graded),
            AlertAction(kind, dedup_key(service), count, graded, raised_at, changed))


def _due(state: AlertState, now: datetime, repeat: timedelta) -> bool:
    return state.last_sent_at is None or now - state.last_sent_at >= repeat


def next_alert(service: str, state: AlertState, grade: HealthGrade, now: datetime,
               repeat: timedelta) -> tuple[AlertState, AlertAction | None]:
    """The alert's state after seeing the service's (hysteresis-confirmed) grade at `now`,
    and the notice to send, if any."""
    require_aware(now, "now")
    if repeat <= timedelta(0):
        raise ValueError(f"repeat must be positive, got {repeat}")
    if grade in _DEGRADED:
        if not state.open:
            return _send(state, "fire", service, grade, now)
        if grade != state.grade or _due(state, now, repeat):
            return _send(state, "repeat", service, grade, now)
        return state, None
    if grade == HealthGrade.GREEN and state.raised_at is not None:
        resolved = AlertAction("resolve", dedup_key(service), state.count, HealthGrade.GREEN,
                               state.raised_at, state.grade)
        return AlertState(), resolved
    return state, None
