"""`guardians lint PATH...`: the migration guardian's static analysis, without Kafka.

A PATH is a .sql file, a migration folder (up.sql, down.sql), or a directory of migrations
(*.sql files and/or migration folders, applied in name order). Each migration is graded as
its own change with the earlier ones already applied, like squawk lints file by file;
`--one-change` grades them all as one change. Exit 0: low risk; 1: medium, high or
blocked; 2: a usage error (bad path, unknown suppression rule, unreadable stats file).

Start-up is most of a lint run, so this module imports neither typer nor the domain at
import time: `run` does the work, the typer command (defined in `register`) only reads the
command line, and `plain_arguments` reads the ordinary command lines without typer, which
is what `python -m cli.main lint` does (`cli.main.main`). Anything it does not recognise
(`--help`, a bad value, an unknown option) goes to typer, which reports it as before.
"""

# No `from __future__ import annotations`: the typer command is defined inside `register`,
# after typer is imported there, so its `typer.Option(...)` annotations must be evaluated
# where the function is defined (postponed annotations would be looked up in this module's
# globals, which do not hold typer). Names only imported for type checking are quoted.

import errno
import os
import stat
import sys

TYPE_CHECKING = False  # `typing` costs more to import than a small lint run takes
if TYPE_CHECKING:
    from pathlib import Path

    import typer

    from services.migration.domain.findings import Finding
    from services.migration.domain.migration_files import Migration
    from services.migration.domain.risk_policy import Grade
    from services.migration.domain.table_stats import TableStats


FORMATS = ("text", "json", "sarif", "github")
"""`--format`'s values (typer's choice is the enum `register` builds from them; `enum` is not
imported on the plain command line's path)."""


class UsageError(Exception):
    """Bad input on the command line; the message names the input and the fix."""


class LintArguments:
    """`guardians lint`'s command line, read (the defaults are the command's). Paths are the
    text given (typer's `Path`s as `str`): `find_migrations` reads them as pathlib does."""

    __slots__ = ("paths", "output", "pg_version", "stats_file",  # noqa: RUF023 -- the order
                 "one_change", "transaction_per_file", "down", "exclude")  # of __init__

    def __init__(self, paths: "list[str]", output: str = "text",
                 pg_version: int = 18, stats_file: "str | None" = None,
                 one_change: bool = False, transaction_per_file: bool = True,
                 down: bool = False, exclude: str = "") -> None:
        self.paths = paths
        self.output = output
        self.pg_version = pg_version
        self.stats_file = stats_file
        self.one_change = one_change
        self.transaction_per_file = transaction_per_file
        self.down = down
        self.exclude = exclude
        """Rules to leave out of the report and the grade, comma-separated (squawk's
        --exclude)."""

    def _fields(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LintArguments) and self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(tuple(map(repr, self._fields())))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"LintArguments({fields})"


_VALUE_OPTIONS = {"--format": "output", "--pg-version": "pg_version", "--stats": "stats_file",
                  "--exclude": "exclude"}
_FLAGS = {"--one-change": ("one_change", True), "--no-one-change": ("one_change", False),
          "--transaction-per-file": ("transaction_per_file", True),
          "--no-transaction-per-file": ("transaction_per_file", False),
          "--down": ("down", True), "--no-down": ("down", False)}


def _canonical_int(value: str) -> bool:
    """`0|[1-9][0-9]{0,8}`: an int typer reads the same way."""
    return value == "0" or (value.isascii() and value.isdigit() and value[0] != "0"
                            and len(value) <= 9)


def plain_arguments(argv: "list[str]") -> "LintArguments | None":
    """`guardians lint`'s arguments (after `lint`) read without typer, or None to let typer
    read them.

    Only what reads the same both ways is taken: paths, and the options in `--name value` or
    `--name=value` form, each at most once, with a valid value that does not start with `-`.
    Anything else (`--help`, `--`, `-`, an unknown option, a bad or missing value, a repeated
    option, no path, shell completion) is None, and typer does what it always did.
    """
    if any(key.endswith("_COMPLETE") for key in os.environ):
        return None
    paths: list[str] = []
    values: dict[str, object] = {}
    tokens = iter(argv)
    for token in tokens:
        if not token.startswith("-"):
            if not token:
                return None
            paths.append(token)
            continue
        name, equals, value = token.partition("=")
        if name in _FLAGS and not equals:
            field, flag = _FLAGS[name]
            if field in values:
                return None
            values[field] = flag
            continue
        field = _VALUE_OPTIONS.get(name, "")
        if not field or field in values:
            return None
        if not equals:
            value = next(tokens, "")
        if not value or value.startswith("-"):
            return None
        if field == "output":
            if value not in FORMATS:
                return None
            values[field] = value
        elif field == "pg_version":
            if not _canonical_int(value):
                return None
            values[field] = int(value)
        else:
            values[field] = value
    if not paths:
        return None
    return LintArguments(paths, **values)  # type: ignore[arg-type]


