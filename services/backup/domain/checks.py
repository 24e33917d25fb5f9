"""Judging a recovery test: the restored copy matches its manifest, or it does not.

A backup counts as verified only when every source was restored and every source's restored
copy matches what was recorded at backup time (`manifest.compare`). A test that restored
nothing proves nothing, so an empty result is a failure, never a pass.

The differences travel in `backup.failed` and are read by people, so they are cut to a
readable size: values (a 64-digit checksum, a long file name) to a fixed length with how
much was cut, and the list to its first entries, one last entry saying how many more there
were. An event that tried to list a million changed files would not fit in a Kafka message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from schemas.events.backup import RestoreDifference
from services.backup.domain.manifest import Difference

MAX_LISTED = 50
"""Differences listed in an event; the rest are counted."""
_VALUE_LIMIT = 200
"""Characters of an item or value kept in an event (a sha256 is 64)."""
_REASON_LISTED = 3
_REASON_VALUE_LIMIT = 24


def recovery_verdict(differences_by_source: Mapping[str, Sequence[Difference]]
                     ) -> tuple[bool, str]:
    """Whether the recovery test passed, and one line saying why: the sources that match, or
    the first few differences (`source: item: expected X, got Y`) and how many more."""
    if not differences_by_source:
        return False, "no source was restore-tested"
    found = [(source, d) for source, diffs in differences_by_source.items() for d in diffs]
    if not found:
        sources = ", ".join(differences_by_source)
        return True, f"restored copy matches the manifest ({sources})"
    failing = ", ".join(source for source, diffs in differences_by_source.items() if diffs)
    listed = "; ".join(f"{source}: {_describe(d)}" for source, d in found[:_REASON_LISTED])
    more = len(found) - _REASON_LISTED
    tail = f"; and {more} more" if more > 0 else ""
    noun = "difference" if len(found) == 1 else "differences"
    return False, f"{len(found)} {noun} in {failing}: {listed}{tail}"


def to_restore_differences(diffs: Sequence[Difference], limit: int = MAX_LISTED
                           ) -> tuple[RestoreDifference, ...]:
    """The contract's form of the differences: values shortened, at most `limit` listed, and
    when some are left out, a last entry counting them."""
    listed = tuple(
        RestoreDifference(item=_shorten(d.item, _VALUE_LIMIT) or "(unnamed)",
                          expected=_maybe_shorten(d.expected), actual=_maybe_shorten(d.actual))
        for d in diffs[:limit])
    left_out = len(diffs) - len(listed)
    if left_out <= 0:
        return listed
    return (*listed, RestoreDifference(item=f"{left_out} more differences not listed"))


def _describe(d: Difference) -> str:
    expected = _one_line(d.expected, _REASON_VALUE_LIMIT) if d.expected is not None else "nothing"
    actual = _one_line(d.actual, _REASON_VALUE_LIMIT) if d.actual is not None else "nothing"
    return f"{_one_line(d.item, 80)}: expected {expected}, got {actual}"


def _maybe_shorten(value: str | None) -> str | None:
    return None if value is None else _shorten(value, _VALUE_LIMIT)


def _shorten(text: str, limit: int) -> str:
    """`text` cut to about `limit` characters, saying how long it was."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text)} characters)"


def _one_line(text: str, limit: int) -> str:
    """Whitespace folded, so a value cannot break the reason's line, then cut to `limit`."""
    folded = " ".join(text.split())
    return folded if len(folded) <= limit else f"{folded[:limit - 1]}…"
