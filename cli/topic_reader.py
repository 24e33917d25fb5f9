"""Reading topics as an onlooker: no consumer group, nothing committed, nothing created.

`guardians status`, `guardians tail` and `guardians approve --all-items` read the topics the
guardians consume while the guardians run. A consumer group would leave committed offsets
and a group in the broker's listings for every person who ever looked, and a tool that
joined the guardians' own groups would take partitions from them. So this reader assigns
itself every partition of the topics it is given, seeks (to a time, the beginning or the
end) and never commits.

Partitions come from one metadata request for the whole cluster (the admin client's
`describe_topics()`): asking for a named topic that does not exist could create it on a
broker that auto-creates topics. Topics that do not exist are reported, not read.

Values are kept as JSON, not validated against the models: an onlooker must show what was
said, including an event a guardian dead-lettered.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cli.timeline import Replayed
    from schemas.envelope import Envelope

Record = Any
"""An aiokafka ConsumerRecord (aiokafka ships no type information)."""

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
CONNECT_TIMEOUT_S = 15.0
STALL_S = 30.0
"""A window read that makes no progress for this long, short of its end, is an error."""


class ReadError(Exception):
    """The broker cannot be reached or read; the message says which and where."""


def bootstrap_server() -> str:
    return os.environ.get("GUARDIANS_KAFKA_BOOTSTRAP") or DEFAULT_BOOTSTRAP


_AGE = re.compile(r"^(\d+)\s*([smhdw])$")
_AGE_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """An age (`90s`, `15m`, `24h`, `3d`, `1w` ago) or an ISO-8601 time (UTC without an
    offset). Raises ValueError saying which forms are accepted."""
    age = _AGE.match(text.strip())
    if age:
        delta = timedelta(**{_AGE_UNITS[age.group(2)]: int(age.group(1))})
        return (now or datetime.now(UTC)) - delta
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a time: give an age (90s, 15m, 24h, 3d, 1w) or "
                         "ISO-8601 (2026-11-28T09:30:00Z; UTC without an offset)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def registry_topics() -> list[str]:
    """Every topic of the registry (which holds no dead-letter topic), by name."""
    from schemas.topics import REGISTRY

    return [spec.name for spec in REGISTRY.all()]


def check_topics(names: Iterable[str]) -> list[str]:
    """Topic arguments (repeated or comma-separated): registered topics or their `.dlq`.
    Raises ValueError naming the unknown ones and listing the known."""
    known = set(registry_topics())
    chosen = [n.strip() for value in names for n in value.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in known and n.removesuffix(".dlq") not in known]
    if unknown:
        raise ValueError(f"unknown topic(s): {', '.join(unknown)}; the topics are "
                         f"{', '.join(sorted(known))} and their .dlq")
    return list(dict.fromkeys(chosen))


@dataclass(frozen=True, slots=True)
class Message:
    """One message as an onlooker reads it: where it was, its envelope (None when its
    headers are not a valid CloudEvents envelope), its value as JSON and its headers."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: str | None
    envelope: Envelope | None
    value: Mapping[str, Any] | None
    """The event's JSON object; None when the value is not one (`raw` holds it)."""
    raw: str
    headers: Mapping[str, str]

    @property
    def time(self) -> datetime:
        """When it happened (`ce_time`), else when the broker got it."""
        if self.envelope is not None:
            return self.envelope.time
        return datetime.fromtimestamp(self.timestamp_ms / 1000, UTC)

    @property
    def subject(self) -> str:
        if self.envelope is not None and self.envelope.subject:
            return self.envelope.subject
        return self.key or ""

    @property
    def kind(self) -> str:
        """The event type without prefix and version (`deploy.failed`), else the topic."""
        ce_type = self.envelope.type if self.envelope is not None else ""
        if ce_type.startswith("guardians."):
            name, _, version = ce_type[len("guardians."):].rpartition(".v")
            if name and version.isdigit():
                return name
        return self.topic.removesuffix(".dlq")

    def field(self, name: str) -> Any:
        return None if self.value is None else self.value.get(name)

    @property
    def change_id(self) -> str | None:
        """The change it belongs to: its `change_id` field (pipeline events are keyed by it;
        health, restore and incident events may carry one)."""
        value = self.field("change_id")
        return value if isinstance(value, str) and value else None

    def about_change(self, change: str) -> bool:
        envelope = self.envelope
        return (self.change_id == change or self.key == change
                or (envelope is not None and change in (envelope.subject,
                                                         envelope.correlation_id)))

    def about_service(self, service: str) -> bool:
        """Its `service` field, or its key (health and restore events are keyed by service)."""
        named = self.field("service")
        return named == service if isinstance(named, str) else self.key == service

    def replayed(self) -> Replayed | None:
        """As cli/timeline.py reads events (for its one-line summaries); None without an
        envelope."""
        from cli.timeline import Replayed

        if self.envelope is None:
            return None
        return Replayed(self.topic, self.partition, self.offset, self.key, self.envelope,
                        self.value, None if self.value is not None else self.raw)

    def summary(self) -> str:
        """One line: what the event says (for a dead letter, also why it was rejected)."""
        from cli.timeline import summarize

        replayed = self.replayed()
        if replayed is not None:
            line = summarize(replayed)
        else:
            text = self.raw if len(self.raw) <= 80 else self.raw[:79] + "…"
            line = f"(no CloudEvents envelope) {text}"
        reason = self.headers.get("dlq_reason")
        if reason:
            by = self.headers.get("dlq_service", "?")
            kind = self.headers.get("dlq_kind", "rejected")
            line = f"dead-lettered by {by} ({kind}: {reason[:160]}) {line}"
        return line


