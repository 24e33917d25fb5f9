"""Read a directory of migrations laid out the Diesel way: one folder per migration, with
`up.sql` and (usually) `down.sql`, the folder name starting with its version."""

from __future__ import annotations

from pathlib import Path

from schemas.events.change import MigrationScript


def version_key(folder_name: str) -> tuple[str, str]:
    """Diesel's order: the name up to the first `_`, dashes removed, compared as text. Plain
    name order would put `2017-09-23-...` before `20170804...` (crates.io mixes both)."""
    return folder_name.split("_", 1)[0].replace("-", ""), folder_name


def migration_folders(directory: Path) -> list[Path]:
    """The migration folders (those with an `up.sql`), in apply order; files and hidden
    folders are not migrations."""
    folders = [p for p in directory.iterdir()
               if p.is_dir() and not p.name.startswith(".") and (p / "up.sql").is_file()]
    return sorted(folders, key=lambda p: version_key(p.name))


def read_migration(folder: Path, relative_to: Path | None = None) -> MigrationScript:
    """The folder as a `MigrationScript` named `<folder>/up.sql` (relative to `relative_to`)."""
    down = folder / "down.sql"
    name = folder.relative_to(relative_to) if relative_to else folder
    return MigrationScript(
        name=f"{name}/up.sql",
        up_sql=(folder / "up.sql").read_text(encoding="utf-8"),
        down_sql=down.read_text(encoding="utf-8") if down.is_file() else None,
    )


def read_migrations(directory: Path) -> list[MigrationScript]:
    return [read_migration(f, directory) for f in migration_folders(directory)]
