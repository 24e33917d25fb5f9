"""From check results to one grade per service, held steady by hysteresis.

Each check contributes a grade of its own (`check_grade`):

| status  | critical check | non-critical check |
|---------|----------------|--------------------|
| PASS    | green          | green              |
| WARN    | yellow         | yellow             |
| FAIL    | red            | yellow             |
| UNKNOWN | unknown        | yellow             |

and the service's grade is the worst of them, in the order red > unknown > yellow > green
(`grade`). So: no results is UNKNOWN (nothing was seen, so nothing can be claimed); any
critical FAIL is RED, even when other critical checks are unknown (a known failure is
enough); else a critical check that could not be judged makes the service UNKNOWN, never
silently green or red; else any warning, and any non-critical failure or unknown, is YELLOW
(degraded: Gatus's most requested missing state); else GREEN. `causes` lists the checks that
made the grade: those whose own grade it is (none for green: nothing is wrong).

A grade is published only after it was seen `needed` times in a row (`Hysteresis`), as
Monit's "if failed ... for N cycles": one slow answer or one restart does not page anyone.
That applies to every change, the first one out of UNKNOWN included: a service that has just
started is unknown until N results agree, so a probe caught during its start-up never
publishes red, and a green grade is only claimed once it has been seen to hold.

`judge_value` turns a measured value and its thresholds (CPU %, RSS MB, open files, disk %)
into a check status: higher is worse, a level is reached at the threshold itself.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from schemas.events.health import CheckResult, CheckStatus, HealthGrade
from services.runtime.config import Thresholds

_SEVERITY = {HealthGrade.GREEN: 0, HealthGrade.YELLOW: 1, HealthGrade.UNKNOWN: 2,
             HealthGrade.RED: 3}
"""Which grade wins when checks disagree: a known failure beats not knowing, and not
knowing a critical check beats a degradation."""


def check_grade(result: CheckResult) -> HealthGrade:
    """The grade one check alone would give its service (the table above)."""
    match result.status:
        case CheckStatus.PASS:
            return HealthGrade.GREEN
        case CheckStatus.WARN:
            return HealthGrade.YELLOW
        case CheckStatus.FAIL:
            return HealthGrade.RED if result.critical else HealthGrade.YELLOW
        case CheckStatus.UNKNOWN:
            return HealthGrade.UNKNOWN if result.critical else HealthGrade.YELLOW


def grade(results: Sequence[CheckResult]) -> HealthGrade:
    """The service's grade: the worst of its checks' grades; UNKNOWN without results."""
    if not results:
        return HealthGrade.UNKNOWN
    return max((check_grade(r) for r in results), key=_SEVERITY.__getitem__)


def causes(results: Sequence[CheckResult], graded: HealthGrade) -> tuple[CheckResult, ...]:
    """The checks that make the service `graded`: those whose own grade it is. Green has no
    causes; an unknown service without results has none either (nothing was checked)."""
    if graded is HealthGrade.GREEN:
        return ()
    return tuple(r for r in results if check_grade(r) is graded)


# -- hysteresis -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Hysteresis:
    """A service's published grade, and the different grade it may be changing to."""

    current: HealthGrade = HealthGrade.UNKNOWN
    candidate: HealthGrade | None = None
    count: int = 0
    """Consecutive observations of `candidate`."""

    def observe(self, observed: HealthGrade, needed: int) -> tuple[Hysteresis, bool]:
        """The state after one more graded result, and whether `current` changed.

        A grade replaces `current` on its `needed`-th consecutive observation; an observation
        equal to `current` drops the candidate, and a third grade starts a new count."""
        if needed < 1:
            raise ValueError(f"needed must be at least 1, got {needed}")
        if observed == self.current:
            return Hysteresis(self.current), False
        count = self.count + 1 if observed == self.candidate else 1
        if count >= needed:
            return Hysteresis(observed), True
        return replace(self, candidate=observed, count=count), False

    def to_json(self) -> dict[str, Any]:
        return {"current": self.current.value,
                "candidate": self.candidate.value if self.candidate else None,
                "count": self.count}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Hysteresis:
        """Read back `to_json`'s dict; ValueError when it is not one."""
        candidate = data.get("candidate")
        count = data.get("count", 0)
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise ValueError(f"hysteresis count must be a non-negative integer, got {count!r}")
        return cls(current=HealthGrade(data.get("current", HealthGrade.UNKNOWN.value)),
                   candidate=HealthGrade(candidate) if candidate is not None else None,
                   count=count if candidate is not None else 0)


# -- thresholds -----------------------------------------------------------------------------


def _amount(value: float, unit: str) -> str:
    shown = f"{value:.6g}" if not float(value).is_integer() else str(int(value))
    return f"{shown}{unit}" if unit == "%" else f"{shown} {unit}".rstrip()


def judge_value(value: float | None, t: Thresholds, *, what: str,
                unit: str) -> tuple[CheckStatus, str]:
    """PASS below the thresholds, WARN from `warn`, FAIL from `critical` (higher is worse);
    UNKNOWN when nothing was measured (None, or NaN from a broken reading)."""
    if value is None or math.isnan(value):
        return CheckStatus.UNKNOWN, f"{what} not measured"
    shown = f"{what} {_amount(value, unit)}"
    if t.critical is not None and value >= t.critical:
        return CheckStatus.FAIL, f"{shown} >= critical {_amount(t.critical, unit)}"
    if t.warn is not None and value >= t.warn:
        return CheckStatus.WARN, f"{shown} >= warning {_amount(t.warn, unit)}"
    below = [f"{name} {_amount(level, unit)}"
             for name, level in (("warning", t.warn), ("critical", t.critical))
             if level is not None]
    return CheckStatus.PASS, f"{shown} < {below[0]}" if below else f"{shown} (no thresholds)"
