"""`-- guardians:ignore` for the next statement, `-- guardians:ignore-file` for the file."""

from __future__ import annotations

from tests.unit.migration.helpers import lint_sql, rules


def test_ignore_applies_to_the_next_statement_only() -> None:
    findings = lint_sql("-- guardians:ignore ban-drop-column\nALTER TABLE t DROP COLUMN a;\n"
                        "ALTER TABLE t DROP COLUMN b;")
    assert [f.line for f in findings if f.rule == "ban-drop-column"] == [3]


def test_ignore_takes_several_rules() -> None:
    found = rules("-- guardians:ignore ban-drop-column, require-timeout-settings\n"
                  "ALTER TABLE t DROP COLUMN a;")
    assert not found & {"ban-drop-column", "require-timeout-settings"}


def test_ignore_file_applies_to_every_statement_of_the_file() -> None:
    found = rules("-- guardians:ignore-file require-timeout-settings\n"
                  "ALTER TABLE t DROP COLUMN a;\nALTER TABLE t ADD COLUMN b text;",
                  "ALTER TABLE t ADD COLUMN c text;")
    assert "require-timeout-settings" in found  # the second file is not covered
    first = lint_sql("-- guardians:ignore-file require-timeout-settings\n"
                     "ALTER TABLE t ADD COLUMN b text;")
    assert "require-timeout-settings" not in {f.rule for f in first}


def test_squawk_spellings_are_accepted() -> None:
    assert "prefer-timestamptz" not in rules(
        "-- guardians:ignore prefer-timestamp-tz\nCREATE TABLE n (at timestamp);")


def test_an_unknown_rule_name_is_an_error_finding_with_its_line() -> None:
    findings = lint_sql("SELECT 1;\n-- guardians:ignore ban-drop-colum\n"
                        "ALTER TABLE t DROP COLUMN a;")
    unknown = [f for f in findings if f.rule == "unknown-suppression"]
    assert [(f.line, f.severity.value) for f in unknown] == [(2, "error")]
    assert "ban-drop-column" in {f.rule for f in findings}


def test_syntax_errors_cannot_be_suppressed() -> None:
    found = rules("-- guardians:ignore-file syntax-error\nSELEC 1;")
    assert {"syntax-error", "unknown-suppression"} <= found
