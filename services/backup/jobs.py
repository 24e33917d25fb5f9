"""Backup runs and restores: durable jobs, one checkpointed step at a time.

A backup run (after a deploy, on a schedule, or asked for by hand) walks: repository ready
(stale locks of dead runs removed), pre-hooks, every source backed up (a database streamed
from `pg_dump -Fc` into restic; files and directories by restic itself) with its manifest
recorded from the same data, post-hooks, `restic check` over a rotating subset of the data,
a recovery test of every source (a database restored into a scratch database, files into a
temporary directory, each compared with its manifest), then retention (restic forget and
prune, only now that a newer backup is verified), and `backup.verified`. Each source's
snapshot is checkpointed with its manifest: a run killed mid-way resumes with the next
source, and a snapshot restic finished but the run never recorded is found again by its
`run=` tag instead of being taken twice.

A failure is retried `retries` times with backoff (`backup.failed` says `will_retry`), then
the run fails for good. A restore on request restores the latest verified snapshot (or the
one named) over the live database and paths, validates them against the manifest, and
always answers with `backup.restored`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from schemas.events.backup import (
    BackupFailed,
    BackupKind,
    BackupPhase,
    BackupRestored,
    BackupSnapshot,
    BackupTrigger,
    BackupVerified,
    RepositoryCheck,
    RestoredPart,
    RestoreOutcome,
)
from services.backup.adapters import database, files, postgres
from services.backup.adapters.restic import Restic, ResticError
from services.backup.domain.checks import to_restore_differences
from services.backup.domain.manifest import Manifest, compare
from services.backup.domain.schedule import check_subset, next_backup_at
from services.runtime import Guardian
from services.runtime.config import BackupPolicy, DatabaseSource, PathSource
from services.runtime.leases import LeaseDriver
from services.runtime.processes import run_command

log = logging.getLogger(__name__)
RETRY_BACKOFF_S = 5.0
LEASE_SECONDS = 30.0
"""Longer than a deploy's: a step (one pg_dump) may run for minutes between checkpoints,
and the lease is renewed by the driver's loop, not by the step."""


class StepFailed(Exception):  # noqa: N818 (ends the run's attempt, with the phase)
    def __init__(self, phase: BackupPhase, reason: str, *, kind: BackupKind | None = None,
                 source: str | None = None, snapshot_id: str | None = None,
                 differences: tuple[Any, ...] = (), retry: bool = True) -> None:
        super().__init__(reason)
        self.phase, self.reason, self.kind, self.source = phase, reason, kind, source
        self.snapshot_id, self.differences, self.retry = snapshot_id, differences, retry


async def run_hooks(hooks: list[list[str]], seconds: float, what: str) -> None:
    """Run each hook (an argument list, no shell); a failure fails the backup."""
    for argv in hooks:
        try:
            code, out = await run_command(argv, timeout=seconds)
        except OSError as exc:
            raise StepFailed(BackupPhase.BACKUP, f"{what} {argv[0]!r} cannot run: {exc}",
                             retry=False) from exc
        except TimeoutError as exc:
            raise StepFailed(BackupPhase.BACKUP, f"{what} {argv[0]!r} did not finish within "
                             f"{seconds:g} s") from exc
        if code != 0:
            raise StepFailed(BackupPhase.BACKUP, f"{what} {argv[0]!r} exited with {code}: "
                             f"{out.strip()[-300:]}")


def repository_for(policy: BackupPolicy, service: str, state_dir: Path) -> str:
    return policy.repository or str((state_dir / "restic" / service).resolve())


def restic_for(policy: BackupPolicy, service: str, state_dir: Path) -> Restic:
    password = os.environ.get(policy.password_env)
    if not password:
        raise StepFailed(BackupPhase.BACKUP, f"the repository key is not set: environment "
                         f"variable {policy.password_env} is empty", retry=False)
    return Restic(repository_for(policy, service, state_dir), password,
                  cache_dir=state_dir / "restic-cache")


