"""Closed-loop referrals: the transition table (every move, by side) and the lifecycle through
the API (who may set what, history, events, access by side)."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from services.referrals.lifecycle.transitions import (
    TABLE_FILE,
    Allowed,
    Refusal,
    RefusalKind,
    Side,
    decide,
    parse_table,
    table,
)
from shared.events.referrals import ReferralOutcome, ReferralReason, ReferralStatus

S = ReferralStatus
OPEN = [S.DRAFT, S.REQUESTED, S.ACCEPTED, S.IN_PROGRESS, S.ON_HOLD]
EVERY_BUT_ERROR = [s for s in S if s is not S.ENTERED_IN_ERROR]

# The lifecycle as the SDOH Clinical Care IG's Task uses it, written out here independently of
# the data file: (from, to) -> the sides that may make the move.
EXPECTED: dict[tuple[S, S], set[Side]] = {
    (S.DRAFT, S.REQUESTED): {Side.SENDING},
    (S.DRAFT, S.CANCELLED): {Side.SENDING, Side.SYSTEM},
    (S.REQUESTED, S.ACCEPTED): {Side.RECEIVING},
    (S.REQUESTED, S.REJECTED): {Side.RECEIVING},
    (S.REQUESTED, S.EXPIRED): {Side.SYSTEM},
    (S.ACCEPTED, S.IN_PROGRESS): {Side.RECEIVING},
    (S.IN_PROGRESS, S.ON_HOLD): {Side.RECEIVING},
    (S.IN_PROGRESS, S.COMPLETED): {Side.RECEIVING},
    (S.IN_PROGRESS, S.FAILED): {Side.RECEIVING},
    (S.ON_HOLD, S.IN_PROGRESS): {Side.RECEIVING},
    **{(s, S.CANCELLED): {Side.SENDING, Side.SYSTEM} for s in OPEN},
    **{(s, S.ENTERED_IN_ERROR): {Side.SENDING} for s in EVERY_BUT_ERROR},
}
NEEDS_REASON = {S.REJECTED, S.CANCELLED, S.ON_HOLD, S.FAILED}


def _valid_extras(to: S, side: Side) -> dict[str, Any]:
    """A reason and outcome that satisfy the rules of moving to `to` as `side`."""
    reason = None
    if to in NEEDS_REASON:
        reason = ReferralReason.CONSENT_REVOKED if side is Side.SYSTEM else ReferralReason.OTHER
    outcome = ReferralOutcome.GOT_HELP if to is S.COMPLETED else None
    return {"reason": reason, "outcome": outcome}


TRIPLES = list(itertools.product(S, S, Side))


@pytest.mark.parametrize(
    ("current", "to", "side"), TRIPLES, ids=[f"{a}->{b} by {c}" for a, b, c in TRIPLES]
)
def test_every_move_by_every_side_follows_the_table(current: S, to: S, side: Side) -> None:
    decision = decide(table(), current=current, to=to, sides={side}, **_valid_extras(to, side))

    if side in EXPECTED.get((current, to), set()):
        assert decision == Allowed(side)
    else:
        assert isinstance(decision, Refusal)
        assert decision.kind is RefusalKind.NOT_ALLOWED
        allowed = [t for t in S if side in EXPECTED.get((current, t), set())]
        assert list(decision.allowed_next) == allowed
        assert f"Allowed next: {', '.join(allowed) or 'none'}" in decision.detail


def test_the_data_file_holds_exactly_the_expected_moves() -> None:
    loaded = table()
    moves = {key: {side for rule in rules for side in rule.sides} for key, rules in loaded.rules.items()}
    assert moves == EXPECTED
    assert loaded.reason_required == NEEDS_REASON
    assert loaded.final == {S.COMPLETED, S.REJECTED, S.CANCELLED, S.FAILED, S.EXPIRED, S.ENTERED_IN_ERROR}
    assert loaded.open == set(OPEN)


@pytest.mark.parametrize("to", sorted(NEEDS_REASON))
def test_rejected_cancelled_on_hold_and_failed_need_a_reason(to: S) -> None:
    current = next(s for s in S if Side.RECEIVING in EXPECTED.get((s, to), set()) or Side.SENDING in EXPECTED.get((s, to), set()))
    sides = EXPECTED[(current, to)] - {Side.SYSTEM}

    decision = decide(table(), current=current, to=to, sides=sides, reason=None, outcome=None)

    assert isinstance(decision, Refusal) and decision.kind is RefusalKind.REASON_REQUIRED


def test_only_the_system_cancels_for_a_revoked_consent_and_only_for_that() -> None:
    by_worker = decide(
        table(), current=S.ACCEPTED, to=S.CANCELLED, sides={Side.SENDING},
        reason=ReferralReason.CONSENT_REVOKED, outcome=None,
    )  # fmt: skip
    by_system = decide(
        table(), current=S.ACCEPTED, to=S.CANCELLED, sides={Side.SYSTEM},
        reason=ReferralReason.CLIENT_DECLINED, outcome=None,
    )  # fmt: skip
    revoked = decide(
        table(), current=S.ACCEPTED, to=S.CANCELLED, sides={Side.SYSTEM},
        reason=ReferralReason.CONSENT_REVOKED, outcome=None,
    )  # fmt: skip

    assert isinstance(by_worker, Refusal) and by_worker.kind is RefusalKind.REASON_NOT_ALLOWED
    assert isinstance(by_system, Refusal) and by_system.kind is RefusalKind.REASON_NOT_ALLOWED
    assert revoked == Allowed(Side.SYSTEM)


def test_completion_records_an_outcome_and_only_a_final_status_takes_one() -> None:
    without = decide(
        table(), current=S.IN_PROGRESS, to=S.COMPLETED, sides={Side.RECEIVING}, reason=None,
        outcome=None,
    )  # fmt: skip
    on_open = decide(
        table(), current=S.ACCEPTED, to=S.IN_PROGRESS, sides={Side.RECEIVING}, reason=None,
        outcome=ReferralOutcome.GOT_HELP,
    )  # fmt: skip

    assert isinstance(without, Refusal) and without.kind is RefusalKind.OUTCOME_REQUIRED
    assert isinstance(on_open, Refusal) and on_open.kind is RefusalKind.OUTCOME_NOT_ALLOWED


def test_a_caller_on_both_sides_moves_as_the_side_the_table_allows() -> None:
    both = {Side.SENDING, Side.RECEIVING}
    accepted = decide(table(), current=S.REQUESTED, to=S.ACCEPTED, sides=both, reason=None, outcome=None)
    assert accepted == Allowed(Side.RECEIVING)
    assert table().allowed_next(S.REQUESTED, both) == [S.ACCEPTED, S.REJECTED, S.CANCELLED, S.ENTERED_IN_ERROR]


def test_an_inconsistent_table_is_refused_when_loaded() -> None:
    raw = json.loads(TABLE_FILE.read_text(encoding="utf-8"))
    reopening = {**raw, "transitions": [*raw["transitions"], {"from": ["completed"], "to": "requested", "by": ["sending"]}]}
    unknown_side = {**raw, "transitions": [{"from": ["draft"], "to": "requested", "by": ["anyone"]}]}
    unknown_status = {**raw, "transitions": [{"from": ["draft"], "to": "sent", "by": ["sending"]}]}

    for broken in (reopening, unknown_side, unknown_status):
        with pytest.raises(ValueError):
            parse_table(broken)
