"""The stack's edges the deploy guardian stands on, for real: nginx splits traffic by upstream
weight after a reload, Prometheus discovers an instance from a file_sd file and scrapes it (and
evaluates the guardians' alert rules), and the demo application's releases behave as their
files say.

Needs `stack/stack.sh up` and `source .cache/stack.env` (the GUARDIANS_NGINX_* and
GUARDIANS_PROMETHEUS_* variables). Every demo process a test starts is stopped at its end, and
every site or target file it writes is removed; names carry a random suffix so nothing collides
with other tests using the same nginx and Prometheus.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from demo.loadgen import generate

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
RELEASES = ROOT / "demo" / "releases"
ALERT_RULES = ROOT / "stack" / "observability" / "prometheus-rules.yml"
STACK_VARIABLES = (
    "GUARDIANS_PROMETHEUS_URL",
    "GUARDIANS_PROMETHEUS_TARGETS_DIR",
    "GUARDIANS_NGINX_BIN",
    "GUARDIANS_NGINX_PREFIX",
    "GUARDIANS_NGINX_CONF",
    "GUARDIANS_NGINX_SITES_DIR",
)
START_TIMEOUT_S = 10.0
DISCOVERY_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class Stack:
    prometheus_url: str
    targets_dir: Path
    nginx: list[str]
    """nginx with the stack's -p PREFIX -c CONF: add `-s reload`."""
    sites_dir: Path

    def reload_nginx(self) -> None:
        subprocess.run([*self.nginx, "-s", "reload"], check=True, capture_output=True)


@dataclass(frozen=True)
class Demo:
    port: int
    version: str
    process: asyncio.subprocess.Process

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"


StartDemo = Callable[..., Awaitable[Demo]]


