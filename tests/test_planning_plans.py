"""Service plans: versioned goals, actions and safety plan; approval through the generic
mechanism; goal status and progress on the version in force; the diff between versions.

The pure rules first (content building, goal transitions, the diff), then the API against the
real database and broker, one stack for the module.
"""

from __future__ import annotations

from datetime import date
from uuid import uuid4

import pytest

from services.planning.plans.content import (
    InvalidContent,
    PlanContent,
    PlanContentInput,
    SafetyPlan,
    build_content,
)
from services.planning.plans.diff import diff
from services.planning.plans.goals import may_change
from shared.events.planning import GoalStatus

TODAY = date(2026, 11, 29)
NEEDS = frozenset({"housing", "employment"})


def goal(**overrides: object) -> dict[str, object]:
    return {
        "need_category": "housing",
        "description": "Move into a stable tenancy",
        "measure": "Nights in own tenancy per month",
        "target_value": 30,
        "target_date": "2027-03-01",
        "priority": "high",
        "actions": [
            {
                "description": "Apply for the housing register",
                "responsible": {"kind": "client"},
                "due_date": "2026-12-15",
            }
        ],
        **overrides,
    }


def content(*goals: dict[str, object], **safety: list[str]) -> PlanContentInput:
    return PlanContentInput.model_validate({"goals": list(goals), "safety_plan": safety})


def built(data: PlanContentInput, previous: PlanContent | None = None) -> PlanContent:
    return build_content(data, previous=previous or PlanContent(), case_needs=NEEDS, today=TODAY)


# --- Content rules --------------------------------------------------------------------------


def test_new_goals_and_actions_get_ids_and_keep_them_on_edit() -> None:
    first = built(content(goal()))
    [kept] = first.goals
    edited = built(
        content(
            goal(
                id=str(kept.id),
                target_value=25,
                actions=[{**goal()["actions"][0], "id": str(kept.actions[0].id)}],  # type: ignore[index]
            ),
            goal(need_category="employment", description="Find part-time work"),
        ),
        previous=first,
    )
    assert edited.goals[0].id == kept.id
    assert edited.goals[0].actions[0].id == kept.actions[0].id
    assert edited.goals[0].target_value == 25
    assert edited.goals[1].id not in (kept.id, kept.actions[0].id)


def test_ids_a_caller_invents_are_refused() -> None:
    with pytest.raises(InvalidContent) as refused:
        built(content(goal(id=str(uuid4()))))
    assert [(e.field, e.code) for e in refused.value.errors] == [
        ("body.goals.0.id", "unknown-goal")
    ]


def test_a_goal_must_be_tied_to_a_need_of_the_case() -> None:
    with pytest.raises(InvalidContent) as refused:
        built(content(goal(need_category="legal")))
    assert [e.code for e in refused.value.errors] == ["need-not-on-case"]


def test_past_target_and_due_dates_are_refused_when_written() -> None:
    past_action = {
        "description": "Call",
        "responsible": {"kind": "client"},
        "due_date": "2026-11-28",
    }
    with pytest.raises(InvalidContent) as refused:
        built(content(goal(target_date="2026-11-28", actions=[past_action])))
    assert sorted((e.field, e.code) for e in refused.value.errors) == [
        ("body.goals.0.actions.0.due_date", "date_past"),
        ("body.goals.0.target_date", "date_past"),
    ]


def test_a_past_date_carried_unchanged_from_before_stays_as_agreed() -> None:
    earlier = build_content(
        content(goal(target_date="2026-06-01", actions=[])),
        previous=PlanContent(),
        case_needs=NEEDS,
        today=date(2026, 1, 1),
    )
    [old] = earlier.goals
    again = built(content(goal(id=str(old.id), target_date="2026-06-01", actions=[])), earlier)
    assert again.goals[0].target_date == date(2026, 6, 1)


def test_a_goal_without_measure_or_target_date_is_invalid() -> None:
    for missing in ("measure", "target_date"):
        incomplete = {k: v for k, v in goal().items() if k != missing}
        with pytest.raises(ValueError, match=missing):
            content(incomplete)


