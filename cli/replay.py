"""`guardians replay`: a release's or an incident's whole story, read back from Kafka.

    guardians replay (--change ID | --incident ID | --since TIME [--until TIME])
                     [--topics T ...] [--format text|json|md] [--bootstrap HOST:PORT]

Replay runs beside the guardians, on the topics they consume, so it reads without a
consumer group: it assigns itself every partition, seeks, and never commits. Nothing it does
shows up in the guardians' groups or lag, and it creates no topic (metadata is fetched for
the whole cluster, and only topics that exist are assigned).

One pass over every partition of the chosen topics (default: every registered topic; the
dead-letter topics only when named), from the first offset at or after --since
(`offsets_for_times`) or the beginning, to the end offsets captured at the start or the
first offset after --until: what is written meanwhile is not waited for. An event is kept
when its key, `ce_subject` or `ce_correlationid` is the change or one of its incidents;
`incident.opened` is read first to learn which incidents those are (or, for --incident,
which change the incident was opened for). Of every other event only where it is and 32-bit
hashes of its id, its cause and its key are kept (22 bytes an event), so that afterwards the
events caused by a kept one, and the causes of a kept one, that carried another correlation
are found and read again by offset: neither every event in memory nor a second pass.

The timeline, the causal graph and the reports are built by cli/timeline.py. Exit 0 with
output, 1 when nothing matched, 2 for a usage error (no selector, a bad time, an unknown
topic, an unreachable broker: the message says which).
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import time
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from cli.timeline import Replayed, Timeline

Record = Any
"""An aiokafka ConsumerRecord (aiokafka ships no type information)."""

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
CONNECT_TIMEOUT_S = 15.0
LINK_TOPIC = "incident.opened"
"""Where an incident names its change: read first, whatever --topics and the window say."""
FETCH_MAX_BYTES = 8 * 1024 * 1024
STALL_S = 30.0
"""A partition that returns nothing for this long, short of its end offset, is an error."""


class OutputFormat(StrEnum):
    TEXT = "text"
    JSON = "json"
    MD = "md"


class ReplayError(Exception):
    """A usage error (exit 2): no selector, a bad time, an unknown topic, an unreachable
    broker. The message says which."""


@dataclass(frozen=True)
class Selector:
    """What to replay: a change, an incident, or every event of a time window."""

    change: str | None = None
    incident: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        if self.change and self.incident:
            raise ReplayError("give --change or --incident, not both")
        if not (self.change or self.incident or self.since):
            raise ReplayError("nothing to replay: give --change ID, --incident ID or --since TIME")
        if self.since and self.until and self.until < self.since:
            raise ReplayError(f"--until {self.until.isoformat()} is before --since "
                              f"{self.since.isoformat()}")

    @property
    def matches_all(self) -> bool:
        """A window without a change or incident: every event in it."""
        return not (self.change or self.incident)

    def describe(self) -> str:
        what = (f"change {self.change}" if self.change else
                f"incident {self.incident}" if self.incident else "all events")
        if self.since:
            what += f" since {self.since.isoformat()}"
        if self.until:
            what += f" until {self.until.isoformat()}"
        return what


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """ISO-8601 (no offset: UTC) or an age (`90s`, `15m`, `2h`, `3d`, `1w` ago)."""
    from cli.topic_reader import parse_since

    try:
        return parse_since(text, now)
    except ValueError as exc:
        raise ReplayError(str(exc)) from None


def default_topics() -> list[str]:
    """Every registered topic (the registry holds no dead-letter topic)."""
    from cli.topic_reader import registry_topics

    return registry_topics()


def check_topics(names: Iterable[str]) -> list[str]:
    """`--topics` values (repeated or comma-separated): registered topics or their `.dlq`."""
    from cli import topic_reader

    try:
        return topic_reader.check_topics(names)
    except ValueError as exc:
        raise ReplayError(str(exc)) from None


@dataclass
class ReadStats:
    topics: int = 0
    partitions: int = 0
    read: int = 0
    """Messages read in the pass."""
    fetched: int = 0
    """Messages read again by offset to complete causal chains."""
    unreadable: int = 0
    """Matching messages without a valid CloudEvents envelope (left out)."""
    seconds: float = 0.0


@dataclass(repr=False)
class Replay:
    selector: Selector
    events: list[Replayed]
    stats: ReadStats

    def __repr__(self) -> str:
        # Short on purpose: asyncio.run formats its main task, result included, when it
        # restores the SIGINT handler (CPython 3.11), and a million events took seconds.
        return f"Replay({self.selector.describe()}: {len(self.events)} events)"


def _hash(value: bytes | None) -> int:
    """32 bits of Python's hash; 0 means absent. A collision only costs a read by offset."""
    return 0 if value is None else (hash(value) & 0xFFFFFFFF) or 1


