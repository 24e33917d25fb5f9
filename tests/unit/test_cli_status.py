"""`guardians status` and `guardians tail`: a change's state is what its latest event says,
derived from hand-built events without a broker."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TypedDict

import pytest

from cli.status import change_states, render_change, render_table
from cli.tail import OutputFormat, line_of
from cli.topic_reader import Message, check_topics, parse_since
from schemas.base import Event
from schemas.envelope import Envelope
from schemas.events import (
    BackupFailed,
    BackupVerified,
    ChangeSubmitted,
    DeployCompleted,
    DeployRolledBack,
    DeployStageChanged,
    InfraReady,
    MigrationApproved,
    MigrationAssessed,
    MigrationBlocked,
    MigrationReviewDecided,
    MigrationReviewRequested,
)
from schemas.events.backup import BackupKind, BackupPhase, BackupSnapshot, BackupTrigger
from schemas.events.deploy import DeployStage, RollbackTrigger
from schemas.events.migration import (
    ApprovalPath,
    BlockReason,
    ChecklistItem,
    ReviewDecision,
    ReviewKind,
    RiskLevel,
)
from schemas.topics import REGISTRY

T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
CHANGE = "shop-2.4.0-abc123"


class Common(TypedDict):
    change_id: str
    service: str


COMMON: Common = {"change_id": CHANGE, "service": "shop"}


def message(event: Event, seconds: float, offset: int = 0) -> Message:
    spec = REGISTRY.of(type(event))
    key = spec.key_of(event)
    at = T0 + timedelta(seconds=seconds)
    envelope = Envelope(type=spec.ce_type, source="tests", subject=key, correlation_id=key,
                        time=at)
    value = json.loads(event.model_dump_json())
    return Message(spec.name, 0, offset, int(at.timestamp() * 1000), key, envelope, value,
                   json.dumps(value), {})


def submitted(change: str = CHANGE) -> ChangeSubmitted:
    return ChangeSubmitted(change_id=change, service="shop", version="2.4.0",
                           previous_version="2.3.1", submitted_by="ci")


def stage(stage: DeployStage, weight: int | None = None) -> DeployStageChanged:
    return DeployStageChanged(**COMMON, version="2.4.0", stage=stage, canary_weight=weight)


def snapshot() -> BackupSnapshot:
    return BackupSnapshot(kind=BackupKind.DATABASE, source="db", snapshot_id="abc12345",
                          size_bytes=1, recovery_seconds=1.0)


def test_each_stage_of_a_release_is_its_state_and_a_milestone() -> None:
    events: list[Event] = [
        submitted(),
        MigrationAssessed(**COMMON, version="2.4.0", risk=RiskLevel.MEDIUM),
        MigrationReviewRequested(**COMMON, version="2.4.0", risk=RiskLevel.MEDIUM,
                                 review=ReviewKind.CHECKLIST, deadline=T0 + timedelta(hours=4),
                                 checklist=(ChecklistItem(id="f1", text="lock"),)),
        MigrationReviewDecided(**COMMON, reviewer="ana", decision=ReviewDecision.APPROVE,
                               acknowledged=("f1",)),
        MigrationApproved(**COMMON, version="2.4.0", risk=RiskLevel.MEDIUM,
                          approval=ApprovalPath.CHECKLIST, approved_by=("ana",)),
        stage(DeployStage.STAGING),
        stage(DeployStage.CANARY, 25),
    ]
    messages = [message(e, i) for i, e in enumerate(events)]

    expected = ["submitted", "assessed", "in_review", "in_review", "approved", "staging",
                "canary"]
    for count, state in enumerate(expected, 1):
        [change] = change_states(messages[:count]).values()
        assert change.state == state, count

    [change] = change_states(reversed(messages)).values()  # arrival order does not matter
    assert (change.state, change.description, change.outcome) == (
        "canary", "canary 25%", "running")
    assert (change.service, change.version, change.previous_version, change.risk) == (
        "shop", "2.4.0", "2.3.1", "medium")
    assert list(change.milestones) == ["submitted", "assessed", "in_review", "approved",
                                       "staging", "canary"]
    assert change.milestones["approved"] == T0 + timedelta(seconds=4)
    assert len(change.history) == 7  # the reviewer's decision is history, not a state
    text = render_change(change)
    assert "canary 25%" in text and "decision=approve by=ana" in text


@pytest.mark.parametrize(
    ("last", "state", "description", "outcome"),
    [
        (MigrationBlocked(**COMMON, version="2.4.0", risk=RiskLevel.HIGH,
                          reason=BlockReason.REVIEW_REJECTED),
         "blocked", "blocked: review_rejected", "failed"),
        (stage(DeployStage.PAUSED, 50), "paused", "paused at 50%", "waiting"),
        (stage(DeployStage.MONITORING), "monitoring", "production monitoring", "running"),
        (DeployCompleted(**COMMON, version="2.4.0"), "completed", "deployed to production",
         "running"),
        (DeployRolledBack(**COMMON, version="2.4.0", restored_version="2.3.1",
                          stage=DeployStage.CANARY, trigger=RollbackTrigger.ANALYSIS_FAILED,
                          reason="errors"),
         "rolled_back", "rolled back (analysis_failed) to 2.3.1", "failed"),
        (BackupVerified(**COMMON, trigger=BackupTrigger.DEPLOY, repository="r",
                        snapshots=(snapshot(),), recovery_seconds=3.0),
         "backup_verified", "backup verified", "running"),
        (BackupFailed(**COMMON, trigger=BackupTrigger.DEPLOY, phase=BackupPhase.BACKUP,
                      reason="disk", will_retry=True),
         "backup_failed", "backup failed in backup (retrying)", "running"),
        (BackupFailed(**COMMON, trigger=BackupTrigger.DEPLOY, phase=BackupPhase.BACKUP,
                      reason="disk"),
         "backup_failed", "backup failed in backup", "failed"),
        (InfraReady(**COMMON, version="2.4.0", gate_seconds=30, checks_passed=4),
         "ready", "ready: passed the health gate", "succeeded"),
    ],
)
def test_the_latest_event_sets_the_state_and_the_outcome(
    last: Event, state: str, description: str, outcome: str
) -> None:
    [change] = change_states([message(submitted(), 0), message(last, 10)]).values()
    assert (change.state, change.description, change.outcome) == (state, description, outcome)
    assert change.updated_at == T0 + timedelta(seconds=10)


def test_events_of_the_same_instant_take_the_later_stage() -> None:
    same = [message(DeployCompleted(**COMMON, version="2.4.0"), 5),
            message(stage(DeployStage.COMPLETED), 5)]
    [change] = change_states(same).values()
    assert change.state == "completed"
    same = [message(stage(DeployStage.MONITORING), 5), message(submitted(), 5)]
    [change] = change_states(same).values()
    assert change.state == "monitoring"


def test_changes_are_told_apart_and_listed() -> None:
    states = change_states([message(submitted("a-1"), 0), message(submitted("b-2"), 1),
                            message(stage(DeployStage.STAGING), 2)])
    assert set(states) == {"a-1", "b-2", CHANGE}
    assert states[CHANGE].state == "staging"
    table = render_table(list(states.values()), T0 + timedelta(minutes=5))
    assert table.splitlines()[0].split() == ["CHANGE", "SERVICE", "VERSION", "STATE", "RISK",
                                             "UPDATED"]
    assert "(4m ago)" in table


def test_tail_lines_say_time_topic_subject_and_what_the_event_says() -> None:
    line = line_of(message(stage(DeployStage.CANARY, 25), 1), OutputFormat.TEXT)
    assert line.startswith("2026-11-28 09:00:01.000 deploy.stage.changed")
    assert CHANGE in line and "canary weight=25%" in line
    document = json.loads(line_of(message(stage(DeployStage.CANARY, 25), 1),
                                  OutputFormat.JSON))
    assert document["subject"] == CHANGE
    assert document["value"]["canary_weight"] == 25
    assert document["type"] == "guardians.deploy.stage.changed.v1"


def test_a_dead_letter_says_who_rejected_it_and_why() -> None:
    plain = message(submitted(), 0)
    dead = Message("change.submitted.dlq", 0, 0, plain.timestamp_ms, plain.key, plain.envelope,
                   plain.value, plain.raw, {"dlq_reason": "unsigned", "dlq_kind": "bad_signature",
                                            "dlq_service": "migration"})
    assert "dead-lettered by migration (bad_signature: unsigned)" in dead.summary()
    assert json.loads(line_of(dead, OutputFormat.JSON))["dead_letter"]["reason"] == "unsigned"


def test_since_takes_ages_and_times() -> None:
    now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    assert parse_since("24h", now) == now - timedelta(hours=24)
    assert parse_since("90s", now) == now - timedelta(seconds=90)
    assert parse_since("2026-11-27T08:00:00") == datetime(2026, 11, 27, 8, tzinfo=UTC)
    with pytest.raises(ValueError, match="is not a time"):
        parse_since("yesterday")


def test_topic_arguments_are_registered_topics_or_their_dead_letters() -> None:
    assert check_topics(["deploy.failed,change.submitted.dlq", "deploy.failed"]) == [
        "deploy.failed", "change.submitted.dlq"]
    with pytest.raises(ValueError, match="unknown topic"):
        check_topics(["deploy.exploded"])
