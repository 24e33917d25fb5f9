"""Deploy guardian: staged rollouts with canary analysis and automatic rollback.

The wiring is real: this service consumes its topics in its own consumer group under the
runtime's delivery guarantees. What it does with each event arrives with issue #4; until
then each handler records that the event was heard and emits nothing.
"""

from __future__ import annotations

from schemas.events.deploy import DeployRollbackRequested
from schemas.events.migration import MigrationApproved
from services.runtime import Context, Guardian
from services.runtime.pending import awaiting_issue

guardian = Guardian("deploy")


@guardian.handles(MigrationApproved)
async def start_rollout(event: MigrationApproved, ctx: Context) -> None:
    await awaiting_issue(4, event, ctx)


@guardian.handles(DeployRollbackRequested)
async def roll_back(event: DeployRollbackRequested, ctx: Context) -> None:
    await awaiting_issue(4, event, ctx)
