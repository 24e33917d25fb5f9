"""The checked-in export of the contract: a JSON Schema per event and one AsyncAPI document.

`python -m schemas.export` (`make schemas`) writes it; `python -m schemas.export --check`
compares it with what the code would write and exits 1 listing the stale files. Output is
deterministic so that the check compares bytes.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from schemas.envelope import CONTENT_TYPE, SPEC_VERSION
from schemas.registry import TopicSpec
from schemas.topics import REGISTRY, SERVICES

ROOT = Path(__file__).resolve().parent
JSONSCHEMA_DIR = "jsonschema"
ASYNCAPI_FILE = "asyncapi.yaml"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
KAFKA_BINDING_VERSION = "0.5.0"
CONTRACT_VERSION = "1.0.0"

Json = dict[str, object]


def schema_id(spec: TopicSpec) -> str:
    return f"urn:guardians:{spec.ce_type}"


def json_schema(spec: TopicSpec) -> Json:
    schema: Json = {"$schema": JSON_SCHEMA_DIALECT, "$id": schema_id(spec)}
    schema.update(spec.model.model_json_schema())
    return schema


def render_json_schema(spec: TopicSpec) -> str:
    return json.dumps(json_schema(spec), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# The CloudEvents 1.0 binary-mode headers as schemas/envelope.py writes them.
_CE_HEADERS: dict[str, tuple[Json, str]] = {
    "ce_specversion": ({"const": SPEC_VERSION}, "CloudEvents spec version."),
    "ce_id": ({}, "The event's unique id; receivers deduplicate on it."),
    "ce_source": ({}, "The producer (a guardian, the CLI, CI)."),
    "ce_type": ({}, "Versioned event type, `guardians.<topic>.v<N>`."),
    "ce_time": ({"format": "date-time"}, "When the event was produced, with its timezone."),
    "ce_subject": ({}, "The change or service the event is about."),
    "ce_correlationid": ({}, "The change id (or incident id) that ties a timeline together."),
    "ce_causationid": ({}, "The `ce_id` of the event that caused this one."),
    "ce_signer": ({}, "Name of the producer key that signed a command."),
    "ce_signature": ({}, "Ed25519 signature over ce_id, ce_type, ce_subject and the value."),
    "traceparent": (
        {"pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"},
        "W3C trace context: one release is one trace across the services.",
    ),
    "content-type": ({"const": CONTENT_TYPE}, "The value is the event's JSON."),
}
_CE_REQUIRED = ["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "content-type"]

# Written by the runtime's dead-letter path next to the original headers.
_DLQ_HEADERS: dict[str, str] = {
    "dlq_reason": "Why the message was not handled, for people.",
    "dlq_kind": "A stable label: malformed_envelope, unknown_type, invalid_payload, "
    "bad_signature or handler_failed.",
    "dlq_error_class": "The exception class that rejected it.",
    "dlq_source_topic": "The topic it was consumed from.",
    "dlq_source_partition": "The partition it was consumed from.",
    "dlq_source_offset": "Its offset there.",
    "dlq_service": "The service that dead-lettered it.",
}


def _string_headers(headers: dict[str, tuple[Json, str]], required: list[str]) -> Json:
    properties = {
        name: {"type": "string", **extra, "description": text}
        for name, (extra, text) in headers.items()
    }
    return {"type": "object", "properties": properties, "required": required}


def _components() -> Json:
    signed_required = ["ce_signer", "ce_signature"]
    messages: Json = {}
    for spec in REGISTRY.all():
        base = "SignedCloudEventsHeaders" if spec.signed else "CloudEventsHeaders"
        messages[spec.model.__name__] = {
            "name": spec.model.__name__,
            "title": spec.name,
            "summary": spec.description,
            "contentType": CONTENT_TYPE,
            "correlationId": {"$ref": "#/components/correlationIds/Change"},
            "headers": {
                "allOf": [
                    {"$ref": f"#/components/schemas/{base}"},
                    {"properties": {"ce_type": {"type": "string", "const": spec.ce_type}}},
                ]
            },
            "payload": {
                "schemaFormat": "application/schema+json;version=draft-2020-12",
                "schema": {"$ref": f"./{JSONSCHEMA_DIR}/{spec.name}.json"},
            },
            "bindings": {
                "kafka": {
                    "key": {
                        "type": "string",
                        "description": f"The event's `{spec.key_field}`.",
                    },
                    "bindingVersion": KAFKA_BINDING_VERSION,
                }
            },
        }
    messages["DeadLetter"] = {
        "name": "DeadLetter",
        "title": "dead letter",
        "summary": "A message a service could not handle: the original key, value and headers, "
        "plus headers saying why and where it came from.",
        "headers": {"$ref": "#/components/schemas/DeadLetterHeaders"},
        "payload": {"description": "The original value, byte for byte; it may not be JSON."},
    }
    dlq_headers: dict[str, tuple[Json, str]] = {n: ({}, t) for n, t in _DLQ_HEADERS.items()}
    return {
        "schemas": {
            "CloudEventsHeaders": _string_headers(_CE_HEADERS, _CE_REQUIRED),
            "SignedCloudEventsHeaders": {
                "allOf": [
                    {"$ref": "#/components/schemas/CloudEventsHeaders"},
                    {"required": signed_required},
                ],
                "description": "A command: receivers reject it unsigned or by an unknown key.",
            },
            "DeadLetterHeaders": {
                **_string_headers(dlq_headers, ["dlq_reason", "dlq_kind", "dlq_source_topic"]),
                "additionalProperties": {"type": "string"},
                "description": "The original headers are kept beside these.",
            },
        },
        "messages": messages,
        "correlationIds": {
            "Change": {
                "description": "The change (or incident) a message belongs to.",
                "location": "$message.header#/ce_correlationid",
            }
        },
    }


def _channels() -> Json:
    channels: Json = {}
    for spec in REGISTRY.all():
        kafka = {"topic": spec.name, "partitions": spec.partitions,
                 "bindingVersion": KAFKA_BINDING_VERSION}
        channels[spec.name] = {
            "address": spec.name,
            "description": spec.description,
            "messages": {
                spec.model.__name__: {"$ref": f"#/components/messages/{spec.model.__name__}"}
            },
            "bindings": {"kafka": kafka},
        }
        channels[spec.dlq] = {
            "address": spec.dlq,
            "description": f"Dead letters of {spec.name}.",
            "messages": {"DeadLetter": {"$ref": "#/components/messages/DeadLetter"}},
            "bindings": {"kafka": {**kafka, "topic": spec.dlq}},
        }
    return channels


def _operation(service: str, action: str, channel: str, message: str) -> Json:
    verb = "receives" if action == "receive" else "sends"
    return {
        "action": action,
        "channel": {"$ref": f"#/channels/{channel}"},
        "messages": [{"$ref": f"#/channels/{channel}/messages/{message}"}],
        "summary": f"The {service} guardian {verb} {channel}.",
        "tags": [{"name": service}],
    }


def _operations() -> Json:
    operations: Json = {}
    for service, topics in SERVICES.items():
        for name in topics.receives:
            spec = REGISTRY.topic(name)
            operations[f"{service}.receive.{name}"] = _operation(
                service, "receive", name, spec.model.__name__
            )
            operations[f"{service}.send.{spec.dlq}"] = _operation(
                service, "send", spec.dlq, "DeadLetter"
            )
        for name in topics.sends:
            spec = REGISTRY.topic(name)
            operations[f"{service}.send.{name}"] = _operation(
                service, "send", name, spec.model.__name__
            )
    return operations


def asyncapi_document() -> Json:
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Infra Guardians events",
            "version": CONTRACT_VERSION,
            "description": "Five guardians (migration, deploy, backup, process, incident) "
            "talking only through typed events on Apache Kafka. Values are JSON; the "
            "CloudEvents 1.0 attributes travel as Kafka headers (binary mode). Generated by "
            "`make schemas` from schemas/topics.py; do not edit by hand.",
            "tags": [
                {"name": service, "description": topics.description}
                for service, topics in SERVICES.items()
            ],
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "local": {
                "host": "127.0.0.1:9092",
                "protocol": "kafka",
                "description": "The single-node broker `make stack-up` starts.",
            }
        },
        "channels": _channels(),
        "operations": _operations(),
        "components": _components(),
    }


def render_asyncapi() -> str:
    return yaml.safe_dump(
        asyncapi_document(), sort_keys=False, allow_unicode=True, width=100
    )


def rendered() -> dict[str, str]:
    """Every export file's text, by its path relative to the schemas directory."""
    files = {f"{JSONSCHEMA_DIR}/{s.name}.json": render_json_schema(s) for s in REGISTRY.all()}
    files[ASYNCAPI_FILE] = render_asyncapi()
    return files


