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


def ours(paths: list[Path]) -> list[str]:
    return [PY, "-m", "cli.main", "lint", *map(str, paths), "--format", "json"]


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
