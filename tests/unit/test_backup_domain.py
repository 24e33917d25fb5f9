"""The backup guardian's pure rules: when a scheduled backup is due, late or stale, what
restic is told to keep and check, how a recovery test is judged, and the recovery plan."""

from __future__ import annotations

import shlex
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from schemas.base import ChangeId, DedupKey
from schemas.events.backup import (
    BackupFailed,
    BackupKind,
    BackupPhase,
    BackupSnapshot,
    BackupTrigger,
    BackupVerified,
    RepositoryCheck,
)
from schemas.events.ops import AlertSeverity, AlertValue, OpsAlert
from services.backup.domain.checks import recovery_verdict, to_restore_differences
from services.backup.domain.cron import CronError
from services.backup.domain.manifest import (
    Difference,
    Manifest,
    TableEntry,
    compare,
)
from services.backup.domain.recovery_plan import (
    LastVerified,
    VerifiedSource,
    database_dump_name,
    display_repository,
    recovery_plan,
)
from services.backup.domain.schedule import (
    Alertable,
    check_subset,
    due,
    forget_args,
    format_duration,
    lateness,
    next_backup_at,
    run_id_for_schedule,
    staleness,
)
from services.runtime.config import BackupPolicy, Retention

DB = {"name": "orders-db", "url_env": "ORDERS_DB_URL"}
UPLOADS = {"name": "uploads", "kind": "user_data", "paths": ["/srv/uploads"],
           "exclude": ["*.tmp"]}
NOW = datetime(2026, 11, 28, 14, 30, tzinfo=UTC)