def run(arguments: LintArguments) -> int:
    """Lint, print the report to stdout (usage errors to stderr); the exit code."""
    from services.migration.domain import native_sql

    try:
        excluded = excluded_rules(arguments.exclude)
        native = native_sql.enabled()
    except (UsageError, ValueError) as error:  # ValueError: a bad GUARDIANS_SQL_ENGINE
        _error(f"error: {error}")
        return 2
    if arguments.output in native_sql.FORMATS and arguments.stats_file is None and native:
        # From finding the files to the report's text in the native module: no Python object
        # per migration or finding. None: a usage error, which the code below reports.
        try:
            done = native_sql.lint_paths(
                arguments.paths, pg_version=arguments.pg_version,
                transaction_per_file=arguments.transaction_per_file,
                one_change=arguments.one_change, down=arguments.down, excluded=excluded,
                output=arguments.output)
        except native_sql.NativeError as error:
            _native_failed(error)
            done, native = None, False
        if done is not None:
            risk, report, unknown = done
            if unknown:
                return _unknown_suppressions(unknown)
            _write(report)
            return 0 if risk == "low" else 1
    try:
        migrations = find_migrations(arguments.paths)
        table_stats = None
        if arguments.stats_file is not None:
            from services.migration.domain.table_stats import TableStats, TableStatsError

            try:
                table_stats = TableStats.from_json(_read(arguments.stats_file))
            except TableStatsError as error:
                raise UsageError(f"{arguments.stats_file}: {error}; write it with `guardians "
                                 "stats dump --database-url URL -o FILE`") from error
    except UsageError as error:
        _error(f"error: {error}")
        return 2
    try:
        return _lint(arguments, migrations, excluded, table_stats, native=native)
    except native_sql.NativeError as error:
        _native_failed(error)
        return _lint(arguments, migrations, excluded, table_stats, native=False)


def _native_failed(error: Exception) -> None:
    _error(f"guardians lint: the native SQL analysis failed ({error}); the Python analysis, "
           "which finds the same, ran instead. Please report this.")


def _lint(arguments: LintArguments, migrations: "list[Migration]", excluded: frozenset[str],
          table_stats: "TableStats | None", *, native: bool) -> int:
    from services.migration.domain.change_analysis import (
        AnalysisOptions,
        analyse_migrations,
        lint_migrations,
    )
    from services.migration.domain.risk_policy import grade

    options = AnalysisOptions(pg_version=arguments.pg_version,
                              transaction_per_file=arguments.transaction_per_file,
                              lint_down_scripts=arguments.down, report_missing_down=False)
    if arguments.one_change:
        findings = analyse_migrations(migrations, options, native=native)
    else:
        findings = lint_migrations(migrations, options, native=native)
    if excluded:
        findings = [f for f in findings if f.rule not in excluded]
    unknown = [f for f in findings if f.rule == "unknown-suppression"]
    if unknown:
        return _unknown_suppressions(unknown)
    verdict = grade(findings, stats=table_stats)
    render = {"text": render_text, "json": render_json, "sarif": render_sarif,
              "github": render_github}[arguments.output]
    sys.stdout.write(render(findings, verdict))
    return 0 if verdict.risk == "low" else 1


def _write(report: bytes) -> None:
    """The report (UTF-8) to stdout, as bytes where stdout has a buffer and writes UTF-8 (a
    4 MB report is not decoded to be encoded again)."""
    buffer = getattr(sys.stdout, "buffer", None)
    encoding = (getattr(sys.stdout, "encoding", None) or "").lower().replace("-", "")
    if buffer is None or encoding != "utf8":
        sys.stdout.write(report.decode())
    else:
        sys.stdout.flush()
        buffer.write(report)


