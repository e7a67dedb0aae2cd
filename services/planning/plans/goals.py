"""A goal's life on an approved plan: which status changes make sense.

A goal is proposed, then worked on (active, on hold), and ends achieved, not achieved or
cancelled. An ended goal stays ended on its version: to take it up again, revise the plan (the
new draft may set any status, and the supervisor approves it)."""

from __future__ import annotations

from shared.events.planning import GoalStatus

ENDED = frozenset({GoalStatus.ACHIEVED, GoalStatus.NOT_ACHIEVED, GoalStatus.CANCELLED})

TRANSITIONS: dict[GoalStatus, frozenset[GoalStatus]] = {
    GoalStatus.PROPOSED: frozenset({GoalStatus.ACTIVE, GoalStatus.ON_HOLD, GoalStatus.CANCELLED}),
    GoalStatus.ACTIVE: frozenset(
        {GoalStatus.ON_HOLD, GoalStatus.ACHIEVED, GoalStatus.NOT_ACHIEVED, GoalStatus.CANCELLED}
    ),
    GoalStatus.ON_HOLD: frozenset(
        {GoalStatus.ACTIVE, GoalStatus.NOT_ACHIEVED, GoalStatus.CANCELLED}
    ),
    **{status: frozenset() for status in ENDED},
}


def may_change(current: GoalStatus, to: GoalStatus) -> bool:
    return to in TRANSITIONS[current]
