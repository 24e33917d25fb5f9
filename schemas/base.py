"""What every event model shares: strictness, the topic it lives on and its version."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, ClassVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

ChangeId = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$", strict=True)
]
"""A release candidate's id as CI names it (for example `shop-2026.11.28-7`)."""

ServiceName = Annotated[
    str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$", strict=True)
]
"""A managed service's name as `guardians.yaml` spells it."""

IncidentId = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$", strict=True)
]
"""An incident's id as the incident service names it; the Kafka key of incident events."""

DedupKey = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,199}$", strict=True)
]
"""What makes two reports the same problem (service + cause), as PagerDuty's dedup key."""

Timestamp = AwareDatetime
"""Every time in the contract carries its timezone."""

Seconds = Annotated[float, Field(ge=0)]
"""A duration in seconds: plain numbers read the same in every consumer's language."""


def utcnow() -> datetime:
    return datetime.now(UTC)


class StrictModel(BaseModel):
    """The contract's strictness, shared by events and their nested parts (a finding, a check)."""

    # Written out here, not in a shared variable: the pydantic mypy plugin reads `frozen` only
    # from a literal. NaN and infinity are refused so that "no data" is said as null: NaN
    # compares false with every threshold and would pass a canary as healthy.
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        allow_inf_nan=False,
        use_attribute_docstrings=True,
        # Validators are built on first use: a command that imports the contract but never
        # validates an event (`guardians lint`) does not pay for building all of them.
        defer_build=True,
    )


class Event(StrictModel):
    """Base of every event: unknown fields rejected, values immutable, types strict.

    Strict mode still accepts ISO-8601 strings and enum values from JSON, which is the only
    way events enter the system (`model_validate_json`).
    """

    TOPIC: ClassVar[str]
    VERSION: ClassVar[int] = 1

    occurred_at: Timestamp = Field(default_factory=utcnow)

    @classmethod
    def ce_type(cls) -> str:
        """The CloudEvents `type`, versioned: a breaking change is a new `.vN` type."""
        return f"guardians.{cls.TOPIC}.v{cls.VERSION}"
