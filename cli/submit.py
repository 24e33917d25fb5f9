"""`guardians submit DIR`: what CI runs to send a release candidate into the pipeline.

CI knows what a release changes, but it should not have to speak the event contract: it
lays the change out in a directory (most of it is already there in a repository) and this
command builds the signed `change.submitted` from it. One documented layout, so that what
the migration guardian assesses is exactly what the directory holds:

    DIR/migrations/           database migrations, applied in name order (Diesel's order:
                              the name up to its first `_`, dashes removed), any mix of
      NNN_name/up.sql           a folder per migration with up.sql and optional down.sql
      NNN_name/down.sql           (read by the migration guardian's own folder reader),
      NNN_name.up.sql           golang-migrate style pairs (.up.sql, optional .down.sql),
      NNN_name.sql              plain .sql files (up only: no rollback script)
    DIR/config/before/**      the configuration files as they are now, and as the release
    DIR/config/after/**       ships them (.yaml, .yml, .json, .toml), paired by relative
                              path; each is flattened to dotted keys (`db.pool.max_size`;
                              a list is one value, as JSON) and every key added, removed or
                              changed is a config diff, values as text
    DIR/dependencies.before.txt   pip-style pins (`name==version`, what `pip freeze`,
    DIR/dependencies.after.txt    pip-compile and `uv export` print): every package added,
                              removed or changed is a dependency diff (ecosystem pypi);
                              names are compared PEP 503-normalised; comments, option lines
                              (-r, -e, --hash) and environment markers are ignored
    DIR/*.tfplan.json         `terraform show -json plan.out` output, one file per stack
                              (named by the file: prod.tfplan.json is `prod`), verbatim

Every part is optional (a release with none of them still deploys through the pipeline);
`--migrations PATH` reads the migrations from elsewhere. Anything the guardian would choke
on is refused here, before sending, with exit 2 and the input named: a directory that is
not there, an invalid version or service name, a down.sql without its up.sql, a folder in
migrations/ without an up.sql, a config file that does not parse, a requirement that is
not a pin, a plan that is not JSON, a change over Kafka's 1 MB message limit.

The event is signed with the key in the environment, as every command (cli/publish.py):
GUARDIANS_SIGNER (`ci`) and GUARDIANS_SIGNING_KEY or GUARDIANS_SIGNING_KEY_FILE.
`--dry-run` builds and prints the event without a key or a broker (a pull request's check).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from schemas.events.change import (
        ChangeSubmitted,
        ConfigDiff,
        DependencyDiff,
        InfrastructurePlan,
        MigrationScript,
    )

MIGRATIONS_DIR = "migrations"
CONFIG_DIR = "config"
DEPENDENCIES_BEFORE = "dependencies.before.txt"
DEPENDENCIES_AFTER = "dependencies.after.txt"
PLAN_SUFFIX = ".tfplan.json"
CONFIG_SUFFIXES = (".yaml", ".yml", ".json", ".toml")
MAX_EVENT_BYTES = 1_000_000
"""Kafka's default limit is 1 MiB a message, envelope headers included."""


class OutputFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class SubmitError(Exception):
    """The directory or an option cannot make a valid change; the message names the input."""


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SubmitError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})"
                          ) from exc
    except OSError as exc:
        raise SubmitError(f"cannot read {path}: {exc.strerror}") from exc


# ------------------------------------------------------------------ migrations


def read_migrations(folder: Path) -> list[MigrationScript]:
    """The migrations in `folder`, in apply order (see the module docstring)."""
    from schemas.events.change import MigrationScript
    from services.migration.adapters.migration_folders import version_key

    if not folder.is_dir():
        raise SubmitError(f"{folder} is not a directory of migrations")
    if (folder / "up.sql").is_file():  # the folder is one migration
        return [_folder_migration(folder, folder.parent)]
    if (folder / "down.sql").is_file():
        raise SubmitError(f"{folder / 'down.sql'} has no up.sql beside it")
    entries = sorted((p for p in folder.iterdir() if not p.name.startswith(".")),
                     key=lambda p: version_key(p.name))
    names = {p.name for p in entries}
    found: list[MigrationScript] = []
    for entry in entries:
        if entry.is_dir():
            if (entry / "up.sql").is_file():
                found.append(_folder_migration(entry, folder))
            elif (entry / "down.sql").is_file():
                raise SubmitError(f"{entry / 'down.sql'} has no up.sql beside it")
            else:
                raise SubmitError(f"{entry} holds no up.sql: a migration folder has up.sql "
                                  "and optionally down.sql")
        elif entry.name.endswith(".down.sql"):
            up = entry.name.removesuffix(".down.sql") + ".up.sql"
            if up not in names:
                raise SubmitError(f"{entry} has no {up} beside it")
        elif entry.name.endswith(".sql") and entry.is_file():
            down = None
            if entry.name.endswith(".up.sql"):
                down_file = folder / (entry.name.removesuffix(".up.sql") + ".down.sql")
                down = _read(down_file) if down_file.is_file() else None
            found.append(MigrationScript(name=entry.name, up_sql=_read(entry), down_sql=down))
    return found


