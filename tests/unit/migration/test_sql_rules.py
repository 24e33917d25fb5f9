"""Every SQL rule: statements that must fire it, and near misses that must not.

`t`, `u`, `v` are tables (and a view) the change did not create: pre-existing in production.
Cases are our own SQL, written after reading squawk's, Atlas's and Eugene's fixtures.
"""

from __future__ import annotations

import pytest

from services.migration.domain.rule_catalog import RULES, VERIFICATION_RULES
from tests.unit.migration.helpers import rules

FIRES: list[tuple[str, str]] = [
    ("require-concurrent-index-creation", "CREATE INDEX t_a_idx ON t (a);"),
    ("require-concurrent-index-creation", "CREATE UNIQUE INDEX ON public.t (a, b);"),
    ("require-concurrent-index-deletion", "DROP INDEX t_a_idx;"),
    ("require-concurrent-reindex", "REINDEX INDEX t_a_idx;"),
    ("require-concurrent-reindex", "REINDEX TABLE t;"),
    ("ban-concurrent-index-creation-in-transaction", "CREATE INDEX CONCURRENTLY i ON t (a);"),
    ("cannot-run-in-transaction", "DROP INDEX CONCURRENTLY i;"),
    ("cannot-run-in-transaction", "REINDEX INDEX CONCURRENTLY i;"),
    ("cannot-run-in-transaction", "VACUUM t;"),
    ("cannot-run-in-transaction", "ALTER TABLE t DETACH PARTITION p CONCURRENTLY;"),
    ("adding-unique-index", "CREATE UNIQUE INDEX t_email ON t (email);"),
    ("constraint-missing-not-valid", "ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0);"),
    ("constraint-missing-not-valid",
     "ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0) NOT VALID;"
     "ALTER TABLE t VALIDATE CONSTRAINT c;"),
    ("adding-foreign-key-constraint",
     "ALTER TABLE t ADD CONSTRAINT t_u FOREIGN KEY (u_id) REFERENCES u (id);"),
    ("adding-foreign-key-constraint", "ALTER TABLE t ADD COLUMN u_id bigint REFERENCES u (id);"),
    ("disallowed-unique-constraint", "ALTER TABLE t ADD CONSTRAINT t_a UNIQUE (a);"),
    ("adding-primary-key-constraint", "ALTER TABLE t ADD PRIMARY KEY (id);"),
    ("adding-exclusion-constraint",
     "ALTER TABLE t ADD CONSTRAINT no_overlap EXCLUDE USING gist (during WITH &&);"),
    ("ban-drop-constraint", "ALTER TABLE t DROP CONSTRAINT t_a_check;"),
    ("ban-create-domain-with-constraint", "CREATE DOMAIN positive AS int CHECK (VALUE > 0);"),
    ("ban-alter-domain-with-add-constraint",
     "ALTER DOMAIN d ADD CONSTRAINT c CHECK (VALUE > 0);"),
    ("adding-field-with-default", "ALTER TABLE t ADD COLUMN r float8 DEFAULT random();"),
    ("adding-field-with-default", "ALTER TABLE t ADD COLUMN u uuid DEFAULT gen_random_uuid();"),
    ("adding-field-with-default",
     "ALTER TABLE t ADD COLUMN c timestamptz DEFAULT clock_timestamp();"),
    ("adding-field-with-default", "ALTER TABLE t ADD COLUMN n bigint DEFAULT nextval('s');"),
    ("adding-field-with-default", "ALTER TABLE t ADD COLUMN id2 bigserial;"),
    ("adding-field-with-default",
     "ALTER TABLE t ADD COLUMN n bigint GENERATED ALWAYS AS IDENTITY;"),
    ("adding-field-with-default",
     "ALTER TABLE t ADD COLUMN total int GENERATED ALWAYS AS (a + b) STORED;"),
    ("adding-field-with-default", "ALTER TABLE t ADD COLUMN x int DEFAULT my_function();"),
    ("adding-required-field", "ALTER TABLE t ADD COLUMN x text NOT NULL;"),
    ("adding-not-nullable-field", "ALTER TABLE t ALTER COLUMN a SET NOT NULL;"),
    ("adding-not-nullable-field", "ALTER TABLE t ADD CONSTRAINT a_nn NOT NULL a;"),
    ("adding-serial-primary-key-field", "ALTER TABLE t ADD COLUMN id bigint PRIMARY KEY;"),
    ("changing-column-type", "ALTER TABLE t ALTER COLUMN a TYPE bigint;"),
    ("changing-column-type", "ALTER TABLE t ALTER COLUMN a TYPE text;"),
    ("renaming-column", "ALTER TABLE t RENAME COLUMN a TO b;"),
    ("lossy-column-type-change", "ALTER TABLE t ALTER COLUMN id TYPE int;"),
    ("lossy-column-type-change", "ALTER TABLE t ALTER COLUMN name TYPE varchar(20);"),
    ("ban-drop-column", "ALTER TABLE t DROP COLUMN a;"),
    ("ban-drop-not-null", "ALTER TABLE t ALTER COLUMN a DROP NOT NULL;"),
    ("ban-drop-default", "ALTER TABLE t ALTER COLUMN a DROP DEFAULT;"),
    ("ban-drop-generated-expression", "ALTER TABLE t ALTER COLUMN total DROP EXPRESSION;"),
    ("ban-alter-identity", "ALTER TABLE t ALTER COLUMN id DROP IDENTITY;"),
    ("prefer-bigint-over-int", "CREATE TABLE n (id serial PRIMARY KEY);"),
    ("prefer-bigint-over-int", "CREATE TABLE n (id bigint, owner_id int);"),
    ("prefer-bigint-over-int", "CREATE TABLE n (k int, PRIMARY KEY (k));"),
    ("prefer-bigint-over-smallint", "CREATE TABLE n (id smallint PRIMARY KEY);"),
    ("prefer-identity", "CREATE TABLE n (id bigserial PRIMARY KEY);"),
    ("prefer-text-field", "CREATE TABLE n (name varchar(100));"),
    ("ban-char-field", "CREATE TABLE n (code char(3));"),
    ("prefer-timestamptz", "CREATE TABLE n (at timestamp);"),
    ("prefer-timestamptz", "ALTER TABLE t ADD COLUMN at timestamp without time zone;"),
    ("prefer-jsonb-over-json", "CREATE TABLE n (doc json);"),
    ("identifier-too-long", "CREATE TABLE n (" + "c" * 64 + " text);"),
    ("identifier-too-long", "CREATE INDEX CONCURRENTLY " + "é" * 32 + " ON t (a);"),
    ("ban-drop-table", "DROP TABLE t;"),
    ("ban-drop-schema", "DROP SCHEMA archive CASCADE;"),
    ("ban-drop-database", "DROP DATABASE app;"),
    ("ban-drop-view", "DROP VIEW v;"),
    ("ban-drop-view", "DROP MATERIALIZED VIEW mv;"),
    ("ban-drop-function", "DROP FUNCTION f(int);"),
    ("ban-drop-type", "DROP TYPE mood;"),
    ("ban-drop-domain", "DROP DOMAIN positive;"),
    ("ban-drop-sequence", "DROP SEQUENCE t_id_seq;"),
    ("ban-drop-extension", "DROP EXTENSION pg_trgm;"),
    ("ban-drop-trigger", "DROP TRIGGER audit ON t;"),
    ("renaming-table", "ALTER TABLE t RENAME TO t2;"),
    ("renaming-object", "ALTER VIEW v RENAME TO v2;"),
    ("renaming-object", "ALTER TYPE mood RENAME VALUE 'sad' TO 'blue';"),
    ("renaming-object", "ALTER FUNCTION f(int) RENAME TO g;"),
    ("ban-set-schema", "ALTER TABLE t SET SCHEMA archive;"),
    ("creating-trigger-on-existing-table",
     "CREATE TRIGGER audit AFTER UPDATE ON t FOR EACH ROW EXECUTE FUNCTION audit();"),
    ("ban-disable-trigger", "ALTER TABLE t DISABLE TRIGGER ALL;"),
    ("require-concurrent-partition-detach", "ALTER TABLE t DETACH PARTITION t_2020;"),
    ("require-concurrent-refresh", "REFRESH MATERIALIZED VIEW mv;"),
    ("changing-table-persistence", "ALTER TABLE t SET UNLOGGED;"),
    ("changing-tablespace", "ALTER TABLE t SET TABLESPACE fast;"),
    ("explicit-table-lock", "LOCK TABLE t;"),
    ("explicit-table-lock", "LOCK TABLE t IN SHARE MODE;"),
    ("adding-enum-value", "ALTER TYPE mood ADD VALUE 'meh' AFTER 'ok';"),
    ("require-enum-value-ordering", "ALTER TYPE mood ADD VALUE 'meh';"),
    ("ban-truncate", "TRUNCATE t;"),
    ("ban-truncate-cascade", "TRUNCATE t CASCADE;"),
    ("ban-delete-without-where", "DELETE FROM t;"),
    ("ban-update-without-where", "UPDATE t SET a = 0;"),
    ("backfill-in-migration", "UPDATE t SET a = 0 WHERE a IS NULL;"),
    ("backfill-in-migration", "DELETE FROM t WHERE created < now() - interval '1 year';"),
    ("backfill-in-migration", "ALTER TABLE t ADD COLUMN x int; UPDATE t SET x = a;"),
    ("prefer-repack", "VACUUM FULL t;"),
    ("prefer-repack", "CLUSTER t USING t_pkey;"),
    ("transaction-nesting", "BEGIN; CREATE TABLE n (a text); COMMIT;"),
    ("require-timeout-settings", "ALTER TABLE t ADD COLUMN x text;"),
    ("prefer-robust-stmts", "CREATE INDEX CONCURRENTLY i ON t (a);"),
]

