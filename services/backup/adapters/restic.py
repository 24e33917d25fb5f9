"""The restic repository: deduplicated, encrypted snapshots, their verification, retention.

restic is driven as a program (Debian's 0.14 by default, `$GUARDIANS_RESTIC_BIN` or the
`binary` argument otherwise), always with argument lists, with its repository, key and
cache given through the child's environment only (RESTIC_REPOSITORY, RESTIC_PASSWORD,
RESTIC_CACHE_DIR): a repository URL can hold credentials too, so neither reaches a command
line, and every error is redacted of both before it leaves this module.

What restic 0.14 does that this module works around (each seen on the real binary):

- Concurrent `init` of one local repository all "succeed" and leave a repository whose
  config no key opens ("config or key ... is damaged"). `ensure_repository` serialises
  inits with a lock on the repository's parent directory and re-checks under it.
- `backup --stdin` commits a snapshot at the end of its input, whatever ended it: a dump
  that died half-way would be a snapshot. The producer's pipe is gated (see process.py),
  so restic sees the end only after the producer exited 0.
- The backup summary's `snapshot_id` is the short id, and `init`, `check` and `prune` have
  no JSON output; `forget --json --prune` appends prune's text after the JSON. Full ids
  come from `snapshots --json`; `check` is read by its exit status; prune runs on its own.
- A missing repository has no exit code of its own (1, like everything else): it is told
  by "Is there a repository at the following location?".
- `--tag a,b` means a AND b, and a comma inside one tag splits it: tags are `key=value`
  (restic takes `=`) and may not hold commas.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import logging
import os
import re
import shutil
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from services.backup.adapters.process import (
    Command,
    Finished,
    SpawnError,
    first_failure,
    pipe,
    redact,
    run,
    tail,
)

log = logging.getLogger(__name__)

DEFAULT_BINARY = "/usr/bin/restic"
INCOMPLETE = 3
"""restic backup's exit status when the snapshot was saved but some files were unreadable."""
NO_REPOSITORY = "Is there a repository at the following location?"
_OPERATIONAL = ("wrong password or no key found", "already locked", NO_REPOSITORY,
                "unable to create lock")
"""`check` failures that say nothing about the data: raised, not reported as damage."""
_SNAPSHOT_ID = re.compile(r"^(latest|[0-9a-f]{4,64})$")
_SUBSET = re.compile(r"^(\d+/\d+|\d+(\.\d+)?%)$")
_INIT_LOCK_POLL_SECONDS = 0.1


class ResticError(Exception):
    """A restic command (or the program piped into or out of it) failed; the message names
    the subcommand, which side failed with which exit status, and the stderr tail."""

    def __init__(self, message: str, *, subcommand: str, exit_code: int | None = None,
                 failed: str = "restic") -> None:
        super().__init__(message)
        self.subcommand = subcommand
        self.exit_code = exit_code
        self.failed = failed
        """Which program failed first: "restic", or the producer's / consumer's label."""


@dataclass(frozen=True)
class Snapshot:
    id: str
    """The full 64-hex id."""
    short_id: str
    time: datetime
    tags: tuple[str, ...]
    paths: tuple[str, ...]

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Snapshot:
        full = str(raw["id"])
        return cls(id=full, short_id=str(raw.get("short_id") or full[:8]),
                   time=datetime.fromisoformat(str(raw["time"])),
                   tags=tuple(raw.get("tags") or ()), paths=tuple(raw.get("paths") or ()))


@dataclass(frozen=True)
class BackupResult:
    """restic's `--json` summary of one backup."""

    snapshot: Snapshot
    added_bytes: int
    """New data written to the repository (before compression); small when deduplicated."""
    total_bytes: int
    """Bytes read from the source."""
    files: int
    seconds: float