def _unknown_suppressions(unknown: "list[Finding]") -> int:
    """A suppression naming no rule is a usage error: each on stderr, exit 2."""
    for finding in unknown:
        _error(f"error: {finding.file}:{finding.line}: {finding.message}. {finding.fix}")
    return 2


def excluded_rules(names: str) -> frozenset[str]:
    """`--exclude`'s rule ids (squawk's spellings too); a UsageError naming an unknown one, or
    one that cannot be left out (syntax errors, the shadow checks)."""
    if not names.strip(", \t\n"):
        return frozenset()
    from services.migration.domain.rule_catalog import UNSUPPRESSIBLE, canonical

    rules = set()
    for name in filter(None, (part.strip() for part in names.split(","))):
        rule_id = canonical(name)
        if rule_id is None:
            raise UsageError(f"--exclude: no rule is named `{name}` (see docs/rules.md)")
        if rule_id in UNSUPPRESSIBLE:
            raise UsageError(f"--exclude: `{name}` cannot be excluded")
        rules.add(rule_id)
    return frozenset(rules)


def _error(message: str) -> None:
    """As `typer.echo(message, err=True)` writes it."""
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def find_migrations(paths: "list[str]") -> "list[Migration]":
    from pathlib import Path

    from services.migration.domain.migration_files import Migration

    migrations = []
    for path in map(Path, paths):
        if path.is_file():
            if path.suffix != ".sql":
                raise UsageError(f"{path} is not a .sql file: pass .sql files or migration "
                                 "directories")
            migrations.append(Migration(str(path), _read(path)))
        elif path.is_dir():
            found = _migrations_in(path)
            if not found:
                raise UsageError(f"{path} holds no migrations: expected *.sql files or "
                                 "folders with an up.sql")
            migrations.extend(found)
        else:
            raise UsageError(f"{path} does not exist: pass .sql files or migration directories")
    return migrations


def _migrations_in(folder: "Path | str") -> "list[Migration]":
    """What `Path.is_file`, `Path.iterdir` and `/` find, done on strings with `os` (the
    rules below are pathlib's): for a few hundred migrations, pathlib's objects cost more
    than the reads."""
    from services.migration.domain.migration_files import Migration

    folder = str(folder)
    up = _child(folder, "up.sql")
    if stat.S_ISREG(_mode(up)):
        down = _child(folder, "down.sql")
        return [Migration(folder, _read(up), _read(down) if stat.S_ISREG(_mode(down)) else None)]
    found = []
    for name in sorted(os.listdir(folder)):  # noqa: PTH208 -- see the docstring
        entry = _child(folder, name)
        mode = _mode(entry)
        if stat.S_ISREG(mode) and len(name) > 4 and name.endswith(".sql"):  # Path.suffix
            found.append(Migration(entry, _read(entry)))
        elif stat.S_ISDIR(mode) and stat.S_ISREG(_mode(_child(entry, "up.sql"))):
            found.extend(_migrations_in(entry))
    return found


def _child(folder: str, name: str) -> str:
    """`str(Path(folder) / name)` for a `folder` that is a `str(Path)` and a plain name."""
    if folder == ".":
        return name
    return folder + name if folder.endswith("/") else f"{folder}/{name}"


_NO_SUCH_FILE = (errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP)


def _mode(path: str) -> int:
    """The file's mode, 0 when there is none, by `Path.is_file`'s and `is_dir`'s rules: only
    these errors mean "no such file", any other is raised."""
    try:
        return os.stat(path).st_mode  # noqa: PTH116 -- see _migrations_in
    except OSError as error:
        if error.errno not in _NO_SUCH_FILE:
            raise
        return 0
    except ValueError:  # not representable as a path (pathlib says False too)
        return 0


def _read(path: "Path | str") -> str:
    try:
        with open(path, encoding="utf-8") as file:  # noqa: PTH123 -- as Path.read_text
            return file.read()
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"cannot read {path}: {error}") from error


