"""The transactional outbox and its relay.

Handlers never publish: they write rows here inside the transaction that records the event
as processed. Once that transaction has committed, the relay publishes those rows straight
from memory (idempotent producer, acks=all) and marks them sent shortly after, off the
critical path. Rows that a crash left unpublished are found by a poller: all of them at
start, then any row still unsent after `stale_after_s`. A crash between publish and mark
re-publishes a row; receivers' dedupe on `ce_id` makes that harmless.
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
_ROWS_PER_INSERT = 1000
"""5 parameters a row: well under PostgreSQL's 65,535 parameters per statement."""
BACKLOG_COUNT_LIMIT = 100_000
"""`backlog` counts at most this many rows, so measuring stays cheap however long the broker
has been away (every alert on the backlog fires long before)."""


@dataclass(frozen=True)
class OutboxMessage:
    topic: str
    key: bytes | None
    value: bytes
    headers: Sequence[tuple[str, bytes]]


@dataclass(frozen=True)
class OutboxRow:
    """A message written to the outbox in a transaction, with its row id."""

    id: int
    message: OutboxMessage
    created: float
    """time.time() when written, for the outbox delay metric."""


async def write(conn: Connection, messages: Sequence[OutboxMessage]) -> list[OutboxRow]:
    """Insert `messages` in order; return them with their row ids."""
    rows: list[OutboxRow] = []
    now = time.time()
    for start in range(0, len(messages), _ROWS_PER_INSERT):
        chunk = messages[start:start + _ROWS_PER_INSERT]
        values = ", ".join(
            f"(${n + 1}, ${n + 2}, ${n + 3}, ${n + 4}::text[], ${n + 5}::bytea[])"
            for n in range(0, 5 * len(chunk), 5)
        )
        params: list[object] = []
        for m in chunk:
            params += [m.topic, m.key, m.value, [h[0] for h in m.headers],
                       [h[1] for h in m.headers]]
        ids = await conn.fetch(
            "INSERT INTO outbox (topic, key, value, header_names, header_values)"  # noqa: S608
            f" VALUES {values} RETURNING id",
            *params,
        )
        # bigserial ids are drawn in VALUES order within one statement.
        rows += [OutboxRow(i, m, now) for i, m in
                 zip(sorted(r["id"] for r in ids), chunk, strict=True)]
    return rows


@dataclass(frozen=True)
class Backlog:
    """Outbox rows not yet marked published. Rows are marked 0.1 s after their publication is
    acknowledged, so a busy service shows a few rows here; a row that waits is one whose
    publication failed (the poller retries it after `stale_after_s`) or a broker that is away."""

    rows: int
    """At most BACKLOG_COUNT_LIMIT."""
    oldest_age_s: float
    """Since the transaction that wrote the oldest of them began; 0 when there are none."""


async def backlog(conn: Connection) -> Backlog:
    """Walk the unsent rows through the partial index `outbox_unsent`, oldest first, at most
    BACKLOG_COUNT_LIMIT of them."""
    row = await conn.fetchrow(
        "SELECT count(*) AS rows,"
        " coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 AS age"
        " FROM (SELECT created_at FROM outbox WHERE sent_at IS NULL ORDER BY id LIMIT $1) unsent",
        BACKLOG_COUNT_LIMIT,
    )
    assert row is not None
    return Backlog(rows=row["rows"], oldest_age_s=max(0.0, row["age"]))


