"""guardians.yaml: validated on load, with errors that name the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.runtime.config import SCHEMA_FILE, ConfigError, json_schema, load_config


def test_a_missing_file_setting_gives_every_service_the_defaults() -> None:
    config = load_config(None)
    assert config.service("shop").migration.pg_version == 18


def test_a_valid_file_sets_one_service_and_leaves_the_others_at_defaults(tmp_path: Path) -> None:
    path = tmp_path / "guardians.yaml"
    path.write_text("services:\n  shop:\n    migration:\n      pg_version: 15\n"
                    "      team_reviewers: [a, b]\n      rules: {prefer-text-field: ignore}\n")
    config = load_config(path)
    assert config.service("shop").migration.pg_version == 15
    assert config.service("shop").migration.rules == {"prefer-text-field": "ignore"}
    assert config.service("billing").migration.pg_version == 18


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("services:\n  shop:\n    migraton: {}\n", "services.shop.migraton"),
        ("services:\n  shop:\n    migration:\n      team_approvals: 0\n", "team_approvals"),
        ("services:\n  shop:\n    migration:\n      rules: {x: maybe}\n", "rules.x"),
        ("services:\n  Shop!:\n    migration: {}\n", "Shop!"),
        ("services: [\n", "not valid YAML"),
        ("services:\n  shop:\n    migration:\n      team_reviewers: [a]\n", "team_approvals"),
    ],
)
def test_an_invalid_file_is_refused_naming_the_file_and_the_key(
    tmp_path: Path, text: str, named: str
) -> None:
    path = tmp_path / "guardians.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(path) in str(error.value) and named in str(error.value)


def test_an_unreadable_file_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.yaml")


def test_the_checked_in_json_schema_is_current() -> None:
    assert SCHEMA_FILE.read_text() == json_schema(), "run `make schemas`"


def test_config_validate_exits_0_for_a_valid_file_and_2_naming_the_problem(
    tmp_path: Path,
) -> None:
    from typer.testing import CliRunner

    from cli.main import build_app

    good = tmp_path / "good.yaml"
    good.write_text("services:\n  shop:\n    migration:\n      pg_version: 16\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("services:\n  shop:\n    migration:\n      pg_verson: 16\n")
    runner = CliRunner()
    ok = runner.invoke(build_app(), ["config", "validate", str(good)])
    assert ok.exit_code == 0 and "shop" in ok.output
    refused = runner.invoke(build_app(), ["config", "validate", str(bad)])
    assert refused.exit_code == 2 and "pg_verson" in refused.output


def test_config_validate_checks_analysis_conditions_and_queries(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cli.main import build_app

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "services:\n  shop:\n    deploy:\n      analysis:\n        canary:\n"
        "          metrics: [{name: errors, query: 'up{job={service}}',"
        " success: 'result <'}]\n"
    )
    refused = CliRunner().invoke(build_app(), ["config", "validate", str(bad)])
    assert refused.exit_code == 2
    assert "services.shop.deploy.analysis.canary" in refused.output
    assert "column 9" in refused.output and "double-quoted" in refused.output


def test_the_demo_configuration_is_valid() -> None:
    from typer.testing import CliRunner

    from cli.main import build_app

    demo = Path(__file__).resolve().parents[2] / "demo" / "guardians.yaml"
    ok = CliRunner().invoke(build_app(), ["config", "validate", str(demo)])
    assert ok.exit_code == 0, ok.output
