"""Load generation, reading results back from Kafka, the workers' /metrics, small statistics."""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from bench.events import Hop, decode, encode, registry_for
from bench.procs import Worker
from services.runtime.topics import ensure_topics

# ------------------------------------------------------------------------------ statistics


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def fmt(value: float, digits: int = 1) -> str:
    if math.isinf(value):
        return "lost"  # a percentile that falls on events that never arrived
    return "n/a" if math.isnan(value) else f"{value:,.{digits}f}"


def ratio(a: float, b: float) -> float:
    return math.nan if not b or math.isnan(a) or math.isnan(b) else a / b


# ------------------------------------------------------------------------------ Kafka


async def create_topics(bootstrap: str, topics: list[str], partitions: int) -> list[type[Hop]]:
    registry, models = registry_for(topics, partitions)
    await ensure_topics(bootstrap, registry.all())
    return models


def producer(bootstrap: str, *, linger_ms: int = 0) -> AIOKafkaProducer:
    """The runtime relay's producer settings (idempotent, acks=all)."""
    return AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
                            linger_ms=linger_ms, request_timeout_ms=15_000)


async def send_at_rate(
    prod: AIOKafkaProducer, model: type[Hop], seqs: range, rate: float,
    check: Callable[[], None],
) -> None:
    """Open-loop load: event k leaves at start + k/rate whatever the chain does."""
    started = time.monotonic()
    acks = []
    last_check = started
    for k, seq in enumerate(seqs):
        ahead = started + k / rate - time.monotonic()
        if ahead > 0:
            await asyncio.sleep(ahead)
        key, value, headers, _ = encode(model, seq)
        acks.append(await prod.send(model.TOPIC, value=value, key=key, headers=headers))
        if time.monotonic() - last_check > 1:
            check()
            last_check = time.monotonic()
    await asyncio.wait_for(asyncio.gather(*acks), 60)


async def preload(bootstrap: str, model: type[Hop], count: int) -> float:
    """Fill the input topic as fast as the producer goes; returns seconds taken."""
    started = time.monotonic()
    prod = producer(bootstrap, linger_ms=5)
    await prod.start()
    try:
        acks = []
        for seq in range(count):
            key, value, headers, _ = encode(model, seq)
            acks.append(await prod.send(model.TOPIC, value=value, key=key, headers=headers))
        await asyncio.wait_for(asyncio.gather(*acks), 120)
    finally:
        await prod.stop()
    return time.monotonic() - started


class FinalReader:
    """Reads the last hop's topic from the start (no group) and stamps each arrival."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
            auto_offset_reset="earliest", fetch_max_wait_ms=100,
        )
        self.arrived: dict[int, tuple[int, int]] = {}
        """seq -> (sent_ns, arrival_ns), first copy only."""
        self.copies = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.consumer.start()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            batch = await self.consumer.getmany(timeout_ms=100)
            now = time.time_ns()
            for records in batch.values():
                for record in records:
                    seq, sent_ns = decode(record.value)
                    self.copies += 1
                    self.arrived.setdefault(seq, (sent_ns, now))

    async def wait_for(self, seqs: range, timeout_s: float, check: Callable[[], None]) -> int:
        """Wait until every seq arrived or the time is up; returns how many are missing."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            missing = sum(1 for s in seqs if s not in self.arrived)
            if not missing:
                return 0
            if self._task is not None and self._task.done():
                self._task.result()  # raises what killed the reader
            check()
            await asyncio.sleep(0.05)
        return sum(1 for s in seqs if s not in self.arrived)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.consumer.stop()


async def read_create_times(
    bootstrap: str, topic: str, expected: int, timeout_s: float = 60
) -> dict[int, int]:
    """seq -> CreateTime (ms) of the first record carrying it, reading the topic once."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    out: dict[int, int] = {}
    try:
        deadline = time.monotonic() + timeout_s
        while len(out) < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=300, max_records=5_000)
            for records in batch.values():
                for record in records:
                    seq, _ = decode(record.value)
                    out.setdefault(seq, record.timestamp)
    finally:
        await consumer.stop()
    return out


async def end_offsets_total(consumer: AIOKafkaConsumer, partitions: list[TopicPartition]
                            ) -> int:
    offsets = await consumer.end_offsets(partitions)
    return int(sum(offsets.values()))


# ------------------------------------------------------------------------------ /metrics


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$")
_LE = re.compile(r'le="([^"]+)"')
Samples = dict[tuple[str, str], float]
"""(metric name, le or "") -> value, summed over the other labels."""


async def scrape(port: int, timeout_s: float = 5) -> Samples:
    """The guardians_* samples of one worker's Prometheus endpoint."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port),
                                            timeout_s)
    try:
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await writer.drain()
        body = await asyncio.wait_for(reader.read(), timeout_s)
    finally:
        writer.close()
    samples: Samples = defaultdict(float)
    text = body.decode(errors="replace").split("\r\n\r\n", 1)[-1]
    for line in text.splitlines():
        if not line.startswith("guardians_"):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            continue
        name, labels, value = match.groups()
        le = _LE.search(labels or "")
        samples[(name, le.group(1) if le else "")] += float(value)
    return samples


async def scrape_all(workers: Sequence[Worker]) -> Samples:
    total: Samples = defaultdict(float)
    for worker in workers:
        if worker.http_port is None:
            continue
        try:
            for key, value in (await scrape(worker.http_port)).items():
                total[key] += value
        except (OSError, TimeoutError) as exc:
            print(f"  ! could not scrape {worker.label}: {exc}")
    return total


def delta(after: Samples, before: Samples) -> Samples:
    return {k: v - before.get(k, 0.0) for k, v in after.items()}


@dataclass(frozen=True)
class Histo:
    count: float
    mean_ms: float
    p50_ms: float
    p99_ms: float

    def as_dict(self) -> dict[str, float]:
        return {"count": self.count, "mean_ms": self.mean_ms, "p50_ms": self.p50_ms,
                "p99_ms": self.p99_ms}


def histogram(samples: Samples, name: str) -> Histo:
    """Count, mean and bucket-interpolated p50/p99 (as PromQL's histogram_quantile)."""
    count = samples.get((f"{name}_count", ""), 0.0)
    total = samples.get((f"{name}_sum", ""), 0.0)
    buckets = sorted(
        (float(le), v) for (n, le), v in samples.items() if n == f"{name}_bucket"
    )

    def quantile(q: float) -> float:
        if count <= 0:
            return math.nan
        rank = q * count
        lower, below = 0.0, 0.0
        for upper, cumulative in buckets:
            if cumulative >= rank:
                if math.isinf(upper):
                    return lower * 1000
                inside = cumulative - below
                share = (rank - below) / inside if inside else 1.0
                return (lower + (upper - lower) * share) * 1000
            lower, below = upper, cumulative
        return math.nan

    mean = total / count * 1000 if count else math.nan
    return Histo(count, mean, quantile(0.5), quantile(0.99))


def counter(samples: Samples, name: str) -> float:
    return samples.get((name, ""), 0.0)
