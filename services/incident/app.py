"""Incident service: emergency procedures, incident log, post-incident analysis.

The wiring is real: this service consumes its topics in its own consumer group under the
runtime's delivery guarantees. What it does with each event arrives with issue #7; until
then each handler records that the event was heard and emits nothing.
"""

from __future__ import annotations

from schemas.events.backup import BackupFailed, BackupRestored
from schemas.events.deploy import DeployFailed, DeployRolledBack
from schemas.events.health import HealthChanged
from schemas.events.migration import MigrationBlocked
from services.runtime import Context, Guardian
from services.runtime.pending import awaiting_issue

guardian = Guardian("incident")


@guardian.handles(MigrationBlocked)
async def open_from_blocked_migration(event: MigrationBlocked, ctx: Context) -> None:
    await awaiting_issue(7, event, ctx)


@guardian.handles(DeployFailed)
async def open_from_deploy_failure(event: DeployFailed, ctx: Context) -> None:
    await awaiting_issue(7, event, ctx)


@guardian.handles(DeployRolledBack)
async def open_from_rollback(event: DeployRolledBack, ctx: Context) -> None:
    await awaiting_issue(7, event, ctx)


@guardian.handles(BackupFailed)
async def open_from_backup_failure(event: BackupFailed, ctx: Context) -> None:
    await awaiting_issue(7, event, ctx)


@guardian.handles(BackupRestored)
async def record_restore_outcome(event: BackupRestored, ctx: Context) -> None:
    await awaiting_issue(7, event, ctx)


@guardian.handles(HealthChanged)
async def open_from_health_change(event: HealthChanged, ctx: Context) -> None:
    await awaiting_issue(7, event, ctx)
