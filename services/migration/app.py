"""Migration guardian: assesses, verifies and gates every change before it deploys.

The wiring is real: this service consumes its topics in its own consumer group under the
runtime's delivery guarantees. What it does with each event arrives with issue #3; until
then each handler records that the event was heard and emits nothing.
"""

from __future__ import annotations

from schemas.events.change import ChangeSubmitted
from schemas.events.migration import MigrationReviewDecided
from services.runtime import Context, Guardian
from services.runtime.pending import awaiting_issue

guardian = Guardian("migration")


@guardian.handles(ChangeSubmitted)
async def assess_change(event: ChangeSubmitted, ctx: Context) -> None:
    await awaiting_issue(3, event, ctx)


@guardian.handles(MigrationReviewDecided)
async def record_review_decision(event: MigrationReviewDecided, ctx: Context) -> None:
    await awaiting_issue(3, event, ctx)
