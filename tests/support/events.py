"""Events for testing the runtime on its own topics, named per test so runs never collide."""

from __future__ import annotations

from typing import ClassVar

from schemas.base import ChangeId, Event
from schemas.registry import Registry, TopicSpec


class Ping(Event):
    TOPIC: ClassVar[str] = "rt.ping"
    change_id: ChangeId
    seq: int
    fail: bool = False
    """The handler raises on this event every time (a poison event)."""
    unavailable: int = 0
    """The handler says its dependency is down this many times before it succeeds."""


class Pong(Event):
    TOPIC: ClassVar[str] = "rt.pong"
    change_id: ChangeId
    seq: int


class Order(Event):
    """A signed command."""

    TOPIC: ClassVar[str] = "rt.order"
    change_id: ChangeId
    seq: int


class TestTopics:
    """Ping/Pong/Order models bound to topics under `prefix`, and their registry."""

    def __init__(self, prefix: str, partitions: int = 6) -> None:
        self.prefix = prefix
        self.ping: type[Ping] = type("Ping", (Ping,), {"TOPIC": f"{prefix}.ping"})
        self.pong: type[Pong] = type("Pong", (Pong,), {"TOPIC": f"{prefix}.pong"})
        self.order: type[Order] = type("Order", (Order,), {"TOPIC": f"{prefix}.order"})
        self.registry = Registry(
            [
                TopicSpec(self.ping.TOPIC, self.ping, "change_id", partitions=partitions),
                TopicSpec(self.pong.TOPIC, self.pong, "change_id", partitions=partitions),
                TopicSpec(self.order.TOPIC, self.order, "change_id", partitions=partitions,
                          signed=True),
            ]
        )