class Restic:
    """One repository, opened with one key."""

    def __init__(self, repository: str, password: str, *, binary: str | None = None,
                 cache_dir: Path | None = None) -> None:
        if not repository:
            raise ValueError("restic repository is empty")
        if not password:
            raise ValueError("restic password is empty")
        self.repository = repository
        self._password = password
        self.binary = binary or os.environ.get("GUARDIANS_RESTIC_BIN") or (
            shutil.which("restic") or DEFAULT_BINARY)
        self.cache_dir = cache_dir
        self._stale_lock = False
        """A restic of ours was killed (by a signal, a broken pipe, a cancellation): its
        lock is left behind and would block the next `check` or `prune`."""

    # -- the repository ---------------------------------------------------------------------

    async def ensure_repository(self) -> None:
        """Open the repository, creating it if there is none; idempotent, and safe when
        several processes of this machine race to create the same one."""
        if await self._exists():
            return
        async with self._init_lock() as local:
            # Under the lock a local repository's config file says it all (one key
            # derivation less); a remote one is asked again.
            if (local / "config").exists() if local else await self._exists():
                return
            done = await self._run("init")
            if not done.ok and not await self._exists():
                raise self._error("init", done)
        log.info("created restic repository %s", self._shown_repository())

    async def unlock(self) -> None:
        """Remove stale locks (left by a restic that was killed); live ones stay."""
        self._must("unlock", await self._run("unlock"))

    async def stats(self) -> int:
        """The repository's raw size in bytes (what it takes on its storage)."""
        done = self._must("stats", await self._run("stats", "--mode", "raw-data", "--json"))
        return int(_json(done, "stats").get("total_size", 0))

    async def check(self, subset: str | None = None) -> tuple[bool, str]:
        """`restic check`, reading the data of `subset` ("k/N", "P%") too; (ok, output tail).

        Damage (a pack whose hash does not match, a missing blob...) is `ok` False; a
        failure that says nothing about the data (wrong key, locked, no repository) raises."""
        args = ["check"]
        if subset is not None:
            if not _SUBSET.match(subset):
                raise ValueError(f"check subset {subset!r} is not k/N nor a percentage")
            args.append(f"--read-data-subset={subset}")
        done = await self._run(*args)
        text = self._redact(tail(done.stdout.decode(errors="replace") + "\n" + done.stderr))
        if not done.ok and any(marker in done.stderr for marker in _OPERATIONAL):
            raise self._error("check", done)
        return done.ok, text

    # -- backups ----------------------------------------------------------------------------

    async def backup_paths(self, paths: Sequence[Path], tags: Sequence[str],
                           exclude: Sequence[str] = ()) -> BackupResult:
        """Back up files and directories (by absolute path, symlinks not followed).

        A path that does not exist raises FileNotFoundError first: restic 0.14 would skip
        it with a warning and exit 0, and the backup would silently lack it."""
        if not paths:
            raise ValueError("backup_paths needs at least one path")
        missing = _missing(paths)
        if missing:
            raise FileNotFoundError(f"backup paths do not exist: {', '.join(missing)}")
        args = ["backup", "--json", "--quiet", *_tag_args(tags),
                *(f"--exclude={pattern}" for pattern in exclude), "--",
                *(str(p.absolute()) for p in paths)]
        done = await self._run(*args)
        if done.code == INCOMPLETE:
            await self._discard_incomplete(done)
        self._must("backup", done)
        return await self._result(done)

    async def backup_from(self, producer: Sequence[str], producer_env: Mapping[str, str],
                          filename: str, tags: Sequence[str]) -> BackupResult:
        """Stream `producer`'s stdout into the repository as one file, `filename`.

        The snapshot exists only if both the producer and restic succeeded."""
        _check_filename(filename)
        source = Command(tuple(producer), dict(producer_env))
        sink = self._command("backup", "--json", "--quiet", "--stdin",
                             f"--stdin-filename={filename}", *_tag_args(tags))
        ends = await self._pipe(source, sink)
        self._must_pipe("backup --stdin", ends, source)
        return await self._result(ends[1])

    async def snapshots(self, tags: Sequence[str] = ()) -> list[Snapshot]:
        """Snapshots carrying every one of `tags`, oldest first."""
        done = self._must("snapshots", await self._run("snapshots", "--json", *_tag_args(tags)))
        return [Snapshot.from_json(raw) for raw in _json_list(done, "snapshots")]

    async def snapshot(self, snapshot_id: str) -> Snapshot:
        """One snapshot by (short or full) id."""
        _check_snapshot_id(snapshot_id)
        done = self._must("snapshots",
                          await self._run("snapshots", "--json", "--", snapshot_id))
        found = _json_list(done, "snapshots")
        if len(found) != 1:
            raise ResticError(f"restic snapshots: {len(found)} snapshots match "
                              f"{snapshot_id!r}", subcommand="snapshots")
        return Snapshot.from_json(found[0])

    # -- restores ---------------------------------------------------------------------------

    async def dump_into(self, snapshot_id: str, filename: str, consumer: Sequence[str],
                        consumer_env: Mapping[str, str]) -> float:
        """Stream one file of a snapshot into `consumer`'s stdin; the seconds it took.

        The consumer sees the end of its input only if restic wrote the whole file."""
        _check_snapshot_id(snapshot_id)
        _check_filename(filename)
        source = self._command("dump", "--", snapshot_id, f"/{filename}")
        sink = Command(tuple(consumer), dict(consumer_env))
        ends = await self._pipe(source, sink)
        self._must_pipe("dump", ends, sink)
        return ends[0].seconds

    async def restore(self, snapshot_id: str, target: Path) -> float:
        """Restore a whole snapshot under `target` (absolute paths are recreated beneath
        it, see files.restored_root); the seconds it took."""
        _check_snapshot_id(snapshot_id)
        done = await self._run("restore", f"--target={target}", "--", snapshot_id)
        return self._must("restore", done).seconds

    # -- retention --------------------------------------------------------------------------

    async def forget(self, keep_last: int, keep_daily: int, keep_weekly: int,
                     keep_monthly: int, tags: Sequence[str], prune: bool = True) -> list[str]:
        """Apply the keep policy to the snapshots carrying all of `tags` (they must name one
        source: `service=...` and `source=...`); the ids removed.

        Grouped by paths within that filter, not by tags: each snapshot carries its own
        `run=` tag, so grouping by tags would make every snapshot a group of one and keep
        them all."""
        if not tags:
            raise ValueError("forget needs the tags of one source: without them the policy "
                             "would apply to the whole repository")
        policy = [f"--keep-{name}={n}" for name, n in (
            ("last", keep_last), ("daily", keep_daily), ("weekly", keep_weekly),
            ("monthly", keep_monthly)) if n > 0]
        if not policy:
            raise ValueError("forget needs at least one keep count above 0")
        done = self._must("forget", await self._run(
            "forget", "--json", "--group-by=paths", *_tag_args(tags), *policy))
        removed = [str(snap["id"]) for group in _json_list(done, "forget")
                   for snap in group.get("remove") or ()]
        if removed and prune:
            self._must("prune", await self._run("prune"))
        return removed

    async def forget_ids(self, snapshot_ids: Sequence[str]) -> None:
        """Remove these snapshots (data is freed by the next prune)."""
        for snapshot_id in snapshot_ids:
            _check_snapshot_id(snapshot_id)
        if snapshot_ids:
            self._must("forget", await self._run("forget", "--", *snapshot_ids))

    # -- plumbing ---------------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        env = {"RESTIC_REPOSITORY": self.repository, "RESTIC_PASSWORD": self._password}
        if self.cache_dir is not None:
            env["RESTIC_CACHE_DIR"] = str(self.cache_dir)
        return env

    def _command(self, *args: str) -> Command:
        cache = [] if self.cache_dir is not None else ["--no-cache"]
        return Command((self.binary, *cache, *args), self._env(), f"restic {args[0]}")

    async def _run(self, *args: str) -> Finished:
        await self._clear_stale_lock()
        try:
            done = await run(self._command(*args))
        except SpawnError as exc:
            raise ResticError(f"restic {args[0]}: {exc.strerror}",
                              subcommand=args[0]) from None
        except BaseException:
            self._stale_lock = True
            raise
        self._stale_lock |= done.code < 0
        return done

    async def _pipe(self, source: Command, sink: Command) -> tuple[Finished, Finished]:
        await self._clear_stale_lock()
        try:
            ends = await pipe(source, sink)
        except SpawnError as exc:
            sub = (source if source.argv[0] == self.binary else sink).label
            raise ResticError(self._redact(f"{sub}: {exc.strerror}", source, sink),
                              subcommand=sub.removeprefix("restic ")) from None
        except BaseException:
            self._stale_lock = True
            raise
        self._stale_lock |= any(end.code < 0 or end.stopped for end in ends)
        return ends

    async def _clear_stale_lock(self) -> None:
        """`restic unlock` (stale locks only) after one of ours was killed."""
        if self._stale_lock:
            self._stale_lock = False
            await self.unlock()

    def _secrets(self, *commands: Command) -> list[str]:
        found = [self._password]
        found += [secret for c in commands for secret in c.secrets()]
        if "@" in self.repository:  # rest:https://user:pass@host/, s3 URLs with keys...
            found.append(self.repository.split("://", 1)[-1].rpartition("@")[0])
        return found

    def _redact(self, text: str, *commands: Command) -> str:
        return redact(text, self._secrets(*commands))

    def _shown_repository(self) -> str:
        return self._redact(self.repository)

    def _error(self, subcommand: str, done: Finished) -> ResticError:
        return ResticError(
            self._redact(f"restic {subcommand} on {self.repository}: {done.describe()}: "
                         f"{tail(done.stderr) or '(no output)'}"),
            subcommand=subcommand, exit_code=done.code)

    def _must(self, subcommand: str, done: Finished) -> Finished:
        if not done.ok:
            raise self._error(subcommand, done)
        return done

    def _must_pipe(self, subcommand: str, ends: tuple[Finished, Finished],
                   other: Command) -> None:
        """Both sides of a pipe succeeded, or an error naming the one that failed first
        (and how the other ended)."""
        first = first_failure(*ends)
        if first is None:
            return
        second = ends[1] if first is ends[0] else ends[0]
        message = (f"restic {subcommand} on {self.repository}: {first.describe()}: "
                   f"{tail(first.stderr) or '(no output)'}")
        if second.stopped:
            message += f"; {second.label} was stopped"
        elif not second.ok:
            message += f"; then {second.describe()}"
        raise ResticError(self._redact(message, other), subcommand=subcommand,
                          exit_code=first.code,
                          failed="restic" if first.label.startswith("restic") else first.label)

    async def _result(self, done: Finished) -> BackupResult:
        summary = _summary(done)
        snapshot = await self.snapshot(str(summary["snapshot_id"]))
        return BackupResult(
            snapshot=snapshot, added_bytes=int(summary.get("data_added", 0)),
            total_bytes=int(summary.get("total_bytes_processed", 0)),
            files=int(summary.get("total_files_processed", 0)),
            seconds=float(summary.get("total_duration", done.seconds)))

    async def _discard_incomplete(self, done: Finished) -> None:
        """A backup that skipped unreadable files saved a snapshot anyway: forget it, so
        that a run's retry does not leave two snapshots with its tag."""
        with contextlib.suppress(ResticError, ValueError, KeyError):
            await self.forget_ids([str(_summary(done)["snapshot_id"])])

    async def _exists(self) -> bool:
        done = await self._run("cat", "config")
        if done.ok:
            return True
        if NO_REPOSITORY in done.stderr:
            return False
        raise self._error("cat config", done)

    @contextlib.asynccontextmanager
    async def _init_lock(self) -> AsyncIterator[Path | None]:
        """An exclusive flock on the parent directory of a local repository, yielding its
        path (remote ones: nothing to lock here, None)."""
        local = _local_path(self.repository)
        if local is None:
            yield None
            return
        parent = local.absolute().parent
        parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                        raise
                await asyncio.sleep(_INIT_LOCK_POLL_SECONDS)
            yield local
        finally:
            os.close(fd)  # releases the lock


