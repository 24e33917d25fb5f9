"""What `guardians lint`'s speed-ups rely on: each shortcut gives what the plain way gives.

The plain ways are written out here as the reference: typer reading the command line,
`json.dumps` of the report, `json.loads` of the whole parse tree, pglast's parser and
scanner, pathlib walking a migration directory, the identifier regex then the scanner.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pglast import parser
from typer.testing import CliRunner

from cli import lint
from cli.main import app
from schemas.events.enums import LockMode, RiskLevel, Severity
from services.migration.domain import pg_parser
from services.migration.domain.findings import Effect, Finding
from services.migration.domain.migration_files import Migration
from services.migration.domain.risk_policy import Grade
from services.migration.domain.sql_analysis import WANTED
from services.migration.domain.sql_nodes import unwrap
from services.migration.domain.sql_source import long_identifiers, parse_script, read_script

ROOT = Path(__file__).resolve().parents[3]


# The command line: what `plain_arguments` takes, typer reads the same way.

PLAIN = [
    ["a.sql"],
    ["a.sql", "b", "--format", "json"],
    ["--format=sarif", "a.sql"],
    ["a.sql", "--format", "github", "--pg-version", "10", "--stats", "s.json"],
    ["a.sql", "--pg-version=0", "--stats=s.json", "--one-change", "--down"],
    ["a.sql", "--no-one-change", "--no-transaction-per-file", "--no-down"],
    ["a.sql", "--transaction-per-file", "--format", "text", "c.sql"],
]
NOT_PLAIN = [
    [], ["--help"], ["a.sql", "--help"], ["a.sql", "--format", "xml"],
    ["a.sql", "--format", "JSON"], ["a.sql", "--format"], ["a.sql", "--pg-version", "ten"],
    ["a.sql", "--pg-version", "011"], ["a.sql", "--pg-version", "-1"], ["a.sql", "--stats"],
    ["a.sql", "--stats", "--down"], ["a.sql", "--bogus"], ["--", "a.sql"], ["-"], [""],
    ["a.sql", "--down", "--down"], ["a.sql", "--down", "--no-down"],
    ["a.sql", "--format", "json", "--format", "text"], ["a.sql", "--down=1"],
]


@pytest.mark.parametrize("argv", PLAIN)
def test_plain_command_lines_read_as_typer_reads_them(
    argv: list[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[lint.LintArguments] = []

    def run(arguments: lint.LintArguments) -> int:
        seen.append(arguments)
        return 0

    monkeypatch.setattr(lint, "run", run)
    result = CliRunner().invoke(app, ["lint", *argv])
    assert result.exit_code == 0, result.output
    assert lint.plain_arguments(argv) == seen[0]


@pytest.mark.parametrize("argv", NOT_PLAIN)
def test_anything_else_is_left_to_typer(argv: list[str]) -> None:
    assert lint.plain_arguments(argv) is None


def test_shell_completion_is_left_to_typer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("_GUARDIANS_COMPLETE", "bash_complete")
    assert lint.plain_arguments(["a.sql"]) is None


def test_plain_lint_imports_neither_typer_nor_pydantic_nor_the_python_analysis(
    tmp_path: Path,
) -> None:
    """The plain command line runs in the native module: it imports none of typer, pydantic,
    asyncio, pglast's package, the Python rules, nor the standard modules that cost more to
    import than a small lint takes (typing, dataclasses and the inspect they pull in,
    pathlib, enum)."""
    script = tmp_path / "a.sql"
    script.write_text("CREATE TABLE n (a text);")
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "cli.main", "lint", str(script)],
        capture_output=True, text=True, cwd=ROOT, check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()
                if line.startswith("import time:")}
    assert "services.migration.domain._native" in imported
    assert not imported & {"typer", "pydantic", "asyncio", "asyncpg", "schemas.events.migration",
                           "pglast", "services.migration.domain.sql_analysis", "typing",
                           "dataclasses", "inspect", "pathlib", "enum"}


# The JSON report: written out, the same bytes as json.dumps.

def _finding(**fields: object) -> Finding:
    base: dict[str, object] = {"rule": "ban-drop-table", "severity": Severity.ERROR,
                               "message": "m", "effect": Effect.DATA_LOSS}
    return Finding(**{**base, **fields})  # type: ignore[arg-type]


def test_the_json_report_is_what_json_dumps_writes() -> None:
    findings = [
        _finding(),
        _finding(file="m/001_é/up.sql", line=3, column=14, statement='DROP TABLE "a""b";\n',
                 target="public.t", fix="tab\there, back\\slash, \"quote\", ünï ✓ \x00\x1f",
                 lock=LockMode.ACCESS_EXCLUSIVE, preexisting=False, rollback=True),
        _finding(message="m", severity=Severity.INFO, effect=Effect.ADVISORY, line=1),
    ]
    expected = {"risk": "high", "findings": [{
        "rule": f.rule, "severity": f.severity.value, "message": f.message, "file": f.file,
        "line": f.line, "column": f.column, "statement": f.statement, "fix": f.fix,
        "effect": f.effect.value, "kind": f.kind.value, "target": f.target,
        "lock": f.lock.value if f.lock else None, "preexisting": f.preexisting,
        "rollback": f.rollback} for f in findings], "causes": [0, 2]}
    verdict = Grade(RiskLevel.HIGH, (0, 2))
    assert lint.render_json(findings, verdict) == json.dumps(expected) + "\n"
    assert lint.render_json([], Grade(RiskLevel.LOW, ())) == json.dumps(
        {"risk": "low", "findings": [], "causes": []}) + "\n"


# Parsing: statements decoded one at a time are the whole tree's, at the same positions.

SCRIPTS = [
    "", "-- only a comment\n", "SELECT 1", ";;",
    "-- café ünïcode\nSELECT 'é€';\n  CREATE INDEX i ON t (a);\n\n\nDROP TABLE \"ü\";",
    "\n".join(f"ALTER TABLE t{i} ADD COLUMN c text; -- n° {i}\nSELECT {i};" for i in range(300)),
]


@pytest.mark.parametrize("sql", SCRIPTS)
def test_statements_read_one_at_a_time_are_the_whole_trees(sql: str) -> None:
    whole = json.loads(parser.parse_sql_json(sql)).get("stmts", [])
    statements = list(read_script(sql).statements)
    assert [(s.kind, s.node) for s in statements] == [unwrap(i.get("stmt")) for i in whole]
    for statement in statements:
        assert statement.line == sql.count("\n", 0, statement.start) + 1
        assert statement.column == statement.start - (sql.rfind("\n", 0, statement.start) + 1) + 1
        assert sql[statement.start:].startswith(statement.text)
    assert parse_script(sql).statements == tuple(read_script(sql).statements)


TRICKY = [
    "SELECT 1;", "SELECT 1", "  SELECT 1;  SELECT 2", "CREATE VIEW v AS SELECT 1",
    "CREATE VIEW v AS SELECT '\"stmt_len\":5},{\"stmt\":{\"x\":' AS a;\nINSERT INTO t VALUES (1)",
    "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1; $$;\n"
    "CREATE OR REPLACE FUNCTION g() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END;",
    "CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO u VALUES (1); DELETE FROM u);\n"
    "EXPLAIN SELECT 1; WITH x AS (UPDATE t SET a = 1 RETURNING *) SELECT * FROM x",
    "DO $$ BEGIN RAISE NOTICE '}]}'; END $$; CREATE VIEW \"v}\" AS SELECT '\\' AS \"]}\"",
    "INSERT INTO t VALUES ('é€');\nCREATE MATERIALIZED VIEW m AS SELECT 1;\nCOPY t TO STDOUT",
    "CREATE FUNCTION \"ü\"() RETURNS int AS 'select 1' LANGUAGE sql; CREATE VIEW w AS SELECT 2",
    "CREATE VIEW v2 AS SELECT 1;" * 3 + "\n-- trailing comment",
]


@pytest.mark.parametrize("sql", SCRIPTS + TRICKY)
def test_statements_decoded_as_far_as_the_handlers_read_are_the_whole_trees(sql: str) -> None:
    whole = parse_script(sql).statements
    partial = parse_script(sql, WANTED).statements
    assert [(s.kind, s.text, s.start, s.line, s.column) for s in partial] == [
        (s.kind, s.text, s.start, s.line, s.column) for s in whole]
    for full, part in zip(whole, partial, strict=True):
        fields = WANTED.get(full.kind, frozenset())
        assert part.node == (full.node if fields is None else
                             {key: value for key, value in full.node.items() if key in fields})


def test_some_statements_are_really_skipped() -> None:
    sql = ("CREATE VIEW v AS SELECT 1; INSERT INTO t VALUES (1); CREATE TABLE n (a text); "
           "DO $$ BEGIN END $$; CREATE VIEW w (x) AS SELECT 2; INSERT INTO t (a) VALUES (2)")
    statements = parse_script(sql, WANTED).statements
    assert [(s.kind, list(s.node)) for s in statements] == [
        ("ViewStmt", ["view"]),  # its query is never decoded
        ("InsertStmt", ["relation"]),  # nor an INSERT's rows
        ("CreateStmt", ["relation", "tableElts", "oncommit"]),
        ("DoStmt", []),  # no rule reads it: not decoded at all
        ("ViewStmt", ["view", "aliases"]),
        ("InsertStmt", ["relation", "cols"]),
    ]


# libpg_query through ctypes: what pglast's parser and scanner return.

PARSER_INPUTS = [*SCRIPTS, *TRICKY, "SELEC 1", "SELECT 'é' FORM t", "SELECT 'unterminated",
                 "CREATE TABLE \"" + "é" * 40 + "\" (a int)"]


def _pglast_or_error(call: object, sql: str) -> object:
    try:
        return call(sql)  # type: ignore[operator]
    except parser.ParseError as error:
        return ("error", error.args)


def _ours_or_error(call: object, sql: str) -> object:
    try:
        return call(sql)  # type: ignore[operator]
    except pg_parser.ParseError as error:
        return ("error", error.args)


def test_libpg_query_is_called_directly() -> None:
    assert pg_parser._LIBRARY is not None


@pytest.mark.parametrize("direct", [True, False])
@pytest.mark.parametrize("sql", PARSER_INPUTS)
def test_parse_and_scan_are_pglasts(
    sql: str, direct: bool, monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not direct:  # the fallback, when the library cannot be loaded
        monkeypatch.setattr(pg_parser, "_LIBRARY", None)
    assert _ours_or_error(pg_parser.parse_sql_json, sql) == _pglast_or_error(
        parser.parse_sql_json, sql)
    ours = _ours_or_error(pg_parser.scan, sql)
    theirs = _pglast_or_error(parser.scan, sql)
    if isinstance(theirs, list):
        assert isinstance(ours, list)
        assert [tuple(t) for t in ours] == [tuple(t) for t in theirs]
    else:
        assert ours == theirs


# Long identifiers: the cheap checks before the regex never change the answer.

_LONG_WORD = re.compile(r"[^\W\d][\w$]{31,}|\"[^\"]{32,}\"")


def _long_identifiers_reference(statement: str) -> list[str]:
    if not _LONG_WORD.search(statement):
        return []
    names = []
    for token in parser.scan(statement):
        if token.name == "IDENT" or token.kind != "NO_KEYWORD":
            name = statement[token.start:token.end + 1].strip('"')
            if len(name.encode()) > 63:
                names.append(name)
    return names


@pytest.mark.parametrize("statement", [
    "CREATE TABLE n (" + "c" * 64 + " text)", "CREATE TABLE n (" + "c" * 63 + " text)",
    "CREATE INDEX CONCURRENTLY " + "é" * 32 + " ON t (a)", "CREATE INDEX " + "é" * 31 + " ON t",
    'CREATE TABLE "' + "q " * 40 + '" (a int)', "SELECT 1 AS " + "a\u00a0" * 40,
    "SELECT '" + "x" * 80 + "'", "SELECT " + "1" * 40 + ", " + "$" * 40, "x" * 31,
    "CREATE TABLE t (" + "a" * 40 + "," + "b" * 40 + " int)",
])
def test_long_identifiers_finds_what_the_regex_and_the_scanner_find(statement: str) -> None:
    assert long_identifiers(statement) == _long_identifiers_reference(statement)


# Reading a migration directory: plain strings find what pathlib finds.

def _migrations_reference(folder: Path) -> list[Migration]:
    if (folder / "up.sql").is_file():
        down = folder / "down.sql"
        return [Migration(str(folder), (folder / "up.sql").read_text(encoding="utf-8"),
                          down.read_text(encoding="utf-8") if down.is_file() else None)]
    found = []
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.is_file() and entry.suffix == ".sql":
            found.append(Migration(str(entry), entry.read_text(encoding="utf-8")))
        elif entry.is_dir() and (entry / "up.sql").is_file():
            found.extend(_migrations_reference(entry))
    return found


def test_a_migration_directory_is_read_as_pathlib_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = tmp_path / "m"
    for name, text in {"001_a/up.sql": "SELECT 1;", "001_a/down.sql": "SELECT 2;",
                       "002_b/up.sql": "SELECT 3;\r\n", "003.sql": "SELECT 4;",
                       "notes.txt": "x", ".sql": "SELECT 5;", "..sql": "SELECT 6;",
                       "004_nested/005_c/up.sql": "SELECT 7;", "empty/.keep": ""}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (root / "006_link.sql").symlink_to(root / "003.sql")
    (root / "007_broken.sql").symlink_to(root / "missing.sql")
    (root / "008_loop.sql").symlink_to(root / "008_loop.sql")
    assert lint.find_migrations([str(root)]) == _migrations_reference(root)
    assert lint.find_migrations([f"{root}/"]) == _migrations_reference(root)
    monkeypatch.chdir(root)
    assert lint.find_migrations(["."]) == _migrations_reference(Path("."))
    monkeypatch.chdir(tmp_path)
    assert lint.find_migrations(["m"]) == _migrations_reference(Path("m"))
