"""`make demo` in CI: the whole pipeline on the local stack plays the demo story.

The launcher starts the five guardians as processes on the real Kafka, PostgreSQL,
Prometheus and nginx, sends steady traffic through nginx, and submits three releases of the
demo shop: 1.0.0 and 2.0.0 (with a migration and its down script) must each reach
`infra.ready`; 3.0.0 (one request in five fails) must be rolled back during its canary and
become an incident that resolves. The launcher exits 0 only when every expected step
happened, and prints each change's stages with their durations.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(900)
def test_the_demo_story_runs_end_to_end() -> None:
    # The story waits at most 240 + 300 + 240 s for its releases: the launcher's own deadline
    # comes first and fails with the demo summary. Past that, the subprocess timeout kills the
    # launcher, and its guardians go with it (PR_SET_PDEATHSIG), so the tests after this one
    # do not find their ports and consumer groups taken.
    done = subprocess.run([sys.executable, "-m", "services.launcher", "--demo"], cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=870, check=False)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-6000:]
    summary = out[out.index("Demo summary"):]
    assert "1.0.0: infra ready" in summary and "2.0.0: infra ready" in summary, summary
    assert "3.0.0: rolled back, incident resolved" in summary, summary
    assert "ROLLED BACK (analysis_failed): error-rate" in out
    assert "deploy canary" in summary and "backup.verified" in summary