class OutboxRelay:
    """Publishes committed outbox rows: directly after their commit, and by polling for rows
    a crash left behind.

    Direct publication keeps commit order (one queue, one publisher task). The poller runs
    under a transaction-scoped advisory lock, so with several replicas one polls at a time.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        producer: AIOKafkaProducer,
        schema: str,
        poll_interval_s: float,
        stale_after_s: float = 10.0,
        batch: int = 500,
    ) -> None:
        self._pool = pool
        self._producer = producer
        self._lock_id = zlib.crc32(f"guardians-outbox:{schema}".encode())
        self._poll_interval_s = poll_interval_s
        self._stale_after_s = stale_after_s
        self._batch = batch
        self._queue: asyncio.Queue[list[OutboxRow]] = asyncio.Queue()
        self._sent: list[int] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._service = schema

    def publish_committed(self, rows: list[OutboxRow]) -> None:
        """Hand over rows whose transaction has committed (call it only after the commit)."""
        if rows:
            self._queue.put_nowait(rows)

    async def start(self) -> None:
        """Publish what a previous run left unsent, then start the background tasks."""
        while await self.drain_once(stale_after_s=0) > 0:
            pass
        self._tasks = [
            asyncio.create_task(self._publish_loop(), name="outbox-publish"),
            asyncio.create_task(self._mark_loop(), name="outbox-mark"),
            asyncio.create_task(self._poll_loop(), name="outbox-poll"),
        ]

    async def stop(self) -> None:
        """Publish what is queued, record the marks, stop the tasks."""
        await self._queue.join()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self._mark_sent()

    async def _publish_loop(self) -> None:
        while True:
            rows = await self._queue.get()
            taken = 1
            try:
                while not self._queue.empty():  # what queued meanwhile goes in the same flight
                    rows += self._queue.get_nowait()
                    taken += 1
                await self._send([r.message for r in rows])
                self._sent += [r.id for r in rows]
                now = time.time()
                for row in rows:
                    metrics.OUTBOX_PUBLISHED.labels(self._service, row.message.topic).inc()
                    metrics.OUTBOX_DELAY.labels(self._service).observe(now - row.created)
            except asyncio.CancelledError:
                raise
            except Exception:
                # The rows stay unsent in the table: the poller publishes them later.
                log.exception("direct publication failed; the poller will retry")
            finally:
                for _ in range(taken):
                    self._queue.task_done()

    async def _mark_loop(self) -> None:
        while True:
            await asyncio.sleep(0.1)
            try:
                await self._mark_sent()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("marking outbox rows sent failed; retrying")

    async def _mark_sent(self) -> None:
        ids, self._sent = self._sent, []
        if not ids:
            return
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                # A lost mark only re-publishes: no need to wait for the WAL flush.
                await conn.execute("SET LOCAL synchronous_commit = off")
                await conn.execute(
                    "UPDATE outbox SET sent_at = now() WHERE id = ANY($1::bigint[])", ids
                )
        except BaseException:
            self._sent = ids + self._sent
            raise

    async def _poll_loop(self) -> None:
        while True:
            await asyncio.sleep(self._poll_interval_s)
            try:
                while await self.drain_once(stale_after_s=self._stale_after_s) == self._batch:
                    pass
            except asyncio.CancelledError:
                raise
            except Exception:
                # The broker or database is away: keep the rows, try again on the next tick.
                log.exception("outbox poll failed; retrying")

    async def _send(self, messages: Sequence[OutboxMessage]) -> None:
        futures = [
            await self._producer.send(m.topic, value=m.value, key=m.key, headers=list(m.headers))
            for m in messages
        ]
        await asyncio.gather(*futures)

    async def drain_once(self, *, stale_after_s: float) -> int:
        """Publish up to one batch of rows unsent for `stale_after_s`; return how many were
        published, or LOCK_BUSY when another replica's relay holds the lock."""
        async with self._pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", self._lock_id):
                return LOCK_BUSY
            await conn.execute("SET LOCAL synchronous_commit = off")
            rows = await conn.fetch(
                "SELECT id, topic, key, value, header_names, header_values FROM outbox"
                " WHERE sent_at IS NULL AND created_at <= now() - make_interval(secs => $2)"
                " ORDER BY id LIMIT $1",
                self._batch, stale_after_s,
            )
            if not rows:
                return 0
            await self._send([
                OutboxMessage(row["topic"], row["key"], row["value"],
                              list(zip(row["header_names"], row["header_values"], strict=True)))
                for row in rows
            ])
            await conn.execute(
                "UPDATE outbox SET sent_at = now() WHERE id = ANY($1::bigint[])",
                [row["id"] for row in rows],
            )
        for row in rows:
            metrics.OUTBOX_PUBLISHED.labels(self._service, row["topic"]).inc()
        return len(rows)
