"""`make run` and `make demo`: the guardians on the local stack, and the demo release story.

Each guardian runs as `python -m services.<name>` with its own consumer group, HTTP port and
signing key from the local keyring in `.cache/keys`; logs go to `.cache/logs/<name>.log`.
They read the demo's `guardians.yaml` (demo/guardians.yaml with `{root}` filled in), the
demo shop's database URL (`guardians_demo` on the stack's PostgreSQL, created and seeded
with the baseline schema on first use) and a repository key kept in `.cache/demo/`.

Then steady traffic goes through nginx to the demo app (demo.loadgen) and the story in
demo/scenario.py plays: a first release, a release with a migration that goes all the way
to `infra.ready`, and a bad release that is rolled back and becomes an incident.

    python -m services.launcher          make run: the story, then stay up until Ctrl-C
    python -m services.launcher --demo   make demo: the story, a summary, exit 0 or 1
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from schemas.topics import SERVICES
from services.runtime.keyring import ensure_keyring, signer_environment
from services.runtime.settings import SERVICE_PORTS

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache"
DEMO = CACHE / "demo"
DEMO_DATABASE = "guardians_demo"
LOAD_RATE = 20.0


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def demo_environment() -> dict[str, str]:
    """What the guardians need for the demo: its config, database URL and repository key."""
    DEMO.mkdir(parents=True, exist_ok=True)
    config = DEMO / "guardians.yaml"
    config.write_text((ROOT / "demo" / "guardians.yaml").read_text()
                      .replace("{root}", str(ROOT)))
    key_file = DEMO / "restic.key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(32))
        key_file.chmod(0o600)
    admin = os.environ.get("GUARDIANS_DATABASE_URL",
                           "postgresql://guardians@127.0.0.1:55432/guardians")
    return {
        "GUARDIANS_CONFIG_FILE": str(config),
        "DEMO_DATABASE_URL": admin.rsplit("/", 1)[0] + f"/{DEMO_DATABASE}",
        "GUARDIANS_RESTIC_PASSWORD": key_file.read_text().strip(),
    }


async def prepare_database(admin_url: str, demo_url: str) -> None:
    """The demo shop's database with its baseline schema and some orders, once."""
    import asyncpg

    admin = await asyncpg.connect(admin_url)
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1",
                                      DEMO_DATABASE)
        if not exists:
            await admin.execute(f'CREATE DATABASE "{DEMO_DATABASE}"')
    finally:
        await admin.close()
    conn = await asyncpg.connect(demo_url)
    try:
        if await conn.fetchval("SELECT to_regclass('public.orders')") is None:
            await conn.execute((ROOT / "demo" / "migrations" / "0001_init" / "up.sql")
                               .read_text())
            await conn.execute("INSERT INTO customers (id, email) SELECT g, 'c' || g || "
                               "'@shop.example' FROM generate_series(1, 500) g")
            await conn.execute("INSERT INTO orders (id, customer_id, total_cents) SELECT g,"
                               " 1 + g % 500, 100 + g % 9000 FROM generate_series(1, 5000) g")
    finally:
        await conn.close()


def start_all(extra_env: dict[str, str]) -> dict[str, subprocess.Popen[bytes]]:
    (CACHE / "logs").mkdir(parents=True, exist_ok=True)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    names = list(SERVICES)
    if (ROOT / "services" / "dashboard" / "__main__.py").exists():
        names.append("dashboard")
    for name in names:
        env = {**os.environ, "PYTHONPATH": str(ROOT), **extra_env,
               **signer_environment(CACHE / "keys", name if name in SERVICES else "ops")}
        with (CACHE / "logs" / f"{name}.log").open("ab") as log:
            procs[name] = subprocess.Popen(
                [sys.executable, "-m", f"services.{name}"], cwd=ROOT, env=env,
                stdout=log, stderr=log, preexec_fn=_die_with_parent,
            )
    return procs


_PR_SET_PDEATHSIG = 1


_PRCTL = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None
"""Looked up before any fork: the child between fork and exec only calls it."""


def _die_with_parent() -> None:
    """In each guardian, before it runs: SIGTERM when the launcher dies, however it dies.

    The launcher stops its guardians itself on Ctrl-C or SIGTERM; this covers SIGKILL (a
    CI job's timeout, the OOM killer), after which they would otherwise keep running,
    holding their ports and consumer-group places. Linux only; elsewhere a no-op."""
    if _PRCTL is None:
        return
    _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() == 1:  # the launcher died before the prctl: nobody to stop us later
        os.kill(os.getpid(), signal.SIGTERM)


