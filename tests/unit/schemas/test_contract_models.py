"""The event models are strict: what passes is exactly the contract, and survives the wire."""

from __future__ import annotations

import json
from typing import Any, get_args

import pytest
from pydantic import BaseModel, ValidationError

from schemas.base import Event
from schemas.events import ChangeSubmitted, DeployCompleted, MigrationAssessed
from schemas.events.change import (
    ChangeKind,
    ConfigDiff,
    DependencyDiff,
    Ecosystem,
    MigrationScript,
)
from schemas.events.migration import Finding, RiskLevel, Severity
from schemas.topics import REGISTRY

TOPICS = [spec.name for spec in REGISTRY.all()]

JsonObject = dict[str, object]


def _wire(event: Event) -> JsonObject:
    value = json.loads(event.model_dump_json())
    assert isinstance(value, dict)
    return value


def _set(value: JsonObject, path: tuple[str | int, ...], new: object) -> None:
    """Put `new` at `path` inside a decoded event (keys and list indexes)."""
    here: Any = value  # a walk through decoded JSON: dicts and lists by turns
    for step in path[:-1]:
        here = here[step]
    here[path[-1]] = new


def _error_types(exc: pytest.ExceptionInfo[ValidationError]) -> set[str]:
    return {error["type"] for error in exc.value.errors()}


def _reject(topic: str, value: JsonObject) -> pytest.ExceptionInfo[ValidationError]:
    with pytest.raises(ValidationError) as exc:
        REGISTRY.topic(topic).model.model_validate_json(json.dumps(value))
    return exc


def test_every_topic_has_a_sample_event(samples: dict[str, Event]) -> None:
    assert sorted(samples) == TOPICS


@pytest.mark.parametrize("topic", TOPICS)
def test_event_survives_a_json_round_trip(topic: str, samples: dict[str, Event]) -> None:
    event = samples[topic]
    assert type(event).model_validate_json(event.model_dump_json()) == event


@pytest.mark.parametrize("topic", TOPICS)
def test_unknown_field_is_rejected(topic: str, samples: dict[str, Event]) -> None:
    value = _wire(samples[topic])
    value["surprise"] = 1
    assert "extra_forbidden" in _error_types(_reject(topic, value))


def test_unknown_field_in_a_nested_part_is_rejected(samples: dict[str, Event]) -> None:
    value = _wire(samples["migration.assessed"])
    _set(value, ("findings", 0, "surprise"), 1)
    assert "extra_forbidden" in _error_types(_reject("migration.assessed", value))


@pytest.mark.parametrize("topic", TOPICS)
def test_time_without_timezone_is_rejected(topic: str, samples: dict[str, Event]) -> None:
    value = _wire(samples[topic])
    value["occurred_at"] = "2026-11-28T09:30:00"
    assert "timezone_aware" in _error_types(_reject(topic, value))


@pytest.mark.parametrize(
    ("topic", "path", "number"),
    [
        ("deploy.analysis.measured", ("values", 0), float("nan")),
        ("deploy.rolled_back", ("breach", "values", 0), float("inf")),
        ("health.reported", ("checks", 0, "observed"), float("nan")),
        ("backup.verified", ("recovery_seconds",), float("-inf")),
        ("ops.alerts", ("values", 0, "value"), float("nan")),
    ],
)
def test_nan_and_infinity_are_rejected(
    topic: str, path: tuple[str | int, ...], number: float, samples: dict[str, Event]
) -> None:
    value = _wire(samples[topic])
    _set(value, path, number)  # json.dumps writes NaN / Infinity literals, as sloppy producers do
    assert "finite_number" in _error_types(_reject(topic, value))


def test_no_data_travels_as_null(samples: dict[str, Event]) -> None:
    measured = samples["deploy.analysis.measured"]
    value = _wire(measured)
    assert value["values"] == [0.01, None]
    assert type(measured).model_validate_json(json.dumps(value)) == measured