def _folder_migration(folder: Path, relative_to: Path) -> MigrationScript:
    """The migration guardian's reader (`NNN_name/up.sql`), with errors naming the file."""
    from services.migration.adapters.migration_folders import read_migration

    try:
        return read_migration(folder, relative_to)
    except UnicodeDecodeError as exc:
        raise SubmitError(f"{folder}: up.sql or down.sql is not UTF-8 text ({exc.reason} at "
                          f"byte {exc.start})") from exc
    except OSError as exc:
        raise SubmitError(f"cannot read {exc.filename or folder}: {exc.strerror}") from exc


# ------------------------------------------------------------------ configuration


def _config_text(value: Any) -> str:
    """A leaf value as text: strings as they are, everything else as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def flatten(document: Any, source: str) -> dict[str, str]:
    """A configuration document as dotted keys and text values; a mapping nests, anything
    else (a scalar, a list, an empty mapping) is one value."""
    if document is None:
        return {}
    if not isinstance(document, Mapping):
        raise SubmitError(f"{source}: the top level is a {type(document).__name__}, not a "
                          "mapping of keys")
    flat: dict[str, str] = {}

    def walk(node: Mapping[Any, Any], prefix: str) -> None:
        for key, value in node.items():
            path = f"{prefix}{key}"
            if isinstance(value, Mapping) and value:
                walk(value, path + ".")
            else:
                flat[path] = _config_text(value)

    walk(document, "")
    return flat


def _load_config(path: Path) -> Any:
    text = _read(path)
    if path.suffix == ".toml":
        import tomllib

        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise SubmitError(f"{path} is not valid TOML: {exc}") from exc
    if path.suffix == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise SubmitError(f"{path} is not valid JSON: {exc}") from exc
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SubmitError(f"{path} is not valid YAML: {exc}") from exc


def _config_files(folder: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        if path.suffix not in CONFIG_SUFFIXES:
            raise SubmitError(f"{path}: only {', '.join(CONFIG_SUFFIXES)} files are compared; "
                              "move other files out of the config directory")
        files[relative.as_posix()] = path
    return files


def read_config_diffs(folder: Path) -> list[ConfigDiff]:
    """Every key added, removed or changed between `folder/before` and `folder/after`."""
    from pydantic import ValidationError

    from schemas.events.change import ConfigDiff

    before_dir, after_dir = folder / "before", folder / "after"
    for side in (before_dir, after_dir):
        if not side.is_dir():
            raise SubmitError(f"{side} is not a directory: {folder} needs before/ (the "
                              "configuration now, empty for a first release) and after/")
    before, after = _config_files(before_dir), _config_files(after_dir)
    diffs: list[ConfigDiff] = []
    for name in sorted(before.keys() | after.keys()):
        old = flatten(_load_config(before[name]), str(before[name])) if name in before else {}
        new = flatten(_load_config(after[name]), str(after[name])) if name in after else {}
        for path in sorted(old.keys() | new.keys()):
            if old.get(path) == new.get(path):
                continue
            try:
                diffs.append(ConfigDiff(file=name, path=path, before=old.get(path),
                                        after=new.get(path)))
            except ValidationError as exc:
                raise SubmitError(f"{folder}/*/{name}: key {path!r}: "
                                  f"{exc.errors()[0]['msg']}") from exc
    return diffs


# ------------------------------------------------------------------ dependencies

_PIN = re.compile(r"^([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(?:\[[^\]]*\])?\s*"
                  r"===?\s*(\S+)$")


def normalise(name: str) -> str:
    """PEP 503: `Foo_Bar.baz` and `foo-bar-baz` are the same package."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _logical_lines(text: str) -> Iterable[tuple[int, str]]:
    """Lines with pip's continuations (`\\` at the end) joined, numbered by their first."""
    pending, start = "", 0
    for number, line in enumerate(text.splitlines(), 1):
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        yield start, pending + line
        pending = ""
    if pending:
        yield start, pending


