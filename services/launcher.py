"""`make run`: the five guardians as separate processes on the local stack, until Ctrl-C.

Each guardian runs as `python -m services.<name>` with its own consumer group, HTTP port and
signing key from the local keyring in `.cache/keys`; logs go to `.cache/logs/<name>.log`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import FrameType

from schemas.topics import SERVICES
from services.runtime.keyring import signer_environment
from services.runtime.settings import SERVICE_PORTS

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache"


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start_all() -> dict[str, subprocess.Popen[bytes]]:
    (CACHE / "logs").mkdir(parents=True, exist_ok=True)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    for name in SERVICES:
        env = {**os.environ, "PYTHONPATH": str(ROOT), **signer_environment(CACHE / "keys", name)}
        with (CACHE / "logs" / f"{name}.log").open("ab") as log:
            procs[name] = subprocess.Popen(
                [sys.executable, "-m", f"services.{name}"], cwd=ROOT, env=env,
                stdout=log, stderr=log,
            )
    return procs


def wait_ready(procs: dict[str, subprocess.Popen[bytes]], timeout_s: float) -> list[str]:
    deadline = time.monotonic() + timeout_s
    pending = set(procs)
    while pending and time.monotonic() < deadline:
        for name in sorted(pending):
            if procs[name].poll() is not None:
                raise SystemExit(f"{name} exited with {procs[name].returncode}: see "
                                 f".cache/logs/{name}.log")
            if _ready(SERVICE_PORTS[name]):
                pending.discard(name)
        time.sleep(0.3)
    return sorted(pending)


def stop_all(procs: dict[str, subprocess.Popen[bytes]]) -> None:
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for name, proc in procs.items():
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            print(f"{name} did not stop in 20 s; killing it")
            proc.kill()


def main() -> int:
    procs = start_all()
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        late = wait_ready(procs, 60)
        if late:
            print(f"not ready after 60 s: {', '.join(late)} (see .cache/logs/)")
            return 1
        print("Infra Guardians: all five guardians are running on the local stack.\n")
        for name, topics in SERVICES.items():
            port = SERVICE_PORTS[name]
            print(f"  {name:<10} http://127.0.0.1:{port}/metrics  hears: "
                  f"{', '.join(topics.receives)}")
        print(
            "\nThe runtime, the event contract and the delivery guarantees are in place, and the"
            "\nmigration guardian assesses, verifies and gates every change.submitted. The"
            "\ndeploy, backup, process and incident guardians' logic and the demo release"
            "\narrive with issues #4-#8; until then they record what they hear and emit nothing."
            "\nLogs: .cache/logs/. Ctrl-C stops everything."
        )
        while not stopping:
            for name, proc in procs.items():
                if proc.poll() is not None:
                    print(f"{name} exited with {proc.returncode}; stopping (see .cache/logs/)")
                    return 1
            time.sleep(0.5)
        return 0
    finally:
        stop_all(procs)
        print("stopped")


if __name__ == "__main__":
    sys.exit(main())
