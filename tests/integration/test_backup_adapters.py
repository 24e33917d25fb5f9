"""The backup adapters against the real restic and the real PostgreSQL: a database dumped
into a repository and restored into a scratch database matches its manifest, files round
trip, damage is found, data deduplicates, a killed backup leaves no snapshot, and no
password ever shows in an error or a log."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import secrets
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import asyncpg
import psutil
import pytest

from services.backup.adapters.files import file_manifest, restored_root
from services.backup.adapters.postgres import (
    DatabaseError,
    PgClientError,
    check_client,
    create_scratch_database,
    database_manifest,
    drop_database,
    dump_command,
    libpq_env,
    pinned_snapshot,
    restore_command,
)
from services.backup.adapters.restic import Restic, ResticError
from services.backup.domain.manifest import compare

pytestmark = pytest.mark.integration

SOURCE_PREFIX = "guardians_bktest_"
PASSWORD = "Sup3r-s3cret/pa$$:w@rd"
"""A database password with every character a URL or a shell could mangle."""
RESTIC_KEY = "restic-key-" + secrets.token_hex(8)

SCHEMA = """
CREATE SCHEMA billing;
CREATE TYPE billing.status AS ENUM ('new', 'paid', 'refunded');
CREATE TABLE billing.customers (
    id integer PRIMARY KEY,
    name text NOT NULL UNIQUE,
    country char(2)
);
CREATE TABLE billing.orders (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id integer REFERENCES billing.customers (id),
    dropped_later text,
    note text,
    amount numeric(12, 2) NOT NULL DEFAULT 0,
    ratio double precision,
    created timestamptz NOT NULL,
    payload bytea,
    labels text[],
    status billing.status NOT NULL DEFAULT 'new',
    doc jsonb,
    total numeric GENERATED ALWAYS AS (amount * 2) STORED
);
ALTER TABLE billing.orders DROP COLUMN dropped_later;
CREATE INDEX orders_created ON billing.orders (created DESC) WHERE note IS NOT NULL;
CREATE VIEW billing.paid AS SELECT id, amount FROM billing.orders WHERE status = 'paid';
CREATE SEQUENCE billing.invoice_no START 1000;
CREATE TABLE public.events (at date NOT NULL, what text) PARTITION BY RANGE (at);
CREATE TABLE public.events_2026 PARTITION OF public.events
    FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE public.empty_one (x int);
CREATE FUNCTION billing.touch() RETURNS trigger LANGUAGE plpgsql AS
    $$ BEGIN NEW.note := coalesce(NEW.note, 'touched'); RETURN NEW; END $$;
CREATE TRIGGER orders_touch BEFORE UPDATE ON billing.orders
    FOR EACH ROW WHEN (NEW.amount < 0) EXECUTE FUNCTION billing.touch();
"""

DATA = """
INSERT INTO billing.customers
SELECT i, 'customer ' || i || CASE WHEN i % 3 = 0 THEN ' Grüße 東京 🚀' ELSE '' END,
       CASE WHEN i % 5 = 0 THEN NULL ELSE 'DE' END
FROM generate_series(1, 100) AS i;
INSERT INTO billing.orders (customer_id, note, amount, ratio, created, payload, labels,
                            status, doc)
SELECT 1 + i % 100,
       CASE WHEN i % 7 = 0 THEN NULL ELSE 'note ' || i || ' ünïcødé "quoted", (paren)' END,
       (i % 1000) / 7.0, CASE WHEN i % 11 = 0 THEN NULL ELSE i / 3.0 END,
       timestamptz '2026-01-01 00:00:00+00' + i * interval '17 minutes',
       CASE WHEN i % 13 = 0 THEN NULL ELSE decode(md5(i::text) || '00ff', 'hex') END,
       ARRAY['a' || i, NULL, 'b,c'],
       (ARRAY['new', 'paid', 'refunded'])[1 + i % 3]::billing.status,
       jsonb_build_object('i', i, 'tags', jsonb_build_array('x', i % 4))
