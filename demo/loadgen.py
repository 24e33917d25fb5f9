"""Steady open-loop traffic for the demo application, like Flagger's load tester.

    python -m demo.loadgen --url http://127.0.0.1:8080/ --rate 50 [--duration 30]
        [--concurrency 64] [--timeout 5]

A canary analysis needs requests to judge, and a traffic-split check needs to know who answered.
Requests start on a fixed schedule (request i at start + i/rate) whatever the previous ones do:
a slow or failing version does not slow the generator down, as it would a closed loop, and hide
its own latency. A request that would exceed the concurrency cap is counted as dropped, never
queued. At the end, or on SIGTERM / SIGINT, a JSON summary goes to stdout: requests sent, by
status code, by `X-Demo-Version`, errors (no response: refused, reset, timed out), dropped,
and latency p50 / p95.

From Python: `report = await generate(url, rate, duration)`; `report.share("2.0.0")`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import signal
import ssl
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

DEFAULT_CONCURRENCY = 64
DEFAULT_TIMEOUT_S = 5.0
VERSION_HEADER = "x-demo-version"


@dataclass
class LoadReport:
    """What a run sent and what came back."""

    sent: int = 0
    """Requests started (a dropped one is not sent)."""
    by_status: Counter[int] = field(default_factory=Counter)
    by_version: Counter[str] = field(default_factory=Counter)
    """Responses by their X-Demo-Version header (a response without one, e.g. nginx's own 502,
    is in by_status only)."""
    errors: int = 0
    """Requests that got no response: connection refused or reset, timed out."""
    dropped: int = 0
    """Requests due while `concurrency` others were still in flight, so not sent."""
    duration_s: float = 0.0
    latencies_s: list[float] = field(default_factory=list, repr=False)
    """Of the requests that got a response."""

    @property
    def answered(self) -> int:
        return sum(self.by_status.values())

    def share(self, version: str) -> float:
        """The fraction of versioned responses that `version` served (0.0 when none came)."""
        total = sum(self.by_version.values())
        return self.by_version[version] / total if total else 0.0

    def latency_s(self, quantile: float) -> float | None:
        """Nearest-rank quantile of the response latencies; None without responses."""
        if not self.latencies_s:
            return None
        ordered = sorted(self.latencies_s)
        return ordered[max(0, math.ceil(quantile * len(ordered)) - 1)]

    def summary(self) -> dict[str, object]:
        def ms(quantile: float) -> float | None:
            value = self.latency_s(quantile)
            return None if value is None else round(value * 1000, 2)

        return {
            "sent": self.sent,
            "answered": self.answered,
            "by_status": {str(code): n for code, n in sorted(self.by_status.items())},
            "by_version": dict(sorted(self.by_version.items())),
            "errors": self.errors,
            "dropped": self.dropped,
            "duration_s": round(self.duration_s, 3),
            "latency_ms": {"p50": ms(0.5), "p95": ms(0.95)},
        }


async def _request(client: httpx.AsyncClient, url: str, report: LoadReport) -> None:
    report.sent += 1
    started = time.perf_counter()
    try:
        response = await client.get(url)
    except (httpx.HTTPError, OSError):
        report.errors += 1
        return
    report.latencies_s.append(time.perf_counter() - started)
    report.by_status[response.status_code] += 1
    version = response.headers.get(VERSION_HEADER)
    if version:
        report.by_version[version] += 1


async def _until(stop: asyncio.Event, delay_s: float) -> None:
    """Sleep `delay_s`, or less if `stop` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), delay_s)


class _Lanes:
    """Up to `size` clients of one kept-alive connection each, made as needed.

    One pooled client of `size` connections would do the same job, but httpcore's pool scans
    every connection for every queued request: once the generator falls behind, the scans
    grow with the backlog and it never catches up (200 requests/s collapsed on two cores).
    A lane is a client with a single connection, so sending costs the same at any load.
    """

    def __init__(self, size: int, timeout_s: float) -> None:
        self._size = size
        self._timeout_s = timeout_s
        self._ssl = ssl.create_default_context()  # one, not one per client
        self._all: list[httpx.AsyncClient] = []
        self._idle: list[httpx.AsyncClient] = []

    def take(self) -> httpx.AsyncClient | None:
        """An idle lane, a new one, or None when all `size` are busy."""
        if self._idle:
            return self._idle.pop()
        if len(self._all) >= self._size:
            return None
        client = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            timeout=self._timeout_s,
            verify=self._ssl,
        )
        self._all.append(client)
        return client

    def give_back(self, client: httpx.AsyncClient) -> None:
        self._idle.append(client)

    async def close(self) -> None:
        await asyncio.gather(*(client.aclose() for client in self._all), return_exceptions=True)


async def generate(
    url: str,
    rate: float,
    duration: float | None,
    stop: asyncio.Event | None = None,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> LoadReport:
    """GET `url` `rate` times a second for `duration` seconds (None: until `stop` is set), then
    wait for the requests still in flight and return what came back."""
    if not rate > 0 or concurrency < 1:
        raise ValueError(f"rate must be > 0 and concurrency >= 1, not {rate} and {concurrency}")
    target = httpx.URL(url)  # an invalid URL is the caller's error, not a failed request
    if target.scheme not in ("http", "https") or not target.host:
        raise ValueError(f"not an http(s) URL: {url!r}")
    stop = stop if stop is not None else asyncio.Event()
    report = LoadReport()
    lanes = _Lanes(concurrency, timeout_s)
    in_flight: set[asyncio.Task[None]] = set()

    async def send(client: httpx.AsyncClient) -> None:
        try:
            await _request(client, url, report)
        finally:
            lanes.give_back(client)

    loop = asyncio.get_running_loop()
    start = loop.time()
    end = start + duration if duration is not None else math.inf
    try:
        scheduled = 0
        while not stop.is_set():
            due = start + scheduled / rate
            if due >= end:
                break
            if (delay := due - loop.time()) > 0:
                await _until(stop, delay)
                continue
            scheduled += 1
            client = lanes.take()
            if client is None:
                report.dropped += 1
                continue
            task = asyncio.create_task(send(client))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        if in_flight:
            await asyncio.wait(set(in_flight), timeout=timeout_s + 1)
    finally:
        for task in in_flight:
            task.cancel()
        await lanes.close()
    report.duration_s = loop.time() - start
    return report


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m demo.loadgen", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--url", required=True)
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--duration", type=float, help="seconds (default: until SIGTERM/SIGINT)")
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY)
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="per request, s")
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> LoadReport:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return await generate(
        args.url,
        args.rate,
        args.duration,
        stop,
        concurrency=args.concurrency,
        timeout_s=args.timeout,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        report = asyncio.run(run(args))
    except (ValueError, httpx.InvalidURL) as exc:
        print(f"loadgen: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report.summary(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
