"""The process guardian on real processes, sockets and the broker.

One guardian watches six services at once, each round every 0.5 s with hysteresis 2:
a healthy demo instance (green, and its post-deploy gate says `infra.ready`), a port taken
by another program (a conflict naming it), a slow instance (yellow, only after two rounds
agree, with a warning alert), an instance that is killed (red, restarted by the guardian,
green again), a target that hangs (its check times out, the others are not delayed), and a
target that flaps between 200 and 500 (the grade does not flap).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
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

import pytest
import yaml

from schemas.events.backup import BackupKind, BackupSnapshot, BackupTrigger, BackupVerified
from schemas.topics import REGISTRY
from services.runtime.keyring import ensure_keyring
from services.runtime.topics import ensure_topics
from tests.support.kafka import send_events, wait_for
from tests.support.ports import free_ports

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
RELEASES = ROOT / "demo" / "releases"


def _demo(port: int, release: str = "1.0.0.json") -> list[str]:
    return [sys.executable, "-m", "demo.app", "--port", str(port), "--version", "1.0.0",
            "--release", str(RELEASES / release)]


@dataclass
class Health:
    bootstrap: str
    folder: Path
    names: dict[str, str]
    ports: dict[str, int]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    servers: list[asyncio.Server] = field(default_factory=list)

    def spawn(self, argv: list[str]) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        self.procs.append(proc)
        return proc

    def tail(self) -> str:
        return (self.folder / "process.log").read_text()[-4000:]

    async def reports(self, name: str, within_s: float = 2) -> list[dict[str, Any]]:
        found = await wait_for(self.bootstrap, "health.reported", subject=self.names[name],
                               count=100_000, timeout_s=within_s)
        return [json.loads(m.value) for m in found]

    async def changes(self, name: str, within_s: float = 2) -> list[dict[str, Any]]:
        found = await wait_for(self.bootstrap, "health.changed", subject=self.names[name],
                               count=1000, timeout_s=within_s)
        return [json.loads(m.value) for m in found]

    async def until_grade(self, name: str, grade: str, timeout_s: float = 30,
                          after: int = 0) -> list[dict[str, Any]]:
        for _ in range(int(timeout_s)):
            changes = await self.changes(name, within_s=1)
            if any(c["grade"] == grade for c in changes[after:]):
                return changes
        pytest.fail(f"{name} never became {grade}: {await self.changes(name)}\n{self.tail()}")


async def _flapping_server(port: int) -> asyncio.Server:
    turn = {"n": 0}

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            await reader.readuntil(b"\r\n\r\n")
            turn["n"] += 1
            code = 200 if turn["n"] <= 6 or turn["n"] % 2 else 500
            writer.write(f"HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                         .encode())
            await writer.drain()
        writer.close()

    return await asyncio.start_server(serve, "127.0.0.1", port)


async def _hanging_server(port: int) -> asyncio.Server:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            await reader.read(1024)
            await asyncio.sleep(3600)

    return await asyncio.start_server(serve, "127.0.0.1", port)


@pytest.fixture(scope="module")
async def health(bootstrap: str, tmp_path_factory: pytest.TempPathFactory
                 ) -> AsyncIterator[Health]:
    await ensure_topics(bootstrap, REGISTRY.all())
    folder = tmp_path_factory.mktemp("process")
    keys = folder / "keys"
    trusted = ensure_keyring(keys, ("process", "ops"))
    tag = uuid.uuid4().hex[:5]
    names = {n: f"{n}-{tag}" for n in ("green", "conflict", "slow", "crash", "hang", "flap")}
    p = dict(zip(("green", "conflict", "slow", "crash", "hang", "flap"), free_ports(6),
                 strict=True))
    h = Health(bootstrap, folder, names, p)
    h.spawn(_demo(p["green"]))
    h.spawn([sys.executable, "-m", "http.server", str(p["conflict"]), "--bind", "127.0.0.1"])
    h.spawn(_demo(p["slow"], "slow.json"))
    h.spawn(_demo(p["crash"]))
    h.servers.append(await _hanging_server(p["hang"]))
    h.servers.append(await _flapping_server(p["flap"]))

    def http(port: int, **extra: Any) -> dict[str, Any]:
        return {"name": "http", "http": {"url": f"http://127.0.0.1:{port}/", **extra}}

    base = {"interval_seconds": 0.5, "hysteresis": 2, "timeout_seconds": 1,
            "gate_seconds": 2, "alert_repeat_minutes": 10}
    services = {
        names["green"]: {**base, "checks": [http(p["green"])],
                         "ports": [{"port": p["green"], "process": "demo.app"}],
                         "processes": [{"name": "app", "match": f"demo.app --port {p['green']}"}]},
        names["conflict"]: {**base, "ports": [{"port": p["conflict"], "process": "demo.app"}]},
        names["slow"]: {**base, "checks": [http(p["slow"], warn_conditions=[
            "[RESPONSE_TIME] < 150"])]},
        names["crash"]: {**base, "checks": [http(p["crash"])], "processes": [{
            "name": "app", "match": f"demo.app --port {p['crash']}",
            "restart": ["setsid", "-f", *_demo(p["crash"])]}]},
        names["hang"]: {**base, "checks": [
            http(p["hang"]), {"name": "tcp-green", "tcp": {"port": p["green"]}}]},
        names["flap"]: {**base, "checks": [http(p["flap"])]},
    }
    config = folder / "guardians.yaml"
    config.write_text(yaml.safe_dump({"services": {n: {"health": h_} for n, h_ in
                                                   services.items()}}))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GUARDIANS_HTTP_PORT": "0",
           "GUARDIANS_CONFIG_FILE": str(config), "GUARDIANS_TRUSTED_KEYS_FILE": str(trusted),
           "GUARDIANS_SIGNER": "process",
           "GUARDIANS_SIGNING_KEY": (keys / "process.key").read_text().strip()}
    log = (folder / "process.log").open("wb")
    guardian = subprocess.Popen([sys.executable, "-m", "services.process"], cwd=ROOT,
                                env=env, stdout=log, stderr=log)
    try:
        yield h
    finally:
        guardian.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            guardian.wait(timeout=30)
        for proc in h.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        subprocess.run(["pkill", "-f", f"demo.app --port {p['crash']}"], check=False)
        for server in h.servers:
            server.close()
        print(h.tail())


def _latest(reports: list[dict[str, Any]]) -> dict[str, Any]:
    assert reports, "no health.reported"
    return reports[-1]


async def test_a_healthy_instance_is_green_and_its_gate_says_infra_ready(
    health: Health,
) -> None:
    await health.until_grade("green", "green")
    report = _latest(await health.reports("green"))
    assert report["grade"] == "green"
    assert {c["name"] for c in report["checks"]} >= {"http", f"port-{health.ports['green']}",
                                                      "app"}
    change = f"{health.names['green']}-2.0.0"
    await send_events(health.bootstrap, REGISTRY, [BackupVerified(
        change_id=change, service=health.names["green"], version="2.0.0",
        trigger=BackupTrigger.DEPLOY, repository="/tmp/repo", recovery_seconds=1.0,
        snapshots=(BackupSnapshot(kind=BackupKind.CONFIG, source="config",
                                  snapshot_id="0123abcd", size_bytes=10,
                                  recovery_seconds=1.0),))])
    ready = await wait_for(health.bootstrap, "infra.ready", subject=change, timeout_s=30)
    assert ready, health.tail()
    body = json.loads(ready[0].value)
    assert body["version"] == "2.0.0" and body["gate_seconds"] >= 2


async def test_another_process_on_an_expected_port_is_a_conflict_naming_it(
    health: Health,
) -> None:
    await health.until_grade("conflict", "red")
    check = next(c for c in _latest(await health.reports("conflict"))["checks"]
                 if c["name"] == f"port-{health.ports['conflict']}")
    assert check["status"] == "fail"
    assert "http.server" in check["message"] and "demo.app" in check["message"], check


async def test_a_slow_instance_turns_yellow_after_two_rounds_with_an_alert(
    health: Health,
) -> None:
    changes = await health.until_grade("slow", "yellow")
    change = next(c for c in changes if c["grade"] == "yellow")
    assert change["consecutive"] == 2
    cause = change["causes"][0]
    assert cause["status"] == "warn" and cause["observed"] >= 300, cause
    found = await wait_for(health.bootstrap, "ops.alerts", subject=f"health/{health.names['slow']}",
                           timeout_s=10)
    assert found and json.loads(found[0].value)["severity"] == "warning"


async def test_a_killed_instance_turns_red_is_restarted_and_turns_green(
    health: Health,
) -> None:
    await health.until_grade("crash", "green")
    subprocess.run(["pkill", "-f", f"demo.app --port {health.ports['crash']}"], check=True)
    changes = await health.until_grade("crash", "red")
    after = len(changes)
    await health.until_grade("crash", "green", after=after)
    reports = await health.reports("crash")
    assert _latest(reports)["grade"] == "green"


async def test_a_hung_target_times_out_without_delaying_the_other_checks(
    health: Health,
) -> None:
    await asyncio.sleep(3)
    reports = await health.reports("hang")
    assert len(reports) >= 3
    last = _latest(reports)
    hung = next(c for c in last["checks"] if c["name"] == "http")
    tcp = next(c for c in last["checks"] if c["name"] == "tcp-green")
    # A target that accepts and never answers is down for its users: the check fails (it
    # is the target's fault, not the probe's), at its own timeout.
    assert hung["status"] == "fail", hung
    assert hung["duration_seconds"] < 1.5, hung
    assert tcp["status"] == "pass"
    times = [r["occurred_at"] for r in reports[-4:]]
    from datetime import datetime

    gaps = [(datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds()
            for a, b in itertools.pairwise(times)]
    assert max(gaps) < 2.5, gaps  # a round is its timeout (1 s) plus bookkeeping, not more


async def test_a_flapping_target_does_not_flap_the_grade(health: Health) -> None:
    await health.until_grade("flap", "green")
    await asyncio.sleep(6)
    grades = [c["grade"] for c in await health.changes("flap")]
    assert grades == ["green"], grades
    statuses = [r["checks"][0]["status"] for r in (await health.reports("flap"))[-8:]]
    assert "fail" in statuses and "pass" in statuses, statuses
