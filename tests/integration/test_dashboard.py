"""The dashboard on the real stack: the read model folds a release's events the same in any
order, NOTIFY speaks only for committed batches, and a real browser (Debian's Chromium,
driven by playwright) sees a change move through its stages as the events arrive, over one
event stream, without reloading or polling."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from schemas.base import Event
from schemas.events.backup import BackupKind, BackupSnapshot, BackupTrigger, BackupVerified
from schemas.events.change import ChangeSubmitted, MigrationScript
from schemas.events.deploy import (
    AnalysisOutcome,
    DeployAnalysisMeasured,
    DeployCompleted,
    DeployRolledBack,
    DeployStage,
    DeployStageChanged,
    MetricBreach,
    RollbackTrigger,
)
from schemas.events.health import (
    CheckKind,
    CheckResult,
    CheckStatus,
    HealthChanged,
    HealthGrade,
    HealthReported,
    InfraReady,
)
from schemas.events.incident import (
    IncidentCause,
    IncidentDurations,
    IncidentOpened,
    IncidentResolved,
    IncidentSeverity,
    IncidentStatus,
    IncidentUpdated,
    TimelineEntry,
    TimelineKind,
)
from schemas.events.migration import (
    ApprovalPath,
    MigrationApproved,
    MigrationAssessed,
    MigrationReviewRequested,
    ReviewKind,
    RiskLevel,
)
from schemas.signing import SigningKey
from schemas.topics import REGISTRY
from services.dashboard import store
from services.dashboard.app import guardian as dashboard
from services.runtime import db
from services.runtime.topics import ensure_topics
from tests.support.kafka import send_events

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS = ROOT / "services" / "dashboard" / "migrations"
T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def release(change: str, service: str, *, rolled_back: bool = False) -> list[Event]:
    """A release's events as the guardians would say them, each stamped a second apart."""
    events: list[Event] = [
        ChangeSubmitted(change_id=change, service=service, version="2.0.0",
                        previous_version="1.9.0", submitted_by="ci", occurred_at=at(0),
                        migrations=(MigrationScript(name="0001", up_sql="SELECT 1;"),)),
        MigrationAssessed(change_id=change, service=service, version="2.0.0",
                          risk=RiskLevel.MEDIUM, occurred_at=at(1)),
        MigrationReviewRequested(change_id=change, service=service, version="2.0.0",
                                 risk=RiskLevel.MEDIUM, review=ReviewKind.CHECKLIST,
                                 deadline=at(3600), occurred_at=at(1)),
        MigrationApproved(change_id=change, service=service, version="2.0.0",
                          risk=RiskLevel.MEDIUM, approval=ApprovalPath.CHECKLIST,
                          approved_by=("ana",), occurred_at=at(2)),
        DeployStageChanged(change_id=change, service=service, version="2.0.0",
                           stage=DeployStage.STAGING, occurred_at=at(3)),
        DeployStageChanged(change_id=change, service=service, version="2.0.0",
                           stage=DeployStage.CANARY, canary_weight=20, step=0,
                           previous_stage=DeployStage.STAGING, occurred_at=at(4)),
        DeployAnalysisMeasured(change_id=change, service=service, version="2.0.0",
                               stage=DeployStage.CANARY, analysis="errors", metric="error-rate",
                               query="q", condition="result < 0.05", values=(0.01,),
                               outcome=AnalysisOutcome.SUCCESSFUL, canary_weight=20,
                               occurred_at=at(5)),
        DeployAnalysisMeasured(change_id=change, service=service, version="2.0.0",
                               stage=DeployStage.CANARY, analysis="errors", metric="error-rate",
                               query="q", condition="result < 0.05", values=(0.09,),
                               outcome=AnalysisOutcome.FAILED, canary_weight=50,
                               occurred_at=at(7)),
        DeployStageChanged(change_id=change, service=service, version="2.0.0",
                           stage=DeployStage.CANARY, canary_weight=50, step=1,
                           occurred_at=at(6)),
    ]
    if rolled_back:
        events.append(DeployRolledBack(
            change_id=change, service=service, version="2.0.0", restored_version="1.9.0",
            stage=DeployStage.CANARY, trigger=RollbackTrigger.ANALYSIS_FAILED,
            reason="error-rate broke result < 0.05", occurred_at=at(8),
            breach=MetricBreach(metric="error-rate", query="q", condition="result < 0.05",
                                values=(0.09,))))
        events.append(DeployStageChanged(change_id=change, service=service, version="2.0.0",
                                         stage=DeployStage.ROLLED_BACK, occurred_at=at(8)))
        return events
    return [
        *events,
        DeployStageChanged(change_id=change, service=service, version="2.0.0",
                           stage=DeployStage.PRODUCTION, occurred_at=at(8)),
        DeployCompleted(change_id=change, service=service, version="2.0.0", occurred_at=at(9)),
        BackupVerified(
            change_id=change, service=service, version="2.0.0", trigger=BackupTrigger.DEPLOY,
            repository="/r", recovery_seconds=4.5, occurred_at=at(10),
            next_backup_at=at(86400),
            snapshots=(BackupSnapshot(kind=BackupKind.DATABASE, source="db",
                                      snapshot_id="a" * 64, size_bytes=2048,
                                      recovery_seconds=4.5),)),
        HealthReported(service=service, grade=HealthGrade.GREEN, occurred_at=at(11),
                       checks=(CheckResult(name="http", kind=CheckKind.HTTP,
                                           status=CheckStatus.PASS),)),
        HealthChanged(service=service, grade=HealthGrade.YELLOW, occurred_at=at(11),
                      previous_grade=HealthGrade.GREEN,
                      causes=(CheckResult(name="latency", kind=CheckKind.HTTP,
                                          status=CheckStatus.WARN,
                                          condition="[RESPONSE_TIME] < 300"),)),
        InfraReady(change_id=change, service=service, version="2.0.0", gate_seconds=30,
                   checks_passed=3, occurred_at=at(12)),
        IncidentOpened(incident_id=f"inc-{change}", dedup_key=f"{service}/x", service=service,
                       severity=IncidentSeverity.HIGH, cause=IncidentCause.HEALTH_RED,
                       summary="red", change_id=change, occurred_at=at(13)),
        IncidentUpdated(incident_id=f"inc-{change}", service=service,
                        status=IncidentStatus.MITIGATING, severity=IncidentSeverity.HIGH,
                        count=2, occurred_at=at(14),
                        entry=TimelineEntry(at=at(14), kind=TimelineKind.ACTION_REQUESTED,
                                            actor="incident", message="restart")),
        IncidentResolved(incident_id=f"inc-{change}", service=service,
                         severity=IncidentSeverity.HIGH, resolved_by="ana", resolution="ok",
                         durations=IncidentDurations(resolve_seconds=60), occurred_at=at(15)),
    ]


