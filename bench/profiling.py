"""Summarising a cProfile of a runtime hop: self time by library, on-CPU time of the runtime's
steps, and how many socket writes (database and Kafka requests) each event costs.

cProfile sees a coroutine once per resumption, so "cumulative" here is on-CPU time inside a
function (time spent suspended on I/O is not counted), which is what a CPU budget needs.
"""

from __future__ import annotations

import pstats
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CATEGORIES: list[tuple[str, tuple[str, ...]]] = [
    ("idle: epoll wait", ("select.epoll",)),
    ("socket send/recv syscalls", ("_socket.socket", "'socket' objects")),
    ("asyncpg (PostgreSQL driver)", ("asyncpg",)),
    ("aiokafka (Kafka client)", ("aiokafka", "/kafka/")),
    ("pydantic (validation, JSON)", ("pydantic",)),
    ("faststream / fast_depends", ("faststream", "fast_depends")),
    ("opentelemetry (spans)", ("opentelemetry",)),
    ("prometheus_client", ("prometheus_client",)),
    ("logging + json (per-event log line)", ("/logging/", "/json/", "_json", "telemetry.py")),
    ("services/runtime", ("/services/runtime/",)),
    ("schemas (envelope, registry)", ("/schemas/",)),
    ("asyncio event loop", ("/asyncio/", "_asyncio", "selectors.py", "_contextvars")),
    ("uuid / datetime / other stdlib", ("uuid", "datetime", "/python3.")),
]
"""First match wins, on "<file> <function>"; builtins have file "~"."""

KEY_FUNCTIONS: list[tuple[str, str, str]] = [
    ("guardian.py", "process_batch", "Guardian.process_batch (batch transaction, all events)"),
    ("handling.py", "handle", "  RecordHandler.handle (one event)"),
    ("handling.py", "decode", "    decode (envelope + pydantic validation)"),
    ("handling.py", "_claim", "    _claim (INSERT processed_events)"),
    ("handling.py", "_run_handler", "    _run_handler (SAVEPOINT, handler, outbox, RELEASE)"),
    ("handling.py", "emit", "      Context.emit (serialize, envelope)"),
    ("outbox.py", "write", "      outbox.write (executemany INSERT)"),
    ("__init__.py", "info", "    logging.Logger.info (per-event JSON log line)"),
    ("outbox.py", "drain_once", "OutboxRelay.drain_once (SELECT, produce, acks, UPDATE)"),
    ("guardian.py", "flush_offsets", "Guardian.flush_offsets (offset commit)"),
]


@dataclass
class ProfileSummary:
    events: int
    busy_s: float
    idle_s: float
    socket_sends: int
    categories: list[tuple[str, float]]
    functions: list[tuple[str, float, int]]
    """(label, on-CPU cumulative seconds, calls)"""
    top: list[tuple[str, float, int]]

    def as_dict(self) -> dict[str, Any]:
        return {"events": self.events, "busy_s": self.busy_s, "idle_s": self.idle_s,
                "socket_sends": self.socket_sends, "categories": self.categories,
                "functions": self.functions, "top": self.top}


def summarize(path: Path, events: int) -> ProfileSummary:
    raw: Any = pstats.Stats(str(path))
    stats: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = raw.stats
    by_category: dict[str, float] = defaultdict(float)
    sends = 0
    for (filename, _, funcname), (_, ncalls, tottime, _, _) in stats.items():
        where = f"{filename} {funcname}"
        label = next((name for name, needles in CATEGORIES
                      if any(n in where for n in needles)), "other (builtins)")
        by_category[label] += tottime
        if funcname in ("<method 'send' of '_socket.socket' objects>",
                        "<method 'sendmsg' of '_socket.socket' objects>"):
            sends += ncalls
    idle = by_category.pop("idle: epoll wait", 0.0)
    busy = sum(by_category.values())
    functions = []
    for file_suffix, funcname, label in KEY_FUNCTIONS:
        cum, calls = 0.0, 0
        for (filename, _, name), (_, ncalls, _, cumtime, _) in stats.items():
            if name != funcname or not filename.endswith(file_suffix):
                continue
            if file_suffix == "__init__.py" and "/logging/" not in filename:
                continue
            cum, calls = cum + cumtime, calls + ncalls
        functions.append((label, cum, calls))
    top = sorted(
        ((f"{Path(fn).name}:{line} {name}" if fn != "~" else name, tt, nc)
         for (fn, line, name), (_, nc, tt, _, _) in stats.items()
         if "select.epoll" not in name),
        key=lambda row: row[1], reverse=True,
    )[:10]
    categories = sorted(by_category.items(), key=lambda kv: kv[1], reverse=True)
    return ProfileSummary(events, busy, idle, sends, categories, functions, top)