def render_json(findings: "list[Finding]", verdict: "Grade") -> str:
    """The report as JSON: `{"risk", "findings": [{"rule", "severity", "message", "file",
    "line", "column", "statement", "fix", "effect", "kind", "target", "lock", "preexisting",
    "rollback"}...], "causes": [indexes]}`.

    Written out here rather than by `json.dumps` (a unit test checks the two are the same
    bytes): the same messages, fixes, file names and statements recur across findings, and
    escaping each distinct string once halves the time for a few thousand findings. Enum
    members are `str`s, escaped as their values.
    """
    from json.encoder import encode_basestring_ascii as _json_string

    escaped: dict[str, str] = {}

    def string(value: str | None) -> str:
        if value is None:
            return "null"
        text = escaped.get(value)
        if text is None:
            text = escaped[value] = _json_string(value)
        return text

    def number(value: int | None) -> str:
        return "null" if value is None else int.__repr__(value)

    items = [
        f'{{"rule": {string(f.rule)}, "severity": {string(f.severity)}, '
        f'"message": {string(f.message)}, "file": {string(f.file)}, '
        f'"line": {number(f.line)}, "column": {number(f.column)}, '
        f'"statement": {string(f.statement)}, "fix": {string(f.fix)}, '
        f'"effect": {string(f.effect)}, "kind": {string(f.kind)}, '
        f'"target": {string(f.target)}, "lock": {string(f.lock)}, '
        f'"preexisting": {"true" if f.preexisting else "false"}, '
        f'"rollback": {"true" if f.rollback else "false"}}}'
        for f in findings]
    causes = ", ".join(map(int.__repr__, verdict.causes))
    return (f'{{"risk": {string(verdict.risk)}, "findings": [{", ".join(items)}], '
            f'"causes": [{causes}]}}\n')


def render_text(findings: "list[Finding]", verdict: "Grade") -> str:
    lines: list[str] = []
    current = None
    for finding in findings:
        if finding.file != current:
            current = finding.file
            lines.append(f"\n{current}")
        where = f"{finding.line}:{finding.column}" if finding.line else "-"
        lines.append(f"  {where:>8} {finding.severity.value:<7} {finding.rule}: "
                     f"{finding.message}")
        if finding.fix:
            lines.append(f"  {'':>8} fix: {finding.fix}")
    lines.append(f"\nrisk: {verdict.risk.value} ({len(findings)} findings)")
    for index in verdict.causes[:20]:
        cause = findings[index]
        lines.append(f"  because {cause.file}:{cause.line or '-'} {cause.rule}")
    if len(verdict.causes) > 20:
        lines.append(f"  ... and {len(verdict.causes) - 20} more")
    return "\n".join(lines).lstrip("\n") + "\n"


_SARIF_LEVEL = {"error": "error", "warning": "warning", "info": "note"}


def render_sarif(findings: "list[Finding]", verdict: "Grade") -> str:
    import json

    from services.migration.domain.rule_catalog import RULES

    used = sorted({f.rule for f in findings})
    results = []
    for finding in findings:
        location = {"physicalLocation": {
            "artifactLocation": {"uri": finding.file or "change"},
            "region": {"startLine": finding.line or 1, "startColumn": finding.column or 1}}}
        results.append({"ruleId": finding.rule, "ruleIndex": used.index(finding.rule),
                        "level": _SARIF_LEVEL[finding.severity.value],
                        "message": {"text": finding.message + (
                            f" Fix: {finding.fix}" if finding.fix else "")},
                        "locations": [location]})
    document = {
        "version": "2.1.0",
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "runs": [{
            "tool": {"driver": {
                "name": "guardians-lint", "informationUri": "https://example.invalid/rules",
                "rules": [{"id": rule, "shortDescription": {"text": RULES[rule].catches}}
                          for rule in used]}},
            "results": results,
            "properties": {"risk": verdict.risk.value},
        }],
    }
    return json.dumps(document) + "\n"


def _escape(text: str, *, property_value: bool = False) -> str:
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if property_value:
        text = text.replace(":", "%3A").replace(",", "%2C")
    return text


