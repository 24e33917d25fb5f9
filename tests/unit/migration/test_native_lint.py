"""`guardians lint --format json` in the native module (`native_sql.lint_paths`: finding the
files, reading them, the analysis, the grade and the report) writes what the Python command
writes, byte for byte, on the command lines and directory trees where they could part: links,
odd names, newlines, encodings, usage errors, suppressions, exclusions, down scripts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cli import lint
from services.migration.domain import native_sql, pg_parser
from services.migration.domain.native_sql import NativeAnalysis
from services.migration.domain.sql_analysis import SqlAnalysis, SqlFile

TREE = {
    "m/001_a/up.sql": "CREATE TABLE a (id int PRIMARY KEY, name varchar(20));\n",
    "m/001_a/down.sql": "DROP TABLE a;\n",
    "m/002_b/up.sql": "ALTER TABLE a ADD COLUMN b int NOT NULL;\r\nCREATE INDEX ON a (b);\r\n",
    "m/003.sql": "UPDATE a SET b = 1;\rDELETE FROM a;\r",
    "m/notes.txt": "not a migration",
    "m/.sql": "DROP TABLE a;",
    "m/004_nested/005_c/up.sql": "-- guardians:ignore require-timeout-settings\n"
                                 "ALTER TABLE a ALTER COLUMN name TYPE text;\n",
    "m/empty/.keep": "",
    "m/006_é/up.sql": "\ufeffALTER TABLE a RENAME COLUMN name TO nom; -- é\n",
    "bad/001.sql": "SELEC 1;\nDROP TABLE x;\n",
    "unknown/001.sql": "-- guardians:ignore no-such-rule\nDROP TABLE x;\n",
    "nothing/readme.md": "",
    "single.sql": "CREATE INDEX i ON t (a);\n",
    "notsql.txt": "SELECT 1;",
}


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name, text in TREE.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8", newline="")
    (tmp_path / "latin1.sql").write_bytes("SELECT 'caf\u00e9';\n".encode("latin-1"))
    (tmp_path / "m" / "007_link.sql").symlink_to(tmp_path / "m" / "003.sql")
    (tmp_path / "m" / "008_broken.sql").symlink_to(tmp_path / "m" / "missing.sql")
    (tmp_path / "m" / "009_loop.sql").symlink_to(tmp_path / "m" / "009_loop.sql")
    monkeypatch.chdir(tmp_path)
    return tmp_path


COMMAND_LINES = [
    ["m"], ["m/"], ["./m//"], ["m", "single.sql"], ["m/001_a"], ["m/002_b/up.sql"],
    ["m", "--one-change", "--down"], ["m", "--one-change", "--down", "--pg-version", "10"],
    ["m", "--no-transaction-per-file"], ["m", "--exclude", "ban-drop-table,prefer-text-field"],
    ["bad"], ["unknown"], ["nothing"], ["missing"], ["notsql.txt"], ["latin1.sql"],
    ["m", "missing.sql"], ["m/008_broken.sql"], ["m/009_loop.sql"], ["m/.sql"],
]


def _run(argv: list[str], engine: str, capsys: pytest.CaptureFixture[str],
         monkeypatch: pytest.MonkeyPatch, output: str = "json") -> tuple[int, str, str]:
    monkeypatch.setenv(native_sql.ENGINE_VARIABLE, engine)
    arguments = lint.plain_arguments([*argv, "--format", output])
    assert arguments is not None
    code = lint.run(arguments)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("output", native_sql.FORMATS)
@pytest.mark.parametrize("argv", COMMAND_LINES, ids=" ".join)
def test_the_native_command_writes_what_the_python_command_writes(
    argv: list[str], output: str, tree: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    native = _run(argv, "native", capsys, monkeypatch, output)
    python = _run(argv, "python", capsys, monkeypatch, output)
    assert native == python


def test_the_native_command_runs_where_it_can(tree: Path) -> None:
    """The comparison above is not between two runs of the Python code: the native module
    takes these command lines itself, and hands back only the usage errors."""
    assert native_sql.lint_paths(["m", "single.sql"], pg_version=18, transaction_per_file=True,
                                 one_change=False, down=False, excluded=frozenset(),
                                 output="json") is not None
    for usage_error in (["missing"], ["notsql.txt"], ["latin1.sql"], ["nothing"]):
        assert native_sql.lint_paths(usage_error, pg_version=18, transaction_per_file=True,
                                     one_change=False, down=False, excluded=frozenset(),
                                     output="text") is None


@pytest.mark.parametrize("statement", [
    "CREATE TABLE n (" + "c" * 64 + " text);", "CREATE TABLE n (" + "c" * 63 + " text);",
    "CREATE INDEX CONCURRENTLY " + "é" * 32 + " ON t (a);",
    "CREATE INDEX " + "é" * 31 + " ON t (a);",
    'CREATE TABLE "' + "q " * 40 + '" (a int);', "CREATE TABLE t (" + "a\u00a0" * 40 + " int);",
    "ALTER TYPE e ADD VALUE 'a\u00a0b\u200bc';", "ALTER TYPE e ADD VALUE 'it''s';",
    "CREATE TABLE t (" + "a" * 40 + " int, " + "b" * 70 + " int);",
    "SET lock_timeout = '\u0665s'; ALTER TABLE t ADD COLUMN c int;",
    "SET lock_timeout = '1_000'; ALTER TABLE t ADD COLUMN c int;",
    "ALTER TABLE t ADD COLUMN c timestamptz DEFAULT xmlelement(name x, random(), now());",
])
def test_text_edge_cases_read_the_same_in_both_analyses(statement: str) -> None:
    """Identifier lengths, `repr()` of odd characters, Python's `float()` on timeouts."""
    found = []
    for analysis in (SqlAnalysis(), NativeAnalysis()):
        analysis.analyse_file(SqlFile("past.sql", "CREATE TABLE t (a int); "
                                                  "CREATE TYPE e AS ENUM ('x');"))
        analysis.new_change()
        analysis.analyse_file(SqlFile("now.sql", statement))
        analysis.end_change()
        found.append([f for f in analysis.findings if f.file == "now.sql"])
    python, native = found
    assert python == native


