"""CloudEvents 1.0 in Kafka binary mode: the event JSON is the value, attributes are headers."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from schemas.base import utcnow

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"

Headers = Sequence[tuple[str, bytes]]


class EnvelopeError(ValueError):
    """A message whose headers are not a valid CloudEvents binary-mode envelope."""


@dataclass(frozen=True)
class Envelope:
    """The CloudEvents attributes of one message, plus correlation, causation and trace."""

    type: str
    source: str
    subject: str
    correlation_id: str
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    time: datetime = field(default_factory=utcnow)
    causation_id: str | None = None
    traceparent: str | None = None
    signer: str | None = None
    signature: str | None = None

    def with_signature(self, signer: str, signature: str) -> Envelope:
        return replace(self, signer=signer, signature=signature)

    def to_headers(self) -> list[tuple[str, bytes]]:
        pairs: list[tuple[str, str | None]] = [
            ("ce_specversion", SPEC_VERSION),
            ("ce_id", self.id),
            ("ce_source", self.source),
            ("ce_type", self.type),
            ("ce_time", self.time.isoformat()),
            ("ce_subject", self.subject),
            ("ce_correlationid", self.correlation_id),
            ("ce_causationid", self.causation_id),
            ("ce_signer", self.signer),
            ("ce_signature", self.signature),
            ("traceparent", self.traceparent),
            ("content-type", CONTENT_TYPE),
        ]
        return [(k, v.encode()) for k, v in pairs if v is not None]

    @classmethod
    def from_headers(cls, headers: Iterable[tuple[str, bytes]]) -> Envelope:
        found: dict[str, str] = {}
        for key, raw in headers:
            try:
                found[key] = raw.decode()
            except UnicodeDecodeError as exc:
                raise EnvelopeError(f"header {key!r} is not UTF-8") from exc
        missing = [
            k
            for k in ("ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time")
            if not found.get(k)
        ]
        if missing:
            raise EnvelopeError(f"missing CloudEvents header(s): {', '.join(missing)}")
        if found["ce_specversion"] != SPEC_VERSION:
            raise EnvelopeError(f"unsupported ce_specversion {found['ce_specversion']!r}")
        try:
            time = datetime.fromisoformat(found["ce_time"])
        except ValueError as exc:
            raise EnvelopeError(f"ce_time {found['ce_time']!r} is not ISO-8601") from exc
        if time.tzinfo is None:
            raise EnvelopeError(f"ce_time {found['ce_time']!r} has no timezone")
        return cls(
            type=found["ce_type"],
            source=found["ce_source"],
            subject=found.get("ce_subject", ""),
            correlation_id=found.get("ce_correlationid", ""),
            id=found["ce_id"],
            time=time,
            causation_id=found.get("ce_causationid"),
            traceparent=found.get("traceparent"),
            signer=found.get("ce_signer"),
            signature=found.get("ce_signature"),
        )