def _local_path(repository: str) -> Path | None:
    if repository.startswith("local:"):
        return Path(repository.removeprefix("local:"))
    if re.match(r"^[a-z0-9]+:", repository) and not repository.startswith("/"):
        return None  # s3:, sftp:, rest:, b2:, rclone:...
    return Path(repository)


def _missing(paths: Sequence[Path]) -> list[str]:
    """Paths with nothing at them (a dangling symlink is something: restic stores it)."""
    return [str(p) for p in paths if not os.path.lexists(p)]


def _tag_args(tags: Sequence[str]) -> list[str]:
    """One `--tag` holding all tags: restic reads it as "every one of these"."""
    for tag in tags:
        if not tag or "," in tag or tag != tag.strip():
            raise ValueError(f"restic tag {tag!r}: tags are non-empty, without commas or "
                             f"surrounding spaces")
    return [f"--tag={','.join(tags)}"] if tags else []


def _check_snapshot_id(snapshot_id: str) -> None:
    if not _SNAPSHOT_ID.match(snapshot_id):
        raise ValueError(f"{snapshot_id!r} is not a restic snapshot id")


def _check_filename(filename: str) -> None:
    if not filename or "/" in filename or filename in (".", "..") or "\0" in filename:
        raise ValueError(f"{filename!r} is not a plain file name")