def test_an_unreadable_file_is_left_to_the_python_command(tree: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads a file whatever its mode; the non-UTF-8 case covers the path")
    (tree / "single.sql").chmod(0)
    assert native_sql.lint_paths(["single.sql"], pg_version=18, transaction_per_file=True,
                                 one_change=False, down=False, excluded=frozenset(),
                                 output="json") is None


def test_a_long_script_is_decoded_statement_by_statement_with_the_same_findings() -> None:
    """Past 1 MB of parse tree the native analysis keeps the parser's JSON and decodes each
    statement when it reaches it (memory); the findings are the Python analysis' still."""
    statements = []
    for i in range(600):
        statements += [
            f"CREATE TABLE t{i} (id int PRIMARY KEY, name varchar(20), at timestamp);",
            f"ALTER TABLE t{i} ADD COLUMN c{i} bigint NOT NULL DEFAULT random();",
            f"CREATE VIEW v{i} AS SELECT id, name FROM t{i} WHERE id > {i} ORDER BY name;",
            f"CREATE INDEX ON t{i} (name); UPDATE t{i} SET name = 'x';",
        ]
    script = "\n".join(statements)
    assert len(pg_parser.parse_sql_json(script)) > 1 << 20, "long enough for the lazy path"
    found = []
    for analysis in (SqlAnalysis(), NativeAnalysis()):
        analysis.analyse_file(SqlFile("long.sql", script))
        analysis.end_change()
        found.append(analysis.findings)
    python, native = found
    assert len(python) >= 1800
    assert python == native


def test_a_failing_native_command_says_so_and_writes_the_python_report(
    tree: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise native_sql.NativeError("boom")

    python = _run(["m"], "python", capsys, monkeypatch)
    monkeypatch.setattr(native_sql, "lint_paths", fail)
    code, out, err = _run(["m"], "native", capsys, monkeypatch)
    assert (code, out) == python[:2]
    assert "the native SQL analysis failed (boom)" in err


def test_an_unknown_engine_is_a_usage_error_naming_the_variable(
    tree: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, out, err = _run(["m"], "rust", capsys, monkeypatch)
    assert (code, out) == (2, "")
    assert "GUARDIANS_SQL_ENGINE='rust': expected native or python" in err
