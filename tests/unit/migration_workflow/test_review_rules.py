"""Who may decide a review, and when it is approved, rejected or sent to the team."""

from __future__ import annotations

from schemas.events.migration import ReviewDecision, ReviewKind
from services.migration.domain.review import Decision, Review, Verdict, decide

CHECKLIST = Review(ReviewKind.CHECKLIST, 1, frozenset({"C1", "C2"}), frozenset({"alice"}))
TEAM = Review(ReviewKind.TEAM, 2, frozenset({"C1"}), frozenset({"alice", "bob", "carol"}))


def vote(reviewer: str, decision: ReviewDecision = ReviewDecision.APPROVE, *,
         signer: str | None = "same", acknowledged: tuple[str, ...] = ()) -> Decision:
    return Decision(reviewer, reviewer if signer == "same" else signer, decision,
                    frozenset(acknowledged))


def test_a_checklist_approval_that_acknowledges_every_item_approves() -> None:
    outcome = decide(CHECKLIST, vote("alice", acknowledged=("C1", "C2")))
    assert outcome.verdict is Verdict.APPROVED and outcome.review.approvals == ("alice",)


def test_a_checklist_approval_that_skips_an_item_does_not_count() -> None:
    outcome = decide(CHECKLIST, vote("alice", acknowledged=("C1",)))
    assert outcome.verdict is Verdict.PENDING
    assert outcome.ignored is not None and "C2" in outcome.ignored


def test_a_reviewer_outside_the_authorised_list_does_not_count() -> None:
    outcome = decide(CHECKLIST, vote("bob", acknowledged=("C1", "C2")))
    assert outcome.verdict is Verdict.PENDING and "may not decide" in (outcome.ignored or "")


def test_a_decision_signed_by_someone_else_does_not_count() -> None:
    outcome = decide(TEAM, vote("alice", signer="mallory"))
    assert outcome.verdict is Verdict.PENDING and "mallory" in (outcome.ignored or "")


def test_an_unsigned_decision_does_not_count() -> None:
    assert decide(TEAM, vote("alice", signer=None)).ignored is not None


def test_a_team_review_needs_distinct_approvals() -> None:
    first = decide(TEAM, vote("alice"))
    assert first.verdict is Verdict.PENDING and first.ignored is None
    again = decide(first.review, vote("alice"))
    assert again.verdict is Verdict.PENDING and "already approved" in (again.ignored or "")
    second = decide(first.review, vote("carol"))
    assert second.verdict is Verdict.APPROVED
    assert second.review.approvals == ("alice", "carol")


def test_one_authorised_rejection_ends_a_team_review() -> None:
    outcome = decide(decide(TEAM, vote("alice")).review, vote("bob", ReviewDecision.REJECT))
    assert outcome.verdict is Verdict.REJECTED


def test_a_checklist_reviewer_may_send_the_change_to_the_team_but_a_team_may_not() -> None:
    assert decide(CHECKLIST, vote("alice", ReviewDecision.ESCALATE_TO_TEAM)).verdict is \
        Verdict.ESCALATED
    assert decide(TEAM, vote("alice", ReviewDecision.ESCALATE_TO_TEAM)).verdict is \
        Verdict.PENDING


def test_sending_to_the_team_starts_a_fresh_count_with_the_team() -> None:
    team = CHECKLIST.approval_counted("alice").sent_to_team(frozenset({"bob", "carol"}), 2)
    assert team.kind is ReviewKind.TEAM and team.approvals == ()
    assert team.authorised == frozenset({"bob", "carol"}) and team.required_approvals == 2
