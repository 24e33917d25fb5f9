"""Network probes: an HTTP endpoint, a TCP port, a dependency (PostgreSQL, Kafka, HTTP).

Why every probe returns an observation instead of raising: the process guardian grades a
service from many checks at once, and a target that refuses, hangs or answers garbage is
exactly what it is there to see. So each probe carries its own deadline (asyncio.timeout
around the whole exchange, not only httpx's per-phase timeouts, which a server dripping one
byte a second never trips) and turns every target problem into a value: `connected`, a
status, an error text. `run_bounded` runs a round of probes concurrently and returns at
the deadline whatever finished; a probe that hangs, even one that ignores cancellation,
is reported as a TimeoutError and delays nothing else.

Decisions:
- `connected` is the transport's truth (the TCP handshake and, for https, the TLS one
  completed, seen through httpcore's trace hook), so "connected, no answer within 2 s" and
  "connection refused" stay distinct; `ip` is the address the connection reached.
- The response time runs from sending the request to the end of the body (capped at
  BODY_LIMIT; the rest is not read; a HEAD request's body is None, "not read"), as a
  client would experience it. Redirects are
  followed, as Gatus does; the certificate is the final server's.
- A client is created per probe unless the caller passes one: a health check opens a new
  connection each round (connection setup is part of being healthy), and the TLS context,
  the expensive part, is built once per process. Proxy variables are ignored: a probe goes
  straight to its target.
- The certificate's expiry is read from the very TLS connection the request used (httpx
  exposes it as the `network_stream` extension); only if that is unavailable does a second
  handshake fetch it. It is read whether or not the certificate verified, because "your
  certificate expires in 3 days" is news even for a self-signed one.
- Dependency URLs come from environment variables and may hold passwords: a message names
  the kind and host:port only, and any text from a driver is scrubbed of the URL's
  password before it leaves this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from functools import cache
from typing import Any, TypeVar
from urllib.parse import quote, unquote, urlsplit

import asyncpg
import httpx
from aiokafka.client import AIOKafkaClient
from cryptography import x509

from services.process.domain.conditions import HttpObservation
from services.runtime.config import DependencyProbe, HttpProbe, TcpProbe

T = TypeVar("T")

BODY_LIMIT = 1024 * 1024
"""Bytes of a response body kept for `[BODY]` conditions; a health endpoint is small."""
CLOSE_TIMEOUT_S = 0.5
"""How long closing a probe's connection may take before it is abandoned."""
USER_AGENT = "infra-guardians-process/1"


# -- HTTP -------------------------------------------------------------------------------------


class _Connection:
    """Filled by httpcore's trace hook: whether the transport got as far as a connection
    (TCP, and the TLS handshake for https), and the address it reached."""

    def __init__(self, tls: bool) -> None:
        self.connected = False
        self.ip: str | None = None
        self._tls = tls

    async def trace(self, event: str, info: Mapping[str, Any]) -> None:
        if event == "connection.connect_tcp.complete":
            self.ip = _server_ip(info.get("return_value"))
            self.connected = self.connected or not self._tls
        elif event == "connection.start_tls.complete":
            self.connected = True
        elif event.startswith(("http11.", "http2.")):
            self.connected = True  # a kept-alive connection reused: no connect event


def _server_ip(stream: Any) -> str | None:
    """The peer address of an httpcore network stream, if it tells."""
    try:
        address = stream.get_extra_info("server_addr") if stream is not None else None
    except (AttributeError, OSError):
        return None
    return str(address[0]) if isinstance(address, tuple) and address else None


async def http_probe(
    probe: HttpProbe,
    timeout: float,  # noqa: ASYNC109 (the probe's own deadline, applied to the whole exchange)
    client: httpx.AsyncClient | None = None,
) -> HttpObservation:
    """One request as the check describes it; a target problem is an observation, not an
    exception. `client`: the caller's (its pool, its TLS settings); None: one of our own."""
    connection = _Connection(tls=probe.url.lower().startswith("https:"))
    deadline = asyncio.get_running_loop().time() + timeout
    try:
        async with asyncio.timeout_at(deadline):
            if client is not None:
                return await _exchange(client, probe, timeout, connection)
            async with _client(timeout) as own:
                return await _exchange(own, probe, timeout, connection)
    except (TimeoutError, httpx.TimeoutException):
        return _failed(connection, f"no answer within {timeout:g} s")
    except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
        expires_in = await _expiry_despite(exc, probe.url, deadline)
        return _failed(connection, _describe(exc), expires_in)