HANDLERS: dict[type[Event], Callable[[Any, Any], Any]] = {
    ChangeSubmitted: store.change_submitted,
    MigrationAssessed: store.migration_assessed,
    MigrationReviewRequested: store.review_requested,
    MigrationApproved: store.migration_approved,
    DeployStageChanged: store.stage_changed,
    DeployAnalysisMeasured: store.analysis_measured,
    DeployCompleted: store.deploy_completed,
    DeployRolledBack: store.deploy_rolled_back,
    BackupVerified: store.backup_verified,
    HealthReported: store.health_reported,
    HealthChanged: store.health_changed,
    InfraReady: store.infra_ready,
    IncidentOpened: store.incident_opened,
    IncidentUpdated: store.incident_updated,
    IncidentResolved: store.incident_resolved,
}


@pytest.fixture
async def fresh_schema(database_url: str) -> AsyncIterator[Callable[[], Any]]:
    """A factory of empty read models, each in a schema of its own, dropped afterwards."""
    made: list[str] = []
    pools: list[asyncpg.Pool] = []

    async def make() -> asyncpg.Pool:
        schema = f"dash_t_{uuid.uuid4().hex[:10]}"
        pool = await db.create_pool(database_url, schema, 2)
        await db.migrate(pool, schema, db.discover("dashboard", MIGRATIONS))
        made.append(schema)
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        await pool.close()
    conn = await asyncpg.connect(database_url)
    try:
        for schema in made:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


