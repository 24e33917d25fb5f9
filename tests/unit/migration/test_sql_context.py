"""What the analysis knows between statements: objects the change created, transactions,
timeouts in effect, the target version, and statement positions."""

from __future__ import annotations

from services.migration.domain.findings import Effect
from services.migration.domain.sql_source import parse_script
from tests.unit.migration.helpers import lint_sql, rules


def test_a_table_created_in_an_earlier_file_of_the_change_carries_no_lock_risk() -> None:
    found = rules("CREATE TABLE orders (id bigint PRIMARY KEY, total numeric);",
                  "CREATE INDEX orders_total ON orders (total);"
                  "ALTER TABLE orders ADD CONSTRAINT positive CHECK (total > 0);")
    assert not found & {"require-concurrent-index-creation", "constraint-missing-not-valid",
                        "require-timeout-settings"}


def test_a_table_from_the_history_is_pre_existing() -> None:
    found = rules("CREATE INDEX orders_total ON orders (total);",
                  history=("CREATE TABLE orders (id bigint, total numeric);",))
    assert "require-concurrent-index-creation" in found


def test_the_lock_on_a_referenced_pre_existing_table_needs_a_timeout() -> None:
    findings = lint_sql("CREATE TABLE n (u_id bigint REFERENCES users (id));")
    timeout = [f for f in findings if f.rule == "require-timeout-settings"]
    assert [f.target for f in timeout] == ["users"]


def test_a_timeout_set_before_the_statement_counts() -> None:
    assert "require-timeout-settings" not in rules(
        "SET lock_timeout = '2s'; ALTER TABLE t ADD COLUMN x text;")


def test_a_timeout_set_after_the_statement_does_not_count() -> None:
    assert "require-timeout-settings" in rules(
        "ALTER TABLE t ADD COLUMN x text; SET lock_timeout = '2s';")


def test_one_timeout_finding_per_statement() -> None:
    findings = lint_sql("ALTER TABLE t ADD COLUMN x text, ADD COLUMN y text;"
                        "ALTER TABLE t DROP COLUMN z;")
    assert [f.line for f in findings if f.rule == "require-timeout-settings"] == [1, 1]
    assert len([f for f in findings if f.rule == "require-timeout-settings"]) == 2


def test_set_local_ends_at_commit() -> None:
    sql = ("BEGIN; SET LOCAL lock_timeout = '2s'; ALTER TABLE t ADD COLUMN x text; COMMIT;"
           "ALTER TABLE t ADD COLUMN y text;")
    findings = lint_sql(sql, transaction_per_file=False)
    timeouts = [f for f in findings if f.rule == "require-timeout-settings"]
    assert len(timeouts) == 1 and "ADD COLUMN y" in (timeouts[0].statement or "")


def test_set_local_lasts_for_the_runner_transaction() -> None:
    assert "require-timeout-settings" not in rules(
        "SET LOCAL lock_timeout = '2s'; ALTER TABLE t ADD COLUMN x text;")


def test_set_local_outside_a_transaction_has_no_effect() -> None:
    assert "require-timeout-settings" in rules(
        "SET LOCAL lock_timeout = '2s'; ALTER TABLE t ADD COLUMN x text;",
        transaction_per_file=False)


def test_a_session_timeout_set_in_a_rolled_back_transaction_is_undone() -> None:
    assert "require-timeout-settings" in rules(
        "BEGIN; SET lock_timeout = '2s'; ROLLBACK; ALTER TABLE t ADD COLUMN x text;",
        transaction_per_file=False)


def test_reset_zero_and_default_mean_no_timeout() -> None:
    for off in ("RESET lock_timeout;", "RESET ALL;", "SET lock_timeout = 0;",
                "SET lock_timeout TO DEFAULT;", "SET lock_timeout = '0ms';"):
        assert "require-timeout-settings" in rules(
            f"SET lock_timeout = '2s'; {off} ALTER TABLE t ADD COLUMN x text;"), off


def test_set_config_counts_as_set() -> None:
    assert "require-timeout-settings" not in rules(
        "SELECT set_config('lock_timeout', '3s', false); ALTER TABLE t ADD COLUMN x text;")


def test_a_session_timeout_carries_to_later_files_of_the_change() -> None:
    assert "require-timeout-settings" not in rules(
        "SET lock_timeout = '2s';", "ALTER TABLE t ADD COLUMN x text;")


def test_statement_timeout_alone_is_still_reported() -> None:
    findings = lint_sql("SET statement_timeout = '10s'; ALTER TABLE t ADD COLUMN x text;")
    timeout = next(f for f in findings if f.rule == "require-timeout-settings")
    assert "statement_timeout is set" in timeout.message
    assert timeout.effect is Effect.MISSING_TIMEOUT


def test_volatile_default_rewrites_on_every_version_and_a_constant_one_only_before_11() -> None:
    constant = "ALTER TABLE t ADD COLUMN n int DEFAULT 0;"
    assert "adding-field-with-default" in rules(constant, pg_version=10)
    assert "adding-field-with-default" not in rules(constant, pg_version=11)
    volatile = "ALTER TABLE t ADD COLUMN u uuid DEFAULT gen_random_uuid();"
    assert "adding-field-with-default" in rules(volatile, pg_version=18)


