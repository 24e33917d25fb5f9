"""Every rule the analysis knows: its stable id, default severity and effect, what it catches.

Suppressions are checked against this table (an unknown id is an error), and
docs/rules.md is generated from it. Ids follow squawk's where the rule is the same check,
so the two tools' reports compare line by line; `source` says where a check comes from.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.events.enums import Severity
from services.migration.domain.findings import Effect

E, W, I = Severity.ERROR, Severity.WARNING, Severity.INFO  # noqa: E741


@dataclass(frozen=True)
class RuleInfo:
    id: str
    severity: Severity
    effect: Effect
    """The usual effect; a rule may report a weaker or stronger one for a given statement."""
    catches: str
    source: str = "guardians"
    """Where the check comes from: squawk's rule, Atlas's analyzer code, Eugene's hint id."""


_RULES = (
    # parsing and suppressions
    RuleInfo("syntax-error", E, Effect.CANNOT_RUN, "SQL PostgreSQL's parser rejects.", "squawk"),
    RuleInfo("unknown-suppression", E, Effect.ADVISORY,
             "A `guardians:ignore` comment naming no known rule (never suppresses anything)."),
    # indexes
    RuleInfo("require-concurrent-index-creation", W, Effect.BLOCKING_LOCK,
             "CREATE INDEX without CONCURRENTLY on an existing table (SHARE lock: blocks "
             "writes for the whole build).", "squawk, Atlas PG101, Eugene E6"),
    RuleInfo("require-concurrent-index-deletion", W, Effect.BLOCKING_LOCK,
             "DROP INDEX without CONCURRENTLY (ACCESS EXCLUSIVE on the table).",
             "squawk, Atlas PG102"),
    RuleInfo("require-concurrent-reindex", W, Effect.BLOCKING_LOCK,
             "REINDEX without CONCURRENTLY (PostgreSQL 12+ can rebuild concurrently).", "squawk"),
    RuleInfo("ban-concurrent-index-creation-in-transaction", E, Effect.CANNOT_RUN,
             "CREATE INDEX CONCURRENTLY inside a transaction block (explicit, or the runner's "
             "per-file transaction).", "squawk, Atlas PG103"),
    RuleInfo("cannot-run-in-transaction", E, Effect.CANNOT_RUN,
             "DROP INDEX / REINDEX / DETACH PARTITION CONCURRENTLY, VACUUM, CREATE/DROP "
             "DATABASE, ALTER SYSTEM, and ALTER TYPE ... ADD VALUE before PostgreSQL 12, "
             "inside a transaction block."),
    RuleInfo("adding-unique-index", I, Effect.ADVISORY,
             "A unique index on an existing table: it fails if duplicates exist.",
             "Atlas MF101/MF102"),
    # constraints
    RuleInfo("constraint-missing-not-valid", W, Effect.BLOCKING_LOCK,
             "ADD CONSTRAINT ... CHECK without NOT VALID on an existing table, or VALIDATE in "
             "the same transaction as the NOT VALID add (full scan under the lock).",
             "squawk, Atlas PG305, Eugene E1"),
    RuleInfo("adding-foreign-key-constraint", W, Effect.BLOCKING_LOCK,
             "A validated FOREIGN KEY on an existing table: SHARE ROW EXCLUSIVE on both tables "
             "while every row is checked.", "squawk"),
    RuleInfo("disallowed-unique-constraint", W, Effect.BLOCKING_LOCK,
             "ADD UNIQUE without USING INDEX: the index is built under ACCESS EXCLUSIVE.",
             "squawk, Atlas PG105, Eugene E7"),
    RuleInfo("adding-primary-key-constraint", W, Effect.BLOCKING_LOCK,
             "ADD PRIMARY KEY without USING INDEX: index build (and NOT NULL scans) under "
             "ACCESS EXCLUSIVE.", "Atlas PG104/PG304 (squawk: adding-serial-primary-key-field)"),
    RuleInfo("adding-exclusion-constraint", W, Effect.BLOCKING_LOCK,
             "ADD EXCLUDE on an existing table: built under ACCESS EXCLUSIVE, no concurrent "
             "alternative.", "Eugene E8"),
    RuleInfo("adding-primary-key-using-index", W, Effect.ADVISORY,
             "ADD PRIMARY KEY USING INDEX on an existing table: nullable key columns are made "
             "NOT NULL by a full scan under ACCESS EXCLUSIVE.", "Eugene W14"),
    RuleInfo("foreign-key-missing-index", W, Effect.ADVISORY,
             "A foreign key whose columns no index on its table starts with (checked when the "
             "change ends, for tables whose definition was read): deletes and key updates on "
             "the referenced table scan it.", "Eugene E15"),
    RuleInfo("ban-drop-constraint", W, Effect.ADVISORY,
             "DROP CONSTRAINT: integrity the application may rely on disappears.",
             "squawk, Atlas CD101"),
    RuleInfo("ban-create-domain-with-constraint", W, Effect.ADVISORY,
             "CREATE DOMAIN with a CHECK: later changes to it lock every table using it.",
             "squawk"),
    RuleInfo("ban-alter-domain-with-add-constraint", W, Effect.BLOCKING_LOCK,
             "ALTER DOMAIN ... ADD CONSTRAINT without NOT VALID scans every column using the "
             "domain.", "squawk"),
    # columns
    RuleInfo("adding-field-with-default", W, Effect.REWRITE,
             "ADD COLUMN whose value must be computed per row (volatile default, serial, "
             "identity, stored generated column; any default before PostgreSQL 11).",
             "squawk, Atlas PG302, Eugene E11"),
    RuleInfo("adding-required-field", E, Effect.FAILS_ON_EXISTING_ROWS,
             "ADD COLUMN ... NOT NULL without a default on an existing table.",
             "squawk, Atlas MF103"),
    RuleInfo("adding-not-nullable-field", W, Effect.BLOCKING_LOCK,
             "SET NOT NULL (or ADD CONSTRAINT ... NOT NULL) on an existing column: full scan "
             "under ACCESS EXCLUSIVE.", "squawk, Atlas MF104/PG303, Eugene E2"),
    RuleInfo("adding-serial-primary-key-field", W, Effect.BLOCKING_LOCK,
             "ADD COLUMN ... PRIMARY KEY/UNIQUE: the index is built under ACCESS EXCLUSIVE.",
             "squawk"),
    RuleInfo("changing-column-type", W, Effect.REWRITE,
             "ALTER COLUMN ... TYPE that rewrites the table (or may: old type unknown).",
             "squawk, Atlas PG301, Eugene E5"),
    RuleInfo("lossy-column-type-change", E, Effect.DATA_LOSS,
             "ALTER COLUMN ... TYPE to a narrower type: fails on, or rounds, existing values."),
    RuleInfo("renaming-column", W, Effect.BREAKING_RENAME,
             "RENAME COLUMN on an existing table: running clients still use the old name.",
             "squawk, Atlas BC102"),
    RuleInfo("ban-drop-column", W, Effect.DATA_LOSS, "DROP COLUMN on an existing table.",
             "squawk, Atlas DS103"),
    RuleInfo("ban-drop-not-null", I, Effect.ADVISORY,
             "DROP NOT NULL: readers may meet NULLs they never saw.", "squawk"),
    RuleInfo("ban-drop-default", I, Effect.ADVISORY,
             "DROP DEFAULT: inserts that relied on it get NULL or fail.", "squawk"),
    RuleInfo("ban-drop-generated-expression", W, Effect.ADVISORY,
             "DROP EXPRESSION: a generated column stops following its inputs.", "squawk"),
    RuleInfo("ban-alter-identity", I, Effect.ADVISORY,
             "ADD/SET/DROP IDENTITY on an existing column.", "squawk"),
    RuleInfo("prefer-bigint-over-int", I, Effect.ADVISORY,
             "An integer key or id column (serial, PRIMARY KEY, REFERENCES, `id`, `*_id`): "
             "32 bits run out.", "squawk (squawk flags every int column)"),
    RuleInfo("prefer-bigint-over-smallint", I, Effect.ADVISORY,
             "A smallint key or id column.", "squawk (squawk flags every smallint column)"),
    RuleInfo("prefer-identity", I, Effect.ADVISORY,
             "serial/bigserial instead of GENERATED ... AS IDENTITY.", "squawk"),
    RuleInfo("prefer-text-field", I, Effect.ADVISORY,
             "varchar(n): changing n later takes ACCESS EXCLUSIVE; text + CHECK does not.",
             "squawk"),
    RuleInfo("ban-char-field", W, Effect.ADVISORY,
             "char(n): blank-padded, wastes space, compares surprisingly.", "squawk"),
    RuleInfo("prefer-timestamptz", I, Effect.ADVISORY,
             "timestamp without time zone.", "squawk (reported as prefer-timestamp-tz)"),
    RuleInfo("non-optimal-column-alignment", I, Effect.ADVISORY,
             "CREATE TABLE whose column order leaves 8 or more bytes of alignment padding "
             "per row that ordering the fixed-width columns widest first avoids.",
             "Atlas PG110"),
    RuleInfo("prefer-jsonb-over-json", I, Effect.ADVISORY,
             "json instead of jsonb (no equality operator: breaks DISTINCT, UNION, GROUP BY).",
             "Eugene E3"),
    RuleInfo("identifier-too-long", W, Effect.ADVISORY,
             "An identifier over 63 bytes: PostgreSQL silently truncates it.", "squawk"),
    # tables and other objects
    RuleInfo("ban-drop-table", E, Effect.DATA_LOSS, "DROP TABLE of an existing table.",
             "squawk, Atlas DS102"),
    RuleInfo("ban-drop-schema", E, Effect.DATA_LOSS, "DROP SCHEMA.", "squawk, Atlas DS101"),
    RuleInfo("ban-drop-database", E, Effect.DATA_LOSS, "DROP DATABASE.", "squawk"),
    RuleInfo("ban-drop-view", W, Effect.INCOMPATIBLE,
             "DROP VIEW / MATERIALIZED VIEW not re-created in the same change.", "squawk"),
    RuleInfo("ban-drop-function", W, Effect.INCOMPATIBLE,
             "DROP FUNCTION / PROCEDURE not re-created in the same change.", "squawk"),
    RuleInfo("ban-drop-type", W, Effect.INCOMPATIBLE,
             "DROP TYPE (with CASCADE: drops the columns using it).", "squawk"),
    RuleInfo("ban-drop-domain", W, Effect.INCOMPATIBLE, "DROP DOMAIN.", "squawk"),
    RuleInfo("ban-drop-sequence", W, Effect.INCOMPATIBLE, "DROP SEQUENCE.", "squawk"),
    RuleInfo("ban-drop-extension", W, Effect.INCOMPATIBLE,
             "DROP EXTENSION (with CASCADE: drops what uses it).", "squawk"),
    RuleInfo("ban-drop-trigger", I, Effect.ADVISORY,
             "DROP TRIGGER on an existing table (ACCESS EXCLUSIVE, briefly).", "squawk (opt-in)"),
    RuleInfo("renaming-table", W, Effect.BREAKING_RENAME,
             "RENAME of an existing table.", "squawk, Atlas BC101"),
    RuleInfo("renaming-object", W, Effect.BREAKING_RENAME,
             "RENAME of a view or schema (breaks clients), or of another object / enum value.",
             "squawk"),
    RuleInfo("ban-set-schema", W, Effect.BREAKING_RENAME,
             "SET SCHEMA moves an object: clients find it under its old name no more.", "squawk"),
    RuleInfo("creating-trigger-on-existing-table", W, Effect.ADVISORY,
             "CREATE TRIGGER on an existing table: SHARE ROW EXCLUSIVE, and work on every "
             "write from then on."),
    RuleInfo("ban-disable-trigger", W, Effect.ADVISORY,
             "DISABLE TRIGGER (ALL also disables foreign-key checks).", "squawk (opt-in)"),
    RuleInfo("require-concurrent-partition-detach", W, Effect.BLOCKING_LOCK,
             "DETACH PARTITION without CONCURRENTLY (PostgreSQL 14+).", "squawk"),
    RuleInfo("require-concurrent-refresh", W, Effect.BLOCKING_LOCK,
             "REFRESH MATERIALIZED VIEW without CONCURRENTLY blocks its readers."),
    RuleInfo("changing-table-persistence", W, Effect.REWRITE,
             "SET LOGGED / SET UNLOGGED rewrites the table."),
    RuleInfo("changing-tablespace", W, Effect.REWRITE,
             "SET TABLESPACE copies the table under ACCESS EXCLUSIVE."),
    RuleInfo("explicit-table-lock", W, Effect.BLOCKING_LOCK,
             "LOCK TABLE in a mode that blocks writes, on an existing table."),
    RuleInfo("adding-enum-value", I, Effect.ADVISORY,
             "ALTER TYPE ... ADD VALUE: unusable until committed; cannot run in a transaction "
             "before PostgreSQL 12.", "Eugene"),
    RuleInfo("require-enum-value-ordering", I, Effect.ADVISORY,
             "ADD VALUE without BEFORE/AFTER appends the value: check the sort order.", "squawk"),
    RuleInfo("creating-enum", I, Effect.ADVISORY,
             "CREATE TYPE ... AS ENUM: values can be added but not removed or renamed in "
             "place.", "Eugene W13"),
    # data
    RuleInfo("ban-truncate", E, Effect.DATA_LOSS, "TRUNCATE of an existing table."),
    RuleInfo("ban-truncate-cascade", E, Effect.DATA_LOSS,
             "TRUNCATE ... CASCADE: also empties every table referencing it.", "squawk"),
    RuleInfo("ban-delete-without-where", E, Effect.DATA_LOSS,
             "DELETE without WHERE on an existing table."),
    RuleInfo("ban-update-without-where", E, Effect.DATA_LOSS,
             "UPDATE without WHERE on an existing table (a full backfill when it only sets "
             "columns added in the same change)."),
    RuleInfo("backfill-in-migration", W, Effect.BACKFILL,
             "UPDATE/DELETE with WHERE on an existing table: a backfill in the deploy path.",
             "strong_migrations"),
    RuleInfo("ban-duplicate-column-assignments", E, Effect.CANNOT_RUN,
             "A column named twice in UPDATE ... SET, an INSERT column list, CREATE TABLE, "
             "CREATE TABLE ... AS or a view's column list (names cut to 63 bytes): PostgreSQL "
             "rejects the statement.", "squawk"),
    RuleInfo("prefer-repack", W, Effect.REWRITE,
             "VACUUM FULL or CLUSTER: rewrites the table under ACCESS EXCLUSIVE.", "squawk"),
    # transactions and timeouts
    RuleInfo("transaction-nesting", E, Effect.CANNOT_RUN,
             "BEGIN inside an open transaction, COMMIT/ROLLBACK with none open, or "
             "transaction control inside the runner's per-file transaction.", "squawk"),
    RuleInfo("ban-uncommitted-transaction", E, Effect.CANNOT_RUN,
             "BEGIN with no COMMIT by the end of the file.", "squawk"),
    RuleInfo("require-timeout-settings", W, Effect.MISSING_TIMEOUT,
             "A statement that waits for a write-blocking lock on an existing table with no "
             "lock_timeout in effect (queued behind a long query, it blocks everyone).",
             "squawk require-lock-timeout, Eugene E9"),
    RuleInfo("holding-access-exclusive", W, Effect.ADVISORY,
             "A statement run while the transaction holds ACCESS EXCLUSIVE on an existing "
             "table: the table stays blocked for its duration too (once per transaction).",
             "Eugene E4"),
    RuleInfo("multiple-alter-table", I, Effect.ADVISORY,
             "A second ALTER TABLE on the same existing table in one file: the lock is queued "
             "for again, and scans or rewrites are repeated.", "Eugene W12"),
    RuleInfo("prefer-robust-stmts", I, Effect.ADVISORY,
             "Outside a transaction, a statement without IF [NOT] EXISTS cannot be re-run "
             "after a failure part way.", "squawk"),
    # the change as a whole
    RuleInfo("missing-down-script", W, Effect.ROLLBACK_DEFECT,
             "A migration with no rollback script."),
    RuleInfo("config-key-removed", W, Effect.INCOMPATIBLE, "A configuration key removed."),
    RuleInfo("config-critical-key-changed", W, Effect.INCOMPATIBLE,
             "A key matching the configured critical patterns changed."),
    RuleInfo("config-key-added", I, Effect.ADVISORY, "A configuration key added."),
    RuleInfo("dependency-removed", W, Effect.INCOMPATIBLE, "A dependency removed."),
    RuleInfo("dependency-downgraded", W, Effect.INCOMPATIBLE, "A dependency downgraded."),
    RuleInfo("dependency-major-upgrade", W, Effect.INCOMPATIBLE,
             "A major upgrade (for 0.x: a minor one), breaking by semver."),
    RuleInfo("dependency-version-unparsed", I, Effect.ADVISORY,
             "A dependency version the analysis cannot compare."),
    RuleInfo("infra-resource-destroyed", E, Effect.DATA_LOSS,
             "A Terraform plan deletes or replaces a resource (DATA_LOSS when stateful, "
             "else INCOMPATIBLE)."),
    RuleInfo("infra-plan-malformed", E, Effect.CANNOT_RUN,
             "An infrastructure plan that is not a Terraform `show -json` plan."),
    # the shadow-database verification (results of running the change, not of reading it:
    # a SQL comment cannot suppress them; guardians.yaml's `rules:` can re-grade them)
    RuleInfo("shadow-up-failed", E, Effect.VALIDATION_FAILED,
             "The up script fails on a scratch database built from the baseline."),
    RuleInfo("rollback-failed", E, Effect.ROLLBACK_DEFECT, "The down script fails."),
    RuleInfo("reapply-failed", E, Effect.ROLLBACK_DEFECT,
             "The up script fails when applied again after the rollback."),
    RuleInfo("missing-rollback", W, Effect.ROLLBACK_DEFECT,
             "No down script, for an up script that changes the schema (info otherwise)."),
    RuleInfo("rollback-misses-object", E, Effect.ROLLBACK_DEFECT,
             "After the rollback, an object of the baseline is missing."),
    RuleInfo("rollback-leaves-object", E, Effect.ROLLBACK_DEFECT,
             "After the rollback, an object the baseline did not have is left behind."),
    RuleInfo("rollback-changes-object", E, Effect.ROLLBACK_DEFECT,
             "After the rollback, an object differs from the baseline (type, default, "
             "nullability, definition)."),
    RuleInfo("rollback-reorders-columns", W, Effect.ROLLBACK_DEFECT,
             "After the rollback, a table's columns are in another order (harmless for "
             "queries that name their columns)."),
    RuleInfo("rollback-reformats-function", W, Effect.ROLLBACK_DEFECT,
             "After the rollback, a function's text differs in layout or comments only."),
    RuleInfo("shadow-skipped-statement", I, Effect.ADVISORY,
             "A statement acting outside the database (CREATE DATABASE, roles, ALTER SYSTEM) "
             "that the shadow check does not run on a shared server."),
    RuleInfo("shadow-baseline-failed", E, Effect.VALIDATION_FAILED,
             "The configured baseline (`migration.baseline` in guardians.yaml) does not apply "
             "on the scratch database, so the change could not be verified: blocked until the "
             "baseline is fixed and the change resubmitted."),
    RuleInfo("rewrite-observed", W, Effect.REWRITE,
             "The shadow run saw a statement rewrite a table that existed before the change "
             "(its relfilenode changed) where no rule predicted a rewrite. The shadow run also "
             "corrects the static findings: a predicted rewrite it did not see grades as the "
             "lock it is, and confirmed locks and rewrites say so.", "Eugene E10"),
)
VERIFICATION_RULES = frozenset({
    "shadow-up-failed", "rollback-failed", "reapply-failed", "missing-rollback",
    "rollback-misses-object", "rollback-leaves-object", "rollback-changes-object",
    "rollback-reorders-columns", "rollback-reformats-function", "shadow-skipped-statement",
    "shadow-baseline-failed", "rewrite-observed",
})

RULES: dict[str, RuleInfo] = {rule.id: rule for rule in _RULES}

ALIASES = {"prefer-timestamp-tz": "prefer-timestamptz", "require-lock-timeout":
           "require-timeout-settings", "require-statement-timeout": "require-timeout-settings"}
"""squawk's spellings that name the same check: accepted in suppressions."""

UNSUPPRESSIBLE = frozenset({"syntax-error", "unknown-suppression"}) | VERIFICATION_RULES


def rule(rule_id: str) -> RuleInfo:
    return RULES[rule_id]


def canonical(rule_id: str) -> str | None:
    """The rule id a suppression names, or None when no rule has that name."""
    name = ALIASES.get(rule_id, rule_id)
    return name if name in RULES else None