@dataclass
class _Index:
    """Where the events not kept in the pass are, by hashes of their id, cause and key."""

    ids: array[int] = field(default_factory=lambda: array("I"))
    causes: array[int] = field(default_factory=lambda: array("I"))
    keys: array[int] = field(default_factory=lambda: array("I"))
    partitions: array[int] = field(default_factory=lambda: array("H"))
    offsets: array[int] = field(default_factory=lambda: array("q"))

    def add(self, ce_id: bytes | None, cause: bytes | None, key: bytes | None,
            partition: int, offset: int) -> None:
        # _hash, written out: this runs for nearly every event of a replay.
        self.ids.append(0 if ce_id is None else (hash(ce_id) & 0xFFFFFFFF) or 1)
        self.causes.append(0 if cause is None else (hash(cause) & 0xFFFFFFFF) or 1)
        self.keys.append(0 if key is None else (hash(key) & 0xFFFFFFFF) or 1)
        self.partitions.append(partition)
        self.offsets.append(offset)

    def find(self, ids: Iterable[str], causes: Iterable[str], keys: Iterable[str]
             ) -> set[tuple[int, int]]:
        """(partition index, offset) of events whose id, cause or key may be among these."""
        rows: set[int] = set()
        for column, wanted in ((self.ids, ids), (self.causes, causes), (self.keys, keys)):
            hashes = {_hash(v.encode()) for v in wanted}
            if hashes:
                rows.update(i for i, h in enumerate(column) if h in hashes)
        return {(self.partitions[i], self.offsets[i]) for i in rows}


def to_replayed(record: Record) -> Replayed | None:
    """A message as the timeline reads it; None without a valid envelope."""
    from cli.timeline import Replayed
    from schemas.envelope import Envelope, EnvelopeError

    try:
        envelope = Envelope.from_headers(record.headers)
    except EnvelopeError:
        return None
    raw: bytes = record.value or b""
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    key = None if record.key is None else record.key.decode(errors="replace")
    if isinstance(value, dict):
        return Replayed(record.topic, record.partition, record.offset, key, envelope, value)
    return Replayed(record.topic, record.partition, record.offset, key, envelope, None,
                    raw.decode(errors="replace"))


