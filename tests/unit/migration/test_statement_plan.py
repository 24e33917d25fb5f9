"""What the shadow-database runner is handed: `plan_script` cuts with the analysis' splitter
(`parse_script`) and marks what must run outside a transaction, outside the database, or
manages its own transaction."""

from __future__ import annotations

import pytest

from services.migration.adapters.statements import plan_script
from services.migration.domain.sql_source import parse_script


def test_statements_are_the_analysis_statements_with_the_line_of_their_first_token() -> None:
    sql = ("-- lead\n /* block */ CREATE TABLE a (x int);\n\n-- note\nCREATE TABLE é (y text);"
           " -- tail\n SELECT 'ü'; SELECT 1\n")
    plan = plan_script("up.sql", sql)
    assert plan.parsed and plan.in_transaction
    assert [(s.text, s.line) for s in plan.statements] == [
        ("CREATE TABLE a (x int)", 2), ("CREATE TABLE é (y text)", 5), ("SELECT 'ü'", 6),
        ("SELECT 1", 6)]
    assert [(s.text, s.line) for s in plan.statements] == [
        (s.text, s.line) for s in parse_script(sql).statements]


def test_dollar_quoted_bodies_stay_one_statement() -> None:
    sql = ("CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql;\n"
           "DO $body$ BEGIN PERFORM 1; END $body$;\n")
    assert [s.text for s in plan_script("up.sql", sql).statements] == [
        "CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql",
        "DO $body$ BEGIN PERFORM 1; END $body$"]


@pytest.mark.parametrize("sql", [
    "CREATE TABLE a ();\nSELEC 1;\n",
    "\\set ON_ERROR_STOP on\nCREATE TABLE a ();\n",
    "COPY t FROM stdin;\n1\t2\n\\.\n",
])
def test_a_script_the_parser_rejects_is_sent_whole(sql: str) -> None:
    plan = plan_script("up.sql", "\n\n  " + sql)
    assert not plan.parsed
    [whole] = plan.statements
    assert whole.text == sql.strip()
    assert whole.line == 3
    assert whole.line_of(len(sql.strip())) == 3 + sql.strip().count("\n")


@pytest.mark.parametrize(("sql", "version", "outside"), [
    ("CREATE INDEX CONCURRENTLY i ON t (a)", 180000, True),
    ("CREATE INDEX i ON t (a)", 180000, False),
    ("DROP INDEX CONCURRENTLY i", 180000, True),
    ("DROP INDEX i", 180000, False),
    ("REINDEX (CONCURRENTLY) INDEX i", 180000, True),
    ("REINDEX INDEX CONCURRENTLY i", 180000, True),
    ("REINDEX TABLE t", 180000, False),
    ("ALTER TYPE e ADD VALUE 'x'", 110000, True),
    ("ALTER TYPE e ADD VALUE 'x'", 120000, False),
    ("ALTER TYPE e RENAME VALUE 'x' TO 'y'", 110000, False),
    ("VACUUM t", 180000, True),
    ("ANALYZE t", 180000, True),
    ("CREATE DATABASE d", 180000, True),
    ("ALTER SYSTEM SET work_mem = '1MB'", 180000, True),
    ("CREATE TABLE t ()", 180000, False),
])
def test_what_runs_in_autocommit(sql: str, version: int, outside: bool) -> None:
    plan = plan_script("up.sql", f"CREATE TABLE z ();\n{sql};\n", version)
    assert [s.outside_transaction for s in plan.statements] == [False, outside]
    assert plan.in_transaction is not outside


def test_cluster_wide_and_transaction_control_statements_are_marked() -> None:
    sql = ("CREATE ROLE r;\nGRANT r TO s;\nALTER DATABASE d SET x = 1;\n"
           "ALTER DATABASE d OWNER TO r;\nBEGIN;\nSAVEPOINT s;\nCOMMIT;\n")
    plan = plan_script("up.sql", sql)
    assert [s.cluster_wide for s in plan.statements] == [
        True, True, True, False, False, False, False]
    assert [s.transaction_control for s in plan.statements] == [
        False, False, False, False, True, True, True]
    assert not plan.in_transaction


def test_a_script_without_statements_is_an_empty_transaction() -> None:
    for sql in ("", "  \n", "-- nothing\n/* here */\n", ";;\n"):
        plan = plan_script("up.sql", sql)
        assert plan.parsed and plan.statements == () and plan.in_transaction
