"""The runtime's HTTP server with a service's own routes, and the dashboard's event stream:
a page route beside /metrics, a stream written as it is produced and ended by the server's
stop, a slow page dropped instead of buffered without end (loopback only, no database)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from schemas.topics import REGISTRY
from services.dashboard import web
from services.dashboard.store import Section
from services.runtime import Guardian
from services.runtime.http import HealthServer, Request, Response, StreamResponse


async def _ready() -> dict[str, bool]:
    return {"ok": True}


async def _exchange(port: int, request: bytes, *, until: bytes | None = None) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    try:
        if until is None:
            return await asyncio.wait_for(reader.read(), 5)
        return await asyncio.wait_for(reader.readuntil(until), 5)
    finally:
        writer.close()


async def test_a_service_route_is_served_beside_the_built_in_endpoints() -> None:
    seen: list[Request] = []

    async def page(request: Request) -> Response:
        seen.append(request)
        return Response(b"<p>hi</p>", "text/html", headers=(("X-Test", "1"),))

    server = HealthServer("127.0.0.1", 0, _ready, {"/page": page})
    await server.start()
    try:
        answer = await _exchange(
            server.port, b"GET /page?x=1 HTTP/1.1\r\nAccept: text/html\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b"<p>hi</p>")
        assert b"X-Test: 1\r\n" in answer and b"Content-Length: 9\r\n" in answer
        assert seen[0].query == {"x": "1"} and seen[0].headers["accept"] == "text/html"
        posted = await _exchange(server.port, b"POST /page HTTP/1.1\r\n\r\n")
        assert posted.startswith(b"HTTP/1.1 405 ")
        health = await _exchange(server.port, b"GET /healthz HTTP/1.1\r\n\r\n")
        assert health.endswith(b'{"status":"ok"}')
        missing = await _exchange(server.port, b"GET /nope HTTP/1.1\r\n\r\n")
        assert missing.startswith(b"HTTP/1.1 404 ")
    finally:
        await server.stop()


async def test_a_route_that_raises_answers_500_and_the_server_goes_on() -> None:
    async def broken(request: Request) -> Response:
        raise RuntimeError("database down")

    server = HealthServer("127.0.0.1", 0, _ready, {"/broken": broken})
    await server.start()
    try:
        answer = await _exchange(server.port, b"GET /broken HTTP/1.1\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 500 ")
        assert (await _exchange(server.port, b"GET /healthz HTTP/1.1\r\n\r\n")).endswith(b"}")
    finally:
        await server.stop()


async def test_a_stream_is_written_as_produced_and_ends_when_the_server_stops() -> None:
    release = asyncio.Event()
    closed = asyncio.Event()

    async def chunks() -> AsyncIterator[bytes]:
        try:
            yield b"data: one\n\n"
            await release.wait()
            yield b"data: two\n\n"
            await asyncio.Event().wait()  # forever, until the server stops
        finally:
            closed.set()

    async def events(request: Request) -> StreamResponse:
        return StreamResponse(chunks(), "text/event-stream")

    server = HealthServer("127.0.0.1", 0, _ready, {"/events": events})
    await server.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(b"GET /events HTTP/1.1\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"data: one\n\n"), 5)
        assert b"Content-Type: text/event-stream" in head and b"Content-Length" not in head
        release.set()
        assert await asyncio.wait_for(reader.readuntil(b"\n\n"), 5) == b"data: two\n\n"
        await asyncio.wait_for(server.stop(), 5)
        assert closed.is_set()
        assert await asyncio.wait_for(reader.read(), 5) == b""  # the stream ended
    finally:
        writer.close()


def test_the_built_in_endpoints_cannot_be_replaced() -> None:
    async def page(request: Request) -> Response:
        return Response(b"")

    guardian = Guardian("dash-unit", registry=REGISTRY)
    with pytest.raises(ValueError, match="already served"):
        guardian.serves("/metrics")(page)
    guardian.serves("/page")(page)
    with pytest.raises(ValueError, match="already served"):
        guardian.serves("/page")(page)


def test_a_server_sent_event_is_one_data_line() -> None:
    message = web.sse("state", {"changes": [{"label": "a\nb"}]})
    assert message == b'event: state\ndata: {"changes":[{"label":"a\\nb"}]}\n\n'


async def test_a_page_gets_its_snapshot_then_pushes_then_heartbeats(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(web, "HEARTBEAT_S", 0.05)
    live = web.LivePage(Guardian("dash-unit", registry=REGISTRY))
    page = web._Page()
    live._pages.add(page)
    stream = live._stream(page, b"event: state\ndata: {}\n\n")
    assert (await anext(stream)).endswith(b"event: state\ndata: {}\n\n")
    live._broadcast(b"event: state\ndata: {\"health\":[]}\n\n")
    assert await anext(stream) == b"event: state\ndata: {\"health\":[]}\n\n"
    assert await anext(stream) == b": heartbeat\n\n"
    await stream.aclose()
    assert page not in live._pages


async def test_a_page_that_cannot_keep_up_is_dropped_and_its_stream_ends() -> None:
    live = web.LivePage(Guardian("dash-unit", registry=REGISTRY))
    slow, fine = web._Page(), web._Page()
    live._pages |= {slow, fine}
    stream = live._stream(slow, b"first")
    await anext(stream)
    for i in range(web.CLIENT_QUEUE + 1):
        live._broadcast(f"m{i}".encode())
        fine.queue.get_nowait()
    assert slow.dropped and live._pages == {fine}
    with pytest.raises(StopAsyncIteration):
        await anext(stream)  # the browser reconnects and starts from a full snapshot


def test_a_notification_marks_its_section_and_unknown_ones_are_ignored() -> None:
    live = web.LivePage(Guardian("dash-unit", registry=REGISTRY))
    live._on_notify(None, 1, "dashboard", "health")
    live._on_notify(None, 1, "dashboard", "nonsense")
    assert live._dirty == {Section.HEALTH}
