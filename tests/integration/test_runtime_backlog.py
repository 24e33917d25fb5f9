"""What waits, on the real broker and database, as the service's /metrics shows it: consumer lag
grows while a batch is held and falls to 0 once the guardian has caught up; the outbox backlog
reads 0 when everything is published, and shows a row a crash left behind until the poller
publishes it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from services.runtime.settings import RuntimeSettings
from services.runtime.topics import ensure_topics
from tests.integration.runtime_helpers import Run, wait_for_items
from tests.support import worker
from tests.support.kafka import send_events
from tests.support.ports import free_ports

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(port: int, service: str) -> Samples:
    """The service's samples on its /metrics: (name, labels without `service`) -> value."""
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(f"http://127.0.0.1:{port}/metrics")
    response.raise_for_status()
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.labels.get("service") == service:
                labels = frozenset((k, v) for k, v in sample.labels.items() if k != "service")
                samples[(sample.name, labels)] = sample.value
    return samples


def total(samples: Samples, name: str) -> float | None:
    values = [value for (metric, _), value in samples.items() if metric == name]
    return sum(values) if values else None


async def scrape_until(port: int, service: str, ready: Callable[[Samples], bool],
                       what: str, timeout_s: float = 30) -> Samples:
    deadline = time.monotonic() + timeout_s
    while True:
        samples = await scrape(port, service)
        if ready(samples):
            return samples
        assert time.monotonic() < deadline, f"{what} within {timeout_s} s; last: {samples}"
        await asyncio.sleep(0.2)


async def test_lag_grows_while_a_batch_is_held_and_falls_to_zero_once_caught_up(
    bootstrap: str, database_url: str
) -> None:
    run = Run.new()
    await ensure_topics(bootstrap, run.topics.registry.all())
    [port] = free_ports(1)
    dependency = {"up": False}
    settings = RuntimeSettings(http_port=port, backlog_interval_s=0.2,
                               dependency_alert_after_seconds=3600)
    guardian = worker.build(run.prefix, run.name, settings,
                            dependency_up=lambda: dependency["up"])
    events = [run.topics.ping(change_id=f"lag-{i}", seq=i) for i in range(30)]
    partitions = run.topics.registry.of(run.topics.ping).partitions
    await guardian.start()
    try:
        # The handler's dependency is down: the first batch is held, nothing is committed.
        await send_events(bootstrap, run.topics.registry, events)
        held = await scrape_until(
            port, run.name, lambda s: total(s, "guardians_consumer_lag") == len(events),
            "the lag did not reach the 30 events sent")
        ping_series = {dict(labels)["partition"] for (name, labels) in held
                       if name == "guardians_consumer_lag"
                       and dict(labels)["topic"] == run.topics.ping.TOPIC}
        assert ping_series == {str(p) for p in range(partitions)}, "a series per partition"

        dependency["up"] = True
        assert len(await wait_for_items(database_url, run.name, len(events), 30)) == len(events)
        caught_up = await scrape_until(
            port, run.name,
            lambda s: total(s, "guardians_consumer_lag") == 0
            and total(s, "guardians_outbox_backlog") == 0,
            "the lag and the outbox backlog did not fall to 0")
        assert total(caught_up, "guardians_outbox_oldest_unpublished_seconds") == 0
        assert total(caught_up, "guardians_outbox_published_total") == len(events)
    finally:
        await guardian.stop()
    left = [s for family in REGISTRY.collect() if family.name == "guardians_consumer_lag"
            for s in family.samples if s.labels["service"] == run.name]
    assert left == [], "a stopped guardian owns no partition"


async def test_an_outbox_row_left_unpublished_shows_until_the_poller_publishes_it(
    bootstrap: str,
) -> None:
    run = Run.new()
    await ensure_topics(bootstrap, run.topics.registry.all())
    [port] = free_ports(1)
    # The poller only takes rows unsent for an hour: the row below waits for the test.
    settings = RuntimeSettings(http_port=port, backlog_interval_s=0.2,
                               outbox_stale_after_s=3600)
    guardian = worker.build(run.prefix, run.name, settings)
    await guardian.start()
    try:
        assert guardian.pool is not None and guardian.relay is not None
        await scrape_until(port, run.name, lambda s: total(s, "guardians_outbox_backlog") == 0,
                           "an empty outbox did not read 0")
        async with guardian.pool.acquire() as conn:
            # As a crash between commit and publication leaves it, two minutes ago.
            await conn.execute(
                "INSERT INTO outbox (topic, value, header_names, header_values, created_at)"
                " VALUES ($1, 'left behind', '{}', '{}', now() - interval '2 minutes')",
                run.topics.pong.TOPIC,
            )
        waiting = await scrape_until(
            port, run.name, lambda s: total(s, "guardians_outbox_backlog") == 1,
            "the row left behind did not show")
        assert (total(waiting, "guardians_outbox_oldest_unpublished_seconds") or 0) >= 120
        while await guardian.relay.drain_once(stale_after_s=0) != 1:  # busy: its own poll
            await asyncio.sleep(0.1)
        published = await scrape_until(
            port, run.name, lambda s: total(s, "guardians_outbox_backlog") == 0,
            "the published row still showed")
        assert total(published, "guardians_outbox_oldest_unpublished_seconds") == 0
    finally:
        await guardian.stop()
