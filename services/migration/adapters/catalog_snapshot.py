"""Read a database's schema into a `CatalogSnapshot`: the queries half of the rollback check.

Every object is named and defined by PostgreSQL's own printers (pg_get_indexdef,
pg_get_constraintdef, pg_get_viewdef, pg_get_functiondef, pg_get_triggerdef, format_type),
never by OID. Objects that belong to an extension are left to the extension's own entry:
`DROP EXTENSION` removes them together. `"char"` columns are cast to text because asyncpg
returns that type as bytes.
"""

from __future__ import annotations

import asyncpg

from services.migration.domain.catalog import CatalogSnapshot, Column, ObjectKind, ObjectName

# Every query keeps to the user's schemas (PostgreSQL reserves the `pg_` prefix) and leaves
# out objects that belong to an extension (pg_depend deptype 'e').

_SCHEMAS = """
SELECT n.nspname AS name FROM pg_namespace n
WHERE n.nspname !~ '^(pg_|information_schema$)'
  AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_namespace'::regclass
                  AND d.objid = n.oid AND d.deptype = 'e')
"""

_RELATIONS = """
SELECT n.nspname || '.' || c.relname AS name, c.relkind::text AS kind,
       concat_ws(' ',
         CASE c.relkind WHEN 'p' THEN 'PARTITIONED' WHEN 'f' THEN 'FOREIGN' END,
         CASE c.relpersistence WHEN 'u' THEN 'UNLOGGED' END,
         'PARTITION BY ' || pg_get_partkeydef(c.oid),
         'PARTITION OF ' || (SELECT string_agg(i.inhparent::regclass::text, ', ')
                             FROM pg_inherits i WHERE i.inhrelid = c.oid AND c.relispartition)
           || ' ' || pg_get_expr(c.relpartbound, c.oid),
         'INHERITS ' || (SELECT string_agg(i.inhparent::regclass::text, ', ' ORDER BY i.inhseqno)
                         FROM pg_inherits i WHERE i.inhrelid = c.oid AND NOT c.relispartition),
         CASE WHEN c.relrowsecurity THEN 'ROW LEVEL SECURITY' END,
         'WITH ' || c.reloptions::text,
         CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid, true) END
       ) AS definition
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'f', 'v', 'm')
  AND n.nspname !~ '^(pg_|information_schema$)'
  AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                  AND d.objid = c.oid AND d.deptype = 'e')
"""

_COLUMNS = """
SELECT n.nspname || '.' || c.relname AS table_name, a.attname AS name,
       format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS not_null,
       pg_get_expr(ad.adbin, ad.adrelid) AS "default", a.attidentity::text AS identity,
       a.attgenerated::text AS generated,
       CASE WHEN a.attcollation <> t.typcollation THEN co.collname END AS collation
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
LEFT JOIN pg_collation co ON co.oid = a.attcollation
WHERE c.relkind IN ('r', 'p', 'f') AND a.attnum > 0 AND NOT a.attisdropped
  AND n.nspname !~ '^(pg_|information_schema$)'
  AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                  AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1, a.attnum
"""

# NOT NULL constraints (contype 'n', catalogued from PostgreSQL 18) are left out: nullability
# is compared on the column, which also keeps snapshots of 15 and 18 comparable. A
# partition's copy of its parent's constraint (conparentid) comes with the parent's.
_CONSTRAINTS = """
SELECT n.nspname || '.' || c.relname AS table_name, k.conname AS name,
       pg_get_constraintdef(k.oid) AS definition
FROM pg_constraint k
JOIN pg_class c ON c.oid = k.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE k.contype::text <> 'n' AND k.conparentid = 0
  AND n.nspname !~ '^(pg_|information_schema$)'
  AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                  AND d.objid = c.oid AND d.deptype = 'e')
"""

