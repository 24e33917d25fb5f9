"""When a scheduled backup is due, when to say it is late, and when the newest one is stale.

A service's `backup.schedule` adds backups to the one after each deploy. The guardian keeps
one fact per service, the fire time of the last scheduled run it started
(`ScheduleState.last_scheduled_run`), and derives the rest:

- due: the latest fire time not after now that has not run. Only the latest: a guardian
  that was down through five fire times takes one backup when it comes back, not five
  (anacron, systemd's `Persistent=`). A service never run owes the latest fire time, so a
  newly scheduled service is backed up at once rather than at the next fire time.
- late: the first fire time after the last scheduled backup that RAN is more than `grace`
  in the past. Judged from what ran, not what was queued, so a run that is queued but stuck
  is late too; and from the first missed fire time, not the latest, so an hourly schedule
  that stopped is late after one hour plus grace, whatever the minute.
- stale: the newest VERIFIED backup is older than `max_age_hours`, or there is none. That
  is what matters for recovery, whatever the trigger, so it is judged with or without a
  schedule.

A service with no backup sources has nothing to back up: nothing is due, late or stale.
Scheduled runs are named from their fire time (`shop-backup-20261128T0200`), so a run
retried after a crash keeps its change id, and so its idempotency keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from services.backup.domain.cron import Cron, as_utc, parse_cron
from services.runtime.config import BackupPolicy, Retention

_UNITS = (("d", 86400, "h", 3600), ("h", 3600, "min", 60), ("min", 60, "s", 1))

AlertValueRow = tuple[str, float | None, str | None, float | None]
"""(name, value, unit, threshold), as `schemas.events.ops.AlertValue` takes them."""


@dataclass(frozen=True)
class ScheduleState:
    """What the guardian remembers per service between ticks."""

    last_scheduled_run: datetime | None
    """The fire time of the last scheduled run started (not when it ran): what `due` takes.
    `lateness` takes the fire time of the last one that finished."""
    last_verified_at: datetime | None
    """When the newest backup, of any trigger, passed its recovery test."""


@dataclass(frozen=True)
class Alertable:
    """What to tell people: the makings of an `ops.alerts` event, minus severity and sender."""

    dedup_key: str
    summary: str
    details: str
    values: tuple[AlertValueRow, ...]


def schedule_of(policy: BackupPolicy) -> Cron | None:
    """The policy's parsed schedule; None when it has none or nothing to back up.

    Raises `CronError` for an invalid expression (the app checks every policy at start)."""
    if policy.schedule is None or not policy.has_sources:
        return None
    return _parse(policy.schedule)


def due(policy: BackupPolicy, now: datetime, last_scheduled_run: datetime | None
        ) -> datetime | None:
    """The fire time to run now (the latest one not after `now`, if it has not run)."""
    cron = schedule_of(policy)
    if cron is None:
        return None
    fire = cron.latest_at_or_before(now)
    if last_scheduled_run is not None and fire <= last_scheduled_run:
        return None
    return fire


def next_backup_at(policy: BackupPolicy, now: datetime, last_run: datetime | None
                   ) -> datetime | None:
    """When the next scheduled backup runs; None without a schedule.

    A fire time that is due and has not run is returned as it is (in the past): it runs at
    the guardian's next tick."""
    cron = schedule_of(policy)
    if cron is None:
        return None
    return due(policy, now, last_run) or cron.next_after(now)