def test_responsible_party_names_exactly_what_its_kind_needs() -> None:
    for responsible in (
        {"kind": "worker"},
        {"kind": "client", "worker_id": "alice"},
        {"kind": "partner", "worker_id": "alice"},
    ):
        action = {"description": "x", "responsible": responsible, "due_date": "2027-01-01"}
        with pytest.raises(ValueError, match="worker names worker_id only"):
            content(goal(actions=[action]))
    assert (
        content(
            goal(
                actions=[
                    {
                        "description": "Hold a place",
                        "responsible": {"kind": "partner", "organization_id": "org-shelter"},
                        "due_date": "2027-01-01",
                    }
                ]
            )
        )
        .goals[0]
        .actions[0]
        .responsible.organization_id
        == "org-shelter"
    )


def test_a_goal_or_action_repeated_is_refused() -> None:
    first = built(content(goal()))
    again = str(first.goals[0].id)
    with pytest.raises(InvalidContent) as refused:
        built(content(goal(id=again), goal(id=again)), first)
    assert [e.code for e in refused.value.errors] == ["duplicate-id"]


# --- Goal transitions -----------------------------------------------------------------------


def test_goal_transitions() -> None:
    assert may_change(GoalStatus.PROPOSED, GoalStatus.ACTIVE)
    assert may_change(GoalStatus.ACTIVE, GoalStatus.ACHIEVED)
    assert may_change(GoalStatus.ON_HOLD, GoalStatus.ACTIVE)
    assert not may_change(GoalStatus.ACHIEVED, GoalStatus.ACTIVE)
    assert not may_change(GoalStatus.CANCELLED, GoalStatus.PROPOSED)
    assert not may_change(GoalStatus.ACTIVE, GoalStatus.ACTIVE)


# --- The diff -------------------------------------------------------------------------------


def test_diff_names_goals_and_actions_added_removed_and_changed_and_safety_items() -> None:
    old = built(
        content(
            goal(),
            goal(need_category="employment", description="Find work", actions=[]),
            warning_signs=["Not sleeping"],
            coping_strategies=["Walk the dog"],
        )
    )
    housing, work = old.goals
    new = built(
        content(
            goal(
                id=str(housing.id),
                target_date="2027-04-01",
                actions=[
                    {
                        "id": str(housing.actions[0].id),
                        "description": "Apply for the housing register",
                        "responsible": {"kind": "worker", "worker_id": "alice"},
                        "due_date": "2026-12-15",
                    },
                    {
                        "description": "View flats",
                        "responsible": {"kind": "client"},
                        "due_date": "2027-01-10",
                    },
                ],
            ),
            goal(need_category="employment", description="Start a course", actions=[]),
            warning_signs=["Not sleeping", "Missing appointments"],
            coping_strategies=[],
        ),
        old,
    )
    changes = diff(old.goals, old.safety_plan, new.goals, new.safety_plan)

    new_goal = new.goals[1].id
    assert changes.goals.added == [new_goal]
    assert changes.goals.removed == [work.id]
    [changed] = changes.goals.changed
    assert changed.goal_id == housing.id
    assert {k: (v.before, v.after) for k, v in changed.fields.items()} == {
        "target_date": ("2027-03-01", "2027-04-01")
    }
    [action_change] = changes.actions.changed
    assert action_change.action_id == housing.actions[0].id
    assert action_change.fields["responsible"].after == {
        "kind": "worker",
        "worker_id": "alice",
        "organization_id": None,
    }
    assert [a.action_id for a in changes.actions.added] == [new.goals[0].actions[1].id]
    assert changes.actions.removed == []
    assert {k: (v.added, v.removed) for k, v in changes.safety_plan.items()} == {
        "warning_signs": (["Missing appointments"], []),
        "coping_strategies": ([], ["Walk the dog"]),
    }


def test_the_diff_of_a_version_with_itself_is_empty() -> None:
    same = built(content(goal(), warning_signs=["x"]))
    changes = diff(same.goals, same.safety_plan, same.goals, same.safety_plan)
    assert changes.goals.added == changes.goals.removed == changes.goals.changed == []
    assert changes.actions.changed == [] and changes.safety_plan == {}


def test_safety_plan_items_are_checked_text() -> None:
    with pytest.raises(ValueError, match="control characters"):
        SafetyPlan.model_validate({"warning_signs": ["ok\x1b[31m"]})