def to_message(record: Record) -> Message:
    from schemas.envelope import Envelope, EnvelopeError

    headers: list[tuple[str, bytes]] = list(record.headers or ())
    try:
        envelope: Envelope | None = Envelope.from_headers(headers)
    except EnvelopeError:
        envelope = None
    raw: bytes = record.value or b""
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    key = None if record.key is None else record.key.decode(errors="replace")
    return Message(record.topic, record.partition, record.offset, record.timestamp, key,
                   envelope, value if isinstance(value, dict) else None,
                   raw.decode(errors="replace"),
                   {k: v.decode(errors="replace") for k, v in headers})


async def cluster_layout(bootstrap: str) -> dict[str, list[int]]:
    """Every topic of the cluster and its partitions, in one metadata request."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="guardians-cli",
                                request_timeout_ms=int(CONNECT_TIMEOUT_S * 1000))
    try:
        await asyncio.wait_for(admin.start(), CONNECT_TIMEOUT_S)
        topics = await asyncio.wait_for(admin.describe_topics(), CONNECT_TIMEOUT_S)
    finally:
        await admin.close()
    return {t["topic"]: sorted(p["partition"] for p in t["partitions"])
            for t in topics if not t["error_code"] and not t["is_internal"]}


@dataclass
class Assigned:
    """A started consumer with every partition of the topics that exist assigned."""

    consumer: Any
    partitions: list[Any]
    missing: list[str]
    """Topics asked for that the broker does not have (yet)."""


async def start_consumer(bootstrap: str, client_id: str, **options: Any
                         ) -> tuple[Any, dict[str, list[int]]]:
    """A started group-less consumer reading from the earliest offset, and the cluster's
    topic layout; ReadError naming the broker when it cannot be reached. `options` go to
    AIOKafkaConsumer (fetch sizes...)."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.errors import KafkaError

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
        auto_offset_reset="earliest", client_id=client_id,
        request_timeout_ms=int(CONNECT_TIMEOUT_S * 1000), **options,
    )
    try:
        layout = await cluster_layout(bootstrap)
        await asyncio.wait_for(consumer.start(), CONNECT_TIMEOUT_S)
    except (KafkaError, OSError, TimeoutError) as exc:
        await consumer.stop()
        raise ReadError(f"cannot reach Kafka at {bootstrap}: {exc or type(exc).__name__}"
                        ) from exc
    return consumer, layout


async def _assign(bootstrap: str, topics: Sequence[str]) -> Assigned:
    from aiokafka import TopicPartition

    consumer, layout = await start_consumer(bootstrap, "guardians-cli")
    partitions = [TopicPartition(t, p) for t in topics for p in layout.get(t, ())]
    if partitions:
        consumer.assign(partitions)
    return Assigned(consumer, partitions, [t for t in topics if t not in layout])


