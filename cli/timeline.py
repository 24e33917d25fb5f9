"""A release's or an incident's causal timeline, rebuilt from its events alone (pure).

`guardians replay` reads the retained topics (cli/replay.py); everything it then says is
derived here from the envelopes and values: the order (`ce_time`, ties in causal order),
who caused what (an event's parent is the event whose `ce_id` is its `ce_causationid`),
the root-cause candidate, the actions taken and their outcomes, the durations and the
post-incident report. Kept free of Kafka so that all of it is tested from hand-built events,
and so that the incident service can render the same report from the same functions.

Values are read as JSON, not validated against the models: a replay must show what was
said, including an event that a guardian dead-lettered, and it must stay cheap over a
million events. Event kinds come from `ce_type` (`guardians.deploy.failed.v1` is
`deploy.failed`), so the same events read from renamed topics mean the same things.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from schemas.envelope import Envelope

Value = Mapping[str, Any]

FAILURE_KINDS = frozenset({"deploy.failed", "deploy.rolled_back", "backup.failed",
                           "migration.blocked"})
"""Kinds that are failures whatever they carry (plus red health and failed measurements)."""

REQUEST_KINDS = {"deploy.rollback.requested": "rollback", "backup.restore.requested": "restore",
                 "service.restart.requested": "restart"}
"""The remediation commands (from the incident service or people), by action."""

MAX_INDENT = 8
"""Deeper causal chains are indented no further: a line stays readable."""


@dataclass(frozen=True, slots=True)
class Replayed:
    """One event as read back: where it was, its envelope, and its value as JSON."""

    topic: str
    partition: int
    offset: int
    key: str | None
    envelope: Envelope
    value: Value | None
    """The event's JSON object; None when the value is not one (then `raw` holds it)."""
    raw: str | None = None

    @property
    def id(self) -> str:
        return self.envelope.id

    @property
    def time(self) -> datetime:
        return self.envelope.time

    @property
    def kind(self) -> str:
        """The event type without prefix and version (the registry's topic name)."""
        return _kind(self.envelope.type) or self.topic

    def get(self, path: str) -> Any:
        """A value field by dotted path (`breach.metric`); None when absent."""
        node: Any = self.value
        if "." not in path:  # the common case, kept fast: a timeline summarises every event
            return None if node is None else node.get(path)
        for part in path.split("."):
            if not isinstance(node, dict):
                return None
            node = node.get(part)
        return node


@functools.lru_cache(maxsize=256)
def _kind(ce_type: str) -> str | None:
    """`guardians.deploy.failed.v1` → `deploy.failed`; None for a type of another form."""
    if ce_type.startswith("guardians."):
        name, _, version = ce_type[len("guardians."):].rpartition(".v")
        if name and version.isdigit():
            return name
    return None


@dataclass(frozen=True)
class Timeline:
    """Events in order (`ce_time`, ties by causal depth), with the causal graph among them."""

    events: tuple[Replayed, ...]
    parent: Mapping[str, str | None]
    """Each event's cause, when the cause is among the events."""
    children: Mapping[str, tuple[str, ...]]
    depth: Mapping[str, int]
    """How many of its causes are among the events."""
    duplicates: int = 0
    """Events read more than once (same `ce_id`: a relay re-sent it) and shown once."""
    _by_id: Mapping[str, Replayed] = field(default_factory=dict, repr=False)

    def event(self, event_id: str) -> Replayed:
        return self._by_id[event_id]

    def ancestors(self, event: Replayed) -> Iterator[Replayed]:
        """The event's causes among the events, nearest first."""
        parent = self.parent.get(event.id)
        while parent is not None:
            yield self._by_id[parent]
            parent = self.parent.get(parent)