def database_url(source: DatabaseSource) -> str:
    url = os.environ.get(source.url_env)
    if not url:
        raise StepFailed(BackupPhase.BACKUP, f"database {source.name}: environment variable "
                         f"{source.url_env} is not set", kind=BackupKind.DATABASE,
                         source=source.name, retry=False)
    return url


def _sources(policy: BackupPolicy) -> list[DatabaseSource | PathSource]:
    return [*policy.databases, *policy.paths]


def _kind(source: DatabaseSource | PathSource) -> BackupKind:
    return BackupKind.DATABASE if isinstance(source, DatabaseSource) else BackupKind(source.kind)


@dataclass
class Taken:
    source: str
    kind: BackupKind
    snapshot_id: str
    manifest: Manifest
    size_bytes: int
    added_bytes: int | None
    backup_seconds: float | None


class BackupJobs:
    """The backup guardian's two job tables, each driven under leases."""

    def __init__(self, guardian: Guardian) -> None:
        self.guardian = guardian
        self.runs = LeaseDriver(guardian, "backup_runs", "run_id", _claim_runs, self.backup,
                                lease_seconds=LEASE_SECONDS, interval=1.0)
        self.restores = LeaseDriver(guardian, "restores", "request_id", _claim_restores,
                                    self.restore, lease_seconds=LEASE_SECONDS, interval=1.0)

    @property
    def state_dir(self) -> Path:
        return Path(self.guardian.settings.state_dir)

    def policy(self, service: str) -> BackupPolicy:
        return self.guardian.settings.config.service(service).backup

    @contextlib.asynccontextmanager
    async def checkpoint(self, driver: LeaseDriver, job_id: str) -> AsyncIterator[Any]:
        async with self.guardian.transaction() as ctx:
            await driver.check(ctx.conn, job_id)
            # What the job says follows from the event that started it (replay's chain).
            ctx.causation_id = await ctx.conn.fetchval(
                f"SELECT cause_id FROM {driver.table} WHERE {driver.key} = $1",  # noqa: S608
                job_id)
            yield ctx

    # -- backup runs ---------------------------------------------------------------------------

    async def backup(self, run_id: str) -> None:
        pool = self.guardian.pool
        assert pool is not None
        async with pool.acquire() as conn:
            row = await conn.fetchrow("SELECT * FROM backup_runs WHERE run_id = $1", run_id)
        if row is None or row["status"] not in ("queued", "running"):
            return
        policy = self.policy(row["service"])
        try:
            await self._walk(row, policy)
        except StepFailed as failed:
            await self._failed(row, policy, failed)
        except ResticError as exc:
            await self._failed(row, policy, StepFailed(BackupPhase.BACKUP, str(exc)))

    async def _walk(self, row: asyncpg.Record, policy: BackupPolicy) -> None:
        run_id, service = row["run_id"], row["service"]
        if not policy.has_sources:
            raise StepFailed(BackupPhase.BACKUP, "no backup sources are configured for this "
                             "service (services.<name>.backup in guardians.yaml)", retry=False)
        async with self.checkpoint(self.runs, run_id) as ctx:
            await ctx.conn.execute("UPDATE backup_runs SET status = 'running', phase = 'backup'"
                                   " WHERE run_id = $1", run_id)
        restic = restic_for(policy, service, self.state_dir)
        await restic.ensure_repository()
        await restic.unlock()
        taken = {t.source: t for t in await self._taken(run_id)}
        sources = _sources(policy)
        if len(taken) < len(sources):
            await run_hooks(policy.pre_hooks, policy.hook_timeout_seconds, "pre-backup hook")
        for source in sources:
            if source.name in taken:
                continue
            taken[source.name] = await self._back_up(restic, run_id, service, source)
            await self._record(run_id, taken[source.name])
        if policy.post_hooks and not row["progress"].get("post_hooks"):
            await run_hooks(policy.post_hooks, policy.hook_timeout_seconds, "post-backup hook")
        check = await self._check(restic, run_id, service, policy)
        recovery: dict[str, float] = {}
        for source in sources:
            recovery[source.name] = await self._recovery_test(restic, run_id, source,
                                                              taken[source.name])
        await self._retain(restic, service, policy)
        await self._verified(row, policy, restic, taken, recovery, check)

    async def _taken(self, run_id: str) -> list[Taken]:
        pool = self.guardian.pool
        assert pool is not None
        async with pool.acquire() as conn:
            rows = await conn.fetch("SELECT * FROM snapshots WHERE run_id = $1", run_id)
        return [Taken(r["source"], BackupKind(r["kind"]), r["snapshot_id"],
                      Manifest.from_json(json.loads(r["manifest"])), r["size_bytes"],
                      r["added_bytes"], r["backup_seconds"]) for r in rows]

    async def _back_up(self, restic: Restic, run_id: str, service: str,
                       source: DatabaseSource | PathSource) -> Taken:
        kind = _kind(source)
        tags = [f"service={service}", f"source={source.name}", f"kind={kind.value}",
                f"run={run_id}"]
        # A snapshot restic finished before a crash, never recorded: adopt it, with the
        # manifest written beside it.
        for snap in await restic.snapshots(tags):
            manifest = self._saved_manifest(run_id, source.name)
            if manifest is not None:
                return Taken(source.name, kind, snap.id, manifest, 0, None, None)
        started = time.monotonic()
        try:
            if isinstance(source, DatabaseSource):
                url = database_url(source)
                manifest, result = await database.backup_database(restic, url,
                                                                  f"{source.name}.dump", tags)
            else:
                missing = [str(p) for p in source.paths if not p.exists()]
                if missing:
                    raise StepFailed(BackupPhase.BACKUP, f"{source.name}: missing "
                                     f"{', '.join(missing)}", kind=kind, source=source.name,
                                     retry=False)
                manifest = files.file_manifest(source.paths)
                self._save_manifest(run_id, source.name, manifest)
                result = await restic.backup_paths(source.paths, tags, source.exclude)
        except (ResticError, postgres.DatabaseError, OSError) as exc:
            raise StepFailed(BackupPhase.BACKUP, f"{source.name}: {exc}", kind=kind,
                             source=source.name) from exc
        except postgres.PgClientError as exc:  # a pg_dump older than the server: config
            raise StepFailed(BackupPhase.BACKUP, f"{source.name}: {exc}", kind=kind,
                             source=source.name, retry=False) from exc
        if isinstance(source, DatabaseSource):
            self._save_manifest(run_id, source.name, manifest)
        return Taken(source.name, kind, result.snapshot.id, manifest, result.total_bytes,
                     result.added_bytes, time.monotonic() - started)

    def _manifest_file(self, run_id: str, source: str) -> Path:
        return self.state_dir / "backup-manifests" / f"{run_id}--{source}.json"

    def _save_manifest(self, run_id: str, source: str, manifest: Manifest) -> None:
        path = self._manifest_file(run_id, source)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(manifest.to_json()))
        tmp.replace(path)

    def _saved_manifest(self, run_id: str, source: str) -> Manifest | None:
        try:
            return Manifest.from_json(json.loads(self._manifest_file(run_id, source)
                                                 .read_text()))
        except FileNotFoundError:
            return None

    async def _record(self, run_id: str, taken: Taken) -> None:
        async with self.checkpoint(self.runs, run_id) as ctx:
            await ctx.conn.execute(
                "INSERT INTO snapshots (run_id, source, kind, snapshot_id, manifest,"
                " size_bytes, added_bytes, backup_seconds) VALUES ($1,$2,$3,$4,$5::jsonb,"
                "$6,$7,$8) ON CONFLICT (run_id, source) DO NOTHING",
                run_id, taken.source, taken.kind.value, taken.snapshot_id,
                json.dumps(taken.manifest.to_json()), taken.size_bytes, taken.added_bytes,
                taken.backup_seconds,
            )

    async def _check(self, restic: Restic, run_id: str, service: str,
                     policy: BackupPolicy) -> RepositoryCheck:
        pool = self.guardian.pool
        assert pool is not None
        async with pool.acquire() as conn:
            runs = await conn.fetchval(
                "INSERT INTO schedules (service) VALUES ($1) ON CONFLICT (service)"
                " DO UPDATE SET check_runs = schedules.check_runs + 1 RETURNING check_runs",
                service)
        subset = check_subset(int(runs), policy.check_subsets)
        started = time.monotonic()
        ok, output = await restic.check(subset)
        if not ok:
            raise StepFailed(BackupPhase.REPOSITORY_CHECK,
                             f"restic check --read-data-subset={subset} failed: {output}")
        return RepositoryCheck(read_subset=subset, duration_seconds=time.monotonic() - started)

    async def _recovery_test(self, restic: Restic, run_id: str,
                             source: DatabaseSource | PathSource, taken: Taken) -> float:
        kind = _kind(source)
        try:
            if isinstance(source, DatabaseSource):
                restored, seconds = await database.restore_to_scratch(
                    restic, taken.snapshot_id, f"{source.name}.dump",
                    self.guardian.settings.database_url.get_secret_value())
            else:
                restored, seconds = await self._restore_files(restic, taken.snapshot_id,
                                                              source)
        except (ResticError, postgres.DatabaseError, postgres.PgClientError, OSError) as exc:
            raise StepFailed(BackupPhase.RECOVERY_TEST, f"{source.name}: {exc}", kind=kind,
                             source=source.name, snapshot_id=taken.snapshot_id) from exc
        differences = compare(taken.manifest, restored)
        async with self.checkpoint(self.runs, run_id) as ctx:
            await ctx.conn.execute(
                "UPDATE snapshots SET recovery_seconds = $3, recovery_ok = $4,"
                " recovery_report = $5::jsonb WHERE run_id = $1 AND source = $2",
                run_id, source.name, seconds, not differences,
                json.dumps([d.__dict__ for d in differences[:100]]),
            )
        if differences:
            first = differences[0]
            raise StepFailed(
                BackupPhase.RECOVERY_TEST,
                f"{source.name}: the restored copy differs from the backup's manifest in "
                f"{len(differences)} place(s), first {first.item}: expected {first.expected}"
                f", got {first.actual}", kind=kind, source=source.name,
                snapshot_id=taken.snapshot_id, differences=to_restore_differences(differences),
                retry=False)
        return seconds

    async def _restore_files(self, restic: Restic, snapshot_id: str, source: PathSource
                             ) -> tuple[Manifest, float]:
        scratch = Path(tempfile.mkdtemp(prefix="guardians-restore-", dir=self.state_dir))
        try:
            seconds = await restic.restore(snapshot_id, scratch)
            roots = [files.restored_root(scratch, path) for path in source.paths]
            return files.file_manifest(roots), seconds
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    async def _retain(self, restic: Restic, service: str, policy: BackupPolicy) -> None:
        r = policy.retention
        for source in _sources(policy):
            try:
                await restic.forget(r.keep_last, r.keep_daily, r.keep_weekly, r.keep_monthly,
                                    [f"service={service}", f"source={source.name}"])
            except ResticError as exc:  # the backup is verified; retention waits for the next
                log.warning("retention of %s/%s failed: %s", service, source.name, exc)

    async def _verified(self, row: asyncpg.Record, policy: BackupPolicy, restic: Restic,
                        taken: dict[str, Taken], recovery: dict[str, float],
                        check: RepositoryCheck) -> None:
        now = datetime.now(UTC)
        snapshots = tuple(
            BackupSnapshot(
                kind=t.kind, source=t.source, snapshot_id=t.snapshot_id,
                size_bytes=t.size_bytes, added_bytes=t.added_bytes,
                file_count=len(t.manifest.files) if t.manifest.files else None,
                table_count=len(t.manifest.tables) if t.manifest.tables else None,
                row_count=t.manifest.row_count if t.manifest.tables else None,
                manifest_sha256=t.manifest.digest(), backup_seconds=t.backup_seconds,
                recovery_seconds=recovery[name],
            ) for name, t in taken.items())
        event = BackupVerified(
            change_id=row["run_id"], service=row["service"], version=row["version"],
            trigger=BackupTrigger(row["trigger"]),
            repository=repository_for(policy, row["service"], self.state_dir),
            snapshots=snapshots, recovery_seconds=sum(recovery.values()),
            repository_check=check, next_backup_at=next_backup_at(policy, now, now),
        )
        async with self.checkpoint(self.runs, row["run_id"]) as ctx:
            await ctx.conn.execute(
                "UPDATE backup_runs SET status = 'verified', phase = 'done', finished_at ="
                " now(), reason = NULL WHERE run_id = $1", row["run_id"])
            ctx.emit(event)

    async def _failed(self, row: asyncpg.Record, policy: BackupPolicy, failed: StepFailed
                      ) -> None:
        attempt = int(row["attempt"])
        retry = failed.retry and attempt <= policy.retries
        event = BackupFailed(
            change_id=row["run_id"], service=row["service"], version=row["version"],
            trigger=BackupTrigger(row["trigger"]), phase=failed.phase, reason=failed.reason,
            kind=failed.kind, source=failed.source, snapshot_id=failed.snapshot_id,
            differences=failed.differences, attempt=attempt, will_retry=retry,
        )
        async with self.checkpoint(self.runs, row["run_id"]) as ctx:
            if retry:
                await ctx.conn.execute(
                    "UPDATE backup_runs SET status = 'queued', phase = $2, attempt = attempt"
                    " + 1, not_before = now() + make_interval(secs => $3), reason = $4"
                    " WHERE run_id = $1", row["run_id"], failed.phase.value,
                    RETRY_BACKOFF_S * attempt, failed.reason)
            else:
                await ctx.conn.execute(
                    "UPDATE backup_runs SET status = 'failed', phase = $2, finished_at ="
                    " now(), reason = $3 WHERE run_id = $1", row["run_id"],
                    failed.phase.value, failed.reason)
            ctx.emit(event)

    # -- restores on request -----------------------------------------------------------------------

    async def restore(self, request_id: str) -> None:
        pool = self.guardian.pool
        assert pool is not None
        async with pool.acquire() as conn:
            row = await conn.fetchrow("SELECT * FROM restores WHERE request_id = $1",
                                      request_id)
        if row is None or row["status"] not in ("queued", "running"):
            return
        request = json.loads(row["request"])
        service = row["service"]
        policy = self.policy(service)
        started = time.monotonic()
        parts: list[RestoredPart] = []
        reason: str | None = None
        try:
            restic = restic_for(policy, service, self.state_dir)
            chosen = await self._snapshots_to_restore(service, request)
            kinds = {BackupKind(k) for k in request.get("kinds") or ()}
            for source in _sources(policy):
                if kinds and _kind(source) not in kinds:
                    continue
                if source.name not in chosen:
                    raise StepFailed(BackupPhase.BACKUP, f"no verified snapshot of "
                                     f"{source.name} to restore", retry=False)
                parts.append(await self._restore_part(restic, source, *chosen[source.name]))
            if not parts:
                reason = "nothing to restore: no configured source matches the request"
            elif any(p.differences for p in parts):
                reason = "restored data differs from the manifest: " + "; ".join(
                    f"{p.source}: {p.differences[0].item}" for p in parts if p.differences)
        except (StepFailed, ResticError, postgres.DatabaseError, postgres.PgClientError,
                OSError) as exc:
            reason = str(exc)
        outcome = RestoreOutcome.FAILED if reason else RestoreOutcome.RESTORED
        async with self.checkpoint(self.restores, request_id) as ctx:
            await ctx.conn.execute(
                "UPDATE restores SET status = $2, finished_at = now() WHERE request_id = $1",
                request_id, "restored" if outcome is RestoreOutcome.RESTORED else "failed")
            ctx.emit(BackupRestored(
                service=service, outcome=outcome, parts=tuple(parts),
                duration_seconds=time.monotonic() - started, reason=reason,
                change_id=request.get("change_id"), incident_id=request.get("incident_id"),
            ))

    async def _snapshots_to_restore(self, service: str, request: dict[str, Any]
                                    ) -> dict[str, tuple[str, Manifest]]:
        pool = self.guardian.pool
        assert pool is not None
        async with pool.acquire() as conn:
            if request.get("snapshot_id"):
                rows = await conn.fetch(
                    "SELECT s.* FROM snapshots s JOIN backup_runs r USING (run_id)"
                    " WHERE r.service = $1 AND s.snapshot_id LIKE $2 || '%'",
                    service, request["snapshot_id"])
            else:
                rows = await conn.fetch(
                    "SELECT DISTINCT ON (s.source) s.* FROM snapshots s"
                    " JOIN backup_runs r USING (run_id)"
                    " WHERE r.service = $1 AND r.status = 'verified' AND s.recovery_ok"
                    " ORDER BY s.source, r.finished_at DESC", service)
        if not rows:
            which = request.get("snapshot_id") or "verified"
            raise StepFailed(BackupPhase.BACKUP, f"no {which} snapshot of {service} is known",
                             retry=False)
        return {r["source"]: (r["snapshot_id"], Manifest.from_json(json.loads(r["manifest"])))
                for r in rows}

    async def _restore_part(self, restic: Restic, source: DatabaseSource | PathSource,
                            snapshot_id: str, manifest: Manifest) -> RestoredPart:
        kind = _kind(source)
        if isinstance(source, DatabaseSource):
            url = database_url(source)
            restored, seconds = await database.restore_over(restic, snapshot_id,
                                                            f"{source.name}.dump", url)
            target = f"database {source.name} (${source.url_env})"
        else:
            seconds = await self._restore_paths_in_place(restic, snapshot_id, source)
            restored = files.file_manifest(source.paths)
            target = ", ".join(str(p) for p in source.paths)
        differences = compare(manifest, restored)
        checks = len(manifest.tables) * 2 + len(manifest.files) + (1 if manifest.schema_digest
                                                                   else 0)
        return RestoredPart(kind=kind, source=source.name, snapshot_id=snapshot_id,
                            target=target, checks_passed=max(0, checks - len(differences)),
                            differences=to_restore_differences(differences),
                            duration_seconds=seconds)

    async def _restore_paths_in_place(self, restic: Restic, snapshot_id: str,
                                      source: PathSource) -> float:
        """Restore into a temporary directory beside the state, then put each path back
        (replacing what is there), so a failed restore never leaves a path half-written."""
        scratch = Path(tempfile.mkdtemp(prefix="guardians-restore-", dir=self.state_dir))
        try:
            seconds = await restic.restore(snapshot_id, scratch)
            started = time.monotonic()
            for path in source.paths:
                restored = files.restored_root(scratch, path)
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                elif path.exists() or path.is_symlink():
                    path.unlink()
                path.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(restored), str(path))
            return seconds + time.monotonic() - started
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


