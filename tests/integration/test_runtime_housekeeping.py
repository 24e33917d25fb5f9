"""The delivery tables stay bounded: old published outbox rows and old event ids go."""

from __future__ import annotations

import pytest

from services.runtime.settings import RuntimeSettings
from services.runtime.topics import ensure_topics
from tests.integration.runtime_helpers import Run
from tests.support import worker

pytestmark = pytest.mark.integration


async def test_housekeeping_prunes_only_what_is_past_its_retention(bootstrap: str) -> None:
    run = Run.new()
    await ensure_topics(bootstrap, run.topics.registry.all())
    guardian = worker.build(run.prefix, run.name, RuntimeSettings(http_port=0))
    await guardian.start()
    try:
        assert guardian.pool is not None
        async with guardian.pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO outbox (topic, value, header_names, header_values, sent_at) VALUES"
                " ($1, 'old', '{}', '{}', now() - interval '25 hours'),"
                " ($1, 'recent', '{}', '{}', now() - interval '1 hour'),"
                " ($1, 'unsent-old', '{}', '{}', NULL)",
                run.topics.pong.TOPIC,
            )
            await conn.execute("UPDATE outbox SET created_at = now() - interval '40 days'")
            await conn.execute(
                "INSERT INTO processed_events (event_id, topic, kafka_partition, kafka_offset,"
                " outcome, processed_at) VALUES"
                " ('old', 't', 0, 0, 'handled', now() - interval '31 days'),"
                " ('recent', 't', 0, 1, 'handled', now() - interval '29 days')"
            )
        async with guardian.transaction() as ctx:
            await guardian._housekeeping(ctx)
        async with guardian.pool.acquire() as conn:
            outbox = {r["value"] for r in await conn.fetch("SELECT value FROM outbox")}
            seen = {
                r["event_id"] for r in await conn.fetch("SELECT event_id FROM processed_events")
            }
    finally:
        await guardian.stop()
    assert outbox == {b"recent", b"unsent-old"}, "never delete what was not published"
    assert seen == {"recent"}
