"""Objects as a whole: creating, dropping, renaming and moving tables, views, functions,
types, schemas, triggers; enum values; materialized view refreshes.

Grading choices: dropping a table, schema or database loses data (DATA_LOSS); dropping a
view, function, type, sequence or extension breaks its users but loses no rows
(INCOMPATIBLE), or DATA_LOSS with CASCADE where that drops columns; and a view or function the
same change re-creates (the usual drop-and-recreate) is only ADVISORY.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from schemas.events.enums import LockMode, Severity
from services.migration.domain import data_rules
from services.migration.domain.change_state import Namespace
from services.migration.domain.findings import Effect
from services.migration.domain.index_rules import OUTSIDE_TRANSACTION_FIX, drop_indexes
from services.migration.domain.sql_nodes import (
    Node,
    ObjectName,
    children,
    dropped_names,
    flag,
    relation,
    strings,
    text,
    too_long,
    unwrap,
)

if TYPE_CHECKING:
    from services.migration.domain.sql_analysis import StatementReport

_DROPS: dict[str, tuple[str, Namespace, str]] = {
    # removeType -> (rule, namespace, what)
    "OBJECT_TABLE": ("ban-drop-table", Namespace.RELATION, "table"),
    "OBJECT_VIEW": ("ban-drop-view", Namespace.RELATION, "view"),
    "OBJECT_MATVIEW": ("ban-drop-view", Namespace.RELATION, "materialized view"),
    "OBJECT_SEQUENCE": ("ban-drop-sequence", Namespace.RELATION, "sequence"),
    "OBJECT_FUNCTION": ("ban-drop-function", Namespace.FUNCTION, "function"),
    "OBJECT_PROCEDURE": ("ban-drop-function", Namespace.FUNCTION, "procedure"),
    "OBJECT_ROUTINE": ("ban-drop-function", Namespace.FUNCTION, "routine"),
    "OBJECT_TYPE": ("ban-drop-type", Namespace.TYPE, "type"),
    "OBJECT_DOMAIN": ("ban-drop-domain", Namespace.TYPE, "domain"),
    "OBJECT_SCHEMA": ("ban-drop-schema", Namespace.SCHEMA, "schema"),
    "OBJECT_EXTENSION": ("ban-drop-extension", Namespace.SCHEMA, "extension"),
}
_RECREATABLE = {"OBJECT_VIEW", "OBJECT_MATVIEW", "OBJECT_FUNCTION", "OBJECT_PROCEDURE",
                "OBJECT_ROUTINE", "OBJECT_TYPE", "OBJECT_DOMAIN"}
_CASCADE_LOSES_DATA = {"OBJECT_TYPE", "OBJECT_DOMAIN", "OBJECT_EXTENSION", "OBJECT_SEQUENCE"}


def drop(node: Node, report: StatementReport) -> None:
    remove_type = text(node, "removeType") or ""
    names = dropped_names(node)
    if remove_type == "OBJECT_INDEX":
        drop_indexes(node, names, report)
        return
    if remove_type == "OBJECT_TRIGGER":
        _drop_trigger(names, report)
        return
    known = _DROPS.get(remove_type)
    if known is None:
        return
    rule_id, namespace, what = known
    cascade = text(node, "behavior") == "DROP_CASCADE"
    for name in names:
        key = name.name if namespace is Namespace.SCHEMA else name.key
        new = report.scope.is_new(namespace, key)
        report.scope.created.discard((namespace, key))
        if namespace is Namespace.RELATION:
            report.lock(name, LockMode.ACCESS_EXCLUSIVE, preexisting=not new)
            if remove_type == "OBJECT_TABLE":
                report.knowledge.drop_table(name.key)
        if new:  # created by this same change: nothing to lose, no one to break
            continue
        effect = None
        if cascade and remove_type in _CASCADE_LOSES_DATA:
            effect = Effect.DATA_LOSS
        message = (f"DROP {what.upper()} {name}" + (" CASCADE" if cascade else "") + ": "
                   + _consequence(remove_type, cascade))
        index = report.report(
            rule_id, message, target=name, effect=effect,
            lock=LockMode.ACCESS_EXCLUSIVE if namespace is Namespace.RELATION else None,
            fix=_drop_fix(what, name))
        if index is not None and remove_type in _RECREATABLE and not cascade:
            report.scope.dropped.setdefault((namespace, key), []).append(index)
        report.robust(not flag(node, "missing_ok"), f"DROP {what.upper()} {name} without IF "
                      "EXISTS", f"DROP {what.upper()} IF EXISTS {name}", name)


def _consequence(remove_type: str, cascade: bool) -> str:
    if remove_type in {"OBJECT_TABLE", "OBJECT_SCHEMA"}:
        return "its data is gone, and running clients that use it fail."
    if cascade and remove_type in _CASCADE_LOSES_DATA:
        return "CASCADE also drops the columns and objects that depend on it."
    return "clients and objects that use it fail."


def _drop_fix(what: str, name: ObjectName) -> str:
    if what in {"table", "schema"}:
        return (f"Ship code that no longer uses {name} first; rename it aside (or keep a "
                "backup) and drop it in a later release.")
    return (f"Drop {name} only after no release uses it, or re-create it in the same change "
            "(CREATE OR REPLACE where possible).")


def _drop_trigger(names: list[ObjectName], report: StatementReport) -> None:
    for name in names:  # DROP TRIGGER name ON table: the list is [schema, table, trigger]
        table = ObjectName(name.schema or "?")
        new = report.is_new(table)
        report.lock(table, LockMode.ACCESS_EXCLUSIVE, preexisting=not new)
        if not new:
            report.report("ban-drop-trigger", f"DROP TRIGGER {name.name} on {table}: what it "
                          "enforced or kept in sync stops.", target=table,
                          lock=LockMode.ACCESS_EXCLUSIVE,
                          fix="Make sure nothing relies on the trigger's effect any more.")


def drop_database(node: Node, report: StatementReport) -> None:
    name = text(node, "dbname") or "?"
    report.report("ban-drop-database", f"DROP DATABASE {name}: every table in it is gone.",
                  target=name, fix="Never from a migration; do it by hand, after a backup.")
    _outside_transaction(f"DROP DATABASE {name}", name, report)


def _outside_transaction(what: str, target: str, report: StatementReport) -> None:
    if report.session.in_transaction:
        report.report("cannot-run-in-transaction", f"{what} cannot run inside a transaction "
                      "block.", target=target, fix=OUTSIDE_TRANSACTION_FIX)


def rename(node: Node, report: StatementReport) -> None:
    kind = (text(node, "renameType") or "").removeprefix("OBJECT_")
    table = relation(node)
    new_name = text(node, "newname") or "?"
    if too_long(new_name):
        report.report("identifier-too-long", f"new name {new_name!r} is over 63 bytes: "
                      "PostgreSQL truncates it silently.", target=table,
                      fix="Choose a name of at most 63 bytes.")
    if table is not None and kind in {"TABLE", "COLUMN", "VIEW", "MATVIEW", "TABCONSTRAINT",
                                      "INDEX", "SEQUENCE"}:
        new = report.is_new(table)
        report.lock(table, LockMode.ACCESS_EXCLUSIVE, preexisting=not new)
        renamed = ObjectName(new_name, table.schema)
        if kind == "COLUMN":
            old = text(node, "subname") or "?"
            report.knowledge.rename_column(table.key, old, new_name)
            if not new:
                report.report("renaming-column", f"RENAME COLUMN {table}.{old} TO "
                              f"{new_name}: running clients still use the old name.",
                              target=table, lock=LockMode.ACCESS_EXCLUSIVE, fix=_RENAME_FIX)
            return
        if kind == "TABLE":
            report.knowledge.rename_table(table.key, renamed.key)
        if new:
            report.scope.created.add((Namespace.RELATION, renamed.key))
            return
        if kind == "TABLE":
            report.report("renaming-table", f"RENAME {table} TO {new_name}: running clients "
                          "still use the old name.", target=table,
                          lock=LockMode.ACCESS_EXCLUSIVE, fix=_RENAME_FIX)
        elif kind in {"VIEW", "MATVIEW"}:
            report.report("renaming-object", f"RENAME view {table} TO {new_name}: running "
                          "clients still query the old name.", target=table, fix=_RENAME_FIX)
        return
    subject = _renamed_subject(node)
    if kind == "SCHEMA":
        report.report("renaming-object", f"RENAME SCHEMA {text(node, 'subname')} TO "
                      f"{new_name}: every object in it moves.", target=text(node, "subname"),
                      fix=_RENAME_FIX)
    elif kind in {"FUNCTION", "PROCEDURE", "TYPE", "DOMAIN"}:
        report.report("renaming-object", f"RENAME {kind.lower()} {subject} TO {new_name}: "
                      "callers and columns using the old name break.", target=subject,
                      effect=Effect.INCOMPATIBLE, severity=Severity.WARNING, fix=_RENAME_FIX)


_RENAME_FIX = ("Add the new name alongside (a new column kept in sync, or a view under the new "
               "name), move the clients, and drop the old name in a later release.")


def _renamed_subject(node: Node) -> str:
    kind, inner = unwrap(node.get("object"))
    if kind == "ObjectWithArgs":
        return str(ObjectName.from_parts(strings(children(inner, "objname"))))
    if kind == "List":
        return str(ObjectName.from_parts(strings(children(inner, "items"))))
    return text(node, "subname") or "?"


def set_schema(node: Node, report: StatementReport) -> None:
    kind = (text(node, "objectType") or "").removeprefix("OBJECT_")
    table = relation(node)
    subject = str(table) if table else _renamed_subject(node)
    new = table is not None and report.is_new(table)
    if table is not None:
        report.lock(table, LockMode.ACCESS_EXCLUSIVE, preexisting=not new)
    breaking = kind in {"TABLE", "VIEW", "MATVIEW"}
    report.report("ban-set-schema", f"{kind.lower()} {subject} moves to schema "
                  f"{text(node, 'newschema')}: clients using the old qualified name fail.",
                  target=subject, preexisting=not new,
                  effect=None if breaking else Effect.INCOMPATIBLE, fix=_RENAME_FIX)


def create_view(node: Node, report: StatementReport) -> None:
    view = relation(node, "view")
    data_rules.named_twice(strings(children(node, "aliases")), "the view's column list",
                           report)
    if view is not None:
        report.scope.created.add((Namespace.RELATION, view.key))
        report.analysis.soften_drop(Namespace.RELATION, view.key, "by this change")


def create_function(node: Node, report: StatementReport) -> None:
    name = ObjectName.from_parts(strings(children(node, "funcname")))
    report.scope.created.add((Namespace.FUNCTION, name.key))
    report.analysis.soften_drop(Namespace.FUNCTION, name.key, "by this change")


def create_type(node: Node, report: StatementReport) -> None:
    parts = strings(children(node, "typeName"))
    name = ObjectName.from_parts(parts) if parts else relation(node, "typevar")
    if name is not None:
        report.scope.created.add((Namespace.TYPE, name.key))
        report.analysis.soften_drop(Namespace.TYPE, name.key, "by this change")


def create_enum(node: Node, report: StatementReport) -> None:
    """Eugene's W13."""
    create_type(node, report)
    name = ObjectName.from_parts(strings(children(node, "typeName")))
    report.report(
        "creating-enum", f"enum type {name}: a value can be added but never removed or "
        "renamed in place, and nothing can be stored alongside a value.", target=name,
        fix=f"A lookup table ({name.name}(name text PRIMARY KEY) and a foreign key to it), or "
            "a text column with a CHECK constraint that can be replaced NOT VALID.")


