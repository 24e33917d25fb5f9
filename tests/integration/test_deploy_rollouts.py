"""The deploy guardian on the real stack: Kafka, PostgreSQL, nginx, Prometheus, and demo
app processes under steady load.

One guardian process drives several services at once, each with its own ports and plan.
Every service first gets a stable 1.0.0 (a first release, which skips the canary steps as
Argo Rollouts does), then the version under test. Half-way, the guardian is SIGKILLed and
started again: every rollout in flight must resume from its checkpoint and finish once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from demo.loadgen import generate
from schemas.base import Event
from schemas.events.deploy import DeployRollbackRequested, DeployRolloutDecided, RolloutDecision
from schemas.events.migration import ApprovalPath, MigrationApproved, RiskLevel
from schemas.signing import SigningKey
from schemas.topics import REGISTRY
from services.runtime.keyring import ensure_keyring
from services.runtime.topics import ensure_topics
from tests.support.kafka import send_events, wait_for
from tests.support.ports import free_ports

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
RELEASES = ROOT / "demo" / "releases"
NEEDS = ("GUARDIANS_NGINX_SITES_DIR", "GUARDIANS_PROMETHEUS_TARGETS_DIR")

ERROR_RATE = ('(sum(rate(demo_http_requests_total{service="{service}",track="{track}",'
              'code=~"5.."}[{window}])) or vector(0)) / '
              'sum(rate(demo_http_requests_total{service="{service}",track="{track}"}'
              '[{window}]))')
LATENCY_P90 = ('histogram_quantile(0.9, sum by (le) (rate('
               'demo_http_request_duration_seconds_bucket{service="{service}",'
               'track="{track}"}[{window}])))')
NO_SUCH_METRIC = 'sum(rate(demo_no_such_metric_total{service="{service}"}[{window}]))'


def _metrics(error_rate: bool = True, latency: bool = True, no_data: bool = False
             ) -> list[dict[str, Any]]:
    metrics: list[dict[str, Any]] = []
    if error_rate:
        metrics.append({"name": "error-rate", "query": ERROR_RATE, "success": "result < 0.05",
                        "critical": True})
    if latency:
        metrics.append({"name": "latency-p90", "query": LATENCY_P90,
                        "success": "result < 0.25"})
    if no_data:
        metrics.append({"name": "orders", "query": NO_SUCH_METRIC, "success": "result < 1"})
    return metrics


def _template(metrics: list[dict[str, Any]], count: int = 3) -> dict[str, Any]:
    # Two inconclusive measurements are tolerated: a new instance has no data until
    # Prometheus has discovered it and scraped it twice, which takes longer on a busy machine.
    return {"interval_seconds": 2, "count": count, "initial_delay_seconds": 5,
            "inconclusive_limit": 2, "window": "10s", "metrics": metrics}


@dataclass
class Service:
    name: str
    steps: list[dict[str, Any]]
    version: str
    release: str
    analysis: dict[str, Any] = field(default_factory=dict)
    monitoring: dict[str, Any] = field(default_factory=lambda: {"seconds": 3})
    ports: list[int] = field(default_factory=list)
    """listen, staging, blue, green: drawn for all services at once by `_services`."""
    change_v1: str = ""
    change: str = ""

    def config(self) -> dict[str, Any]:
        listen, staging, blue, green = self.ports
        return {"deploy": {
            "target": {
                "kind": "local",
                "command": ["{python}", "-m", "demo.app", "--port", "{port}", "--version",
                            "{version}", "--release", "{artifact}", "--service", "{service}"],
                "listen_port": listen, "staging_port": staging, "slot_ports": [blue, green],
                "ready_timeout_seconds": 6, "workdir": str(ROOT),
            },
            "staging_tests": [{"name": "home", "http": {"path": "/", "repeat": 3}}],
            "steps": self.steps,
            "analysis": self.analysis,
            "monitoring": self.monitoring,
            "inconclusive_timeout_seconds": 90,
        }}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports[0]}/"


def _services() -> dict[str, Service]:
    """The services under test, their 4 ports each drawn in one call, so that no two of them
    share one. Drawn per service, 32 ports from 12,000 collide in ~4 % of runs; a service's
    nginx listen port that another service's app holds cannot be bound, and that reload fails
    (ConnectError for 10 s: seen once in this session's clean-clone CI)."""
    tag = uuid.uuid4().hex[:5]
    canary = {"canary": _template(_metrics()), "prod": _template(_metrics())}
    services = {s.name.split("-")[0]: s for s in [
        Service(f"good-{tag}", [{"set_weight": 50}, {"analysis": "canary"}], "2.0.0",
                "2.0.0.json", canary, {"seconds": 6, "analysis": "prod"}),
        Service(f"errors-{tag}", [{"set_weight": 50}, {"analysis": "canary"}], "3.0.0",
                "3.0.0.json", canary),
        Service(f"slow-{tag}", [{"set_weight": 50}, {"analysis": "canary"}], "2.1.0-slow",
                "slow.json", canary),
        Service(f"unready-{tag}", [{"set_weight": 50}], "2.2.0", "never-ready.json"),
        Service(f"nodata-{tag}", [{"set_weight": 50}, {"analysis": "nodata"}], "2.3.0",
                "2.0.0.json", {"nodata": _template(_metrics(False, False, True))}),
        Service(f"emergency-{tag}", [{"set_weight": 50}, {"pause": {"seconds": 2}}], "3.0.1",
                "3.0.0.json", {"prod": _template(_metrics(latency=False), count=5)},
                {"seconds": 12, "analysis": "prod"}),
        Service(f"share-{tag}", [{"set_weight": 30}, {"pause": {}}], "2.4.0", "2.0.0.json"),
        Service(f"resume-{tag}", [{"set_weight": 30}, {"pause": {"seconds": 12}},
                                  {"analysis": "canary"}], "2.5.0", "2.0.0.json", canary),
    ]}
    ports = free_ports(4 * len(services))
    for i, service in enumerate(services.values()):
        service.ports = ports[4 * i:4 * i + 4]
    return services


@dataclass
class Stack:
    bootstrap: str
    keys: Path
    services: dict[str, Service]
    folder: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    loads: list[asyncio.Task[Any]] = field(default_factory=list)
    stop_load: asyncio.Event = field(default_factory=asyncio.Event)

    def start(self) -> None:
        log = (self.folder / f"deploy-{self.restarts}.log").open("wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "services.deploy"], cwd=ROOT,
                                     env=self.env, stdout=log, stderr=log)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.restarts += 1

    def key(self, name: str) -> SigningKey:
        return SigningKey.from_text(name, (self.keys / f"{name}.key").read_text())

    async def approve(self, service: Service, version: str, release: str,
                      previous: str | None) -> str:
        change_id = f"{service.name}-{version}-{uuid.uuid4().hex[:4]}"
        await send_events(self.bootstrap, REGISTRY, [MigrationApproved(
            change_id=change_id, service=service.name, version=version,
            previous_version=previous, artifact=str(RELEASES / release),
            risk=RiskLevel.LOW, approval=ApprovalPath.AUTOMATIC,
        )])
        return change_id

    async def command(self, event: Event, signer: str = "ops") -> None:
        await send_events(self.bootstrap, REGISTRY, [event], signer=self.key(signer))

    async def one(self, topic: str, change_id: str, timeout_s: float = 120
                  ) -> dict[str, Any]:
        found = await wait_for(self.bootstrap, topic, subject=change_id, timeout_s=timeout_s)
        assert found, f"no {topic} for {change_id} within {timeout_s} s\n{self.tail()}"
        body: dict[str, Any] = json.loads(found[0].value)
        return body

    async def all(self, topic: str, change_id: str, within_s: float = 3
                  ) -> list[dict[str, Any]]:
        found = await wait_for(self.bootstrap, topic, subject=change_id, count=1000,
                               timeout_s=within_s)
        return [json.loads(m.value) for m in found]

    async def outcome(self, change_id: str, timeout_s: float = 150) -> tuple[str, dict[str, Any]]:
        """The first terminal event of a rollout: completed, rolled_back or failed."""
        async def first(topic: str) -> tuple[str, dict[str, Any]]:
            return topic, await self.one(topic, change_id, timeout_s)

        tasks = [asyncio.create_task(first(t)) for t in
                 ("deploy.completed", "deploy.rolled_back", "deploy.failed")]
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        return done.pop().result()

    def tail(self) -> str:
        logs = sorted(self.folder.glob("deploy-*.log"))
        return "\n".join(p.read_text()[-3000:] for p in logs)


@pytest.fixture(scope="module")
async def stack(bootstrap: str, tmp_path_factory: pytest.TempPathFactory
                ) -> AsyncIterator[Stack]:
    missing = [n for n in NEEDS if not os.environ.get(n)]
    assert not missing, f"the stack's nginx/Prometheus are not configured: {missing}"
    await ensure_topics(bootstrap, REGISTRY.all())
    folder = tmp_path_factory.mktemp("deploy")
    keys = folder / "keys"
    trusted = ensure_keyring(keys, ("deploy", "ops", "mallory"))
    services = _services()
    config = folder / "guardians.yaml"
    config.write_text(yaml.safe_dump(
        {"services": {s.name: s.config() for s in services.values()}}, sort_keys=False))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GUARDIANS_HTTP_PORT": "0",
           "GUARDIANS_CONFIG_FILE": str(config), "GUARDIANS_TRUSTED_KEYS_FILE": str(trusted),
           "GUARDIANS_SIGNER": "deploy", "GUARDIANS_STATE_DIR": str(folder / "state"),
           "GUARDIANS_SIGNING_KEY": (keys / "deploy.key").read_text().strip()}
    s = Stack(bootstrap, keys, services, folder, env)
    s.start()
    for service in services.values():  # steady traffic through nginx, like Flagger's tester
        s.loads.append(asyncio.create_task(generate(service.url, 15, None, s.stop_load)))
    try:
        firsts = {name: await s.approve(svc, "1.0.0", "1.0.0.json", None)
                  for name, svc in services.items()}
        for name, change_id in firsts.items():
            topic, body = await s.outcome(change_id)
            assert topic == "deploy.completed", f"{name} 1.0.0: {topic} {body}\n{s.tail()}"
            services[name].change_v1 = change_id
        for svc in services.values():
            svc.change = await s.approve(svc, svc.version, svc.release, "1.0.0")
        # SIGKILL mid-canary: once `resume` sits in its 12 s pause at weight 30.
        resume = services["resume"]
        await s.one("deploy.stage.changed", resume.change)
        for _ in range(300):
            stages = await s.all("deploy.stage.changed", resume.change, within_s=0.5)
            if any(e.get("canary_weight") == 30 for e in stages):
                break
        s.kill()
        await asyncio.sleep(1)
        s.start()
        yield s
    finally:
        s.stop_load.set()
        await asyncio.gather(*s.loads, return_exceptions=True)
        if s.proc is not None and s.proc.poll() is None:
            s.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                s.proc.wait(timeout=30)
        await _teardown(s)
        print(s.tail())


