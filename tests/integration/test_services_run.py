"""The five guardians start as processes on the real stack, serve their endpoints, hear their
topics, and stop cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import asyncpg
import pytest

from schemas.events.change import ChangeSubmitted, MigrationScript
from schemas.signing import SigningKey
from schemas.topics import REGISTRY, SERVICES
from services.runtime.settings import SERVICE_PORTS
from services.runtime.topics import ensure_topics
from tests.support.kafka import send_events

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


async def _wait_ready(port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            status, _ = await asyncio.to_thread(_get, port, "/readyz")
            if status == 200:
                return
        except OSError:
            pass
        await asyncio.sleep(0.3)
    raise AssertionError(f"port {port} not ready in {timeout_s} s")


async def test_five_guardians_start_hear_a_signed_change_and_stop_on_sigterm(
    bootstrap: str, database_url: str, tmp_path: Path
) -> None:
    await ensure_topics(bootstrap, REGISTRY.all())
    ci = SigningKey.generate("ci")
    keys = tmp_path / "trusted.yaml"
    keys.write_text(f"ci: {ci.public_text()}\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GUARDIANS_TRUSTED_KEYS_FILE": str(keys)}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    logs = {name: tmp_path / f"{name}.log" for name in SERVICES}
    for name in SERVICES:
        with logs[name].open("wb") as log:
            procs[name] = subprocess.Popen([sys.executable, "-m", f"services.{name}"],
                                           cwd=ROOT, env=env, stdout=log, stderr=log)
    try:
        for name in SERVICES:
            await _wait_ready(SERVICE_PORTS[name], 60)
        status, metrics = await asyncio.to_thread(_get, SERVICE_PORTS["migration"], "/metrics")
        assert status == 200 and "guardians_events_total" in metrics
        change = ChangeSubmitted(
            change_id=f"svc-{os.getpid()}-{time.time_ns()}", service="shop", version="2.0.0",
            submitted_by="ci",
            migrations=(MigrationScript(name="0001_add_table", up_sql="CREATE TABLE t (id int);",
                                        down_sql="DROP TABLE t;"),),
        )
        [sent] = await send_events(bootstrap, REGISTRY, [change], signer=ci)
        conn = await asyncpg.connect(database_url)
        try:
            deadline = time.monotonic() + 30
            outcome = None
            while outcome is None and time.monotonic() < deadline:
                outcome = await conn.fetchval(
                    "SELECT outcome FROM migration.processed_events WHERE event_id = $1", sent.id)
                await asyncio.sleep(0.2)
        finally:
            await conn.close()
        assert outcome == "handled"
    finally:
        for proc in procs.values():
            proc.send_signal(signal.SIGTERM)
        codes = {name: proc.wait(timeout=30) for name, proc in procs.items()}
    assert codes == dict.fromkeys(SERVICES, 0), {n: logs[n].read_text()[-2000:] for n in SERVICES}
    assert '"msg": "stopped"' in logs["migration"].read_text()