def read_pins(path: Path) -> dict[str, str]:
    """`name==version` pins by normalised name; comments, option lines and markers dropped."""
    pins: dict[str, tuple[str, int]] = {}
    for number, line in _logical_lines(_read(path)):
        text = re.sub(r"(^|\s)#.*$", "", line).strip()
        if not text or text.startswith("-"):
            continue
        text = re.split(r"\s--?[A-Za-z]", f" {text}", maxsplit=1)[0].strip()  # --hash=...
        text = text.split(";", 1)[0].strip()  # environment markers
        match = _PIN.match(text)
        if match is None:
            raise SubmitError(f"{path}:{number}: {line.strip()!r} is not a pin: write "
                              "name==version (as pip freeze, pip-compile or uv export do)")
        name, version = normalise(match.group(1)), match.group(2)
        if name in pins and pins[name][0] != version:
            raise SubmitError(f"{path}:{number}: {name} is pinned again, to {version} (line "
                              f"{pins[name][1]} says {pins[name][0]})")
        pins[name] = (version, number)
    return {name: version for name, (version, _) in pins.items()}


def read_dependency_diffs(before: Path, after: Path) -> list[DependencyDiff]:
    """Every package added, removed or changed from the `before` pins to the `after` pins."""
    from pydantic import ValidationError

    from schemas.events.change import DependencyDiff, Ecosystem

    old, new = read_pins(before), read_pins(after)
    diffs: list[DependencyDiff] = []
    for name in sorted(old.keys() | new.keys()):
        if old.get(name) == new.get(name):
            continue
        try:
            diffs.append(DependencyDiff(name=name, ecosystem=Ecosystem.PYPI,
                                        before=old.get(name), after=new.get(name)))
        except ValidationError as exc:
            raise SubmitError(f"{after if name in new else before}: {name}: "
                              f"{exc.errors()[0]['msg']}") from exc
    return diffs


# ------------------------------------------------------------------ infrastructure


def read_infrastructure_plans(directory: Path) -> list[InfrastructurePlan]:
    """`DIR/*.tfplan.json`, verbatim, each checked to be a JSON object."""
    from schemas.events.change import InfrastructurePlan

    plans = []
    for path in sorted(directory.glob(f"*{PLAN_SUFFIX}")):
        content = _read(path)
        try:
            document = json.loads(content)
        except json.JSONDecodeError as exc:
            raise SubmitError(f"{path} is not JSON (line {exc.lineno} column {exc.colno}: "
                              f"{exc.msg}): write it with `terraform show -json plan.out`"
                              ) from exc
        if not isinstance(document, dict):
            raise SubmitError(f"{path} is not a Terraform JSON plan (not a JSON object)")
        name = path.name.removesuffix(PLAN_SUFFIX) or path.name
        plans.append(InfrastructurePlan(name=name, content=content))
    return plans


# ------------------------------------------------------------------ the change


@dataclass(frozen=True)
class Options:
    """The command line, as `build_change` reads it."""

    service: str
    version: str
    previous_version: str | None = None
    artifact: str | None = None
    change_id: str | None = None
    submitted_by: str | None = None
    migrations: Path | None = None
    """Where the migrations are (default: DIR/migrations, when it exists)."""


_OPTION_OF = {"change_id": "--change-id", "service": "--service", "version": "--version",
              "previous_version": "--previous-version", "artifact": "--artifact",
              "submitted_by": "--submitted-by"}


def default_change_id(service: str, version: str) -> str:
    """`<service>-<version>-<6 random hex>`, the version made fit for a change id."""
    import secrets

    safe = re.sub(r"[^A-Za-z0-9._:-]+", "-", version).strip("-") or "v"
    return f"{service}-{safe[:128 - len(service) - 8]}-{secrets.token_hex(3)}"


def default_submitter() -> str:
    """The CI user (GitHub, GitLab), else the signer, else the login name."""
    for variable in ("GITHUB_ACTOR", "GITLAB_USER_LOGIN", "GUARDIANS_SIGNER", "USER"):
        value = os.environ.get(variable, "").strip()
        if value:
            return value
    return "ci"


