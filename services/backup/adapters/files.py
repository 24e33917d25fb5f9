"""File manifests: what a path source held, and where restic put it back.

A manifest lists every regular file under each backed-up path with its size and sha256
(read in 1 MiB chunks, so a large file never sits in memory), and every symlink by its
target text, not followed: restic stores a link as a link, so following it would hash
something the backup never held (or loop). A link's entry is the sha256 of
`symlink\\0<target>` with the target's length as size, so a link never matches a regular
file holding its target's text. Directories, FIFOs, sockets and devices have no content
to compare and are not listed.

Keys are relative paths whose first component is the path's own name (`config/app.yaml`
for `/etc/shop/config`), so several paths of one source do not collide; when two paths end
in the same name the shortest distinguishing tail of each is used instead
(`a/config/...`, `b/config/...`). `restic restore --target T` recreates each absolute path
beneath T, and restoring keeps those tails, so the restored copy's manifest (computed on
`restored_root(T, path)` for each path) has the same keys as the source's.

This is blocking I/O: an async caller runs it with asyncio.to_thread.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from services.backup.domain.manifest import FileEntry, Manifest

CHUNK = 1 << 20
"""Bytes read at a time while hashing."""
SYMLINK_PREFIX = b"symlink\0"


def file_manifest(root: Path | Sequence[Path], *, missing_ok: bool = False) -> Manifest:
    """Every regular file and symlink under each of `root` (a path may be a file itself).

    A path that does not exist raises FileNotFoundError, unless `missing_ok` (for a
    restored copy: its files are then simply missing from the manifest)."""
    roots = [root] if isinstance(root, Path) else list(root)
    files: dict[str, FileEntry] = {}
    for path, name in zip(roots, root_names(roots), strict=True):
        if not os.path.lexists(path):
            if missing_ok:
                continue
            raise FileNotFoundError(f"backup path {path} does not exist")
        files.update(_walk(path, name))
    return Manifest(files=dict(sorted(files.items())))


def restored_root(target: Path, original: Path) -> Path:
    """Where `restic restore --target target` put `original`: its absolute path beneath
    the target (/srv/shop/config restored to /tmp/r is /tmp/r/srv/shop/config)."""
    absolute = original.absolute()
    return target / absolute.relative_to(absolute.anchor)


def root_names(roots: Sequence[Path]) -> list[str]:
    """The key prefix of each path: its name, or as many trailing components as it takes
    to tell apart paths that end alike."""
    parts = [PurePosixPath(os.path.normpath(p.absolute())).parts[1:] for p in roots]
    names: list[str] = []
    for mine in parts:
        depth = 1
        while depth < len(mine) and any(
            other != mine and other[-depth:] == mine[-depth:] for other in parts
        ):
            depth += 1
        names.append("/".join(mine[-depth:]) if mine else "/")
    return names


def _walk(root: Path, name: str) -> dict[str, FileEntry]:
    found: dict[str, FileEntry] = {}
    entry = _entry(root)
    if entry is not None:
        found[name] = entry
    if not root.is_symlink() and root.is_dir():
        for directory, subdirs, filenames in os.walk(root, followlinks=False):
            relative = PurePosixPath(name) / Path(directory).relative_to(root).as_posix()
            # os.walk lists links to directories among subdirs, and does not enter them.
            for child in [*filenames, *subdirs]:
                child_entry = _entry(Path(directory) / child)
                if child_entry is not None:
                    found[str(relative / child)] = child_entry
    return found


def _entry(path: Path) -> FileEntry | None:
    mode = path.lstat().st_mode
    if stat.S_ISLNK(mode):
        target = os.fsencode(path.readlink())
        return FileEntry(size=len(target),
                         sha256=hashlib.sha256(SYMLINK_PREFIX + target).hexdigest())
    if stat.S_ISREG(mode):
        return _hash_file(path)
    return None


def _hash_file(path: Path) -> FileEntry:
    digest = hashlib.sha256()
    size = 0
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    with path.open("rb", buffering=0) as handle:
        while read := handle.readinto(view):
            digest.update(view[:read])
            size += read
    return FileEntry(size=size, sha256=digest.hexdigest())
