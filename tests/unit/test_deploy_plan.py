"""The deploy section of guardians.yaml, the rollout plan it resolves to, and the targets'
argument handling (no I/O beyond running small local commands)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from schemas.events.migration import MonitoringPlan, WatchedMetric
from services.deploy.adapters.local import LocalDeployTarget, ServiceState
from services.deploy.adapters.targets import (
    CommandDeployTarget,
    Env,
    Release,
    TargetError,
    render_args,
)
from services.deploy.domain.plan import RolloutPlan, resolve
from services.runtime.config import CommandTarget, DeployPolicy, LocalTarget
from services.runtime.settings import RuntimeSettings

ERRORS = {"name": "error-rate", "query": 'rate(x{service="{service}"}[{window}])',
          "success": "result < 0.05"}
LATENCY = {"name": "latency-p99", "query": 'q{track="{track}"}', "success": "result < 0.3"}
RELEASE = Release("shop-2", "shop", "2.0.0", "/releases/2.json", "1.0.0")


def policy(**deploy: object) -> DeployPolicy:
    return DeployPolicy.model_validate(deploy)


def test_a_step_must_do_exactly_one_thing() -> None:
    with pytest.raises(ValidationError, match="exactly one of set_weight, pause, analysis"):
        policy(steps=[{"set_weight": 10, "pause": {"seconds": 5}}])
    with pytest.raises(ValidationError, match="exactly one"):
        policy(steps=[{}])
    assert policy(steps=[{"set_weight": 10}, {"pause": {}}]).steps[1].pause is not None


def test_steps_and_monitoring_must_name_defined_templates() -> None:
    with pytest.raises(ValidationError, match="not defined under analysis: canary"):
        policy(steps=[{"analysis": "canary"}])
    with pytest.raises(ValidationError, match="prod"):
        policy(monitoring={"analysis": "prod"})


def test_unknown_placeholders_and_bad_weights_are_refused() -> None:
    with pytest.raises(ValidationError, match=r"unknown placeholder\(s\) \{srvice\}"):
        policy(analysis={"a": {"metrics": [{**ERRORS, "query": "x{srvice}"}]}})
    with pytest.raises(ValidationError, match=r"\{host\}"):
        CommandTarget(deploy=["deploy", "{host}"], set_weight=["w"], promote=["p"],
                      rollback=["r"])
    with pytest.raises(ValidationError, match="less than or equal to 100"):
        policy(steps=[{"set_weight": 120}])
    with pytest.raises(ValidationError, match="give success, failure or baseline"):
        policy(analysis={"a": {"metrics": [{"name": "m", "query": "up"}]}})


def test_local_target_ports_must_differ() -> None:
    with pytest.raises(ValidationError, match="must differ"):
        LocalTarget(command=["app"], listen_port=8000, staging_port=8001,
                    slot_ports=(8000, 8002))


def test_the_monitoring_plan_adds_metrics_and_time() -> None:
    p = policy(analysis={"canary": {"metrics": [ERRORS, LATENCY], "interval_seconds": 5}},
               steps=[{"analysis": "canary"}],
               monitoring={"seconds": 60, "analysis": None})
    watch = MonitoringPlan(duration_seconds=300, metrics=(
        WatchedMetric(name="latency-p99", reason="lock"),
        WatchedMetric(name="replication-lag", reason="backfill", query="lag",
                      condition="result < 10"),
        WatchedMetric(name="cache-hits", reason="?"),
    ))
    plan = resolve(p, watch)
    assert plan.monitoring_seconds == 300
    assert plan.monitoring is not None
    assert [m.name for m in plan.monitoring.metrics] == ["latency-p99", "replication-lag"]
    assert plan.monitoring.count == 60  # 300 s at the default 5 s interval
    assert len(plan.unwatched) == 1 and plan.unwatched[0].startswith("cache-hits")
    assert RolloutPlan.from_json(plan.to_json()) == plan


def test_without_a_monitoring_plan_the_service_policy_stands() -> None:
    p = policy(analysis={"prod": {"metrics": [ERRORS], "interval_seconds": 2}},
               monitoring={"seconds": 10, "analysis": "prod"})
    plan = resolve(p, None)
    assert plan.monitoring_seconds == 10 and plan.monitoring is not None
    assert plan.monitoring.count == 5 and not plan.unwatched
    assert resolve(policy(), None).monitoring is None


def test_a_baseline_only_metric_cannot_watch_production_and_says_so() -> None:
    baseline_only = {"name": "p99", "query": "q", "baseline": {"max_increase": 0.1}}
    p = policy(analysis={"prod": {"metrics": [baseline_only]}},
               monitoring={"seconds": 10, "analysis": "prod"})
    plan = resolve(p, None)
    assert plan.monitoring is None
    assert "no baseline serving traffic" in plan.unwatched[0]


def test_arguments_are_substituted_one_by_one_never_through_a_shell() -> None:
    hostile = Release("c1", "shop", "2.0; rm -rf /", "$(reboot)", None)
    argv = render_args(["deploy", "--version={version}", "{artifact}", "{python}"],
                       {"version": hostile.version, "artifact": hostile.artifact})
    assert argv == ["deploy", "--version=2.0; rm -rf /", "$(reboot)", sys.executable]
    with pytest.raises(TargetError, match=r"needs \{previous_version\}"):
        render_args(["{previous_version}"], {"previous_version": None})


async def test_the_command_target_runs_argument_lists_and_reports_failures(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "deployed"
    write = [sys.executable, "-c", "import sys; open(sys.argv[1], 'w').write(sys.argv[2])",
             str(marker), "{env}:{version}"]
    fail = [sys.executable, "-c", "import sys; print('quota exceeded'); sys.exit(3)"]
    target = CommandDeployTarget(CommandTarget(deploy=write, set_weight=fail,
                                               promote=["true"], rollback=["true"]))
    await target.deploy(Env.CANARY, RELEASE)
    assert marker.read_text() == "canary:2.0.0"
    with pytest.raises(TargetError, match="set_weight command exited with 3: quota exceeded"):
        await target.set_weight(RELEASE, 20)
    assert (await target.ready(Env.CANARY, RELEASE)).ready  # no ready command: ready
    assert (await target.rollback(RELEASE)).version == "1.0.0"


def test_the_nginx_site_splits_by_weight_and_never_lists_a_zero_weight(
    tmp_path: Path,
) -> None:
    config = LocalTarget(command=["app"], listen_port=18000, staging_port=18001,
                         slot_ports=(18002, 18003))
    target = LocalDeployTarget(config, RuntimeSettings(state_dir=tmp_path))
    state = ServiceState.from_json({
        "slots": {"blue": {"version": "1", "artifact": None, "change_id": "a",
                           "port": 18002, "pid": 1, "started": 0.0, "log_file": "x"},
                  "green": {"version": "2", "artifact": None, "change_id": "b",
                            "port": 18003, "pid": 2, "started": 0.0, "log_file": "y"}},
        "stable": "blue", "canary": "green", "weight": 20, "generation": 7})
    site = target._site("shop", state)
    assert "server 127.0.0.1:18002 weight=80;" in site
    assert "server 127.0.0.1:18003 weight=20;" in site
    assert 'return 200 "7"' in site and "listen 127.0.0.1:18000;" in site
    state.weight = 0
    assert "18003" not in target._site("shop", state)
    state.stable, state.weight = None, 0
    state.canary = None
    assert "return 503" in target._site("shop", state)
    assert ServiceState.from_json(state.to_json()) == state
