"""Turning one Kafka record into exactly-once effects.

For each record, inside the batch's transaction: read the envelope, validate the payload
against the topic's model, verify the signature of commands, record the event id (a
duplicate stops here), run the handler in a savepoint, and write what it emits to the
outbox. Anything that cannot be handled is recorded and dead-lettered, never dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import asyncpg
import pydantic
from aiokafka.structs import ConsumerRecord
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from schemas.base import Event
from schemas.envelope import Envelope, EnvelopeError
from schemas.registry import Registry, TopicSpec, UnknownTopicError
from schemas.signing import SignatureError, SigningKey, TrustedKeys
from services.runtime import metrics, outbox
from services.runtime.db import Connection
from services.runtime.deadletter import Rejection, dead_letter, rejected_command_alert
from services.runtime.outbox import OutboxMessage, OutboxRow
from services.runtime.telemetry import context_from_traceparent, current_traceparent

log = logging.getLogger("guardians.events")
E = TypeVar("E", bound=Event)


class RetryLaterError(Exception):
    """Raised by a handler when something it depends on is down (a shadow database, a deploy
    target): nothing is wrong with the event, so it is neither counted as a failure nor
    dead-lettered; the batch is rolled back and retried until the dependency is back."""


class FastPathError(Exception):
    """The batch cannot take the fast path: a record to reject, or a handler that raised."""


class CommandSigningError(RuntimeError):
    """The service tried to emit a signed command without a signing key configured."""


@dataclass
class Context:
    """What a handler gets besides its event: the open transaction and a way to emit."""

    conn: Connection
    service: str
    registry: Registry
    signing: SigningKey | None
    incoming: Envelope | None = None
    emitted: list[OutboxMessage] = field(default_factory=list)
    causation_id: str | None = None
    """Outside a handler (a timer, a durable job's step): the id of the event this
    transaction's events follow from, so replay can still rebuild the causal chain."""

    def emit(self, event: Event, *, subject: str | None = None) -> Envelope:
        """Queue `event` for publication once this transaction commits."""
        spec = self.registry.of(type(event))
        key = spec.key_of(event)
        change_id = getattr(event, "change_id", None)
        correlation = (
            str(change_id)
            if change_id is not None
            else (self.incoming.correlation_id if self.incoming else key)
        )
        value = event.model_dump_json().encode()
        envelope = Envelope(
            type=spec.ce_type,
            source=f"guardians/{self.service}",
            subject=subject or key,
            correlation_id=correlation,
            causation_id=self.incoming.id if self.incoming else self.causation_id,
            traceparent=current_traceparent(),
        )
        if spec.signed:
            if self.signing is None:
                raise CommandSigningError(
                    f"{self.service} must sign {spec.name} but has no key: set "
                    "GUARDIANS_SIGNER and GUARDIANS_SIGNING_KEY"
                )
            envelope = self.signing.sign(envelope, value)
        self.emitted.append(
            OutboxMessage(spec.name, key.encode(), value, envelope.to_headers())
        )
        return envelope


Handler = Callable[[E, Context], Awaitable[None]]


@dataclass(frozen=True)
class Route(Generic[E]):
    spec: TopicSpec
    handler: Handler[E]


@dataclass(frozen=True)
class Decoded:
    envelope: Envelope
    event: Event
    route: Route[Event]


class RecordHandler:
    """Handles records one at a time inside a caller-owned transaction."""

    def __init__(
        self,
        service: str,
        registry: Registry,
        routes: dict[str, Route[Event]],
        trusted: TrustedKeys,
        signing: SigningKey | None,
        max_attempts: int,
        retry_backoff_s: float,
    ) -> None:
        self.service = service
        self.registry = registry
        self.routes = routes
        self.trusted = trusted
        self.signing = signing
        self.max_attempts = max_attempts
        self.retry_backoff_s = retry_backoff_s
        self._tracer = trace.get_tracer("guardians.runtime")

    def decode(self, record: ConsumerRecord[bytes, bytes]) -> Decoded | Rejection:
        route = self.routes.get(record.topic)
        if route is None:
            return Rejection("unknown_type", f"{self.service} has no handler for "
                             f"topic {record.topic!r}", "UnknownTopicError")
        try:
            envelope = Envelope.from_headers(record.headers or ())
        except EnvelopeError as exc:
            return Rejection("malformed_envelope", f"{record.topic}: {exc}", type(exc).__name__)
        spec = route.spec
        if envelope.type != spec.ce_type:
            return Rejection(
                "unknown_type",
                f"{record.topic}: ce_type {envelope.type!r} is not {spec.ce_type!r}",
                UnknownTopicError.__name__,
            )
        value = record.value or b""
        try:
            event = spec.model.model_validate_json(value)
        except pydantic.ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or "(root)"
            return Rejection(
                "invalid_payload",
                f"{record.topic} event {envelope.id}: {exc.error_count()} error(s); "
                f"first at {where}: {first.get('msg')}",
                type(exc).__name__,
            )
        if spec.signed:
            try:
                self.trusted.verify(envelope, value)
            except SignatureError as exc:
                return Rejection("bad_signature", str(exc), type(exc).__name__)
        return Decoded(envelope, event, route)

    async def handle_batch(
        self, conn: Connection, records: Sequence[ConsumerRecord[bytes, bytes]],
        written: list[OutboxRow],
    ) -> None:
        """The common case, in `conn`'s open transaction: every record valid, every handler
        succeeding. One dedupe statement and one outbox write for the whole batch, handlers
        without savepoints. Raises `FastPathError` when a record must be rejected or a
        handler raises: the caller rolls back and replays the batch through `handle`."""
        decoded: list[tuple[ConsumerRecord[bytes, bytes], Decoded]] = []
        seen: set[str] = set()
        for record in records:
            item = self.decode(record)
            if isinstance(item, Rejection):
                raise FastPathError(item.reason)
            if item.envelope.id not in seen:  # a duplicate inside the batch is claimed once
                seen.add(item.envelope.id)
                decoded.append((record, item))
        fresh = await _claim_many(conn, decoded)
        emitted: list[OutboxMessage] = []
        for record, item in decoded:
            if item.envelope.id not in fresh:
                self._done(record, item.envelope, "duplicate", 0.0)
                continue
            started = time.perf_counter()
            ctx = Context(conn, self.service, self.registry, self.signing, item.envelope)
            with self._span(record, item.envelope) as span:
                try:
                    await item.route.handler(item.event, ctx)
                except (asyncpg.InterfaceError, asyncpg.ConnectionDoesNotExistError,
                        RetryLaterError):
                    raise
                except Exception as exc:
                    raise FastPathError(f"{type(exc).__name__}: {exc}") from exc
                span.set_attribute("guardians.outcome", "handled")
            emitted.extend(ctx.emitted)
            self._done(record, item.envelope, "handled", time.perf_counter() - started)
        written += await outbox.write(conn, emitted)

    def _span(self, record: ConsumerRecord[bytes, bytes], envelope: Envelope
              ) -> AbstractContextManager[Span]:
        return self._tracer.start_as_current_span(
            f"{record.topic} process",
            context=context_from_traceparent(envelope.traceparent),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.destination.name": record.topic,
                "messaging.kafka.partition": record.partition,
                "messaging.kafka.offset": record.offset,
                "messaging.message.id": envelope.id,
                "guardians.service": self.service,
                "guardians.correlation_id": envelope.correlation_id,
            },
        )

    def _done(self, record: ConsumerRecord[bytes, bytes], envelope: Envelope, outcome: str,
              seconds: float) -> None:
        """One log line and the metrics for a handled or duplicate event."""
        metrics.EVENTS_HANDLED.labels(self.service, record.topic, outcome).inc()
        if outcome == "handled":
            metrics.HANDLE_SECONDS.labels(self.service, record.topic).observe(seconds)
        log.info(
            "event %s",
            outcome,
            extra={
                "topic": record.topic,
                "event_id": envelope.id,
                "change_id": envelope.correlation_id,
                "causation_id": envelope.causation_id,
                "partition": record.partition,
                "offset": record.offset,
                "outcome": outcome,
            },
        )

    async def handle(
        self, conn: Connection, record: ConsumerRecord[bytes, bytes], written: list[OutboxRow]
    ) -> str:
        """The careful path for one record in `conn`'s open transaction: the handler in a
        savepoint, retried, then dead-lettered. Returns the outcome label."""
        started = time.perf_counter()
        decoded = self.decode(record)
        if isinstance(decoded, Rejection):
            event_id = _kafka_id(record)
            with contextlib.suppress(EnvelopeError):
                event_id = Envelope.from_headers(record.headers or ()).id
            return await self._reject(conn, record, event_id, decoded, written)
        envelope = decoded.envelope
        with self._span(record, envelope) as span:
            outcome, error = await self._run_handler(conn, record, decoded, written)
            span.set_attribute("guardians.outcome", outcome)
            if error is not None:
                span.set_status(Status(StatusCode.ERROR, error.reason))
        if error is not None:
            return await self._reject(conn, record, envelope.id, error, written)
        self._done(record, envelope, outcome, time.perf_counter() - started)
        return outcome

    async def _run_handler(
        self, conn: Connection, record: ConsumerRecord[bytes, bytes], decoded: Decoded,
        written: list[OutboxRow],
    ) -> tuple[str, Rejection | None]:
        envelope = decoded.envelope
        last: BaseException | None = None
        for attempt in range(1, self.max_attempts + 1):
            ctx = Context(conn, self.service, self.registry, self.signing, envelope)
            try:
                async with conn.transaction():  # a savepoint: a failed attempt leaves no trace
                    if not await _claim(conn, envelope.id, record, "handled"):
                        return "duplicate", None
                    await decoded.route.handler(decoded.event, ctx)
                    rows = await outbox.write(conn, ctx.emitted)
            except (asyncpg.InterfaceError, asyncpg.ConnectionDoesNotExistError,
                    RetryLaterError):
                raise  # not the event's fault: the whole batch is retried
            except Exception as exc:
                last = exc
                metrics.HANDLER_ERRORS.labels(self.service, record.topic).inc()
                log.warning(
                    "handler raised (attempt %d of %d): %s",
                    attempt,
                    self.max_attempts,
                    exc,
                    extra={"topic": record.topic, "event_id": envelope.id,
                           "change_id": envelope.correlation_id},
                )
                if attempt < self.max_attempts:
                    await asyncio.sleep(self.retry_backoff_s * 2 ** (attempt - 1))
                continue
            written += rows
            return "handled", None
        assert last is not None
        return "dead_lettered", Rejection(
            "handler_failed",
            f"{decoded.route.handler.__name__} raised {self.max_attempts} times on "
            f"{record.topic} event {envelope.id}: {type(last).__name__}: {last}",
            type(last).__name__,
        )

    async def _reject(
        self,
        conn: Connection,
        record: ConsumerRecord[bytes, bytes],
        event_id: str,
        rejection: Rejection,
        written: list[OutboxRow],
    ) -> str:
        if not await _claim(conn, event_id, record, "dead_lettered"):
            metrics.EVENTS_HANDLED.labels(self.service, record.topic, "duplicate").inc()
            return "duplicate"
        await conn.execute(
            "INSERT INTO dead_letters (event_id, topic, kafka_partition, kafka_offset, reason,"
            " error_class) VALUES ($1, $2, $3, $4, $5, $6)",
            event_id, record.topic, record.partition, record.offset, rejection.reason,
            rejection.error_class,
        )
        messages = [dead_letter(record, rejection, self.service)]
        if rejection.kind == "bad_signature":
            signer = None
            with contextlib.suppress(EnvelopeError):
                signer = Envelope.from_headers(record.headers or ()).signer
            messages.append(rejected_command_alert(record, rejection, self.service, signer))
        written += await outbox.write(conn, messages)
        metrics.DEAD_LETTERS.labels(self.service, record.topic, rejection.kind).inc()
        metrics.EVENTS_HANDLED.labels(self.service, record.topic, "dead_lettered").inc()
        log.warning(
            "event dead-lettered: %s",
            rejection.reason,
            extra={"topic": record.topic, "event_id": event_id, "kind": rejection.kind,
                   "partition": record.partition, "offset": record.offset},
        )
        return "dead_lettered"