def build_timeline(events: Iterable[Replayed]) -> Timeline:
    """Order the events and link each to its cause; a duplicate `ce_id` is kept once."""
    by_id: dict[str, Replayed] = {}
    duplicates = 0
    for event in events:
        if event.id in by_id:
            duplicates += 1
        else:
            by_id[event.id] = event
    parent = _parents(by_id)
    depth = _depths(parent)
    ordered = tuple(sorted(by_id.values(), key=lambda e: (
        e.time, depth[e.id], e.topic, e.partition, e.offset)))
    children: dict[str, list[str]] = {e.id: [] for e in ordered}
    for event in ordered:
        cause = parent[event.id]
        if cause is not None:
            children[cause].append(event.id)
    return Timeline(ordered, parent, {k: tuple(v) for k, v in children.items()}, depth,
                    duplicates, by_id)


def _parents(by_id: Mapping[str, Replayed]) -> dict[str, str | None]:
    """Each event's cause, when the cause is among the events."""
    parent: dict[str, str | None] = {}
    for event_id, event in by_id.items():
        cause = event.envelope.causation_id
        parent[event_id] = cause if cause in by_id and cause != event_id else None
    return parent


def _depths(parent: dict[str, str | None]) -> dict[str, int]:
    """Each event's number of causes among the events: one walk up per event, stopping at
    the first event already measured (linear however long the chains). An edge that would
    close a cycle (malformed causation ids) is cut where the walk finds it."""
    depth: dict[str, int] = {}
    for start in parent:
        path: list[str] = []
        on_path: set[str] = set()
        node: str | None = start
        while node is not None and node not in depth:
            if node in on_path:
                parent[path[-1]] = None
                node = None
                break
            path.append(node)
            on_path.add(node)
            node = parent[node]
        base = -1 if node is None else depth[node]
        for steps, event_id in enumerate(reversed(path), start=1):
            depth[event_id] = base + steps
    return depth


# ------------------------------------------------------------------ failures and root cause


def is_failure(event: Replayed) -> bool:
    """A failure: a failed deploy, rollback, backup or blocked migration, a red health
    grade, a failed canary measurement."""
    kind = event.kind
    if kind in FAILURE_KINDS:
        return True
    if kind == "health.changed":
        return bool(event.get("grade") == "red")
    if kind == "deploy.analysis.measured":
        return bool(event.get("outcome") == "failed")
    return False


def root_cause(timeline: Timeline) -> Replayed | None:
    """The earliest failing event none of whose causes failed: where the trouble began."""
    failed: dict[str, bool] = {}
    """Whether an event or one of its causes failed (filled as chains are walked)."""
    for event in timeline.events:
        if not is_failure(event):
            continue
        cause = timeline.parent[event.id]
        if cause is None or not _failed_up_from(timeline, cause, failed):
            return event
    return None


def _failed_up_from(timeline: Timeline, start: str, failed: dict[str, bool]) -> bool:
    """Whether `start` or one of its causes failed; each event is looked at once per call
    of `root_cause`, however many failures share its chain."""
    path: list[str] = []
    node: str | None = start
    answer = False
    while node is not None:
        if node in failed:
            answer = failed[node]
            break
        if is_failure(timeline.event(node)):
            answer = True
            break
        path.append(node)
        node = timeline.parent[node]
    for event_id in path:
        failed[event_id] = answer
    if node is not None:
        failed[node] = answer
    return answer


def first_failure(timeline: Timeline) -> Replayed | None:
    return next((e for e in timeline.events if is_failure(e)), None)


# ------------------------------------------------------------------ actions and durations


@dataclass(frozen=True)
class Action:
    """A rollback, restore or restart: the command (None for the deploy guardian's own
    automatic rollback) and the event that says how it went (None: no answer yet)."""

    action: str
    request: Replayed | None
    outcome: Replayed | None

    @property
    def first(self) -> Replayed:
        """The request, or the outcome of an automatic action."""
        first = self.request or self.outcome
        assert first is not None, "an action has a request, an outcome or both"
        return first

    @property
    def succeeded(self) -> bool | None:
        return None if self.outcome is None else _succeeded(self.outcome)


def _succeeded(event: Replayed) -> bool:
    kind = event.kind
    if kind == "deploy.rolled_back":
        return True
    if kind == "backup.restored":
        return bool(event.get("outcome") == "restored")
    if kind == "health.changed":
        return bool(event.get("grade") == "green")
    if kind == "incident.updated":
        return bool(event.get("entry.kind") == "action_succeeded")
    return False


