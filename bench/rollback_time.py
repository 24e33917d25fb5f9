"""Issue 4, section 5: the time from the failing measurement to all traffic on stable.

    source .cache/stack.env && .venv/bin/python bench/rollback_time.py [--runs 5]

On the real local stack (Kafka, PostgreSQL, nginx, Prometheus), in one script:

1. Baseline, the floor: the same nginx switch done by hand, N times: two demo instances
   behind a 50/50 upstream; rewrite the site to the stable one only, reload nginx, wait for
   the new generation; measured by the script's clock and by a poller.
2. The deploy guardian, N times: a first release 1.0.0, then N bad versions (20% errors)
   rolled out with `set_weight 50` and an analysis every second. A poller sends a request
   through nginx every 5 ms and records which version answered. Figures per run:
   - guardian: `rollback_seconds` of `deploy.rolled_back` (its clock: the failing
     measurement's result to nginx serving the new generation);
   - observed: the last canary answer seen by the poller minus the `ce_time` of the failing
     `deploy.analysis.measured` event (wall clock, same machine), which also counts the
     time to commit that event.
It prints a markdown table for BENCHMARKS.md and the ratio to the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from demo.loadgen import generate  # noqa: E402
from schemas.events.migration import ApprovalPath, MigrationApproved, RiskLevel  # noqa: E402
from schemas.topics import REGISTRY  # noqa: E402
from services.runtime.keyring import ensure_keyring  # noqa: E402
from services.runtime.topics import ensure_topics  # noqa: E402
from tests.support.kafka import send_events, wait_for  # noqa: E402
from tests.support.ports import free_ports  # noqa: E402

ERROR_RATE = ('(sum(rate(demo_http_requests_total{service="{service}",track="{track}",'
              'code=~"5.."}[{window}])) or vector(0)) / '
              'sum(rate(demo_http_requests_total{service="{service}",track="{track}"}'
              '[{window}]))')


class Poller:
    """A request through nginx every few ms; remembers when each version last answered."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.last_seen: dict[str, float] = {}
        self.stop = asyncio.Event()

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=2) as client:
            while not self.stop.is_set():
                try:
                    response = await client.get(self.url)
                    version = response.headers.get("x-demo-version")
                    if version:
                        self.last_seen[version] = time.time()
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.005)


def nginx(*args: str) -> None:
    argv = [os.environ.get("GUARDIANS_NGINX_BIN", "nginx")]
    if os.environ.get("GUARDIANS_NGINX_PREFIX"):
        argv += ["-p", os.environ["GUARDIANS_NGINX_PREFIX"]]
    if os.environ.get("GUARDIANS_NGINX_CONF"):
        argv += ["-c", os.environ["GUARDIANS_NGINX_CONF"]]
    subprocess.run([*argv, *args], check=True, capture_output=True)


def site(listen: int, servers: list[tuple[int, int]], generation: int, name: str) -> str:
    upstream = "\n".join(f"  server 127.0.0.1:{p} weight={w};" for p, w in servers)
    return (f"upstream {name} {{\n{upstream}\n}}\n"
            f"server {{\n  listen 127.0.0.1:{listen};\n"
            f"  location = /__guardians/generation {{ return 200 \"{generation}\"; }}\n"
            f"  location / {{ proxy_pass http://{name}; }}\n}}\n")


async def baseline(runs: int) -> list[tuple[float, float]]:
    """(script's switch time, poller's last-canary time), both from the switch decision."""
    sites = Path(os.environ["GUARDIANS_NGINX_SITES_DIR"])
    listen, stable_port, canary_port = free_ports(3)
    name = f"bench_{uuid.uuid4().hex[:6]}"
    procs = [subprocess.Popen([sys.executable, "-m", "demo.app", "--port", str(port),
                               "--version", version], cwd=ROOT)
             for port, version in ((stable_port, "stable"), (canary_port, "canary"))]
    path = sites / f"{name}.conf"
    results = []
    try:
        await asyncio.sleep(1.0)
        async with httpx.AsyncClient(timeout=2) as client:
            for run in range(runs):
                gen = run * 2 + 1
                path.write_text(site(listen, [(stable_port, 50), (canary_port, 50)], gen, name))
                nginx("-s", "reload")
                await asyncio.sleep(1.0)
                poller = Poller(f"http://127.0.0.1:{listen}/")
                task = asyncio.create_task(poller.run())
                await asyncio.sleep(0.5)
                decided_wall, decided = time.time(), time.monotonic()
                path.write_text(site(listen, [(stable_port, 100)], gen + 1, name))
                nginx("-s", "reload")
                while (await client.get(f"http://127.0.0.1:{listen}/__guardians/generation")
                       ).text != str(gen + 1):
                    await asyncio.sleep(0.01)
                switched = time.monotonic() - decided
                await asyncio.sleep(1.0)
                poller.stop.set()
                await task
                results.append((switched, poller.last_seen.get("canary", decided_wall)
                                - decided_wall))
    finally:
        path.unlink(missing_ok=True)
        nginx("-s", "reload")
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=10)
    return results