def create_schema(node: Node, report: StatementReport) -> None:
    name = text(node, "schemaname") or "?"
    report.scope.created.add((Namespace.SCHEMA, name))


def create_sequence(node: Node, report: StatementReport) -> None:
    name = relation(node, "sequence")
    if name is not None:
        report.scope.created.add((Namespace.RELATION, name.key))


def alter_enum(node: Node, report: StatementReport) -> None:
    name = ObjectName.from_parts(strings(children(node, "typeName")))
    new_type = report.is_new(name, Namespace.TYPE)
    value = text(node, "newVal")
    if text(node, "oldVal") is not None:
        report.report("renaming-object", f"RENAME VALUE {text(node, 'oldVal')!r} of {name}: "
                      "rows and clients using the old label break.", target=name,
                      preexisting=not new_type, effect=Effect.INCOMPATIBLE, fix=_RENAME_FIX)
        return
    if report.session.in_transaction and report.options.pg_version < 12:
        report.report("adding-enum-value", f"ALTER TYPE {name} ADD VALUE {value!r} cannot run "
                      "inside a transaction block before PostgreSQL 12.", target=name,
                      effect=Effect.CANNOT_RUN, severity=Severity.ERROR,
                      fix=OUTSIDE_TRANSACTION_FIX)
    elif not new_type:
        report.report("adding-enum-value", f"ALTER TYPE {name} ADD VALUE {value!r}: the new "
                      "value cannot be used until this transaction commits, and old releases "
                      "may not know it.", target=name,
                      fix="Use the new value only in a later migration or release.")
    if text(node, "newValNeighbor") is None and not new_type:
        report.report("require-enum-value-ordering", f"{value!r} is appended at the end of "
                      f"{name}: ORDER BY on the column sorts it last.", target=name,
                      fix=f"ALTER TYPE {name} ADD VALUE {value!r} BEFORE|AFTER '<existing>'")