def _answers(action: str, request: Replayed, event: Replayed) -> bool:
    """Whether `event` (later than `request`) says how the requested action went."""
    kind = event.kind
    if kind == "incident.updated":
        return (event.get("entry.action") == action
                and event.get("entry.kind") in ("action_succeeded", "action_failed",
                                                "action_timed_out"))
    if action == "rollback":
        return (kind == "deploy.rolled_back"
                or (kind == "deploy.failed" and event.get("failure") == "rollback_failed")) \
            and event.get("change_id") == request.get("change_id")
    if action == "restore":
        return kind == "backup.restored" and event.get("service") == request.get("service")
    return (action == "restart" and kind == "health.changed"
            and event.get("service") == request.get("service"))


def actions(timeline: Timeline) -> list[Action]:
    """Every requested action with its outcome, and the automatic rollbacks, in order."""
    found: list[Action] = []
    claimed: set[str] = set()
    for index, event in enumerate(timeline.events):
        action = REQUEST_KINDS.get(event.kind)
        if action is None:
            continue
        later = timeline.events[index + 1:]
        descendants = _descendant_ids(timeline, event)
        caused = [e for e in later if e.id in descendants]  # its own answer first
        outcome = next((e for e in [*caused, *later] if e.id not in claimed
                        and _answers(action, event, e)), None)
        if outcome is not None:
            claimed.add(outcome.id)
        found.append(Action(action, event, outcome))
    for event in timeline.events:
        if event.kind == "deploy.rolled_back" and event.id not in claimed:
            found.append(Action("rollback", None, event))
    position = {e.id: i for i, e in enumerate(timeline.events)}
    return sorted(found, key=lambda a: position[a.first.id])


def _descendant_ids(timeline: Timeline, event: Replayed) -> set[str]:
    found: set[str] = set()
    todo = list(timeline.children.get(event.id, ()))
    while todo:
        node = todo.pop()
        if node not in found:
            found.add(node)
            todo.extend(timeline.children.get(node, ()))
    return found


@dataclass(frozen=True)
class Durations:
    """The incident's clock, from the events present: each `None` when its event is not."""

    first_failure: Replayed | None
    opened: Replayed | None
    """The first `incident.opened`."""
    mitigated: Replayed | None
    """The first successful action after the first failure."""
    resolved: Replayed | None

    def seconds(self, end: Replayed | None) -> float | None:
        if self.first_failure is None or end is None:
            return None
        return (end.time - self.first_failure.time).total_seconds()

    @property
    def detect(self) -> float | None:
        return self.seconds(self.opened)

    @property
    def mitigate(self) -> float | None:
        return self.seconds(self.mitigated)

    @property
    def resolve(self) -> float | None:
        return self.seconds(self.resolved)


def durations(timeline: Timeline) -> Durations:
    """Detect, mitigate, resolve: from the first failing event to the incident, to the first
    successful action, to the resolution."""
    first = first_failure(timeline)
    if first is None:
        return Durations(None, None, None, None)
    after = [e for e in timeline.events if e.time >= first.time]
    opened = next((e for e in after if e.kind == "incident.opened"), None)
    outcomes = [a.outcome for a in actions(timeline) if a.succeeded and a.outcome is not None]
    mitigated = min((o for o in outcomes if o.time >= first.time), key=lambda e: e.time,
                    default=None)
    resolved = next((e for e in after if e.kind == "incident.resolved"
                     and (opened is None or e.time >= opened.time)), None)
    return Durations(first, opened, mitigated, resolved)


# ------------------------------------------------------------------ one-line summaries

Part = Callable[[Replayed], str | None]


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    text = str(value)
    return text if len(text) <= 80 else text[:79] + "…"


def _f(path: str, label: str | None = None, unit: str = "") -> Part:
    """`label=value` (label defaults to the field's last name)."""
    name = label or path.rsplit(".", 1)[-1]

    def part(e: Replayed) -> str | None:
        value = e.get(path)
        return None if value is None or value == [] or value == "" else (
            f"{name}={_show(value)}{unit}")
    return part