@pytest.fixture(scope="module")
def stack() -> Stack:
    missing = [name for name in STACK_VARIABLES if not os.environ.get(name)]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not set: run `make stack-up` and `source .cache/stack.env`"
        )
    env = os.environ
    return Stack(
        prometheus_url=env["GUARDIANS_PROMETHEUS_URL"],
        targets_dir=Path(env["GUARDIANS_PROMETHEUS_TARGETS_DIR"]),
        nginx=[
            env["GUARDIANS_NGINX_BIN"],
            "-p",
            env["GUARDIANS_NGINX_PREFIX"],
            "-c",
            env["GUARDIANS_NGINX_CONF"],
        ],
        sites_dir=Path(env["GUARDIANS_NGINX_SITES_DIR"]),
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def unique(name: str) -> str:
    return f"edges-{name}-{uuid.uuid4().hex[:8]}"


async def wait_answering(url: str, timeout_s: float = START_TIMEOUT_S) -> httpx.Response:
    """The first HTTP response from `url` (any status), retrying while nothing answers."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=2) as client:
        while True:
            try:
                return await client.get(url)
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)


@pytest.fixture
async def start_demo() -> AsyncIterator[StartDemo]:
    """Start demo.app processes (listening before this returns); all stopped at the end."""
    processes: list[asyncio.subprocess.Process] = []

    async def start(version: str, *, service: str, release: str | None = None) -> Demo:
        port = free_port()
        argv = ["-m", "demo.app", "--port", str(port), "--version", version, "--service", service]
        if release is not None:
            argv += ["--release", str(RELEASES / release)]
        process = await asyncio.create_subprocess_exec(
            sys.executable, *argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        processes.append(process)
        await wait_answering(f"http://127.0.0.1:{port}/healthz")
        return Demo(port, version, process)

    try:
        yield start
    finally:
        for process in processes:
            if process.returncode is None:
                process.terminate()
        for process in processes:
            try:
                await asyncio.wait_for(process.wait(), 5)
            except TimeoutError:
                process.kill()
                await process.wait()


# ---------------------------------------------------------------------------------------------
# nginx: a weighted upstream, applied with a reload


async def test_nginx_splits_traffic_80_20_by_upstream_weight_after_a_reload(
    stack: Stack, start_demo: StartDemo
) -> None:
    service = unique("split")
    a = await start_demo("a", service=service)
    b = await start_demo("b", service=service)
    port = free_port()
    site = stack.sites_dir / f"{service}.conf"
    site.write_text(
        f"upstream {service} {{\n"
        f"  server 127.0.0.1:{a.port} weight=80;\n"
        f"  server 127.0.0.1:{b.port} weight=20;\n"
        "}\n"
        "server {\n"
        f"  listen 127.0.0.1:{port};\n"
        f"  location / {{ proxy_pass http://{service}; }}\n"
        "}\n"
    )
    try:
        stack.reload_nginx()
        # The reload is asynchronous: the new workers serve the new site a moment later.
        answer = await wait_answering(f"http://127.0.0.1:{port}/")
        assert answer.headers["x-demo-version"] in ("a", "b")

        report = await generate(f"http://127.0.0.1:{port}/", rate=100, duration=5)

        assert report.errors == 0 and report.dropped == 0, report.summary()
        assert report.by_status == {200: report.sent}, report.summary()
        assert report.sent >= 450
        assert abs(report.share("b") - 0.2) <= 0.05, report.summary()
        assert set(report.by_version) == {"a", "b"}
    finally:
        site.unlink(missing_ok=True)
        stack.reload_nginx()


# ---------------------------------------------------------------------------------------------
# Prometheus: file_sd discovery and the demo's metrics


async def prometheus_query(stack: Stack, query: str) -> list[dict[str, object]]:
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(f"{stack.prometheus_url}/api/v1/query", params={"query": query})
    response.raise_for_status()
    body = response.json()
    assert body["status"] == "success", body
    result: list[dict[str, object]] = body["data"]["result"]
    return result


async def test_prometheus_discovers_a_file_sd_target_and_scrapes_its_requests(
    stack: Stack, start_demo: StartDemo
) -> None:
    service = unique("sd")
    demo = await start_demo("1.0.0", service=service)
    labels = {"service": service, "version": "1.0.0", "track": "stable", "env": "test", "slot": "a"}
    target = stack.targets_dir / f"{service}.json"
    # Written whole, then renamed: Prometheus must never read half a file.
    partial = target.with_suffix(".json.tmp")
    partial.write_text(json.dumps([{"targets": [f"127.0.0.1:{demo.port}"], "labels": labels}]))
    partial.rename(target)
    try:
        report = await generate(demo.url, rate=20, duration=1)
        assert report.by_status == {200: report.sent}

        query = f'demo_http_requests_total{{service="{service}",code="200"}}'
        deadline = time.monotonic() + DISCOVERY_TIMEOUT_S
        while not (result := await prometheus_query(stack, query)):
            assert time.monotonic() < deadline, f"{query} did not appear in {DISCOVERY_TIMEOUT_S} s"
            await asyncio.sleep(0.5)

        [series] = result
        metric = series["metric"]
        assert isinstance(metric, dict)
        assert {key: metric.get(key) for key in labels} == labels
        assert metric["job"] == "managed"
        assert metric["instance"] == f"127.0.0.1:{demo.port}"
    finally:
        target.unlink(missing_ok=True)


async def test_prometheus_evaluates_the_guardians_alert_rules_from_this_checkout(
    stack: Stack,
) -> None:
    """stack/stack.sh renders rule_files to this checkout's rules and reloads on a change."""
    shipped = yaml.safe_load(ALERT_RULES.read_text())
    expected = {g["name"]: [r["alert"] for r in g["rules"]] for g in shipped["groups"]}
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(f"{stack.prometheus_url}/api/v1/rules")
    response.raise_for_status()
    body = response.json()
    assert body["status"] == "success", body
    groups = {g["name"]: g for g in body["data"]["groups"] if g["name"] in expected}
    assert set(groups) == set(expected), "run `stack/stack.sh up` to reload the rules"
    for name, group in groups.items():
        assert Path(group["file"]).resolve() == ALERT_RULES, group["file"]
        assert [r["name"] for r in group["rules"]] == expected[name], (
            f"{name}: the loaded rules differ from {ALERT_RULES.name}: run `stack/stack.sh up`"
        )
        for rule in group["rules"]:
            assert rule["type"] == "alerting" and rule["health"] != "err", rule


# ---------------------------------------------------------------------------------------------
# The releases, for real


async def test_a_crashing_release_exits_3_at_once() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "demo.app",
        "--port",
        str(free_port()),
        "--version",
        "9.9.9",
        "--release",
        str(RELEASES / "crash.json"),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), START_TIMEOUT_S)
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
    assert process.returncode == 3
    assert b"crash_at_start" in stderr


async def test_a_never_ready_release_answers_503_on_healthz_but_serves_requests(
    start_demo: StartDemo,
) -> None:
    demo = await start_demo("4.0.0", service=unique("never"), release="never-ready.json")
    async with httpx.AsyncClient(timeout=2) as client:
        health = await client.get(f"{demo.url}healthz")
        answer = await client.get(demo.url)
    assert health.status_code == 503
    assert health.headers["x-demo-version"] == "4.0.0"
    assert answer.status_code == 200


async def test_an_error_rate_release_fails_exactly_its_share_of_requests(
    start_demo: StartDemo,
) -> None:
    demo = await start_demo("3.0.0", service=unique("errors"), release="3.0.0.json")
    report = await generate(demo.url, rate=100, duration=1)
    assert report.sent == 100 and report.errors == 0, report.summary()
    assert report.by_status == {200: 80, 500: 20}
    assert report.share("3.0.0") == 1.0


async def test_a_demo_instance_stops_promptly_on_sigterm(start_demo: StartDemo) -> None:
    demo = await start_demo("1.0.0", service=unique("stop"))
    started = time.monotonic()
    demo.process.terminate()
    assert await asyncio.wait_for(demo.process.wait(), 5) == 0
    assert time.monotonic() - started < 2
