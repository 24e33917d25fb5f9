"""Issue 3, section 2: rollback verification over the real corpus (Lemmy, crates.io).

    source .cache/stack.env && .venv/bin/python bench/corpus_rollback.py \
        [--compare-dsn postgresql://postgres@127.0.0.1:55499/postgres]

Each project's migrations run in Diesel's order (folder names, dashes ignored) on ONE
scratch database per project, created and dropped on the server of GUARDIANS_DATABASE_URL
(or --dsn). Per migration: up (committed, as the runner would), snapshot, down, compare with
the snapshot taken before the up, up again. When both scripts can run in a transaction, the
down and the second up run inside one transaction that is then rolled back, so a defective
down cannot poison the chain: the next migration starts from the first up's state.

Classes: pass; harmless (column order, function layout); real defect (the down errors,
leaves an object behind, loses or changes one, or the up does not run again); environment
failure (the server lacks an extension, or the script fails only on --compare-dsn's server);
up fails. Writes docs/corpus-rollback.md (or --report) and prints it. The corpus is read at
run time from ../shared/corpus; where it is absent the run says so and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/corpus_rollback.py` without PYTHONPATH
    sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

from services.migration.adapters.catalog_snapshot import take_snapshot  # noqa: E402
from services.migration.adapters.migration_folders import migration_folders  # noqa: E402
from services.migration.adapters.runner import StatementFailure, run_script  # noqa: E402
from services.migration.adapters.shadow import (  # noqa: E402
    redacted,
    scratch_database,
    server_version,
)
from services.migration.adapters.statements import ScriptPlan, plan_script  # noqa: E402
from services.migration.domain.catalog import (  # noqa: E402
    CatalogDifference,
    CatalogSnapshot,
    Change,
    compare,
    creation_time_noise,
)
from services.runtime.settings import RuntimeSettings  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus" / "migrations"
PROJECTS = ("lemmy", "crates-io")
DIESEL_TABLE = """
CREATE TABLE IF NOT EXISTS __diesel_schema_migrations (
    version VARCHAR(50) PRIMARY KEY NOT NULL,
    run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
)"""
_MISSING_EXTENSION = re.compile(r'extension "([^"]+)" is not available')


class Verdict(StrEnum):
    PASS = "pass"
    HARMLESS = "harmless"
    DEFECT = "real defect"
    ENVIRONMENT = "environment failure"
    UP_FAILS = "up fails"
    NOT_RUN = "not run"


@dataclass(frozen=True)
class Outcome:
    migration: str
    verdict: Verdict
    reason: str = ""
    noise: tuple[str, ...] = ()
    """Differences the comparison left out on purpose (a view's folded creation time)."""
    errored: bool = False
    """A script raised an error (not only a catalog difference)."""


@dataclass
class ProjectRun:
    project: str
    outcomes: list[Outcome]
    seconds: float
    stopped_at: int | None = None
    """The index of the migration after which the chain could not go on."""


def _summary(d: CatalogDifference) -> str:
    if d.detail:
        return f"{d.change}: {d.object} ({d.detail})"
    if d.change is Change.REFORMATTED:
        return f"{d.change}: {d.object} (layout or comments only)"
    short = len(d.before or "") + len(d.after or "") < 160
    if d.change is Change.REORDERED or (d.change is Change.CHANGED and short):
        return f"{d.change}: {d.object} ({d.before} -> {d.after})"
    return f"{d.change}: {d.object}"


def _describe(differences: tuple[CatalogDifference, ...], limit: int = 4) -> str:
    shown = [_summary(d) for d in differences[:limit]]
    more = len(differences) - limit
    return "; ".join(shown) + (f"; and {more} more" if more > 0 else "")


def _failure(what: str, failure: StatementFailure) -> str:
    return f"{what} at line {failure.line}: {failure.message} [{failure.sqlstate}]"


def _without_extensions(plan: ScriptPlan, extensions: set[str]) -> ScriptPlan:
    """The up script minus its CREATE EXTENSION statements for extensions the server lacks."""
    pattern = re.compile(r"^CREATE\s+EXTENSION\s+(IF\s+NOT\s+EXISTS\s+)?\"?(\w+)", re.IGNORECASE)
    kept = tuple(s for s in plan.statements
                 if not ((m := pattern.match(s.text)) and m.group(2) in extensions))
    return replace(plan, statements=kept)


class ProjectCheck:
    """One project's chain on one scratch database."""

    def __init__(self, conn: asyncpg.Connection, version: int) -> None:
        self.conn = conn
        self.version = version

    async def migration(self, folder: Path, before: CatalogSnapshot
                        ) -> tuple[Outcome, CatalogSnapshot | None]:
        """The outcome, and the snapshot the next migration starts from (None: stop here)."""
        name = folder.name
        up = plan_script(f"{name}/up.sql", (folder / "up.sql").read_text(), self.version)
        run = await run_script(self.conn, up)
        if run.failure:
            return await self._up_failed(name, up, run.failure)
        after_up = await take_snapshot(self.conn)
        down_path = folder / "down.sql"
        if not down_path.exists():
            return Outcome(name, Verdict.DEFECT, "no down.sql"), after_up
        down = plan_script(f"{name}/down.sql", down_path.read_text(), self.version)
        if up.in_transaction and down.in_transaction:
            transaction = self.conn.transaction()
            await transaction.start()
            try:
                outcome, _ = await self._down_and_up_again(name, up, down, before, keep=False)
            finally:
                await transaction.rollback()
            return outcome, after_up
        # CONCURRENTLY and friends: run for real; the state after the second up continues.
        outcome, state = await self._down_and_up_again(name, up, down, before, keep=True)
        if state is None:
            # A failed autocommit statement keeps what ran before it: continue only if that
            # left the first up's state intact.
            now = await take_snapshot(self.conn)
            state = after_up if not compare(after_up, now) else None
        return outcome, state

    async def _down_and_up_again(
        self, name: str, up: ScriptPlan, down: ScriptPlan, before: CatalogSnapshot, *,
        keep: bool,
    ) -> tuple[Outcome, CatalogSnapshot | None]:
        """`keep`: the state after the second up is where the chain continues (else the
        caller rolls this back and continues from the first up's state)."""
        empty = "" if down.statements else "down.sql has no statements; "
        run = await run_script(self.conn, down)
        if run.failure:
            return Outcome(name, Verdict.DEFECT, _failure("down errors", run.failure),
                           errored=True), None
        after_down = await take_snapshot(self.conn)
        differences = compare(before, after_down)
        noise = creation_time_noise(before, after_down)
        again = await run_script(self.conn, up)
        if again.failure:
            reason = _failure("up does not run again after the down", again.failure)
            if differences:
                reason = f"{_describe(differences)}; {reason}"
            return Outcome(name, Verdict.DEFECT, empty + reason, noise, errored=True), None
        next_state = await take_snapshot(self.conn) if keep else before
        if any(not d.harmless for d in differences):
            return Outcome(name, Verdict.DEFECT, empty + _describe(differences), noise), next_state
        if differences:
            return Outcome(name, Verdict.HARMLESS, _describe(differences), noise), next_state
        return Outcome(name, Verdict.PASS, "", noise), next_state

    async def _up_failed(self, name: str, up: ScriptPlan, failure: StatementFailure
                         ) -> tuple[Outcome, CatalogSnapshot | None]:
        missing = _MISSING_EXTENSION.search(failure.message)
        if not missing:
            return Outcome(name, Verdict.UP_FAILS, _failure("up fails", failure),
                           errored=True), None
        # Later migrations need this one's tables: apply it without the extension, and say so.
        retry = await run_script(self.conn, _without_extensions(up, {missing.group(1)}))
        reason = f"extension {missing.group(1)} is not available on this server"
        if retry.failure:
            return Outcome(name, Verdict.ENVIRONMENT,
                           f"{reason}; {_failure('the rest of the up fails', retry.failure)}"
                           ), None
        return Outcome(name, Verdict.ENVIRONMENT,
                       f"{reason}; applied the up without CREATE EXTENSION {missing.group(1)} "
                       "so the chain continues; the down is not verified"
                       ), await take_snapshot(self.conn)


async def check_project(dsn: str, folder: Path) -> ProjectRun:
    started = time.perf_counter()
    migrations = migration_folders(folder)
    outcomes: list[Outcome] = []
    stopped_at = None
    async with scratch_database(dsn, statement_timeout_s=600) as conn:
        check = ProjectCheck(conn, (await server_version(conn))[0])
        # Diesel's own bookkeeping table, which the runner creates before any migration
        # (Lemmy's 2025-08-01-000017 puts a trigger on it).
        await conn.execute(DIESEL_TABLE)
        state: CatalogSnapshot | None = await take_snapshot(conn)
        for index, migration in enumerate(migrations):
            assert state is not None
            outcome, state = await check.migration(migration, state)
            outcomes.append(outcome)
            if state is None:
                stopped_at = index
                outcomes.extend(Outcome(m.name, Verdict.NOT_RUN) for m in migrations[index + 1:])
                break
    return ProjectRun(folder.name, outcomes, time.perf_counter() - started, stopped_at)


@dataclass
class ServerRun:
    server: str
    """`PostgreSQL 18.6`"""
    dsn: str
    """Where, without the password."""
    projects: list[ProjectRun]
    seconds: float


async def check_server(dsn: str, corpus: Path, projects: list[str]) -> ServerRun:
    started = time.perf_counter()
    runs = [await check_project(dsn, corpus / project) for project in projects]
    conn = await asyncpg.connect(dsn)
    try:
        version = (await server_version(conn))[1]
    finally:
        await conn.close()
    return ServerRun(f"PostgreSQL {version}", redacted(dsn), runs,
                     time.perf_counter() - started)


def judge_against(run: ServerRun, reference: ServerRun) -> None:
    """A script that fails on this server but passes on the reference one fails because of
    the server (too old a syntax, PostgreSQL 18's named NOT NULL constraints...), not because
    of the script: an environment failure. Differences found on both stay real defects."""
    for project, ref in zip(run.projects, reference.projects, strict=True):
        passed = {o.migration for o in ref.outcomes
                  if o.verdict in (Verdict.PASS, Verdict.HARMLESS)}
        for index, outcome in enumerate(project.outcomes):
            if outcome.errored and outcome.migration in passed:
                project.outcomes[index] = replace(
                    outcome, verdict=Verdict.ENVIRONMENT,
                    reason=f"{outcome.reason}; passes on {reference.server}")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def server_section(run: ServerRun) -> list[str]:
    lines = [
        f"## {run.server}", "",
        f"Scratch databases on {run.dsn}; wall time {run.seconds:.1f} s ("
        + ", ".join(f"{p.project} {p.seconds:.1f} s" for p in run.projects) + ").", "",
        "| project | migrations | " + " | ".join(v.value for v in Verdict) + " |",
        "|---|---:|" + "---:|" * len(Verdict),
    ]
    for project in run.projects:
        counts = [sum(o.verdict is v for o in project.outcomes) for v in Verdict]
        lines.append(f"| {project.project} | {len(project.outcomes)} | "
                     + " | ".join(str(c) for c in counts) + " |")
    lines.append("")
    for p in run.projects:
        if p.stopped_at is not None:
            last = p.outcomes[p.stopped_at]
            lines.append(f"- {p.project}: stopped at {last.migration} ({last.verdict}): the "
                         f"{len(p.outcomes) - p.stopped_at - 1} later migrations build on it, "
                         "so they were not run.")
    noisy = [(p.project, o) for p in run.projects for o in p.outcomes if o.noise]
    if noisy:
        lines += ["", "Left out of the comparison as noise (definitions that differ only by "
                  "a creation time PostgreSQL folded into a constant):", ""]
        lines += [f"- {p} {o.migration}: {', '.join(o.noise)}" for p, o in noisy]
    lines += ["", "| project | migration | class | reason |", "|---|---|---|---|"]
    lines += [f"| {p.project} | {_cell(o.migration)} | {o.verdict} | {_cell(o.reason)} |"
              for p in run.projects for o in p.outcomes
              if o.verdict not in (Verdict.PASS, Verdict.NOT_RUN)]
    return [*lines, ""]


HOW_TO_READ = """\
Each project's migrations run in Diesel's order (the folder name up to the first `_`, dashes
removed) on one scratch database per project, after the table Diesel's runner creates
(`__diesel_schema_migrations`). Per migration: up, snapshot, down, compare with the snapshot
taken before the up, up again. Down and second up run in a transaction that is rolled back
(unless a script needs autocommit), so each migration starts from the previous one's up.

- pass: the down restores the catalog exactly and the up runs again.
- harmless: only column order differs (a column dropped and re-added is now last; a view
  re-created with `SELECT *` follows it) or a function was re-created with other layout or
  comments only.
- real defect: the down errors, leaves an object behind, loses one or changes one, or the up
  does not run a second time.
- environment failure: the server lacks an extension (the up is then applied without that
  `CREATE EXTENSION` so later migrations can run; its down is not verified), or the script
  fails only on this server and passes on the other one (too old a PostgreSQL).
- up fails: the up does not apply for another reason; the project stops there, since every
  later migration builds on it (listed as not run).
"""


def report(runs: list[ServerRun], command: str, seconds: float) -> str:
    lines = ["# Rollback verification over the real corpus", "",
             f"Command: `{command}`  ", f"Wall time: {seconds:.0f} s in all.", "", HOW_TO_READ]
    for run in runs:
        lines += server_section(run)
    return "\n".join(lines)


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--dsn", help="server for the scratch databases "
                        "(default: GUARDIANS_DATABASE_URL)")
    parser.add_argument("--compare-dsn", help="a second server of another major version (e.g. "
                        "a throwaway Debian PostgreSQL 15): what fails only there is an "
                        "environment failure")
    parser.add_argument("--project", action="append", choices=PROJECTS)
    parser.add_argument("--report", type=Path, default=ROOT / "docs" / "corpus-rollback.md")
    args = parser.parse_args(argv)
    if not args.corpus.is_dir():
        print(f"corpus not found at {args.corpus}: skipped (see ../shared/corpus/README.md)")
        return 0
    dsn = args.dsn or RuntimeSettings().database_url.get_secret_value()
    projects = args.project or list(PROJECTS)
    started = time.perf_counter()
    runs = [await check_server(dsn, args.corpus, projects)]
    if args.compare_dsn:
        runs.append(await check_server(args.compare_dsn, args.corpus, projects))
        judge_against(runs[1], runs[0])
    command = " ".join(["source .cache/stack.env && .venv/bin/python bench/corpus_rollback.py",
                        *(argv if argv is not None else sys.argv[1:])])
    text = report(runs, command, time.perf_counter() - started)
    print(text)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