def create_trigger(node: Node, report: StatementReport) -> None:
    table = relation(node)
    if table is None:
        return
    new = report.is_new(table)
    report.lock(table, LockMode.SHARE_ROW_EXCLUSIVE, preexisting=not new)
    if not new and not flag(node, "replace"):
        report.report("creating-trigger-on-existing-table", f"CREATE TRIGGER "
                      f"{text(node, 'trigname')} on {table}: SHARE ROW EXCLUSIVE (writes "
                      "wait), and every later write runs it.", target=table,
                      lock=LockMode.SHARE_ROW_EXCLUSIVE,
                      fix="Set lock_timeout first, and keep the trigger function cheap.")


def refresh_view(node: Node, report: StatementReport) -> None:
    view = relation(node)
    if view is None:
        return
    new = report.is_new(view)
    if flag(node, "concurrent"):
        report.lock(view, LockMode.EXCLUSIVE, preexisting=not new)
        return
    report.lock(view, LockMode.ACCESS_EXCLUSIVE, preexisting=not new)
    if not new and not flag(node, "skipData"):
        report.report("require-concurrent-refresh", f"REFRESH MATERIALIZED VIEW {view} "
                      "without CONCURRENTLY blocks every reader of the view until done.",
                      target=view, lock=LockMode.ACCESS_EXCLUSIVE,
                      fix=f"REFRESH MATERIALIZED VIEW CONCURRENTLY {view}; (needs a unique "
                          "index on the view).")