async def guardian_runs(runs: int, bootstrap: str) -> list[dict[str, float]]:
    await ensure_topics(bootstrap, REGISTRY.all())
    folder = Path(tempfile.mkdtemp(prefix="bench-rollback-"))
    keys = folder / "keys"
    trusted = ensure_keyring(keys, ("deploy",))
    service = f"bench-{uuid.uuid4().hex[:6]}"
    listen, staging, blue, green = free_ports(4)
    metrics = [{"name": "error-rate", "query": ERROR_RATE, "success": "result < 0.05",
                "critical": True}]
    config = {"services": {service: {"deploy": {
        "target": {"kind": "local", "workdir": str(ROOT),
                   "command": ["{python}", "-m", "demo.app", "--port", "{port}", "--version",
                               "{version}", "--release", "{artifact}", "--service",
                               "{service}"],
                   "listen_port": listen, "staging_port": staging, "slot_ports": [blue, green]},
        "steps": [{"set_weight": 50}, {"analysis": "canary"}],
        "analysis": {"canary": {"interval_seconds": 1, "count": 10, "window": "5s",
                                "initial_delay_seconds": 4, "inconclusive_limit": 3,
                                "metrics": metrics}},
        "monitoring": {"seconds": 1},
    }}}}
    (folder / "guardians.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GUARDIANS_HTTP_PORT": "0",
           "GUARDIANS_CONFIG_FILE": str(folder / "guardians.yaml"),
           "GUARDIANS_TRUSTED_KEYS_FILE": str(trusted), "GUARDIANS_SIGNER": "deploy",
           "GUARDIANS_SIGNING_KEY": (keys / "deploy.key").read_text().strip(),
           "GUARDIANS_STATE_DIR": str(folder / "state"), "GUARDIANS_LOG_LEVEL": "WARNING"}
    log = (folder / "deploy.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "services.deploy"], cwd=ROOT, env=env,
                            stdout=log, stderr=log)
    url = f"http://127.0.0.1:{listen}/"
    stop_load = asyncio.Event()
    load = asyncio.create_task(generate(url, 30, None, stop_load))
    results: list[dict[str, float]] = []

    async def approve(version: str, release: str) -> str:
        change = f"{service}-{version}"
        await send_events(bootstrap, REGISTRY, [MigrationApproved(
            change_id=change, service=service, version=version, previous_version="1.0.0",
            artifact=str(ROOT / "demo" / "releases" / release), risk=RiskLevel.LOW,
            approval=ApprovalPath.AUTOMATIC)])
        return change

    try:
        first = await approve("1.0.0", "1.0.0.json")
        assert await wait_for(bootstrap, "deploy.completed", subject=first, timeout_s=90)
        for run in range(runs):
            version = f"3.0.{run}"
            poller = Poller(url)
            task = asyncio.create_task(poller.run())
            change = await approve(version, "3.0.0.json")
            found = await wait_for(bootstrap, "deploy.rolled_back", subject=change,
                                   timeout_s=120)
            await asyncio.sleep(1.0)
            poller.stop.set()
            await task
            assert found, f"{change} was not rolled back; see {folder / 'deploy.log'}"
            rolled = json.loads(found[0].value)
            measured = await wait_for(bootstrap, "deploy.analysis.measured", subject=change,
                                      count=100, timeout_s=2)
            failing = [m for m in measured if json.loads(m.value)["outcome"] == "failed"]
            failed_at = datetime.fromisoformat(failing[-1].headers["ce_time"]).timestamp()
            results.append({"guardian": rolled["rollback_seconds"],
                            "observed": poller.last_seen.get(version, failed_at) - failed_at})
    finally:
        stop_load.set()
        await load
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        from services.deploy.adapters.local import LocalDeployTarget
        from services.runtime.config import load_config
        from services.runtime.settings import RuntimeSettings

        target = load_config(folder / "guardians.yaml").service(service).deploy.target
        assert target is not None and target.kind == "local"
        local = LocalDeployTarget(target, RuntimeSettings(state_dir=folder / "state"))
        await local.teardown(service)
        await local.close()
        nginx("-s", "reload")
    return results


def row(name: str, values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (f"| {name} | {len(ms)} | {statistics.median(ms):.0f} | {min(ms):.0f} | "
            f"{max(ms):.0f} |")


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    bootstrap = os.environ.get("GUARDIANS_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    base = await baseline(args.runs)
    ours = await guardian_runs(args.runs, bootstrap)
    print("| time to all traffic on stable | runs | median ms | min ms | max ms |")
    print("|---|---:|---:|---:|---:|")
    print(row("baseline: nginx rewrite + reload, script's clock", [b[0] for b in base]))
    print(row("baseline: same, last canary answer seen", [b[1] for b in base]))
    print(row("guardian: rollback_seconds (failing result to new generation)",
              [r["guardian"] for r in ours]))
    print(row("guardian: failing measurement event to last canary answer seen",
              [r["observed"] for r in ours]))
    ratio = (statistics.median(r["guardian"] for r in ours)
             / statistics.median(b[0] for b in base))
    print(f"\nguardian / baseline (median, own clocks): {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
