"""The catalog diff behind rollback verification: what it reports, how it grades it, and the
noise it must not report."""

from __future__ import annotations

import pytest

from schemas.events.migration import Severity
from services.migration.domain.catalog import (
    CatalogSnapshot,
    Change,
    Column,
    ObjectKind,
    ObjectName,
    additions_only,
    compare,
    creation_time_noise,
)
from services.migration.domain.findings import Effect

USERS = "public.users"
ID = Column("id", "bigint", not_null=True)
EMAIL = Column("email", "text")
NAME = Column("name", "text", not_null=True, default="''::text")

OBJECTS: dict[ObjectKind, tuple[ObjectName, str, str]] = {
    # A schema is there or not: it has no definition that could change.
    ObjectKind.SCHEMA: (ObjectName(ObjectKind.SCHEMA, "billing"), "billing", "billing"),
    ObjectKind.TABLE: (ObjectName(ObjectKind.TABLE, "public.orders"), "",
                       "UNLOGGED"),
    ObjectKind.CONSTRAINT: (ObjectName(ObjectKind.CONSTRAINT, "users_email_check", USERS),
                            "CHECK ((email <> ''::text))", "CHECK ((length(email) > 3))"),
    ObjectKind.INDEX: (ObjectName(ObjectKind.INDEX, "public.users_email_idx", owner=USERS),
                       "CREATE INDEX users_email_idx ON public.users USING btree (email)",
                       "CREATE INDEX users_email_idx ON public.users USING hash (email)"),
    ObjectKind.SEQUENCE: (ObjectName(ObjectKind.SEQUENCE, "public.ticket_seq"),
                          "bigint START 1 INCREMENT 1", "bigint START 1 INCREMENT 10"),
    ObjectKind.VIEW: (ObjectName(ObjectKind.VIEW, "public.active_users"),
                      " SELECT id\n   FROM users;", " SELECT id\n   FROM users\n  WHERE id > 0;"),
    ObjectKind.MATERIALIZED_VIEW: (ObjectName(ObjectKind.MATERIALIZED_VIEW, "public.counts"),
                                   " SELECT count(*) AS n\n   FROM users;",
                                   " SELECT count(id) AS n\n   FROM users;"),
    ObjectKind.FUNCTION: (ObjectName(ObjectKind.FUNCTION, "public.touch()"),
                          "CREATE FUNCTION public.touch() AS $f$ SELECT 1 $f$",
                          "CREATE FUNCTION public.touch() AS $f$ SELECT 2 $f$"),
    ObjectKind.TRIGGER: (ObjectName(ObjectKind.TRIGGER, "users_touch", USERS),
                         "CREATE TRIGGER users_touch BEFORE UPDATE ON public.users",
                         "CREATE TRIGGER users_touch AFTER UPDATE ON public.users"),
    ObjectKind.TYPE: (ObjectName(ObjectKind.TYPE, "public.money_range"),
                      "RANGE OF numeric", "RANGE OF integer"),
    ObjectKind.ENUM: (ObjectName(ObjectKind.ENUM, "public.mood"),
                      "'sad', 'ok', 'happy'", "'sad', 'happy', 'ok'"),
    ObjectKind.DOMAIN: (ObjectName(ObjectKind.DOMAIN, "public.email"),
                        "text NOT NULL", "text"),
    ObjectKind.EXTENSION: (ObjectName(ObjectKind.EXTENSION, "pg_trgm"),
                           "1.6 SCHEMA public", "1.5 SCHEMA public"),
}


def snapshot(objects: dict[ObjectName, str] | None = None,
             columns: dict[str, tuple[Column, ...]] | None = None) -> CatalogSnapshot:
    base = {ObjectName(ObjectKind.TABLE, USERS): ""}
    return CatalogSnapshot({**base, **(objects or {})}, columns or {USERS: (ID, EMAIL)})


@pytest.mark.parametrize("kind", list(OBJECTS))
def test_an_object_the_rollback_leaves_behind_is_an_error_naming_it(kind: ObjectKind) -> None:
    name, definition, _ = OBJECTS[kind]
    [difference] = compare(snapshot(), snapshot({name: definition}))
    assert (difference.object, difference.change) == (name, Change.LEFT_BEHIND)
    assert difference.severity is Severity.ERROR
    assert str(name) in difference.message


@pytest.mark.parametrize("kind", list(OBJECTS))
def test_an_object_the_rollback_loses_is_an_error_naming_it(kind: ObjectKind) -> None:
    name, definition, _ = OBJECTS[kind]
    [difference] = compare(snapshot({name: definition}), snapshot())
    assert (difference.object, difference.change) == (name, Change.MISSING)
    assert difference.severity is Severity.ERROR