FROM generate_series(1, 10000) AS i;
INSERT INTO public.events SELECT date '2026-01-01' + i % 300, 'event ' || i
FROM generate_series(1, 500) AS i;
SELECT setval('billing.invoice_no', 1234);
"""


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture
def restic(tmp_path: Path) -> Restic:
    return Restic(str(tmp_path / "repo"), RESTIC_KEY, cache_dir=tmp_path / "cache")


@pytest.fixture
async def repo(restic: Restic) -> Restic:
    """A repository of the test's own (for tests that damage, lock or measure it)."""
    await restic.ensure_repository()
    return restic


@pytest.fixture(scope="module")
async def shared(tmp_path_factory: pytest.TempPathFactory) -> Restic:
    """One repository for the tests that only add snapshots under tags of their own
    (an init costs seconds: restic calibrates its key derivation)."""
    base = tmp_path_factory.mktemp("shared")
    restic = Restic(str(base / "repo"), RESTIC_KEY, cache_dir=base / "cache")
    await restic.ensure_repository()
    return restic


@pytest.fixture
async def source_url(database_url: str) -> AsyncIterator[str]:
    """A database of its own, with the schema and 10k orders, dropped afterwards."""
    url = await create_scratch_database(database_url, prefix=SOURCE_PREFIX)
    try:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(SCHEMA)
            await conn.execute(DATA)
        finally:
            await conn.close()
        yield url
    finally:
        await drop_database(database_url, url, prefix=SOURCE_PREFIX)


@pytest.fixture
async def scratch_url(database_url: str) -> AsyncIterator[str]:
    url = await create_scratch_database(database_url)
    try:
        yield url
    finally:
        await drop_database(database_url, url)


