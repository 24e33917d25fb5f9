"""What waits to be delivered, as gauges on /metrics: events in Kafka that the service's
consumer group has not handled yet (consumer lag), and outbox rows not yet published.

Lag is counted from the group's committed offset, not from the consumer's position. The
guardian commits an offset only after the transaction holding the event's effects has
committed, so the committed offset is where a restart or another replica resumes: what an
operator means by lag, and what `kafka-consumer-groups.sh --describe` shows. The position runs
ahead by whatever has been fetched: a batch held while a dependency is down would read as no
lag at all.

The partition's end is asked of the broker (`end_offsets`; `beginning_offsets` too, for a group
that has not committed yet: one request each per sample), not taken from `highwater()`:
aiokafka caches that from fetch responses, so it is unknown before the first fetch and goes
stale exactly when the consumer stops fetching a partition (records buffered behind a held
batch). aiokafka's public API asks for committed offsets one partition at a time: one small
OffsetFetch each, answered from the broker's cache, sent together; a guardian owns tens of
partitions (the dashboard, which hears everything, about a hundred) and samples every
`backlog_interval_s`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

import asyncpg
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from services.runtime import metrics, outbox

log = logging.getLogger(__name__)
SAMPLE_TIMEOUT_S = 10.0
"""Bound on one measurement, so a broker or database that hangs cannot stall the sampling."""


def partition_lag(end: int, committed: int | None, start: int) -> int:
    """Events from where the group resumes to the partition's end. A group that has never
    committed resumes at the log start (auto_offset_reset=earliest), and so does one whose
    committed offset retention has deleted since."""
    resume = start if committed is None else max(committed, start)
    return max(0, end - resume)


async def consumer_lag(consumer: AIOKafkaConsumer) -> dict[TopicPartition, int]:
    """The lag of each partition assigned to `consumer` now (none during a rebalance)."""
    assigned = sorted(consumer.assignment())
    if not assigned:
        return {}
    ends = await consumer.end_offsets(assigned)
    starts = await consumer.beginning_offsets(assigned)
    committed = await asyncio.gather(*(consumer.committed(tp) for tp in assigned))
    return {
        tp: partition_lag(ends[tp], offset, starts[tp])
        for tp, offset in zip(assigned, committed, strict=True)
    }


class BacklogGauges:
    """One service's backlog series. Only the partitions this process owns have a lag series,
    so summing over instances counts each partition once."""

    def __init__(self, service: str) -> None:
        self._service = service
        self._partitions: set[TopicPartition] = set()

    def show_lag(self, lags: Mapping[TopicPartition, int]) -> None:
        """Set the lag of the partitions in `lags`; drop the series of the others."""
        for tp, lag in lags.items():
            metrics.CONSUMER_LAG.labels(self._service, tp.topic, str(tp.partition)).set(lag)
        for tp in self._partitions - lags.keys():
            metrics.CONSUMER_LAG.remove(self._service, tp.topic, str(tp.partition))
        self._partitions = set(lags)

    def show_outbox(self, waiting: outbox.Backlog) -> None:
        metrics.OUTBOX_BACKLOG.labels(self._service).set(waiting.rows)
        metrics.OUTBOX_OLDEST_SECONDS.labels(self._service).set(waiting.oldest_age_s)

    def clear(self) -> None:
        """Drop every series: a stopped service owns no partitions and reports no outbox."""
        self.show_lag({})
        metrics.OUTBOX_BACKLOG.remove(self._service)
        metrics.OUTBOX_OLDEST_SECONDS.remove(self._service)


class BacklogWatch:
    """Measures both backlogs when asked. A measurement that fails leaves its gauges at their
    last values and is logged once, until it succeeds again."""

    def __init__(self, service: str, pool: asyncpg.Pool) -> None:
        self.gauges = BacklogGauges(service)
        self._pool = pool
        self._failing: set[str] = set()

    async def sample(self, consumer: AIOKafkaConsumer | None) -> None:
        if consumer is not None:
            await self._measure("consumer lag", lambda: self._lag(consumer))
        await self._measure("outbox backlog", self._outbox)

    async def _lag(self, consumer: AIOKafkaConsumer) -> None:
        self.gauges.show_lag(await consumer_lag(consumer))

    async def _outbox(self) -> None:
        async with self._pool.acquire() as conn:
            self.gauges.show_outbox(await outbox.backlog(conn))

    async def _measure(self, what: str, measure: Callable[[], Awaitable[None]]) -> None:
        try:
            async with asyncio.timeout(SAMPLE_TIMEOUT_S):
                await measure()
        except Exception as exc:
            if what not in self._failing:
                log.warning("could not measure the %s (%s: %s); its gauges keep their last "
                            "values", what, type(exc).__name__, exc)
            self._failing.add(what)
            return
        if what in self._failing:
            log.info("measuring the %s again", what)
            self._failing.discard(what)
