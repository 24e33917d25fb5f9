"""A guardian process: the wiring every service gets without writing it again.

    guardian = Guardian("deploy")

    @guardian.handles(MigrationApproved)
    async def start_rollout(event: MigrationApproved, ctx: Context) -> None:
        ...  # state changes on ctx.conn, ctx.emit(DeployStageChanged(...))

    guardian.main()

Consumption runs on faststream's KafkaBroker (aiokafka) with one batch subscriber for all the
service's topics in one consumer group. Offsets are committed explicitly, per partition, and
only after the transaction holding the batch's effects has committed (AckPolicy.MANUAL:
faststream's default commits before the handler runs, which loses events on a crash).
What still waits (consumer lag, unpublished outbox rows) is measured every few seconds for
/metrics (services/runtime/backlog.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.structs import ConsumerRecord, TopicPartition
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage
from opentelemetry import trace

from schemas.base import Event
from schemas.events.ops import OpsAlert
from schemas.registry import Registry
from services.runtime import db, metrics, outbox
from services.runtime.alerts import DependencyOutage, alert_message, redact
from services.runtime.backlog import BacklogWatch
from services.runtime.handling import (
    Context,
    FastPathError,
    Handler,
    RecordHandler,
    RetryLaterError,
    Route,
)
from services.runtime.http import BUILT_IN_PATHS, HealthServer
from services.runtime.http import Route as HttpRoute
from services.runtime.outbox import OutboxRelay, OutboxRow
from services.runtime.settings import RuntimeSettings
from services.runtime.telemetry import configure_logging, configure_tracing

log = logging.getLogger(__name__)
E = TypeVar("E", bound=Event)
HOUSEKEEPING_INTERVAL_S = 600.0
SHUTDOWN_FLUSH_S = 10.0
ALERT_WRITE_TIMEOUT_S = 10.0
"""Bound on writing a dependency-down alert, so a hung database cannot hold the retry loop."""
Records = tuple[ConsumerRecord[bytes, bytes], ...]


def _product_registry() -> Registry:
    from schemas.topics import REGISTRY

    registry: Registry = REGISTRY
    return registry


class _CommitOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Flush committed-to-database offsets before partitions move to another replica."""

    def __init__(self, guardian: Guardian) -> None:
        self._guardian = guardian

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._guardian.flush_offsets()

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info("partitions assigned", extra={"partitions": [str(tp) for tp in assigned]})


