"""`guardians rollout promote|abort|rollback CHANGE`: decide a rollout, as a signed command.

promote: continue a rollout paused by a `pause` step without a duration or by an
inconclusive analysis (it then gets doubled production monitoring). abort: roll the canary
back now. rollback: roll back a rollout in progress or a completed deploy, the fast way
(no steps, no analysis). Each sends one signed event; the deploy guardian acts on it and
says what it did on `deploy.stage.changed` / `deploy.rolled_back` (`guardians tail`).
"""

from __future__ import annotations

from typing import Annotated

import typer

rollout_app = typer.Typer(help="Promote, abort or roll back a rollout (signed commands).")

Service = Annotated[str, typer.Option("--service", "-s", help="The managed service.")]
By = Annotated[str | None, typer.Option("--by", help="Who decides (default: the signer).")]
Reason = Annotated[str | None, typer.Option("--reason", "-r", help="Why, for the record.")]
Format = Annotated[str, typer.Option("--format", help="text or json (the sent command).")]


def _send(event: object, output: str) -> None:
    from cli.publish import send_command
    from schemas.base import Event

    assert isinstance(event, Event)
    send_command(event, output, "guardians rollout")


def _decide(change: str, service: str, decision: str, by: str | None, reason: str | None,
            output: str) -> None:
    import os

    from schemas.events.deploy import DeployRolloutDecided, RolloutDecision

    _send(DeployRolloutDecided(
        change_id=change, service=service, decision=RolloutDecision(decision),
        decided_by=by or os.environ.get("GUARDIANS_SIGNER") or "ops", reason=reason,
    ), output)


@rollout_app.command("promote")
def promote(change: str, service: Service, by: By = None, reason: Reason = None,
            output: Format = "text") -> None:
    """Continue a paused rollout.

    Example: guardians rollout promote shop-2.4.0 --service shop --reason "low traffic"
    """
    _decide(change, service, "promote", by, reason, output)


@rollout_app.command("abort")
def abort(change: str, service: Service, by: By = None, reason: Reason = None,
          output: Format = "text") -> None:
    """Roll the canary back now.

    Example: guardians rollout abort shop-2.4.0 --service shop --reason "checkout errors"
    """
    _decide(change, service, "abort", by, reason, output)


@rollout_app.command("rollback")
def rollback(change: str, service: Service,
             reason: Annotated[str, typer.Option("--reason", "-r", help="Why.")],
             by: By = None, output: Format = "text") -> None:
    """Roll back a rollout in progress or a completed deploy, skipping steps and analysis.

    Example: guardians rollout rollback shop-2.4.0 --service shop --reason "bad totals"
    """
    import os

    from schemas.events.deploy import DeployRollbackRequested

    _send(DeployRollbackRequested(
        change_id=change, service=service, reason=reason,
        requested_by=by or os.environ.get("GUARDIANS_SIGNER") or "ops",
    ), output)


def register(app: typer.Typer) -> None:
    app.add_typer(rollout_app, name="rollout")
