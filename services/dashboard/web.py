"""The live page: static files, a JSON snapshot, and server-sent events fed by NOTIFY.

Why this shape. Browsers must not poll: one `EventSource` per page, the state as its first
message, then only the sections that changed. The signal that something changed is
PostgreSQL's NOTIFY, sent by the handlers inside the batch's transaction: it is delivered
on commit only (a rolled-back batch says nothing), and it reaches every replica's web side,
whichever replica's consumer handled the batch. Notifications are coalesced for a moment,
then each changed section is read once and pushed to every open page.

Reads (the first snapshot of a new page, and every push) are serialised by one lock, and a
new page joins the audience inside it: every push it receives was read after its snapshot,
so a page never goes back in time. A page that cannot keep up (its queue full) is dropped;
its browser reconnects by itself and starts again from a full snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncGenerator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from prometheus_client import Counter, Gauge

from schemas.base import utcnow
from services.dashboard import store
from services.dashboard.store import Section
from services.runtime import Guardian
from services.runtime.http import Request, Response, StreamResponse

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
HEARTBEAT_S = 15.0
"""A comment line this often keeps proxies from closing an idle stream and tells the server
that a browser went away."""
COALESCE_S = 0.05
"""How long notifications are gathered before the changed sections are read and pushed."""
LISTEN_CHECK_S = 5.0
CLIENT_QUEUE = 64
RECONNECT_MS = 2000
ALL_SECTIONS = tuple(Section)
FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
    "/static/dashboard.css": ("dashboard.css", "text/css; charset=utf-8"),
}
SECURITY_HEADERS = (
    # Everything the page uses comes from this server: no CDN, no inline script.
    ("Content-Security-Policy",
     "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    ("Cache-Control", "no-cache"),
)

CLIENTS = Gauge("guardians_dashboard_clients", "Pages connected to the event stream.")
PUSHES = Counter("guardians_dashboard_pushes_total",
                 "Sections pushed to the open pages after a committed batch.", ["section"])


def sse(event: str, data: dict[str, Any]) -> bytes:
    """One server-sent event; compact JSON has no newline, so it is one `data:` line."""
    payload = json.dumps(data, separators=(",", ":"), default=str)
    return f"event: {event}\ndata: {payload}\n\n".encode()


@dataclass(eq=False)
class _Page:
    queue: asyncio.Queue[bytes] = field(default_factory=lambda: asyncio.Queue(CLIENT_QUEUE))
    dropped: bool = False


class LivePage:
    """Routes and background tasks of the page, registered on `guardian`."""

    def __init__(self, guardian: Guardian) -> None:
        self._guardian = guardian
        self._pages: set[_Page] = set()
        self._dirty: set[Section] = set()
        self._wake = asyncio.Event()
        self._reading = asyncio.Lock()
        for path in FILES:
            guardian.serves(path)(self.static)
        guardian.serves("/api/state")(self.state)
        guardian.serves("/events")(self.events)
        guardian.runs(self.listen)
        guardian.runs(self.publish)

    # -- HTTP -------------------------------------------------------------------------------

    async def static(self, request: Request) -> Response:
        name, content_type = FILES[request.path]
        body = await asyncio.to_thread((STATIC / name).read_bytes)
        return Response(body, content_type, headers=SECURITY_HEADERS)

    async def state(self, request: Request) -> Response:
        async with self._reading:
            state = await self._read(ALL_SECTIONS)
        return Response(json.dumps(state, default=str).encode(), "application/json",
                        headers=(("Cache-Control", "no-cache"),))

    async def events(self, request: Request) -> StreamResponse:
        page = _Page()
        async with self._reading:
            first = sse("state", await self._read(ALL_SECTIONS))
            self._pages.add(page)
        CLIENTS.set(len(self._pages))
        return StreamResponse(
            self._stream(page, first), "text/event-stream; charset=utf-8",
            headers=(("Cache-Control", "no-cache"), ("X-Accel-Buffering", "no")),
        )

    async def _stream(self, page: _Page, first: bytes) -> AsyncGenerator[bytes, None]:
        try:
            yield f"retry: {RECONNECT_MS}\n\n".encode() + first
            while True:
                try:
                    message = await asyncio.wait_for(page.queue.get(), HEARTBEAT_S)
                except TimeoutError:
                    yield b": heartbeat\n\n"
                    continue
                if page.dropped:
                    return
                yield message
        finally:
            self._pages.discard(page)
            CLIENTS.set(len(self._pages))

    # -- what changed -----------------------------------------------------------------------

    async def _read(self, sections: Iterable[Section]) -> dict[str, Any]:
        pool = self._guardian.pool
        assert pool is not None
        async with pool.acquire() as conn:
            data = await store.read_sections(conn, sections)
        return {**data, "generated_at": utcnow().isoformat()}

    def _on_notify(self, connection: object, pid: int, channel: str, payload: object) -> None:
        try:
            self._dirty.add(Section(str(payload)))
        except ValueError:
            log.warning("unknown dashboard notification %r", payload)
            return
        self._wake.set()

    def _mark_all(self) -> None:
        self._dirty.update(ALL_SECTIONS)
        self._wake.set()

    async def listen(self) -> None:
        """LISTEN on a connection of its own for the life of the process. A lost connection
        raises; the runtime starts this again, and everything is pushed once more because
        notifications sent while nobody listened are gone."""
        dsn = self._guardian.settings.database_url.get_secret_value()
        conn = await asyncpg.connect(dsn)
        try:
            await conn.add_listener(store.channel(self._guardian.schema), self._on_notify)
            self._mark_all()
            while True:
                await asyncio.sleep(LISTEN_CHECK_S)
                await conn.fetchval("SELECT 1")
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 2)

    async def publish(self) -> None:
        """Push each changed section to every page, a moment after the commit."""
        while True:
            await self._wake.wait()
            await asyncio.sleep(COALESCE_S)
            self._wake.clear()
            sections, self._dirty = self._dirty, set()
            if not sections or not self._pages:
                continue
            try:
                async with self._reading:
                    message = sse("state", await self._read(sorted(sections)))
                    self._broadcast(message)
            except Exception:
                self._dirty |= sections  # pushed when the database answers again
                self._wake.set()
                raise
            for section in sections:
                PUSHES.labels(section.value).inc()

    def _broadcast(self, message: bytes) -> None:
        for page in list(self._pages):
            try:
                page.queue.put_nowait(message)
            except asyncio.QueueFull:
                # Too slow to follow: end its stream; the browser reconnects and starts over.
                page.dropped = True
                self._pages.discard(page)
        CLIENTS.set(len(self._pages))
