"""The topic table: every event has its topic, key, partitions, retention and signing."""

from __future__ import annotations

import pytest

from schemas.events.ops import Guardian
from schemas.registry import DAY_MS, PIPELINE_RETENTION_MS
from schemas.topics import (
    REGISTRY,
    RETENTION_ENV,
    RETENTION_MS,
    SERVICES,
    retention_ms,
)

# Fixed by the foundation issue: the topics and their meaning.
EXPECTED_TOPICS = {
    "change.submitted": "change_id",
    "migration.assessed": "change_id",
    "migration.review.requested": "change_id",
    "migration.review.decided": "change_id",
    "migration.approved": "change_id",
    "migration.blocked": "change_id",
    "deploy.stage.changed": "change_id",
    "deploy.analysis.measured": "change_id",
    "deploy.rollback.requested": "change_id",
    "deploy.rollout.decided": "change_id",
    "deploy.rolled_back": "change_id",
    "deploy.completed": "change_id",
    "deploy.failed": "change_id",
    "backup.verified": "change_id",
    "backup.failed": "change_id",
    "backup.restore.requested": "service",
    "backup.restored": "service",
    "health.reported": "service",
    "health.changed": "service",
    "service.restart.requested": "service",
    "infra.ready": "change_id",
    "incident.opened": "incident_id",
    "incident.updated": "incident_id",
    "incident.escalated": "incident_id",
    "incident.resolved": "incident_id",
    "incident.update.requested": "incident_id",
    "ops.alerts": "dedup_key",
}
COMMANDS = {
    "change.submitted",
    "migration.review.decided",
    "deploy.rollback.requested",
    "deploy.rollout.decided",
    "backup.restore.requested",
    "service.restart.requested",
    "incident.update.requested",
}


def test_every_event_topic_is_registered_with_its_model() -> None:
    assert {spec.name for spec in REGISTRY.all()} == set(EXPECTED_TOPICS)
    for spec in REGISTRY.all():
        assert spec.name == spec.model.TOPIC
        assert REGISTRY.of(spec.model) is spec
        assert REGISTRY.by_ce_type(f"guardians.{spec.name}.v1") is spec


@pytest.mark.parametrize(("topic", "key_field"), sorted(EXPECTED_TOPICS.items()))
def test_topic_is_keyed_by_its_documented_field(topic: str, key_field: str) -> None:
    spec = REGISTRY.topic(topic)
    assert spec.key_field == key_field
    assert spec.model.model_fields[key_field].is_required()


def test_commands_from_people_and_ci_are_signed_and_nothing_else_is() -> None:
    assert {spec.name for spec in REGISTRY.all() if spec.signed} == COMMANDS


def test_partitions_follow_the_stream_they_belong_to() -> None:
    for spec in REGISTRY.all():
        if spec.name == "ops.alerts":
            assert spec.partitions == 1
        elif spec.key_field == "incident_id" or spec.name.startswith(("health.", "service.")):
            assert spec.partitions == 3
        else:
            assert spec.partitions == 6


def test_every_topic_has_a_description_and_a_dead_letter_topic() -> None:
    for spec in REGISTRY.all():
        assert spec.description
        assert spec.dlq == f"{spec.name}.dlq"


def test_every_topic_is_kept_for_the_configured_retention() -> None:
    assert all(spec.retention_ms == RETENTION_MS for spec in REGISTRY.all())


def test_retention_defaults_to_fourteen_days() -> None:
    assert retention_ms({}) == PIPELINE_RETENTION_MS == 14 * DAY_MS
    assert retention_ms({RETENTION_ENV: " "}) == PIPELINE_RETENTION_MS


def test_retention_is_set_in_days_by_environment_variable() -> None:
    assert retention_ms({RETENTION_ENV: "30"}) == 30 * DAY_MS


@pytest.mark.parametrize("bad", ["0", "-3", "two weeks", "1.5"])
def test_retention_that_is_not_a_positive_number_of_days_is_refused_naming_the_variable(
    bad: str,
) -> None:
    with pytest.raises(ValueError, match=RETENTION_ENV):
        retention_ms({RETENTION_ENV: bad})


def test_the_five_guardians_are_in_the_service_table() -> None:
    assert list(SERVICES) == [guardian.value for guardian in Guardian]


def test_every_topic_is_heard_or_said_by_a_guardian() -> None:
    named = {name for topics in SERVICES.values() for name in (*topics.receives, *topics.sends)}
    assert named == set(EXPECTED_TOPICS)


def test_each_event_has_one_guardian_that_says_it_except_commands_and_alerts() -> None:
    senders: dict[str, list[str]] = {}
    for service, topics in SERVICES.items():
        for name in topics.sends:
            senders.setdefault(name, []).append(service)
    # from CI and people
    external = {"change.submitted", "migration.review.decided", "deploy.rollout.decided",
                "incident.update.requested"}
    assert set(senders) == set(EXPECTED_TOPICS) - external
    shared = {name for name, who in senders.items() if len(who) > 1}
    assert shared == {"ops.alerts"}


def test_every_command_has_a_guardian_that_carries_it_out() -> None:
    heard = {name for topics in SERVICES.values() for name in topics.receives}
    assert heard >= COMMANDS
