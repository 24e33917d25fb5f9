"""Configuration, dependency and infrastructure changes, and `analyse_change` as a whole."""

from __future__ import annotations

import json

import pytest

from schemas.events.change import (
    ChangeKind,
    ConfigDiff,
    DependencyDiff,
    Ecosystem,
    InfrastructurePlan,
    MigrationScript,
)
from services.migration.domain.change_analysis import AnalysisOptions, analyse_change
from services.migration.domain.config_changes import analyse_config_diffs
from services.migration.domain.dependency_changes import analyse_dependency_diffs, parse_version
from services.migration.domain.findings import Effect
from services.migration.domain.infrastructure_plans import analyse_infrastructure_plans


def test_a_removed_config_key_is_incompatible() -> None:
    found = analyse_config_diffs([ConfigDiff(file="app.yaml", path="db.pool", before="5")])
    assert [(f.rule, f.effect, f.kind) for f in found] == [
        ("config-key-removed", Effect.INCOMPATIBLE, ChangeKind.CONFIG)]


def test_a_critical_key_change_is_incompatible_and_others_are_not_reported() -> None:
    diffs = [ConfigDiff(file="app.yaml", path="auth.issuer", before="a", after="b"),
             ConfigDiff(file="app.yaml", path="log.level", before="info", after="debug")]
    found = analyse_config_diffs(diffs, critical=["auth.*"])
    assert [(f.rule, f.target) for f in found] == [("config-critical-key-changed", "auth.issuer")]
    assert analyse_config_diffs(diffs, critical=["app.yaml:log.*"])[0].target == "log.level"


def test_an_added_config_key_is_advisory() -> None:
    found = analyse_config_diffs([ConfigDiff(file="a.yaml", path="x", after="1")])
    assert [f.effect for f in found] == [Effect.ADVISORY]


@pytest.mark.parametrize(("text", "parsed"), [
    ("1.2.3", (1, 2, 3)), ("v2.0", (2, 0, 0)), ("^1.4", (1, 4, 0)), ("~=3.1.0", (3, 1, 0)),
    ("1!2.0.post1", (2, 0, 0)), ("1:2.36-9+deb12u4", (2, 36, 0)), ("2.0.0-rc.1", (2, 0, 0)),
    ("latest", None),
])
def test_versions_are_read_leniently(text: str, parsed: tuple[int, int, int] | None) -> None:
    assert parse_version(text) == parsed


@pytest.mark.parametrize(("before", "after", "rule"), [
    ("1.9.0", "2.0.0", "dependency-major-upgrade"),
    ("0.3.1", "0.4.0", "dependency-major-upgrade"),
    ("2.1.0", "2.0.5", "dependency-downgraded"),
    ("1.0.0", None, "dependency-removed"),
    ("abc", "def", "dependency-version-unparsed"),
])
def test_breaking_dependency_changes(before: str, after: str | None, rule: str) -> None:
    found = analyse_dependency_diffs([DependencyDiff(name="lib", ecosystem=Ecosystem.PYPI,
                                                     before=before, after=after)])
    assert [f.rule for f in found] == [rule]


@pytest.mark.parametrize(("before", "after"), [("1.2.0", "1.3.0"), ("1.2.0", "1.2.9"),
                                               ("0.4.1", "0.4.2"), (None, "1.0.0")])
def test_minor_patch_and_new_dependencies_are_not_reported(before: str | None,
                                                           after: str) -> None:
    diff = DependencyDiff(name="lib", ecosystem=Ecosystem.NPM, before=before, after=after)
    assert analyse_dependency_diffs([diff]) == []


def _plan(*changes: tuple[str, list[str]]) -> InfrastructurePlan:
    resources = [{"address": f"{kind}.main", "type": kind, "change": {"actions": actions}}
                 for kind, actions in changes]
    return InfrastructurePlan(name="prod", content=json.dumps({"resource_changes": resources}))


def test_deleting_or_replacing_a_stateful_resource_loses_data() -> None:
    found = analyse_infrastructure_plans([_plan(
        ("aws_db_instance", ["delete"]), ("google_sql_database_instance", ["delete", "create"]),
        ("aws_ebs_volume", ["create", "delete"]), ("aws_instance", ["delete", "create"]),
        ("aws_instance", ["update"]), ("aws_s3_bucket", ["no-op"]))])
    assert [f.effect for f in found] == [Effect.DATA_LOSS] * 3 + [Effect.INCOMPATIBLE]
    assert "replaces" in found[1].message and found[0].target == "aws_db_instance.main"


@pytest.mark.parametrize("content", ["not json", "{}", '{"resource_changes": [{"x": 1}]}'])
def test_a_malformed_plan_cannot_run(content: str) -> None:
    found = analyse_infrastructure_plans([InfrastructurePlan(name="prod", content=content)])
    assert found and all(f.effect is Effect.CANNOT_RUN for f in found)
    assert "terraform show -json" in (found[0].fix or "")


class Change:
    def __init__(self) -> None:
        self.migrations = (MigrationScript(name="0001", up_sql="CREATE TABLE n (a text);",
                                           down_sql="DROP TABLE n;"),
                           MigrationScript(name="0002", up_sql="ALTER TABLE t DROP COLUMN a;"))
        self.config_diffs = (ConfigDiff(file="a.yaml", path="k", before="1"),)
        self.dependency_diffs = (DependencyDiff(name="x", ecosystem=Ecosystem.CARGO,
                                                before="1.0.0", after="2.0.0"),)
        self.infrastructure_plans = (_plan(("aws_s3_bucket", ["delete"])),)


def test_analyse_change_covers_every_kind_and_lints_down_scripts_in_context() -> None:
    found = analyse_change(Change(), AnalysisOptions())
    assert {f.kind for f in found} == set(ChangeKind)
    down = [f for f in found if f.file == "0001/down"]
    assert down == []  # dropping the table the change created is not a finding
    assert [f.file for f in found if f.rule == "missing-down-script"] == ["0002"]