def _arrow(before: str, after: str) -> Part:
    """`before → after`, or just `after`."""
    def part(e: Replayed) -> str | None:
        old, new = e.get(before), e.get(after)
        if new is None:
            return None
        return _show(new) if old is None else f"{_show(old)} → {_show(new)}"
    return part


def _count(path: str) -> Part:
    return lambda e: f"{len(e.get(path))} {path}" if e.get(path) else None


def _text(path: str) -> Part:
    """Free text, quoted (a list of texts is joined)."""
    def part(e: Replayed) -> str | None:
        value = e.get(path)
        if not value:
            return None
        text = "; ".join(map(str, value)) if isinstance(value, list) else str(value)
        return json.dumps(text if len(text) <= 120 else text[:119] + "…", ensure_ascii=False)
    return part


def _breach(e: Replayed) -> str | None:
    if not isinstance(e.get("breach"), Mapping):
        return None
    return (f"breach: {e.get('breach.metric')}={_show(e.get('breach.values'))} "
            f"broke {e.get('breach.condition')}")


def _failing_checks(e: Replayed) -> str | None:
    causes = e.get("causes") or []
    names = [c.get("name") for c in causes
             if isinstance(c, Mapping) and c.get("status") in ("fail", "warn", "unknown")]
    return f"checks: {', '.join(map(str, names))}" if names else None


_SUMMARY: dict[str, tuple[Part, ...]] = {
    "change.submitted": (_f("service"), _arrow("previous_version", "version"),
                         _f("submitted_by", "by"), _count("migrations")),
    "migration.assessed": (_f("risk"), _count("findings"),
                           _f("verification.rollback_restored", "rollback")),
    "migration.review.requested": (_f("risk"), _f("review"),
                                   _f("required_approvals", "approvals")),
    "migration.review.decided": (_f("decision"), _f("reviewer", "by"), _text("comment")),
    "migration.approved": (_f("risk"), _f("approval"), _f("approved_by", "by"),
                           _f("monitoring_plan.duration_seconds", "monitor", "s")),
    "migration.blocked": (_f("risk"), _f("reason"), _text("details")),
    "deploy.stage.changed": (_arrow("previous_stage", "stage"), _f("canary_weight", "weight", "%"),
                             _f("tests.outcome", "tests"), _text("reason")),
    "deploy.analysis.measured": (_f("metric"), _f("outcome"), _f("values"), _f("condition"),
                                 _text("error")),
    "deploy.rollback.requested": (_f("requested_by", "by"), _f("incident_id", "incident"),
                                  _text("reason")),
    "deploy.rollout.decided": (_f("decision"), _f("decided_by", "by"), _text("reason")),
    "deploy.rolled_back": (_arrow("version", "restored_version"), _f("stage"), _f("trigger"),
                           _breach, _f("rollback_seconds", "in", "s"), _text("reason")),
    "deploy.completed": (_f("version"), _f("environment"), _f("duration_seconds", "in", "s")),
    "deploy.failed": (_f("stage"), _f("failure"), _f("rolled_back"), _breach, _text("reason")),
    "backup.verified": (_f("version"), _f("trigger"), _count("snapshots"),
                        _f("recovery_seconds", "recovery", "s")),
    "backup.failed": (_f("phase"), _f("source"), _f("attempt"), _f("will_retry", "retry"),
                      _text("reason")),
    "backup.restore.requested": (_f("service"), _f("kinds"), _f("requested_by", "by"),
                                 _f("incident_id", "incident"), _text("reason")),
    "backup.restored": (_f("service"), _f("outcome"), _f("duration_seconds", "in", "s"),
                        _text("reason")),
    "health.reported": (_f("service"), _f("grade")),
    "health.changed": (_f("service"), _arrow("previous_grade", "grade"), _failing_checks),
    "service.restart.requested": (_f("service"), _f("instance"), _f("requested_by", "by"),
                                  _f("incident_id", "incident"), _text("reason")),
    "infra.ready": (_f("version"), _f("gate_seconds", "gate", "s")),
    "incident.opened": (_f("incident_id", "incident"), _f("severity"), _f("cause"),
                        _text("summary")),
    "incident.updated": (_f("incident_id", "incident"), _f("status"), _f("entry.kind", "entry"),
                         _f("entry.action", "action"), _text("entry.message")),
    "incident.escalated": (_f("incident_id", "incident"), _f("level"), _f("notify"),
                           _text("reason")),
    "incident.resolved": (_f("incident_id", "incident"), _f("resolved_by", "by"),
                          _f("durations.resolve_seconds", "resolve", "s"), _text("resolution")),
    "ops.alerts": (_f("severity"), _f("resolved"), _f("service"), _text("summary")),
}