async def execute(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def back_up_database(repo: Restic, url: str, name: str, run: str) -> str:
    await check_client(url, "pg_dump")
    argv, env = dump_command(url)
    result = await repo.backup_from(argv, env, f"{name}.dump",
                                    ["service=shop", f"source={name}", "kind=database",
                                     f"run={run}"])
    assert result.snapshot.paths == (f"/{name}.dump",)
    assert result.total_bytes > 1_000_000 and result.files == 1
    return result.snapshot.id


# -- 1. database round trip ---------------------------------------------------------------


async def test_database_round_trip_matches_its_manifest(
        shared: Restic, source_url: str, scratch_url: str) -> None:
    expected = await database_manifest(source_url)
    assert expected.tables["billing.orders"].rows == 10000
    assert expected.tables["public.events_2026"].rows == 500
    assert "public.events" not in expected.tables  # a partitioned parent holds no rows
    assert expected.tables["public.empty_one"].rows == 0
    snapshot_id = await back_up_database(shared, source_url, "orders-db", "r1")

    argv, env = restore_command(scratch_url)
    seconds = await shared.dump_into(snapshot_id, "orders-db.dump", argv, env)
    assert seconds > 0
    restored = await database_manifest(scratch_url)
    assert compare(expected, restored) == []
    assert restored.digest() == expected.digest()

    # The same rows in another order: the same checksum.
    await execute(scratch_url, "CREATE TABLE billing.reordered AS"
                               " SELECT * FROM billing.orders ORDER BY id DESC")
    reordered = await database_manifest(scratch_url)
    assert reordered.tables["billing.reordered"] == reordered.tables["billing.orders"]
    await execute(scratch_url, "DROP TABLE billing.reordered")

    # One altered row, then one more index: each is reported, by name.
    await execute(scratch_url, "UPDATE billing.orders SET note = 'tampered' WHERE id = 5000")
    tampered = compare(expected, await database_manifest(scratch_url))
    assert [d.item for d in tampered] == ["table billing.orders checksum"]
    await execute(scratch_url, "CREATE INDEX extra ON billing.customers (country)")
    assert [d.item for d in compare(expected, await database_manifest(scratch_url))] == [
        "table billing.orders checksum", "schema"]


async def test_restore_over_an_existing_database_with_clean(
        shared: Restic, source_url: str, scratch_url: str) -> None:
    snapshot_id = await back_up_database(shared, source_url, "orders-db", "r1")
    argv, env = restore_command(scratch_url)
    await shared.dump_into(snapshot_id, "orders-db.dump", argv, env)
    await execute(scratch_url, "DELETE FROM billing.orders WHERE id > 10")
    with pytest.raises(ResticError) as failed:  # without --clean: the objects exist
        await shared.dump_into(snapshot_id, "orders-db.dump", argv, env)
    assert failed.value.failed == "pg_restore" and "already exists" in str(failed.value)
    argv, env = restore_command(scratch_url, clean=True)
    await shared.dump_into(snapshot_id, "orders-db.dump", argv, env)
    assert compare(await database_manifest(source_url),
                   await database_manifest(scratch_url)) == []


async def test_a_pinned_snapshot_makes_manifest_and_dump_agree(
        shared: Restic, source_url: str, scratch_url: str) -> None:
    async with pinned_snapshot(source_url) as snapshot:
        # Writes after the snapshot are in neither the manifest nor the dump.
        await execute(source_url, "INSERT INTO billing.customers VALUES (1000, 'late', NULL)")
        expected = await database_manifest(source_url, snapshot=snapshot)
        argv, env = dump_command(source_url, snapshot=snapshot)
        result = await shared.backup_from(argv, env, "db.dump", ["source=db", "run=p"])
    assert expected.tables["billing.customers"].rows == 100
    argv, env = restore_command(scratch_url)
    await shared.dump_into(result.snapshot.id, "db.dump", argv, env)
    assert compare(expected, await database_manifest(scratch_url)) == []
    live = await database_manifest(source_url)
    assert live.tables["billing.customers"].rows == 101


async def test_an_old_pg_dump_is_refused_with_the_reason(
        source_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    old = Path("/usr/lib/postgresql/15/bin")
    if not (old / "pg_dump").exists():
        pytest.skip("no PostgreSQL 15 client installed")
    monkeypatch.setenv("GUARDIANS_PG_BIN_DIR", str(old))
    with pytest.raises(PgClientError, match=r"pg_dump 15 .* major version must be >= "):
        await check_client(source_url)


# -- 2. files ------------------------------------------------------------------------------


async def test_paths_round_trip(shared: Restic, tmp_path: Path) -> None:
    config = tmp_path / "srv" / "shop" / "config"
    (config / "conf.d").mkdir(parents=True)
    (config / "app.yaml").write_text("db: orders\nname: Grüße\n")
    (config / "conf.d" / "big.bin").write_bytes(os.urandom(300_000))
    (config / "current").symlink_to("conf.d/big.bin")
    (config / "skip.tmp").write_text("excluded")
    key = tmp_path / "srv" / "keys" / "service.pem"
    key.parent.mkdir(parents=True)
    key.write_text("-----BEGIN KEY-----\n")
    paths = [config, key]
    expected = file_manifest(paths)
    del expected.files["config/skip.tmp"]

    result = await shared.backup_paths(paths, ["service=shop", "source=config", "run=f1"],
                                     exclude=["*.tmp"])
    assert result.files == 3  # restic counts regular files; the link is not one
    target = tmp_path / "restore"
    assert await shared.restore(result.snapshot.id, target) > 0
    restored = file_manifest([restored_root(target, p) for p in paths])
    assert compare(expected, restored) == []
    assert [s.id for s in await shared.snapshots(["source=config", "run=f1"])] == [
        result.snapshot.id]
    assert await shared.snapshots(["source=config", "run=other"]) == []


# -- 3. damage -----------------------------------------------------------------------------


async def test_a_flipped_byte_in_a_pack_fails_the_check(repo: Restic, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "blob").write_bytes(os.urandom(2_000_000))
    await repo.backup_paths([data], ["source=data"])
    assert (await repo.check())[0] is True
    assert (await repo.check(subset="1/1"))[0] is True

    pack = max((p for p in (tmp_path / "repo" / "data").rglob("*") if p.is_file()),
               key=lambda p: p.stat().st_size)
    pack.chmod(0o600)
    raw = bytearray(pack.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    pack.write_bytes(bytes(raw))

    ok, output = await repo.check(subset="1/1")
    assert ok is False
    assert "does not match" in output or "error" in output.lower()


# -- 4. deduplication ----------------------------------------------------------------------


async def test_a_small_change_adds_little(repo: Restic, tmp_path: Path) -> None:
    data = tmp_path / "userdata"
    data.mkdir()
    for i in range(100):
        (data / f"f{i:03}.bin").write_bytes(os.urandom(200_000))
    first = await repo.backup_paths([data], ["source=userdata", "run=d1"])
    (data / "f042.bin").write_bytes(os.urandom(200_000))  # 1% of the set
    second = await repo.backup_paths([data], ["source=userdata", "run=d2"])
    assert first.added_bytes > 19_000_000
    assert second.added_bytes < first.added_bytes / 20
    assert second.total_bytes == first.total_bytes == 20_000_000
    size = await repo.stats()
    assert 20_000_000 < size < 23_000_000


async def test_forget_keeps_each_sources_snapshots_apart(shared: Restic) -> None:
    producer = [sys.executable, "-c", "print('x')"]
    for source, runs in (("a", 3), ("b", 1)):
        for run in range(runs):
            await shared.backup_from(producer, {}, f"{source}.dump",
                                   ["service=shop", f"source={source}", f"run={run}"])
    kept_a = (await shared.snapshots(["source=a"]))[-1]
    removed = await shared.forget(1, 0, 0, 0, ["service=shop", "source=a"])
    assert len(removed) == 2 and kept_a.id not in removed
    assert [s.id for s in await shared.snapshots(["source=a"])] == [kept_a.id]
    assert len(await shared.snapshots(["source=b"])) == 1
    with pytest.raises(ValueError, match="tags of one source"):
        await shared.forget(1, 0, 0, 0, [])


# -- 5. a killed backup --------------------------------------------------------------------

SLOW_PRODUCER = (sys.executable, "-c", """
import sys, time
for i in range(400):
    sys.stdout.buffer.write(bytes([i % 251]) * 65536)
    sys.stdout.flush()
    time.sleep(0.02)
""")
FAST_PRODUCER = (sys.executable, "-c", """
import sys
for i in range(400):
    sys.stdout.buffer.write(bytes([i % 251]) * 65536)
""")
EXPECTED = hashlib.sha256(b"".join(bytes([i % 251]) * 65536 for i in range(400))).hexdigest()


async def restic_child(run_tag: str) -> psutil.Process:
    for _ in range(200):
        for child in psutil.Process().children(recursive=True):
            try:
                if child.name() == "restic" and any(run_tag in a for a in child.cmdline()):
                    return child
            except psutil.NoSuchProcess:
                continue
        await asyncio.sleep(0.05)
    raise AssertionError("restic backup did not start")


async def test_a_killed_backup_leaves_no_snapshot_and_runs_again(
        repo: Restic, tmp_path: Path) -> None:
    tags = ["service=shop", "source=slow", "run=k1"]
    task = asyncio.ensure_future(repo.backup_from(SLOW_PRODUCER, {}, "slow.dump", tags))
    child = await restic_child("run=k1")
    await asyncio.sleep(1.0)  # mid-way: data has been written to the repository
    child.send_signal(signal.SIGKILL)
    with pytest.raises(ResticError) as killed:
        await task
    assert killed.value.failed == "restic" and "SIGKILL" in str(killed.value)
    assert list((tmp_path / "repo" / "locks").iterdir())  # the dead process's lock

    # A new process (a restarted guardian) unlocks, then the same run goes again.
    again = Restic(repo.repository, RESTIC_KEY, cache_dir=repo.cache_dir)
    await again.unlock()
    assert not list((tmp_path / "repo" / "locks").iterdir())
    assert await again.snapshots(["run=k1"]) == []
    result = await again.backup_from(FAST_PRODUCER, {}, "slow.dump", tags)
    assert [s.id for s in await again.snapshots(["run=k1"])] == [result.snapshot.id]
    out = tmp_path / "restored.bin"
    consumer = [sys.executable, "-c", "import shutil, sys; shutil.copyfileobj(sys.stdin.buffer,"
                f" open({str(out)!r}, 'wb'))"]
    await again.dump_into(result.snapshot.id, "slow.dump", consumer, {})
    assert hashlib.sha256(out.read_bytes()).hexdigest() == EXPECTED
    assert (await again.check())[0] is True


async def test_a_cancelled_backup_stops_both_sides(repo: Restic, tmp_path: Path) -> None:
    task = asyncio.ensure_future(
        repo.backup_from(SLOW_PRODUCER, {}, "slow.dump", ["source=slow", "run=c1"]))
    child = await restic_child("run=c1")
    await asyncio.sleep(0.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not child.is_running()
    assert not [c for c in psutil.Process().children(recursive=True)
                if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert await repo.snapshots(["run=c1"]) == []
    assert (await repo.check())[0] is True  # no lock left behind to block it


async def test_a_failing_producer_leaves_no_snapshot(shared: Restic) -> None:
    producer = [sys.executable, "-c",
                "import sys; sys.stdout.write('x' * 100000); sys.stdout.flush(); sys.exit(3)"]
    with pytest.raises(ResticError) as failed:
        await shared.backup_from(producer, {}, "half.dump", ["run=h1"])
    assert failed.value.failed == Path(sys.executable).name
    assert "exited with 3" in str(failed.value) and "restic backup was stopped" in str(
        failed.value)
    assert await shared.snapshots(["run=h1"]) == []


# -- 6. secrets ----------------------------------------------------------------------------


async def test_no_password_in_errors_or_logs(
        shared: Restic, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"postgresql://shop:{quote(PASSWORD, safe='')}@nonexistent.invalid:5432/orders"
    argv, env = dump_command(url)
    assert env["PGPASSWORD"] == PASSWORD
    assert not any(PASSWORD in a or quote(PASSWORD, safe="") in a for a in argv)
    messages: list[str] = []

    with pytest.raises(ResticError) as dump_failed:
        await shared.backup_from(argv, env, "orders.dump", ["run=s1"])
    messages.append(str(dump_failed.value))
    assert dump_failed.value.failed == "pg_dump"
    assert "nonexistent.invalid" in str(dump_failed.value)

    # A producer that prints its password: the error shows it masked.
    leaky = [sys.executable, "-c",
             "import os, sys; print('auth failed for', os.environ['PGPASSWORD'],"
             " file=sys.stderr); sys.exit(1)"]
    with pytest.raises(ResticError) as leaked:
        await shared.backup_from(leaky, env, "orders.dump", ["run=s2"])
    messages.append(str(leaked.value))
    assert "auth failed for ***" in str(leaked.value)

    wrong_key = Restic(shared.repository, PASSWORD)
    with pytest.raises(ResticError) as locked_out:
        await wrong_key.snapshots()
    messages.append(str(locked_out.value))

    with pytest.raises(DatabaseError) as unreachable:
        await database_manifest(url)
    messages.append(str(unreachable.value))
    with pytest.raises(ValueError) as bad_port:
        libpq_env(f"postgresql://shop:{quote(PASSWORD, safe='')}@db:54x/orders")
    messages.append(str(bad_port.value))
    assert "54x" in str(bad_port.value)

    messages.append(caplog.text)
    for text in messages:
        assert PASSWORD not in text and quote(PASSWORD, safe="") not in text, text
        assert RESTIC_KEY not in text


# -- libpq environment ---------------------------------------------------------------------


def test_libpq_env_from_urls() -> None:
    assert libpq_env("postgresql://guardians@127.0.0.1:55432/guardians") == {
        "PGUSER": "guardians", "PGHOST": "127.0.0.1", "PGPORT": "55432",
        "PGDATABASE": "guardians"}
    assert libpq_env(
        "postgres://u:p%40ss%3Aw@[::1],db2:6543/app%20db?sslmode=verify-full"
        "&sslrootcert=/etc/ca.pem&application_name=bk&connect_timeout=5") == {
        "PGUSER": "u", "PGPASSWORD": "p@ss:w", "PGHOST": "::1,db2", "PGPORT": "5432,6543",
        "PGDATABASE": "app db", "PGSSLMODE": "verify-full", "PGSSLROOTCERT": "/etc/ca.pem",
        "PGAPPNAME": "bk", "PGCONNECT_TIMEOUT": "5"}
    assert libpq_env("postgresql:///app?host=/var/run/postgresql") == {
        "PGDATABASE": "app", "PGHOST": "/var/run/postgresql"}
    assert libpq_env("postgresql://%2Ftmp%2Fsock/app")["PGHOST"] == "/tmp/sock"
    with pytest.raises(ValueError, match="scheme 'mysql'"):
        libpq_env("mysql://u:secret@h/db")
    with pytest.raises(ValueError, match="'sslpassword' has no libpq environment variable"):
        libpq_env("postgresql://u:secret@h/db?sslpassword=x")
