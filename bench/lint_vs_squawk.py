"""`guardians lint` against squawk on the same real migrations, in one run.

    .venv/bin/python bench/lint_vs_squawk.py [--repeat 5] [--instructions]

1. All Lemmy `up.sql` files (../shared/corpus): wall time of the whole command, Python
   start-up included, median and best of N runs each, interleaved; and findings per rule.
2. One generated file of 5,000 statements: wall time and peak memory (max RSS) of each.
3. With `--instructions`: instructions executed by each command (valgrind's callgrind, all
   threads summed), which unlike wall time on a shared machine do not move with the load.
Skips with a message when the corpus is absent.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus" / "migrations" / "lemmy"
SQUAWK = ROOT / ".venv" / "bin" / "squawk"
PY = sys.executable


def timed(cmd: list[str]) -> tuple[float, int, str]:
    """Wall seconds, peak RSS in KiB (from GNU time), stdout."""
    with tempfile.NamedTemporaryFile("r") as rusage:
        started = time.perf_counter()
        done = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rusage.name, *cmd],
                              capture_output=True, text=True, cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)
        wall = time.perf_counter() - started
        peak = int(rusage.read().strip().splitlines()[-1])
    if done.returncode not in (0, 1):
        raise SystemExit(f"{cmd[:3]} failed ({done.returncode}): {done.stderr[-2000:]}")
    return wall, peak, done.stdout


def instructions(cmd: list[str]) -> int:
    """Instructions the command executes (callgrind; a run takes ~50 times as long)."""
    done = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                           *cmd], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise SystemExit(f"valgrind failed on {cmd[:3]}: {done.stderr[-2000:]}")
    return int(found[1])


GUARDIANS = ROOT / ".venv" / "bin" / "guardians"


def ours(paths: list[Path]) -> list[str]:
    """The `guardians` command as installed (`make venv`), like squawk's own executable."""
    return [str(GUARDIANS), "lint", *map(str, paths), "--format", "json"]


def squawk(paths: list[Path]) -> list[str]:
    return [str(SQUAWK), "--reporter", "json", *map(str, paths)]


def five_thousand_statements() -> str:
    """A long but ordinary migration: tables, columns, indexes, constraints, updates."""
    parts = []
    for i in range(1000):
        parts += [
            f"CREATE TABLE t{i} (id bigint PRIMARY KEY, name text NOT NULL);",
            f"ALTER TABLE t{i} ADD COLUMN created_at timestamptz DEFAULT now();",
            f"CREATE INDEX t{i}_name_idx ON t{i} (name);",
            f"ALTER TABLE t{i} ADD CONSTRAINT t{i}_name_check CHECK (name <> '');",
            f"UPDATE t{i} SET name = 'x' WHERE id = {i};",
        ]
    return "\n".join(parts) + "\n"


EQUIVALENT = {
    "require-lock-timeout": {"require-timeout-settings"},
    "require-statement-timeout": {"require-timeout-settings"},
    "prefer-timestamp-tz": {"prefer-timestamptz"},
    # squawk files UNIQUE and PRIMARY KEY under this rule too (NOT VALID cannot apply to them)
    "constraint-missing-not-valid": {"adding-foreign-key-constraint",
                                     "adding-primary-key-constraint",
                                     "disallowed-unique-constraint"},
    "adding-serial-primary-key-field": {"adding-primary-key-constraint"},
}
"""squawk rule -> our rules that report the same thing under another id."""


def unmatched(ours_found: list[dict[str, object]], squawk_found: list[dict[str, object]]
              ) -> tuple[Counter[str], Counter[str]]:
    """Per rule, the findings of each tool with no finding of the other tool's equivalent
    rule on the same statement. squawk gives the line of the offending token (0-based),
    guardians the statement's first line: both are mapped to the statement they fall in."""
    from services.migration.domain.sql_source import parse_script

    starts: dict[str, list[int]] = {}

    def statement(file: str, line: int) -> tuple[str, int]:
        if file not in starts:
            text = (CORPUS.parent / file).read_text(encoding="utf-8")
            starts[file] = [s.line for s in parse_script(text).statements]
        return file, bisect.bisect_right(starts[file], line) - 1

    ours_at: dict[tuple[str, int], set[str]] = {}
    for f in ours_found:
        file = str(f["file"])
        file = file if file.endswith(".sql") else f"{file}/up.sql"
        if isinstance(f["line"], int):
            ours_at.setdefault(statement(_relative(file), f["line"]), set()).add(str(f["rule"]))
    theirs_at: dict[tuple[str, int], set[str]] = {}
    theirs_only: Counter[str] = Counter()
    for v in squawk_found:
        rule, line = str(v["rule_name"]), v["line"]
        assert isinstance(line, int)
        where = statement(_relative(str(v["file"])), line + 1)
        wanted = {rule} | EQUIVALENT.get(rule, set())
        theirs_at.setdefault(where, set()).update(wanted)
        if not wanted & ours_at.get(where, set()):
            theirs_only[rule] += 1
    ours_only: Counter[str] = Counter(
        rule for where, rules in ours_at.items() for rule in rules
        if rule not in theirs_at.get(where, set()))
    return theirs_only, ours_only