def cluster_wide(node: Node, report: StatementReport) -> None:
    _outside_transaction("CREATE DATABASE / ALTER SYSTEM", text(node, "dbname") or "?", report)


FIELDS_READ = {"ViewStmt": frozenset({"view", "aliases"}),
               "CreateFunctionStmt": frozenset({"is_procedure", "replace", "funcname"})}
"""All that `create_view` and `create_function` read of their statement, as the leading
fields of PostgreSQL's ViewStmt and CreateFunctionStmt structs (`sql_source.Wanted`): the
parser's output is decoded only that far (a view's query and a function's body are over a
third of Lemmy's parse trees). A handler here that reads another field must add it and the
fields before it."""

HANDLERS = {
    "DropStmt": drop, "DropdbStmt": drop_database, "RenameStmt": rename,
    "AlterObjectSchemaStmt": set_schema, "ViewStmt": create_view,
    "CreateFunctionStmt": create_function, "CreateEnumStmt": create_enum,
    "CompositeTypeStmt": create_type, "CreateRangeStmt": create_type,
    "CreateSchemaStmt": create_schema, "CreateSeqStmt": create_sequence,
    "AlterEnumStmt": alter_enum, "CreateTrigStmt": create_trigger,
    "RefreshMatViewStmt": refresh_view, "CreatedbStmt": cluster_wide,
    "AlterSystemStmt": cluster_wide,
}
