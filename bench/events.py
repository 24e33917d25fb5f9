"""The benchmark's own event: one small model, bound per run to unique topic names.

Like tests/support/events.py: a subclass per topic (the registry maps one model to one
topic), created at run time so that runs never share topics, consumer groups or schemas.
"""

from __future__ import annotations

import json
import time
from typing import ClassVar

from schemas.base import ChangeId, Event
from schemas.envelope import Envelope
from schemas.registry import Registry, TopicSpec


class Hop(Event):
    """What travels down the chain; every hop copies `seq` and `sent_ns` unchanged."""

    TOPIC: ClassVar[str] = "bench.hop"
    change_id: ChangeId
    seq: int
    sent_ns: int
    """time.time_ns() when the load generator sent the first event of the chain."""


def hop_model(topic: str) -> type[Hop]:
    """A Hop subclass on `topic` (same class name for every topic; only TOPIC differs)."""
    model: type[Hop] = type("Hop", (Hop,), {"TOPIC": topic, "__module__": __name__})
    return model


def registry_for(topics: list[str], partitions: int) -> tuple[Registry, list[type[Hop]]]:
    models = [hop_model(topic) for topic in topics]
    specs = [TopicSpec(m.TOPIC, m, "change_id", partitions=partitions) for m in models]
    return Registry(specs), models


def key_for(seq: int) -> str:
    """64 distinct keys: spread over every partition, ordered per key like change ids."""
    return f"bench-{seq % 64}"


def encode(model: type[Hop], seq: int) -> tuple[bytes, bytes, list[tuple[str, bytes]], int]:
    """(key, value, CloudEvents headers, sent_ns) of a first-hop event, as a producer sends it."""
    key = key_for(seq)
    sent_ns = time.time_ns()
    value = model(change_id=key, seq=seq, sent_ns=sent_ns).model_dump_json().encode()
    envelope = Envelope(type=model.ce_type(), source="bench", subject=key, correlation_id=key)
    return key.encode(), value, envelope.to_headers(), sent_ns


def decode(value: bytes | None) -> tuple[int, int]:
    """(seq, sent_ns) of a Hop event's JSON value."""
    body = json.loads(value or b"{}")
    return int(body["seq"]), int(body["sent_ns"])