async def _teardown(s: Stack) -> None:
    from services.deploy.adapters.local import LocalDeployTarget
    from services.runtime.config import load_config
    from services.runtime.settings import RuntimeSettings

    settings = RuntimeSettings(state_dir=s.folder / "state")
    config = load_config(Path(s.env["GUARDIANS_CONFIG_FILE"]))
    for service in s.services.values():
        target = config.service(service.name).deploy.target
        assert target is not None and target.kind == "local"
        local = LocalDeployTarget(target, settings)
        await local.teardown(service.name)
        await local.close()
    await _reload_nginx()


async def _reload_nginx() -> None:
    argv = [os.environ.get("GUARDIANS_NGINX_BIN", "nginx")]
    if os.environ.get("GUARDIANS_NGINX_PREFIX"):
        argv += ["-p", os.environ["GUARDIANS_NGINX_PREFIX"]]
    if os.environ.get("GUARDIANS_NGINX_CONF"):
        argv += ["-c", os.environ["GUARDIANS_NGINX_CONF"]]
    subprocess.run([*argv, "-s", "reload"], check=False, capture_output=True)


async def _served_version(url: str, n: int = 20) -> set[str]:
    async with httpx.AsyncClient(timeout=5) as client:
        answers = [await client.get(url) for _ in range(n)]
    return {r.headers.get("x-demo-version", "?") for r in answers}