class _Reader:
    """One replay: the consumer (no group), the partitions and what was kept."""

    def __init__(self, consumer: Any, selector: Selector) -> None:
        self.consumer = consumer
        self.selector = selector
        self.stats = ReadStats()
        self.events: list[Replayed] = []
        self.index = _Index()
        self.partitions: list[Any] = []
        self.wanted: frozenset[bytes] | None = None
        """Keys / subjects / correlation ids to keep; None keeps everything."""

    async def run(self, topics: Sequence[str], layout: Mapping[str, list[int]]
                  ) -> list[Replayed]:
        """Read `topics` (those of them in `layout`, the cluster's partitions by topic)."""
        from aiokafka.structs import TopicPartition

        chosen = [t for t in topics if t in layout]
        self.partitions = [TopicPartition(t, p) for t in chosen for p in layout[t]]
        self.stats.topics, self.stats.partitions = len(chosen), len(self.partitions)
        linking = [] if self.selector.matches_all or LINK_TOPIC not in layout else [
            TopicPartition(LINK_TOPIC, p) for p in layout[LINK_TOPIC]]
        # One assignment for everything, all paused: the client then fetches the metadata of
        # every topic in one request (asking for offsets first would add topics one by one,
        # each after a metadata refresh). Each pass resumes the partitions it reads.
        everything = list(dict.fromkeys([*self.partitions, *linking]))
        if not everything:
            return self.events
        self.consumer.assign(everything)
        self.consumer.pause(*everything)
        if not self.selector.matches_all:
            self.wanted = frozenset(s.encode() for s in await self._subjects(linking))
        if self.partitions:
            await self._drain(await self._bounds(self.partitions), self._take)
            await self._complete()
        return self.events

    # -- which subjects: the change or incident, and what incident.opened links to it

    async def _subjects(self, partitions: list[Any]) -> set[str]:
        """The change or incident, and the incidents opened for the change or the change the
        incident was opened for, from all of `incident.opened` (a small topic)."""
        subject = self.selector.change or self.selector.incident
        assert subject is not None
        found = {subject}
        if not partitions:
            return found
        links: list[tuple[Any, Any]] = []

        def link(_: int, record: Record) -> None:
            try:
                value = json.loads(record.value or b"")
            except ValueError:
                return
            if isinstance(value, dict):
                links.append((value.get("incident_id"), value.get("change_id")))

        start = await self.consumer.beginning_offsets(partitions)
        end = await self.consumer.end_offsets(partitions)
        await self._drain({tp: (start[tp], end[tp]) for tp in partitions}, link)
        for incident, change in links:
            if self.selector.change and change == subject and isinstance(incident, str):
                found.add(incident)
            if self.selector.incident and incident == subject and isinstance(change, str):
                found.add(change)
        return found

    # -- the pass

    async def _bounds(self, partitions: list[Any]) -> dict[Any, tuple[int, int]]:
        """[first, end) per partition: --since and --until by timestamp, the end as of now."""
        start = await self.consumer.beginning_offsets(partitions)
        end = await self.consumer.end_offsets(partitions)
        if self.selector.since is not None:
            since_ms = int(self.selector.since.timestamp() * 1000)
            found = await self.consumer.offsets_for_times(dict.fromkeys(partitions, since_ms))
            for tp in partitions:
                start[tp] = end[tp] if found[tp] is None else max(start[tp], found[tp].offset)
        if self.selector.until is not None:
            after_ms = int(self.selector.until.timestamp() * 1000) + 1
            found = await self.consumer.offsets_for_times(dict.fromkeys(partitions, after_ms))
            for tp in partitions:
                if found[tp] is not None:
                    end[tp] = min(end[tp], found[tp].offset)
        return {tp: (start[tp], end[tp]) for tp in partitions}

    async def _drain(self, bounds: Mapping[Any, tuple[int, int]],
                     handle: Callable[[int, Record], None]) -> None:
        """Read each (assigned, paused) partition from its first offset to its end, then
        pause it again."""
        consumer = self.consumer
        number = {tp: i for i, tp in enumerate(bounds)}
        active: dict[Any, int] = {}
        for tp, (first, end) in bounds.items():
            if first < end:
                consumer.seek(tp, first)
                consumer.resume(tp)
                active[tp] = end
        last_progress = time.monotonic()
        while active:
            batch = await consumer.getmany(*active, timeout_ms=500)
            for tp, records in batch.items():
                if tp not in active or not records:
                    continue
                last_progress = time.monotonic()
                self._handle(records, active[tp], number[tp], handle)
                if records[-1].offset >= active[tp] - 1:
                    del active[tp]
                    consumer.pause(tp)
            if not batch:
                await self._finish_quiet(active)
                if active and time.monotonic() - last_progress > STALL_S:
                    raise ReplayError(f"reading stalled for {STALL_S:.0f} s on "
                                      f"{', '.join(sorted({tp.topic for tp in active}))}")

    def _handle(self, records: list[Record], end: int, partition: int,
                handle: Callable[[int, Record], None]) -> None:
        for record in records:
            if record.offset >= end:
                break
            handle(partition, record)
            self.stats.read += 1

    async def _finish_quiet(self, active: dict[Any, int]) -> None:
        """Partitions whose position reached the end without a record there (a gap)."""
        for tp, end in list(active.items()):
            if await self.consumer.position(tp) >= end:
                del active[tp]
                self.consumer.pause(tp)

    def _take(self, partition: int, record: Record) -> None:
        """Keep a matching event; index the others. The hot path: headers as bytes."""
        headers = dict(record.headers)
        wanted = self.wanted
        if (wanted is None or record.key in wanted
                or headers.get("ce_correlationid") in wanted
                or headers.get("ce_subject") in wanted):
            self._keep(record)
        else:
            self.index.add(headers.get("ce_id"), headers.get("ce_causationid"), record.key,
                           partition, record.offset)

    def _keep(self, record: Record) -> Replayed | None:
        event = to_replayed(record)
        if event is None:
            self.stats.unreadable += 1
        else:
            self.events.append(event)
        return event

    # -- completing the causal chains

    async def _complete(self) -> None:
        """Add, until nothing changes, the events caused by kept ones, the events of incidents
        they opened, and the causes of kept events, read by offset from the index."""
        if self.wanted is None:
            return  # the whole window is kept already
        core = {e.id for e in self.events}
        ancestors: set[str] = set()
        looked: set[str] = {s.decode() for s in self.wanted}
        fetched: set[tuple[int, int]] = set()
        while True:
            known = core | ancestors
            children_of = core - looked
            parents = {e.envelope.causation_id for e in self.events
                       if e.envelope.causation_id and e.envelope.causation_id not in known}
            incidents = {str(e.get("incident_id")) for e in self.events
                         if e.kind == "incident.opened" and e.id in core
                         and e.get("incident_id")}
            parents -= looked
            incidents -= looked
            if not (children_of or parents or incidents):
                return
            looked |= children_of | parents | incidents
            positions = self.index.find(parents, children_of, incidents) - fetched
            fetched |= positions
            for record in await self._fetch(positions):
                headers = {k: v.decode(errors="replace") for k, v in record.headers}
                key = None if record.key is None else record.key.decode(errors="replace")
                into = (core if headers.get("ce_causationid") in children_of or key in incidents
                        else ancestors if headers.get("ce_id") in parents else None)
                if into is not None and (event := self._keep(record)) is not None:
                    into.add(event.id)

    async def _fetch(self, positions: set[tuple[int, int]]) -> list[Record]:
        """The messages at these (partition index, offset) positions."""
        by_partition: dict[int, list[int]] = {}
        for partition, offset in positions:
            by_partition.setdefault(partition, []).append(offset)
        found: list[Record] = []
        for partition, offsets in sorted(by_partition.items()):
            found.extend(await self._fetch_partition(self.partitions[partition], sorted(offsets)))
        self.stats.fetched += len(found)
        return found

    async def _fetch_partition(self, tp: Any, pending: list[int]) -> list[Record]:
        consumer = self.consumer
        consumer.resume(tp)
        found: list[Record] = []
        deadline = time.monotonic() + STALL_S
        try:
            while pending and time.monotonic() < deadline:
                consumer.seek(tp, pending[0])
                records = (await consumer.getmany(tp, timeout_ms=500)).get(tp, [])
                if not records:
                    continue
                at = {r.offset: r for r in records}
                found.extend(at[o] for o in pending if o in at)
                pending = [o for o in pending if o > records[-1].offset]
        finally:
            consumer.pause(tp)
        return found


