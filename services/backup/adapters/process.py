"""Child processes for the backup adapters: argument lists, private environments, and the
pipe that streams one tool's output into another.

Why a helper of its own: every backup and restore runs a pair of programs (`pg_dump` into
`restic backup --stdin`, `restic dump` into `pg_restore`) whose data must flow through an
OS pipe between them, never through a temporary file nor through Python's memory, and
whose failure must stop both. The hard part is the end of the stream: when the producer
dies half-way its end of the pipe closes, and `restic backup --stdin` (0.14) takes that
EOF for the end of the data and commits a truncated snapshot. So the parent keeps its own
copy of the pipe's write end (the "gate") while the producer runs: the consumer sees EOF
only when the parent closes the gate, which it does after the producer exited 0; after a
failure the consumer is stopped first and never sees an end of stream at all.

Nothing here builds a shell string (asyncio.create_subprocess_exec with argument lists),
and secrets reach a child only through its environment: `child_env` starts from this
process's environment without the libpq and restic variables that could redirect or
authenticate a child behind our back, then adds the caller's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from urllib.parse import quote

log = logging.getLogger(__name__)

STDERR_TAIL = 4000
"""Characters of a failing tool's stderr an error carries (its end explains the failure)."""
STOP_SIGNAL = signal.SIGINT
"""How a child is asked to stop: restic 0.14 removes its lock on SIGINT only (SIGTERM
leaves a stale lock that blocks the next `check`), pg_restore cancels its server query."""
STOP_GRACE_SECONDS = 5.0
"""After STOP_SIGNAL, how long a child may clean up before SIGKILL."""
_CHUNK = 1 << 16

_INHERITED_SECRETS = re.compile(
    r"^(PG[A-Z_]*|RESTIC_(PASSWORD|PASSWORD_FILE|PASSWORD_COMMAND|REPOSITORY|"
    r"REPOSITORY_FILE|KEY_HINT|CACHE_DIR))$"
)
"""Inherited variables that would override what a child is given explicitly (a stray
PGHOST, RESTIC_PASSWORD_FILE...): dropped, so the URL and the repository the caller named
are the only ones used."""
_SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|KEY|CREDENTIAL", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(://[^:/@\s]*):[^@/\s]*@")


@dataclass(frozen=True)
class Command:
    """One program to run: its arguments, what to add to its environment, its label."""

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    name: str = ""
    """How errors call it ("pg_dump", "restic backup"); the program's name by default."""

    @property
    def label(self) -> str:
        return self.name or PurePath(self.argv[0]).name

    def secrets(self) -> list[str]:
        """The values in its environment that must never reach an error or a log."""
        return [v for k, v in self.env.items() if v and _SECRET_NAME.search(k)]


@dataclass(frozen=True)
class Finished:
    """How one child ended."""

    label: str
    code: int
    """Its exit status; negative: killed by that signal."""
    stderr: str
    """The tail of its stderr (not yet redacted)."""
    stdout: bytes = b""
    seconds: float = 0.0
    stopped: bool = False
    """We stopped it (the other side of its pipe failed, or the caller was cancelled)."""
    ended: float = 0.0
    """time.monotonic() when its end was seen."""

    @property
    def ok(self) -> bool:
        return self.code == 0

    @property
    def failed_on_its_own(self) -> bool:
        """Failed, and not because we stopped it nor because its reader went away."""
        return not self.ok and not self.stopped and self.code != -signal.SIGPIPE

    def describe(self) -> str:
        """"pg_dump exited with 1" / "restic backup was killed by SIGKILL"."""
        if self.code >= 0:
            status = f"exited with {self.code}"
        else:
            try:
                status = f"was killed by {signal.Signals(-self.code).name}"
            except ValueError:
                status = f"was killed by signal {-self.code}"
        return f"{self.label} {status}"


class SpawnError(OSError):
    """A program could not be started at all (missing, not executable)."""