def lateness(policy: BackupPolicy, now: datetime, last_scheduled_run: datetime | None,
             grace: timedelta, *, service: str) -> Alertable | None:
    """An alert when a fire time passed more than `grace` ago without its backup.

    `last_scheduled_run` is the fire time of the last scheduled run that finished (a run
    queued a moment ago by `due` has not backed anything up yet)."""
    cron = schedule_of(policy)
    if cron is None:
        return None
    missed = (due(policy, now, None) if last_scheduled_run is None
              else cron.next_after(last_scheduled_run))
    if missed is None or now - missed <= grace:
        return None
    late = now - missed
    last = "never" if last_scheduled_run is None else format_utc(last_scheduled_run)
    return Alertable(
        dedup_key=f"backup/{service}/late",
        summary=f"{service}: the scheduled backup of {format_utc(missed)} has not run "
                f"({format_duration(late.total_seconds())} late)",
        details=f"Schedule `{cron}` (UTC), grace {format_duration(grace.total_seconds())}. "
                f"Last scheduled backup that ran: {last}. The backup guardian is down, its "
                f"runs are stuck or failing, or its timer is not running.",
        values=(("late_seconds", late.total_seconds(), "s", grace.total_seconds()),),
    )


def staleness(policy: BackupPolicy, now: datetime, last_verified_at: datetime | None, *,
              service: str) -> Alertable | None:
    """An alert when the newest verified backup is older than `max_age_hours`, or missing."""
    if not policy.has_sources:
        return None
    limit = timedelta(hours=policy.max_age_hours)
    if last_verified_at is not None and now - last_verified_at <= limit:
        return None
    cadence = (f"Schedule `{policy.schedule}` (UTC)." if policy.schedule else
               "No schedule: backups run only after deploys, so a service that is not "
               "deployed goes stale; set backup.schedule in guardians.yaml.")
    if last_verified_at is None:
        summary = f"{service}: no backup has been verified yet"
        age_hours = None
        last = "never"
    else:
        age = now - last_verified_at
        summary = (f"{service}: the newest verified backup is "
                   f"{format_duration(age.total_seconds())} old "
                   f"(limit {policy.max_age_hours:g} h)")
        age_hours = age.total_seconds() / 3600
        last = format_utc(last_verified_at)
    return Alertable(
        dedup_key=f"backup/{service}/stale",
        summary=summary,
        details=f"Last verified backup: {last}. {cadence}",
        values=(("backup_age_hours", age_hours, "h", policy.max_age_hours),),
    )


def run_id_for_schedule(service: str, fire_time: datetime) -> str:
    """The change id of a scheduled run: `shop-backup-20261128T0200` (UTC)."""
    return f"{service}-backup-{as_utc(fire_time):%Y%m%dT%H%M}"


def forget_args(retention: Retention) -> list[str]:
    """`restic forget` keep options for the policy; a zero keeps none of that kind."""
    keeps = (("--keep-last", retention.keep_last), ("--keep-daily", retention.keep_daily),
             ("--keep-weekly", retention.keep_weekly),
             ("--keep-monthly", retention.keep_monthly))
    return [word for flag, n in keeps if n > 0 for word in (flag, str(n))]


def check_subset(run_number: int, subsets: int) -> str:
    """`k/N` for `restic check --read-data-subset`: run 1 reads 1/N, run N reads N/N, run N+1
    reads 1/N again, so any N consecutive runs read the whole repository."""
    if subsets < 1:
        raise ValueError(f"subsets must be at least 1, got {subsets}")
    return f"{(run_number - 1) % subsets + 1}/{subsets}"


def format_duration(seconds: float) -> str:
    """A duration for people: `850 ms`, `12.5 s`, `3 min 5 s`, `2 h 5 min`, `3 d 4 h`."""
    if seconds < 1:
        return f"{round(seconds * 1000)} ms"
    if seconds < 60:
        return f"{seconds:.1f} s".replace(".0 s", " s")
    whole = round(seconds)
    unit, size, sub_unit, sub_size = next(row for row in _UNITS if whole >= row[1])
    major, rest = divmod(whole, size)
    minor = rest // sub_size
    return f"{major} {unit} {minor} {sub_unit}" if minor else f"{major} {unit}"


def format_utc(t: datetime) -> str:
    """A time for people, to the minute: `2026-11-28 02:00 UTC`."""
    return f"{as_utc(t):%Y-%m-%d %H:%M} UTC"


@lru_cache(maxsize=256)
def _parse(text: str) -> Cron:
    return parse_cron(text)