def wait_ready(procs: dict[str, subprocess.Popen[bytes]], timeout_s: float) -> list[str]:
    deadline = time.monotonic() + timeout_s
    pending = {name for name in procs if name in SERVICE_PORTS}
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


async def teardown_demo(config: Path) -> None:
    """Stop the demo app's instances and remove its nginx site and Prometheus targets."""
    from services.deploy.adapters.local import LocalDeployTarget
    from services.runtime.config import LocalTarget, load_config
    from services.runtime.settings import RuntimeSettings

    target = load_config(config).service("demo").deploy.target
    if isinstance(target, LocalTarget):
        settings = RuntimeSettings()
        local = LocalDeployTarget(target, settings)
        await local.teardown("demo")
        await local.close()
        argv = [settings.nginx_bin]
        if settings.nginx_prefix:
            argv += ["-p", str(settings.nginx_prefix)]
        if settings.nginx_conf:
            argv += ["-c", str(settings.nginx_conf)]
        await asyncio.to_thread(subprocess.run, [*argv, "-s", "reload"], check=False,
                                capture_output=True)


async def play(bootstrap: str, stay: asyncio.Event | None) -> int:
    from demo.loadgen import generate
    from demo.scenario import Story

    stop_load = asyncio.Event()
    load = asyncio.create_task(generate("http://127.0.0.1:8180/", LOAD_RATE, None, stop_load))
    try:
        async with Story(bootstrap, CACHE / "keys") as story:
            await story.play()
            print(story.summary())
            missing = story.check()
            if missing:
                print("\nExpected steps that did not happen:\n  " + "\n  ".join(missing))
            if stay is not None:
                print("\nThe guardians keep running; the dashboard and Prometheus show them."
                      " Ctrl-C stops everything.")
                await stay.wait()
            return 1 if missing else 0
    finally:
        stop_load.set()
        report = await load
        print(f"load: {report.sent} requests sent through nginx, by version "
              f"{dict(report.by_version)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The guardians and the demo release story.")
    parser.add_argument("--demo", action="store_true",
                        help="play the story once, print the summary and exit (make demo)")
    args = parser.parse_args(argv)
    ensure_keyring(CACHE / "keys")
    env = demo_environment()
    admin = os.environ.get("GUARDIANS_DATABASE_URL",
                           "postgresql://guardians@127.0.0.1:55432/guardians")
    asyncio.run(prepare_database(admin, env["DEMO_DATABASE_URL"]))
    procs = start_all(env)
    os.environ.update(env)
    try:
        late = wait_ready(procs, 90)
        if late:
            print(f"not ready after 90 s: {', '.join(late)} (see .cache/logs/)")
            return 1
        print("Infra Guardians: the five guardians are running on the local stack.\n")
        for name in procs:
            port = SERVICE_PORTS.get(name)
            hears = ", ".join(SERVICES[name].receives) if name in SERVICES else "the pipeline"
            print(f"  {name:<10} http://127.0.0.1:{port}/  hears: {hears}")
        if "dashboard" in procs:
            print(f"\nDashboard: http://127.0.0.1:{SERVICE_PORTS.get('dashboard', 9106)}/")
        print("Prometheus: http://127.0.0.1:9090/   the demo app: http://127.0.0.1:8180/"
              "\nLogs: .cache/logs/\n")
        bootstrap = os.environ.get("GUARDIANS_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
        return asyncio.run(_run(bootstrap, procs, stay=not args.demo))
    except KeyboardInterrupt:  # Ctrl-C while the guardians were still starting
        print("\ninterrupted; stopping")
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut this short
        stop_all(procs)
        asyncio.run(teardown_demo(Path(env["GUARDIANS_CONFIG_FILE"])))
        print("stopped")


async def _run(bootstrap: str, procs: dict[str, subprocess.Popen[bytes]], *, stay: bool
               ) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    story = asyncio.create_task(play(bootstrap, stop if stay else None))
    watcher = asyncio.create_task(_watch(procs, stop))
    done, _ = await asyncio.wait({story, watcher}, return_when=asyncio.FIRST_COMPLETED)
    if story not in done:  # Ctrl-C or a guardian died
        story.cancel()
        await asyncio.gather(story, return_exceptions=True)
        watcher.cancel()
        return 1 if watcher.done() and watcher.result() else 0
    watcher.cancel()
    return story.result()


async def _watch(procs: dict[str, subprocess.Popen[bytes]], stop: asyncio.Event) -> int:
    while not stop.is_set():
        for name, proc in procs.items():
            if proc.poll() is not None:
                print(f"{name} exited with {proc.returncode}; stopping (see .cache/logs/)")
                return 1
        await asyncio.sleep(0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