def child_env(extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without inherited libpq / restic settings, plus `extra`."""
    base = {k: v for k, v in os.environ.items() if not _INHERITED_SECRETS.match(k)}
    return {**base, **extra}


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret (as is, and URL-encoded) and every URL password masked."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        for form in {secret, quote(secret, safe=""), quote(secret)}:
            text = text.replace(form, "***")
    return _URL_PASSWORD.sub(r"\1:***@", text)


def tail(text: str, limit: int = STDERR_TAIL) -> str:
    text = text.strip()
    return text if len(text) <= limit else "..." + text[-limit:]


async def run(command: Command) -> Finished:
    """Run one program to its end, its stdout kept whole (callers parse it as JSON)."""
    started = time.monotonic()
    proc = await _spawn(command, stdin=asyncio.subprocess.DEVNULL,
                        stdout=asyncio.subprocess.PIPE)
    try:
        code, out, err, _ = await _collect(proc)
    except BaseException:
        _signal(proc, STOP_SIGNAL)
        await asyncio.shield(_stop_all([proc]))
        raise
    return Finished(command.label, code, err, out, time.monotonic() - started)


async def pipe(producer: Command, consumer: Command) -> tuple[Finished, Finished]:
    """`producer`'s stdout into `consumer`'s stdin through an OS pipe; both results.

    The consumer sees the end of its input only if the producer exited 0. When either side
    fails the other is stopped (its `stopped` is True); when the caller is cancelled both
    are stopped before the cancellation goes on."""
    started = time.monotonic()
    read_fd, write_fd = os.pipe()
    gate = _Gate(write_fd)
    procs: list[asyncio.subprocess.Process] = []
    try:
        try:
            procs.append(await _spawn(producer, stdin=asyncio.subprocess.DEVNULL,
                                      stdout=write_fd))
            procs.append(await _spawn(consumer, stdin=read_fd,
                                      stdout=asyncio.subprocess.PIPE))
        finally:
            os.close(read_fd)
        prod, cons = await _drive(procs[0], procs[1], gate)
    except BaseException:
        for proc in procs:
            _signal(proc, STOP_SIGNAL)
        await asyncio.shield(_stop_all(procs))
        raise
    finally:
        gate.close()
    seconds = time.monotonic() - started
    return (Finished(producer.label, prod.code, prod.err, b"", seconds, prod.stopped,
                     prod.ended),
            Finished(consumer.label, cons.code, cons.err, cons.out, seconds, cons.stopped,
                     cons.ended))


def first_failure(*ends: Finished) -> Finished | None:
    """Which of a pipe's sides broke it: the first to fail on its own (else the first to
    fail at all); None if all succeeded."""
    failed = sorted((f for f in ends if not f.ok),
                    key=lambda f: (not f.failed_on_its_own, f.ended))
    return failed[0] if failed else None


class _Gate:
    """The parent's copy of the pipe's write end: closed once, and only once (closing a
    number twice could close whatever file reused it)."""

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


@dataclass
class _End:
    code: int
    out: bytes
    err: str
    ended: float
    stopped: bool = False


async def _drive(prod: asyncio.subprocess.Process, cons: asyncio.subprocess.Process,
                 gate: _Gate) -> tuple[_End, _End]:
    prod_task = asyncio.ensure_future(_collect(prod))
    cons_task = asyncio.ensure_future(_collect(cons))
    try:
        await asyncio.wait({prod_task, cons_task}, return_when=asyncio.FIRST_COMPLETED)
        prod_stopped = cons_stopped = False
        if prod_task.done():
            if prod_task.result()[0] != 0:
                cons_stopped = await _stop(cons)  # before it could see an end of stream
        elif cons_task.result()[0] != 0:
            prod_stopped = await _stop(prod)
        prod_end = _End(*await prod_task, stopped=prod_stopped)
        gate.close()  # the producer is gone: EOF for a consumer that still reads
        cons_end = _End(*await cons_task, stopped=cons_stopped)
    finally:
        for task in (prod_task, cons_task):
            task.cancel()
    return prod_end, cons_end


async def _spawn(command: Command, *, stdin: int, stdout: int) -> asyncio.subprocess.Process:
    log.debug("running %s", redact(" ".join(command.argv), command.secrets()))
    try:
        return await asyncio.create_subprocess_exec(
            *command.argv, stdin=stdin, stdout=stdout, stderr=asyncio.subprocess.PIPE,
            env=child_env(command.env), start_new_session=True,
        )
    except OSError as exc:
        raise SpawnError(exc.errno, f"cannot run {command.argv[0]!r}: "
                                    f"{exc.strerror or exc}") from exc


async def _collect(proc: asyncio.subprocess.Process) -> tuple[int, bytes, str, float]:
    """Drain stdout (whole) and stderr (its tail) while waiting for the exit."""
    out, err, code = await asyncio.gather(_read_all(proc.stdout), _read_tail(proc.stderr),
                                          proc.wait())
    return code, out, err, time.monotonic()


async def _read_all(stream: asyncio.StreamReader | None) -> bytes:
    return b"" if stream is None else await stream.read()


async def _read_tail(stream: asyncio.StreamReader | None) -> str:
    if stream is None:
        return ""
    kept = bytearray()
    while chunk := await stream.read(_CHUNK):
        kept += chunk
        if len(kept) > 4 * STDERR_TAIL:
            del kept[: len(kept) - 4 * STDERR_TAIL]
    return kept.decode(errors="replace")


def _signal(proc: asyncio.subprocess.Process, sig: signal.Signals) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)


async def _stop(proc: asyncio.subprocess.Process) -> bool:
    """STOP_SIGNAL, a grace period, SIGKILL; True if it was still running."""
    if proc.returncode is not None:
        return False
    _signal(proc, STOP_SIGNAL)
    try:
        await asyncio.wait_for(proc.wait(), STOP_GRACE_SECONDS)
    except TimeoutError:
        _signal(proc, signal.SIGKILL)
        await proc.wait()
    return True


async def _stop_all(procs: Sequence[asyncio.subprocess.Process]) -> None:
    try:
        await asyncio.gather(*(_stop(p) for p in procs))
    finally:
        for proc in procs:
            _signal(proc, signal.SIGKILL)
