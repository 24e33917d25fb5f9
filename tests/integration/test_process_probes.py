"""The process guardian's probes and system readings against real sockets and processes.

Targets are real: demo app instances (healthy, 300 ms slower, never ready), a listener that
accepts and never answers, a TLS server with a short-lived self-signed certificate, and the
local stack's PostgreSQL and Kafka. Every process started here is stopped at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psutil
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from schemas.events.health import CheckStatus
from services.process.adapters import probes, system
from services.process.domain.conditions import (
    HttpObservation,
    format_duration,
    judge_http,
    parse_condition,
)
from services.runtime.config import DependencyProbe, ExpectedPort, HttpProbe, TcpProbe
from tests.support.ports import free_ports

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RELEASES = ROOT / "demo" / "releases"


@dataclass
class Demo:
    proc: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _start_demo(version: str, release: str | None = None) -> Demo:
    port = free_ports(1)[0]
    argv = [sys.executable, "-m", "demo.app", "--port", str(port), "--version", version]
    if release is not None:
        argv += ["--release", str(RELEASES / release)]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return Demo(proc, port)


def _wait_listening(demo: Demo, within_s: float = 15) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if demo.proc.poll() is not None:
            err = demo.proc.stderr.read().decode() if demo.proc.stderr else ""
            raise RuntimeError(f"demo exited {demo.proc.returncode}: {err}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", demo.port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"demo on port {demo.port} did not listen within {within_s} s")


@pytest.fixture(scope="module")
def demos() -> Iterator[dict[str, Demo]]:
    started = {"healthy": _start_demo("1.0.0"), "slow": _start_demo("2.0.0", "slow.json"),
               "never_ready": _start_demo("3.0.0", "never-ready.json")}
    try:
        for demo in started.values():
            _wait_listening(demo)
        yield started
    finally:
        for demo in started.values():
            demo.stop()


@pytest.fixture
async def hung_port() -> AsyncIterator[int]:
    """A listener that accepts, reads what it is sent, and never answers."""
    held: set[asyncio.StreamWriter] = set()

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.add(writer)
        with contextlib.suppress(Exception):
            await reader.read(65536)
            await asyncio.sleep(30)

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in held:
            writer.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 1)


# -- HTTP ------------------------------------------------------------------------------------


async def test_a_healthy_instance_answers_200_with_a_response_time(demos: dict[str, Demo]
                                                                   ) -> None:
    obs = await probes.http_probe(HttpProbe(url=demos["healthy"].url + "/healthz"), 2)
    assert obs.connected and obs.status == 200 and obs.error is None
    assert obs.response_time_ms is not None and 0 < obs.response_time_ms < 1000
    assert obs.body is not None and b'"ready": true' in obs.body
    assert obs.headers["x-demo-version"] == "1.0.0"
    assert obs.certificate_expires_in_s is None  # plain HTTP
    assert obs.ip == "127.0.0.1"
    head = await probes.http_probe(
        HttpProbe(url=demos["healthy"].url + "/healthz", method="HEAD"), 2)
    assert head.status == 200 and head.body is None  # not read, rather than empty


async def test_the_slow_release_shows_its_300_ms(demos: dict[str, Demo]) -> None:
    obs = await probes.http_probe(HttpProbe(url=demos["slow"].url + "/orders"), 3)
    assert obs.status == 200
    assert obs.response_time_ms is not None and obs.response_time_ms >= 300


async def test_a_never_ready_release_answers_503(demos: dict[str, Demo]) -> None:
    obs = await probes.http_probe(HttpProbe(url=demos["never_ready"].url + "/healthz"), 2)
    assert obs.connected and obs.status == 503 and obs.error is None


async def test_a_stopped_instance_is_not_connected_and_says_why() -> None:
    demo = _start_demo("1.0.0")
    try:
        _wait_listening(demo)
        assert (await probes.http_probe(HttpProbe(url=demo.url + "/healthz"), 2)).status == 200
    finally:
        demo.stop()
    obs = await probes.http_probe(HttpProbe(url=demo.url + "/healthz"), 2)
    assert not obs.connected and obs.status is None and obs.response_time_ms is None
    assert obs.error is not None and "ConnectError" in obs.error


async def test_a_listener_that_never_answers_times_out_alone(
        demos: dict[str, Demo], hung_port: int) -> None:
    timeout = 1.0
    hung = HttpProbe(url=f"http://127.0.0.1:{hung_port}/healthz")
    healthy = HttpProbe(url=demos["healthy"].url + "/healthz")
    started = time.monotonic()
    results = await probes.run_bounded({
        "hung-1": lambda: probes.http_probe(hung, timeout),
        "hung-2": lambda: probes.http_probe(hung, timeout),
        "hung-3": lambda: probes.http_probe(hung, timeout),
        "healthy": lambda: probes.http_probe(healthy, timeout),
        "tcp": lambda: probes.tcp_probe(TcpProbe(port=demos["healthy"].port), timeout),
    }, timeout + 0.5)
    elapsed = time.monotonic() - started
    assert timeout * 0.9 <= elapsed < timeout + 0.5, elapsed  # about one timeout, not three
    for name in ("hung-1", "hung-2", "hung-3"):
        obs = results[name]
        assert isinstance(obs, HttpObservation)
        assert obs.connected and obs.status is None
        assert obs.error == f"no answer within {timeout:g} s"
    healthy_obs = results["healthy"]
    assert isinstance(healthy_obs, HttpObservation) and healthy_obs.status == 200
    assert results["tcp"][0] is True  # type: ignore[index]


async def test_run_bounded_abandons_a_task_that_ignores_cancellation_at_its_timeout() -> None:
    released = asyncio.Event()

    async def stubborn() -> str:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            await asyncio.sleep(1.5)  # ignores the cancellation for a while
            released.set()
        return "late"

    async def quick() -> str:
        await asyncio.sleep(0.05)
        return "done"

    async def broken() -> str:
        raise ValueError("bad probe")

    started = time.monotonic()
    results = await probes.run_bounded({"stubborn": stubborn, "quick": quick, "broken": broken},
                                       0.5)
    elapsed = time.monotonic() - started
    assert elapsed < 0.9, elapsed
    assert isinstance(results["stubborn"], TimeoutError)
    assert results["quick"] == "done"
    assert isinstance(results["broken"], ValueError)
    await asyncio.wait_for(released.wait(), 3)  # let it finish within this test
    assert await probes.run_bounded({}, 1) == {}


# -- TLS certificates ------------------------------------------------------------------------


def _self_signed(directory: Path, days: int, san: x509.GeneralName | None = None
                 ) -> tuple[Path, Path]:
    """A certificate expiring `days` from now (in the past if negative), valid since a day
    before that or before now, whichever is earlier."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    not_after = now + dt.timedelta(days=days)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(min(now, not_after) - dt.timedelta(days=1))
            .not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName([san or x509.DNSName("localhost")]),
                           False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


