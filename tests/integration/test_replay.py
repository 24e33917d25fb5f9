"""`guardians replay` against the real broker: a synthetic release published on the real
topics with real envelopes, among other releases' events, read back as one causal chain.

The chain: change.submitted → migration.assessed → migration.approved → three
deploy.stage.changed → deploy.analysis.measured (failed) → deploy.rolled_back →
incident.opened → incident.resolved, each with the change as correlation id and the previous
event as cause. Beside it, events replay must find by other routes: an escalation keyed and
correlated by the incident only (found through incident.opened's change_id), and an alert
and a restart request correlated elsewhere but caused by the chain (found by causation, read
again by offset). Three other releases, published interleaved, must not appear.

`ce_time`s are set a minute in the past, one second apart, so that the order is known and
any guardian running meanwhile (which may react to these events) says its part later.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from cli.replay import Selector, read
from cli.timeline import build_timeline, root_cause
from schemas.base import Event
from schemas.envelope import Envelope
from schemas.events import (
    ChangeSubmitted,
    DeployAnalysisMeasured,
    DeployRolledBack,
    DeployStageChanged,
    IncidentEscalated,
    IncidentOpened,
    IncidentResolved,
    MigrationApproved,
    MigrationAssessed,
    OpsAlert,
    ServiceRestartRequested,
)
from schemas.events.deploy import AnalysisOutcome, DeployStage, MetricBreach, RollbackTrigger
from schemas.events.incident import IncidentCause, IncidentDurations, IncidentSeverity
from schemas.events.migration import ApprovalPath, RiskLevel
from schemas.events.ops import AlertSeverity, Guardian
from schemas.topics import REGISTRY

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SERVICE = "replay-svc"
"""In no guardians.yaml: a deploy guardian that hears the approval can only fail it."""


@dataclass
class Release:
    """One synthetic release: its chain, the events found by other routes, all published."""

    change: str
    incident: str
    start: datetime
    chain: list[tuple[Event, Envelope]] = field(default_factory=list)
    extras: list[tuple[Event, Envelope]] = field(default_factory=list)

    def add(self, event: Event, *, correlation: str | None = None, cause: str | None = "last",
            extra: bool = False) -> Envelope:
        spec = REGISTRY.of(type(event))
        key = spec.key_of(event)
        previous = self.chain[-1][1].id if self.chain else None
        count = len(self.chain) + len(self.extras)
        envelope = Envelope(type=spec.ce_type, source="tests/replay", subject=key,
                            correlation_id=correlation or self.change,
                            causation_id=previous if cause == "last" else cause,
                            time=self.start + timedelta(seconds=count))
        (self.extras if extra else self.chain).append((event, envelope))
        return envelope

    @property
    def ids(self) -> list[str]:
        return [envelope.id for _, envelope in self.chain]

    @property
    def extra_ids(self) -> list[str]:
        return [envelope.id for _, envelope in self.extras]


def release(change: str, incident: str) -> Release:
    r = Release(change, incident, datetime.now(UTC) - timedelta(minutes=1))
    common: dict[str, Any] = {"change_id": change, "service": SERVICE, "version": "2.0.0"}
    r.add(ChangeSubmitted(**common, previous_version="1.9.3", submitted_by="ci"), cause=None)
    r.add(MigrationAssessed(**common, risk=RiskLevel.LOW))
    r.add(MigrationApproved(**common, previous_version="1.9.3", risk=RiskLevel.LOW,
                            approval=ApprovalPath.AUTOMATIC))
    for new, old, weight in ((DeployStage.STAGING, None, None),
                             (DeployStage.STAGING_TESTS, DeployStage.STAGING, None),
                             (DeployStage.CANARY, DeployStage.STAGING_TESTS, 20)):
        r.add(DeployStageChanged(**common, stage=new, previous_stage=old, canary_weight=weight))
    breach = MetricBreach(metric="error-rate", query="q", condition="result < 0.05",
                          values=(0.21,))
    r.add(DeployAnalysisMeasured(**common, stage=DeployStage.CANARY, analysis="success",
                                 metric="error-rate", query="q", condition="result < 0.05",
                                 values=(0.21,), outcome=AnalysisOutcome.FAILED))
    rolled_back = r.add(DeployRolledBack(
        **common, restored_version="1.9.3", stage=DeployStage.CANARY,
        trigger=RollbackTrigger.ANALYSIS_FAILED, reason="error-rate 0.21 >= 0.05",
        breach=breach))
    opened = r.add(IncidentOpened(
        incident_id=incident, dedup_key=f"{SERVICE}:rolled_back", service=SERVICE,
        severity=IncidentSeverity.HIGH, cause=IncidentCause.DEPLOY_ROLLED_BACK,
        summary="rolled back", change_id=change, version="2.0.0"))
    r.add(IncidentResolved(incident_id=incident, service=SERVICE,
                           severity=IncidentSeverity.HIGH, resolved_by="incident",
                           resolution="rolled back to 1.9.3", change_id=change,
                           durations=IncidentDurations(resolve_seconds=2.0)))
    # Found by the incident id only (a timer's escalation: no cause, the incident as
    # correlation), and by causation only (correlated elsewhere).
    r.add(IncidentEscalated(incident_id=incident, service=SERVICE,
                            severity=IncidentSeverity.HIGH, level=1, policy="default",
                            reason="page"), correlation=incident, cause=None, extra=True)
    r.add(OpsAlert(dedup_key=f"{SERVICE}:rollback", severity=AlertSeverity.WARNING,
                   summary="rolled back", raised_by=Guardian.DEPLOY),
          correlation=f"{SERVICE}:rollback", cause=rolled_back.id, extra=True)
    r.add(ServiceRestartRequested(service=SERVICE, requested_by="ops", reason="warm caches",
                                  incident_id=incident),
          correlation=SERVICE, cause=opened.id, extra=True)
    return r


async def publish(bootstrap: str, releases: list[Release]) -> None:
    """Every release's events, interleaved: event n of each release, then event n + 1."""
    rows = [[*r.chain, *r.extras] for r in releases]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                enable_idempotence=True)
    await producer.start()
    try:
        for n in range(max(map(len, rows))):
            for row in rows:
                if n < len(row):
                    event, envelope = row[n]
                    spec = REGISTRY.of(type(event))
                    await producer.send(spec.name, value=event.model_dump_json().encode(),
                                        key=spec.key_of(event).encode(),
                                        headers=envelope.to_headers())
        await producer.flush()
    finally:
        await producer.stop()


