"""The rules that need more than one statement: Eugene's E4 (statements run under a held
ACCESS EXCLUSIVE), W12 (repeated ALTER TABLE) and E15 (a foreign key without an index), whose
answer depends on what the rest of the file or change does."""

from __future__ import annotations

from services.migration.domain.change_analysis import AnalysisOptions, lint_migrations
from services.migration.domain.migration_files import Migration
from tests.unit.migration.helpers import lint_sql

HISTORY = ("CREATE TABLE t (id bigint PRIMARY KEY, a int);",
           "CREATE TABLE parent (id bigint PRIMARY KEY);")


def _found(rule: str, *files: str, transaction_per_file: bool = True) -> list[tuple[str, int]]:
    return [(f.file or "", f.line or 0)
            for f in lint_sql(*files, history=HISTORY, transaction_per_file=transaction_per_file)
            if f.rule == rule]


def test_a_held_access_exclusive_is_reported_once_per_transaction_at_the_first_statement() -> None:
    sql = ("ALTER TABLE t ADD COLUMN x int;\n"
           "UPDATE t SET x = 1 WHERE id = 1;\n"
           "UPDATE t SET x = 2 WHERE id = 2;\n")
    assert _found("holding-access-exclusive", sql) == [("file-1.sql", 2)]


def test_commit_releases_the_lock_and_a_new_transaction_starts_clean() -> None:
    sql = ("BEGIN;\nALTER TABLE t ADD COLUMN x int;\nCOMMIT;\n"
           "BEGIN;\nUPDATE t SET x = 1 WHERE id = 1;\nCOMMIT;\n")
    assert _found("holding-access-exclusive", sql, transaction_per_file=False) == []
    sql_held = ("BEGIN;\nALTER TABLE t ADD COLUMN x int;\nUPDATE t SET x = 1 WHERE id = 1;\n"
                "COMMIT;\n")
    assert _found("holding-access-exclusive", sql_held, transaction_per_file=False) == [
        ("file-1.sql", 3)]


def test_outside_a_transaction_each_statement_releases_its_own_locks() -> None:
    sql = "ALTER TABLE t ADD COLUMN x int;\nUPDATE t SET x = 1 WHERE id = 1;\n"
    assert _found("holding-access-exclusive", sql, transaction_per_file=False) == []


def test_a_weaker_lock_held_is_not_reported() -> None:
    sql = "CREATE INDEX t_a ON t (a);\nUPDATE t SET a = 1 WHERE id = 1;\n"  # SHARE, not ACCESS EX.
    assert _found("holding-access-exclusive", sql) == []


def test_repeated_alter_table_is_counted_per_file() -> None:
    assert _found("multiple-alter-table", "ALTER TABLE t ADD COLUMN x int;",
                  "ALTER TABLE t ADD COLUMN y int;") == []
    three = ("ALTER TABLE t ADD COLUMN x int;\nALTER TABLE t ADD COLUMN y int;\n"
             "ALTER TABLE t ADD COLUMN z int;\n")
    assert _found("multiple-alter-table", three) == [("file-1.sql", 2), ("file-1.sql", 3)]


def test_an_index_in_a_later_file_of_the_same_change_covers_the_foreign_key() -> None:
    assert _found("foreign-key-missing-index",
                  "CREATE TABLE child (id bigint PRIMARY KEY, parent_id bigint "
                  "REFERENCES parent);",
                  "CREATE INDEX child_parent ON child (parent_id);") == []


def test_lint_judges_each_migration_when_it_ends() -> None:
    """`guardians lint` grades each migration as its own change: an index that only comes
    in the next migration leaves the first deployed without it."""
    migrations = [
        Migration("1.sql", "CREATE TABLE parent (id bigint PRIMARY KEY);"),
        Migration("2.sql", "CREATE TABLE child (id bigint PRIMARY KEY, parent_id bigint "
                           "REFERENCES parent);"),
        Migration("3.sql", "CREATE INDEX child_parent ON child (parent_id);"),
    ]
    found = [(f.file, f.line) for f in lint_migrations(migrations, AnalysisOptions(
        report_missing_down=False)) if f.rule == "foreign-key-missing-index"]
    assert found == [("2.sql", 1)]


def test_dropping_or_renaming_what_the_index_covers_is_followed() -> None:
    create = "CREATE TABLE child (id bigint PRIMARY KEY, parent_id bigint);\n" \
             "CREATE INDEX child_parent ON child (parent_id);\n"
    fk = "ALTER TABLE child ADD FOREIGN KEY (parent_id) REFERENCES parent NOT VALID;\n"
    assert _found("foreign-key-missing-index", create + fk) == []
    assert _found("foreign-key-missing-index",
                  create + "DROP INDEX child_parent;\n" + fk) == [("file-1.sql", 4)]
    renamed_fk = fk.replace("(parent_id)", "(pid)")
    assert _found("foreign-key-missing-index",
                  create + "ALTER TABLE child RENAME COLUMN parent_id TO pid;\n"
                  + renamed_fk) == []
    # DROP COLUMN drops the indexes that use it; the column added back has none
    assert _found("foreign-key-missing-index",
                  create + "ALTER TABLE child DROP COLUMN parent_id;\n"
                  "ALTER TABLE child ADD COLUMN parent_id bigint;\n" + fk) == [("file-1.sql", 5)]


def test_a_suppression_on_the_foreign_key_statement_holds_until_the_change_ends() -> None:
    sql = ("-- guardians:ignore foreign-key-missing-index\n"
           "CREATE TABLE child (id bigint PRIMARY KEY, parent_id bigint REFERENCES parent);\n")
    assert _found("foreign-key-missing-index", sql) == []


def test_down_scripts_are_not_judged_for_foreign_key_indexes() -> None:
    options = AnalysisOptions(report_missing_down=False)
    from services.migration.domain.change_analysis import analyse_migrations

    findings = analyse_migrations([Migration(
        "1.sql", "CREATE TABLE parent (id bigint PRIMARY KEY);",
        "CREATE TABLE old_child (parent_id bigint REFERENCES parent);")], options)
    assert [f for f in findings if f.rule == "foreign-key-missing-index"] == []


def test_row_padding_follows_postgresql_alignment() -> None:
    from services.migration.domain.column_types import TypeRef, aligned_order, row_padding

    kinds = [TypeRef("bool"), TypeRef("int8"), TypeRef("int4"), TypeRef("timestamptz")]
    # bool at 0, pad 7, int8 8-16, int4 16-20, pad 4, timestamptz 24-32
    assert row_padding(kinds) == 11
    best = [kinds[i] for i in aligned_order(kinds)]
    assert [k.name for k in best] == ["int8", "timestamptz", "int4", "bool"]
    assert row_padding(best) == 0
    assert TypeRef("int8", array=True).layout is None  # arrays are variable-width
