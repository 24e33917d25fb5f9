"""What one request costs on this machine: the unit prices behind every other figure.

One Kafka produce (acks=all, idempotent, one record), one offset commit, one produce that a
waiting consumer fetches, one PostgreSQL round trip and one durable PostgreSQL transaction,
each repeated on its own: wall time and CPU of the broker, of PostgreSQL and of the Python
client per operation.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from bench.measure import create_topics, producer
from bench.procs import own_cpu_s, refresh_backends, stack_cpu_s


@dataclass(frozen=True)
class UnitCost:
    operation: str
    count: int
    wall_ms: float
    kafka_ms: float
    pg_ms: float
    client_ms: float


async def _measure(operation: str, count: int, step: Callable[[int], Awaitable[None]]
                   ) -> UnitCost:
    kafka0, pg0 = stack_cpu_s()
    client0, started = own_cpu_s(), time.monotonic()
    for i in range(count):
        await step(i)
    wall = time.monotonic() - started
    kafka1, pg1 = stack_cpu_s()
    per = 1000 / count
    return UnitCost(operation, count, wall * per, (kafka1 - kafka0) * per, (pg1 - pg0) * per,
                    (own_cpu_s() - client0) * per)


async def unit_costs(bootstrap: str, database_url: str, tag: str, scale: float = 1.0
                     ) -> list[UnitCost]:
    [model] = await create_topics(bootstrap, [f"bench-{tag}-cal.unit"], 1)
    topic = model.TOPIC
    tp = TopicPartition(topic, 0)
    n = max(20, int(300 * scale))
    prod = producer(bootstrap)
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"bench-{tag}-cal",
                                enable_auto_commit=False, auto_offset_reset="latest",
                                fetch_max_wait_ms=100)
    costs: list[UnitCost] = []
    await prod.start()
    await consumer.start()
    try:
        for _ in range(20):  # warm the connections and the broker's code paths
            await prod.send_and_wait(topic, b"w" * 200, key=b"k")
        await consumer.getmany(timeout_ms=300)

        async def produce(i: int) -> None:
            await prod.send_and_wait(topic, b"x" * 200, key=b"k")

        async def commit(i: int) -> None:
            await consumer.commit({tp: i + 1})

        async def produce_fetch(i: int) -> None:
            await prod.send_and_wait(topic, b"y" * 200, key=b"k")
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                if any((await consumer.getmany(timeout_ms=1_000)).values()):
                    return

        costs.append(await _measure("Kafka produce, acks=all, 1 record, waited", n, produce))
        costs.append(await _measure("Kafka offset commit", n, commit))
        costs.append(await _measure("Kafka produce + a waiting consumer fetches it", n // 2,
                                    produce_fetch))
    finally:
        await consumer.stop()
        await prod.stop()

    schema = f"bench_{tag}_cal"
    conn = await asyncpg.connect(database_url, timeout=10, server_settings={
        "application_name": f"guardians-{schema}"})  # counted as this run's backend
    await refresh_backends()
    try:
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await conn.execute(f'CREATE TABLE "{schema}".t (id bigserial PRIMARY KEY, v text)')

        async def round_trip(i: int) -> None:
            await conn.fetchval("SELECT 1")

        async def durable(i: int) -> None:
            async with conn.transaction():
                await conn.execute(f'INSERT INTO "{schema}".t (v) VALUES ($1)', "x")

        costs.append(await _measure("PostgreSQL round trip (SELECT 1)", n * 3, round_trip))
        costs.append(await _measure("PostgreSQL BEGIN; INSERT; COMMIT (fsync)", n, durable))
    finally:
        await conn.close()
    return costs
