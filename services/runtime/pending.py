"""The honest placeholder for a guardian whose logic has not landed yet."""

from __future__ import annotations

import logging

from schemas.base import Event
from services.runtime.handling import Context

log = logging.getLogger("guardians.pending")


async def awaiting_issue(issue: int, event: Event, ctx: Context) -> None:
    """Record that the event was heard (the runtime already stored it as processed) and say
    plainly that nothing was done with it."""
    log.warning(
        "heard %s; this guardian's logic arrives with issue #%d, nothing emitted",
        event.TOPIC,
        issue,
        extra={"event_id": ctx.incoming.id if ctx.incoming else None, "issue": issue},
    )
