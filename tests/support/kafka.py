"""Producing and reading test events on the real broker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from schemas.base import Event
from schemas.envelope import Envelope
from schemas.registry import Registry
from schemas.signing import SigningKey


@dataclass(frozen=True)
class Received:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, str]


def envelope_for(registry: Registry, event: Event, **overrides: str) -> tuple[Envelope, bytes]:
    spec = registry.of(type(event))
    key = spec.key_of(event)
    fields: dict[str, str] = {
        "type": spec.ce_type, "source": "tests", "subject": key, "correlation_id": key,
    }
    fields.update(overrides)
    return Envelope(**fields), event.model_dump_json().encode()  # type: ignore[arg-type]


async def send_events(
    bootstrap: str,
    registry: Registry,
    events: Sequence[Event],
    *,
    signer: SigningKey | None = None,
    traceparent: str | None = None,
    rate_per_s: float | None = None,
) -> list[Envelope]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    sent: list[Envelope] = []
    try:
        started = time.monotonic()
        for i, event in enumerate(events):
            envelope, value = envelope_for(registry, event)
            if traceparent:
                envelope = Envelope(**{**envelope.__dict__, "traceparent": traceparent})
            if signer is not None:
                envelope = signer.sign(envelope, value)
            spec = registry.of(type(event))
            await producer.send(spec.name, value=value, key=spec.key_of(event).encode(),
                                headers=envelope.to_headers())
            sent.append(envelope)
            if rate_per_s:
                ahead = started + (i + 1) / rate_per_s - time.monotonic()
                if ahead > 0:
                    await asyncio.sleep(ahead)
        await producer.flush()
    finally:
        await producer.stop()
    return sent


async def send_raw(
    bootstrap: str, topic: str, value: bytes, headers: list[tuple[str, bytes]], key: bytes
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, value=value, key=key, headers=headers)
    finally:
        await producer.stop()


async def read_topic(
    bootstrap: str, topic: str, *, until_count: int, timeout_s: float
) -> list[Received]:
    """Read a topic from the start without a consumer group until `until_count` messages
    arrived or the time is up (then return what came)."""
    return await _read(bootstrap, topic, lambda _: True, until_count, timeout_s)


async def wait_for(
    bootstrap: str, topic: str, *, subject: str, count: int = 1, timeout_s: float = 60
) -> list[Received]:
    """The first `count` messages on `topic` whose ce_subject is `subject` (a change id, a
    service), read from the start of the topic; fewer if the time runs out."""
    found = await _read(bootstrap, topic, lambda m: m.headers.get("ce_subject") == subject,
                        count, timeout_s)
    return found[:count]


async def _read(
    bootstrap: str, topic: str, keep: Callable[[Received], bool], count: int, timeout_s: float
) -> list[Received]:
    # No group: every partition is assigned and read from the start; nothing is committed.
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, enable_auto_commit=False,
                                group_id=None, auto_offset_reset="earliest")
    await consumer.start()
    found: list[Received] = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(found) < count and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for r in records:
                    message = Received(r.topic, r.partition, r.offset, r.key, r.value or b"",
                                       {k: v.decode(errors="replace") for k, v in r.headers})
                    if keep(message):
                        found.append(message)
    finally:
        await consumer.stop()
    return found
