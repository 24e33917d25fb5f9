"""File manifests on real temporary files: keys, hashes, symlinks, and the restored layout."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from services.backup.adapters.files import (
    CHUNK,
    SYMLINK_PREFIX,
    file_manifest,
    restored_root,
    root_names,
)
from services.backup.domain.manifest import FileEntry, compare


def make_tree(root: Path) -> Path:
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "a.txt").write_text("alpha\n")
    (root / "sub" / "b.bin").write_bytes(bytes(range(256)) * 10)
    (root / "sub" / "deeper" / "empty").write_bytes(b"")
    (root / "link").symlink_to("sub/b.bin")
    (root / "dirlink").symlink_to("sub")
    (root / "dangling").symlink_to("does/not/exist")
    (root / "emptydir").mkdir()
    os.mkfifo(root / "fifo")
    return root


def test_keys_start_with_the_paths_own_name(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "config")
    manifest = file_manifest(tree)
    assert sorted(manifest.files) == [
        "config/a.txt", "config/dangling", "config/dirlink", "config/link",
        "config/sub/b.bin", "config/sub/deeper/empty",
    ]
    assert manifest.files["config/a.txt"] == FileEntry(
        6, hashlib.sha256(b"alpha\n").hexdigest())
    assert manifest.files["config/sub/deeper/empty"].size == 0
    assert manifest.tables == {} and manifest.schema_digest is None


def test_symlinks_are_recorded_by_target_not_followed(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "data")
    files = file_manifest(tree).files
    assert files["data/link"] == FileEntry(
        len("sub/b.bin"), hashlib.sha256(SYMLINK_PREFIX + b"sub/b.bin").hexdigest())
    assert files["data/link"].sha256 != files["data/sub/b.bin"].sha256
    assert files["data/dangling"].size == len("does/not/exist")
    # The link to a directory is one entry: its content is not listed twice.
    assert not any(key.startswith("data/dirlink/") for key in files)


def test_a_root_that_is_a_file_or_a_link(tmp_path: Path) -> None:
    (tmp_path / "app.yaml").write_text("x: 1\n")
    (tmp_path / "current").symlink_to("releases/42")
    manifest = file_manifest([tmp_path / "app.yaml", tmp_path / "current"])
    assert sorted(manifest.files) == ["app.yaml", "current"]
    assert manifest.files["current"].sha256 == hashlib.sha256(
        SYMLINK_PREFIX + b"releases/42").hexdigest()


def test_several_paths_do_not_collide(tmp_path: Path) -> None:
    for side in ("a", "b"):
        (tmp_path / side / "config").mkdir(parents=True)
        (tmp_path / side / "config" / "app.yaml").write_text(side)
    (tmp_path / "uploads").mkdir()
    (tmp_path / "uploads" / "app.yaml").write_text("u")
    roots = [tmp_path / "a" / "config", tmp_path / "b" / "config", tmp_path / "uploads"]
    assert root_names(roots) == ["a/config", "b/config", "uploads"]
    assert sorted(file_manifest(roots).files) == [
        "a/config/app.yaml", "b/config/app.yaml", "uploads/app.yaml"]


def test_large_files_hash_in_chunks(tmp_path: Path) -> None:
    big = tmp_path / "blob"
    payload = os.urandom(CHUNK * 2 + 12345)
    big.write_bytes(payload)
    entry = file_manifest(big).files["blob"]
    assert entry == FileEntry(len(payload), hashlib.sha256(payload).hexdigest())


def test_missing_paths(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope"):
        file_manifest(tmp_path / "nope")
    assert file_manifest([tmp_path / "nope"], missing_ok=True).files == {}


def test_restored_root_recreates_the_absolute_path(tmp_path: Path) -> None:
    assert restored_root(Path("/tmp/r"), Path("/srv/shop/config")) == Path(
        "/tmp/r/srv/shop/config")
    assert restored_root(tmp_path, Path("/")) == tmp_path


def test_a_copy_laid_out_like_a_restore_compares_equal(tmp_path: Path) -> None:
    source = make_tree(tmp_path / "src" / "data")
    (source / "fifo").unlink()  # copytree cannot copy a FIFO
    other = tmp_path / "src" / "other.conf"
    other.write_text("k=v\n")
    target = tmp_path / "restore"
    for path in (source, other):
        copy = restored_root(target, path)
        copy.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            shutil.copytree(path, copy, symlinks=True)
        else:
            shutil.copy2(path, copy)
    expected = file_manifest([source, other])
    restored = file_manifest([restored_root(target, source), restored_root(target, other)])
    assert compare(expected, restored) == []

    (restored_root(target, source) / "sub" / "b.bin").write_bytes(b"changed")
    (restored_root(target, source) / "a.txt").unlink()
    changed = file_manifest([restored_root(target, source), restored_root(target, other)])
    assert [d.item for d in compare(expected, changed)] == [
        "file data/a.txt", "file data/sub/b.bin sha256"]
