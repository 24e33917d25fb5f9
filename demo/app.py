"""The demo application: one HTTP service whose behaviour per version comes from a release file.

    python -m demo.app --port 8001 --version 3.0.0 --release demo/releases/3.0.0.json
        [--host 127.0.0.1] [--service demo]

The deploy guardian starts instances of it behind nginx and judges them with Prometheus, so
each rollout branch needs a version that really behaves that way: release keys (all optional)

    error_rate           0..1, the share of requests answered 500, deterministically: request n
                         fails when floor(n*rate) > floor((n-1)*rate), so 0.2 is every fifth
    added_latency_ms     >= 0, added to a small base latency on every application request
    crash_at_start       true: say why on stderr and exit 3 before listening
    never_ready          true: GET /healthz answers 503 forever
    ready_after_seconds  >= 0, GET /healthz answers 503 until this long after start

An unknown key, a wrong type or an out-of-range value exits 2 naming the file and the key.

Endpoints: GET /healthz (200 ready, 503 not), GET /metrics (Prometheus text), and every other
path is the application (200 with a small JSON body, or 500 for the configured share). Every
response carries `X-Demo-Version`. Metrics: demo_http_requests_total{code,version} and
demo_http_request_duration_seconds{version} count application requests only (never /healthz
or /metrics), demo_build_info{version} is 1. SIGTERM or SIGINT: stop listening, exit 0.

Only the standard library and prometheus_client, so an instance starts in well under a second:
a rollout step waits for it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from fractions import Fraction
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

EXIT_USAGE = 2
EXIT_CRASH = 3
BASE_LATENCY_S = 0.002
"""Every application request takes at least this long, like a real handler would."""
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.3, 0.5, 1.0, 2.5)
"""5 ms .. 2.5 s; 0.25 and 0.3 bracket slow.json's 300 ms against a 250 ms p95 threshold."""
IDLE_TIMEOUT_S = 30.0
"""How long a kept-alive connection may wait for its next request."""
HEADER_TIMEOUT_S = 5.0
REASONS = {200: "OK", 400: "Bad Request", 500: "Internal Server Error", 503: "Service Unavailable"}


# ---------------------------------------------------------------------------------------------
# The release file