@contextlib.contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """The cyclic collector off while reading: the events kept are up to millions of acyclic
    objects that it would scan again and again (close to half of a replay that keeps every
    event); what is cyclic meanwhile is collected once it is back on."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


async def read(bootstrap: str, selector: Selector, topics: Sequence[str] | None = None
               ) -> Replay:
    """Read the selected events from the broker, without a group; raises ReplayError."""
    from aiokafka.errors import KafkaError

    from cli.topic_reader import ReadError, start_consumer

    started = time.monotonic()
    try:
        consumer, layout = await start_consumer(
            bootstrap, "guardians-replay",
            # Smaller fetches than aiokafka's 50 MB: over 200,000 events the same speed with
            # half the peak memory (bench/replay.py).
            fetch_max_bytes=FETCH_MAX_BYTES, max_poll_records=2_000)
    except ReadError as exc:
        raise ReplayError(str(exc)) from exc
    reader = _Reader(consumer, selector)
    try:
        with _no_cyclic_gc():
            events = await reader.run(default_topics() if topics is None else topics, layout)
    except KafkaError as exc:
        raise ReplayError(f"reading from Kafka at {bootstrap} failed: {exc}") from exc
    finally:
        await consumer.stop()
    reader.stats.seconds = time.monotonic() - started
    return Replay(selector, events, reader.stats)


def replay(bootstrap: str, selector: Selector, topics: Sequence[str] | None = None
           ) -> tuple[Timeline, ReadStats]:
    """`read` and build the timeline: what the command prints, as objects."""
    import asyncio

    from cli.timeline import build_timeline

    with _progress('reading the retained topics…'):
        result = asyncio.run(read(bootstrap, selector, topics))
    return build_timeline(result.events), result.stats


def render(timeline: Timeline, stats: ReadStats, selector: Selector,
           output: OutputFormat) -> str:
    from cli.timeline import render_markdown, render_text, to_json

    if output is OutputFormat.JSON:
        document = to_json(timeline, {
            "selector": {k: v.isoformat() if isinstance(v, datetime) else v
                         for k, v in asdict(selector).items()},
            "read": asdict(stats)})
        return json.dumps(document, indent=2, ensure_ascii=False)
    if output is OutputFormat.MD:
        return render_markdown(timeline, selector.describe())
    header = (f"replay {selector.describe()}: {len(timeline.events)} events "
              f"({stats.read:,} read from {stats.partitions} partitions of {stats.topics} "
              f"topics in {stats.seconds:.1f} s)")
    return render_text(timeline, header)


def command(
    change: Annotated[str | None, typer.Option(
        "--change", "-c", help="A change id: its events, its incidents', and what they caused."
    )] = None,
    incident: Annotated[str | None, typer.Option(
        "--incident", "-i", help="An incident id: its events and its change's.")] = None,
    since: Annotated[str | None, typer.Option(
        "--since", help="From this time: ISO-8601 (UTC without offset) or an age (2h, 3d).")
    ] = None,
    until: Annotated[str | None, typer.Option("--until", help="Up to this time (same forms).")
                     ] = None,
    topics: Annotated[list[str] | None, typer.Option(
        "--topics", "-t", help="Only these topics (repeat or comma-separate; default all).")
    ] = None,
    output: Annotated[OutputFormat, typer.Option(
        "--format", "-f", help="text, json (envelopes, values, graph) or md (the report).")
    ] = OutputFormat.TEXT,
    bootstrap: Annotated[str | None, typer.Option(
        "--bootstrap", help="Kafka (default: $GUARDIANS_KAFKA_BOOTSTRAP).")] = None,
) -> None:
    """Replay a change's or an incident's events as a causal timeline or a post-incident
    report, read from the retained topics without a consumer group.

    Example: guardians replay --change shop-2.4.0 --format md > postmortem.md
    """
    import logging

    # aiokafka logs a refused connection before raising it; the error below says it once.
    logging.getLogger("aiokafka").addHandler(logging.NullHandler())
    # A short-lived process building up to millions of acyclic objects: the cyclic collector
    # would only re-scan them (as `guardians lint` does, cli/main.py).
    gc.disable()
    try:
        selector = Selector(change, incident, None if since is None else parse_time(since),
                            None if until is None else parse_time(until))
        chosen = None if not topics else check_topics(topics)
        server = bootstrap or os.environ.get("GUARDIANS_KAFKA_BOOTSTRAP") or DEFAULT_BOOTSTRAP
        timeline, stats = replay(server, selector, chosen)
    except ReplayError as exc:
        typer.echo(f"guardians replay: {exc}", err=True)
        raise typer.Exit(2) from exc
    if not timeline.events:
        typer.echo(f"guardians replay: no events for {selector.describe()} "
                   f"({stats.read:,} read from {stats.topics} topics)", err=True)
        raise typer.Exit(1)
    typer.echo(render(timeline, stats, selector, output))


def register(app: typer.Typer) -> None:
    app.command("replay")(command)


def _progress(what: str) -> Any:
    """A spinner on stderr while a long step runs (nothing when stderr is not a terminal)."""
    from rich.console import Console

    return Console(stderr=True).status(what)