def build_change(directory: Path, options: Options) -> ChangeSubmitted:
    """The `change.submitted` that `directory` describes; raises SubmitError."""
    from pydantic import ValidationError

    from schemas.events.change import ChangeSubmitted

    if not directory.is_dir():
        raise SubmitError(f"DIR {directory} is not a directory")
    migrations_dir = options.migrations or directory / MIGRATIONS_DIR
    migrations = read_migrations(migrations_dir) if (
        options.migrations is not None or migrations_dir.exists()) else []
    config_dir = directory / CONFIG_DIR
    config = read_config_diffs(config_dir) if config_dir.exists() else []
    before, after = directory / DEPENDENCIES_BEFORE, directory / DEPENDENCIES_AFTER
    if before.exists() != after.exists():
        present, absent = (before, after) if before.exists() else (after, before)
        raise SubmitError(f"{present} needs {absent} beside it (empty for no dependencies)")
    dependencies = read_dependency_diffs(before, after) if before.exists() else []
    plans = read_infrastructure_plans(directory)
    try:
        event = ChangeSubmitted(
            change_id=options.change_id or default_change_id(options.service, options.version),
            service=options.service, version=options.version,
            previous_version=options.previous_version, artifact=options.artifact,
            submitted_by=(default_submitter() if options.submitted_by is None
                          else options.submitted_by),
            migrations=tuple(migrations), config_diffs=tuple(config),
            dependency_diffs=tuple(dependencies), infrastructure_plans=tuple(plans))
    except ValidationError as exc:
        raise SubmitError(_explain(exc, derived_id=options.change_id is None)) from exc
    size = len(event.model_dump_json().encode())
    if size > MAX_EVENT_BYTES:
        raise SubmitError(f"the change is {size:,} bytes, over Kafka's {MAX_EVENT_BYTES:,}-byte "
                          f"message limit; the largest parts: {_largest(event)}")
    return event


def _explain(exc: Any, derived_id: bool) -> str:
    """A pydantic ValidationError in the command line's words (`--version 'a b': ...`). A
    change id made from an invalid service or version is not an error of its own."""
    parts = []
    for error in exc.errors():
        loc = error["loc"]
        field = str(loc[0]) if loc else ""
        if derived_id and field == "change_id":
            continue
        option = _OPTION_OF.get(field)
        if option:
            parts.append(f"{option} {error.get('input')!r}: {_message(field, error['msg'])}")
        else:
            parts.append(f"{'.'.join(map(str, loc))}: {error['msg']}")
    return "; ".join(parts) or str(exc)


def _message(field: str, msg: str) -> str:
    if field == "service":
        return "a service name is lowercase letters, digits, - and _ (as guardians.yaml)"
    if field == "change_id":
        return "a change id is letters, digits and . _ : - (at most 128)"
    if field in ("version", "previous_version"):
        return "a version is 1 to 128 characters without spaces"
    return msg


def _largest(event: ChangeSubmitted) -> str:
    sizes = [(len(m.up_sql) + len(m.down_sql or ""), f"migration {m.name}")
             for m in event.migrations]
    sizes += [(len(p.content), f"plan {p.name}") for p in event.infrastructure_plans]
    sizes.sort(reverse=True)
    return ", ".join(f"{what} ({size:,} bytes)" for size, what in sizes[:3]) or "none"


def describe(event: ChangeSubmitted) -> list[str]:
    """What the change carries, in a few lines."""
    versions = (f"{event.previous_version} → {event.version}" if event.previous_version
                else event.version)
    lines = [f"change {event.change_id}: {event.service} {versions}, by {event.submitted_by}"]
    if event.migrations:
        lines.append(f"  {len(event.migrations)} migration(s): " + ", ".join(
            f"{m.name}{'' if m.down_sql is not None else ' (no down)'}"
            for m in event.migrations))
    if event.config_diffs:
        added = sum(d.before is None for d in event.config_diffs)
        removed = sum(d.after is None for d in event.config_diffs)
        files = sorted({d.file for d in event.config_diffs})
        lines.append(f"  {len(event.config_diffs)} config key(s) in {', '.join(files)}: "
                     f"{added} added, {removed} removed, "
                     f"{len(event.config_diffs) - added - removed} changed")
    if event.dependency_diffs:
        lines.append(f"  {len(event.dependency_diffs)} dependency change(s): " + ", ".join(
            f"{d.name} {d.before or '(new)'} → {d.after or '(removed)'}"
            for d in event.dependency_diffs[:8])
            + (", …" if len(event.dependency_diffs) > 8 else ""))
    if event.infrastructure_plans:
        lines.append("  infrastructure plan(s): "
                     + ", ".join(p.name for p in event.infrastructure_plans))
    if len(lines) == 1:
        lines.append("  no migrations, config, dependency or infrastructure changes "
                     "(a code-only release)")
    return lines


