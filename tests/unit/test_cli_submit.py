"""`guardians submit`: the change.submitted that CI sends is exactly what its directory holds,
and input the migration guardian would choke on is refused before sending, naming it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from cli.submit import (
    Options,
    SubmitError,
    build_change,
    default_change_id,
    flatten,
    read_config_diffs,
    read_dependency_diffs,
    read_migrations,
    read_pins,
)
from schemas.events.change import ChangeSubmitted, Ecosystem

runner = CliRunner()
OPTIONS = Options(service="shop", version="2.4.0", previous_version="2.3.1")


def write(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# ------------------------------------------------------------------ migrations


def test_migration_folders_sql_files_and_up_down_pairs_are_read_in_name_order(
    tmp_path: Path,
) -> None:
    write(tmp_path, "migrations/0003_orders/up.sql", "ALTER TABLE t ADD COLUMN x int;")
    write(tmp_path, "migrations/0003_orders/down.sql", "ALTER TABLE t DROP COLUMN x;")
    write(tmp_path, "migrations/0001_init.sql", "CREATE TABLE t (id int);")
    write(tmp_path, "migrations/0002_users.up.sql", "CREATE TABLE u (id int);")
    write(tmp_path, "migrations/0002_users.down.sql", "DROP TABLE u;")
    write(tmp_path, "migrations/0004_idx/up.sql", "CREATE INDEX i ON t (x);")
    write(tmp_path, "migrations/README.md", "not a migration")
    write(tmp_path, "migrations/.hidden/down.sql", "ignored")

    found = read_migrations(tmp_path / "migrations")

    assert [(m.name, m.down_sql) for m in found] == [
        ("0001_init.sql", None),
        ("0002_users.up.sql", "DROP TABLE u;"),
        ("0003_orders/up.sql", "ALTER TABLE t DROP COLUMN x;"),
        ("0004_idx/up.sql", None),
    ]
    assert found[2].up_sql == "ALTER TABLE t ADD COLUMN x int;"


def test_diesel_timestamps_with_and_without_dashes_keep_their_order(tmp_path: Path) -> None:
    write(tmp_path, "m/2017-09-23-120000_b/up.sql", "SELECT 2;")
    write(tmp_path, "m/20170804120000_a/up.sql", "SELECT 1;")
    assert [m.name for m in read_migrations(tmp_path / "m")] == [
        "20170804120000_a/up.sql", "2017-09-23-120000_b/up.sql"]


def test_a_directory_that_is_one_migration_folder_is_one_migration(tmp_path: Path) -> None:
    write(tmp_path, "0042_orders/up.sql", "SELECT 1;")
    write(tmp_path, "0042_orders/down.sql", "SELECT 2;")
    [only] = read_migrations(tmp_path / "0042_orders")
    assert (only.name, only.down_sql) == ("0042_orders/up.sql", "SELECT 2;")


@pytest.mark.parametrize(
    ("files", "named"),
    [
        ({"migrations/0002_x/down.sql": "DROP TABLE x;"}, "0002_x/down.sql has no up.sql"),
        ({"migrations/0003.down.sql": "DROP TABLE x;"}, "0003.down.sql has no 0003.up.sql"),
        ({"migrations/0004_notes/notes.txt": "?"}, "0004_notes holds no up.sql"),
    ],
)
def test_a_down_script_without_its_up_script_is_refused_naming_it(
    tmp_path: Path, files: dict[str, str], named: str
) -> None:
    for name, text in files.items():
        write(tmp_path, name, text)
    with pytest.raises(SubmitError, match=named):
        build_change(tmp_path, OPTIONS)


def test_a_migration_that_is_not_utf8_is_refused_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "0001_latin1.sql").write_bytes(b"SELECT '\xe9t\xe9';")
    with pytest.raises(SubmitError, match=r"0001_latin1\.sql is not UTF-8"):
        build_change(tmp_path, OPTIONS)


def test_migrations_can_come_from_another_directory(tmp_path: Path) -> None:
    write(tmp_path, "db/migrate/0001_init.sql", "CREATE TABLE t (id int);")
    (tmp_path / "release").mkdir()
    event = build_change(tmp_path / "release",
                         Options(service="shop", version="1", migrations=tmp_path / "db/migrate"))
    assert [m.name for m in event.migrations] == ["0001_init.sql"]


# ------------------------------------------------------------------ configuration


def test_config_files_are_compared_key_by_key(tmp_path: Path) -> None:
    write(tmp_path, "config/before/app.yaml",
          "database:\n  pool: {max_size: 10, timeout: 5}\n  url: pg://a\nlegacy: true\n"
          "hosts: [a, b]\n")
    write(tmp_path, "config/after/app.yaml",
          "database:\n  pool: {max_size: 20, timeout: 5}\n  url: pg://a\nfeature:\n  x: on\n"
          "hosts: [a, b, c]\n")
    write(tmp_path, "config/before/old.json", '{"a": {"b": null}}')
    write(tmp_path, "config/after/new/settings.toml", "[server]\nport = 8080\n")

    diffs = {(d.file, d.path): (d.before, d.after)
             for d in read_config_diffs(tmp_path / "config")}

    assert diffs == {
        ("app.yaml", "database.pool.max_size"): ("10", "20"),
        ("app.yaml", "feature.x"): (None, "true"),
        ("app.yaml", "hosts"): ('["a", "b"]', '["a", "b", "c"]'),
        ("app.yaml", "legacy"): ("true", None),
        ("new/settings.toml", "server.port"): (None, "8080"),
        ("old.json", "a.b"): ("null", None),
    }


def test_flattening_keeps_strings_and_renders_other_values_as_json() -> None:
    assert flatten({"a": {"b": "text", "c": 1.5, "d": [], "e": {}}, "f": None}, "x") == {
        "a.b": "text", "a.c": "1.5", "a.d": "[]", "a.e": "{}", "f": "null"}
    assert flatten(None, "empty.yaml") == {}


@pytest.mark.parametrize(
    ("name", "text", "named"),
    [
        ("app.yaml", "a: [\n", r"before/app\.yaml is not valid YAML"),
        ("app.json", "{", r"before/app\.json is not valid JSON"),
        ("app.toml", "a = ", r"before/app\.toml is not valid TOML"),
        ("app.yaml", "- a\n- b\n", r"before/app\.yaml: the top level is a list"),
        ("app.ini", "[a]\n", r"before/app\.ini: only \.yaml"),
    ],
)
def test_a_config_file_that_does_not_parse_is_refused_naming_it(
    tmp_path: Path, name: str, text: str, named: str
) -> None:
    write(tmp_path, f"config/before/{name}", text)
    (tmp_path / "config" / "after").mkdir()
    with pytest.raises(SubmitError, match=named):
        build_change(tmp_path, OPTIONS)


def test_config_needs_both_sides(tmp_path: Path) -> None:
    write(tmp_path, "config/after/app.yaml", "a: 1\n")
    with pytest.raises(SubmitError, match=r"config/before is not a directory"):
        build_change(tmp_path, OPTIONS)


# ------------------------------------------------------------------ dependencies


def test_pins_are_read_as_pip_writes_them(tmp_path: Path) -> None:
    path = write(tmp_path, "pins.txt",
                 "# via pip-compile\n-r base.txt\n--index-url https://pypi.org/simple\n"
                 "-e .\nrequests==2.32.3 \\\n    --hash=sha256:0123\n"
                 "Foo_Bar[extra]==1.0 ; python_version >= '3.11'  # comment\n"
                 "urllib3===2.2.1\n\n")
    assert read_pins(path) == {"requests": "2.32.3", "foo-bar": "1.0", "urllib3": "2.2.1"}


def test_dependency_diffs_say_what_was_added_removed_and_changed(tmp_path: Path) -> None:
    before = write(tmp_path, "dependencies.before.txt",
                   "requests==2.31.0\nsix==1.16.0\nattrs==23.1.0\n")
    after = write(tmp_path, "dependencies.after.txt",
                  "Requests==2.32.3\nattrs==23.1.0\npydantic==2.9.0\n")
    diffs = read_dependency_diffs(before, after)
    assert [(d.name, d.ecosystem, d.before, d.after) for d in diffs] == [
        ("pydantic", Ecosystem.PYPI, None, "2.9.0"),
        ("requests", Ecosystem.PYPI, "2.31.0", "2.32.3"),
        ("six", Ecosystem.PYPI, "1.16.0", None),
    ]


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("ok==1\nrequests>=2\n", r"dependencies\.after\.txt:2: 'requests>=2' is not a pin"),
        ("pkg @ https://x/pkg.whl\n", r"dependencies\.after\.txt:1: .* is not a pin"),
        ("a==1\nA==2\n", r"dependencies\.after\.txt:2: a is pinned again, to 2"),
    ],
)
def test_a_requirement_that_is_not_a_pin_is_refused_naming_file_and_line(
    tmp_path: Path, text: str, named: str
) -> None:
    write(tmp_path, "dependencies.before.txt", "")
    write(tmp_path, "dependencies.after.txt", text)
    with pytest.raises(SubmitError, match=named):
        build_change(tmp_path, OPTIONS)


def test_one_pin_file_without_the_other_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "dependencies.after.txt", "a==1\n")
    with pytest.raises(SubmitError, match=r"dependencies\.after\.txt needs .*before\.txt"):
        build_change(tmp_path, OPTIONS)


# ------------------------------------------------------------------ infrastructure


def test_terraform_plans_are_sent_verbatim_named_by_their_file(tmp_path: Path) -> None:
    plan = '{"format_version": "1.2",\n "resource_changes": []}\n'
    write(tmp_path, "prod.tfplan.json", plan)
    write(tmp_path, "a-staging.tfplan.json", "{}")
    event = build_change(tmp_path, OPTIONS)
    assert [(p.name, p.content) for p in event.infrastructure_plans] == [
        ("a-staging", "{}"), ("prod", plan)]


def test_a_plan_that_is_not_json_is_refused_naming_it(tmp_path: Path) -> None:
    write(tmp_path, "prod.tfplan.json", "Terraform will perform the following actions:")
    with pytest.raises(SubmitError, match=r"prod\.tfplan\.json is not JSON \(line 1"):
        build_change(tmp_path, OPTIONS)


# ------------------------------------------------------------------ the change


def test_a_whole_directory_makes_one_valid_change(tmp_path: Path) -> None:
    write(tmp_path, "migrations/0001_init/up.sql", "CREATE TABLE t (id int);")
    write(tmp_path, "config/before/app.yaml", "a: 1\n")
    write(tmp_path, "config/after/app.yaml", "a: 2\n")
    write(tmp_path, "dependencies.before.txt", "x==1\n")
    write(tmp_path, "dependencies.after.txt", "x==2\n")
    write(tmp_path, "prod.tfplan.json", "{}")
    event = build_change(tmp_path, Options(
        service="shop", version="2.4.0", previous_version="2.3.1", artifact="oci://shop:2.4.0",
        change_id="shop-2.4.0-ci42", submitted_by="ci-job-7"))
    assert (event.change_id, event.submitted_by, event.artifact) == (
        "shop-2.4.0-ci42", "ci-job-7", "oci://shop:2.4.0")
    assert {k.value for k in event.kinds} == {"database", "config", "dependency",
                                              "infrastructure"}
    assert ChangeSubmitted.model_validate_json(event.model_dump_json()) == event


def test_an_empty_directory_is_a_code_only_release(tmp_path: Path) -> None:
    event = build_change(tmp_path, OPTIONS)
    assert event.kinds == frozenset()
    assert event.change_id.startswith("shop-2.4.0-")


def test_the_default_change_id_is_service_version_and_a_short_random_part() -> None:
    first, second = default_change_id("shop", "2.4.0"), default_change_id("shop", "2.4.0")
    assert first != second
    assert first.startswith("shop-2.4.0-") and len(first) == len("shop-2.4.0-") + 6
    odd = default_change_id("shop", "v2+build/7")
    assert odd.startswith("shop-v2-build-7-")
    assert len(default_change_id("s" * 63, "9" * 128)) <= 128


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (Options(service="Shop!", version="1"), "--service 'Shop!'"),
        (Options(service="shop", version="2 4"), "--version '2 4'"),
        (Options(service="shop", version="1", previous_version=""), "--previous-version ''"),
        (Options(service="shop", version="1", change_id="-bad id"), "--change-id '-bad id'"),
        (Options(service="shop", version="1", submitted_by=""), "--submitted-by ''"),
    ],
)
def test_invalid_options_are_refused_naming_the_option(
    tmp_path: Path, options: Options, named: str
) -> None:
    with pytest.raises(SubmitError, match=f"^{named}"):
        build_change(tmp_path, options)


def test_a_change_over_the_kafka_message_limit_is_refused_naming_the_largest_part(
    tmp_path: Path,
) -> None:
    write(tmp_path, "huge.tfplan.json", json.dumps({"pad": "x" * 1_100_000}))
    with pytest.raises(SubmitError, match=r"over Kafka's .* plan huge \(1,100,"):
        build_change(tmp_path, OPTIONS)


# ------------------------------------------------------------------ the command


def test_dry_run_prints_the_event_as_json_and_sends_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("GUARDIANS_SIGNER", "GUARDIANS_SIGNING_KEY", "GUARDIANS_SIGNING_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GUARDIANS_KAFKA_BOOTSTRAP", "127.0.0.1:1")  # nothing listens there
    monkeypatch.setenv("GITHUB_ACTOR", "octocat")
    write(tmp_path, "migrations/0001_init/up.sql", "CREATE TABLE t (id int);")
    write(tmp_path, "migrations/0001_init/down.sql", "DROP TABLE t;")

    result = runner.invoke(app, ["submit", str(tmp_path), "--service", "shop", "--version",
                                 "2.4.0", "--previous-version", "2.3.1", "--dry-run",
                                 "--format", "json"])

    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["dry_run"] is True
    assert document["type"] == "guardians.change.submitted.v1"
    assert document["topic"] == "change.submitted"
    event = ChangeSubmitted.model_validate_json(json.dumps(document["event"]))
    assert event.change_id == document["change_id"]
    assert (event.service, event.version, event.previous_version, event.submitted_by) == (
        "shop", "2.4.0", "2.3.1", "octocat")
    assert [(m.name, m.down_sql) for m in event.migrations] == [
        ("0001_init/up.sql", "DROP TABLE t;")]


def test_dry_run_in_text_says_what_the_change_carries(tmp_path: Path) -> None:
    write(tmp_path, "migrations/0001_init.sql", "CREATE TABLE t (id int);")
    result = runner.invoke(app, ["submit", str(tmp_path), "-s", "shop", "--version", "3",
                                 "--change-id", "shop-3-x", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "change shop-3-x: shop 3" in result.stdout
    assert "1 migration(s): 0001_init.sql (no down)" in result.stdout
    assert "dry run, not sent" in result.stdout


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        (["missing-dir", "-s", "shop", "--version", "1"], "DIR missing-dir is not a directory"),
        (["{dir}", "-s", "shop", "--version", "a b"], "--version 'a b'"),
        (["{dir}", "-s", "shop", "--version", "1", "--migrations", "{dir}/nope"],
         "nope is not a directory of migrations"),
    ],
)
def test_validation_errors_exit_2_naming_the_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, arguments: list[str], named: str
) -> None:
    monkeypatch.chdir(tmp_path)
    args = [a.replace("{dir}", str(tmp_path)) for a in arguments]
    result = runner.invoke(app, ["submit", *args, "--dry-run"])
    assert result.exit_code == 2
    assert named in result.stderr
    assert result.stdout == ""


def test_sending_without_a_key_is_refused_before_reaching_the_broker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("GUARDIANS_SIGNER", "GUARDIANS_SIGNING_KEY", "GUARDIANS_SIGNING_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    result = runner.invoke(app, ["submit", str(tmp_path), "-s", "shop", "--version", "1"])
    assert result.exit_code == 2
    assert "commands are signed" in result.stderr