async def read_window(bootstrap: str, topics: Sequence[str], since: datetime | None,
                      keep: Callable[[Message], bool] = lambda _: True) -> list[Message]:
    """The messages written to `topics` from `since` (None: the beginning) up to the end
    offsets as they were when the read started, those `keep` accepts, in time order.
    Raises ReadError."""
    from aiokafka.errors import KafkaError

    assigned = await _assign(bootstrap, topics)
    consumer = assigned.consumer
    found: list[Message] = []
    try:
        if not assigned.partitions:
            return found
        ends: dict[Any, int] = await consumer.end_offsets(assigned.partitions)
        if since is None:
            starts: dict[Any, int] = await consumer.beginning_offsets(assigned.partitions)
        else:
            stamp = int(since.timestamp() * 1000)
            located = await consumer.offsets_for_times(
                dict.fromkeys(assigned.partitions, stamp))
            starts = {tp: ends[tp] if at is None else at.offset for tp, at in located.items()}
        active = {tp: ends[tp] for tp in assigned.partitions if starts[tp] < ends[tp]}
        for tp in assigned.partitions:
            if tp in active:
                consumer.seek(tp, starts[tp])
            else:
                consumer.pause(tp)
        progress = time.monotonic()
        while active:
            batch = await consumer.getmany(*active, timeout_ms=500, max_records=5000)
            for tp, records in batch.items():
                for record in records:
                    if record.offset < active.get(tp, -1):
                        message = to_message(record)
                        if keep(message):
                            found.append(message)
            for tp in list(active):
                # The position, not the last offset read: it also steps over control records.
                if await consumer.position(tp) >= active[tp]:
                    del active[tp]
                    consumer.pause(tp)
            if batch:
                progress = time.monotonic()
            elif time.monotonic() - progress > STALL_S:
                stuck = ", ".join(f"{tp.topic}[{tp.partition}]" for tp in active)
                raise ReadError(f"reading from Kafka at {bootstrap} stalled on {stuck}")
    except KafkaError as exc:
        raise ReadError(f"reading from Kafka at {bootstrap} failed: {exc}") from exc
    finally:
        await consumer.stop()
    found.sort(key=lambda m: (m.time, m.topic, m.partition, m.offset))
    return found


async def follow(bootstrap: str, topics: Sequence[str], *, from_beginning: bool,
                 emit: Callable[[Message], None], stop: asyncio.Event,
                 ready: Callable[[Assigned], Awaitable[None] | None] | None = None) -> None:
    """Read `topics` from their end (or beginning) until `stop` is set, passing each message
    to `emit`, each batch in time order. `ready` is called once the start positions are
    fixed: what is written after that is seen. Raises ReadError."""
    from aiokafka.errors import KafkaError

    assigned = await _assign(bootstrap, topics)
    consumer = assigned.consumer
    try:
        if assigned.partitions:
            if from_beginning:
                await consumer.seek_to_beginning(*assigned.partitions)
            else:
                await consumer.seek_to_end(*assigned.partitions)
            for tp in assigned.partitions:  # resolve the positions now, not at the first fetch
                await consumer.position(tp)
        if ready is not None:
            pending = ready(assigned)
            if pending is not None:
                await pending
        waiter = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                if not assigned.partitions:
                    await asyncio.wait({waiter}, timeout=1)
                    continue
                fetch = asyncio.ensure_future(consumer.getmany(timeout_ms=1000,
                                                               max_records=2000))
                done, _ = await asyncio.wait({fetch, waiter},
                                             return_when=asyncio.FIRST_COMPLETED)
                if fetch not in done:
                    fetch.cancel()
                    await asyncio.gather(fetch, return_exceptions=True)
                    break
                messages = [to_message(r) for records in fetch.result().values()
                            for r in records]
                messages.sort(key=lambda m: (m.time, m.topic, m.partition, m.offset))
                for message in messages:
                    emit(message)
        finally:
            waiter.cancel()
            await asyncio.gather(waiter, return_exceptions=True)
    except KafkaError as exc:
        raise ReadError(f"reading from Kafka at {bootstrap} failed: {exc}") from exc
    finally:
        await consumer.stop()