@pytest.mark.parametrize("kind", [k for k in OBJECTS if k is not ObjectKind.SCHEMA])
def test_an_object_the_rollback_changes_is_an_error_with_both_definitions(
    kind: ObjectKind,
) -> None:
    name, before, after = OBJECTS[kind]
    [difference] = compare(snapshot({name: before}), snapshot({name: after}))
    assert (difference.change, difference.severity) == (Change.CHANGED, Severity.ERROR)
    assert (difference.before, difference.after) == (before, after)


def test_identical_catalogs_have_no_differences() -> None:
    assert compare(snapshot(), snapshot()) == ()


def test_objects_are_named_the_way_people_name_them() -> None:
    assert str(ObjectName(ObjectKind.COLUMN, "email", USERS)) == "table public.users column email"
    assert str(OBJECTS[ObjectKind.CONSTRAINT][0]) == (
        "table public.users constraint users_email_check")
    assert str(OBJECTS[ObjectKind.INDEX][0]) == "index public.users_email_idx on public.users"
    assert str(OBJECTS[ObjectKind.ENUM][0]) == "enum public.mood"


@pytest.mark.parametrize(("before", "after", "change"), [
    ((ID, EMAIL), (ID,), Change.MISSING),
    ((ID,), (ID, EMAIL), Change.LEFT_BEHIND),
    ((ID, EMAIL), (ID, Column("email", "character varying(255)")), Change.CHANGED),
    ((ID, EMAIL), (ID, Column("email", "text", not_null=True)), Change.CHANGED),
    ((ID, EMAIL), (ID, Column("email", "text", default="'x'::text")), Change.CHANGED),
    ((ID, EMAIL), (Column("id", "bigint", not_null=True, identity="a"), EMAIL), Change.CHANGED),
])
def test_a_column_missing_extra_or_changed_is_an_error_naming_the_column(
    before: tuple[Column, ...], after: tuple[Column, ...], change: Change,
) -> None:
    [difference] = compare(snapshot(columns={USERS: before}), snapshot(columns={USERS: after}))
    assert (difference.change, difference.severity) == (change, Severity.ERROR)
    assert str(difference.object) in {"table public.users column email",
                                      "table public.users column id"}


def test_a_column_re_added_last_is_only_a_harmless_column_order_warning() -> None:
    differences = compare(snapshot(columns={USERS: (ID, EMAIL, NAME)}),
                          snapshot(columns={USERS: (ID, NAME, EMAIL)}))
    [difference] = differences
    assert (difference.change, difference.severity) == (Change.REORDERED, Severity.WARNING)
    assert difference.harmless
    assert (difference.before, difference.after) == ("id, email, name", "id, name, email")
    assert difference.detail == "moved: email"
    assert "moved: email" in difference.message
    assert difference.to_finding().fix is None


def test_column_order_is_judged_on_the_columns_both_sides_have() -> None:
    differences = compare(snapshot(columns={USERS: (ID, EMAIL, NAME)}),
                          snapshot(columns={USERS: (ID, NAME)}))
    assert [d.change for d in differences] == [Change.MISSING]


def test_real_defects_come_before_harmless_differences() -> None:
    index, definition, _ = OBJECTS[ObjectKind.INDEX]
    differences = compare(snapshot({index: definition}, {USERS: (ID, EMAIL, NAME)}),
                          snapshot(columns={USERS: (ID, NAME, EMAIL)}))
    assert [d.severity for d in differences] == [Severity.ERROR, Severity.WARNING]


def test_a_missing_table_is_reported_once_not_once_per_column_index_and_trigger() -> None:
    orders = "public.orders"
    before = snapshot({
        ObjectName(ObjectKind.TABLE, orders): "",
        ObjectName(ObjectKind.INDEX, "public.orders_idx", owner=orders): "CREATE INDEX ...",
        ObjectName(ObjectKind.CONSTRAINT, "orders_pkey", orders): "PRIMARY KEY (id)",
        ObjectName(ObjectKind.TRIGGER, "orders_touch", orders): "CREATE TRIGGER ...",
        ObjectName(ObjectKind.SEQUENCE, "public.orders_id_seq", owner=orders): "integer",
    }, {USERS: (ID, EMAIL), orders: (ID,)})
    [difference] = compare(before, snapshot())
    assert difference.object == ObjectName(ObjectKind.TABLE, orders)