def at(day: int, hour: int = 0, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def policy(**fields: Any) -> BackupPolicy:
    return BackupPolicy.model_validate({"databases": [DB], "paths": [UPLOADS], **fields})


def to_ops_alert(alert: Alertable) -> OpsAlert:
    """What the app sends: proves the alert fits the contract."""
    return OpsAlert(
        dedup_key=alert.dedup_key, severity=AlertSeverity.WARNING, summary=alert.summary,
        raised_by="backup", service="shop", details=alert.details,
        values=tuple(AlertValue(name=n, value=v, unit=u, threshold=t)
                     for n, v, u, t in alert.values))


# -- due and next_backup_at -----------------------------------------------------------------


def test_a_fire_time_is_due_from_its_minute_until_it_has_run() -> None:
    daily = policy(schedule="0 2 * * *")
    assert due(daily, at(28, 2), at(27, 2)) == at(28, 2)
    assert due(daily, at(28, 2).replace(second=59), at(27, 2)) == at(28, 2)
    assert due(daily, at(28, 14), at(27, 2)) == at(28, 2)
    assert due(daily, at(28, 14), at(28, 2)) is None
    assert due(daily, at(28, 1, 59), at(27, 2)) is None


def test_after_missing_several_fire_times_only_the_latest_is_due() -> None:
    hourly = policy(schedule="0 * * * *")
    assert due(hourly, at(28, 14, 30), at(28, 9)) == at(28, 14)


def test_a_service_never_run_owes_the_latest_fire_time() -> None:
    assert due(policy(schedule="0 2 * * *"), NOW, None) == at(28, 2)


def test_nothing_is_due_without_a_schedule_or_without_sources() -> None:
    assert due(policy(), NOW, None) is None
    assert due(BackupPolicy(schedule="0 2 * * *"), NOW, None) is None


def test_a_clock_behind_the_last_run_makes_nothing_due() -> None:
    assert due(policy(schedule="0 2 * * *"), at(28, 3), at(29, 2)) is None


def test_an_invalid_schedule_is_reported_not_ignored() -> None:
    with pytest.raises(CronError, match="hour 25 is out of range"):
        due(policy(schedule="0 25 * * *"), NOW, None)


def test_next_backup_is_the_next_fire_time_once_the_due_one_ran() -> None:
    daily = policy(schedule="0 2 * * *")
    assert next_backup_at(daily, NOW, at(28, 2)) == at(29, 2)
    assert next_backup_at(daily, at(28, 1), at(27, 2)) == at(28, 2)


def test_next_backup_is_the_due_fire_time_while_it_has_not_run() -> None:
    assert next_backup_at(policy(schedule="0 2 * * *"), NOW, at(27, 2)) == at(28, 2)


def test_there_is_no_next_backup_without_a_schedule() -> None:
    assert next_backup_at(policy(), NOW, None) is None


# -- lateness -------------------------------------------------------------------------------


def test_a_backup_within_its_grace_is_not_late() -> None:
    daily = policy(schedule="0 2 * * *")
    assert lateness(daily, at(28, 2, 30), at(27, 2), timedelta(minutes=30),
                    service="shop") is None
    assert lateness(daily, NOW, at(28, 2), timedelta(minutes=30), service="shop") is None


def test_a_backup_past_its_grace_is_late_and_says_which_and_by_how_much() -> None:
    alert = lateness(policy(schedule="0 2 * * *"), at(28, 3, 5), at(27, 2),
                     timedelta(minutes=30), service="shop")
    assert alert is not None
    assert alert.dedup_key == "backup/shop/late"
    assert alert.summary == ("shop: the scheduled backup of 2026-11-28 02:00 UTC has not run "
                             "(1 h 5 min late)")
    assert "`0 2 * * *`" in alert.details
    assert "Last scheduled backup that ran: 2026-11-27 02:00 UTC" in alert.details
    assert alert.values == (("late_seconds", 3900.0, "s", 1800.0),)
    to_ops_alert(alert)


def test_lateness_counts_from_the_first_missed_fire_time() -> None:
    # Stopped after 09:00; at 14:05 the latest fire time (14:00) is within grace, but 10:00
    # was missed four hours ago.
    alert = lateness(policy(schedule="0 * * * *"), at(28, 14, 5), at(28, 9),
                     timedelta(minutes=30), service="shop")
    assert alert is not None
    assert "2026-11-28 10:00 UTC" in alert.summary
    assert "(4 h 5 min late)" in alert.summary


def test_a_service_never_run_is_late_from_its_latest_fire_time() -> None:
    alert = lateness(policy(schedule="0 2 * * *"), NOW, None, timedelta(hours=1),
                     service="shop")
    assert alert is not None
    assert "2026-11-28 02:00 UTC" in alert.summary
    assert "Last scheduled backup that ran: never" in alert.details


def test_nothing_is_late_without_a_schedule() -> None:
    assert lateness(policy(), NOW, None, timedelta(0), service="shop") is None


# -- staleness ------------------------------------------------------------------------------


def test_a_recent_verified_backup_is_not_stale() -> None:
    assert staleness(policy(), NOW, NOW - timedelta(hours=26), service="shop") is None


def test_an_old_verified_backup_is_stale_with_its_age_against_the_limit() -> None:
    alert = staleness(policy(max_age_hours=24), NOW, NOW - timedelta(hours=30),
                      service="shop")
    assert alert is not None
    assert alert.dedup_key == "backup/shop/stale"
    assert alert.summary == "shop: the newest verified backup is 1 d 6 h old (limit 24 h)"
    assert alert.values == (("backup_age_hours", 30.0, "h", 24.0),)
    assert "2026-11-27 08:30 UTC" in alert.details
    to_ops_alert(alert)


def test_no_verified_backup_at_all_is_stale_with_no_value() -> None:
    alert = staleness(policy(schedule="0 2 * * *"), NOW, None, service="shop")
    assert alert is not None
    assert alert.summary == "shop: no backup has been verified yet"
    assert alert.values == (("backup_age_hours", None, "h", 26.0),)
    assert "Schedule `0 2 * * *`" in alert.details
    to_ops_alert(alert)


def test_a_stale_service_without_a_schedule_is_told_how_to_fix_it() -> None:
    alert = staleness(policy(), NOW, None, service="shop")
    assert alert is not None
    assert "set backup.schedule in guardians.yaml" in alert.details


def test_a_service_with_nothing_to_back_up_is_never_stale() -> None:
    assert staleness(BackupPolicy(), NOW, None, service="shop") is None


def test_dedup_keys_fit_the_contract_for_the_longest_service_name() -> None:
    name = "s" * 63
    late = lateness(policy(schedule="@hourly"), NOW, None, timedelta(0), service=name)
    stale = staleness(policy(), NOW, None, service=name)
    assert late is not None and stale is not None
    for alert in (late, stale):
        TypeAdapter(DedupKey).validate_python(alert.dedup_key)


# -- run ids, retention, check subsets ------------------------------------------------------


def test_a_scheduled_run_is_named_from_its_fire_time_in_utc() -> None:
    assert run_id_for_schedule("shop", at(28, 2)) == "shop-backup-20261128T0200"
    plus_one = datetime(2026, 11, 28, 3, 0, tzinfo=timezone(timedelta(hours=1)))
    assert run_id_for_schedule("shop", plus_one) == "shop-backup-20261128T0200"


def test_a_scheduled_run_id_is_a_valid_change_id() -> None:
    for service in ("shop", "a", "x" * 63, "my_svc-2"):
        TypeAdapter(ChangeId).validate_python(run_id_for_schedule(service, at(28, 2)))


def test_a_naive_fire_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        run_id_for_schedule("shop", datetime(2026, 11, 28, 2))


def test_forget_keeps_what_the_retention_says_and_omits_zeros() -> None:
    assert forget_args(Retention()) == ["--keep-last", "7", "--keep-daily", "7",
                                        "--keep-weekly", "4", "--keep-monthly", "6"]
    assert forget_args(Retention(keep_last=3, keep_daily=0, keep_weekly=0,
                                 keep_monthly=12)) == ["--keep-last", "3",
                                                       "--keep-monthly", "12"]


@pytest.mark.parametrize("subsets", [1, 2, 10, 1000])
def test_any_n_consecutive_runs_check_every_subset_once(subsets: int) -> None:
    for first in (-3, 0, 1, 7, 12345):
        seen = [check_subset(run, subsets) for run in range(first, first + subsets)]
        assert sorted(seen, key=lambda s: int(s.split("/")[0])) == [
            f"{k}/{subsets}" for k in range(1, subsets + 1)]
        for subset in seen:
            RepositoryCheck(read_subset=subset, duration_seconds=1.0)


def test_the_first_run_checks_the_first_subset() -> None:
    assert [check_subset(run, 3) for run in range(1, 5)] == ["1/3", "2/3", "3/3", "1/3"]


def test_zero_subsets_is_refused() -> None:
    with pytest.raises(ValueError, match="subsets must be at least 1"):
        check_subset(1, 0)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.0123, "12 ms"), (0.85, "850 ms"), (4.2, "4.2 s"), (12.0, "12 s"), (59.97, "60 s"),
     (60, "1 min"), (72.4, "1 min 12 s"), (3600, "1 h"), (3900, "1 h 5 min"),
     (86400 + 7200, "1 d 2 h"), (3 * 86400, "3 d")],
)
def test_durations_read_as_people_say_them(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


# -- recovery verdict -----------------------------------------------------------------------


def _manifests() -> tuple[Manifest, Manifest]:
    expected = Manifest(
        tables={"public.orders": TableEntry(10, "a" * 64), "public.items": TableEntry(3, "b" * 64)},
        schema_digest="c" * 64)
    actual = Manifest(
        tables={"public.orders": TableEntry(9, "d" * 64), "public.items": TableEntry(3, "e" * 64)},
        schema_digest="c" * 64)
    return expected, actual


def test_a_recovery_test_where_every_source_matches_passes() -> None:
    passed, reason = recovery_verdict({"orders-db": [], "uploads": ()})
    assert passed
    assert reason == "restored copy matches the manifest (orders-db, uploads)"


def test_a_recovery_test_that_restored_nothing_fails() -> None:
    assert recovery_verdict({}) == (False, "no source was restore-tested")


def test_a_difference_fails_the_test_and_is_named_in_the_reason() -> None:
    expected, actual = _manifests()
    passed, reason = recovery_verdict({"orders-db": compare(expected, actual), "uploads": []})
    assert not passed
    assert reason.startswith("2 differences in orders-db: ")
    assert "orders-db: table public.items checksum: expected bbbbbbbbbbbbbbbbbbbbbbb…, got " \
           "eeeeeeeeeeeeeeeeeeeeeee…" in reason
    assert "orders-db: table public.orders rows: expected 10, got 9" in reason
    assert "more" not in reason


def test_the_reason_lists_the_first_few_differences_and_counts_the_rest() -> None:
    diffs = [Difference(f"file f{i}.txt", "12 bytes", None) for i in range(5)]
    extra = [Difference("file new.txt", None, "3 bytes (unexpected)")]
    passed, reason = recovery_verdict({"uploads": diffs, "config": extra})
    assert not passed
    assert reason == ("6 differences in uploads, config: uploads: file f0.txt: expected "
                      "12 bytes, got nothing; uploads: file f1.txt: expected 12 bytes, got "
                      "nothing; uploads: file f2.txt: expected 12 bytes, got nothing; and 3 more")


def test_the_reason_stays_on_one_line() -> None:
    passed, reason = recovery_verdict(
        {"uploads": [Difference("file a\nb", "x\ny", "long " * 100)]})
    assert not passed
    assert "\n" not in reason
    assert reason.startswith("1 difference in uploads: uploads: file a b: expected x y, got ")
    assert len(reason) < 200


def test_differences_become_the_contract_s_form_with_long_values_cut() -> None:
    expected, actual = _manifests()
    long_name = "file " + "d/" * 300 + "x.bin"
    diffs = [*compare(expected, actual), Difference(long_name, None, "9 bytes (unexpected)"),
             Difference("", "a", "b")]
    out = to_restore_differences(diffs)
    assert [d.item for d in out[:2]] == ["table public.items checksum",
                                         "table public.orders rows"]
    assert out[0].expected == "b" * 64  # a checksum is kept whole
    assert out[1].actual == "9"
    assert out[2].item.startswith(long_name[:200]) and out[2].item.endswith(
        f"… ({len(long_name)} characters)")
    assert out[2].expected is None
    assert out[3].item == "(unnamed)"
    BackupFailed(change_id="shop-1", service="shop", trigger=BackupTrigger.DEPLOY,
                 phase=BackupPhase.RECOVERY_TEST, reason="x", differences=out)


def test_a_long_list_of_differences_is_cut_and_counted() -> None:
    diffs = [Difference(f"file f{i}", "1 bytes", None) for i in range(120)]
    out = to_restore_differences(diffs)
    assert len(out) == 51
    assert out[49].item == "file f49"
    assert out[50].item == "70 more differences not listed"
    assert to_restore_differences(diffs, limit=120)[-1].item == "file f119"
    assert to_restore_differences([]) == ()


# -- recovery plan --------------------------------------------------------------------------

SECRET = "s3cr3t-value"
LAST = LastVerified(
    change_id="shop-2026.11.28-7",
    verified_at=at(28, 2, 14),
    recovery_seconds=72.4,
    sources=(
        VerifiedSource("orders-db", BackupKind.DATABASE, "abcd1234ef567890", 12_900_000, 4.2,
                       rows=10_234),
        VerifiedSource("uploads", BackupKind.USER_DATA, "0123456789abcdef", 2_000_000_000,
                       68.2, files=1_200),
    ),
)


def plan(last: LastVerified | None = LAST, repository: str = "/var/lib/guardians/restic/shop",
         **fields: Any) -> str:
    defaults: dict[str, Any] = {"schedule": "0 2 * * *", "password_env": "SHOP_RESTIC_KEY"}
    return recovery_plan("shop", policy(**{**defaults, **fields}), repository, last,
                         at(28, 3))


def _line(text: str, containing: str) -> str:
    return next(line for line in text.splitlines() if containing in line)


def test_the_plan_restores_each_database_from_its_snapshot_with_pg_restore() -> None:
    text = plan()
    command = _line(text, "| pg_restore")
    assert command == ("restic dump abcd1234ef567890 /orders-db.dump | pg_restore --clean "
                       "--if-exists --single-transaction --dbname \"$PGDATABASE\"")
    assert database_dump_name("orders-db") == "orders-db.dump"
    for variable in ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "~/.pgpass"):
        assert f"`{variable}`" in text
    assert "`$ORDERS_DB_URL`" in text


