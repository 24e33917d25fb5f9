"""The transactional outbox and its relay.

Handlers never publish: they write rows here inside the transaction that records the event
as processed. The relay publishes committed rows with an idempotent producer (acks=all) and
marks them sent. A crash between publish and mark re-publishes the row; receivers' dedupe on
`ce_id` makes that harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
from aiokafka import AIOKafkaProducer

from services.runtime import metrics
from services.runtime.db import Connection

log = logging.getLogger(__name__)
LOCK_BUSY = -1


@dataclass(frozen=True)
class OutboxMessage:
    topic: str
    key: bytes | None
    value: bytes
    headers: Sequence[tuple[str, bytes]]


async def write(conn: Connection, messages: Sequence[OutboxMessage]) -> None:
    if not messages:
        return
    await conn.executemany(
        "INSERT INTO outbox (topic, key, value, header_names, header_values)"
        " VALUES ($1, $2, $3, $4, $5)",
        [
            (m.topic, m.key, m.value, [h[0] for h in m.headers], [h[1] for h in m.headers])
            for m in messages
        ],
    )


class OutboxRelay:
    """Publishes committed outbox rows in id order.

    One relay per service publishes at a time (a transaction-scoped advisory lock), so rows
    leave in the order their transactions wrote them even with several replicas.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        producer: AIOKafkaProducer,
        schema: str,
        poll_interval_s: float,
        batch: int = 500,
    ) -> None:
        self._pool = pool
        self._producer = producer
        self._lock_id = zlib.crc32(f"guardians-outbox:{schema}".encode())
        self._poll_interval_s = poll_interval_s
        self._batch = batch
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._service = schema

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        """Stop the loop, then publish whatever is still pending."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while await self.drain_once() > 0:
            pass

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_interval_s)
            self._wake.clear()
            try:
                busy = 0
                while (published := await self.drain_once()) != 0:
                    if 0 < published < self._batch:
                        break  # drained: no extra, empty transaction
                    if published == LOCK_BUSY:
                        # Another replica is publishing: our rows follow right after its
                        # batch; if it stays busy, the next poll picks them up.
                        busy += 1
                        if busy > 50:
                            break
                        await asyncio.sleep(0.005)
            except asyncio.CancelledError:
                raise
            except Exception:
                # The broker or database is away: keep the rows, try again on the next tick.
                log.exception("outbox relay failed; retrying")
                await asyncio.sleep(self._poll_interval_s)

    async def drain_once(self) -> int:
        """Publish up to one batch of unsent rows; return how many were published, or
        LOCK_BUSY when another replica's relay holds the lock."""
        async with self._pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", self._lock_id):
                return LOCK_BUSY
            # Losing a "sent" mark in a database crash only re-publishes rows (receivers
            # dedupe on ce_id), so this transaction need not wait for its WAL flush.
            await conn.execute("SET LOCAL synchronous_commit = off")
            rows = await conn.fetch(
                "SELECT id, topic, key, value, header_names, header_values, created_at"
                " FROM outbox WHERE sent_at IS NULL ORDER BY id LIMIT $1",
                self._batch,
            )
            if not rows:
                return 0
            futures = [
                await self._producer.send(
                    row["topic"],
                    value=row["value"],
                    key=row["key"],
                    headers=list(zip(row["header_names"], row["header_values"], strict=True)),
                )
                for row in rows
            ]
            await asyncio.gather(*futures)
            await conn.execute(
                "UPDATE outbox SET sent_at = now() WHERE id = ANY($1::bigint[])",
                [row["id"] for row in rows],
            )
        now = time.time()
        for row in rows:
            metrics.OUTBOX_PUBLISHED.labels(self._service, row["topic"]).inc()
            metrics.OUTBOX_DELAY.labels(self._service).observe(
                max(0.0, now - row["created_at"].timestamp())
            )
        return len(rows)

    async def pending(self) -> int:
        async with self._pool.acquire() as conn:
            count: int = await conn.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL")
            return count
