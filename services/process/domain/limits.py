"""Restart limits and flapping: Monit's "N restarts within M cycles, then stop".

Restarting a failing process is the cheapest repair, and the most dangerous one when it does
not help: a process that crashes on start is restarted forever, hides the real fault and
floods the logs. So we restart at most `max_restarts` times within a sliding `window`; past
that we stop and leave it to the incident service and people (`restart_allowed`).

A process that restarts by itself (a supervisor, a crash loop under systemd) shows the same
problem from outside: its pid keeps changing. More new pids than `max_restarts` within the
window is flapping (`flapping`): a warning, even while each new instance looks healthy.

Both count the moments in the window `(now - window, now]`: a restart exactly `window` ago
has just left it. A moment after `now` (another machine's clock ahead of ours) counts, as
if it had just happened: a restart is never forgotten early.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from services.process.domain import require_aware


def _check(now: datetime, max_restarts: int, window: timedelta) -> None:
    require_aware(now, "now")
    if max_restarts < 0:
        raise ValueError(f"max_restarts must be 0 or more, got {max_restarts}")
    if window <= timedelta(0):
        raise ValueError(f"window must be positive, got {window}")


def within(moments: Sequence[datetime], now: datetime, window: timedelta) -> int:
    """How many of `moments` fall in `(now - window, now]` or after `now`."""
    start = now - window
    return sum(1 for moment in moments if require_aware(moment, "a restart time") > start)


def _describe(window: timedelta) -> str:
    seconds = int(window.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{window.total_seconds():g}s"


def restart_allowed(history: Sequence[datetime], now: datetime, max_restarts: int,
                    window: timedelta) -> tuple[bool, str]:
    """Whether we may restart once more, given when we restarted before, and why (or why
    not: then stop restarting and escalate)."""
    _check(now, max_restarts, window)
    done = within(history, now, window)
    span = f"in the last {_describe(window)}"
    if done >= max_restarts:
        return False, (f"{done} restart{'s' if done != 1 else ''} {span} reached the limit of "
                       f"{max_restarts}: not restarting again, escalate")
    return True, f"restart {done + 1} of {max_restarts} allowed {span}"


def flapping(pid_starts: Sequence[datetime], now: datetime, max_restarts: int,
             window: timedelta) -> tuple[bool, int]:
    """Whether a process flaps, and how many restarts were seen in the window.

    `pid_starts`: when each new pid was seen (or started) after the first observation of the
    process; the pids found at the first observation are its baseline, not restarts. Flapping
    is more restarts than `max_restarts` within the window."""
    _check(now, max_restarts, window)
    restarts = within(pid_starts, now, window)
    return restarts > max_restarts, restarts