def test_enum_value_added_in_a_transaction_cannot_run_before_12() -> None:
    old = lint_sql("ALTER TYPE mood ADD VALUE 'meh' AFTER 'ok';", pg_version=11)
    new = lint_sql("ALTER TYPE mood ADD VALUE 'meh' AFTER 'ok';", pg_version=12)
    assert [f.effect for f in old if f.rule == "adding-enum-value"] == [Effect.CANNOT_RUN]
    assert [f.effect for f in new if f.rule == "adding-enum-value"] == [Effect.ADVISORY]


def test_concurrent_partition_detach_is_suggested_only_from_14() -> None:
    sql = "ALTER TABLE t DETACH PARTITION t_2020;"
    assert "require-concurrent-partition-detach" not in rules(sql, pg_version=13)
    assert "require-concurrent-partition-detach" in rules(sql, pg_version=14)


def test_set_not_null_after_a_validated_not_null_check_is_free_from_12() -> None:
    sql = ("ALTER TABLE t ADD CONSTRAINT a_nn CHECK (a IS NOT NULL) NOT VALID;",
           "ALTER TABLE t VALIDATE CONSTRAINT a_nn;",
           "ALTER TABLE t ALTER COLUMN a SET NOT NULL;")
    assert "adding-not-nullable-field" not in rules(*sql, pg_version=12)
    assert "adding-not-nullable-field" in rules(*sql, pg_version=11)


def test_widening_a_known_varchar_does_not_rewrite() -> None:
    history = ("CREATE TABLE t (name varchar(40));",)
    assert not {"changing-column-type", "lossy-column-type-change"} & rules(
        "ALTER TABLE t ALTER COLUMN name TYPE varchar(80);", history=history)
    assert not {"changing-column-type", "lossy-column-type-change"} & rules(
        "ALTER TABLE t ALTER COLUMN name TYPE text;", history=history)


def test_a_view_dropped_and_re_created_in_the_change_is_only_advisory() -> None:
    findings = lint_sql("DROP VIEW v;", "CREATE VIEW v AS SELECT 1;")
    drop = next(f for f in findings if f.rule == "ban-drop-view")
    assert drop.effect is Effect.ADVISORY


def test_concurrent_index_outside_any_transaction_runs() -> None:
    assert "ban-concurrent-index-creation-in-transaction" not in rules(
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON t (a);", transaction_per_file=False)


def test_unbalanced_blocks_cannot_run() -> None:
    assert "ban-uncommitted-transaction" in rules(
        "BEGIN; ALTER TABLE t ADD COLUMN x text;", transaction_per_file=False)
    findings = lint_sql("COMMIT;", transaction_per_file=False)
    assert [f.effect for f in findings if f.rule == "transaction-nesting"] == [Effect.CANNOT_RUN]
    nested = lint_sql("BEGIN; BEGIN; COMMIT; COMMIT;", transaction_per_file=False)
    assert Effect.CANNOT_RUN in {f.effect for f in nested if f.rule == "transaction-nesting"}


def test_begin_inside_the_runner_transaction_is_a_warning() -> None:
    findings = lint_sql("BEGIN; CREATE TABLE n (a text); COMMIT;")
    assert {f.effect for f in findings if f.rule == "transaction-nesting"} == {Effect.ADVISORY}


def test_statement_positions_count_characters_after_multibyte_text() -> None:
    sql = "-- café ünïcode\nSELECT 'é€';\n  CREATE INDEX i ON t (a);"
    statements = parse_script(sql).statements
    assert [(s.line, s.column) for s in statements] == [(2, 1), (3, 3)]
    assert statements[1].text == "CREATE INDEX i ON t (a)"


def test_a_syntax_error_names_line_and_column_and_the_rest_is_still_analysed() -> None:
    findings = lint_sql("SELECT 'é';\nSELEC 1;\nDROP TABLE t;")
    error = next(f for f in findings if f.rule == "syntax-error")
    assert (error.line, error.column) == (2, 1)
    assert 'syntax error at or near "SELEC"' in error.message
    assert error.effect is Effect.CANNOT_RUN
    assert "ban-drop-table" in {f.rule for f in findings}


def test_a_syntax_error_at_the_end_of_input_points_at_the_end() -> None:
    error = next(f for f in lint_sql("CREATE TABLE n (a int") if f.rule == "syntax-error")
    assert error.line == 1 and "end of input" in error.message


def test_a_file_of_comments_only_has_no_findings() -> None:
    assert lint_sql("-- nothing to do\n/* really */\n") == []


def test_a_syntax_error_in_one_file_does_not_stop_the_next() -> None:
    assert {"syntax-error", "ban-drop-table"} <= rules("SELEC;", "DROP TABLE t;")


def test_targets_are_schema_qualified_when_written_so() -> None:
    findings = lint_sql("CREATE INDEX i ON app.orders (a);")
    assert {f.target for f in findings} == {"app.orders"}