def _kafka_id(record: ConsumerRecord[bytes, bytes]) -> str:
    """The id of a message that has no readable ce_id: its place in the log."""
    return f"kafka:{record.topic}:{record.partition}:{record.offset}"


async def _claim_many(
    conn: Connection, decoded: Sequence[tuple[ConsumerRecord[bytes, bytes], Decoded]]
) -> set[str]:
    """Record a batch's events as processed in one statement; return the ids that were new."""
    rows = await conn.fetch(
        "INSERT INTO processed_events (event_id, topic, kafka_partition, kafka_offset, outcome)"
        " SELECT i, t, p, o, 'handled'"
        " FROM unnest($1::text[], $2::text[], $3::int[], $4::bigint[]) AS u(i, t, p, o)"
        " ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
        [d.envelope.id for _, d in decoded], [r.topic for r, _ in decoded],
        [r.partition for r, _ in decoded], [r.offset for r, _ in decoded],
    )
    return {row["event_id"] for row in rows}


async def _claim(
    conn: Connection, event_id: str, record: ConsumerRecord[bytes, bytes], outcome: str
) -> bool:
    """Record the event as processed; False if it already was (a re-delivery)."""
    row = await conn.fetchval(
        "INSERT INTO processed_events (event_id, topic, kafka_partition, kafka_offset, outcome)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (event_id) DO NOTHING RETURNING 1",
        event_id, record.topic, record.partition, record.offset, outcome,
    )
    return row is not None
