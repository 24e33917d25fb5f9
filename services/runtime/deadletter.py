"""Dead letters: a message that cannot be handled goes to `<topic>.dlq` with the reason."""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka.structs import ConsumerRecord

from schemas.events.ops import AlertSeverity, OpsAlert
from services.runtime.alerts import alert_message
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


def rejected_command_alert(
    record: ConsumerRecord[bytes, bytes], rejection: Rejection, service: str, signer: str | None
) -> OutboxMessage:
    """People hear about a forged or unsigned command, not only the dead-letter topic."""
    alert = OpsAlert(
        dedup_key=f"rejected-command:{service}:{record.topic}:{signer or 'unsigned'}",
        severity=AlertSeverity.WARNING,
        summary=f"{service} rejected a {record.topic} command: {rejection.reason}"[:500],
        raised_by=service,
        details=(
            f"dead-lettered to {record.topic}.dlq from partition {record.partition} "
            f"offset {record.offset}"
        ),
    )
    return alert_message(alert, service)