def command(
    directory: Annotated[Path, typer.Argument(
        help="The change's directory: migrations/, config/before|after/, "
             "dependencies.before|after.txt, *.tfplan.json (all optional).",
        show_default=False)],
    service: Annotated[str, typer.Option(
        "--service", "-s", help="The managed service, as guardians.yaml names it.")],
    version: Annotated[str, typer.Option(
        "--version", help="The version this release deploys.")],
    previous_version: Annotated[str | None, typer.Option(
        "--previous-version", help="The version running now (omit for a first release).")
    ] = None,
    artifact: Annotated[str | None, typer.Option(
        "--artifact", help="The release artifact: an image reference or a purl.")] = None,
    change_id: Annotated[str | None, typer.Option(
        "--change-id", help="The change id (default: <service>-<version>-<6 random hex>).")
    ] = None,
    submitted_by: Annotated[str | None, typer.Option(
        "--submitted-by", help="Who submits (default: $GITHUB_ACTOR, $GITLAB_USER_LOGIN, "
                               "the signer, $USER).")] = None,
    migrations: Annotated[Path | None, typer.Option(
        "--migrations", help="Read the migrations from here instead of DIR/migrations.")
    ] = None,
    output: Annotated[OutputFormat, typer.Option(
        "--format", help="text, or json ({change_id, id, type, signer, event}).")
    ] = OutputFormat.TEXT,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Build and print the event; sign and send nothing (needs no key "
                          "and no broker).")] = False,
) -> None:
    """Submit a release candidate: build change.submitted from DIR, sign it, send it.

    DIR holds any of (see the README's "CI integration"):
      migrations/    NNN_name/up.sql (+ down.sql) folders, NNN_name.up.sql
                     (+ .down.sql) pairs or NNN_name.sql files, in name order
      config/before/, config/after/
                     .yaml/.yml/.json/.toml files now and after the release,
                     compared key by key (dotted paths; a list is one value)
      dependencies.before.txt, dependencies.after.txt
                     pip-style pins (name==version), compared by package
      *.tfplan.json  `terraform show -json` plans, sent verbatim
    Signed with GUARDIANS_SIGNER and GUARDIANS_SIGNING_KEY (or its _FILE).
    Exit 2 for invalid input, naming it.

    Example: guardians submit . -s shop --version 2.4.0 --format json
    """
    options = Options(service=service, version=version, previous_version=previous_version,
                      artifact=artifact, change_id=change_id, submitted_by=submitted_by,
                      migrations=migrations)
    try:
        event = build_change(directory, options)
    except SubmitError as exc:
        typer.echo(f"guardians submit: {exc}", err=True)
        raise typer.Exit(2) from exc
    document: dict[str, Any] = {"change_id": event.change_id, "dry_run": dry_run,
                                "topic": event.TOPIC, "type": event.ce_type()}
    if dry_run:
        if output is OutputFormat.JSON:
            typer.echo(json.dumps({**document, "event": event.model_dump(mode="json")},
                                  ensure_ascii=False))
        else:
            typer.echo("\n".join(describe(event)))
            typer.echo("dry run, not sent; the event:")
            typer.echo(event.model_dump_json(indent=1))
        return
    from cli.publish import PublishError, publish

    try:
        envelope = publish(event)
    except PublishError as exc:
        typer.echo(f"guardians submit: {exc}", err=True)
        raise typer.Exit(2) from exc
    if output is OutputFormat.JSON:
        typer.echo(json.dumps({**document, "id": envelope.id, "signer": envelope.signer,
                               "event": event.model_dump(mode="json")}, ensure_ascii=False))
    else:
        typer.echo("\n".join(describe(event)))
        typer.echo(f"sent {envelope.type} {envelope.id}, signed by {envelope.signer}; "
                   f"follow it: guardians status {event.change_id}")


def register(app: typer.Typer) -> None:
    app.command("submit")(command)