_SKIPPED = frozenset({"change_id", "occurred_at"})


def _generic(e: Replayed) -> str | None:
    """An unknown kind: its first few scalar fields."""
    if e.value is None:
        return None
    parts = [f"{k}={_show(v)}" for k, v in e.value.items()
             if k not in _SKIPPED and isinstance(v, str | int | float | bool)]
    return " ".join(parts[:5]) or None


def summarize(event: Replayed) -> str:
    """One line: what the event says (stage, grade, outcome, reason, ...)."""
    if event.value is None:
        return f"(not a JSON object: {_show(event.raw or '')})"
    parts = [p(event) for p in _SUMMARY.get(event.kind, (_generic,))]
    line = " ".join(p for p in parts if p)
    return line if len(line) <= 200 else line[:199] + "…"


def describe_cause(event: Replayed) -> str:
    """The root-cause candidate in words: what failed, and the reason or breach."""
    return f"{event.kind} at {stamp(event.time)} (key {event.key}): {summarize(event)}"


# ------------------------------------------------------------------ renderings


def stamp(time: datetime) -> str:
    """UTC, to the millisecond: `2026-11-28 09:30:00.123`."""
    return time.astimezone(UTC).isoformat(sep=" ", timespec="milliseconds")[:23]


def _indent(depth: int, unit: str, mark: str) -> str:
    depth = min(depth, MAX_INDENT)
    return "" if depth == 0 else unit * (depth - 1) + mark


def render_text(timeline: Timeline, header: str) -> str:
    """The timeline for a terminal: time, topic (under its cause), key, summary."""
    topics = [_indent(timeline.depth[e.id], "  ", "└ ") + e.topic for e in timeline.events]
    keys = [e.key or "-" for e in timeline.events]
    topic_width = max(map(len, topics), default=0)
    key_width = min(max(map(len, keys), default=0), 40)
    lines = [header]
    for event, topic, key in zip(timeline.events, topics, keys, strict=True):
        lines.append(f"{stamp(event.time)}  {topic:<{topic_width}}  {key:<{key_width}}  "
                     f"{summarize(event)}".rstrip())
    cause = root_cause(timeline)
    if cause is not None:
        lines.append(f"root cause candidate: {describe_cause(cause)}")
    return "\n".join(lines)


def _envelope_json(envelope: Envelope) -> dict[str, Any]:
    return {"id": envelope.id, "type": envelope.type, "source": envelope.source,
            "subject": envelope.subject, "time": envelope.time.isoformat(),
            "correlation_id": envelope.correlation_id, "causation_id": envelope.causation_id,
            "traceparent": envelope.traceparent, "signer": envelope.signer}


def to_json(timeline: Timeline, header: Mapping[str, Any]) -> dict[str, Any]:
    """Every event with its envelope, its value and its place in the graph."""
    cause = root_cause(timeline)
    spans = durations(timeline)
    return {
        **header,
        "duplicates": timeline.duplicates,
        "root_cause": None if cause is None else cause.id,
        "durations": {"detect_seconds": spans.detect, "mitigate_seconds": spans.mitigate,
                      "resolve_seconds": spans.resolve},
        "events": [{
            "topic": e.topic, "partition": e.partition, "offset": e.offset, "key": e.key,
            "kind": e.kind, "envelope": _envelope_json(e.envelope), "value": e.value,
            "raw": e.raw, "parent": timeline.parent[e.id],
            "children": list(timeline.children[e.id]), "depth": timeline.depth[e.id],
            "failure": is_failure(e), "summary": summarize(e),
        } for e in timeline.events],
    }


