"""The process guardian's pure part: check conditions, grades, limits, alerts and the gate.

No I/O here: no HTTP, no sockets, no psutil, no Kafka, no database and no clock. Probes (the
adapters) hand in what they observed and callers hand in the time, as aware UTC datetimes,
so every rule that turns observations into green / yellow / red, into a restart or not, into
an alert or not, can be unit-tested exhaustively.

- `conditions`: Gatus-style HTTP conditions (`[STATUS] == 200`) and judging one probe.
- `grading`: checks to a grade, hysteresis (Monit's "for N cycles"), threshold judging.
- `limits`: Monit's "N restarts within M cycles, then stop", and flapping.
- `alerts`: one Alertmanager-like alert per degraded service: fire, repeat, resolve.
- `gate`: the post-deploy health gate: green for long enough, or red.
"""

from __future__ import annotations

from datetime import datetime


def require_aware(moment: datetime, what: str) -> datetime:
    """`moment`, refused when naive: a time without a zone compares wrongly (or not at all)
    with the aware times the contract carries, and would be stored ambiguously."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} must be an aware datetime (UTC), got {moment.isoformat()}")
    return moment
