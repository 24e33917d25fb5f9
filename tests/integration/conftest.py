from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient

TEST_TOPIC_PREFIXES = ("rt-",)
"""Topics the runtime tests create per test; deleted after the session so the broker's
partition count (and with it its restart time) does not grow run after run."""


@pytest.fixture(scope="session", autouse=True)
async def delete_test_topics() -> AsyncIterator[None]:
    yield
    bootstrap = os.environ.get("GUARDIANS_KAFKA_BOOTSTRAP")
    if not bootstrap:
        return
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        doomed = [t for t in await admin.list_topics() if t.startswith(TEST_TOPIC_PREFIXES)]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()
