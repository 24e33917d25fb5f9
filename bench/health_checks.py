"""HTTP checks per second one process guardian sustains against local endpoints, and the CPU
it spends, against a bare asyncio + httpx loop doing the same requests in the same run.

    source .cache/stack.env && .venv/bin/python bench/health_checks.py
        [--instances 4] [--seconds 10] [--concurrency 16]

Why: the process guardian checks every managed service every few seconds; what bounds how
many endpoints one guardian can watch is the CPU one check costs in its own process, so the
question is what its probe path (services/process/adapters/probes.py: a deadline around the
whole exchange, the trace hook, the capped body, then the domain's Gatus-style judgement)
adds to the plain request.

Starts --instances demo app instances (demo/app.py) and, for --seconds each, with
--concurrency checks in flight, GETs their /healthz round-robin:
1. bare: `await client.get(url)` on one shared httpx.AsyncClient (kept-alive connections);
2. probe, shared client: `http_probe(probe, timeout, client)` + `judge_http` with
   `[STATUS] == 200` and `[RESPONSE_TIME] < 300`, on the same kind of shared client: the
   probe path's own overhead;
3. probe, as the guardian calls it: `http_probe(probe, timeout)` with no client, so a new
   connection per check (connection setup is part of what a health check tests);
4. for reference, the same GETs written by hand on asyncio streams (kept alive): what a
   request costs this machine without any HTTP client library.
Reports checks/s, this process's CPU seconds (getrusage: user + system), CPU per check and
the ratios to the bare loop, as a markdown table. The demo instances run on the same
machine and take their share of its cores, equally for every path; they are stopped at
the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.process.adapters.probes import http_probe  # noqa: E402
from services.process.domain.conditions import judge_http, parse_condition  # noqa: E402
from services.runtime.config import HttpProbe  # noqa: E402
from tests.support.ports import free_ports  # noqa: E402

CONDITIONS = ["[STATUS] == 200", "[RESPONSE_TIME] < 300"]
WARMUP_S = 1.0

Check = Callable[[str], Awaitable[bool]]
"""One check of a URL; True when it passed."""


@dataclass
class Run:
    name: str
    seconds: float = 0.0
    cpu_s: float = 0.0
    passed: int = 0
    failed: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def checks(self) -> int:
        return self.passed + self.failed

    @property
    def rate(self) -> float:
        return self.checks / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms_per_check(self) -> float:
        return 1000 * self.cpu_s / self.checks if self.checks else float("nan")

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


# -- demo instances ---------------------------------------------------------------------------


def _wait_listening(proc: subprocess.Popen[bytes], port: int, within_s: float = 15) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"demo on port {port} exited {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"demo on port {port} did not listen within {within_s:g} s")


@contextlib.contextmanager
def demo_instances(n: int) -> Iterator[list[str]]:
    """n demo instances; their /healthz URLs."""
    started: list[tuple[subprocess.Popen[bytes], int]] = []
    try:
        for i in range(n):
            port = free_ports(1)[0]
            argv = [sys.executable, "-m", "demo.app", "--port", str(port),
                    "--version", f"1.0.{i}"]
            started.append((subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL), port))
        for proc, port in started:
            _wait_listening(proc, port)
        yield [f"http://127.0.0.1:{port}/healthz" for _, port in started]
    finally:
        for proc, _ in started:
            proc.terminate()
        for proc, _ in started:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# -- the paths compared -----------------------------------------------------------------------


def bare(client: httpx.AsyncClient) -> Check:
    async def check(url: str) -> bool:
        response = await client.get(url)
        return response.status_code == 200

    return check


class RawHttp:
    """HTTP/1.1 GETs written by hand on asyncio streams, kept alive: the floor of what a
    request costs this machine, to show how much of a check is the HTTP client itself."""

    def __init__(self) -> None:
        self._idle: dict[str, list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]] = {}

    async def check(self, url: str) -> bool:
        parts = httpx.URL(url)
        idle = self._idle.setdefault(url, [])
        reader, writer = idle.pop() if idle else await asyncio.open_connection(
            parts.host, parts.port)
        writer.write(f"GET {parts.path} HTTP/1.1\r\nHost: {parts.host}\r\n\r\n".encode())
        await writer.drain()
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        length = next(int(h.split(":", 1)[1]) for h in head
                      if h.lower().startswith("content-length:"))
        await reader.readexactly(length)
        idle.append((reader, writer))
        return head[0].split()[1] == "200"

    def close(self) -> None:
        for connections in self._idle.values():
            for _, writer in connections:
                writer.close()


def probe_path(timeout: float, client: httpx.AsyncClient | None) -> Check:
    conditions = [parse_condition(c) for c in CONDITIONS]
    probes: dict[str, HttpProbe] = {}

    async def check(url: str) -> bool:
        probe = probes.get(url) or probes.setdefault(url, HttpProbe(url=url))
        status, _, _ = judge_http(conditions, [], await http_probe(probe, timeout, client))
        return status.value == "pass"

    return check


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def drive(name: str, check: Check, urls: Sequence[str], concurrency: int,
                seconds: float) -> Run:
    """`concurrency` workers checking the URLs round-robin until `seconds` have passed."""
    run = Run(name)
    deadline = time.perf_counter() + seconds

    async def worker(offset: int) -> None:
        n = offset
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            ok = await check(urls[n % len(urls)])
            run.latencies_ms.append((time.perf_counter() - started) * 1000)
            run.passed += ok
            run.failed += not ok
            n += 1

    cpu, wall = _cpu_s(), time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    run.seconds, run.cpu_s = time.perf_counter() - wall, _cpu_s() - cpu
    return run


async def measure(urls: Sequence[str], args: argparse.Namespace) -> list[Run]:
    # Room for every worker's connection to every instance: with fewer, the pool closes an
    # idle connection to one instance to open one to the next, and the bare loop would
    # measure connection churn instead of kept-alive requests.
    pool = args.concurrency * len(urls)
    limits = httpx.Limits(max_connections=pool, max_keepalive_connections=pool)
    paths: list[tuple[str, Callable[[httpx.AsyncClient], Check]]] = [
        ("bare asyncio + httpx (shared client)", bare),
        ("http_probe + judge_http (shared client)",
         lambda client: probe_path(args.timeout, client)),
        ("http_probe + judge_http (as the guardian: own client per check)",
         lambda _: probe_path(args.timeout, None)),
    ]
    runs: list[Run] = []
    for name, make in paths:
        async with httpx.AsyncClient(limits=limits, trust_env=False,
                                     timeout=args.timeout) as client:
            runs.append(await warm_and_drive(name, make(client), urls, args))
    raw = RawHttp()
    try:
        runs.append(await warm_and_drive("reference: HTTP/1.1 by hand on asyncio streams",
                                         raw.check, urls, args))
    finally:
        raw.close()
    return runs


async def warm_and_drive(name: str, check: Check, urls: Sequence[str],
                         args: argparse.Namespace) -> Run:
    await drive(name, check, urls, args.concurrency, WARMUP_S)
    return await drive(name, check, urls, args.concurrency, args.seconds)


# -- report -----------------------------------------------------------------------------------


def table(runs: Sequence[Run]) -> str:
    base = runs[0]
    lines = ["| path | checks | checks/s | CPU s (this process) | CPU ms / check | "
             "checks/s vs bare | CPU / check vs bare | p50 ms | p99 ms | failed |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for run in runs:
        lines.append(
            f"| {run.name} | {run.checks} | {run.rate:,.0f} | {run.cpu_s:.2f} | "
            f"{run.cpu_ms_per_check:.3f} | {run.rate / base.rate:.2f}x | "
            f"{run.cpu_ms_per_check / base.cpu_ms_per_check:.2f}x | "
            f"{run.percentile(0.5):.1f} | {run.percentile(0.99):.1f} | {run.failed} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--instances", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0, help="per path")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--timeout", type=float, default=2.0, help="per check")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with demo_instances(args.instances) as urls:
        runs = asyncio.run(measure(urls, args))
    print(f"{args.instances} demo instances (/healthz), {args.concurrency} checks in flight, "
          f"{args.seconds:g} s per path; {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, httpx {httpx.__version__}\n")
    print(table(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