def stale_files(root: Path = ROOT) -> list[str]:
    """Export files under `root` that differ from what the code makes, are missing, or left over."""
    return _stale(root, rendered())


def _stale(root: Path, expected: dict[str, str]) -> list[str]:
    stale = [
        rel
        for rel, text in expected.items()
        if not (root / rel).is_file() or (root / rel).read_text(encoding="utf-8") != text
    ]
    schema_dir = root / JSONSCHEMA_DIR
    if schema_dir.is_dir():
        leftover = (f"{JSONSCHEMA_DIR}/{p.name}" for p in schema_dir.glob("*.json"))
        stale += [rel for rel in leftover if rel not in expected]
    return sorted(stale)


def write(root: Path = ROOT) -> list[str]:
    """Write the export under `root`, delete left-over schema files; return what changed."""
    expected = rendered()
    changed = _stale(root, expected)
    (root / JSONSCHEMA_DIR).mkdir(parents=True, exist_ok=True)
    for rel in changed:
        path = root / rel
        if rel in expected:
            path.write_text(expected[rel], encoding="utf-8")
        else:
            path.unlink()
    return changed


def main(argv: Sequence[str] | None = None, root: Path = ROOT) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m schemas.export", description="Export JSON Schema and AsyncAPI."
    )
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the export on disk is stale"
    )
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files(root)
        for rel in stale:
            print(f"stale: {root / rel}")
        if stale:
            print("the schema export is stale: run `make schemas` and commit the result")
            return 1
        return 0
    for rel in write(root):
        print(f"wrote {root / rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
