"""The CI and reviewer commands against the real broker, run as CI runs them: subprocesses
signing with a key from a file (GUARDIANS_SIGNER=ci, GUARDIANS_SIGNING_KEY_FILE).

One change goes through: `guardians submit` sends it (read back from change.submitted, its
signature verified with the keyring's public key); the migration guardian's assessment and
review request are published as the guardian would; `guardians approve --all-items` answers
the checklist it reads from migration.review.requested; two deploy stages follow. Then
`guardians status` and `guardians tail` must tell that story.

The keyring is made for the test, so a guardian running meanwhile trusts none of these
commands (it dead-letters them) and none of the published events is one a guardian acts on
(migration.assessed, migration.review.requested and deploy.stage.changed have no consumer):
the story stays the test's.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from schemas.envelope import Envelope
from schemas.events import (
    ChangeSubmitted,
    DeployStageChanged,
    MigrationAssessed,
    MigrationReviewDecided,
    MigrationReviewRequested,
)
from schemas.events.deploy import DeployStage
from schemas.events.migration import ChecklistItem, ReviewDecision, ReviewKind, RiskLevel
from schemas.signing import TrustedKeys
from schemas.topics import REGISTRY
from services.runtime.keyring import ensure_keyring
from tests.support.kafka import send_events, wait_for

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Story:
    change: str
    service: str
    env: dict[str, str]
    trusted: Path
    submit_output: dict[str, Any]
    approve_output: dict[str, Any]


def guardians(env: dict[str, str], *args: str, timeout: float = 60
              ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def release_directory(root: Path) -> Path:
    folder = root / "release"
    (folder / "migrations" / "0001_orders").mkdir(parents=True)
    (folder / "migrations" / "0001_orders" / "up.sql").write_text(
        "CREATE TABLE orders (id bigint PRIMARY KEY);\n")
    (folder / "migrations" / "0001_orders" / "down.sql").write_text("DROP TABLE orders;\n")
    (folder / "migrations" / "0002_status.sql").write_text(
        "ALTER TABLE orders ADD COLUMN status text;\n")
    for side, pool in (("before", 10), ("after", 20)):
        (folder / "config" / side).mkdir(parents=True)
        (folder / "config" / side / "app.yaml").write_text(f"database:\n  pool: {pool}\n")
    (folder / "dependencies.before.txt").write_text("requests==2.31.0\n")
    (folder / "dependencies.after.txt").write_text("requests==2.32.3\n")
    return folder


@pytest.fixture(scope="module")
async def story(bootstrap: str, tmp_path_factory: pytest.TempPathFactory
                ) -> AsyncIterator[Story]:
    root = tmp_path_factory.mktemp("cli-pipeline")
    trusted = ensure_keyring(root / "keys")
    env = {k: v for k, v in os.environ.items() if k != "GUARDIANS_SIGNING_KEY"}
    env.update({"PYTHONPATH": str(ROOT), "GUARDIANS_KAFKA_BOOTSTRAP": bootstrap,
                "GUARDIANS_SIGNER": "ci",
                "GUARDIANS_SIGNING_KEY_FILE": str(root / "keys" / "ci.key")})
    service = f"clisvc{uuid.uuid4().hex[:6]}"

    submitted = guardians(env, "submit", str(release_directory(root)), "--service", service,
                          "--version", "2.0.0", "--previous-version", "1.0.0",
                          "--artifact", "oci://example/shop:2.0.0", "--format", "json")
    assert submitted.returncode == 0, submitted.stderr
    submit_output = json.loads(submitted.stdout)
    change = submit_output["change_id"]

    common = {"change_id": change, "service": service, "version": "2.0.0"}
    await send_events(bootstrap, REGISTRY, [
        MigrationAssessed(**common, risk=RiskLevel.MEDIUM),
        MigrationReviewRequested(
            **common, risk=RiskLevel.MEDIUM, review=ReviewKind.CHECKLIST,
            deadline=datetime.now(UTC) + timedelta(hours=1),
            checklist=(ChecklistItem(id="f1", text="orders is locked while it is created"),
                       ChecklistItem(id="rollback", text="the rollback was verified"))),
    ])
    approved = guardians(env, "approve", change, "--service", service, "--all-items",
                         "--comment", "checked", "--format", "json")
    assert approved.returncode == 0, approved.stderr
    await send_events(bootstrap, REGISTRY, [
        DeployStageChanged(**common, stage=DeployStage.STAGING),
        DeployStageChanged(**common, stage=DeployStage.CANARY,
                           previous_stage=DeployStage.STAGING, canary_weight=25),
    ])
    yield Story(change, service, env, trusted, submit_output, json.loads(approved.stdout))


async def test_submit_sends_the_directory_as_a_change_signed_by_ci(
    story: Story, bootstrap: str
) -> None:
    [record] = await wait_for(bootstrap, "change.submitted", subject=story.change,
                              timeout_s=30)
    envelope = Envelope.from_headers([(k, v.encode()) for k, v in record.headers.items()])
    assert envelope.signer == "ci"
    assert envelope.id == story.submit_output["id"]
    assert envelope.type == "guardians.change.submitted.v1"
    assert record.key == story.change.encode()
    keys = TrustedKeys(yaml.safe_load(story.trusted.read_text()))
    assert keys.verify(envelope, record.value) == "ci"

    event = ChangeSubmitted.model_validate_json(record.value)
    assert (event.service, event.version, event.previous_version, event.artifact) == (
        story.service, "2.0.0", "1.0.0", "oci://example/shop:2.0.0")
    assert [(m.name, m.down_sql) for m in event.migrations] == [
        ("0001_orders/up.sql", "DROP TABLE orders;\n"), ("0002_status.sql", None)]
    assert [(d.file, d.path, d.before, d.after) for d in event.config_diffs] == [
        ("app.yaml", "database.pool", "10", "20")]
    assert [(d.name, d.before, d.after) for d in event.dependency_diffs] == [
        ("requests", "2.31.0", "2.32.3")]
    assert story.submit_output["event"] == event.model_dump(mode="json")


async def test_approve_all_items_acknowledges_the_checklist_read_from_the_topic(
    story: Story, bootstrap: str
) -> None:
    [record] = await wait_for(bootstrap, "migration.review.decided", subject=story.change,
                              timeout_s=30)
    assert record.headers["ce_signer"] == "ci"
    assert record.headers["ce_id"] == story.approve_output["id"]
    decided = MigrationReviewDecided.model_validate_json(record.value)
    assert decided.decision is ReviewDecision.APPROVE
    assert decided.acknowledged == ("f1", "rollback")
    assert (decided.reviewer, decided.service, decided.comment) == (
        "ci", story.service, "checked")


async def test_approve_all_items_without_a_review_request_is_refused(story: Story) -> None:
    done = guardians(story.env, "approve", f"{story.change}-never", "--service", story.service,
                     "--all-items")
    assert done.returncode == 2
    assert "no migration.review.requested" in done.stderr


async def test_status_shows_the_latest_stage_and_the_history(story: Story) -> None:
    deadline = time.monotonic() + 30
    while True:  # acks=all: sent is readable, but give a slow broker a moment
        done = guardians(story.env, "status", story.change, "--since", "1h",
                         "--format", "json")
        assert done.returncode in (0, 1), done.stderr
        status = json.loads(done.stdout) if done.returncode == 0 else {}
        if status.get("state") == "canary" or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert (status["state"], status["description"], status["outcome"]) == (
        "canary", "canary 25%", "running")
    assert (status["service"], status["version"], status["previous_version"],
            status["risk"]) == (story.service, "2.0.0", "1.0.0", "medium")
    assert list(status["milestones"]) == ["submitted", "assessed", "in_review", "staging",
                                          "canary"]
    topics = [h["topic"] for h in status["history"]]
    assert topics == ["change.submitted", "migration.assessed", "migration.review.requested",
                      "migration.review.decided", "deploy.stage.changed",
                      "deploy.stage.changed"]
    assert status["history"][0]["signer"] == "ci"

    listing = guardians(story.env, "status", "--since", "1h", "--format", "json")
    assert listing.returncode == 0, listing.stderr
    [mine] = [c for c in json.loads(listing.stdout) if c["change_id"] == story.change]
    assert mine["state"] == "canary" and "history" not in mine

    text = guardians(story.env, "status", story.change, "--since", "1h")
    assert text.returncode == 0
    assert "canary 25%" in text.stdout and "decision=approve by=ci" in text.stdout

    missing = guardians(story.env, "status", f"{story.change}-none", "--since", "1h")
    assert missing.returncode == 1
    assert "no event for" in missing.stderr


def _lines(stream: Any, into: queue.Queue[str]) -> None:
    for line in stream:
        into.put(line)


async def test_tail_prints_the_change_events_and_stops_cleanly(story: Story) -> None:
    expected = ["change.submitted", "migration.assessed", "migration.review.requested",
                "migration.review.decided", "deploy.stage.changed", "deploy.stage.changed"]
    tail = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "tail", "--change", story.change,
         "--from-beginning", "--format", "json"],
        cwd=ROOT, env=story.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_lines, args=(tail.stdout, lines), daemon=True).start()
    seen: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + 60
        while len(seen) < len(expected) and time.monotonic() < deadline:
            try:
                seen.append(json.loads(lines.get(timeout=1)))
            except queue.Empty:
                assert tail.poll() is None, tail.stderr.read() if tail.stderr else ""
    finally:
        tail.terminate()
        code = tail.wait(timeout=30)
    assert code == 0
    assert sorted(s["topic"] for s in seen) == sorted(expected)
    assert {s["subject"] for s in seen} == {story.change}
    canary = [s for s in seen if s["value"].get("stage") == "canary"]
    assert canary and "weight=25%" in canary[0]["summary"]
    [decided] = [s for s in seen if s["topic"] == "migration.review.decided"]
    assert decided["signer"] == "ci"
    assert decided["value"]["acknowledged"] == ["f1", "rollback"]


async def test_reject_sends_a_signed_rejection_with_the_comment(
    story: Story, bootstrap: str
) -> None:
    other = f"{story.change}-r"
    done = guardians(story.env, "reject", other, "--service", story.service, "--comment",
                     "locks orders at peak", "--reviewer", "ana")
    assert done.returncode == 0, done.stderr
    assert f"sent reject for {other} by ana" in done.stdout
    [record] = await wait_for(bootstrap, "migration.review.decided", subject=other,
                              timeout_s=30)
    decided = MigrationReviewDecided.model_validate_json(record.value)
    assert (decided.decision, decided.reviewer, decided.comment) == (
        ReviewDecision.REJECT, "ana", "locks orders at peak")
    assert record.headers["ce_signer"] == "ci"
