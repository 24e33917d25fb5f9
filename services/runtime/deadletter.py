"""Dead letters: a message that cannot be handled goes to `<topic>.dlq` with the reason."""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka.structs import ConsumerRecord

from services.runtime.outbox import OutboxMessage


@dataclass(frozen=True)
class Rejection:
    """Why a message was not handled; `kind` is a stable, low-cardinality label."""

    kind: str
    """One of: malformed_envelope, unknown_type, invalid_payload, bad_signature,
    handler_failed."""
    reason: str
    error_class: str


def dead_letter(
    record: ConsumerRecord[bytes, bytes], rejection: Rejection, service: str
) -> OutboxMessage:
    """The original key, value and headers, plus headers saying why and where it came from."""
    headers = [(k, v) for k, v in (record.headers or ()) if not k.startswith("dlq_")]
    headers += [
        ("dlq_reason", rejection.reason.encode()[:4000]),
        ("dlq_kind", rejection.kind.encode()),
        ("dlq_error_class", rejection.error_class.encode()),
        ("dlq_source_topic", record.topic.encode()),
        ("dlq_source_partition", str(record.partition).encode()),
        ("dlq_source_offset", str(record.offset).encode()),
        ("dlq_service", service.encode()),
    ]
    return OutboxMessage(
        topic=f"{record.topic}.dlq", key=record.key, value=record.value or b"", headers=headers
    )
