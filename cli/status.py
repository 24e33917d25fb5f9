"""`guardians status [CHANGE]`: where each change is in the pipeline, read from Kafka.

The pipeline has no central database a person could query: each guardian keeps its own
state, and what they say to each other is on the topics. So the status is rebuilt from the
pipeline topics (those keyed by change id), read without a consumer group from `--since`
(by timestamp) to their current end. A change's state is what its latest event says:

    submitted → assessed (risk) → in review / approved / blocked
      → staging → staging tests → canary W% / paused → production → monitoring → completed
        (or rolling back → rolled back, failed)
      → backup verified / backup failed → ready (infra.ready: the end of the pipeline)

with the time each state was first reached. `outcome` sums it up for scripts: `running`,
`waiting` (for a person: a review, a paused rollout), `succeeded` (ready) or `failed`.
Measurements (`deploy.analysis.measured`) are left out: they are `guardians tail`'s.

The state is derived here from the events alone (`change_states`, pure), so it is tested
without a broker.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from cli.topic_reader import Message


class OutputFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


SKIPPED_TOPICS = frozenset({"deploy.analysis.measured"})

_RANK = {"submitted": 0, "assessed": 1, "in_review": 2, "approved": 3, "blocked": 3,
         "staging": 4, "staging_tests": 5, "canary": 6, "paused": 6, "production": 7,
         "monitoring": 8, "rolling_back": 9, "rolled_back": 10, "failed": 10,
         "completed": 11, "backup_failed": 12, "backup_verified": 12, "ready": 13}
"""Breaks ties between events stamped the same instant (the later stage wins)."""

WAITING = frozenset({"in_review", "paused"})
FAILED = frozenset({"blocked", "rolled_back", "failed", "backup_failed"})


def pipeline_topics() -> list[str]:
    """The topics keyed by change id, less the measurements."""
    from schemas.topics import REGISTRY

    return [s.name for s in REGISTRY.all()
            if s.key_field == "change_id" and s.name not in SKIPPED_TOPICS]


def _weight(value: Any) -> str:
    return f" {value}%" if isinstance(value, int) else ""


def state_of(message: Message) -> tuple[str, str] | None:
    """The state an event puts its change in, and how to say it; None for an event that
    does not move the change (a person's command, a measurement)."""
    kind, get = message.kind, message.field
    if kind == "change.submitted":
        return "submitted", f"submitted ({len(get('migrations') or ())} migrations)"
    if kind == "migration.assessed":
        return "assessed", f"assessed: {get('risk')} risk"
    if kind == "migration.review.requested":
        approvals = get("required_approvals") or 1
        return "in_review", (f"in review: {get('review')} review, {approvals} approval"
                             f"{'s' if approvals != 1 else ''} needed by {get('deadline')}")
    if kind == "migration.approved":
        return "approved", f"approved ({get('approval')})"
    if kind == "migration.blocked":
        return "blocked", f"blocked: {get('reason')}"
    if kind == "deploy.stage.changed":
        stage = str(get("stage"))
        label = {"staging_tests": "staging tests", "canary": "canary" + _weight(
                     get("canary_weight")),
                 "paused": "paused" + (f" at{_weight(get('canary_weight'))}"
                                       if get("canary_weight") is not None else ""),
                 "monitoring": "production monitoring", "rolling_back": "rolling back",
                 "rolled_back": "rolled back", "failed": "deploy failed"}.get(stage, stage)
        return stage, label
    if kind == "deploy.completed":
        return "completed", f"deployed to {get('environment') or 'production'}"
    if kind == "deploy.rolled_back":
        return "rolled_back", f"rolled back ({get('trigger')}) to {get('restored_version')}"
    if kind == "deploy.failed":
        return "failed", f"deploy failed at {get('stage')}: {get('failure')}"
    if kind == "backup.verified":
        return "backup_verified", "backup verified"
    if kind == "backup.failed":
        retry = " (retrying)" if get("will_retry") else ""
        return "backup_failed", f"backup failed in {get('phase')}{retry}"
    if kind == "infra.ready":
        return "ready", "ready: passed the health gate"
    return None


@dataclass
class ChangeState:
    """One change as its events tell it."""

    change_id: str
    service: str | None = None
    version: str | None = None
    previous_version: str | None = None
    risk: str | None = None
    state: str = "unknown"
    description: str = "no pipeline event moved it yet"
    updated_at: datetime | None = None
    first_seen: datetime | None = None
    retrying: bool = False
    milestones: dict[str, datetime] = field(default_factory=dict)
    """Each state, when it was first reached, in that order."""
    history: list[Message] = field(default_factory=list)

    @property
    def outcome(self) -> str:
        if self.state == "ready":
            return "succeeded"
        if self.state in WAITING:
            return "waiting"
        if self.state in FAILED and not (self.state == "backup_failed" and self.retrying):
            return "failed"
        return "running"

    def to_json(self, with_history: bool) -> dict[str, Any]:
        document: dict[str, Any] = {
            "change_id": self.change_id, "service": self.service, "version": self.version,
            "previous_version": self.previous_version, "risk": self.risk,
            "state": self.state, "description": self.description, "outcome": self.outcome,
            "updated_at": _iso(self.updated_at), "first_seen": _iso(self.first_seen),
            "milestones": {k: _iso(v) for k, v in self.milestones.items()},
        }
        if with_history:
            document["history"] = [{
                "time": _iso(m.time), "topic": m.topic, "id": m.envelope.id if m.envelope
                else None, "signer": m.envelope.signer if m.envelope else None,
                "summary": m.summary()} for m in self.history]
        return document


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def change_states(messages: Iterable[Message]) -> dict[str, ChangeState]:
    """Every change the messages are about, with its state (messages in any order)."""
    ordered: list[tuple[Message, tuple[str, str] | None]] = [(m, state_of(m)) for m in messages]
    ordered.sort(key=lambda p: (p[0].time, _RANK.get(p[1][0], -1) if p[1] else -1))
    changes: dict[str, ChangeState] = {}
    for message, moved in ordered:
        change_id = message.change_id or message.key
        if not change_id:
            continue
        change = changes.setdefault(change_id, ChangeState(change_id))
        change.history.append(message)
        change.first_seen = change.first_seen or message.time
        for name in ("service", "version", "previous_version", "risk"):
            value = message.field(name)
            if isinstance(value, str) and value:
                setattr(change, name, value)
        if moved is None:
            continue
        change.state, change.description = moved
        change.retrying = bool(message.field("will_retry"))
        change.updated_at = message.time
        change.milestones.setdefault(moved[0], message.time)
    return changes


def _ago(then: datetime | None, now: datetime) -> str:
    if then is None:
        return "-"
    seconds = max(0, int((now - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def _stamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _stamp_ms(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def render_table(changes: list[ChangeState], now: datetime) -> str:
    rows = [("CHANGE", "SERVICE", "VERSION", "STATE", "RISK", "UPDATED")]
    rows += [(c.change_id, c.service or "-", c.version or "-", c.description, c.risk or "-",
              f"{_stamp(c.updated_at or c.first_seen or now)} ({_ago(c.updated_at, now)})")
             for c in changes]
    widths = [min(max(len(r[i]) for r in rows), 60) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False))
                     + "  " + row[-1] for row in rows)


def render_change(change: ChangeState) -> str:
    versions = (f"{change.previous_version} → {change.version}" if change.previous_version
                else change.version or "?")
    lines = [f"{change.change_id}  {change.service or '?'} {versions}: {change.description}"
             f" ({change.outcome})"]
    if change.risk:
        lines.append(f"risk: {change.risk}")
    lines.append("reached: " + ", ".join(f"{state} {v.astimezone(UTC):%H:%M:%S}"
                                         for state, v in change.milestones.items()))
    lines.append("history:")
    for m in change.history:
        lines.append(f"  {_stamp_ms(m.time)}  {m.topic:28} {m.summary()}")
    return "\n".join(lines)


def collect(change: str | None, since: datetime) -> dict[str, ChangeState]:
    """Read the pipeline topics from `since` and derive the states. Raises ReadError."""
    import asyncio

    from cli.topic_reader import bootstrap_server, read_window

    keep = (lambda _: True) if change is None else (lambda m: m.about_change(change))
    with _progress('reading the pipeline topics…'):
        messages = asyncio.run(read_window(bootstrap_server(), pipeline_topics(), since, keep))
    return change_states(messages)


def command(
    change: Annotated[str | None, typer.Argument(
        help="A change id: that change with its history (default: every change).")] = None,
    since: Annotated[str, typer.Option(
        "--since", help="Read events from this long ago (90s, 15m, 24h, 3d, 1w) or this "
                        "ISO-8601 time.")] = "24h",
    output: Annotated[OutputFormat, typer.Option(
        "--format", help="text, or json (for scripts: state, outcome, milestones).")
    ] = OutputFormat.TEXT,
) -> None:
    """Where each change is in the pipeline (read without a consumer group).

    States: submitted, assessed, in review, approved or blocked, the deploy
    stage (staging, canary W%, paused, production, monitoring, completed,
    rolled back, failed), backup verified or failed, ready.
    Exit 1 when CHANGE has no event since --since.

    Example: guardians status shop-2.4.0-1a2b3c --format json
    """
    import logging

    from cli.topic_reader import ReadError, parse_since

    logging.getLogger("aiokafka").addHandler(logging.NullHandler())
    try:
        start = parse_since(since)
    except ValueError as exc:
        typer.echo(f"guardians status: --since {exc}", err=True)
        raise typer.Exit(2) from exc
    try:
        changes = collect(change, start)
    except ReadError as exc:
        typer.echo(f"guardians status: {exc}", err=True)
        raise typer.Exit(2) from exc
    if change is not None:
        found = changes.get(change)
        if found is None:
            typer.echo(f"guardians status: no event for {change} since {_stamp(start)} UTC "
                       "(an older change? try --since 7d)", err=True)
            raise typer.Exit(1)
        typer.echo(json.dumps(found.to_json(True), indent=1, ensure_ascii=False)
                   if output is OutputFormat.JSON else render_change(found))
        return
    listed = sorted(changes.values(), key=lambda c: c.updated_at or c.first_seen
                    or datetime.min.replace(tzinfo=UTC), reverse=True)
    if output is OutputFormat.JSON:
        typer.echo(json.dumps([c.to_json(False) for c in listed], indent=1,
                              ensure_ascii=False))
    elif not listed:
        typer.echo(f"no changes since {_stamp(start)} UTC")
    else:
        typer.echo(render_table(listed, datetime.now(UTC)))


def register(app: typer.Typer) -> None:
    app.command("status")(command)


def _progress(what: str) -> Any:
    """A spinner on stderr while a long step runs (nothing when stderr is not a terminal)."""
    from rich.console import Console

    return Console(stderr=True).status(what)