def _stages(events: list[dict[str, Any]]) -> list[str]:
    return [e["stage"] for e in events]


async def test_a_good_version_goes_through_every_stage_and_completes(stack: Stack) -> None:
    svc = stack.services["good"]
    topic, body = await stack.outcome(svc.change)
    assert topic == "deploy.completed", body
    assert body["version"] == "2.0.0" and body["previous_version"] == "1.0.0"
    stages = _stages(await stack.all("deploy.stage.changed", svc.change))
    for stage in ("staging", "staging_tests", "canary", "production", "monitoring",
                  "completed"):
        assert stage in stages, stages
    measured = await stack.all("deploy.analysis.measured", svc.change)
    canary = [m for m in measured if m["stage"] == "canary"]
    assert {m["metric"] for m in canary} == {"error-rate", "latency-p90"}
    assert all(m["outcome"] == "successful" for m in canary), canary
    assert [m for m in measured if m["stage"] == "monitoring"], "production was not measured"
    assert await _served_version(svc.url) == {"2.0.0"}


async def test_a_completed_deploy_is_rolled_back_on_a_signed_request(stack: Stack) -> None:
    svc = stack.services["good"]
    topic, _ = await stack.outcome(svc.change)
    assert topic == "deploy.completed"
    await stack.command(DeployRollbackRequested(
        change_id=svc.change, service=svc.name, requested_by="ops",
        reason="customer reports wrong totals"))
    body = await stack.one("deploy.rolled_back", svc.change, timeout_s=60)
    assert body["trigger"] == "requested" and body["restored_version"] == "1.0.0"
    assert body["reason"] == "customer reports wrong totals"
    assert await _served_version(svc.url) == {"1.0.0"}