async def _claim_runs(conn: Any, owner: str, running: list[str]) -> list[str]:
    rows = await conn.fetch(
        """
        UPDATE backup_runs SET lease_owner = $1, lease_until = now() + make_interval(secs => $3)
        WHERE run_id IN (
            SELECT run_id FROM backup_runs
            WHERE status IN ('queued', 'running') AND not_before <= now()
              AND (lease_until IS NULL OR lease_until < now() OR lease_owner = $1)
              AND NOT (run_id = ANY($2::text[]))
            ORDER BY created_at LIMIT 4 FOR UPDATE SKIP LOCKED)
        RETURNING run_id
        """, owner, running, LEASE_SECONDS)
    return [r["run_id"] for r in rows]


async def _claim_restores(conn: Any, owner: str, running: list[str]) -> list[str]:
    rows = await conn.fetch(
        """
        UPDATE restores SET lease_owner = $1, lease_until = now() + make_interval(secs => $3),
               status = 'running'
        WHERE request_id IN (
            SELECT request_id FROM restores
            WHERE status IN ('queued', 'running')
              AND (lease_until IS NULL OR lease_until < now() OR lease_owner = $1)
              AND NOT (request_id = ANY($2::text[]))
            ORDER BY created_at LIMIT 2 FOR UPDATE SKIP LOCKED)
        RETURNING request_id
        """, owner, running, LEASE_SECONDS)
    return [r["request_id"] for r in rows]
