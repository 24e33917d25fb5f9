"""`guardians lint` over real projects' migrations writes what it wrote when the golden file
was made: the same report, byte for byte, for Lemmy's and crates.io's migrations.

The reports are several megabytes, so the golden file keeps each one's SHA-256, its exit
code, and its findings per rule (which say where to look when the digest differs). A change
meant to alter findings regenerates it, and its diff shows the rule counts that moved:

    PYTHONPATH=. .venv/bin/python tests/unit/migration/test_corpus_golden.py

Skipped where the corpus (../shared/corpus/migrations) is absent.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import sys
from collections import Counter
from pathlib import Path

import pytest

from cli import lint
from services.migration.domain import native_sql

ROOT = Path(__file__).resolve().parents[3]
CORPUS = ROOT.parent / "shared" / "corpus" / "migrations"
GOLDEN = Path(__file__).with_name("golden") / "corpus_lint.json"
COMMANDS = {
    "lemmy": ["lemmy", "--format", "json"],
    "crates-io": ["crates-io", "--format", "json"],
    "lemmy --one-change --down": ["lemmy", "--format", "json", "--one-change", "--down"],
    "crates-io --one-change --down --pg-version 10 --no-transaction-per-file": [
        "crates-io", "--format", "json", "--one-change", "--down", "--pg-version", "10",
        "--no-transaction-per-file"],
}


def lint_corpus(argv: list[str]) -> dict[str, object]:
    """Run `guardians lint` (in this process) from the corpus folder, so that the file names
    in the report do not depend on where the checkout is."""
    arguments = lint.plain_arguments(argv)
    assert arguments is not None
    out = io.StringIO()
    with contextlib.chdir(CORPUS), contextlib.redirect_stdout(out):
        code = lint.run(arguments)
    report = out.getvalue()
    rules = Counter(f["rule"] for f in json.loads(report)["findings"])
    return {"sha256": hashlib.sha256(report.encode()).hexdigest(), "exit": code,
            "bytes": len(report.encode()), "rules": dict(sorted(rules.items()))}


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"no corpus at {CORPUS}")
@pytest.mark.parametrize("engine", ["native", "python"])
@pytest.mark.parametrize("name", COMMANDS)
def test_the_corpus_reports_are_the_golden_ones(name: str, engine: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Both analyses write the golden bytes: the native module from finding the files to the
    report's text (`native_sql.lint_paths`), and the Python one (the reference), which the
    conftest also runs the native analysis beside, finding by finding."""
    monkeypatch.setenv(native_sql.ENGINE_VARIABLE, engine)
    golden = json.loads(GOLDEN.read_text())[name]
    got = lint_corpus(COMMANDS[name])
    assert got["rules"] == golden["rules"]
    assert got == golden, "same findings per rule, other bytes: compare the reports"


if __name__ == "__main__":
    GOLDEN.write_text(json.dumps({name: lint_corpus(argv) for name, argv in COMMANDS.items()},
                                 indent=1) + "\n")
    sys.stdout.write(f"wrote {GOLDEN}\n")