DOES_NOT_FIRE: list[tuple[str, str]] = [
    ("require-concurrent-index-creation", "CREATE TABLE n (a text); CREATE INDEX ON n (a);"),
    ("require-concurrent-index-creation", "CREATE INDEX CONCURRENTLY i ON t (a);"),
    ("require-concurrent-index-deletion", "DROP INDEX CONCURRENTLY i;"),
    ("require-concurrent-index-deletion",
     "CREATE TABLE n (a text); CREATE INDEX n_a ON n (a); DROP INDEX n_a;"),
    ("require-concurrent-reindex", "REINDEX INDEX CONCURRENTLY t_a_idx;"),
    ("ban-concurrent-index-creation-in-transaction", "CREATE INDEX i ON t (a);"),
    ("cannot-run-in-transaction", "DROP INDEX i; ANALYZE t;"),
    ("adding-unique-index", "CREATE INDEX t_email ON t (email);"),
    ("constraint-missing-not-valid", "ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0) NOT VALID;"),
    ("constraint-missing-not-valid", "CREATE TABLE n (a int); ALTER TABLE n ADD CHECK (a > 0);"),
    ("adding-foreign-key-constraint",
     "ALTER TABLE t ADD CONSTRAINT t_u FOREIGN KEY (u_id) REFERENCES u (id) NOT VALID;"),
    ("adding-foreign-key-constraint", "CREATE TABLE n (u_id bigint REFERENCES u (id));"),
    ("disallowed-unique-constraint", "ALTER TABLE t ADD CONSTRAINT t_a UNIQUE USING INDEX t_a;"),
    ("adding-primary-key-constraint",
     "ALTER TABLE t ADD CONSTRAINT t_pk PRIMARY KEY USING INDEX i;"),
    ("adding-exclusion-constraint",
     "CREATE TABLE n (during tstzrange, EXCLUDE USING gist (during WITH &&));"),
    ("ban-drop-constraint",
     "CREATE TABLE n (a int CONSTRAINT c CHECK (a > 0)); ALTER TABLE n DROP CONSTRAINT c;"),
    ("ban-create-domain-with-constraint", "CREATE DOMAIN name_t AS text;"),
    ("ban-alter-domain-with-add-constraint",
     "ALTER DOMAIN d ADD CONSTRAINT c CHECK (VALUE > 0) NOT VALID;"),
    ("adding-field-with-default", "ALTER TABLE t ADD COLUMN n int DEFAULT 0 NOT NULL;"),
    ("adding-field-with-default", "ALTER TABLE t ADD COLUMN at timestamptz DEFAULT now();"),
    ("adding-field-with-default",
     "ALTER TABLE t ADD COLUMN at timestamptz DEFAULT CURRENT_TIMESTAMP;"),
    ("adding-field-with-default", "ALTER TABLE t ADD COLUMN d jsonb DEFAULT '{}'::jsonb;"),
    ("adding-field-with-default",
     "ALTER TABLE t ADD COLUMN total int GENERATED ALWAYS AS (a + b);"),
    ("adding-field-with-default",
     "CREATE TABLE n (a int); ALTER TABLE n ADD COLUMN u uuid DEFAULT gen_random_uuid();"),
    ("adding-required-field", "ALTER TABLE t ADD COLUMN x text NOT NULL DEFAULT '';"),
    ("adding-required-field", "ALTER TABLE t ADD COLUMN x text;"),
    ("adding-not-nullable-field", "CREATE TABLE n (a int); ALTER TABLE n ALTER a SET NOT NULL;"),
    ("adding-not-nullable-field", "ALTER TABLE t ADD CONSTRAINT a_nn NOT NULL a NOT VALID;"),
    ("adding-serial-primary-key-field", "ALTER TABLE t ADD COLUMN id bigint;"),
    ("changing-column-type", "CREATE TABLE n (a int); ALTER TABLE n ALTER a TYPE bigint;"),
    ("renaming-column", "CREATE TABLE n (a int); ALTER TABLE n RENAME COLUMN a TO b;"),
    ("lossy-column-type-change", "ALTER TABLE t ALTER COLUMN name TYPE varchar(80);"),
    ("lossy-column-type-change", "ALTER TABLE t ALTER COLUMN id TYPE bigint;"),
    ("ban-drop-column", "ALTER TABLE t DROP CONSTRAINT c;"),
    ("ban-drop-not-null", "ALTER TABLE t ALTER COLUMN a SET DEFAULT 0;"),
    ("ban-drop-default", "ALTER TABLE t ALTER COLUMN a SET DEFAULT 0;"),
    ("ban-drop-generated-expression", "ALTER TABLE t ALTER COLUMN a DROP DEFAULT;"),
    ("ban-alter-identity", "ALTER TABLE t ALTER COLUMN id SET DEFAULT 1;"),
    ("prefer-bigint-over-int", "CREATE TABLE n (quantity int, id bigint PRIMARY KEY);"),
    ("prefer-bigint-over-smallint", "CREATE TABLE n (rank smallint);"),
    ("prefer-identity", "CREATE TABLE n (id bigint GENERATED BY DEFAULT AS IDENTITY);"),
    ("prefer-text-field", "CREATE TABLE n (name text, code varchar);"),
    ("ban-char-field", "CREATE TABLE n (code text);"),
    ("prefer-timestamptz", "CREATE TABLE n (at timestamptz);"),
    ("prefer-jsonb-over-json", "CREATE TABLE n (doc jsonb);"),
    ("identifier-too-long", "CREATE TABLE n (" + "c" * 63 + " text);"),
    ("ban-drop-table", "CREATE TABLE n (a int); DROP TABLE n;"),
    ("ban-drop-schema", "CREATE SCHEMA s; DROP SCHEMA s;"),
    ("ban-drop-database", "DROP TABLE t;"),
    ("ban-drop-view", "CREATE VIEW w AS SELECT 1; DROP VIEW w;"),
    ("ban-drop-function", "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'select 1'; "
                          "DROP FUNCTION f();"),
    ("ban-drop-type", "CREATE TYPE mood AS ENUM ('ok'); DROP TYPE mood;"),
    ("ban-drop-domain", "CREATE DOMAIN d AS int; DROP DOMAIN d;"),
    ("ban-drop-sequence", "CREATE SEQUENCE s; DROP SEQUENCE s;"),
    ("ban-drop-extension", "CREATE EXTENSION IF NOT EXISTS pg_trgm;"),
    ("ban-drop-trigger", "CREATE TABLE n (a int); DROP TRIGGER audit ON n;"),
    ("renaming-table", "CREATE TABLE n (a int); ALTER TABLE n RENAME TO m;"),
    ("renaming-object", "ALTER INDEX t_a RENAME TO t_a_idx;"),
    ("ban-set-schema", "ALTER TABLE t RENAME TO t2;"),
    ("creating-trigger-on-existing-table",
     "CREATE TABLE n (a int); CREATE TRIGGER x AFTER UPDATE ON n FOR EACH ROW "
     "EXECUTE FUNCTION f();"),
    ("ban-disable-trigger", "ALTER TABLE t ENABLE TRIGGER ALL;"),
    ("require-concurrent-partition-detach",
     "ALTER TABLE t DETACH PARTITION t_2020 CONCURRENTLY;"),
    ("require-concurrent-refresh", "REFRESH MATERIALIZED VIEW CONCURRENTLY mv;"),
    ("changing-table-persistence", "CREATE TABLE n (a int); ALTER TABLE n SET LOGGED;"),
    ("changing-tablespace", "ALTER TABLE t SET (fillfactor = 70);"),
    ("explicit-table-lock", "LOCK TABLE t IN ROW EXCLUSIVE MODE;"),
    ("adding-enum-value", "CREATE TYPE mood AS ENUM ('ok'); ALTER TYPE mood ADD VALUE 'meh';"),
    ("require-enum-value-ordering", "ALTER TYPE mood ADD VALUE 'meh' BEFORE 'ok';"),
    ("ban-truncate", "CREATE TABLE n (a int); TRUNCATE n;"),
    ("ban-truncate-cascade", "TRUNCATE t;"),
    ("ban-delete-without-where", "DELETE FROM t WHERE id = 1;"),
    ("ban-update-without-where", "ALTER TABLE t ADD COLUMN x int; UPDATE t SET x = a;"),
    ("backfill-in-migration", "CREATE TABLE n (a int); UPDATE n SET a = 1 WHERE a IS NULL;"),
    ("backfill-in-migration", "INSERT INTO t (a) VALUES (1);"),
    ("prefer-repack", "VACUUM t; ANALYZE t;"),
    ("prefer-repack", "CREATE TABLE n (a int); CLUSTER n USING n_a;"),
    ("transaction-nesting", "CREATE TABLE n (a text);"),
    ("require-timeout-settings", "SET lock_timeout = '5s'; ALTER TABLE t ADD COLUMN x text;"),
    ("require-timeout-settings", "CREATE TABLE n (a text); CREATE INDEX ON n (a);"),
    ("prefer-robust-stmts", "CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON t (a);"),
]

