"""The static findings against what the shadow run saw (services/migration/domain/trace_check):
a predicted rewrite the run did not see becomes the lock it is, an unpredicted rewrite of a
baseline table becomes a finding, a confirmed lock or rewrite says so."""

from __future__ import annotations

from dataclasses import dataclass

from schemas.events.enums import LockMode, Severity
from services.migration.domain.findings import Effect, Finding
from services.migration.domain.trace_check import REWRITE_OBSERVED, reconcile


@dataclass(frozen=True)
class Lock:
    relation: str
    mode: LockMode


@dataclass(frozen=True)
class Trace:
    statement: str
    file: str | None
    line: int | None
    locks: tuple[Lock, ...] = ()
    rewrote: tuple[str, ...] = ()


BASELINE = frozenset({"public.orders", "public.users"})
TYPE_CHANGE = Finding(
    rule="changing-column-type", severity=Severity.WARNING, effect=Effect.REWRITE,
    message="ALTER COLUMN note TYPE text may rewrite orders.", file="0002/up.sql", line=3,
    statement="ALTER TABLE orders ALTER COLUMN note TYPE text", target="orders",
    lock=LockMode.ACCESS_EXCLUSIVE)
EXCLUSIVE = (Lock("public.orders", LockMode.ACCESS_EXCLUSIVE),)


def test_a_predicted_rewrite_the_run_did_not_see_is_only_a_lock() -> None:
    (checked,) = reconcile([TYPE_CHANGE], [Trace(TYPE_CHANGE.statement or "", "0002/up.sql", 3,
                                                 EXCLUSIVE)], BASELINE)
    assert checked.effect is Effect.BLOCKING_LOCK
    assert "did not rewrite public.orders (it held ACCESS EXCLUSIVE)" in checked.message


def test_a_predicted_rewrite_the_run_saw_is_confirmed_and_keeps_its_grade() -> None:
    trace = Trace("...", "0002/up.sql", 3, EXCLUSIVE, rewrote=("public.orders",))
    (checked,) = reconcile([TYPE_CHANGE], [trace], BASELINE)
    assert checked.effect is Effect.REWRITE
    assert checked.message.endswith("Confirmed by the shadow run: public.orders was rewritten.")


def test_an_unpredicted_rewrite_of_a_baseline_table_is_a_finding() -> None:
    trace = Trace("ALTER TABLE users SET LOGGED", "0003/up.sql", 1,
                  (Lock("public.users", LockMode.ACCESS_EXCLUSIVE),), rewrote=("public.users",))
    (found,) = reconcile([], [trace], BASELINE)
    assert (found.rule, found.effect, found.target, found.line) == (
        REWRITE_OBSERVED, Effect.REWRITE, "public.users", 1)
    assert "ACCESS EXCLUSIVE" in found.message


def test_a_rewrite_of_a_table_the_change_created_is_not_a_finding() -> None:
    trace = Trace("ALTER TABLE fresh ALTER COLUMN a TYPE bigint", "0003/up.sql", 2,
                  rewrote=("public.fresh",))
    assert reconcile([], [trace], BASELINE) == []


def test_findings_without_a_trace_or_in_down_scripts_are_left_alone() -> None:
    down = Finding(**{**TYPE_CHANGE.__dict__, "file": "0002/down", "rollback": True})
    other_line = Trace("...", "0002/up.sql", 9, EXCLUSIVE)
    assert reconcile([TYPE_CHANGE, down], [other_line], BASELINE) == [TYPE_CHANGE, down]


def test_an_observed_lock_is_named_on_the_finding_that_predicted_it() -> None:
    index = Finding(
        rule="require-concurrent-index-creation", severity=Severity.WARNING,
        effect=Effect.BLOCKING_LOCK, message="CREATE INDEX blocks writes.", file="0004/up.sql",
        line=1, target="orders", lock=LockMode.SHARE)
    trace = Trace("CREATE INDEX ...", "0004/up.sql", 1, (Lock("public.orders", LockMode.SHARE),))
    (checked,) = reconcile([index], [trace], BASELINE)
    assert checked.effect is Effect.BLOCKING_LOCK
    assert checked.message.endswith("Observed on the shadow run: SHARE on public.orders.")


def test_a_rewrite_on_a_statement_already_graded_as_data_loss_adds_nothing() -> None:
    lossy = Finding(
        rule="lossy-column-type-change", severity=Severity.ERROR, effect=Effect.DATA_LOSS,
        message="narrows id.", file="0005/up.sql", line=2, target="orders",
        lock=LockMode.ACCESS_EXCLUSIVE)
    trace = Trace("...", "0005/up.sql", 2, EXCLUSIVE, rewrote=("public.orders",))
    assert [f.rule for f in reconcile([lossy], [trace], BASELINE)] == [
        "lossy-column-type-change"]