def test_the_plan_restores_each_path_source_with_restic_restore() -> None:
    text = plan()
    assert "restic restore 0123456789abcdef --target /\n" in text
    assert "`restic restore 0123456789abcdef --target /tmp/restore-uploads`" in text
    assert "`/srv/uploads`" in text and "(excluding `*.tmp`)" in text


def test_the_plan_takes_the_repository_and_key_from_the_environment() -> None:
    text = plan()
    assert "export RESTIC_REPOSITORY=/var/lib/guardians/restic/shop\n" in text
    assert 'export RESTIC_PASSWORD="$SHOP_RESTIC_KEY"\n' in text
    assert "set -o pipefail" in text


def test_the_plan_gives_the_guardian_shortcut_per_source() -> None:
    text = plan()
    assert "guardians backup restore shop --snapshot abcd1234ef567890  # orders-db" in text
    assert "guardians backup restore shop --snapshot 0123456789abcdef  # uploads" in text


def test_the_plan_never_holds_a_secret() -> None:
    text = plan(repository=f"rest:https://backup:{SECRET}@backups.example:8000/shop")
    assert SECRET not in text
    assert "rest:https://backup:***@backups.example:8000/shop" in text
    assert "masked here as `***`" in text
    assert display_repository("s3:s3.amazonaws.com/bucket") == "s3:s3.amazonaws.com/bucket"
    assert display_repository("sftp:user@host:/srv/restic") == "sftp:user@host:/srv/restic"