def _json(done: Finished, subcommand: str) -> dict[str, Any]:
    value = _parse(done, subcommand)
    if not isinstance(value, dict):
        raise ResticError(f"restic {subcommand}: expected a JSON object",
                          subcommand=subcommand)
    return value


def _json_list(done: Finished, subcommand: str) -> list[dict[str, Any]]:
    value = _parse(done, subcommand)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ResticError(f"restic {subcommand}: expected a JSON list", subcommand=subcommand)
    return [item for item in value if isinstance(item, dict)]


def _parse(done: Finished, subcommand: str) -> Any:
    """The first JSON value of the output (some subcommands print text after it)."""
    text = done.stdout.decode(errors="replace").lstrip()
    try:
        value, _ = json.JSONDecoder().raw_decode(text)
    except ValueError:
        raise ResticError(f"restic {subcommand}: output is not JSON: {tail(text, 300)!r}",
                          subcommand=subcommand) from None
    return value


def _summary(done: Finished) -> dict[str, Any]:
    """The `"message_type": "summary"` line of `backup --json` (status lines, if any, and
    anything unparsable are skipped)."""
    for line in reversed(done.stdout.decode(errors="replace").splitlines()):
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if isinstance(message, dict) and message.get("message_type") == "summary" \
                and message.get("snapshot_id"):
            return message
    raise ResticError(f"restic backup printed no summary: {tail(done.stderr, 300)}",
                      subcommand="backup", exit_code=done.code)