_OUTSIDE_TRANSACTION = {"require-concurrent-index-creation", "cannot-run-in-transaction",
                        "prefer-robust-stmts", "require-concurrent-index-deletion",
                        "require-concurrent-reindex", "require-concurrent-partition-detach",
                        "prefer-repack"}


HISTORY = ("CREATE TABLE t (id bigint, name varchar(40), a int);",)
"""An earlier, already applied migration: the analysis knows t's column types from it."""


def _lint(rule: str, sql: str) -> set[str]:
    if rule in {"cannot-run-in-transaction", "ban-concurrent-index-creation-in-transaction"}:
        return rules(sql)  # the runner's per-file transaction is what makes them fail
    if (rule in _OUTSIDE_TRANSACTION and "CONCURRENTLY" in sql) or rule == "prefer-robust-stmts":
        return rules(sql, transaction_per_file=False)
    return rules(sql, history=HISTORY)


@pytest.mark.parametrize(("rule", "sql"), FIRES, ids=[f"{r}:{s[:40]}" for r, s in FIRES])
def test_rule_fires(rule: str, sql: str) -> None:
    assert rule in _lint(rule, sql)


@pytest.mark.parametrize(("rule", "sql"), DOES_NOT_FIRE,
                         ids=[f"{r}:{s[:40]}" for r, s in DOES_NOT_FIRE])
def test_rule_does_not_fire(rule: str, sql: str) -> None:
    assert rule not in _lint(rule, sql)


def test_every_sql_rule_has_a_case_that_fires_and_one_that_does_not() -> None:
    not_sql = {"syntax-error", "unknown-suppression", "ban-uncommitted-transaction",
               "missing-down-script"}
    sql_rules = {r for r in RULES if not r.startswith(("config-", "dependency-", "infra-"))}
    sql_rules -= VERIFICATION_RULES  # found by running the change (tests/integration/migration)
    assert sql_rules - not_sql - {r for r, _ in FIRES} == set()
    assert sql_rules - not_sql - {r for r, _ in DOES_NOT_FIRE} == set()