def _relative(file: str) -> str:
    """`lemmy/<migration>/up.sql` whether given absolute or relative to the corpus."""
    path = Path(file)
    return str(path.relative_to(CORPUS.parent)) if path.is_absolute() else file


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--instructions", action="store_true",
                        help="also count instructions with valgrind (slow)")
    args = parser.parse_args()
    if not CORPUS.is_dir():
        print(f"skipped: the corpus is not at {CORPUS}")
        return 0
    if not SQUAWK.exists():
        raise SystemExit("squawk-cli is not installed: .venv/bin/pip install squawk-cli==2.70.0")
    files = sorted(CORPUS.glob("*/up.sql"))
    print(f"machine: {os.cpu_count()} cores; load {os.getloadavg()[0]:.2f}; "
          f"{len(files)} Lemmy up.sql files")

    walls: dict[str, list[float]] = {"guardians": [], "squawk": []}
    out: dict[str, str] = {}
    for _ in range(args.repeat):  # interleaved, so load changes hit both alike
        for name, cmd in (("guardians", ours([CORPUS])), ("squawk", squawk(files))):
            wall, _, stdout = timed(cmd)
            walls[name].append(wall)
            out[name] = stdout
    g, s = statistics.median(walls["guardians"]), statistics.median(walls["squawk"])
    print("\n| tool | median wall (s) | best (s) | runs |\n|---|---|---|---|")
    for name, values in walls.items():
        print(f"| {name} | {statistics.median(values):.3f} | {min(values):.3f} | "
              f"{', '.join(f'{v:.2f}' for v in values)} |")
    print(f"\nguardians/squawk wall-time ratio: {g / s:.2f}")

    ours_rules = Counter(f["rule"] for f in json.loads(out["guardians"])["findings"])
    squawk_rules = Counter(
        re.sub(r"^prefer-timestamp-tz$", "prefer-timestamptz", v["rule_name"])
        for v in json.loads(out["squawk"])
    )
    print(f"\nfindings: guardians {sum(ours_rules.values())}, squawk {sum(squawk_rules.values())}")
    print("\n| rule | guardians | squawk |\n|---|---|---|")
    for rule in sorted(set(ours_rules) | set(squawk_rules)):
        print(f"| {rule} | {ours_rules.get(rule, 0)} | {squawk_rules.get(rule, 0)} |")

    print("\nStatement by statement: squawk findings with no equivalent of ours on the same "
          "statement, and ours with none of squawk's\n")
    print("| rule | squawk's, unmatched | ours, unmatched |\n|---|---|---|")
    theirs_only, ours_only = unmatched(json.loads(out["guardians"])["findings"],
                                       json.loads(out["squawk"]))
    for rule in sorted(set(theirs_only) | set(ours_only)):
        print(f"| {rule} | {theirs_only.get(rule, 0)} | {ours_only.get(rule, 0)} |")

    with tempfile.TemporaryDirectory() as folder:
        big = Path(folder) / "big.sql"
        big.write_text(five_thousand_statements())
        print("\n5,000 statements in one file:\n")
        print("| tool | wall (s) | peak RSS (MiB) |\n|---|---|---|")
        for name, cmd in (("guardians", ours([big])), ("squawk", squawk([big]))):
            wall, peak, _ = min((timed(cmd) for _ in range(3)), key=lambda r: r[0])
            print(f"| {name} | {wall:.3f} | {peak / 1024:.1f} |")
        if args.instructions:
            print("\ninstructions (M):\n\n| input | guardians | squawk |\n|---|---|---|")
            for label, ours_cmd, squawk_cmd in (
                    (f"Lemmy, {len(files)} files", ours([CORPUS]), squawk(files)),
                    ("5,000 statements", ours([big]), squawk([big]))):
                print(f"| {label} | {instructions(ours_cmd) / 1e6:,.0f} | "
                      f"{instructions(squawk_cmd) / 1e6:,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