def _client(timeout: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        verify=_tls_context(), trust_env=False, timeout=timeout,
        headers={"User-Agent": USER_AGENT},
    )


@cache
def _tls_context() -> ssl.SSLContext:
    """Loading the CA bundle costs milliseconds of CPU: once per process, not per probe."""
    return ssl.create_default_context()


async def _exchange(client: httpx.AsyncClient, probe: HttpProbe, budget_s: float,
                    connection: _Connection) -> HttpObservation:
    request = client.build_request(
        probe.method, probe.url, headers=probe.headers, timeout=budget_s,
        extensions={"trace": connection.trace},
    )
    started = time.perf_counter()
    response = await client.send(request, stream=True, follow_redirects=True)
    try:
        der = _peer_certificate(response)
        body = None if probe.method == "HEAD" else await _read_capped(response)
        elapsed_ms = (time.perf_counter() - started) * 1000
        expires_in = await _certificate_expiry(response, der, budget_s)
    finally:
        await response.aclose()
    return HttpObservation(
        connected=True, status=response.status_code, response_time_ms=elapsed_ms, body=body,
        headers=dict(response.headers.items()), certificate_expires_in_s=expires_in,
        error=None, ip=connection.ip or _server_ip(response.extensions.get("network_stream")),
    )


async def _read_capped(response: httpx.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk[: BODY_LIMIT - size])
        size += len(chunks[-1])
        if size >= BODY_LIMIT:
            break
    return b"".join(chunks)


def _failed(connection: _Connection, error: str, expires_in: float | None = None
            ) -> HttpObservation:
    return HttpObservation(connected=connection.connected, status=None, response_time_ms=None,
                           body=None, headers={}, certificate_expires_in_s=expires_in,
                           error=error, ip=connection.ip)


# -- TLS certificates -------------------------------------------------------------------------


def _peer_certificate(response: httpx.Response) -> bytes | None:
    """The DER certificate of the TLS connection this response came over, if it is one."""
    if response.url.scheme != "https":
        return None
    stream = response.extensions.get("network_stream")
    tls = stream.get_extra_info("ssl_object") if stream is not None else None
    if not isinstance(tls, ssl.SSLObject | ssl.SSLSocket):
        return None
    der = tls.getpeercert(binary_form=True)
    return der if isinstance(der, bytes) else None


async def _certificate_expiry(response: httpx.Response, der: bytes | None, budget_s: float
                              ) -> float | None:
    if response.url.scheme != "https":
        return None
    if der is None:  # the transport did not expose its TLS object: ask the server again
        der = await _certificate_by_handshake(response.url, budget_s)
    return _seconds_left(der) if der is not None else None


async def _expiry_despite(exc: BaseException, url: str, deadline: float) -> float | None:
    """After a failed certificate verification, the certificate's expiry all the same (read
    within what is left of the probe's time): an expired certificate fails verification, and
    "expired 2 days ago" says more than "verify failed"."""
    if not _caused_by(exc, ssl.SSLCertVerificationError):
        return None
    remaining = deadline - asyncio.get_running_loop().time()
    if remaining <= 0:
        return None
    der = await _certificate_by_handshake(httpx.URL(url), remaining)
    return _seconds_left(der) if der is not None else None


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: BaseException | None = exc
    for _ in range(8):  # httpx -> httpcore -> ssl: a short chain
        if seen is None or isinstance(seen, kind):
            return seen is not None
        seen = seen.__cause__ or seen.__context__
    return False


def _seconds_left(der: bytes) -> float:
    not_after = x509.load_der_x509_certificate(der).not_valid_after_utc
    return (not_after - datetime.now(UTC)).total_seconds()