def test_commands_quote_their_values_for_the_shell() -> None:
    repository = "/srv/my backups/it's here;rm -rf ~"
    export = _line(plan(repository=repository), "export RESTIC_REPOSITORY=")
    assert shlex.split(export) == ["export", f"RESTIC_REPOSITORY={repository}"]


def test_the_plan_states_the_measured_recovery_time_total_and_per_source() -> None:
    text = plan()
    assert "Measured recovery time: 1 min 12 s for every part" in text
    orders = _line(text, "| orders-db |")
    assert "`abcd1234ef567890`" in orders and "4.2 s" in orders and "10,234 rows" in orders
    assert "12.3 MiB" in orders
    uploads = _line(text, "| uploads |")
    assert "1 min 8 s" in uploads and "1,200 files" in uploads and "1.9 GiB" in uploads


def test_the_plan_names_the_last_verified_backup_and_when() -> None:
    text = plan()
    assert ("Last verified backup: change `shop-2026.11.28-7`, verified 2026-11-28 02:14 UTC "
            "(46 min ago)") in text
    assert "not verified" not in text
    assert "**" not in text


def test_the_plan_states_the_schedule_next_backup_and_retention() -> None:
    text = plan()
    assert ("Schedule: `0 2 * * *` (UTC), next scheduled backup 2026-11-29 02:00 UTC; "
            "a backup also runs after every deploy") in text
    assert ("Retention: `restic forget --keep-last 7 --keep-daily 7 --keep-weekly 4 "
            "--keep-monthly 6`") in text
    assert "older than 26 h" in text
    assert "Schedule: none; backups run only after deploys" in plan(schedule=None)
    broken = plan(schedule="0 0 30 2 *")
    assert "`0 0 30 2 *` is invalid (day-of-month 30 never occurs in february)" in broken