def render_github(findings: "list[Finding]", verdict: "Grade") -> str:
    command = {"error": "error", "warning": "warning", "info": "notice"}
    lines = []
    for finding in findings:
        props = f"file={_escape(finding.file or 'change', property_value=True)}"
        if finding.line:
            props += f",line={finding.line},col={finding.column or 1}"
        props += f",title={_escape(finding.rule, property_value=True)}"
        lines.append(f"::{command[finding.severity.value]} {props}::"
                     f"{_escape(finding.message)}")
    lines.append(f"risk: {verdict.risk.value}")
    return "\n".join(lines) + "\n"


def register(app: "typer.Typer") -> None:
    from enum import StrEnum
    from pathlib import Path
    from typing import Annotated

    import typer

    from cli import stats

    output_format = StrEnum("OutputFormat", {f.upper(): f for f in FORMATS})  # type: ignore[misc]
    defaults = LintArguments([])
    default_output = output_format(defaults.output)

    def lint(
        paths: Annotated[list[Path], typer.Argument(help="SQL files or migration directories.")],
        output: Annotated[output_format, typer.Option(
            "--format", help="Report format.")] = default_output,
        pg_version: Annotated[int, typer.Option(help="Target PostgreSQL major version.")] =
            defaults.pg_version,
        stats_file: Annotated[Path | None, typer.Option(
            "--stats", help="Table sizes from `guardians stats dump`.")] = None,
        one_change: Annotated[bool, typer.Option(
            help="Grade all inputs as one change (objects created in earlier files are new).")]
            = defaults.one_change,
        transaction_per_file: Annotated[bool, typer.Option(
            help="The migration runner wraps each file in a transaction.")] =
            defaults.transaction_per_file,
        down: Annotated[bool, typer.Option(
            help="Also lint down.sql scripts (as <migration>/down), with --one-change.")] =
            defaults.down,
        exclude: Annotated[str, typer.Option(
            help="Rules to leave out of the report and the grade, comma-separated "
                 "(e.g. prefer-text-field,creating-enum).")] = defaults.exclude,
    ) -> None:
        """Lint SQL migrations: findings, the overall risk grade and what caused it.

        Example: guardians lint migrations/ --format json --stats prod-stats.json
        """
        raise typer.Exit(run(LintArguments(
            [str(path) for path in paths], output, pg_version,
            None if stats_file is None else str(stats_file), one_change, transaction_per_file,
            down, exclude)))

    app.command("lint")(lint)
    stats.register(app)


def render_rules_markdown() -> str:
    """docs/rules.md: the rule reference, generated from the catalog (a test keeps it fresh)."""
    from services.migration.domain.rule_catalog import ALIASES, RULES

    lines = [
        "# Migration guardian rules",
        "",
        "Generated from `services/migration/domain/rule_catalog.py` by "
        "`cli.lint.render_rules_markdown()`; a unit test fails when this file is stale.",
        "",
        "Each finding says what a statement does (its *effect*); the risk policy alone turns "
        "effects into a grade: `cannot_run` and `validation_failed` block; `data_loss`, "
        "`breaking_rename`, `rewrite`, `fails_on_existing_rows` are high; `blocking_lock`, "
        "`backfill`, `incompatible` and `rollback_defect` medium (a rollback defect is high "
        "when the change is destructive); `missing_timeout` and `advisory` low. A finding on "
        "an object the same change created (`preexisting: false`) or in a down script grades "
        "low. With `--stats`, a lock, rewrite or backfill on a large table (>= 1,000,000 rows "
        "or >= 1 GiB) goes up one level and on a tiny one (< 10,000 rows and < 10 MiB) down "
        "one.",
        "",
        "Suppress with `-- guardians:ignore RULE[,RULE]` (next statement) or "
        "`-- guardians:ignore-file RULE[,RULE]` (whole file), or leave rules out of a whole "
        "run with `guardians lint --exclude RULE[,RULE]`. An unknown name is an "
        "`unknown-suppression` error (`guardians lint` exits 2); `syntax-error` cannot be "
        "suppressed. squawk's spellings are accepted: "
        + ", ".join(f"`{a}` = `{r}`" for a, r in sorted(ALIASES.items())) + ".",
        "",
        "| rule | severity | usual effect | catches | from |",
        "|---|---|---|---|---|",
    ]
    for rule in RULES.values():
        lines.append(f"| `{rule.id}` | {rule.severity.value} | {rule.effect.value} | "
                     f"{rule.catches} | {rule.source} |")
    return "\n".join(lines) + "\n"