async def _certificate_by_handshake(url: httpx.URL, budget_s: float) -> bytes | None:
    """A TLS handshake only to read the certificate: no verification, because the date is
    all that is wanted here (whether it verifies was the request's business)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    host = url.host
    try:
        async with asyncio.timeout(budget_s):
            _, writer = await asyncio.open_connection(
                host, url.port or 443, ssl=context, server_hostname=host)
    except (TimeoutError, OSError):
        return None
    try:
        tls = writer.get_extra_info("ssl_object")
        der = tls.getpeercert(binary_form=True) if tls is not None else None
        return der if isinstance(der, bytes) else None
    finally:
        await _close(writer)


# -- TCP --------------------------------------------------------------------------------------


async def tcp_probe(
    probe: TcpProbe,
    timeout: float,  # noqa: ASYNC109 (the probe's own deadline)
) -> tuple[bool, float | None, str]:
    """Whether a TCP connection is accepted: (connected, connect time in ms, message)."""
    where = _hostport(probe.host, probe.port)
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(probe.host, probe.port)
    except TimeoutError:
        return False, None, f"{where}: no connection within {timeout:g} s"
    except OSError as exc:
        return False, None, f"{where}: {_os_error(exc)}"
    elapsed_ms = (time.perf_counter() - started) * 1000
    await _close(writer)
    return True, elapsed_ms, f"{where}: connected in {elapsed_ms:.1f} ms"


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError, TimeoutError, ssl.SSLError):
        async with asyncio.timeout(CLOSE_TIMEOUT_S):
            await writer.wait_closed()


# -- dependencies -----------------------------------------------------------------------------


class _UnhealthyError(Exception):
    """A dependency answered, but not well (an HTTP 503)."""


async def dependency_probe(
    probe: DependencyProbe,
    timeout: float,  # noqa: ASYNC109 (the probe's own deadline)
) -> tuple[bool, float | None, str]:
    """Whether the dependency answers a real request: PostgreSQL `SELECT 1`, a Kafka
    metadata request, an HTTP GET with a 2xx. (ok, time in ms, message without secrets)."""
    url = os.environ.get(probe.url_env, "").strip()
    if not url:
        return False, None, f"{probe.kind}: environment variable {probe.url_env} is not set"
    where = f"{probe.kind} {_location(probe.kind, url)}"
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            detail = await _DEPENDENCIES[probe.kind](url, timeout)
    except TimeoutError:
        return False, None, f"{where}: no answer within {timeout:g} s"
    except Exception as exc:  # drivers raise many types: each is a failed probe
        return False, None, redact(f"{where}: {_describe(exc)}", url)
    elapsed_ms = (time.perf_counter() - started) * 1000
    return True, elapsed_ms, redact(f"{where}: {detail} in {elapsed_ms:.1f} ms", url)


async def _postgres(url: str, budget_s: float) -> str:
    conn = await asyncpg.connect(url, timeout=budget_s)
    try:
        value = await conn.fetchval("SELECT 1")
    finally:
        await conn.close(timeout=CLOSE_TIMEOUT_S)
    if value != 1:
        raise _UnhealthyError(f"SELECT 1 returned {value!r}")
    return "SELECT 1 answered"


async def _kafka(url: str, budget_s: float) -> str:
    client = AIOKafkaClient(
        bootstrap_servers=_kafka_servers(url), client_id="guardians-process-probe",
        request_timeout_ms=max(1, int(budget_s * 1000)),
    )
    try:
        await client.bootstrap()  # a MetadataRequest answered, or KafkaConnectionError
        brokers = len(client.cluster.brokers())
    finally:
        await client.close()
    return f"metadata answered ({brokers} broker{'s' if brokers != 1 else ''})"


async def _http_dependency(url: str, budget_s: float) -> str:
    async with _client(budget_s) as client:
        response = await client.get(url, follow_redirects=True)
    if not response.is_success:
        raise _UnhealthyError(f"HTTP {response.status_code}")
    return f"HTTP {response.status_code}"


_DEPENDENCIES: Mapping[str, Callable[[str, float], Awaitable[str]]] = {
    "postgres": _postgres,
    "kafka": _kafka,
    "http": _http_dependency,
}


def _kafka_servers(url: str) -> list[str]:
    """`host:port[,host:port]`, optionally with a scheme (`kafka://`, `PLAINTEXT://`)."""
    servers = [s.strip() for s in url.split(",") if s.strip()]
    return [s.split("://", 1)[-1].rstrip("/") for s in servers]


def _location(kind: str, url: str) -> str:
    """Where a dependency is, without credentials: host:port (and the database)."""
    if kind == "kafka":
        return ",".join(s.rpartition("@")[2] for s in _kafka_servers(url))
    try:
        parts = urlsplit(url)
        where = _hostport(parts.hostname or "?", parts.port) if parts.hostname else "?"
    except ValueError:
        return "(unparsable URL)"
    database = parts.path.strip("/") if kind == "postgres" else ""
    return f"{where}/{database}" if database else where


def _hostport(host: str, port: int | None) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"{shown}:{port}" if port is not None else shown


# -- secrets in messages ----------------------------------------------------------------------

_URL_PASSWORD = re.compile(r"(://[^:/?#@\s]*):[^@/?#\s]*@")


def redact(text: str, *urls: str) -> str:
    """`text` with the passwords of `urls` (raw, decoded, URL-encoded) and any other URL
    password masked."""
    for secret in sorted(_passwords(urls), key=len, reverse=True):
        for form in {secret, unquote(secret), quote(secret, safe="")}:
            text = text.replace(form, "***")
    return _URL_PASSWORD.sub(r"\1:***@", text)


def _passwords(urls: Iterable[str]) -> set[str]:
    found: set[str] = set()
    for url in urls:
        with contextlib.suppress(ValueError):
            userinfo = urlsplit(url).netloc.rpartition("@")[0]
            if ":" in userinfo:
                found.add(userinfo.split(":", 1)[1])
        for query in re.findall(r"(?:password|sslpassword)=([^&\s]+)", url, flags=re.I):
            found.add(query)
    return {p for p in found if p}


def _os_error(exc: OSError) -> str:
    """`Connection refused` rather than asyncio's `Connect call failed ('127.0.0.1', 80)`."""
    return os.strerror(exc.errno) if exc.errno else _describe(exc)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    name = type(exc).__name__
    return f"{name}: {redact(text)}" if text else name