@contextlib.asynccontextmanager
async def _https(cert_file: Path, key_file: Path) -> AsyncIterator[int]:
    """An HTTPS server on 127.0.0.1 answering 200 `ok` to any request: its port."""
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await writer.drain()
        writer.close()

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=context)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 1)


@pytest.fixture
async def tls_port(tmp_path: Path) -> AsyncIterator[int]:
    """An HTTPS server whose self-signed certificate expires in 3 days."""
    async with _https(*_self_signed(tmp_path, days=3)) as port:
        yield port


async def test_the_certificate_expiry_comes_from_the_connection_used(tls_port: int) -> None:
    probe = HttpProbe(url=f"https://localhost:{tls_port}/")
    async with httpx.AsyncClient(verify=False) as client:  # self-signed on purpose
        obs = await probes.http_probe(probe, 3, client)
    assert obs.status == 200 and obs.body == b"ok"
    three_days = 3 * 86400
    assert obs.certificate_expires_in_s is not None
    assert three_days - 120 < obs.certificate_expires_in_s <= three_days


async def test_an_unverifiable_certificate_fails_but_still_reports_its_expiry(tls_port: int
                                                                              ) -> None:
    obs = await probes.http_probe(HttpProbe(url=f"https://localhost:{tls_port}/"), 3)
    assert not obs.connected and obs.status is None  # TCP, but no TLS connection
    assert obs.ip in {"127.0.0.1", "::1"}
    assert obs.error is not None and "CERTIFICATE_VERIFY_FAILED" in obs.error
    assert obs.certificate_expires_in_s is not None
    assert 2 * 86400 < obs.certificate_expires_in_s <= 3 * 86400


def _judge(obs: HttpObservation, *conditions: str) -> tuple[CheckStatus, str]:
    """As the guardian judges an HTTP check (services.process.checks)."""
    status, message, _ = judge_http([parse_condition(c) for c in conditions], [], obs)
    return status, message


