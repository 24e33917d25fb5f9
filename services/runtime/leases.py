"""Leased work: long-running jobs (a rollout, a backup) driven by one replica at a time.

A job is a row in one of the service's tables with a `lease_owner` and a `lease_until`.
`LeaseDriver` claims the rows that need work (the caller's claim function, one transaction),
runs each in its own task, renews the leases of the jobs it runs every interval, and
releases a lease when its job returns. A process that dies stops renewing, its leases expire
after `lease_seconds`, and another replica (or the restarted process) claims the jobs and
resumes them from their checkpoints. A job whose lease was taken over is cancelled here.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import Awaitable, Callable

from services.runtime.db import Connection
from services.runtime.guardian import Guardian

log = logging.getLogger(__name__)

Claim = Callable[[Connection, str, list[str]], Awaitable[list[str]]]
"""(conn, owner, ids already running here) -> ids newly leased to owner."""


class LeaseLostError(Exception):
    """Another driver owns this job now; this one must stop touching it."""


class LeaseDriver:
    def __init__(self, guardian: Guardian, table: str, key: str, claim: Claim,
                 run: Callable[[str], Awaitable[None]], *, lease_seconds: float = 6.0,
                 interval: float = 0.5) -> None:
        self.guardian = guardian
        self.table = table
        self.key = key
        self.claim = claim
        self.job = run
        self.lease_seconds = lease_seconds
        self.interval = interval
        self.owner = f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.running: dict[str, asyncio.Task[None]] = {}

    async def run(self) -> None:
        try:
            while True:
                await self.tick()
                await asyncio.sleep(self.interval)
        finally:
            for task in self.running.values():
                task.cancel()
            if self.running:
                await asyncio.wait(list(self.running.values()), timeout=5)

    async def tick(self) -> None:
        pool = self.guardian.pool
        assert pool is not None
        async with pool.acquire() as conn:
            if self.running:
                held = await self.renew(conn, list(self.running))
                for job_id in set(self.running) - held:
                    log.warning("lost the lease of %s %s; another driver has it",
                                self.table, job_id)
                    self.running.pop(job_id).cancel()
            async with conn.transaction():
                claimed = await self.claim(conn, self.owner, list(self.running))
        for job_id in claimed:
            task = asyncio.create_task(self._drive(job_id))
            self.running[job_id] = task
            task.add_done_callback(self._forget)

    async def renew(self, conn: Connection, ids: list[str]) -> set[str]:
        rows = await conn.fetch(
            f"UPDATE {self.table} SET lease_until = now() + make_interval(secs => $3)"  # noqa: S608 (names are constants)
            f" WHERE lease_owner = $1 AND {self.key} = ANY($2::text[]) RETURNING {self.key}",
            self.owner, ids, self.lease_seconds,
        )
        return {r[self.key] for r in rows}

    async def check(self, conn: Connection, job_id: str) -> None:
        """Raise LeaseLostError unless this driver still holds the job (call inside the
        transaction that writes a checkpoint, before writing)."""
        held = await conn.fetchval(
            f"SELECT 1 FROM {self.table} WHERE {self.key} = $1 AND lease_owner = $2"  # noqa: S608
            " FOR UPDATE", job_id, self.owner,
        )
        if held is None:
            raise LeaseLostError(job_id)

    def _forget(self, task: asyncio.Task[None]) -> None:
        for job_id, running in list(self.running.items()):
            if running is task:
                del self.running[job_id]

    async def _drive(self, job_id: str) -> None:
        pool = self.guardian.pool
        assert pool is not None
        try:
            await self.job(job_id)
        except LeaseLostError:
            log.warning("%s %s: lease lost mid-step; the new owner resumes it",
                        self.table, job_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s %s: driver error; it is retried from its checkpoint",
                          self.table, job_id, extra={"change_id": job_id})
            await asyncio.sleep(1.0)
        finally:
            try:
                async with pool.acquire() as conn:
                    await conn.execute(
                        f"UPDATE {self.table} SET lease_owner = NULL, lease_until = NULL"  # noqa: S608
                        f" WHERE {self.key} = $1 AND lease_owner = $2", job_id, self.owner,
                    )
            except Exception:  # the pool may be closing at shutdown; the lease expires
                log.debug("lease of %s not released", job_id)