# -- a round of probes ------------------------------------------------------------------------


async def run_bounded(
    tasks: Mapping[str, Callable[[], Awaitable[T]]],
    timeout: float,  # noqa: ASYNC109 (each task's deadline, all counted from the same start)
) -> dict[str, T | TimeoutError | Exception]:
    """Run every task concurrently; at `timeout` return each one's result, its exception,
    or a TimeoutError for those still running (cancelled and not waited for, so a task that
    ignores cancellation cannot hold the round)."""
    running = {name: asyncio.ensure_future(_call(make)) for name, make in tasks.items()}
    if not running:
        return {}
    try:
        _, pending = await asyncio.wait(running.values(), timeout=timeout)
    except asyncio.CancelledError:
        for task in running.values():
            task.cancel()
        raise
    for task in pending:
        task.cancel()
        task.add_done_callback(_retrieve)
    results: dict[str, T | TimeoutError | Exception] = {}
    for name, task in running.items():
        outcome = _outcome(name, task, task in pending, timeout)
        results[name] = outcome
    return results


async def _call(make: Callable[[], Awaitable[T]]) -> T:
    return await make()


def _outcome(name: str, task: asyncio.Future[T], still_running: bool, timeout: float
             ) -> T | Exception:
    if still_running:
        return TimeoutError(f"{name}: no result within {timeout:g} s")
    if task.cancelled():
        return RuntimeError(f"{name}: cancelled")
    exc = task.exception()
    if exc is None:
        return task.result()
    if isinstance(exc, Exception):
        return exc
    raise exc  # KeyboardInterrupt, SystemExit: not a probe's result


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Consume an abandoned task's outcome so asyncio does not log it as never retrieved."""
    if not task.cancelled():
        task.exception()
