"""Consumer lag and the outbox backlog as gauges: lag is counted from where the group resumes,
only the partitions this process owns have a series, and a failed measurement keeps the last
values and is logged once."""

from __future__ import annotations

import logging
from typing import Any, cast

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from prometheus_client import REGISTRY

from services.runtime.backlog import BacklogGauges, BacklogWatch, consumer_lag, partition_lag
from services.runtime.outbox import Backlog

A0, A1, B0 = TopicPartition("a", 0), TopicPartition("a", 1), TopicPartition("b", 0)


class FakeConsumer:
    """What the lag measurement asks of aiokafka's consumer, answered from tables."""

    def __init__(self, ends: dict[TopicPartition, int], starts: dict[TopicPartition, int],
                 committed: dict[TopicPartition, int | None]) -> None:
        self.ends, self.starts, self.offsets = ends, starts, committed
        self.failing = False

    def assignment(self) -> set[TopicPartition]:
        return set(self.ends)

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        if self.failing:
            raise ConnectionError("broker away")
        return {tp: self.ends[tp] for tp in partitions}

    async def beginning_offsets(self, partitions: list[TopicPartition]
                                ) -> dict[TopicPartition, int]:
        return {tp: self.starts[tp] for tp in partitions}

    async def committed(self, partition: TopicPartition) -> int | None:
        return self.offsets[partition]


def lag(service: str, tp: TopicPartition) -> float | None:
    return REGISTRY.get_sample_value(
        "guardians_consumer_lag",
        {"service": service, "topic": tp.topic, "partition": str(tp.partition)},
    )


def outbox_gauges(service: str) -> tuple[float | None, float | None]:
    return (REGISTRY.get_sample_value("guardians_outbox_backlog", {"service": service}),
            REGISTRY.get_sample_value("guardians_outbox_oldest_unpublished_seconds",
                                      {"service": service}))


@pytest.mark.parametrize(
    ("end", "committed", "start", "expected"),
    [
        (10, 4, 0, 6),      # committed: the events after it wait
        (10, 10, 0, 0),     # caught up
        (10, None, 3, 7),   # never committed: resumes at the log start
        (10, 1, 3, 7),      # committed offset deleted by retention: resumes at the log start
        (0, None, 0, 0),    # an empty partition
        (5, 9, 0, 0),       # never negative
    ],
)
def test_lag_counts_from_where_the_group_resumes(
    end: int, committed: int | None, start: int, expected: int
) -> None:
    assert partition_lag(end, committed, start) == expected


async def test_consumer_lag_is_measured_for_each_assigned_partition() -> None:
    consumer = FakeConsumer(ends={A0: 10, A1: 5, B0: 7}, starts={A0: 0, A1: 2, B0: 0},
                            committed={A0: 8, A1: None, B0: 7})
    assert await consumer_lag(cast(AIOKafkaConsumer, consumer)) == {A0: 2, A1: 3, B0: 0}


async def test_a_consumer_without_partitions_has_no_lag() -> None:
    assert await consumer_lag(cast(AIOKafkaConsumer, FakeConsumer({}, {}, {}))) == {}


def test_partitions_no_longer_assigned_lose_their_series() -> None:
    gauges = BacklogGauges("lag_moves")
    gauges.show_lag({A0: 3, A1: 0})
    assert (lag("lag_moves", A0), lag("lag_moves", A1)) == (3, 0)
    gauges.show_lag({A1: 2, B0: 1})  # a rebalance took a/0 and gave b/0
    assert (lag("lag_moves", A0), lag("lag_moves", A1), lag("lag_moves", B0)) == (None, 2, 1)


def test_clear_drops_every_series_of_the_service_and_no_other() -> None:
    gauges, other = BacklogGauges("lag_cleared"), BacklogGauges("lag_kept")
    gauges.show_lag({A0: 3})
    gauges.show_outbox(Backlog(rows=2, oldest_age_s=1.5))
    other.show_lag({A0: 4})
    other.show_outbox(Backlog(rows=0, oldest_age_s=0.0))
    assert outbox_gauges("lag_cleared") == (2, 1.5)
    gauges.clear()
    gauges.clear()  # harmless twice
    assert lag("lag_cleared", A0) is None
    assert outbox_gauges("lag_cleared") == (None, None)
    assert lag("lag_kept", A0) == 4 and outbox_gauges("lag_kept") == (0, 0)


class _NoPool:
    """A pool whose database is down."""

    def acquire(self) -> Any:
        raise ConnectionRefusedError("database away")


async def test_a_failing_measurement_keeps_the_last_values_and_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    consumer = FakeConsumer(ends={A0: 10}, starts={A0: 0}, committed={A0: 4})
    watch = BacklogWatch("lag_failing", cast(asyncpg.Pool, _NoPool()))
    with caplog.at_level(logging.INFO, logger="services.runtime.backlog"):
        await watch.sample(cast(AIOKafkaConsumer, consumer))
        assert lag("lag_failing", A0) == 6
        consumer.failing = True
        consumer.offsets[A0] = 10
        for _ in range(3):
            await watch.sample(cast(AIOKafkaConsumer, consumer))
        assert lag("lag_failing", A0) == 6, "the last measured value stays"
        consumer.failing = False
        await watch.sample(cast(AIOKafkaConsumer, consumer))
    assert lag("lag_failing", A0) == 0
    messages = [r.getMessage() for r in caplog.records]
    assert sum("could not measure the consumer lag" in m for m in messages) == 1
    assert sum("could not measure the outbox backlog" in m for m in messages) == 1
    assert "measuring the consumer lag again" in messages
    assert outbox_gauges("lag_failing") == (None, None), "never measured: no series"
