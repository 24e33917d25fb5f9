"""The topic registry: the one place that says, for each topic, what it carries and how.

Every topic's model, Kafka key field, partition count, retention and dead-letter topic is
read from here by the runtime (to validate and route), by the stack (to create topics) and
by the schema export (JSON Schema, AsyncAPI).
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.base import Event

DAY_MS = 24 * 60 * 60 * 1000
PIPELINE_RETENTION_MS = 14 * DAY_MS
"""Pipeline topics are kept for replay and post-incident reports."""


@dataclass(frozen=True)
class TopicSpec:
    name: str
    model: type[Event]
    key_field: str
    """The event field whose value is the Kafka key (ordering per change / service / incident)."""
    partitions: int = 6
    retention_ms: int = PIPELINE_RETENTION_MS
    signed: bool = False
    """A command from people or CI: receivers verify its Ed25519 signature."""
    description: str = ""

    @property
    def dlq(self) -> str:
        return f"{self.name}.dlq"

    @property
    def ce_type(self) -> str:
        return self.model.ce_type()

    def key_of(self, event: Event) -> str:
        return str(getattr(event, self.key_field))


class UnknownTopicError(KeyError):
    pass


class Registry:
    """Topics by name, by model and by CloudEvents type; built once from the table in topics.py."""

    def __init__(self, specs: list[TopicSpec]) -> None:
        self._by_name: dict[str, TopicSpec] = {}
        self._by_model: dict[type[Event], TopicSpec] = {}
        self._by_ce_type: dict[str, TopicSpec] = {}
        for spec in specs:
            if spec.name != spec.model.TOPIC:
                raise ValueError(
                    f"{spec.model.__name__}.TOPIC is {spec.model.TOPIC!r}, not {spec.name!r}"
                )
            if spec.key_field not in spec.model.model_fields:
                raise ValueError(f"{spec.model.__name__} has no key field {spec.key_field!r}")
            if spec.name in self._by_name or spec.ce_type in self._by_ce_type:
                raise ValueError(f"topic {spec.name!r} registered twice")
            self._by_name[spec.name] = spec
            self._by_model[spec.model] = spec
            self._by_ce_type[spec.ce_type] = spec

    def topic(self, name: str) -> TopicSpec:
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownTopicError(f"no topic {name!r} in the registry") from None

    def of(self, model: type[Event]) -> TopicSpec:
        try:
            return self._by_model[model]
        except KeyError:
            raise UnknownTopicError(f"{model.__name__} is not registered") from None

    def by_ce_type(self, ce_type: str) -> TopicSpec | None:
        return self._by_ce_type.get(ce_type)

    def all(self) -> list[TopicSpec]:
        return sorted(self._by_name.values(), key=lambda s: s.name)
