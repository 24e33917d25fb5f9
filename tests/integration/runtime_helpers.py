"""Shared pieces of the runtime's integration tests: workers as processes, state queries."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from tests.support.events import TestTopics
from tests.support.kafka import Received, read_topic

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Run:
    """One test's own topics and service schema."""

    prefix: str
    name: str
    topics: TestTopics

    @classmethod
    def new(cls) -> Run:
        tag = uuid.uuid4().hex[:10]
        return cls(prefix=f"rt-{tag}", name=f"rt_{tag}", topics=TestTopics(f"rt-{tag}"))


def start_worker(run: Run, log_path: Path, **env: str) -> subprocess.Popen[bytes]:
    environment = {**os.environ, "GUARDIANS_HTTP_PORT": "0", "PYTHONPATH": str(ROOT), **env}
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.support.worker", run.prefix, run.name],
            cwd=ROOT, env=environment, stdout=log, stderr=log,
        )


def kill(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    proc.send_signal(sig)
    proc.wait(timeout=60)


async def item_counts(database_url: str, schema: str) -> Counter[int]:
    conn = await asyncpg.connect(database_url)
    try:
        exists = await conn.fetchval("SELECT to_regclass($1)", f"{schema}.items")
        if exists is None:
            return Counter()
        rows = await conn.fetch(f'SELECT seq FROM "{schema}".items')
        return Counter(r["seq"] for r in rows)
    finally:
        await conn.close()


async def wait_for_items(database_url: str, schema: str, count: int, timeout_s: float
                         ) -> Counter[int]:
    deadline = time.monotonic() + timeout_s
    counts: Counter[int] = Counter()
    while time.monotonic() < deadline:
        counts = await item_counts(database_url, schema)
        if len(counts) >= count:
            return counts
        await asyncio.sleep(0.5)
    return counts


async def distinct_outputs(bootstrap: str, topic: str, count: int, timeout_s: float
                           ) -> tuple[dict[str, Received], int]:
    """Output events by ce_id, and how many raw copies were re-publications of one ce_id."""
    received = await read_topic(bootstrap, topic, until_count=count, timeout_s=timeout_s)
    by_id: dict[str, Received] = {}
    for message in received:
        by_id.setdefault(message.headers["ce_id"], message)
    return by_id, len(received) - len(by_id)


async def rows_by_pid(database_url: str, schema: str) -> dict[int, int]:
    """How many state rows each worker process wrote."""
    conn = await asyncpg.connect(database_url)
    try:
        if await conn.fetchval("SELECT to_regclass($1)", f"{schema}.items") is None:
            return {}
        rows = await conn.fetch(f'SELECT pid, count(*) AS n FROM "{schema}".items GROUP BY pid')
    finally:
        await conn.close()
    return {r["pid"]: r["n"] for r in rows}


async def wait_until_worker_wrote(
    database_url: str, schema: str, pid: int, rows: int, timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (await rows_by_pid(database_url, schema)).get(pid, 0) >= rows:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"worker {pid} wrote fewer than {rows} rows in {timeout_s} s")