def test_a_view_whose_text_embeds_its_creation_time_is_not_a_difference() -> None:
    view = ObjectName(ObjectKind.VIEW, "public.recent_posts")
    old = (" SELECT id\n   FROM post\n  WHERE (published > ('2024-01-02 10:11:12.345678'"
           "::timestamp without time zone - '2 days'::interval));")
    new = old.replace("2024-01-02 10:11:12.345678", "2026-11-28 09:00:00.5")
    baseline, current = snapshot({view: old}), snapshot({view: new})
    assert compare(baseline, current) == ()
    assert creation_time_noise(baseline, current) == ("view public.recent_posts",)


def test_a_column_default_folded_from_now_is_not_a_difference() -> None:
    def stamped(at: str) -> Column:
        return Column("created", "timestamp with time zone", default=f"'{at}'::timestamp "
                      "with time zone")

    baseline = snapshot(columns={USERS: (ID, stamped("2024-01-02 10:11:12+00"))})
    current = snapshot(columns={USERS: (ID, stamped("2026-11-28 09:00:00.25+00"))})
    assert compare(baseline, current) == ()


def test_a_view_that_changes_a_real_constant_is_still_a_difference() -> None:
    view = ObjectName(ObjectKind.VIEW, "public.adults")
    [difference] = compare(snapshot({view: " SELECT id\n   FROM users\n  WHERE age > 18;"}),
                           snapshot({view: " SELECT id\n   FROM users\n  WHERE age > 21;"}))
    assert difference.change is Change.CHANGED


def test_a_view_re_created_with_select_star_in_the_new_column_order_is_harmless() -> None:
    view = ObjectName(ObjectKind.VIEW, "public.user_alias")
    [difference] = compare(snapshot({view: " SELECT id,\n    email,\n    name\n   FROM users;"}),
                           snapshot({view: " SELECT id,\n    name,\n    email\n   FROM users;"}))
    assert (difference.change, difference.severity) == (Change.REORDERED, Severity.WARNING)


def test_a_view_that_gains_columns_is_an_error_that_lists_them() -> None:
    view = ObjectName(ObjectKind.VIEW, "public.user_alias")
    [difference] = compare(snapshot({view: " SELECT id\n   FROM users;"}),
                           snapshot({view: " SELECT id,\n    inbox_url\n   FROM users;"}))
    assert (difference.change, difference.severity) == (Change.CHANGED, Severity.ERROR)
    assert difference.detail == "columns added: inbox_url"


def test_a_function_re_created_with_other_layout_and_comments_is_harmless() -> None:
    function = ObjectName(ObjectKind.FUNCTION, "public.set_updated_at()")
    old = ("CREATE OR REPLACE FUNCTION public.set_updated_at()\n RETURNS trigger\n"
           " LANGUAGE plpgsql\nAS $function$\n            BEGIN\n"
           "                NEW.updated_at := current_timestamp; -- touch\n"
           "                RETURN NEW;\n            END\n            $function$\n")
    new = ("CREATE OR REPLACE FUNCTION public.set_updated_at()\n RETURNS trigger\n"
           " LANGUAGE plpgsql\nAS $function$\nbegin\n    NEW.updated_at := current_timestamp;\n"
           "    RETURN NEW;\nend\n$function$\n")
    [difference] = compare(snapshot({function: old}), snapshot({function: new}))
    assert (difference.change, difference.severity) == (Change.REFORMATTED, Severity.WARNING)
    changed = new.replace("current_timestamp", "clock_timestamp()")
    [difference] = compare(snapshot({function: old}), snapshot({function: changed}))
    assert difference.change is Change.CHANGED


def test_a_string_literal_is_compared_exactly_even_inside_a_function_body() -> None:
    function = ObjectName(ObjectKind.FUNCTION, "public.greet()")
    old = "CREATE FUNCTION public.greet() AS $f$ SELECT 'a  b' $f$"
    [difference] = compare(snapshot({function: old}),
                           snapshot({function: old.replace("'a  b'", "'a b'")}))
    assert difference.change is Change.CHANGED


def test_a_difference_becomes_a_rollback_defect_finding_that_names_its_object() -> None:
    name, definition, _ = OBJECTS[ObjectKind.INDEX]
    [difference] = compare(snapshot({name: definition}), snapshot())
    finding = difference.to_finding("0042/down.sql")
    assert finding.effect is Effect.ROLLBACK_DEFECT
    assert (finding.rule, finding.severity) == ("rollback-misses-object", Severity.ERROR)
    assert finding.target == "index public.users_email_idx on public.users"
    assert finding.file == "0042/down.sql"


def test_additions_only_tells_what_a_down_script_could_simply_drop() -> None:
    name, definition, _ = OBJECTS[ObjectKind.INDEX]
    assert additions_only(compare(snapshot(), snapshot({name: definition})))
    assert not additions_only(compare(snapshot({name: definition}), snapshot()))