async def test_a_version_with_20_percent_errors_is_rolled_back_with_the_rate_measured(
    stack: Stack,
) -> None:
    svc = stack.services["errors"]
    topic, body = await stack.outcome(svc.change)
    assert topic == "deploy.rolled_back", body
    assert body["trigger"] == "analysis_failed" and body["stage"] == "canary"
    breach = body["breach"]
    assert breach is not None, body
    assert breach["metric"] == "error-rate" and breach["condition"]
    assert 0.1 <= breach["values"][0] <= 0.3, breach
    assert body["restored_version"] == "1.0.0" and body["rollback_seconds"] < 5
    assert await _served_version(svc.url) == {"1.0.0"}


async def test_a_version_300_ms_slower_is_rolled_back(stack: Stack) -> None:
    svc = stack.services["slow"]
    topic, body = await stack.outcome(svc.change)
    assert topic == "deploy.rolled_back", body
    assert body["breach"] is not None and body["breach"]["metric"] == "latency-p90", body
    assert body["breach"]["values"][0] >= 0.25


async def test_a_version_that_never_becomes_ready_fails_in_staging(stack: Stack) -> None:
    svc = stack.services["unready"]
    topic, body = await stack.outcome(svc.change)
    assert topic == "deploy.failed", body
    assert body["failure"] == "staging_not_ready" and body["stage"] == "staging"
    assert "never became ready" in body["reason"] and "503" in body["reason"], body
    stages = _stages(await stack.all("deploy.stage.changed", svc.change))
    assert "canary" not in stages


