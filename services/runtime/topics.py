"""Create the product's Kafka topics and their dead-letter topics, idempotently.

The broker runs with `auto.create.topics.enable=false`, so every topic a service produces to
or consumes from must exist first. `stack/stack.sh up` runs this module after Kafka is ready:

    GUARDIANS_KAFKA_BOOTSTRAP=127.0.0.1:9092 python -m services.runtime.topics

Existing topics are left as they are (partitions and configs included); only missing ones are
created, so running it again is harmless.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Iterable
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from schemas.registry import DAY_MS, TopicSpec
from services.runtime.settings import RuntimeSettings

log = logging.getLogger(__name__)

DLQ_RETENTION_MS = 30 * DAY_MS
"""Dead letters are kept long enough for a person to look at them and replay them."""
REPLICATION_FACTOR = 1
"""The local stack is one broker; a multi-broker cluster would create its topics its own way."""


def topic_plan(specs: Iterable[TopicSpec]) -> list[NewTopic]:
    """Each registered topic plus its dead-letter topic (same partitions, 30-day retention)."""
    planned: dict[str, NewTopic] = {}
    for spec in specs:
        for name, retention_ms in ((spec.name, spec.retention_ms), (spec.dlq, DLQ_RETENTION_MS)):
            planned.setdefault(
                name,
                NewTopic(
                    name=name,
                    num_partitions=spec.partitions,
                    replication_factor=REPLICATION_FACTOR,
                    topic_configs={"retention.ms": str(retention_ms)},
                ),
            )
    return list(planned.values())


async def ensure_topics(
    bootstrap: str, specs: Iterable[TopicSpec], *, timeout_ms: int = 30_000
) -> list[str]:
    """Create the topics of `specs` (and their dead-letter topics) that do not exist yet.

    Returns the names created, sorted. A topic created concurrently by someone else counts as
    existing; any other broker error raises.
    """
    plan = topic_plan(specs)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=timeout_ms)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [topic for topic in plan if topic.name not in existing]
        if not missing:
            return []
        response = await admin.create_topics(missing, timeout_ms=timeout_ms)
        created, failures = _created(response.topic_errors)
        if failures:
            raise RuntimeError("could not create topics: " + "; ".join(failures))
        # Producers that start right away would otherwise meet NotLeaderForPartition.
        await _wait_for_leaders(admin, created, timeout_ms / 1000)
    finally:
        await admin.close()
    return sorted(created)


async def _wait_for_leaders(admin: AIOKafkaAdminClient, names: list[str], timeout_s: float
                            ) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    pending = list(names)
    while pending:
        described = await admin.describe_topics(pending)
        pending = [
            t["topic"] for t in described
            if t["error_code"] != 0
            or not t["partitions"]
            or any(p["leader"] < 0 for p in t["partitions"])
        ]
        if pending and asyncio.get_running_loop().time() > deadline:
            raise RuntimeError(f"topics without a leader after {timeout_s} s: {pending[:5]}")
        if pending:
            await asyncio.sleep(0.05)


def _created(topic_errors: list[tuple[Any, ...]]) -> tuple[list[str], list[str]]:
    """Split a CreateTopics response into the names created and readable failures."""
    created: list[str] = []
    failures: list[str] = []
    # Each entry is (topic, error_code[, error_message, ...]) depending on the response version.
    for entry in topic_errors:
        name, code = str(entry[0]), int(entry[1])
        message = entry[2] if len(entry) > 2 and entry[2] else ""
        if code == 0:
            created.append(name)
        elif code != TopicAlreadyExistsError.errno:
            failures.append(f"{name}: {for_code(code).__name__} {message}".rstrip())
    return created, failures


async def _main() -> int:
    # Imported here so ensure_topics stays usable without the product registry.
    from schemas.topics import REGISTRY

    bootstrap = RuntimeSettings().kafka_bootstrap
    specs = REGISTRY.all()
    created = await ensure_topics(bootstrap, specs)
    total = 2 * len(specs)
    if created:
        shown = ", ".join(created[:6]) + (", ..." if len(created) > 6 else "")
        print(f"topics: created {len(created)} of {total} on {bootstrap} ({shown})")
    else:
        print(f"topics: all {total} exist on {bootstrap}")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(asyncio.run(_main()))
