"""`guardians lint` and `guardians stats` through typer's runner: exit codes and formats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.lint import render_rules_markdown
from cli.main import app

runner = CliRunner()
LEMMY = Path(__file__).resolve().parents[4] / "shared" / "corpus" / "migrations" / "lemmy"
if not LEMMY.is_dir():
    LEMMY = Path("/work/shared/corpus/migrations/lemmy")


def write(tmp_path: Path, name: str, sql: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(sql)
    return path


def test_a_low_risk_file_exits_0(tmp_path: Path) -> None:
    path = write(tmp_path, "a.sql", "CREATE TABLE n (a text);")
    result = runner.invoke(app, ["lint", str(path)])
    assert result.exit_code == 0, result.output
    assert "risk: low" in result.output


def test_a_medium_or_worse_file_exits_1_with_json_findings(tmp_path: Path) -> None:
    path = write(tmp_path, "a.sql", "SELECT 1;\nALTER TABLE t DROP COLUMN a;")
    result = runner.invoke(app, ["lint", str(path), "--format", "json"])
    assert result.exit_code == 1
    document = json.loads(result.output)
    assert document["risk"] == "high"
    drop = document["findings"][document["causes"][0]]
    expected = {"rule", "severity", "message", "file", "line", "column", "statement", "fix"}
    assert expected <= set(drop)
    assert (drop["rule"], drop["line"], drop["column"]) == ("ban-drop-column", 2, 1)


@pytest.mark.parametrize("args", [["lint", "/no/such/path"], ["lint", "README.md"]])
def test_a_bad_path_is_a_usage_error(args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2


def test_an_unknown_suppression_is_a_usage_error_naming_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "a.sql", "SELECT 1;\n-- guardians:ignore no-such-rule\nSELECT 2;")
    result = runner.invoke(app, ["lint", str(path)])
    assert result.exit_code == 2
    assert f"{path}:2" in result.output and "no-such-rule" in result.output


@pytest.mark.parametrize("through_typer", [True, False])
def test_excluded_rules_leave_the_report_and_the_grade(tmp_path: Path,
                                                        through_typer: bool) -> None:
    path = write(tmp_path, "a.sql", "ALTER TABLE t DROP COLUMN a;\nCREATE TABLE n (t timestamp);")
    args = ["lint", str(path), "--format", "json", "--exclude",
            "ban-drop-column, prefer-timestamp-tz"]  # squawk's spelling of prefer-timestamptz
    if through_typer:
        result = runner.invoke(app, args)
        code, output = result.exit_code, result.output
    else:  # the fast path `python -m cli.main lint` takes
        from cli.lint import plain_arguments, run

        arguments = plain_arguments(args[1:])
        assert arguments is not None and arguments.exclude
        import contextlib
        import io

        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = run(arguments)
        output = out.getvalue()
    document = json.loads(output)
    rules = {f["rule"] for f in document["findings"]}
    assert "ban-drop-column" not in rules and "prefer-timestamptz" not in rules
    assert "require-timeout-settings" in rules, "only the named rules go"
    assert (code, document["risk"]) == (0, "low"), "the drop no longer grades it high"


@pytest.mark.parametrize(("name", "why"), [("no-such-rule", "no rule is named"),
                                           ("syntax-error", "cannot be excluded"),
                                           ("rollback-failed", "cannot be excluded")])
def test_excluding_an_unknown_or_unexcludable_rule_is_a_usage_error(
    tmp_path: Path, name: str, why: str,
) -> None:
    path = write(tmp_path, "a.sql", "SELECT 1;")
    result = runner.invoke(app, ["lint", str(path), "--exclude", name])
    assert result.exit_code == 2
    assert why in result.output and name in result.output


def test_an_unreadable_stats_file_is_a_usage_error(tmp_path: Path) -> None:
    path = write(tmp_path, "a.sql", "SELECT 1;")
    stats = write(tmp_path, "stats.json", '{"tables": []}')
    result = runner.invoke(app, ["lint", str(path), "--stats", str(stats)])
    assert result.exit_code == 2 and "guardians stats dump" in result.output


def test_stats_move_the_grade(tmp_path: Path) -> None:
    path = write(tmp_path, "a.sql", "SET lock_timeout = '1s'; CREATE INDEX i ON t (a);")
    stats = write(tmp_path, "stats.json", json.dumps({
        "format": "guardians-table-stats/1",
        "tables": [{"schema": "public", "table": "t", "rows": 10, "bytes": 8192}]}))
    assert runner.invoke(app, ["lint", str(path)]).exit_code == 1
    assert runner.invoke(app, ["lint", str(path), "--stats", str(stats)]).exit_code == 0


def test_pg_version_changes_the_findings(tmp_path: Path) -> None:
    path = write(tmp_path, "a.sql",
                 "SET lock_timeout = '1s'; ALTER TABLE t ADD COLUMN n int DEFAULT 0;")
    assert runner.invoke(app, ["lint", str(path), "--pg-version", "10"]).exit_code == 1
    assert runner.invoke(app, ["lint", str(path), "--pg-version", "11"]).exit_code == 0


def test_sarif_is_a_minimal_valid_2_1_0_document(tmp_path: Path) -> None:
    path = write(tmp_path, "a.sql", "DROP TABLE t;")
    document = json.loads(runner.invoke(app, ["lint", str(path), "--format", "sarif"]).output)
    assert document["version"] == "2.1.0"
    run = document["runs"][0]
    rule_ids = [r["id"] for r in run["tool"]["driver"]["rules"]]
    for result in run["results"]:
        assert rule_ids[result["ruleIndex"]] == result["ruleId"]
        assert result["level"] in {"error", "warning", "note"}
        region = result["locations"][0]["physicalLocation"]["region"]
        assert region["startLine"] >= 1 and result["message"]["text"]


def test_github_format_prints_workflow_commands(tmp_path: Path) -> None:
    path = write(tmp_path, "a.sql", "SELECT 1;\nDROP TABLE t;")
    output = runner.invoke(app, ["lint", str(path), "--format", "github"]).output
    assert f"::error file={path},line=2,col=1,title=ban-drop-table::" in output


def test_a_migration_directory_is_linted_in_name_order(tmp_path: Path) -> None:
    write(tmp_path, "m/002_b/up.sql", "ALTER TABLE n ADD COLUMN b text NOT NULL;")
    write(tmp_path, "m/001_a/up.sql", "CREATE TABLE n (a text);")
    write(tmp_path, "m/001_a/down.sql", "DROP TABLE n;")
    each = json.loads(runner.invoke(app, ["lint", str(tmp_path / "m"), "--format", "json"]).output)
    assert "adding-required-field" in {f["rule"] for f in each["findings"]}
    together = runner.invoke(app, ["lint", str(tmp_path / "m"), "--one-change", "--down"])
    assert together.exit_code == 0, together.output


def test_docs_rules_md_is_generated_from_the_catalog() -> None:
    docs = Path(__file__).resolve().parents[3] / "docs" / "rules.md"
    assert docs.read_text() == render_rules_markdown(), (
        "docs/rules.md is stale: regenerate it with "
        "`.venv/bin/python -c 'from cli.lint import render_rules_markdown as r; "
        "open(\"docs/rules.md\", \"w\").write(r())'`")


@pytest.mark.skipif(not LEMMY.is_dir(), reason=f"the Lemmy corpus is not at {LEMMY} "
                    "(it lives in the shared folder beside the repository)")
def test_every_lemmy_up_script_lints_without_crashing() -> None:
    result = runner.invoke(app, ["lint", str(LEMMY), "--format", "json"])
    assert result.exit_code == 1, result.output[-2000:]
    document = json.loads(result.output)
    assert document["risk"] == "high"
    assert not [f for f in document["findings"] if f["rule"] == "syntax-error"]
    assert len({f["file"] for f in document["findings"]}) > 300