async def test_a_self_signed_certificate_for_an_ip_is_judged_on_its_expiry(tmp_path: Path
                                                                           ) -> None:
    cert_file, key_file = _self_signed(
        tmp_path, days=10, san=x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    ten_days = 10 * 86400
    async with _https(cert_file, key_file) as port:
        probe = HttpProbe(url=f"https://127.0.0.1:{port}/healthz")
        # The guardian's own client does not trust it: no TLS connection, expiry read anyway.
        untrusted = await probes.http_probe(probe, 3)
        trusting = ssl.create_default_context(cafile=str(cert_file))
        async with httpx.AsyncClient(verify=trusting, trust_env=False) as client:
            trusted = await probes.http_probe(probe, 3, client)

    assert not untrusted.connected and untrusted.status is None and untrusted.ip == "127.0.0.1"
    assert untrusted.error is not None and "CERTIFICATE_VERIFY_FAILED" in untrusted.error
    assert untrusted.certificate_expires_in_s is not None
    assert ten_days - 60 < untrusted.certificate_expires_in_s < ten_days
    status, message = _judge(untrusted, "[CERTIFICATE_EXPIRATION] > 1d")
    assert status is CheckStatus.FAIL  # without a connection, as the condition module says
    assert message.startswith("[CERTIFICATE_EXPIRATION] (not connected: ")

    # Trusted (the certificate is its own CA, and its IP SAN matches): the same reading.
    assert trusted.connected and trusted.status == 200 and trusted.error is None
    assert trusted.body == b"ok" and trusted.ip == "127.0.0.1"
    expires_in = trusted.certificate_expires_in_s
    assert expires_in is not None and ten_days - 60 < expires_in < ten_days
    status, message = _judge(trusted, "[STATUS] == 200", "[CERTIFICATE_EXPIRATION] > 30d")
    assert status is CheckStatus.FAIL
    shown = format_duration(expires_in * 1000)
    assert shown.startswith("9d23h")
    assert message == f"[CERTIFICATE_EXPIRATION] ({shown}) > 30d"
    status, message = _judge(trusted, "[STATUS] == 200", "[CERTIFICATE_EXPIRATION] > 1d")
    assert status is CheckStatus.PASS, message


async def test_an_expired_certificate_reports_a_negative_expiry(tmp_path: Path) -> None:
    cert_file, key_file = _self_signed(
        tmp_path, days=-2, san=x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    two_days_ago = -2 * 86400
    async with _https(cert_file, key_file) as port:
        probe = HttpProbe(url=f"https://127.0.0.1:{port}/healthz")
        trusting = ssl.create_default_context(cafile=str(cert_file))
        async with httpx.AsyncClient(verify=trusting, trust_env=False) as client:
            refused = await probes.http_probe(probe, 3, client)  # trusted, but expired
        async with httpx.AsyncClient(verify=False, trust_env=False) as client:
            unchecked = await probes.http_probe(probe, 3, client)

    assert not refused.connected and refused.status is None
    assert refused.error is not None and "certificate has expired" in refused.error
    assert refused.certificate_expires_in_s is not None
    assert two_days_ago - 60 < refused.certificate_expires_in_s < two_days_ago

    assert unchecked.connected and unchecked.status == 200
    expires_in = unchecked.certificate_expires_in_s
    assert expires_in is not None and two_days_ago - 60 < expires_in < two_days_ago
    status, message = _judge(unchecked, "[CERTIFICATE_EXPIRATION] > 0")
    assert status is CheckStatus.FAIL
    assert message == f"[CERTIFICATE_EXPIRATION] ({format_duration(expires_in * 1000)}) > 0"
    assert message.startswith("[CERTIFICATE_EXPIRATION] (-2d")


# -- TCP -------------------------------------------------------------------------------------


async def test_tcp_probe_on_an_open_and_a_closed_port(demos: dict[str, Demo]) -> None:
    ok, ms, message = await probes.tcp_probe(TcpProbe(port=demos["healthy"].port), 1)
    assert ok and ms is not None and ms >= 0 and "connected in" in message
    closed = free_ports(1)[0]
    ok, ms, message = await probes.tcp_probe(TcpProbe(port=closed), 1)
    assert not ok and ms is None
    assert f"127.0.0.1:{closed}" in message and "refused" in message.lower()


# -- dependencies ----------------------------------------------------------------------------


def _password(url: str) -> str | None:
    return urlsplit(url).password


async def test_the_stacks_postgres_answers_select_1(database_url: str) -> None:
    ok, ms, message = await probes.dependency_probe(
        DependencyProbe(kind="postgres", url_env="GUARDIANS_DATABASE_URL"), 5)
    assert ok, message
    assert ms is not None and ms > 0 and "SELECT 1 answered" in message
    secret = _password(database_url)
    assert secret is None or secret not in message


async def test_a_postgres_failure_names_the_server_but_never_the_password(
        database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    parts = urlsplit(database_url)
    host = f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname
    user = parts.username or "postgres"
    monkeypatch.setenv("GUARDIANS_TEST_BAD_DB_URL",
                       f"postgresql://{user}:Sup3r%2Fsecret@{host}/no_such_database_here")
    ok, ms, message = await probes.dependency_probe(
        DependencyProbe(kind="postgres", url_env="GUARDIANS_TEST_BAD_DB_URL"), 5)
    assert not ok and ms is None
    assert "no_such_database_here" in message and str(parts.hostname) in message
    for form in ("Sup3r", "secret"):
        assert form not in message


async def test_the_stacks_kafka_answers_a_metadata_request(bootstrap: str) -> None:
    ok, ms, message = await probes.dependency_probe(
        DependencyProbe(kind="kafka", url_env="GUARDIANS_KAFKA_BOOTSTRAP"), 5)
    assert ok, message
    assert ms is not None and "metadata answered (1 broker)" in message


async def test_a_kafka_nobody_runs_fails_within_the_timeout(monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    monkeypatch.setenv("GUARDIANS_TEST_NO_KAFKA", f"127.0.0.1:{free_ports(1)[0]}")
    started = time.monotonic()
    ok, _, message = await probes.dependency_probe(
        DependencyProbe(kind="kafka", url_env="GUARDIANS_TEST_NO_KAFKA"), 2)
    assert not ok and "kafka 127.0.0.1:" in message
    assert time.monotonic() - started < 2.5


async def test_an_http_dependency_needs_a_2xx(demos: dict[str, Demo],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GUARDIANS_TEST_DEP_OK", demos["healthy"].url + "/healthz")
    monkeypatch.setenv("GUARDIANS_TEST_DEP_503", demos["never_ready"].url + "/healthz")
    ok, _, message = await probes.dependency_probe(
        DependencyProbe(kind="http", url_env="GUARDIANS_TEST_DEP_OK"), 2)
    assert ok and "HTTP 200" in message
    ok, _, message = await probes.dependency_probe(
        DependencyProbe(kind="http", url_env="GUARDIANS_TEST_DEP_503"), 2)
    assert not ok and "HTTP 503" in message


async def test_a_missing_environment_variable_is_a_failure_naming_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GUARDIANS_TEST_UNSET_URL", raising=False)
    for kind in ("postgres", "kafka", "http"):
        ok, ms, message = await probes.dependency_probe(
            DependencyProbe(kind=kind, url_env="GUARDIANS_TEST_UNSET_URL"), 1)
        assert (ok, ms) == (False, None)
        assert "GUARDIANS_TEST_UNSET_URL is not set" in message


# -- ports, processes, resources ---------------------------------------------------------------


def test_port_findings_against_a_real_listener(demos: dict[str, Demo]) -> None:
    demo = demos["healthy"]
    unused = free_ports(1)[0]
    found = system.listeners([demo.port, unused])
    assert [p.pid for p in found[demo.port]] == [demo.proc.pid]
    assert found[unused] == []
    ok, conflict, missing = system.port_findings(
        [ExpectedPort(port=demo.port, process="demo.app"),
         ExpectedPort(port=demo.port, process="nginx"),
         ExpectedPort(port=unused, process="demo.app")], found)
    assert ok.status == "ok", ok.message
    assert conflict.status == "conflict"
    assert f"pid {demo.proc.pid} (" in conflict.message and "demo.app" in conflict.message
    assert "'nginx'" in conflict.message
    assert missing.status == "missing"


def test_find_processes_and_their_usage(demos: dict[str, Demo]) -> None:
    demo = demos["healthy"]
    [found] = system.find_processes(f"demo.app --port {demo.port} ")
    assert found.pid == demo.proc.pid and found.status in {"sleeping", "running"}
    assert found.create_time == pytest.approx(psutil.Process(demo.proc.pid).create_time())
    assert system.find_processes(f"no-such-process-{os.getpid()}-marker") == []
    cores = psutil.cpu_count() or 1
    first = system.process_usage([demo.proc.pid])[demo.proc.pid]  # since it started
    time.sleep(0.2)
    second = system.process_usage([demo.proc.pid])[demo.proc.pid]  # over the 0.2 s
    for usage in (first, second):
        assert 0 <= usage.cpu_percent <= 100 * cores
        assert 5 < usage.rss_mb < 1024
        assert usage.open_files is not None and usage.open_files >= 3
        assert 0 < usage.uptime_s < 3600
    assert second.uptime_s >= first.uptime_s


def test_usage_of_a_stopped_process_is_left_out() -> None:
    demo = _start_demo("1.0.0")
    try:
        _wait_listening(demo)
        assert demo.proc.pid in system.process_usage([demo.proc.pid])
    finally:
        demo.stop()
    assert system.process_usage([demo.proc.pid]) == {}


def test_host_usage_is_in_range(tmp_path: Path) -> None:
    for _ in range(2):  # the first since boot, the second since the first
        usage = system.host_usage(Path("/"))
        assert 0 <= usage.cpu_percent <= 100
        assert 0 < usage.memory_percent <= 100
        assert usage.disk_percent is not None and 0 < usage.disk_percent <= 100
        time.sleep(0.1)
    gone = system.host_usage(tmp_path / "no-such-dir")
    assert gone.disk_percent is None and gone.disk_error is not None
