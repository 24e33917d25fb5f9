"""The pure halves of the process guardian's system adapter: port findings and port claims."""

from __future__ import annotations

from services.process.adapters.system import (
    HIDDEN,
    ProcInfo,
    duplicate_claims,
    port_findings,
)
from services.runtime.config import ExpectedPort

DEMO = ProcInfo(pid=101, name="python", cmdline="/venv/bin/python -m demo.app --port 8001",
                create_time=1.0, status="sleeping")
NGINX_MASTER = ProcInfo(pid=202, name="nginx", cmdline="nginx: master process nginx",
                        create_time=2.0, status="sleeping")
NGINX_WORKER = ProcInfo(pid=203, name="nginx", cmdline="nginx: worker process",
                        create_time=2.0, status="sleeping")


def _port(port: int = 8001, process: str = "demo.app") -> ExpectedPort:
    return ExpectedPort(port=port, process=process)


def test_the_expected_process_listening_is_ok() -> None:
    [finding] = port_findings([_port()], {8001: [DEMO]})
    assert finding.ok and finding.status == "ok"
    assert finding.ours == (DEMO,) and finding.others == ()
    assert "pid 101" in finding.message and "demo.app" in finding.message


def test_several_processes_of_the_expected_kind_sharing_the_socket_are_ok() -> None:
    [finding] = port_findings([_port(80, "nginx")], {80: [NGINX_MASTER, NGINX_WORKER]})
    assert finding.ok
    assert finding.ours == (NGINX_MASTER, NGINX_WORKER)


def test_nobody_listening_is_missing_whether_or_not_the_port_was_looked_up() -> None:
    looked_up, never = port_findings([_port(8001), _port(8002)], {8001: []})
    for finding in (looked_up, never):
        assert finding.status == "missing" and not finding.ok
        assert "nobody listens" in finding.message and "'demo.app'" in finding.message


def test_another_process_instead_of_ours_is_a_conflict_naming_it() -> None:
    [finding] = port_findings([_port(8001, "demo.app")], {8001: [NGINX_MASTER]})
    assert finding.status == "conflict"
    assert finding.others == (NGINX_MASTER,) and finding.ours == ()
    assert "pid 202 (nginx: master process nginx)" in finding.message
    assert "instead of" in finding.message and "'demo.app'" in finding.message


def test_another_process_besides_ours_is_a_conflict_naming_both() -> None:
    [finding] = port_findings([_port()], {8001: [DEMO, NGINX_MASTER]})
    assert finding.status == "conflict"
    assert "pid 202" in finding.message and "pid 101" in finding.message
    assert "besides" in finding.message


def test_a_listener_we_cannot_see_is_never_taken_for_ours() -> None:
    [finding] = port_findings([_port(8001, "cannot see")], {8001: [HIDDEN]})
    assert finding.status == "conflict"
    assert "pid 0" in finding.message


def test_a_process_without_a_readable_command_line_matches_by_name() -> None:
    bare = ProcInfo(pid=7, name="redis-server", cmdline="", create_time=0.0, status="sleeping")
    [finding] = port_findings([_port(6379, "redis-server")], {6379: [bare]})
    assert finding.ok
    assert "pid 7 (redis-server)" in finding.message


def test_long_command_lines_are_shortened_in_messages() -> None:
    long = ProcInfo(pid=9, name="java", cmdline="java " + "-Dx=y " * 50, create_time=0.0,
                    status="sleeping")
    [finding] = port_findings([_port(9092, "kafka")], {9092: [long]})
    assert finding.status == "conflict"
    assert len(long.short) <= len("pid 9 ()") + 80
    assert long.short.endswith("...)")


def test_findings_follow_the_configuration_order() -> None:
    findings = port_findings([_port(3), _port(1), _port(2)], {})
    assert [f.port for f in findings] == [3, 1, 2]


def test_distinct_ports_are_no_duplicate_claims() -> None:
    assert duplicate_claims([("demo", _port(8001)), ("api", _port(8002))]) == []
    assert duplicate_claims([]) == []


def test_one_port_claimed_by_two_services_names_both() -> None:
    [message] = duplicate_claims([("demo", _port(8001, "demo.app")),
                                  ("api", _port(8001, "uvicorn"))])
    assert message == ("port 8001 is claimed by service 'demo' (process 'demo.app') and "
                       "service 'api' (process 'uvicorn')")


def test_one_port_claimed_twice_by_one_service_names_both_claims() -> None:
    [message] = duplicate_claims([("demo", _port(8001, "demo.app")),
                                  ("demo", _port(8001, "gunicorn"))])
    assert message == ("port 8001 is claimed 2 times by service 'demo': process 'demo.app' "
                       "and process 'gunicorn'")


def test_claims_on_different_hosts_still_collide_and_are_reported_by_port() -> None:
    other_host = ExpectedPort(port=80, process="nginx", host="10.0.0.5")
    messages = duplicate_claims([("web", _port(443, "nginx")), ("web", _port(80, "nginx")),
                                 ("edge", other_host), ("api", _port(443, "envoy")),
                                 ("x", _port(9000))])
    assert len(messages) == 2
    assert messages[0].startswith("port 80 ") and messages[1].startswith("port 443 ")
    assert "'edge'" in messages[0] and "'web'" in messages[0]
    assert "'envoy'" in messages[1]