# ------------------------------------------------------------------ the post-incident report

_OUTCOMES = {
    "migration.blocked": "blocked by the migration guardian",
    "deploy.failed": "deploy failed",
    "deploy.rolled_back": "rolled back",
    "deploy.completed": "deployed",
    "backup.failed": "deployed; backup failed",
    "backup.verified": "deployed; backup verified",
    "infra.ready": "deployed and healthy (infra.ready)",
}


def _first(timeline: Timeline, path: str) -> str | None:
    return next((str(e.get(path)) for e in timeline.events if e.get(path) is not None), None)


def outcome(timeline: Timeline) -> str:
    """How the release ended, from its last outcome event, and how its incidents stand."""
    words: list[str] = []
    last = next((e for e in reversed(timeline.events) if e.kind in _OUTCOMES), None)
    if last is not None:
        text = _OUTCOMES[last.kind]
        if last.kind in ("deploy.rolled_back", "deploy.failed") and last.get("stage"):
            text += f" at {last.get('stage')}"
        words.append(text)
    for incident, status in _incidents(timeline).items():
        words.append(f"incident {incident} {status}")
    return "; ".join(words) or "no outcome event yet"


def _incidents(timeline: Timeline) -> dict[str, str]:
    """Each incident's latest status: open, an `incident.updated` status, or resolved."""
    status: dict[str, str] = {}
    for event in timeline.events:
        incident = event.get("incident_id")
        if not isinstance(incident, str) or not event.kind.startswith("incident."):
            continue
        if event.kind == "incident.opened":
            status[incident] = f"opened ({event.get('severity')}, {event.get('cause')})"
        elif event.kind == "incident.updated" and event.get("status"):
            status[incident] = str(event.get("status"))
        elif event.kind == "incident.escalated":
            status[incident] = f"escalated to level {event.get('level')}"
        elif event.kind == "incident.resolved":
            status[incident] = f"resolved by {event.get('resolved_by')}"
    return status


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:,.1f}"


def _md_summary(timeline: Timeline, subject: str) -> list[str]:
    version = _first(timeline, "version")
    previous = _first(timeline, "previous_version")
    span = (f"{len(timeline.events)}, {stamp(timeline.events[0].time)} → "
            f"{stamp(timeline.events[-1].time)} UTC") if timeline.events else "0"
    rows = [("Service", _first(timeline, "service") or "—"),
            ("Change", _first(timeline, "change_id") or "—"),
            ("Version", (version or "—") + (f" (previous {previous})" if previous else "")),
            ("Outcome", outcome(timeline)),
            ("Events", span)]
    return [f"# Post-incident report: {subject}", "", "## Summary", "", "| | |", "|---|---|",
            *(f"| {name} | {_cell(text)} |" for name, text in rows)]


def _md_root_cause(timeline: Timeline) -> list[str]:
    cause = root_cause(timeline)
    lines = ["## Root-cause candidate", ""]
    if cause is None:
        return [*lines, "No failing event among the replayed events."]
    lines.append(f"The first failing event in the causal chain: **{cause.kind}** at "
                 f"{stamp(cause.time)} UTC (key `{cause.key}`, id `{cause.id}`).")
    lines.append("")
    lines.append(f"- {_cell(summarize(cause))}")
    for path in ("reason", "error", "details"):
        if cause.get(path):
            lines.append(f"- {path}: {_cell(_show(cause.get(path)))}")
    if cause.kind == "health.changed" and _failing_checks(cause):
        lines.append(f"- {_failing_checks(cause)}")
    return lines


def _md_timeline(timeline: Timeline) -> list[str]:
    lines = ["## Timeline", "", "| time (UTC) | event | key | what happened |", "|---|---|---|---|"]
    for event in timeline.events:
        topic = _indent(timeline.depth[event.id], "· ", "↳ ") + event.topic
        lines.append(f"| {stamp(event.time)} | {_cell(topic)} | {_cell(event.key or '-')} "
                     f"| {_cell(summarize(event))} |")
    return lines