# An index that backs a PRIMARY KEY, UNIQUE or EXCLUDE constraint is reported through the
# constraint, so a missing key is one finding, not two; a partition's copy of its parent's
# index comes and goes with the parent's.
_INDEXES = """
SELECT n.nspname || '.' || ic.relname AS name, tn.nspname || '.' || tc.relname AS table_name,
       pg_get_indexdef(i.indexrelid) || CASE WHEN i.indisvalid THEN '' ELSE ' (INVALID)' END
         AS definition
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = ic.relnamespace
JOIN pg_class tc ON tc.oid = i.indrelid
JOIN pg_namespace tn ON tn.oid = tc.relnamespace
WHERE n.nspname !~ '^(pg_|information_schema$)'
  AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                  AND d.objid = ic.oid AND d.deptype = 'e')
  AND NOT EXISTS (SELECT FROM pg_constraint k
                  WHERE k.conindid = i.indexrelid AND k.contype IN ('p', 'u', 'x'))
  AND NOT EXISTS (SELECT FROM pg_inherits pi WHERE pi.inhrelid = i.indexrelid)
"""

# Identity columns' sequences are part of the column (its `identity`), so they are left out.
_SEQUENCES = """
SELECT n.nspname || '.' || c.relname AS name,
       format('%s START %s INCREMENT %s MINVALUE %s MAXVALUE %s CACHE %s%s',
              format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement, s.seqmin, s.seqmax,
              s.seqcache, CASE WHEN s.seqcycle THEN ' CYCLE' ELSE '' END)
         || coalesce(' OWNED BY ' || o.owner || '.' || o.attname, '') AS definition,
       o.owner
FROM pg_sequence s
JOIN pg_class c ON c.oid = s.seqrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN LATERAL (
  SELECT tn.nspname || '.' || tc.relname AS owner, a.attname, d.deptype
  FROM pg_depend d
  JOIN pg_class tc ON tc.oid = d.refobjid
  JOIN pg_namespace tn ON tn.oid = tc.relnamespace
  JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
    AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
  LIMIT 1
) o ON true
WHERE n.nspname !~ '^(pg_|information_schema$)'
  AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                  AND d.objid = c.oid AND d.deptype = 'e')
  AND o.deptype IS DISTINCT FROM 'i'
"""

# deptype 'i': a range type's constructors, made and dropped with the type.
_FUNCTIONS = """
SELECT n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')'
         AS name,
       CASE WHEN p.prokind = 'a' THEN
         (SELECT format('AGGREGATE SFUNC %s STYPE %s FINALFUNC %s INITCOND %s',
                        a.aggtransfn, format_type(a.aggtranstype, NULL), a.aggfinalfn,
                        a.agginitval)
          FROM pg_aggregate a WHERE a.aggfnoid = p.oid)
       ELSE pg_get_functiondef(p.oid) END AS definition
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname !~ '^(pg_|information_schema$)'
  AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                  AND d.objid = p.oid AND d.deptype IN ('e', 'i'))
"""

# Internal triggers implement foreign keys (reported as constraints); a partition's trigger
# cloned from its parent's (tgparentid) is the parent's trigger, reported once.
_TRIGGERS = """
SELECT n.nspname || '.' || c.relname AS table_name, t.tgname AS name,
       pg_get_triggerdef(t.oid)
         || CASE t.tgenabled WHEN 'O' THEN '' WHEN 'D' THEN ' (DISABLED)'
              ELSE ' (ENABLED ' || t.tgenabled::text || ')' END AS definition
FROM pg_trigger t
JOIN pg_class c ON c.oid = t.tgrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE NOT t.tgisinternal AND t.tgparentid = 0
  AND n.nspname !~ '^(pg_|information_schema$)'
"""