async def fold(pool: asyncpg.Pool, events: list[Event]) -> dict[str, Any]:
    async with pool.acquire() as conn:
        for event in events:
            async with conn.transaction():
                await HANDLERS[type(event)](conn, event)
        return await store.read_sections(conn, tuple(store.Section))


@pytest.mark.parametrize("rolled_back", [False, True])
async def test_the_read_model_is_the_same_whatever_order_the_events_arrive_in(
    fresh_schema: Callable[[], Any], rolled_back: bool
) -> None:
    events = release("c-1", "shop", rolled_back=rolled_back)
    in_order = await fold(await fresh_schema(), events)
    rng = random.Random(7)
    for _ in range(3):
        shuffled = events[:]
        rng.shuffle(shuffled)
        assert await fold(await fresh_schema(), shuffled) == in_order
    assert await fold(await fresh_schema(), events[::-1]) == in_order

    [change] = in_order["changes"]
    [analysis] = change["analyses"]
    assert (analysis["values"], analysis["outcome"]) == ([0.09], "failed")  # the latest
    assert (analysis["measurements"], analysis["failures"]) == (2, 1)
    assert in_order["reviews"] == []  # approved after it was requested
    if rolled_back:
        assert (change["state"], change["label"]) == ("rolled_back", "rolled back")
        assert change["rolled_back"]["breach"]["values"] == [0.09]
        return
    assert (change["state"], change["label"], change["tone"]) == ("completed", "completed", "ok")
    assert change["canary_weight"] == 50 and change["infra_ready"]["gate_seconds"] == 30
    assert change["backup"]["result"] == "verified"
    [health] = in_order["health"]
    # The transition and the report share an instant: the transition (with its causes) wins.
    assert health["grade"] == "yellow" and health["failing"][0]["name"] == "latency"
    [backup] = in_order["backups"]
    assert backup["recovery_test"]["result"] == "passed"
    assert backup["size_bytes"] == 2048 and backup["next_backup_at"] is not None
    [incident] = in_order["incidents"]
    assert (incident["status"], incident["count"]) == ("resolved", 2)


async def test_a_pending_review_is_in_the_queue_until_decided(
    fresh_schema: Callable[[], Any]
) -> None:
    events = release("c-2", "shop")[:3]  # submitted, assessed, review requested
    state = await fold(await fresh_schema(), events)
    [review] = state["reviews"]
    assert (review["change_id"], review["review"], review["risk"]) == (
        "c-2", "checklist", "medium")
    assert state["changes"][0]["label"] == "in review"


async def test_notify_speaks_for_committed_batches_only(
    fresh_schema: Callable[[], Any], database_url: str
) -> None:
    pool = await fresh_schema()
    async with pool.acquire() as conn:
        schema = await conn.fetchval("SELECT current_schema()")
    heard: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(database_url)
    await listener.add_listener(store.channel(schema), lambda *args: heard.put_nowait(args[3]))
    try:
        submitted = release("c-3", "shop")[0]
        assert isinstance(submitted, ChangeSubmitted)
        async with pool.acquire() as conn:
            with contextlib.suppress(RuntimeError):
                async with conn.transaction():
                    await store.change_submitted(conn, submitted)
                    raise RuntimeError("the batch fails")
            await asyncio.sleep(0.3)
            assert heard.empty()
            async with conn.transaction():
                await store.change_submitted(conn, submitted)
                await store.change_submitted(conn, submitted)
        assert await asyncio.wait_for(heard.get(), 5) == "changes"
        await asyncio.sleep(0.3)
        assert heard.empty(), "one notification per section per transaction"
    finally:
        await listener.close()


# -- the page in a real browser ---------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


