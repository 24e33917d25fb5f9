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


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_make_run_stops_everything_on_ctrl_c_and_a_killed_launcher_leaves_nothing() -> None:
    """`make run` is the launcher in the foreground: Ctrl-C (SIGINT to its process group, as
    a terminal sends it) stops the guardians and the demo, and the launcher exits 0. A
    launcher killed outright (SIGKILL: a CI timeout, the OOM killer) takes its guardians
    with it instead of leaving them on their ports."""
    ports = [SERVICE_PORTS[name] for name in (*SERVICES, "dashboard")]
    assert not any(_listening(p) for p in ports), "a guardian is already running"
    # Ctrl-C while the guardians are still starting, Ctrl-C once they all answer /readyz,
    # and a SIGKILL of the launcher alone.
    for signal_sent, ready in ((signal.SIGINT, False), (signal.SIGINT, True),
                               (signal.SIGKILL, True)):
        launcher = subprocess.Popen(
            [sys.executable, "-m", "services.launcher"], cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 90
            while not all(_listening(p) and (not ready or _get(p, "/readyz")[0] == 200)
                          for p in ports):
                assert launcher.poll() is None, launcher.stdout.read() if launcher.stdout else ""
                assert time.monotonic() < deadline, "the guardians did not start in 90 s"
                time.sleep(0.5)
            if signal_sent is signal.SIGINT:
                os.killpg(launcher.pid, signal.SIGINT)  # the whole group, as a terminal does
            else:
                launcher.kill()  # the launcher alone: its guardians must follow it
            output, _ = launcher.communicate(timeout=90)
        finally:
            if launcher.poll() is None:
                os.killpg(launcher.pid, signal.SIGKILL)
        if signal_sent is signal.SIGINT:
            assert launcher.returncode == 0, output.decode()[-3000:]
            assert b"stopped" in output
        deadline = time.monotonic() + 30
        while any(_listening(p) for p in ports) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not [p for p in ports if _listening(p)], f"left running after {signal_sent!r}"
    # The demo app's instances outlive their deploy guardian by design (production keeps
    # serving while a guardian restarts): after the SIGKILL nobody else stops them.
    subprocess.run(["pkill", "-f", "python -m demo.app"], check=False)
