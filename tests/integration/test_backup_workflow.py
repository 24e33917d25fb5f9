"""The backup guardian on the real stack: Kafka, PostgreSQL, a real restic repository.

A source database and a folder of configuration files per test service. `deploy.completed`
must end in `backup.verified` only after a recovery test of every part; a flipped byte in
the repository fails the check; a dropped table comes back through a signed restore; a
SIGKILL in the middle of a backup leaves no half-registered snapshot and the retry finishes
once; a schedule queues its own runs, and a backup older than allowed raises an alert.
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

import asyncpg
import pytest
import yaml

from schemas.events.backup import BackupKind, BackupRestoreRequested
from schemas.events.deploy import DeployCompleted
from schemas.signing import SigningKey
from schemas.topics import REGISTRY
from services.backup.adapters.restic import Restic
from services.runtime.keyring import ensure_keyring
from services.runtime.topics import ensure_topics
from tests.support.kafka import send_events, wait_for

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery staple"


@dataclass
class Source:
    service: str
    db: str
    url: str
    files: Path
    repo: Path
    env_name: str


@dataclass
class Backups:
    bootstrap: str
    admin_url: str
    folder: Path
    keys: Path
    sources: dict[str, Source]
    env: dict[str, str]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self) -> None:
        log = (self.folder / f"backup-{len(self.procs)}.log").open("wb")
        self.procs.append(subprocess.Popen([sys.executable, "-m", "services.backup"],
                                           cwd=ROOT, env=self.env, stdout=log, stderr=log))

    def kill(self) -> None:
        self.procs[-1].send_signal(signal.SIGKILL)
        self.procs[-1].wait(timeout=10)

    def tail(self) -> str:
        return "\n".join(p.read_text()[-4000:] for p in sorted(self.folder.glob("backup-*.log")))

    async def deployed(self, name: str) -> str:
        change = f"{self.sources[name].service}-{uuid.uuid4().hex[:6]}"
        await send_events(self.bootstrap, REGISTRY, [DeployCompleted(
            change_id=change, service=self.sources[name].service, version="2.0.0")])
        return change

    async def one(self, topic: str, subject: str, timeout_s: float = 120) -> dict[str, Any]:
        found = await wait_for(self.bootstrap, topic, subject=subject, timeout_s=timeout_s)
        assert found, f"no {topic} for {subject} within {timeout_s} s\n{self.tail()}"
        body: dict[str, Any] = json.loads(found[0].value)
        return body

    async def all(self, topic: str, subject: str, within_s: float = 3) -> list[dict[str, Any]]:
        found = await wait_for(self.bootstrap, topic, subject=subject, count=100,
                               timeout_s=within_s)
        return [json.loads(m.value) for m in found]


async def _make_source_db(admin_url: str, name: str, rows: int) -> str:
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("""
            CREATE TABLE customers (id bigint PRIMARY KEY, name text NOT NULL, note text);
            CREATE TABLE orders (id bigint PRIMARY KEY,
                                 customer_id bigint REFERENCES customers (id),
                                 total numeric(12, 2), placed_at timestamptz DEFAULT now());
            CREATE INDEX orders_customer ON orders (customer_id);
        """)
        await conn.execute(
            "INSERT INTO customers SELECT g, 'customer ' || g || ' ünïcode', "
            "CASE WHEN g % 7 = 0 THEN NULL ELSE md5(g::text) END "
            "FROM generate_series(1, $1) g", rows)
        await conn.execute(
            "INSERT INTO orders (id, customer_id, total) SELECT g, 1 + g % $1, g * 1.25 "
            "FROM generate_series(1, $1 * 3) g", rows)
    finally:
        await conn.close()
    return url


async def _drop_db(admin_url: str, name: str) -> None:
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="module")
async def backups(bootstrap: str, tmp_path_factory: pytest.TempPathFactory
                  ) -> AsyncIterator[Backups]:
    await ensure_topics(bootstrap, REGISTRY.all())
    admin_url = os.environ["GUARDIANS_DATABASE_URL"]
    folder = tmp_path_factory.mktemp("backup")
    keys = folder / "keys"
    trusted = ensure_keyring(keys, ("backup", "ops"))
    tag = uuid.uuid4().hex[:6]
    sources: dict[str, Source] = {}
    services: dict[str, Any] = {}
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GUARDIANS_HTTP_PORT": "0",
           "GUARDIANS_TRUSTED_KEYS_FILE": str(trusted), "GUARDIANS_SIGNER": "backup",
           "GUARDIANS_SIGNING_KEY": (keys / "backup.key").read_text().strip(),
           "GUARDIANS_STATE_DIR": str(folder / "state"), "TEST_RESTIC_KEY": PASSWORD,
           "GUARDIANS_SCHEDULE_SWEEP_SECONDS": "1"}
    plans = {"main": 2000, "corrupt": 200, "kill": 200_000, "sched": 100}
    for name, rows in plans.items():
        db = f"bk_{name}_{tag}"
        url = await _make_source_db(admin_url, db, rows)
        files = folder / f"{name}-config"
        (files / "conf.d").mkdir(parents=True)
        (files / "app.yaml").write_text(f"name: {name}\npool: 5\n")
        (files / "conf.d" / "extra.json").write_text(json.dumps({"k": list(range(50))}))
        env_name = f"TEST_DB_{name.upper()}_URL"
        env[env_name] = url
        service = f"bk{name}{tag}"
        source = Source(service, db, url, files, folder / f"repo-{name}", env_name)
        sources[name] = source
        services[service] = {"backup": {
            "repository": str(source.repo), "password_env": "TEST_RESTIC_KEY",
            "databases": [{"name": "orders-db", "url_env": env_name}],
            "paths": [{"name": "config", "kind": "config", "paths": [str(files)]}],
            "check_subsets": 1, "retries": 1,
            **({"schedule": "* * * * *", "max_age_hours": 0.0005} if name == "sched" else {}),
        }}
    config = folder / "guardians.yaml"
    config.write_text(yaml.safe_dump({"services": services}))
    env["GUARDIANS_CONFIG_FILE"] = str(config)
    b = Backups(bootstrap, admin_url, folder, keys, sources, env)
    b.start()
    try:
        yield b
    finally:
        for proc in b.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=30)
        for s in sources.values():
            await _drop_db(admin_url, s.db)
        print(b.tail())


async def test_a_deploy_is_backed_up_verified_and_restore_tested(backups: Backups) -> None:
    change = await backups.deployed("main")
    body = await backups.one("backup.verified", change)
    assert body["trigger"] == "deploy" and body["version"] == "2.0.0"
    parts = {s["source"]: s for s in body["snapshots"]}
    assert set(parts) == {"orders-db", "config"}
    db = parts["orders-db"]
    assert db["kind"] == "database" and db["table_count"] == 2 and db["row_count"] == 8000
    assert db["recovery_seconds"] > 0 and db["manifest_sha256"]
    assert parts["config"]["file_count"] == 2
    assert body["repository_check"]["read_subset"] == "1/1"
    assert body["recovery_seconds"] >= db["recovery_seconds"]
    assert not await backups.all("backup.failed", change, within_s=1)
    # `guardians backup plan` now names this snapshot and its measured recovery time.
    from services.backup.plan_view import render_plan
    from services.runtime.config import load_config
    from services.runtime.settings import RuntimeSettings

    source = backups.sources["main"]
    policy = load_config(Path(backups.env["GUARDIANS_CONFIG_FILE"])).service(
        source.service).backup
    plan = await render_plan(source.service, policy,
                             RuntimeSettings(state_dir=backups.folder / "state"))
    assert db["snapshot_id"][:8] in plan and "pg_restore" in plan
    assert PASSWORD not in plan and "TEST_RESTIC_KEY" in plan


async def test_a_flipped_byte_in_the_repository_fails_verification(backups: Backups) -> None:
    source = backups.sources["corrupt"]
    first = await backups.deployed("corrupt")
    await backups.one("backup.verified", first)
    packs = sorted((source.repo / "data").rglob("*"), key=lambda p: p.stat().st_size)
    pack = [p for p in packs if p.is_file()][-1]
    data = bytearray(pack.read_bytes())
    data[len(data) // 2] ^= 0xFF
    pack.chmod(0o600)
    pack.write_bytes(bytes(data))
    second = await backups.deployed("corrupt")
    failed = await backups.one("backup.failed", second)
    assert failed["phase"] == "repository_check", failed
    assert "restic check" in failed["reason"]
    assert not await backups.all("backup.verified", second, within_s=1)


async def test_a_dropped_table_is_brought_back_by_a_signed_restore(backups: Backups) -> None:
    source = backups.sources["main"]
    change = await backups.deployed("main")
    await backups.one("backup.verified", change)
    conn = await asyncpg.connect(source.url)
    try:
        before = await conn.fetch("SELECT * FROM orders ORDER BY id")
        await conn.execute("DROP TABLE orders")
    finally:
        await conn.close()
    ops = SigningKey.from_text("ops", (backups.keys / "ops.key").read_text())
    await send_events(backups.bootstrap, REGISTRY, [BackupRestoreRequested(
        service=source.service, requested_by="ops", reason="orders dropped by mistake",
        kinds=(BackupKind.DATABASE,))], signer=ops)
    restored = await backups.one("backup.restored", source.service)
    assert restored["outcome"] == "restored", restored
    (part,) = restored["parts"]
    assert part["source"] == "orders-db" and part["differences"] == []
    assert part["checks_passed"] >= 4
    conn = await asyncpg.connect(source.url)
    try:
        after = await conn.fetch("SELECT * FROM orders ORDER BY id")
    finally:
        await conn.close()
    assert after == before


async def test_a_sigkill_mid_backup_leaves_no_half_snapshot_and_the_retry_finishes_once(
    backups: Backups,
) -> None:
    source = backups.sources["kill"]
    change = await backups.deployed("kill")
    for _ in range(600):  # until restic is writing this run's database snapshot
        out = subprocess.run(["pgrep", "-f", f"restic.*run={change}"], capture_output=True,
                             check=False)
        if out.returncode == 0:
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail(f"the backup of {change} never started\n{backups.tail()}")
    backups.kill()
    subprocess.run(["pkill", "-9", "-f", f"run={change}"], check=False)
    backups.start()
    body = await backups.one("backup.verified", change, timeout_s=180)
    assert {s["source"] for s in body["snapshots"]} == {"orders-db", "config"}
    await asyncio.sleep(1)
    assert len(await backups.all("backup.verified", change)) == 1
    restic = Restic(str(source.repo), PASSWORD, cache_dir=backups.folder / "cache")
    for name in ("orders-db", "config"):
        snaps = await restic.snapshots([f"run={change}", f"source={name}"])
        assert len(snaps) == 1, (name, snaps)


async def test_a_schedule_queues_runs_and_an_old_backup_raises_an_alert(
    backups: Backups,
) -> None:
    """`* * * * *` is due at once (a schedule that never ran owes its latest fire time);
    `max_age_hours` of 1.8 s makes the newest verified backup too old right after."""
    from tests.support.kafka import read_topic

    source = backups.sources["sched"]
    scheduled = None
    for _ in range(60):
        messages = await read_topic(backups.bootstrap, "backup.verified", until_count=100_000,
                                    timeout_s=1)
        scheduled = next((json.loads(m.value) for m in messages
                          if json.loads(m.value)["service"] == source.service), None)
        if scheduled is not None:
            break
        await asyncio.sleep(1)
    assert scheduled is not None, backups.tail()
    assert scheduled["trigger"] == "schedule"
    assert scheduled["change_id"].startswith(f"{source.service}-backup-")
    alert = await backups.one("ops.alerts", f"backup/{source.service}/stale", timeout_s=30)
    assert alert["severity"] == "warning" and not alert["resolved"]
    assert alert["service"] == source.service
