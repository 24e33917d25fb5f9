"""`guardians approve CHANGE` and `guardians reject CHANGE`: a reviewer's decision, signed.

A MEDIUM or HIGH risk change waits in review (`migration.review.requested`, with a
checklist) until enough authorised reviewers approve it, one rejects it, or the deadline
passes. These commands send the reviewer's `migration.review.decided`, signed with the key
in the environment (as every command: GUARDIANS_SIGNER and GUARDIANS_SIGNING_KEY or
GUARDIANS_SIGNING_KEY_FILE). The reviewer is the signer's name unless `--reviewer` says
otherwise; the migration guardian checks that the signer may vouch for that reviewer.

An approval must acknowledge every checklist item: name them with `--ack` (repeat it, or
comma-separate), or `--all-items` to acknowledge every item of the change's latest review
request, read from `migration.review.requested` without a consumer group (so the items are
the ones the guardian asked about, not a guess). What the guardian did with the decision is
on `migration.approved` / `migration.blocked` (`guardians status CHANGE`).
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from cli.topic_reader import Message
    from schemas.events.migration import MigrationReviewDecided


class OutputFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


Service = Annotated[str, typer.Option("--service", "-s", help="The managed service.")]
Reviewer = Annotated[str | None, typer.Option(
    "--reviewer", help="Who decides (default: the signer's name).")]
Format = Annotated[OutputFormat, typer.Option(
    "--format", help="text, or json (the sent command).")]


class ReviewError(Exception):
    """Bad input, or a review request that is not there; the message says which."""


def latest_review_request(change: str) -> Message:
    """The change's latest `migration.review.requested`, read from the whole topic."""
    import asyncio

    from cli.topic_reader import bootstrap_server, read_window

    found = asyncio.run(read_window(bootstrap_server(), ["migration.review.requested"], None,
                                    lambda m: m.about_change(change)))
    if not found:
        raise ReviewError(f"--all-items: no migration.review.requested for {change} on the "
                          "broker (not in review, or the request is past retention); name "
                          "the items with --ack")
    return found[-1]


def checklist_ids(request: Message, service: str) -> list[str]:
    named = request.field("service")
    if named != service:
        raise ReviewError(f"--service {service}: {request.change_id or request.key} is a "
                          f"change of {named!r}")
    items = request.field("checklist") or []
    return [str(item["id"]) for item in items if isinstance(item, dict) and "id" in item]


def _split(values: list[str] | None) -> list[str]:
    return [v.strip() for value in values or () for v in value.split(",") if v.strip()]


def _decide(change: str, service: str, decision: str, acknowledged: list[str],
            comment: str | None, reviewer: str | None, output: OutputFormat) -> None:
    from pydantic import ValidationError

    from cli.publish import PublishError, publish, signing_key
    from schemas.events.migration import MigrationReviewDecided, ReviewDecision

    try:
        key = signing_key()
        event = MigrationReviewDecided(
            change_id=change, service=service, reviewer=reviewer or key.name,
            decision=ReviewDecision(decision), acknowledged=tuple(acknowledged),
            comment=comment)
        envelope = publish(event)
    except ValidationError as exc:
        typer.echo(f"guardians {decision}: {_explain(exc)}", err=True)
        raise typer.Exit(2) from exc
    except PublishError as exc:
        typer.echo(f"guardians {decision}: {exc}", err=True)
        raise typer.Exit(2) from exc
    _report(envelope.id, envelope.type, envelope.signer, event, output)


_OPTION_OF = {"change_id": "CHANGE", "service": "--service", "reviewer": "--reviewer",
              "acknowledged": "--ack", "comment": "--comment"}


def _explain(exc: Any) -> str:
    """A pydantic ValidationError in the command line's words."""
    parts = []
    for error in exc.errors():
        where = error["loc"][0] if error["loc"] else ""
        value = error.get("input")
        parts.append(f"{_OPTION_OF.get(str(where), str(where))} {value!r}: {error['msg']}")
    return "; ".join(parts)


def _report(event_id: str, ce_type: str, signer: str | None, event: MigrationReviewDecided,
            output: OutputFormat) -> None:
    if output is OutputFormat.JSON:
        typer.echo(json.dumps({"id": event_id, "type": ce_type, "signer": signer,
                               "event": event.model_dump(mode="json")}))
        return
    acknowledged = f"; acknowledged {', '.join(event.acknowledged)}" if event.acknowledged \
        else ""
    typer.echo(f"sent {event.decision} for {event.change_id} by {event.reviewer} "
               f"({ce_type} {event_id}), signed by {signer}{acknowledged}")


def approve(
    change: Annotated[str, typer.Argument(help="The change id.")],
    service: Service,
    ack: Annotated[list[str] | None, typer.Option(
        "--ack", "-a", help="A checklist item id acknowledged (repeat, or comma-separate).")
    ] = None,
    all_items: Annotated[bool, typer.Option(
        "--all-items", help="Acknowledge every item of the change's latest review request "
                            "(read from migration.review.requested).")] = False,
    comment: Annotated[str | None, typer.Option(
        "--comment", "-m", help="Why, for the record.")] = None,
    reviewer: Reviewer = None,
    output: Format = OutputFormat.TEXT,
) -> None:
    """Approve a change in review: a signed migration.review.decided.

    Example: guardians approve shop-2.4.0-1a2b3c -s shop --all-items
    """
    import logging

    from cli.topic_reader import ReadError

    logging.getLogger("aiokafka").addHandler(logging.NullHandler())
    items = _split(ack)
    if all_items:
        try:
            items += checklist_ids(latest_review_request(change), service)
        except (ReviewError, ReadError) as exc:
            typer.echo(f"guardians approve: {exc}", err=True)
            raise typer.Exit(2) from exc
    _decide(change, service, "approve", list(dict.fromkeys(items)), comment, reviewer, output)


def reject(
    change: Annotated[str, typer.Argument(help="The change id.")],
    service: Service,
    comment: Annotated[str, typer.Option(
        "--comment", "-m", help="Why (the block says it).")],
    reviewer: Reviewer = None,
    output: Format = OutputFormat.TEXT,
) -> None:
    """Reject a change in review: it is blocked, with your comment as the reason.

    Example: guardians reject shop-2.4.0-1a2b3c -s shop -m "locks orders"
    """
    if not comment.strip():
        typer.echo("guardians reject: --comment is empty: say why", err=True)
        raise typer.Exit(2)
    _decide(change, service, "reject", [], comment, reviewer, output)


def register(app: typer.Typer) -> None:
    app.command("approve")(approve)
    app.command("reject")(reject)