async def test_a_metric_without_data_is_inconclusive_and_pauses_then_abort_rolls_back(
    stack: Stack,
) -> None:
    svc = stack.services["nodata"]
    paused = None
    for _ in range(120):
        events = await stack.all("deploy.stage.changed", svc.change, within_s=1)
        paused = next((e for e in events if e["stage"] == "paused"), None)
        if paused:
            break
    assert paused is not None, "the rollout never paused"
    assert "inconclusive" in paused["reason"] and "no data" in paused["reason"], paused
    measured = await stack.all("deploy.analysis.measured", svc.change)
    assert measured and all(m["outcome"] == "inconclusive" for m in measured), measured
    assert not await wait_for(stack.bootstrap, "deploy.completed", subject=svc.change,
                              timeout_s=1)
    await stack.command(DeployRolloutDecided(
        change_id=svc.change, service=svc.name, decision=RolloutDecision.ABORT,
        decided_by="ops", reason="no order data"))
    topic, body = await stack.outcome(svc.change, timeout_s=60)
    assert topic == "deploy.rolled_back" and body["trigger"] == "aborted", body


async def test_a_failure_after_promotion_is_an_emergency_rollback_to_the_old_version(
    stack: Stack,
) -> None:
    svc = stack.services["emergency"]
    body = await stack.one("deploy.failed", svc.change, timeout_s=150)
    assert body["failure"] == "production_failed" and body["rolled_back"] is True, body
    assert body["stage"] == "monitoring" and body["restored_version"] == "1.0.0"
    assert body["breach"]["metric"] == "error-rate"
    rolled = await stack.one("deploy.rolled_back", svc.change)
    assert rolled["trigger"] == "production_failed"
    stages = _stages(await stack.all("deploy.stage.changed", svc.change))
    assert stages.index("production") < stages.index("rolling_back")
    assert await _served_version(svc.url) == {"1.0.0"}


async def test_canary_traffic_share_matches_the_weight_and_promote_continues(
    stack: Stack,
) -> None:
    svc = stack.services["share"]
    for _ in range(120):
        events = await stack.all("deploy.stage.changed", svc.change, within_s=1)
        if any(e["stage"] == "paused" for e in events):
            break
    report = await generate(svc.url, 100, 4.0)
    share = report.share("2.4.0")
    assert abs(share - 0.30) <= 0.05, (share, report)
    # Promoted the way people do it: `guardians rollout promote`, signed with their key.
    env = {**os.environ, "GUARDIANS_SIGNER": "ops",
           "GUARDIANS_SIGNING_KEY_FILE": str(stack.keys / "ops.key")}
    env.pop("GUARDIANS_SIGNING_KEY", None)
    cli = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli.main", "rollout", "promote", svc.change, "--service",
        svc.name, "--reason", "share checked", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await cli.communicate()
    assert cli.returncode == 0, out.decode()
    topic, body = await stack.outcome(svc.change, timeout_s=60)
    assert topic == "deploy.completed", body


async def test_an_unsigned_decision_is_dead_lettered_not_obeyed(stack: Stack) -> None:
    svc = stack.services["share"]
    event = DeployRolloutDecided(change_id=svc.change, service=svc.name,
                                 decision=RolloutDecision.ABORT, decided_by="mallory")
    await send_events(stack.bootstrap, REGISTRY, [event])
    found = await wait_for(stack.bootstrap, "deploy.rollout.decided.dlq", subject=svc.change,
                           timeout_s=30)
    assert found, "an unsigned decision was not dead-lettered"


async def test_a_sigkilled_guardian_resumes_the_canary_and_finishes_once(
    stack: Stack,
) -> None:
    svc = stack.services["resume"]
    assert stack.restarts == 1
    topic, body = await stack.outcome(svc.change)
    assert topic == "deploy.completed", body
    await asyncio.sleep(2)
    assert len(await stack.all("deploy.completed", svc.change)) == 1
    stages = await stack.all("deploy.stage.changed", svc.change)
    weight_30 = [e for e in stages if e["stage"] == "canary" and e.get("canary_weight") == 30]
    assert len(weight_30) == 1, stages
    assert _stages(stages).count("completed") == 1