@pytest.mark.parametrize(
    ("topic", "path", "bad"),
    [
        ("migration.assessed", ("risk",), "catastrophic"),
        ("migration.assessed", ("findings", 0, "severity"), "fatal"),
        ("migration.review.decided", ("decision",), "maybe"),
        ("deploy.stage.changed", ("stage",), "dark_launch"),
        ("deploy.analysis.measured", ("outcome",), "passed"),
        ("backup.restore.requested", ("kinds", 0), "photos"),
        ("health.changed", ("grade",), "orange"),
        ("incident.opened", ("severity",), "sev0"),
        ("ops.alerts", ("severity",), "page"),
    ],
)
def test_unknown_enum_value_is_rejected(
    topic: str, path: tuple[str | int, ...], bad: str, samples: dict[str, Event]
) -> None:
    value = _wire(samples[topic])
    _set(value, path, bad)
    assert "enum" in _error_types(_reject(topic, value))


def test_a_number_is_not_coerced_into_a_text_field(samples: dict[str, Event]) -> None:
    value = _wire(samples["change.submitted"])
    value["version"] = 2
    assert "string_type" in _error_types(_reject("change.submitted", value))


def test_events_are_immutable(samples: dict[str, Event]) -> None:
    event = samples["deploy.completed"]
    assert isinstance(event, DeployCompleted)
    with pytest.raises(ValidationError, match="frozen"):
        event.version = "6.6.6"  # type: ignore[misc]


def _models_reachable_from(model: type[BaseModel]) -> set[type[BaseModel]]:
    found = {model}
    for field in model.model_fields.values():
        found |= _models_in(field.annotation)
    return found


def _models_in(annotation: object) -> set[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _models_reachable_from(annotation)
    found: set[type[BaseModel]] = set()
    for arg in get_args(annotation):
        found |= _models_in(arg)
    return found


def _annotations_in(model: type[BaseModel]) -> list[object]:
    pending = [field.annotation for field in model.model_fields.values()]
    seen: list[object] = []
    while pending:
        annotation = pending.pop()
        seen.append(annotation)
        pending.extend(get_args(annotation))
    return seen


ALL_PARTS = sorted(
    {part for spec in REGISTRY.all() for part in _models_reachable_from(spec.model)},
    key=lambda part: part.__name__,
)


@pytest.mark.parametrize("part", ALL_PARTS, ids=lambda part: part.__name__)
def test_every_event_and_nested_part_is_strict(part: type[BaseModel]) -> None:
    config = part.model_config
    assert config.get("extra") == "forbid"
    assert config.get("frozen") is True
    assert config.get("strict") is True
    assert config.get("allow_inf_nan") is False


@pytest.mark.parametrize("part", ALL_PARTS, ids=lambda part: part.__name__)
def test_no_field_of_the_contract_is_typed_any(part: type[BaseModel]) -> None:
    assert all(annotation is not Any for annotation in _annotations_in(part))


def test_config_diff_that_changes_nothing_is_rejected() -> None:
    with pytest.raises(ValidationError, match="changes nothing"):
        ConfigDiff(file="app.yaml", path="pool.size", before="10", after="10")


def test_dependency_diff_that_changes_nothing_is_rejected() -> None:
    with pytest.raises(ValidationError, match="changes nothing"):
        DependencyDiff(name="requests", ecosystem=Ecosystem.PYPI)


def test_change_with_a_repeated_migration_name_is_rejected() -> None:
    script = MigrationScript(name="0001/up.sql", up_sql="SELECT 1;")
    with pytest.raises(ValidationError, match=r"repeated: 0001/up\.sql"):
        ChangeSubmitted(change_id="c-1", service="shop", version="1", submitted_by="ci",
                        migrations=(script, script))


def test_change_kinds_follow_what_the_change_carries(samples: dict[str, Event]) -> None:
    full = samples["change.submitted"]
    assert isinstance(full, ChangeSubmitted)
    assert full.kinds == frozenset(ChangeKind)
    bare = ChangeSubmitted(change_id="c-1", service="shop", version="1", submitted_by="ci")
    assert bare.kinds == frozenset()


def test_risk_causes_must_name_findings_of_the_assessment() -> None:
    finding = Finding(id="f1", rule="ban-drop-table", severity=Severity.ERROR, message="drop")
    with pytest.raises(ValidationError, match="risk_causes name no finding: f2"):
        MigrationAssessed(change_id="c-1", service="shop", version="1", risk=RiskLevel.HIGH,
                          findings=(finding,), risk_causes=("f2",))


def test_kafka_key_of_each_event_is_its_key_field(samples: dict[str, Event]) -> None:
    for spec in REGISTRY.all():
        assert spec.key_of(samples[spec.name]) == getattr(samples[spec.name], spec.key_field)
