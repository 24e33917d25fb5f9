"""The migration guardian's workflow on the real broker and database: low goes straight
through, medium waits for a checklist decision, high needs two distinct signed approvals,
blocked is blocked, and a review nobody decides blocks the change."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from schemas.events.change import ChangeSubmitted, MigrationScript
from schemas.events.migration import MigrationReviewDecided, ReviewDecision
from schemas.signing import SigningKey
from schemas.topics import REGISTRY
from services.runtime.keyring import ensure_keyring
from services.runtime.topics import ensure_topics
from tests.support.kafka import Received, send_events, wait_for

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]

BASELINE = """
CREATE TABLE accounts (id bigint PRIMARY KEY, email text NOT NULL);
CREATE TABLE orders (id bigint PRIMARY KEY, account_id bigint NOT NULL, total numeric);
"""
LOW = MigrationScript(
    name="0002_add_notes/up.sql",
    up_sql="CREATE TABLE notes (id bigint PRIMARY KEY, body text);",
    down_sql="DROP TABLE notes;",
)
MEDIUM = MigrationScript(
    name="0002_index_orders/up.sql",
    up_sql="SET lock_timeout = '2s';\nCREATE INDEX orders_account_idx ON orders (account_id);",
    down_sql="DROP INDEX orders_account_idx;",
)
HIGH = MigrationScript(
    name="0002_drop_total/up.sql",
    up_sql="SET lock_timeout = '2s';\nALTER TABLE orders DROP COLUMN total;",
    down_sql="ALTER TABLE orders ADD COLUMN total numeric;",
)
BROKEN_BASELINE = BASELINE + "ALTER TABLE no_such_table ADD COLUMN x int;\n"
"""A configuration mistake: the baseline itself does not apply."""
BROKEN = MigrationScript(
    name="0002_broken/up.sql",
    up_sql="ALTER TABLE no_such_table ADD COLUMN x int;",
    down_sql="ALTER TABLE no_such_table DROP COLUMN x;",
)


@dataclass
class Guardian:
    bootstrap: str
    keys: Path
    service: str
    broken_service: str = ""
    """A second managed service, configured with a baseline that does not apply."""
    broken_baseline: Path | None = None

    def key(self, name: str) -> SigningKey:
        return SigningKey.from_text(name, (self.keys / f"{name}.key").read_text())

    async def submit(self, script: MigrationScript, service: str | None = None) -> str:
        service = service or self.service
        change_id = f"{service}-{uuid.uuid4().hex[:8]}"
        change = ChangeSubmitted(change_id=change_id, service=service, version="2.0.0",
                                 previous_version="1.0.0", submitted_by="ci",
                                 migrations=(script,))
        await send_events(self.bootstrap, REGISTRY, [change], signer=self.key("ci"))
        return change_id

    async def decide(self, change_id: str, reviewer: str, decision: ReviewDecision, *,
                     acknowledged: tuple[str, ...] = (), signer: str | None = "same") -> None:
        event = MigrationReviewDecided(change_id=change_id, service=self.service,
                                       reviewer=reviewer, decision=decision,
                                       acknowledged=acknowledged)
        key = None if signer is None else self.key(reviewer if signer == "same" else signer)
        await send_events(self.bootstrap, REGISTRY, [event], signer=key)

    async def next(self, topic: str, change_id: str, timeout_s: float = 60, *,
                   nth: int = 1) -> dict[str, object]:
        found = await wait_for(self.bootstrap, topic, subject=change_id, count=nth,
                               timeout_s=timeout_s)
        assert len(found) == nth, f"no {topic} #{nth} for {change_id} within {timeout_s} s"
        return _body(found[-1])

    async def none(self, topic: str, change_id: str, within_s: float) -> None:
        found = await wait_for(self.bootstrap, topic, subject=change_id, timeout_s=within_s)
        assert not found, f"unexpected {topic} for {change_id}: {_body(found[0])}"


def _body(message: Received) -> dict[str, object]:
    body: dict[str, object] = json.loads(message.value)
    return body


@pytest.fixture(scope="module")
async def migration_guardian(
    bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Guardian]:
    await ensure_topics(bootstrap, REGISTRY.all())
    folder = tmp_path_factory.mktemp("migration")
    keys = folder / "keys"
    producers = ("ci", "migration", "alice", "bob", "carol", "mallory")
    trusted = ensure_keyring(keys, producers)
    service = f"shop{uuid.uuid4().hex[:6]}"
    broken_service = f"{service}-misconfigured"
    (folder / "baseline.sql").write_text(BASELINE)
    (folder / "broken.sql").write_text(BROKEN_BASELINE)
    config = folder / "guardians.yaml"
    config.write_text(
        "services:\n"
        f"  {service}:\n"
        "    migration:\n"
        f"      baseline: {folder / 'baseline.sql'}\n"
        "      checklist_reviewers: [alice]\n"
        "      team_reviewers: [alice, bob, carol]\n"
        "      team_approvals: 2\n"
        "      review_timeout_seconds: 8\n"
        f"  {broken_service}:\n"
        "    migration:\n"
        f"      baseline: {folder / 'broken.sql'}\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GUARDIANS_HTTP_PORT": "0",
           "GUARDIANS_CONFIG_FILE": str(config), "GUARDIANS_TRUSTED_KEYS_FILE": str(trusted),
           "GUARDIANS_SIGNER": "migration",
           "GUARDIANS_SIGNING_KEY": (keys / "migration.key").read_text().strip()}
    log = (folder / "migration.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "services.migration"], cwd=ROOT, env=env,
                            stdout=log, stderr=log)
    try:
        yield Guardian(bootstrap, keys, service, broken_service, folder / "broken.sql")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()
        print((folder / "migration.log").read_text()[-3000:])


async def test_a_low_risk_change_is_approved_automatically(migration_guardian: Guardian) -> None:
    change = await migration_guardian.submit(LOW)
    assessed = await migration_guardian.next("migration.assessed", change)
    approved = await migration_guardian.next("migration.approved", change)
    assert assessed["risk"] == "low"
    assert assessed["verification"]["rollback_restored"] == "passed"  # type: ignore[index]
    assert approved["approval"] == "automatic" and approved["approved_by"] == []


async def test_a_medium_change_waits_for_a_checklist_that_acknowledges_every_item(
    migration_guardian: Guardian,
) -> None:
    change = await migration_guardian.submit(MEDIUM)
    review = await migration_guardian.next("migration.review.requested", change)
    assert review["risk"] == "medium" and review["review"] == "checklist"
    items = tuple(str(i["id"]) for i in review["checklist"])  # type: ignore[attr-defined]
    # Approval that skips an item does not count; bob may not decide a checklist.
    await migration_guardian.decide(change, "alice", ReviewDecision.APPROVE,
                                    acknowledged=items[:-1])
    await migration_guardian.decide(change, "bob", ReviewDecision.APPROVE, acknowledged=items)
    await migration_guardian.none("migration.approved", change, within_s=4)
    await migration_guardian.decide(change, "alice", ReviewDecision.APPROVE, acknowledged=items)
    approved = await migration_guardian.next("migration.approved", change)
    assert approved["approval"] == "checklist" and approved["approved_by"] == ["alice"]
    plan = approved["monitoring_plan"]
    assert plan and {m["name"] for m in plan["metrics"]} >= {"latency-p99"}  # type: ignore[index]


async def test_a_high_change_needs_two_distinct_signed_team_approvals(
    migration_guardian: Guardian,
) -> None:
    change = await migration_guardian.submit(HIGH)
    review = await migration_guardian.next("migration.review.requested", change)
    assert review["risk"] == "high" and review["review"] == "team"
    assert review["required_approvals"] == 2
    assert review["plan"]["rollback_verified"] is True  # type: ignore[index]
    await migration_guardian.decide(change, "alice", ReviewDecision.APPROVE)
    await migration_guardian.decide(change, "alice", ReviewDecision.APPROVE)  # repeated
    await migration_guardian.decide(change, "bob", ReviewDecision.APPROVE, signer=None)
    await migration_guardian.decide(change, "carol", ReviewDecision.APPROVE, signer="mallory")
    await migration_guardian.none("migration.approved", change, within_s=4)
    await migration_guardian.decide(change, "carol", ReviewDecision.APPROVE)
    approved = await migration_guardian.next("migration.approved", change)
    assert approved["approval"] == "team"
    assert approved["approved_by"] == ["alice", "carol"]


async def test_a_team_rejection_blocks_the_change(migration_guardian: Guardian) -> None:
    change = await migration_guardian.submit(HIGH)
    await migration_guardian.next("migration.review.requested", change)
    await migration_guardian.decide(change, "bob", ReviewDecision.REJECT)
    blocked = await migration_guardian.next("migration.blocked", change)
    assert blocked["reason"] == "review_rejected" and blocked["rejected_by"] == ["bob"]


async def test_an_up_script_that_fails_on_the_shadow_database_is_blocked(
    migration_guardian: Guardian,
) -> None:
    change = await migration_guardian.submit(BROKEN)
    assessed = await migration_guardian.next("migration.assessed", change)
    blocked = await migration_guardian.next("migration.blocked", change)
    assert assessed["risk"] == "blocked"
    assert assessed["verification"]["up_applied"] == "failed"  # type: ignore[index]
    assert blocked["reason"] == "failed_validation"
    assert any("no_such_table" in str(d) for d in blocked["details"])  # type: ignore[attr-defined]


async def test_a_baseline_that_does_not_apply_blocks_the_change_and_alerts_not_dead_letters(
    migration_guardian: Guardian,
) -> None:
    g = migration_guardian
    assert g.broken_baseline is not None
    change = await g.submit(LOW, service=g.broken_service)
    assessed = await g.next("migration.assessed", change)
    blocked = await g.next("migration.blocked", change)
    alert_key = f"baseline-broken:{g.broken_service}"
    alert = await g.next("ops.alerts", alert_key)
    await g.none("change.submitted.dlq", change, within_s=3)

    assert assessed["risk"] == "blocked"
    findings = {str(f["rule"]): f for f in assessed["findings"]}  # type: ignore[attr-defined]
    failed = findings["shadow-baseline-failed"]
    assert "broken.sql" in failed["message"] and "no_such_table" in failed["message"]
    assert "42P01" in failed["message"]
    assert failed["statement"] == "ALTER TABLE no_such_table ADD COLUMN x int"
    assert "migration.baseline" in failed["fix"] and "resubmit" in failed["fix"]
    assert assessed["risk_causes"] == [failed["id"]]
    verification = assessed["verification"]
    assert isinstance(verification, dict)
    assert (verification["up_applied"], verification["rollback_restored"],
            verification["reapplied"]) == ("skipped", "skipped", "skipped")
    assert "no_such_table" in verification["error"]
    assert blocked["reason"] == "failed_validation"
    assert blocked["finding_ids"] == [failed["id"]]
    assert alert["severity"] == "warning" and alert["resolved"] is False
    assert alert["raised_by"] == "migration" and alert["service"] == g.broken_service
    assert alert["change_id"] == change

    # Fixed in place (the baseline is read per change): the next change is verified on it
    # again, and the alert is resolved.
    g.broken_baseline.write_text(BASELINE)
    fixed = await g.submit(LOW, service=g.broken_service)
    await g.next("migration.approved", fixed)
    resolved = await g.next("ops.alerts", alert_key, nth=2)
    assert resolved["resolved"] is True and resolved["change_id"] == fixed


async def test_a_review_nobody_decides_blocks_the_change_at_its_deadline(
    migration_guardian: Guardian,
) -> None:
    started = time.monotonic()
    change = await migration_guardian.submit(MEDIUM)
    await migration_guardian.next("migration.review.requested", change)
    blocked = await migration_guardian.next("migration.blocked", change, timeout_s=60)
    assert blocked["reason"] == "review_timed_out"
    assert time.monotonic() - started >= 8