class Guardian:
    def __init__(
        self,
        name: str,
        *,
        migrations: Path | None = None,
        registry: Registry | None = None,
        settings: RuntimeSettings | None = None,
    ) -> None:
        self.name = name
        self.schema = db.schema_name(name)
        self.settings = settings or RuntimeSettings()
        self.group_id = self.settings.consumer_group or f"guardians-{name}"
        self._registry = registry
        self._migrations = migrations
        self._routes: dict[str, Route[Any]] = {}
        self._periodic: list[tuple[float, Callable[[Context], Awaitable[None]]]] = []
        self._background: list[Callable[[], Awaitable[None]]] = []
        self._http_routes: dict[str, HttpRoute] = {}
        self.pool: asyncpg.Pool | None = None
        self.relay: OutboxRelay | None = None
        self._producer: AIOKafkaProducer | None = None
        self._broker: KafkaBroker | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._subscriber: Any = None
        self._handler: RecordHandler | None = None
        self._http: HealthServer | None = None
        self._pending_offsets: dict[TopicPartition, int] = {}
        self._batch_lock = asyncio.Lock()
        self._stopping = False
        self._stop_requested = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._backlog_watch: asyncio.Task[None] | None = None
        self._last_commit = 0.0
        self._outage = DependencyOutage(name, self.settings.dependency_alert_after_seconds)

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = _product_registry()
        return self._registry

    # -- declaring what the service hears -------------------------------------------------

    def handles(self, model: type[E]) -> Callable[[Handler[E]], Handler[E]]:
        """Register `handler` for `model`'s topic (one handler per topic)."""

        def register(handler: Handler[E]) -> Handler[E]:
            spec = self.registry.of(model)
            if spec.name in self._routes:
                raise ValueError(f"{self.name}: {spec.name} already has a handler")
            self._routes[spec.name] = Route(spec, handler)
            return handler

        return register

    def every(
        self, seconds: float
    ) -> Callable[[Callable[[Context], Awaitable[None]]], Callable[[Context], Awaitable[None]]]:
        """Run `task(ctx)` periodically in its own transaction (durable timers, sweeps)."""

        def register(
            task: Callable[[Context], Awaitable[None]],
        ) -> Callable[[Context], Awaitable[None]]:
            self._periodic.append((seconds, task))
            return task

        return register

    def runs(self, task: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        """Run `task()` for the life of the process, after start-up, outside any transaction
        (a driver of durable state machines that calls the outside world and opens its own
        `transaction()`s). It is cancelled at stop; if it raises, it is logged and started
        again after a second, so one bad iteration never stops the service."""
        self._background.append(task)
        return task

    def serves(self, path: str) -> Callable[[HttpRoute], HttpRoute]:
        """Serve `handler(request)` for GET `path` on the service's HTTP port, beside
        /metrics, /healthz and /readyz (a page, a JSON snapshot, a server-sent-events
        stream). Exact paths only; the built-in ones cannot be replaced."""

        def register(handler: HttpRoute) -> HttpRoute:
            if path in self._http_routes or path in BUILT_IN_PATHS:
                raise ValueError(f"{self.name}: {path} is already served")
            self._http_routes[path] = handler
            return handler

        return register

    @property
    def topics(self) -> list[str]:
        return sorted(self._routes)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        s = self.settings
        self.pool = await db.create_pool(
            s.database_url.get_secret_value(), self.schema, s.db_pool_size
        )
        found = db.discover("runtime", db.RUNTIME_MIGRATIONS)
        if self._migrations is not None:
            found += db.discover(self.name, self._migrations)
        await db.migrate(self.pool, self.schema, found)

        # Idempotent producer with acks=all: no loss or duplicates from producer retries.
        # linger 0 because latency per hop matters more than batching at our rates; under
        # load, records queue while a request is in flight and are batched anyway.
        self._producer = AIOKafkaProducer(
            bootstrap_servers=s.kafka_bootstrap,
            client_id=f"guardians-{self.name}-relay",
            acks="all",
            enable_idempotence=True,
            linger_ms=0,
            request_timeout_ms=15_000,
        )
        await self._producer.start()
        self.relay = OutboxRelay(self.pool, self._producer, self.schema,
                                 s.outbox_poll_interval_s, s.outbox_stale_after_s)
        await self.relay.start()
        self._handler = RecordHandler(
            self.name, self.registry, self._routes, s.trusted, s.signing,
            s.handler_max_attempts, s.handler_retry_backoff_s,
        )
        if self._routes:
            await self._start_consumer()
        for seconds, task in [*self._periodic, (HOUSEKEEPING_INTERVAL_S, self._housekeeping)]:
            self._tasks.append(asyncio.create_task(self._every(seconds, task)))
        for background in self._background:
            self._tasks.append(asyncio.create_task(self._keep_running(background)))
        self._backlog_watch = asyncio.create_task(self._watch_backlogs())
        self._http = HealthServer(s.http_host, s.port_for(self.name), self.readiness,
                                  self._http_routes)
        await self._http.start()
        metrics.READY.labels(self.name).set(1)
        log.info("started", extra={"topics": self.topics, "group_id": self.group_id,
                                   "http_port": self._http.port})

    async def _start_consumer(self) -> None:
        s = self.settings
        self._broker = KafkaBroker(
            s.kafka_bootstrap,
            client_id=f"guardians-{self.name}",
            logger=logging.getLogger("faststream"),
            log_level=logging.DEBUG,  # we log one line per event ourselves
        )
        subscriber = self._broker.subscriber(
            *self.topics,
            group_id=self.group_id,
            batch=True,
            max_records=s.max_batch,
            # Short: faststream sleeps this long again after an empty poll, so it bounds
            # the idle-to-first-event latency; a poll returns at once when records wait.
            batch_timeout_ms=5,
            fetch_max_wait_ms=100,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.MANUAL,
            session_timeout_ms=s.session_timeout_ms,
            heartbeat_interval_ms=1_000,
            listener=_CommitOnRevoke(self),
            parser=self._parse,
            decoder=self._decode,
        )
        subscriber(self._on_batch)
        self._subscriber = subscriber
        await self._broker.start()

    async def _parse(self, records: Records) -> KafkaMessage:
        # Our own parser: faststream's decodes every header as UTF-8 and fails the whole
        # batch on one bad header, which would skip it silently. We validate per record.
        return KafkaMessage(
            body=b"", headers={}, raw_message=records, consumer=self._subscriber.consumer
        )

    async def _decode(self, message: KafkaMessage) -> None:
        return None

    async def _on_batch(self, message: KafkaMessage) -> None:
        records: Records = message.raw_message
        consumer: AIOKafkaConsumer = self._subscriber.consumer
        self._consumer = consumer
        try:
            await self.process_batch(records)
        except Exception:
            # Never let the position move past events whose effects did not commit.
            log.exception("batch failed; rewinding to its first event")
            first: dict[TopicPartition, int] = {}
            for record in records:
                tp = TopicPartition(record.topic, record.partition)
                first[tp] = min(first.get(tp, record.offset), record.offset)
            for tp, offset in first.items():
                with contextlib.suppress(IllegalStateError):
                    consumer.seek(tp, offset)
            await asyncio.sleep(1)

    async def process_batch(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        """Handle a batch in one transaction, then let the relay and the committer go."""
        if not records:
            return
        assert self.pool is not None and self._handler is not None and self.relay is not None
        async with self._batch_lock:
            if self._stopping:
                return  # not committed: re-delivered after restart
            started = time.perf_counter()
            retries = 0
            while True:
                # After an outage people were told about: its resolved notice commits with
                # the batch that went through, or not at all.
                resolved = self._outage.resolved()
                notices = [alert_message(resolved, self.name)] if resolved else []
                try:
                    written: list[OutboxRow] = []
                    async with self.pool.acquire() as conn:
                        try:
                            async with conn.transaction():
                                await self._handler.handle_batch(conn, records, written)
                                written += await outbox.write(conn, notices)
                        except FastPathError as reason:
                            # Rolled back: replay event by event with savepoints, retries
                            # and dead letters, so one bad event costs only itself.
                            log.info("batch replayed event by event: %s", reason)
                            written = []
                            async with conn.transaction():
                                for record in records:
                                    await self._handler.handle(conn, record, written)
                                written += await outbox.write(conn, notices)
                    break
                except RetryLaterError as exc:
                    # A dependency of the handler is down: nothing committed; wait, retry.
                    retries += 1
                    metrics.RETRY_LATER.labels(self.name).inc()
                    delay = min(30.0, 0.5 * 2 ** min(retries, 6))
                    log.warning("handler needs a dependency that is down (%s); batch retried "
                                "in %.1f s", redact(str(exc)), delay)
                    await self._held(exc, len(records))
                    if await self._stop_requested_within(delay):
                        return  # nothing committed: re-delivered after restart
                except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
                        asyncpg.exceptions.SerializationError,
                        asyncpg.exceptions.DeadlockDetectedError) as exc:
                    # Infrastructure, not the event: nothing committed, retry the batch.
                    log.warning("batch transaction failed, retrying: %s", exc)
                    if await self._stop_requested_within(0.5):
                        return
            if resolved is not None:
                log.info("the dependency is back; batch went through after %d retries",
                         self._outage.retries)
            self._outage.recovered()
            metrics.BATCH_SECONDS.labels(self.name).observe(time.perf_counter() - started)
            self.relay.publish_committed(written)
            for record in records:
                tp = TopicPartition(record.topic, record.partition)
                self._pending_offsets[tp] = max(
                    self._pending_offsets.get(tp, 0), record.offset + 1
                )
        if self._commit_due():
            await self.flush_offsets()

    def _commit_due(self) -> bool:
        interval = self.settings.commit_interval_ms / 1000
        return interval == 0 or time.monotonic() - self._last_commit >= interval

    async def _held(self, error: RetryLaterError, held: int) -> None:
        """Count a retry of the held batch; raise the outage's alert once it is due. Never
        raises: whatever happens here, the batch is retried."""
        try:
            alert = self._outage.retrying(error, now=time.monotonic(), held=held)
        except Exception:
            log.exception("could not make the dependency-down alert")
            return
        if alert is not None and await self._raise_alert(alert):
            self._outage.fired()

    async def _raise_alert(self, alert: OpsAlert) -> bool:
        """Write `alert` to the outbox in a transaction of its own (the batch's rolled back);
        False when that fails too (the service's own database down): the caller carries on
        retrying the batch and tries the alert again at the next retry."""
        try:
            async with asyncio.timeout(ALERT_WRITE_TIMEOUT_S):
                async with self.transaction() as ctx:
                    ctx.emitted.append(alert_message(alert, self.name))
        except Exception as exc:
            log.warning("could not raise the %s alert (%s: %s); retried with the batch",
                        alert.dedup_key, type(exc).__name__, redact(str(exc)))
            return False
        log.warning("alert raised: %s", alert.summary, extra={"dedup_key": alert.dedup_key})
        return True

    async def _stop_requested_within(self, seconds: float) -> bool:
        """Wait `seconds` unless a stop is requested first; True when it was."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop_requested.wait(), seconds)
        return self._stop_requested.is_set()

    async def flush_offsets(self) -> None:
        """Commit the offsets of batches whose transactions have committed."""
        consumer = self._consumer
        if consumer is None or not self._pending_offsets:
            return
        offsets, self._pending_offsets = self._pending_offsets, {}
        self._last_commit = time.monotonic()
        try:
            await consumer.commit(offsets)
            metrics.OFFSET_COMMITS.labels(self.name, "ok").inc()
        except (CommitFailedError, IllegalStateError, KafkaError) as exc:
            # Lost the partitions: the new owner re-reads these events and the dedupe
            # table makes that harmless.
            metrics.OFFSET_COMMITS.labels(self.name, "failed").inc()
            log.warning("offset commit failed: %s", exc)

    async def _watch_backlogs(self) -> None:
        """Measure what waits, now and every `backlog_interval_s`, until stopped. Offsets a
        quiet consumer still holds back (commit_interval_ms > 0) are committed first: they
        would otherwise wait for the next batch, and an idle service would never read 0."""
        assert self.pool is not None
        watch = BacklogWatch(self.name, self.pool)
        try:
            while not self._stopping:
                try:
                    if self._pending_offsets and self._commit_due():
                        await self.flush_offsets()
                    subscriber = self._subscriber
                    await watch.sample(None if subscriber is None else subscriber.consumer)
                except Exception:  # never let the gauges die with one bad round
                    log.exception("measuring the backlogs failed")
                await asyncio.sleep(self.settings.backlog_interval_s)
        finally:
            watch.gauges.clear()

    async def _every(self, seconds: float, task: Callable[[Context], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                async with self.transaction() as ctx:
                    await task(ctx)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("periodic task %s failed", task.__name__)

    async def _keep_running(self, task: Callable[[], Awaitable[None]]) -> None:
        while not self._stopping:
            try:
                await task()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("background task %s failed; restarting it", task.__name__)
            await asyncio.sleep(1.0)

    async def _housekeeping(self, ctx: Context) -> None:
        """Keep the delivery tables bounded."""
        s = self.settings
        await ctx.conn.execute(
            "DELETE FROM outbox WHERE sent_at < now() - make_interval(secs => $1)",
            s.outbox_retention_hours * 3600,
        )
        await ctx.conn.execute(
            "DELETE FROM processed_events WHERE processed_at < now() - make_interval(secs => $1)",
            s.dedupe_retention_days * 86400,
        )

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Context]:
        """A transaction outside event handling (timers, CLI-driven actions) that can emit."""
        assert self.pool is not None and self.relay is not None
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                ctx = Context(conn, self.name, self.registry, self.settings.signing)
                yield ctx
                written = await outbox.write(conn, ctx.emitted)
            self.relay.publish_committed(written)

    async def readiness(self) -> dict[str, bool]:
        checks = {"consumer": self._broker is not None or not self._routes}
        try:
            assert self.pool is not None
            async with self.pool.acquire(timeout=2) as conn:
                checks["database"] = await conn.fetchval("SELECT true") is True
        except Exception:
            checks["database"] = False
        checks["producer"] = self._producer is not None and not self._stopping
        return checks

    async def stop(self) -> None:
        """Graceful: finish the batch in flight, commit its offsets, flush the outbox."""
        metrics.READY.labels(self.name).set(0)
        self._stop_requested.set()  # a batch waiting on a retry gives up its turn
        async with self._batch_lock:
            self._stopping = True
        if self._backlog_watch is not None:  # before the consumer it asks goes away
            self._backlog_watch.cancel()
            await asyncio.wait([self._backlog_watch], timeout=SHUTDOWN_FLUSH_S)
        await self.flush_offsets()
        if self._broker is not None:
            await self._broker.stop()
        for task in self._tasks:
            task.cancel()
        if self._tasks:  # let them leave their transactions before the pool closes
            await asyncio.wait(self._tasks, timeout=SHUTDOWN_FLUSH_S)
        if self.relay is not None:
            try:  # bounded: a broker that is gone must not hold the process forever
                await asyncio.wait_for(self.relay.stop(), SHUTDOWN_FLUSH_S)
            except Exception as exc:
                log.warning("outbox not fully flushed at stop (%s); rows are kept and "
                            "published by the next start", exc)
        if self._producer is not None:
            await self._producer.stop()
        if self._http is not None:
            await self._http.stop()
        if self.pool is not None:
            await self.pool.close()
        log.info("stopped")

    async def serve(self) -> None:
        """Run until SIGTERM or SIGINT."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await self.start()
        await stop.wait()
        await self.stop()

    def main(self) -> None:
        """The entry point of `python -m services.<name>`."""
        configure_logging(self.name, self.settings.log_level)
        provider = configure_tracing(self.name, self.settings.trace_file)
        if provider is not None:
            trace.set_tracer_provider(provider)
        asyncio.run(self.serve())