def test_a_plan_with_nothing_verified_says_so_in_bold_at_the_top() -> None:
    text = plan(last=None)
    lines = [line for line in text.splitlines() if line]
    assert lines[0] == "# Recovery plan: shop"
    assert lines[1].startswith("**No backup of shop has been verified yet") and lines[1].endswith(
        "**")
    assert "restic dump '<snapshot-id>' /orders-db.dump" in text
    assert "guardians backup restore shop --snapshot '<snapshot-id>'  # uploads" in text
    assert "find each source's newest snapshot with `restic snapshots`" in text
    assert "Measured recovery time: not measured yet" in text
    assert _line(text, "| orders-db |").count("not verified") == 1


def test_a_source_not_in_the_last_verified_backup_is_marked_unverified() -> None:
    only_db = LastVerified(LAST.change_id, LAST.verified_at, 4.2, LAST.sources[:1])
    text = plan(last=only_db)
    assert "not verified" in _line(text, "| uploads |")
    assert "restic restore '<snapshot-id>' --target /" in text
    assert "abcd1234ef567890" in _line(text, "| pg_restore")


def test_a_verified_source_no_longer_configured_is_mentioned() -> None:
    text = recovery_plan("shop", BackupPolicy.model_validate({"databases": [DB]}), "/r", LAST,
                         at(28, 3))
    assert "no longer configured: uploads (`0123456789abcdef`)" in text
    assert "| uploads |" not in text


