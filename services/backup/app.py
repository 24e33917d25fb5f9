"""Backup guardian: backups that are proven restorable.

The wiring is real: this service consumes its topics in its own consumer group under the
runtime's delivery guarantees. What it does with each event arrives with issue #5; until
then each handler records that the event was heard and emits nothing.
"""

from __future__ import annotations

from schemas.events.backup import BackupRestoreRequested
from schemas.events.deploy import DeployCompleted
from services.runtime import Context, Guardian
from services.runtime.pending import awaiting_issue

guardian = Guardian("backup")


@guardian.handles(DeployCompleted)
async def back_up_release(event: DeployCompleted, ctx: Context) -> None:
    await awaiting_issue(5, event, ctx)


@guardian.handles(BackupRestoreRequested)
async def restore(event: BackupRestoreRequested, ctx: Context) -> None:
    await awaiting_issue(5, event, ctx)