# A table's row type and an array type come with their table or element type: left out.
_TYPES = """
SELECT n.nspname || '.' || t.typname AS name, t.typtype::text AS kind,
  CASE t.typtype
    WHEN 'e' THEN (SELECT string_agg(quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder)
                   FROM pg_enum e WHERE e.enumtypid = t.oid)
    WHEN 'd' THEN concat_ws(' ', format_type(t.typbasetype, t.typtypmod),
                    CASE WHEN t.typnotnull THEN 'NOT NULL' END, 'DEFAULT ' || t.typdefault,
                    (SELECT string_agg(k.conname || ' ' || pg_get_constraintdef(k.oid), ' '
                                       ORDER BY k.conname)
                     FROM pg_constraint k WHERE k.contypid = t.oid AND k.contype::text <> 'n'))
    WHEN 'c' THEN (SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod),
                                     ', ' ORDER BY a.attnum)
                   FROM pg_attribute a
                   WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped)
    WHEN 'r' THEN (SELECT 'RANGE OF ' || format_type(r.rngsubtype, NULL)
                   FROM pg_range r WHERE r.rngtypid = t.oid)
    ELSE 'BASE TYPE'
  END AS definition
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE t.typtype IN ('b', 'c', 'd', 'e', 'r')
  AND n.nspname !~ '^(pg_|information_schema$)'
  AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_type'::regclass
                  AND d.objid = t.oid AND d.deptype = 'e')
  AND (t.typrelid = 0 OR (SELECT c.relkind FROM pg_class c WHERE c.oid = t.typrelid) = 'c')
  AND NOT EXISTS (SELECT 1 FROM pg_type el WHERE el.oid = t.typelem AND el.typarray = t.oid)
"""

_EXTENSIONS = """
SELECT e.extname AS name, e.extversion || ' SCHEMA ' || n.nspname AS definition
FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
"""

_RELATION_KINDS = {
    "r": ObjectKind.TABLE, "p": ObjectKind.TABLE, "f": ObjectKind.TABLE,
    "v": ObjectKind.VIEW, "m": ObjectKind.MATERIALIZED_VIEW,
}
_TYPE_KINDS = {"e": ObjectKind.ENUM, "d": ObjectKind.DOMAIN}


async def take_snapshot(conn: asyncpg.Connection) -> CatalogSnapshot:
    """Every object in the database's non-system schemas. Run it inside one transaction (or
    with nothing else running): the queries must see one state of the catalog."""
    objects: dict[ObjectName, str] = {}
    for row in await conn.fetch(_SCHEMAS):
        objects[ObjectName(ObjectKind.SCHEMA, row["name"])] = row["name"]
    for row in await conn.fetch(_RELATIONS):
        objects[ObjectName(_RELATION_KINDS[row["kind"]], row["name"])] = row["definition"]
    for row in await conn.fetch(_CONSTRAINTS):
        name = ObjectName(ObjectKind.CONSTRAINT, row["name"], row["table_name"])
        objects[name] = row["definition"]
    for row in await conn.fetch(_INDEXES):
        name = ObjectName(ObjectKind.INDEX, row["name"], owner=row["table_name"])
        objects[name] = row["definition"]
    for row in await conn.fetch(_SEQUENCES):
        objects[ObjectName(ObjectKind.SEQUENCE, row["name"], owner=row["owner"])] = (
            row["definition"])
    for row in await conn.fetch(_FUNCTIONS):
        objects[ObjectName(ObjectKind.FUNCTION, row["name"])] = row["definition"]
    for row in await conn.fetch(_TRIGGERS):
        name = ObjectName(ObjectKind.TRIGGER, row["name"], row["table_name"])
        objects[name] = row["definition"]
    for row in await conn.fetch(_TYPES):
        kind = _TYPE_KINDS.get(row["kind"], ObjectKind.TYPE)
        objects[ObjectName(kind, row["name"])] = row["definition"]
    for row in await conn.fetch(_EXTENSIONS):
        objects[ObjectName(ObjectKind.EXTENSION, row["name"])] = row["definition"]
    columns: dict[str, list[Column]] = {}
    for row in await conn.fetch(_COLUMNS):
        columns.setdefault(row["table_name"], []).append(Column(
            name=row["name"], type=row["type"], not_null=row["not_null"],
            default=row["default"], identity=row["identity"], generated=row["generated"],
            collation=row["collation"],
        ))
    return CatalogSnapshot(objects, {table: tuple(cols) for table, cols in columns.items()})
