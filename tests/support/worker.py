"""A guardian on the runtime for tests: ping in, one state row and one pong out.

Run as a process (`python -m tests.support.worker PREFIX NAME`) so tests can SIGKILL it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from services.runtime import Context, Guardian, RetryLaterError
from services.runtime.settings import RuntimeSettings
from tests.support.events import Order, Ping, TestTopics

DEPENDENCY = "postgresql://tester:hunter2@127.0.0.1:1/down"
"""What `dependency_up` says is down: with a password that must never reach an alert."""


def build(prefix: str, name: str, settings: RuntimeSettings | None = None, *,
          dependency_up: Callable[[], bool] | None = None) -> Guardian:
    """`dependency_up`: asked before each ping; while it says False the handler raises
    `RetryLaterError` (a dependency that is down until the test brings it back)."""
    topics = TestTopics(prefix)
    guardian = Guardian(
        name,
        migrations=Path(__file__).parent / "migrations",
        registry=topics.registry,
        settings=settings,
    )

    outages: dict[int, int] = {}

    @guardian.handles(topics.ping)
    async def answer_ping(event: Ping, ctx: Context) -> None:
        if event.fail:
            raise RuntimeError(f"ping {event.seq} is poison")
        if dependency_up is not None and not dependency_up():
            raise RetryLaterError(f"cannot reach {DEPENDENCY}: connection refused")
        if outages.get(event.seq, 0) < event.unavailable:
            outages[event.seq] = outages.get(event.seq, 0) + 1
            raise RetryLaterError(f"dependency of ping {event.seq} is down")
        await ctx.conn.execute(
            "INSERT INTO items (seq, change_id, pid) VALUES ($1, $2, $3)",
            event.seq, event.change_id, os.getpid(),
        )
        ctx.emit(topics.pong(change_id=event.change_id, seq=event.seq))

    @guardian.handles(topics.order)
    async def obey_order(event: Order, ctx: Context) -> None:
        await ctx.conn.execute(
            "INSERT INTO items (seq, change_id, pid) VALUES ($1, $2, $3)",
            event.seq, event.change_id, os.getpid(),
        )
        ctx.emit(topics.pong(change_id=event.change_id, seq=event.seq))

    return guardian


if __name__ == "__main__":
    build(sys.argv[1], sys.argv[2]).main()