def test_a_plan_without_sources_says_nothing_is_backed_up() -> None:
    text = recovery_plan("shop", BackupPolicy(), "/r", None, at(28, 3))
    assert "`guardians.yaml` lists no backup sources for shop" in text
    assert "restic dump" not in text


def test_table_cells_survive_pipes_and_backticks_in_paths() -> None:
    odd = {"name": "odd", "kind": "config", "paths": ["/etc/a|b", "/etc/`x`"]}
    text = plan(paths=[odd])
    row = _line(text, "| odd |")
    assert "`/etc/a\\|b`" in row
    assert "`` `/etc/`x` ``" not in row and "`` /etc/`x` ``" in row


def test_last_verified_reads_a_backup_verified_event() -> None:
    event = BackupVerified(
        change_id="shop-2026.11.28-7", service="shop", trigger=BackupTrigger.DEPLOY,
        repository="/r", recovery_seconds=72.4, occurred_at=at(28, 2, 14),
        snapshots=(
            BackupSnapshot(kind=BackupKind.DATABASE, source="orders-db",
                           snapshot_id="abcd1234ef567890", size_bytes=12_900_000,
                           row_count=10_234, table_count=2, recovery_seconds=4.2),
            BackupSnapshot(kind=BackupKind.USER_DATA, source="uploads",
                           snapshot_id="0123456789abcdef", size_bytes=2_000_000_000,
                           file_count=1_200, recovery_seconds=68.2),
        ))
    assert LastVerified.from_event(event) == LAST


def test_backup_plan_cli_prints_a_plan_without_a_reachable_record(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch
                                                                  ) -> None:
    from typer.testing import CliRunner

    from cli.main import build_app

    config = tmp_path / "guardians.yaml"
    config.write_text("services:\n  shop:\n    backup:\n      databases:\n"
                      "        - {name: orders-db, url_env: SHOP_DB_URL}\n")
    monkeypatch.setenv("GUARDIANS_DATABASE_URL", "postgresql://nobody@127.0.0.1:9/none")
    result = CliRunner().invoke(build_app(), ["backup", "plan", "shop", "--config",
                                              str(config)])
    assert result.exit_code == 0, result.output
    assert "# Recovery plan: shop" in result.output and "orders-db" in result.output
    missing = CliRunner().invoke(build_app(), ["backup", "plan", "cart", "--config",
                                               str(config)])
    assert missing.exit_code == 2 and "'cart' is not in" in missing.output