def _md_impact(timeline: Timeline) -> list[str]:
    services: dict[str, set[str]] = {}
    for event in timeline.events:
        service = event.get("service") or (event.key if event.kind.startswith("health.")
                                           else None)
        if isinstance(service, str):
            services.setdefault(service, set()).update(_service_marks(event))
    changes = sorted({str(e.get("change_id")) for e in timeline.events if e.get("change_id")})
    lines = ["## Impact", ""]
    for service, marks in sorted(services.items()):
        lines.append(f"- service **{service}**" + (f": {', '.join(sorted(marks))}" if marks
                                                  else ""))
    lines.append(f"- changes: {', '.join(changes) or '—'}")
    lines.extend(f"- incident {incident}: {status}"
                 for incident, status in _incidents(timeline).items())
    return lines


def _service_marks(event: Replayed) -> list[str]:
    """What an event says happened to its service."""
    kind = event.kind
    if kind in ("deploy.stage.changed", "deploy.analysis.measured") and event.get("canary_weight"):
        return [f"canary reached {event.get('canary_weight')}% of traffic"]
    if kind == "deploy.rolled_back":
        return [f"rolled back {event.get('version')} → {event.get('restored_version') or '?'}"]
    if kind == "health.changed" and event.get("grade") in ("red", "yellow"):
        return [f"health {event.get('grade')}"]
    if kind in ("deploy.failed", "backup.failed", "migration.blocked"):
        return [kind.replace(".", " ")]
    return []


def _md_actions(timeline: Timeline) -> list[str]:
    found = actions(timeline)
    lines = ["## Actions", ""]
    if not found:
        return [*lines, "No rollback, restore or restart in the replayed events."]
    lines += ["| action | requested | by | outcome |", "|---|---|---|---|"]
    for action in found:
        request = action.request
        asked = "automatic" if request is None else stamp(request.time)
        by = "deploy guardian" if request is None else str(request.get("requested_by") or "?")
        if action.outcome is None:
            result = "no answer in the replayed events"
        else:
            verdict = "succeeded" if action.succeeded else "failed"
            result = f"{verdict} at {stamp(action.outcome.time)}: {summarize(action.outcome)}"
        lines.append(f"| {action.action} | {asked} | {_cell(by)} | {_cell(result)} |")
    return lines


def _md_durations(timeline: Timeline) -> list[str]:
    spans = durations(timeline)
    lines = ["## Durations", ""]
    if spans.first_failure is None:
        return [*lines, "No failing event: nothing to measure from."]
    start = f"{spans.first_failure.kind} {stamp(spans.first_failure.time)}"
    lines += ["| phase | from | to | seconds |", "|---|---|---|---|"]
    for name, end in (("detect", spans.opened), ("mitigate", spans.mitigated),
                      ("resolve", spans.resolved)):
        to = "not in the replayed events" if end is None else f"{end.kind} {stamp(end.time)}"
        lines.append(f"| {name} | {start} | {_cell(to)} | {_seconds(spans.seconds(end))} |")
    reported = next((e for e in timeline.events if e.kind == "incident.resolved"), None)
    if reported is not None and isinstance(reported.get("durations"), Mapping):
        lines += ["", "As the incident service reported them: detect "
                  f"{_seconds(reported.get('durations.detect_seconds'))} s, mitigate "
                  f"{_seconds(reported.get('durations.mitigate_seconds'))} s, resolve "
                  f"{_seconds(reported.get('durations.resolve_seconds'))} s."]
    return lines


def render_markdown(timeline: Timeline, subject: str) -> str:
    """The post-incident report: summary, root cause, timeline, impact, actions, durations."""
    sections: Sequence[list[str]] = (
        _md_summary(timeline, subject), _md_root_cause(timeline), _md_timeline(timeline),
        _md_impact(timeline), _md_actions(timeline), _md_durations(timeline))
    return "\n\n".join("\n".join(section) for section in sections) + "\n"
