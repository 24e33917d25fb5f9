"""`guardians verify` on the real PostgreSQL: exit 0 only when up, rollback and re-apply all
pass; 1 when one fails; 2 for a usage error, with a message that names the input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app

pytestmark = pytest.mark.integration

runner = CliRunner()


def write(folder: Path, name: str, sql: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(sql)
    return path


@pytest.fixture
def migration(tmp_path: Path) -> dict[str, Path]:
    return {
        "baseline": write(tmp_path, "schema.sql", "CREATE TABLE users (id bigint PRIMARY KEY,"
                          " email text);"),
        "up": write(tmp_path, "0002/up.sql", "CREATE INDEX users_email_idx ON users (email);"),
        "down": write(tmp_path, "0002/down.sql", "DROP INDEX users_email_idx;"),
        "forgetful_down": write(tmp_path, "0002/forgetful.sql", "SELECT 1;"),
    }


def verify(*args: str | Path) -> tuple[int, str, str]:
    result = runner.invoke(app, ["verify", *map(str, args)])
    return result.exit_code, result.stdout, result.stderr


def test_verify_exits_0_when_up_rollback_and_reapply_pass(
    database_url: str, migration: dict[str, Path],
) -> None:
    code, out, _ = verify("--up", migration["up"], "--down", migration["down"],
                          "--baseline", migration["baseline"])
    assert code == 0, out
    assert "verified" in out


def test_verify_exits_1_and_names_the_forgotten_index_in_json(
    database_url: str, migration: dict[str, Path],
) -> None:
    code, out, _ = verify("--up", migration["up"], "--down", migration["forgetful_down"],
                          "--baseline", migration["baseline"], "--format", "json")
    assert code == 1
    report = json.loads(out)
    assert report["steps"] == {"up_applied": "passed", "rollback_restored": "failed",
                               "reapplied": "failed"}
    [difference] = report["differences"]
    assert difference["object"] == "index public.users_email_idx on public.users"
    assert report["statements"][0]["locks"] == [{"relation": "public.users", "mode": "share"}]


def test_verify_applies_a_directory_of_migration_folders_as_the_baseline(
    database_url: str, tmp_path: Path, migration: dict[str, Path],
) -> None:
    prior = tmp_path / "prior"
    write(prior, "2024-01-02-000000_add_email/up.sql", "ALTER TABLE users ADD email text;")
    write(prior, "20240101000000_users/up.sql", "CREATE TABLE users (id bigint PRIMARY KEY);")
    code, out, _ = verify("--up", migration["up"], "--down", migration["down"],
                          "--baseline", prior)
    assert code == 0, out


def test_verify_exits_1_without_a_down_script(
    database_url: str, migration: dict[str, Path],
) -> None:
    code, out, _ = verify("--up", migration["up"], "--baseline", migration["baseline"])
    assert code == 1
    assert "missing-rollback" in out


def test_verify_exits_2_naming_a_missing_file(migration: dict[str, Path]) -> None:
    code, _, err = verify("--up", migration["up"], "--down", "nowhere/down.sql")
    assert code == 2
    assert "nowhere/down.sql" in err


def test_verify_exits_2_naming_a_baseline_that_does_not_apply(
    database_url: str, tmp_path: Path, migration: dict[str, Path],
) -> None:
    broken = write(tmp_path, "broken.sql", "CREATE TABLE users (id bigint PRIMARY KEY);\n"
                   "CREATE INDEX ON nothing (x);")
    code, _, err = verify("--up", migration["up"], "--down", migration["down"],
                          "--baseline", broken)
    assert code == 2
    assert f"{broken}:2" in err


def test_verify_exits_2_naming_an_unreachable_database(
    migration: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GUARDIANS_DATABASE_URL", "postgresql://nobody:secret@127.0.0.1:1/none")
    code, _, err = verify("--up", migration["up"], "--down", migration["down"])
    assert code == 2
    assert "postgresql://nobody:***@127.0.0.1:1/none" in err
    assert "secret" not in err
