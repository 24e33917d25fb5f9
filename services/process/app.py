"""Process guardian: continuous health, graded green / yellow / red.

The wiring is real: this service consumes its topics in its own consumer group under the
runtime's delivery guarantees. What it does with each event arrives with issue #6; until
then each handler records that the event was heard and emits nothing.
"""

from __future__ import annotations

from schemas.events.backup import BackupVerified
from schemas.events.health import ServiceRestartRequested
from services.runtime import Context, Guardian
from services.runtime.pending import awaiting_issue

guardian = Guardian("process")


@guardian.handles(BackupVerified)
async def open_health_gate(event: BackupVerified, ctx: Context) -> None:
    await awaiting_issue(6, event, ctx)


@guardian.handles(ServiceRestartRequested)
async def restart_service(event: ServiceRestartRequested, ctx: Context) -> None:
    await awaiting_issue(6, event, ctx)
