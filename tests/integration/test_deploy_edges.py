"""The deploy guardian's outer edges against real servers: the Prometheus client on the
stack's Prometheus (instant and range queries, a PromQL error, no data), and the `http`
target's webhooks against a real local HTTP server (2xx goes, 5xx is retried, 4xx is not)."""

from __future__ import annotations

import asyncio
import json
import math
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from services.deploy.adapters.prometheus import PrometheusClient
from services.deploy.adapters.targets import Env, Release, TargetError
from services.deploy.adapters.webhooks import HttpDeployTarget
from services.runtime.config import HttpTarget

pytestmark = pytest.mark.integration
RELEASE = Release("shop-7", "shop", "7.0.0", "pkg:oci/shop@sha256:abc", "6.0.0")


@pytest.fixture
async def prometheus() -> AsyncIterator[PrometheusClient]:
    client = PrometheusClient(os.environ.get("GUARDIANS_PROMETHEUS_URL",
                                             "http://127.0.0.1:9090"))
    try:
        yield client
    finally:
        await client.aclose()


async def test_prometheus_answers_instant_and_range_queries(
    prometheus: PrometheusClient,
) -> None:
    assert await prometheus.ready()
    up = await prometheus.query('up{job="managed"} or vector(1)')
    assert up.error is None and up.values and all(v in (0.0, 1.0) for v in up.values)
    end = datetime.now(UTC)
    series = await prometheus.query_range("vector(2)", end - timedelta(seconds=10), end, 1.0)
    assert series.error is None and len(series.values) >= 10
    assert set(series.values) == {2.0}


async def test_prometheus_no_data_nan_and_errors_are_told_apart(
    prometheus: PrometheusClient,
) -> None:
    empty = await prometheus.query('demo_no_such_metric_total{service="nobody"}')
    assert empty.error is None and empty.values == ()
    nan = await prometheus.query("vector(0) / vector(0)")
    assert nan.error is None and len(nan.values) == 1 and math.isnan(nan.values[0])
    bad = await prometheus.query("sum(rate(x[5m])")
    assert bad.error is not None and "bad_data" in bad.error


class Hooks:
    """A real HTTP server answering each path with a configured status, recording calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, object]]] = []
        self.status: dict[str, list[int]] = {}
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        path = head.split(" ")[1]
        length = next((int(line.split(":")[1]) for line in head.split("\r\n")
                       if line.lower().startswith("content-length:")), 0)
        body = json.loads(await reader.readexactly(length)) if length else {}
        self.calls.append((path, body))
        codes = self.status.get(path, [200])
        code = codes.pop(0) if len(codes) > 1 else codes[0]
        writer.write(f"HTTP/1.1 {code} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                     .encode())
        await writer.drain()
        writer.close()


async def test_the_http_target_goes_on_2xx_retries_5xx_and_stops_on_4xx() -> None:
    hooks = Hooks()
    port = await hooks.start()
    base = f"http://127.0.0.1:{port}"

    def hook(path: str) -> dict[str, object]:
        return {"url": f"{base}{path}", "timeout_seconds": 2, "retries": 2}

    target = HttpDeployTarget(HttpTarget.model_validate({
        "deploy": hook("/deploy/{service}/{version}"), "set_weight": hook("/weight"),
        "promote": hook("/promote"), "rollback": hook("/rollback"), "ready": hook("/ready"),
    }))
    await target.deploy(Env.CANARY, RELEASE)
    path, body = hooks.calls[-1]
    assert path == "/deploy/shop/7.0.0"
    assert body["env"] == "canary" and body["idempotency_key"] == "shop-7:deploy"
    hooks.status["/weight"] = [503, 502, 200]
    await target.set_weight(RELEASE, 20)
    weights = [b for p, b in hooks.calls if p == "/weight"]
    assert len(weights) == 3 and weights[-1]["weight"] == "20"
    hooks.status["/promote"] = [403]
    with pytest.raises(TargetError, match="HTTP 403"):
        await target.promote(RELEASE)
    assert sum(1 for p, _ in hooks.calls if p == "/promote") == 1
    hooks.status["/ready"] = [500]
    assert not (await target.ready(Env.CANARY, RELEASE)).ready
    assert (await target.rollback(RELEASE)).version == "6.0.0"
    assert hooks.server is not None
    hooks.server.close()
