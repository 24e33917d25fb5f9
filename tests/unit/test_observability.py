"""stack/observability: the alert rules and the Grafana dashboard for the guardians' own
metrics are valid, fire when they should, and only name metrics the code exports.

Validation is by Prometheus itself: `promtool check rules` parses every expression (the
dashboard's too, as recording rules with its variables filled in), `promtool test rules`
evaluates the alerts over made-up series, and, when the stack's Prometheus answers, every
expression is also run as a query against it. promtool comes with Debian's prometheus
package, which `stack/stack.sh up` installs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from functools import cache
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

import services.dashboard.web
import services.runtime.metrics

ROOT = Path(__file__).resolve().parents[2]
HERE = ROOT / "stack" / "observability"
RULES = HERE / "prometheus-rules.yml"
RULE_TESTS = HERE / "prometheus-rules.test.yml"
DASHBOARD = HERE / "grafana-dashboard.json"
METRIC = re.compile(r"\b(guardians_[a-z_]+)\b")
GRID_WIDTH = 24
VARIABLES = {"$__rate_interval": "1m", "$service": ".*"}
"""What Grafana substitutes in the dashboard's expressions, for checking them elsewhere."""


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool is not installed (Debian's prometheus package ships it; "
                    "stack/stack.sh up installs that)")
    return found


@cache
def rules() -> dict[str, Any]:
    return cast(dict[str, Any], yaml.safe_load(RULES.read_text()))


@cache
def dashboard() -> dict[str, Any]:
    return cast(dict[str, Any], json.loads(DASHBOARD.read_text()))


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in rules()["groups"] for rule in group["rules"]]


def panels() -> list[dict[str, Any]]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def dashboard_exprs() -> list[str]:
    exprs = [t["expr"] for p in panels() for t in p["targets"]]
    exprs += [v["query"]["query"] for v in dashboard()["templating"]["list"]
              if v["type"] == "query"]
    return exprs


def filled(expr: str) -> str:
    for variable, value in VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def exported_metrics() -> set[str]:
    """Every sample name the services export (runtime and dashboard metrics are imported)."""
    assert services.runtime.metrics.EVENTS_HANDLED and services.dashboard.web.CLIENTS
    names: set[str] = set()
    for family in REGISTRY.collect():
        names.add(family.name)
        if family.type == "counter":
            names.add(f"{family.name}_total")
        if family.type == "histogram":
            names.update(f"{family.name}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
    return names


def test_promtool_accepts_the_rules() -> None:
    result = subprocess.run([_promtool(), "check", "rules", str(RULES)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


def test_each_alert_fires_on_its_series_and_a_healthy_system_fires_none() -> None:
    result = subprocess.run([_promtool(), "test", "rules", RULE_TESTS.name], cwd=HERE,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    tested = set(re.findall(r"alertname: (\w+)", RULE_TESTS.read_text()))
    assert tested == {rule["alert"] for rule in alert_rules()}, "every alert has a test"


def test_every_alert_says_how_bad_and_what_it_means() -> None:
    for rule in alert_rules():
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_every_dashboard_expression_parses(tmp_path: Path) -> None:
    """Each expression (variables filled in) as a recording rule: promtool parses it."""
    recording = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:expr{i}", "expr": filled(expr)}
        for i, expr in enumerate(dashboard_exprs()) if not expr.startswith("label_values(")
    ]}]}
    path = tmp_path / "dashboard-exprs.yml"
    path.write_text(yaml.safe_dump(recording))
    result = subprocess.run([_promtool(), "check", "rules", str(path)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_and_dashboard_name_only_metrics_the_services_export() -> None:
    exported = exported_metrics()
    used = {m for expr in [r["expr"] for r in alert_rules()] + dashboard_exprs()
            for m in METRIC.findall(expr)}
    assert used, "no guardians_* metric found"
    assert used <= exported, sorted(used - exported)


def test_the_dashboard_shows_every_runtime_metric() -> None:
    shown = " ".join(dashboard_exprs())
    families = [family.name for m in vars(services.runtime.metrics).values()
                if isinstance(m, MetricWrapperBase) for family in m.describe()]
    assert families
    assert all(name in shown for name in families), [n for n in families if n not in shown]


def test_the_dashboard_is_grafana_json_with_a_datasource_variable() -> None:
    board = dashboard()
    assert board["schemaVersion"] >= 36 and board["uid"] and board["title"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for panel in panels():
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            assert target["expr"].strip() and target["refId"], panel["title"]


def test_the_dashboard_panels_fit_the_grid_without_overlapping() -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard()["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= GRID_WIDTH, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


def test_every_expression_runs_on_the_stack_s_prometheus() -> None:
    """A parse error is `status: error` from /api/v1/query."""
    base = os.environ.get("GUARDIANS_PROMETHEUS_URL", "http://127.0.0.1:9090")
    try:
        with urllib.request.urlopen(f"{base}/-/ready", timeout=2):
            pass
    except (urllib.error.URLError, OSError):
        pytest.skip(f"no Prometheus answers at {base} (make stack-up starts it)")
    exprs = [r["expr"] for r in alert_rules()] + [
        filled(e) for e in dashboard_exprs() if not e.startswith("label_values(")]
    for expr in exprs:
        url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                answer = json.load(response)
        except urllib.error.HTTPError as error:
            answer = json.load(error)
        assert answer["status"] == "success", (expr, answer.get("error"))
