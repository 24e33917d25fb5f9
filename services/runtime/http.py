"""A minimal HTTP endpoint per service: /metrics (Prometheus), /healthz and /readyz.

A service may add read-only GET routes of its own on the same port (`Guardian.serves`): a
page, a JSON snapshot, a server-sent-events stream. One port per process keeps deployment
simple (one published port, one scrape target), and a tiny asyncio server is enough for a
few people's browsers; a service that needs more than that wants a real web framework.
A streamed response is written as it is produced, without Content-Length and with
`Connection: close` (HTTP/1.1 allows the body to end with the connection), and it is
cancelled when the server stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

log = logging.getLogger(__name__)
BUILT_IN_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})
ReadinessProbe = Callable[[], Awaitable[dict[str, bool]]]
MAX_HEADER_LINES = 100


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    """Header names lower-cased."""


@dataclass(frozen=True)
class Response:
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    status: str = "200 OK"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class StreamResponse:
    """A body produced over time (server-sent events): each chunk is written and flushed."""

    chunks: AsyncIterator[bytes]
    content_type: str
    headers: tuple[tuple[str, str], ...] = ()


Route = Callable[[Request], Awaitable[Response | StreamResponse]]


class HealthServer:
    def __init__(
        self,
        host: str,
        port: int,
        readiness: ReadinessProbe,
        routes: Mapping[str, Route] | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._readiness = readiness
        self._routes = dict(routes or {})
        self._server: asyncio.Server | None = None
        self._streams: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self._host, self._port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._streams):  # long-lived streams end with the server
                task.cancel()
            if self._streams:
                await asyncio.wait(list(self._streams), timeout=2)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await self._read_request(reader)
            route = self._routes.get(request.path)
            if route is not None and request.path not in BUILT_IN_PATHS:
                if request.method != "GET":
                    await _write(writer, Response(b"method not allowed\n",
                                                  status="405 Method Not Allowed",
                                                  headers=(("Allow", "GET"),)))
                    return
                try:
                    response = await route(request)
                except Exception:
                    log.exception("%s %s failed", request.method, request.path)
                    await _write(writer, Response(b"internal error\n",
                                                  status="500 Internal Server Error"))
                    return
                if isinstance(response, StreamResponse):
                    await self._stream(writer, response)
                else:
                    await _write(writer, response)
                return
            status, ctype, body = await self._route(request.path)
            await _write(writer, Response(body, ctype, status))
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _read_request(self, reader: asyncio.StreamReader) -> Request:
        line = await asyncio.wait_for(reader.readline(), 5)
        headers: dict[str, str] = {}
        for _ in range(MAX_HEADER_LINES):
            header = await asyncio.wait_for(reader.readline(), 5)
            if header in (b"\r\n", b"\n", b""):
                break
            name, _, value = header.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        parts = line.decode("latin-1").split()
        if len(parts) < 2:
            return Request(parts[0].upper() if parts else "", "")  # answered 404
        path, _, query = parts[1].partition("?")
        return Request(parts[0].upper(), path, dict(parse_qsl(query)), headers)

    async def _stream(self, writer: asyncio.StreamWriter, response: StreamResponse) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._streams.add(task)
        chunks = response.chunks
        try:
            extra = "".join(f"{k}: {v}\r\n" for k, v in response.headers)
            writer.write(
                f"HTTP/1.1 200 OK\r\nContent-Type: {response.content_type}\r\n{extra}"
                "Connection: close\r\n\r\n".encode()
            )
            await writer.drain()
            async for chunk in chunks:
                writer.write(chunk)
                await writer.drain()
        except asyncio.CancelledError:
            # stop() cancels open streams and waits for them: the client sees the stream end
            # and reconnects. The connection's task must end normally, not cancelled: asyncio
            # logs a cancelled client-connected task as an error (Python 3.11).
            pass
        finally:
            self._streams.discard(task)
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()

    async def _route(self, path: str) -> tuple[str, str, bytes]:
        if path == "/metrics":
            return "200 OK", CONTENT_TYPE_LATEST, generate_latest()
        if path == "/healthz":
            return "200 OK", "application/json", b'{"status":"ok"}'
        if path == "/readyz":
            checks = await self._readiness()
            ok = all(checks.values())
            body = json.dumps({"ready": ok, "checks": checks}).encode()
            return ("200 OK" if ok else "503 Service Unavailable"), "application/json", body
        return "404 Not Found", "text/plain", b"not found\n"


async def _write(writer: asyncio.StreamWriter, response: Response) -> None:
    extra = "".join(f"{k}: {v}\r\n" for k, v in response.headers)
    head = (
        f"HTTP/1.1 {response.status}\r\nContent-Type: {response.content_type}\r\n{extra}"
        f"Content-Length: {len(response.body)}\r\nConnection: close\r\n\r\n"
    )
    writer.write(head.encode() + response.body)
    await writer.drain()