async def _wait_ready(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        with contextlib.suppress(OSError):
            status, _ = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/readyz")
            if status == 200:
                return
        await asyncio.sleep(0.3)
    raise AssertionError(f"the dashboard was not ready in 60 s: {log.read_text()[-3000:]}")


def _chromium() -> str:
    """Debian's chromium, installed by stack/browser.sh when missing (as root)."""
    result = subprocess.run([str(ROOT / "stack" / "browser.sh")], capture_output=True,
                            text=True, timeout=900)
    if result.returncode != 0:
        if os.geteuid() != 0:
            pytest.skip(f"chromium is not installed and this is not root: {result.stderr}")
        pytest.fail(f"stack/browser.sh could not provide chromium: {result.stderr}")
    return result.stdout.strip().splitlines()[-1]


async def _start_group_at_the_end(bootstrap: str, group: str) -> None:
    """Commit the end of every topic the dashboard hears as `group`'s position, so that this
    test's dashboard starts with the events the test sends rather than every earlier test's
    (folding whole histories in any order is what the tests above are about)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = await _partitions(bootstrap, dashboard.topics)
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        await consumer.commit({tp: await consumer.position(tp) for tp in partitions})
    finally:
        await consumer.stop()


@contextlib.asynccontextmanager
async def _own_database(database_url: str, name: str) -> AsyncIterator[str]:
    """A database of its own on the stack's server, dropped afterwards: this dashboard's read
    model and dedupe table never mix with a dashboard that `make run` may have running."""
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield database_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def _trusted_keys(path: Path, ci: SigningKey) -> Path:
    """The test's CI key, plus the local keyring's when `make run` made one: a change that the
    demo submits meanwhile is then read, not dead-lettered with an alert."""
    keyring = ROOT / ".cache" / "keys" / "trusted.yaml"
    trusted: dict[str, str] = {}
    if keyring.exists():
        trusted.update(yaml.safe_load(keyring.read_text()) or {})
    trusted[ci.name] = ci.public_text()
    path.write_text(yaml.safe_dump(trusted))
    return path


async def _partitions(bootstrap: str, topics: list[str]) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    return [TopicPartition(t["topic"], p["partition"]) for t in described
            for p in t["partitions"]]


BROWSER_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.mark.timeout(900)  # stack/browser.sh may have to install chromium first
async def test_the_page_shows_a_change_move_through_its_stages_live_without_polling(
    bootstrap: str, database_url: str, tmp_path: Path
) -> None:
    chromium = _chromium()
    tag = uuid.uuid4().hex[:8]
    change, service = f"dash-{tag}", f"dash-{tag}"
    group = f"guardians-dashboard-test-{tag}"
    await ensure_topics(bootstrap, REGISTRY.all())
    await _start_group_at_the_end(bootstrap, group)
    ci = SigningKey.generate(f"ci-dashboard-test-{tag}")
    port = _free_port()
    log = tmp_path / "dashboard.log"
    async with _own_database(database_url, f"dashboard_test_{tag}") as own_url:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "GUARDIANS_HTTP_PORT": str(port),
               "GUARDIANS_HTTP_HOST": "127.0.0.1", "GUARDIANS_DATABASE_URL": own_url,
               "GUARDIANS_CONSUMER_GROUP": group,
               "GUARDIANS_TRUSTED_KEYS_FILE": str(_trusted_keys(tmp_path / "trusted.yaml", ci))}
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "services.dashboard"], cwd=ROOT,
                                    env=env, stdout=out, stderr=out)
        try:
            await _drive_the_page(bootstrap, chromium, port, proc, log, ci, change, service,
                                  tmp_path)
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=30)
    assert code == 0, log.read_text()[-3000:]


async def _drive_the_page(bootstrap: str, chromium: str, port: int,
                          proc: subprocess.Popen[bytes], log: Path, ci: SigningKey,
                          change: str, service: str, tmp_path: Path) -> None:
    from playwright.async_api import async_playwright, expect

    await _wait_ready(port, proc, log)
    status, body = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/api/state")
    assert status == 200 and set(json.loads(body)) >= {s.value for s in store.Section}

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, headless=True,
                                           args=BROWSER_FLAGS)
        try:
            page = await browser.new_page()
            requests: list[str] = []
            page.on("request", lambda request: requests.append(request.url))
            await page.goto(f"http://127.0.0.1:{port}/")
            await expect(page.get_by_test_id("connection")).to_have_text("live",
                                                                         timeout=15_000)
            loaded_at = await page.evaluate("window.dashboardLoadedAt")

            stage = page.get_by_test_id(f"stage-{change}")
            steps: list[tuple[Event, Callable[[], Any]]] = [
                (ChangeSubmitted(change_id=change, service=service, version="2.0.0",
                                 previous_version="1.9.0", submitted_by="ci"),
                 lambda: expect(stage).to_have_text("submitted", timeout=30_000)),
                (MigrationAssessed(change_id=change, service=service, version="2.0.0",
                                   risk=RiskLevel.LOW),
                 lambda: expect(stage).to_have_text("assessed")),
                (MigrationApproved(change_id=change, service=service, version="2.0.0",
                                   risk=RiskLevel.LOW, approval=ApprovalPath.AUTOMATIC),
                 lambda: expect(stage).to_have_text("approved")),
                (DeployStageChanged(change_id=change, service=service, version="2.0.0",
                                    stage=DeployStage.STAGING),
                 lambda: expect(stage).to_have_text("staging")),
                (DeployStageChanged(change_id=change, service=service, version="2.0.0",
                                    stage=DeployStage.CANARY, canary_weight=20, step=0),
                 lambda: expect(stage).to_have_text("canary 20%")),
                (DeployAnalysisMeasured(
                    change_id=change, service=service, version="2.0.0",
                    stage=DeployStage.CANARY, analysis="errors", metric="error-rate",
                    query="sum(rate(errors[1m]))", condition="result < 0.05",
                    values=(0.012,), outcome=AnalysisOutcome.SUCCESSFUL, canary_weight=20),
                 lambda: expect(page.get_by_test_id(f"analysis-{change}-error-rate"))
                    .to_contain_text("successful")),
                (DeployStageChanged(change_id=change, service=service, version="2.0.0",
                                    stage=DeployStage.PRODUCTION),
                 lambda: expect(stage).to_have_text("production")),
                (DeployCompleted(change_id=change, service=service, version="2.0.0"),
                 lambda: expect(stage).to_have_text("completed")),
                (BackupVerified(
                    change_id=change, service=service, version="2.0.0",
                    trigger=BackupTrigger.DEPLOY, repository="/repo", recovery_seconds=3.2,
                    snapshots=(BackupSnapshot(kind=BackupKind.DATABASE, source="db",
                                              snapshot_id="b" * 64, size_bytes=5 * 1024**2,
                                              recovery_seconds=3.2),)),
                 lambda: expect(page.get_by_test_id(f"recovery-{service}"))
                    .to_contain_text("passed in 3.2 s")),
                (HealthReported(service=service, grade=HealthGrade.GREEN,
                                checks=(CheckResult(name="http", kind=CheckKind.HTTP,
                                                    status=CheckStatus.PASS),)),
                 lambda: expect(page.get_by_test_id(f"grade-{service}"))
                    .to_have_text("green")),
                (InfraReady(change_id=change, service=service, version="2.0.0",
                            gate_seconds=5, checks_passed=1),
                 lambda: expect(page.get_by_test_id(f"ready-{change}"))
                    .to_have_text("infra ready")),
            ]
            # The guardians may be running on this stack (`make run`) and answer some of
            # these events (a deploy of a service they do not manage fails at once). The
            # story is stamped a day ahead, a second per step, so that their answers are
            # older than every step and the page shows the story: the newest wins.
            ahead = datetime.now(UTC) + timedelta(days=1)
            for i, (event, shown) in enumerate(steps):
                stamped = event.model_copy(
                    update={"occurred_at": ahead + timedelta(seconds=i)})
                await send_events(bootstrap, REGISTRY, [stamped],
                                  signer=ci if isinstance(event, ChangeSubmitted) else None)
                await shown()
            await expect(page.get_by_test_id(f"size-{service}")).to_have_text("5.0 MiB")
            await page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)

            assert await page.evaluate("window.dashboardLoadedAt") == loaded_at, "reloaded"
            assert await page.evaluate("window.dashboardMessages") >= len(steps)
            paths = [url.removeprefix(f"http://127.0.0.1:{port}") for url in requests]
            assert paths.count("/events") == 1, paths
            assert sorted(paths) == sorted(
                ["/", "/static/dashboard.css", "/static/dashboard.js", "/events"]), paths
        finally:
            await browser.close()
