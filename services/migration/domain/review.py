"""Who may decide a review, and when a change is approved, rejected or sent to the team.

A decision counts only when it is signed by the reviewer it names, the reviewer is
authorised for this kind of review, and has not already approved. A checklist approval must
acknowledge every item. A team review needs the configured number of distinct approvals;
one authorised rejection ends it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from schemas.events.enums import ReviewDecision, ReviewKind


class Verdict(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    ESCALATED = "escalated"
    """A checklist reviewer sent the change to team review."""


@dataclass(frozen=True)
class Review:
    kind: ReviewKind
    required_approvals: int
    checklist_ids: frozenset[str]
    authorised: frozenset[str]
    approvals: tuple[str, ...] = ()

    def approval_counted(self, reviewer: str) -> Review:
        return replace(self, approvals=(*self.approvals, reviewer))

    def sent_to_team(self, team: frozenset[str], required: int) -> Review:
        return replace(self, kind=ReviewKind.TEAM, authorised=team,
                       required_approvals=required, approvals=())


@dataclass(frozen=True)
class Decision:
    reviewer: str
    signer: str | None
    decision: ReviewDecision
    acknowledged: frozenset[str]


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    review: Review
    ignored: str | None = None
    """Why the decision did not count (None when it counted)."""


def decide(review: Review, decision: Decision) -> Outcome:
    who = decision.reviewer
    if decision.signer != who:
        return Outcome(Verdict.PENDING, review,
                       f"signed by {decision.signer!r}, not by the reviewer {who!r}")
    if who not in review.authorised:
        return Outcome(Verdict.PENDING, review,
                       f"{who!r} may not decide a {review.kind.value} review")
    if who in review.approvals:
        return Outcome(Verdict.PENDING, review, f"{who!r} has already approved")
    if decision.decision is ReviewDecision.REJECT:
        return Outcome(Verdict.REJECTED, review)
    if decision.decision is ReviewDecision.ESCALATE_TO_TEAM:
        if review.kind is ReviewKind.TEAM:
            return Outcome(Verdict.PENDING, review, "already a team review")
        return Outcome(Verdict.ESCALATED, review)
    if review.kind is ReviewKind.CHECKLIST:
        missing = sorted(review.checklist_ids - decision.acknowledged)
        if missing:
            return Outcome(Verdict.PENDING, review,
                           f"approval leaves checklist items unacknowledged: {', '.join(missing)}")
    counted = review.approval_counted(who)
    if len(counted.approvals) >= counted.required_approvals:
        return Outcome(Verdict.APPROVED, counted)
    return Outcome(Verdict.PENDING, counted)