class ReleaseError(ValueError):
    """A release file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class Release:
    """How this version behaves. The defaults are a healthy release."""

    error_rate: float = 0.0
    added_latency_ms: float = 0.0
    crash_at_start: bool = False
    never_ready: bool = False
    ready_after_seconds: float = 0.0


RANGES: dict[str, tuple[float, float]] = {
    "error_rate": (0.0, 1.0),
    "added_latency_ms": (0.0, math.inf),
    "ready_after_seconds": (0.0, math.inf),
}
"""The numeric keys and their inclusive ranges; every other key of Release is a flag."""


def parse_release(data: object, source: str) -> Release:
    """A Release from a decoded JSON document; `source` (the file) prefixes every error."""
    if not isinstance(data, dict):
        raise ReleaseError(f"{source}: a release is a JSON object, not {type(data).__name__}")
    known = [field.name for field in fields(Release)]
    values: dict[str, float | bool] = {}
    for key, value in data.items():
        if key not in known:
            raise ReleaseError(f"{source}: unknown key {key!r} (known: {', '.join(known)})")
        if key in RANGES:
            values[key] = _number(source, key, value)
        elif isinstance(value, bool):
            values[key] = value
        else:
            raise ReleaseError(f"{source}: {key} must be true or false, not {value!r}")
    return Release(**values)  # type: ignore[arg-type]  # keys and types checked above


def _number(source: str, key: str, value: object) -> float:
    low, high = RANGES[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ReleaseError(f"{source}: {key} must be a number, not {value!r}")
    if not low <= value <= high:
        bound = f"between {low:g} and {high:g}" if math.isfinite(high) else f">= {low:g}"
        raise ReleaseError(f"{source}: {key} must be {bound}, not {value!r}")
    return float(value)


def load_release(path: Path) -> Release:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ReleaseError(f"{path}: cannot read it: {exc.strerror}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReleaseError(f"{path}: not JSON: {exc}") from exc
    return parse_release(data, str(path))


def fails(n: int, rate: float | Fraction) -> bool:
    """Whether application request n (1-based) answers 500 at error rate `rate`.

    floor(n*rate) > floor((n-1)*rate): of the first N requests exactly floor(N*rate) fail,
    evenly spread, so a canary's error ratio is the same in every window and a test can count
    on it. The rate is taken as the decimal it was written as (0.29 is 29/100, not the float
    just below it), or the count would drift by one.
    """
    exact = rate if isinstance(rate, Fraction) else Fraction(str(rate))
    return math.floor(n * exact) > math.floor((n - 1) * exact)


# ---------------------------------------------------------------------------------------------
# The application


class Metrics:
    """This instance's series, in a registry of its own (no process or platform collectors)."""

    def __init__(self, version: str) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "demo_http_requests",
            "Application requests (not /healthz or /metrics) by status code",
            ["code", "version"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "demo_http_request_duration_seconds",
            "Application request handling time",
            ["version"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        build = Gauge("demo_build_info", "The running version", ["version"], registry=self.registry)
        build.labels(version=version).set(1)
        # Both codes exist from the start, so an error ratio is 0, not absent, before a failure.
        for code in ("200", "500"):
            self.requests.labels(code=code, version=version)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


Response = tuple[int, str, bytes]
"""Status code, content type, body."""


class DemoApp:
    """What each path answers; the HTTP server around it is DemoServer."""

    def __init__(
        self,
        version: str,
        release: Release,
        service: str = "demo",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.version = version
        self.release = release
        self.service = service
        self.metrics = Metrics(version)
        self._clock = clock
        self._started = clock()
        self._error_rate = Fraction(str(release.error_rate))
        self._latency_s = BASE_LATENCY_S + release.added_latency_ms / 1000
        self._count = 0

    def ready(self) -> bool:
        if self.release.never_ready:
            return False
        return self._clock() - self._started >= self.release.ready_after_seconds

    async def respond(self, path: str) -> Response:
        if path == "/healthz":
            ready = self.ready()
            body = json.dumps({"ready": ready, "version": self.version}).encode()
            return (200 if ready else 503), "application/json", body
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, self.metrics.exposition()
        return await self._application()

    async def _application(self) -> Response:
        started = time.perf_counter()
        self._count += 1
        n = self._count  # numbered on arrival: the failure pattern does not depend on timing
        await asyncio.sleep(self._latency_s)
        failed = fails(n, self._error_rate)
        status = 500 if failed else 200
        payload: dict[str, object] = {"service": self.service, "version": self.version, "n": n}
        if failed:
            payload["error"] = "injected failure (release error_rate)"
        self.metrics.requests.labels(code=str(status), version=self.version).inc()
        self.metrics.duration.labels(version=self.version).observe(time.perf_counter() - started)
        return status, "application/json", json.dumps(payload).encode()


# ---------------------------------------------------------------------------------------------
# HTTP/1.1 over asyncio streams, with keep-alive (a load generator reuses its connections)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    keep_alive: bool


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """The next request on the connection (its body, if any, read and dropped), or None when
    the client closed it or sent something that is not HTTP."""
    line = await asyncio.wait_for(reader.readline(), IDLE_TIMEOUT_S)
    parts = line.decode("latin-1").split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        return None
    method, target, protocol = parts
    headers: dict[str, str] = {}
    while True:
        header = await asyncio.wait_for(reader.readline(), HEADER_TIMEOUT_S)
        if header in (b"\r\n", b"\n", b""):
            break
        name, _, value = header.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or "0")
    if length:
        await asyncio.wait_for(reader.readexactly(length), HEADER_TIMEOUT_S)
    connection = headers.get("connection", "").lower()
    keep_alive = connection != "close" if protocol == "HTTP/1.1" else connection == "keep-alive"
    return Request(method.upper(), target.split("?")[0], keep_alive)


class DemoServer:
    def __init__(self, app: DemoApp, host: str, port: int) -> None:
        self.app = app
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self._host, self._port)

    async def stop(self) -> None:
        """Stop listening and drop kept-alive connections (their clients reconnect elsewhere)."""
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._server.wait_closed(), 1)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while (request := await read_request(reader)) is not None:
                status, ctype, body = await self.app.respond(request.path)
                head = (
                    f"HTTP/1.1 {status} {REASONS.get(status, '')}\r\n"
                    f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                    f"X-Demo-Version: {self.app.version}\r\n"
                    f"Connection: {'keep-alive' if request.keep_alive else 'close'}\r\n\r\n"
                )
                writer.write(head.encode() + (b"" if request.method == "HEAD" else body))
                await writer.drain()
                if not request.keep_alive:
                    break
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass  # a client that went away, stalled, or sent garbage: just close
        finally:
            self._writers.discard(writer)
            writer.close()


# ---------------------------------------------------------------------------------------------
# The process


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m demo.app", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="0: any free port")
    parser.add_argument("--version", required=True, help="reported in X-Demo-Version and metrics")
    parser.add_argument("--release", type=Path, help="release file (JSON); default: healthy")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--service", default="demo", help="the service name in response bodies")
    return parser.parse_args(argv)


async def serve(app: DemoApp, host: str, port: int) -> int:
    server = DemoServer(app, host, port)
    try:
        await server.start()
    except OSError as exc:
        print(f"demo: cannot listen on {host}:{port}: {exc.strerror}", file=sys.stderr)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"demo: {app.service} {app.version} listening on http://{host}:{server.port}", flush=True)
    await stop.wait()
    await server.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    release = Release()
    if args.release is not None:
        try:
            release = load_release(args.release)
        except ReleaseError as exc:
            print(f"demo: {exc}", file=sys.stderr)
            return EXIT_USAGE
    if release.crash_at_start:
        reason = f"{args.release}: crash_at_start"
        print(f"demo: {args.service} {args.version} crashes at start ({reason})", file=sys.stderr)
        return EXIT_CRASH
    disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created series needed
    return asyncio.run(serve(DemoApp(args.version, release, args.service), args.host, args.port))


if __name__ == "__main__":
    sys.exit(main())