async def consumer_groups(bootstrap: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return {group[0] for group in await admin.list_consumer_groups()}
    finally:
        await admin.close()


@pytest.fixture(scope="module")
async def published(bootstrap: str) -> tuple[Release, list[Release], set[str]]:
    tag = uuid.uuid4().hex[:8]
    ours = release(f"replay-{tag}", f"inc-replay-{tag}")
    noise = [release(f"replay-{tag}-other{n}", f"inc-replay-{tag}-other{n}") for n in range(3)]
    groups = await consumer_groups(bootstrap)
    await publish(bootstrap, [noise[0], ours, *noise[1:]])
    return ours, noise, groups


def guardians(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "cli.main", "replay", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60)


async def test_a_change_replays_as_one_causal_chain_without_a_consumer_group(
    bootstrap: str, published: tuple[Release, list[Release], set[str]],
) -> None:
    ours, noise, groups_before = published
    result = await read(bootstrap, Selector(change=ours.change))
    timeline = build_timeline(result.events)
    ids = [e.id for e in timeline.events]
    assert [i for i in ids if i in ours.ids] == ours.ids  # complete and in order
    assert set(ours.extra_ids) <= set(ids)
    assert result.stats.fetched >= 2  # the alert and the restart, read again by offset
    others = {i for r in noise for i in (*r.ids, *r.extra_ids)}
    assert not others & set(ids)
    for cause_id, effect_id in zip(ours.ids, ours.ids[1:], strict=False):
        assert timeline.parent[effect_id] == cause_id
    assert timeline.parent[ours.extra_ids[0]] is None  # the escalation: no cause
    first = root_cause(timeline)
    assert first is not None and first.kind == "deploy.analysis.measured"
    assert first.id == ours.ids[6]
    assert await consumer_groups(bootstrap) == groups_before


async def test_an_incident_replays_with_its_change(
    bootstrap: str, published: tuple[Release, list[Release], set[str]],
) -> None:
    ours, _, _ = published
    result = await read(bootstrap, Selector(incident=ours.incident),
                        topics=[t.name for t in REGISTRY.all()])
    ids = {e.id for e in result.events}
    assert set(ours.ids) <= ids and set(ours.extra_ids) <= ids


async def test_a_window_after_the_events_and_narrowed_topics(
    bootstrap: str, published: tuple[Release, list[Release], set[str]],
) -> None:
    ours, _, _ = published
    later = await read(bootstrap, Selector(change=ours.change,
                                           since=datetime.now(UTC) + timedelta(hours=1)))
    assert later.events == []
    narrowed = await read(bootstrap, Selector(change=ours.change),
                          topics=["deploy.rolled_back", "incident.opened"])
    assert sorted(e.topic for e in narrowed.events) == ["deploy.rolled_back",
                                                        "incident.opened"]


def test_the_command_prints_json_and_markdown_and_exits_as_documented(
    bootstrap: str, published: tuple[Release, list[Release], set[str]],
) -> None:
    ours, _, _ = published
    done = guardians("--change", ours.change, "--format", "json", "--bootstrap", bootstrap)
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["root_cause"] == ours.ids[6]
    chain = [e["envelope"]["id"] for e in document["events"] if e["envelope"]["id"] in ours.ids]
    assert chain == ours.ids
    report = guardians("--incident", ours.incident, "--format", "md", "--bootstrap", bootstrap)
    assert report.returncode == 0, report.stderr
    # Only what a guardian hearing these events meanwhile cannot change (it may add a later
    # outcome: the deploy guardian fails an unknown service's change).
    assert "## Root-cause candidate" in report.stdout and ours.ids[6] in report.stdout
    missing = guardians("--change", f"{ours.change}-nothing", "--bootstrap", bootstrap)
    assert missing.returncode == 1 and "no events for change" in missing.stderr
    unreachable = guardians("--since", "1h", "--bootstrap", "127.0.0.1:1")
    assert unreachable.returncode == 2 and "cannot reach Kafka at 127.0.0.1:1" in unreachable.stderr
    usage = guardians("--bootstrap", bootstrap)
    assert usage.returncode == 2 and "nothing to replay" in usage.stderr
