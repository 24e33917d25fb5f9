"""The checked-in JSON Schema / AsyncAPI export matches the code, and describes all of it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from schemas import export
from schemas.envelope import Envelope
from schemas.topics import REGISTRY, SERVICES

JsonObject = dict[str, object]


def _asyncapi() -> JsonObject:
    document = yaml.safe_load((export.ROOT / export.ASYNCAPI_FILE).read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def _section(document: JsonObject, name: str) -> JsonObject:
    section = document[name]
    assert isinstance(section, dict)
    return section


def test_checked_in_export_is_current() -> None:
    stale = export.stale_files()
    assert not stale, (
        f"the schema export is stale ({', '.join(stale)}): run `make schemas` and commit it"
    )


def test_export_is_deterministic() -> None:
    assert export.rendered() == export.rendered()
    for spec in REGISTRY.all():
        text = export.render_json_schema(spec)
        assert text.endswith("}\n")
        assert text == json.dumps(json.loads(text), indent=2, sort_keys=True,
                                  ensure_ascii=False) + "\n"


def test_each_json_schema_is_named_by_its_versioned_event_type() -> None:
    for spec in REGISTRY.all():
        path = export.ROOT / export.JSONSCHEMA_DIR / f"{spec.name}.json"
        schema = json.loads(path.read_text(encoding="utf-8"))
        assert schema["$id"] == f"urn:guardians:guardians.{spec.name}.v1"
        assert schema["additionalProperties"] is False


def test_stale_check_reports_changed_missing_and_left_over_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert export.main([], root=tmp_path) == 0
    assert export.main(["--check"], root=tmp_path) == 0
    (tmp_path / "jsonschema" / "deploy.failed.json").write_text("{}\n", encoding="utf-8")
    (tmp_path / "jsonschema" / "ops.alerts.json").unlink()
    (tmp_path / "jsonschema" / "deploy.exploded.json").write_text("{}\n", encoding="utf-8")
    capsys.readouterr()

    assert export.main(["--check"], root=tmp_path) == 1

    out = capsys.readouterr().out
    for name in ("deploy.failed.json", "ops.alerts.json", "deploy.exploded.json"):
        assert f"stale: {tmp_path / 'jsonschema' / name}" in out
    assert "run `make schemas`" in out


def test_writing_the_export_repairs_it_and_removes_left_over_schemas(tmp_path: Path) -> None:
    export.write(tmp_path)
    (tmp_path / "jsonschema" / "deploy.exploded.json").write_text("{}\n", encoding="utf-8")
    (tmp_path / "asyncapi.yaml").write_text("asyncapi: 2.6.0\n", encoding="utf-8")

    assert export.write(tmp_path) == ["asyncapi.yaml", "jsonschema/deploy.exploded.json"]
    assert export.stale_files(tmp_path) == []
    assert not (tmp_path / "jsonschema" / "deploy.exploded.json").exists()


def test_asyncapi_lists_every_topic_and_its_dead_letter_topic() -> None:
    document = _asyncapi()
    assert document["asyncapi"] == "3.0.0"
    channels = _section(document, "channels")
    expected = {name for spec in REGISTRY.all() for name in (spec.name, spec.dlq)}
    assert set(channels) == expected


def test_asyncapi_has_the_operations_of_the_five_services() -> None:
    operations = _section(_asyncapi(), "operations")
    for service, topics in SERVICES.items():
        for name in topics.receives:
            assert f"{service}.receive.{name}" in operations
            assert f"{service}.send.{name}.dlq" in operations
        for name in topics.sends:
            assert f"{service}.send.{name}" in operations
    tagged = {
        tag["name"]
        for operation in operations.values()
        for tag in operation["tags"]  # type: ignore[index]
    }
    assert tagged == {"migration", "deploy", "backup", "process", "incident"}


def test_asyncapi_commands_require_the_signature_headers() -> None:
    messages = _section(_section(_asyncapi(), "components"), "messages")
    for spec in REGISTRY.all():
        headers = json.dumps(messages[spec.model.__name__])
        signed = "#/components/schemas/SignedCloudEventsHeaders" in headers
        assert signed == spec.signed, spec.name
        assert spec.ce_type in headers


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


def test_every_reference_in_the_asyncapi_document_resolves() -> None:
    document = _asyncapi()
    for ref in _refs(document):
        if ref.startswith("#/"):
            node: object = document
            for part in ref[2:].split("/"):
                assert isinstance(node, dict) and part in node, ref
                node = node[part]
        else:
            assert (export.ROOT / ref).is_file(), ref


def test_asyncapi_headers_are_the_ones_the_envelope_writes() -> None:
    schemas = _section(_section(_asyncapi(), "components"), "schemas")
    described = _section(_section(schemas, "CloudEventsHeaders"), "properties")
    envelope = Envelope(
        type="guardians.deploy.completed.v1", source="deploy", subject="shop",
        correlation_id="shop-7", causation_id="parent", signer="ci", signature="sig",
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    )
    assert [name for name, _ in envelope.to_headers()] == list(described)
