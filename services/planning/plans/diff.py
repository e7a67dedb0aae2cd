"""What changed between two versions of a case's plan.

Goals and actions keep their ids across versions, so each is added, removed or changed (with
the fields that changed, before and after); safety plan items are short texts, added or
removed per section. Pure: the two versions' goals as each version shows them in, a diff out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

from services.planning.plans.content import SAFETY_SECTIONS, Action, Goal, SafetyPlan


class FieldChange(BaseModel):
    before: Any
    after: Any


class GoalChange(BaseModel):
    goal_id: UUID
    fields: dict[str, FieldChange]


class ActionRef(BaseModel):
    goal_id: UUID
    action_id: UUID


class ActionChange(ActionRef):
    fields: dict[str, FieldChange]


class SectionChange(BaseModel):
    added: list[str]
    removed: list[str]


class GoalsDiff(BaseModel):
    added: list[UUID] = Field(description="Goals of this version the other does not have.")
    removed: list[UUID] = Field(description="Goals of the other version this one dropped.")
    changed: list[GoalChange]


class ActionsDiff(BaseModel):
    added: list[ActionRef]
    removed: list[ActionRef]
    changed: list[ActionChange]


class ContentDiff(BaseModel):
    goals: GoalsDiff
    actions: ActionsDiff
    safety_plan: dict[str, SectionChange] = Field(
        description="Only the sections that changed, by name."
    )


def _fields(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, FieldChange]:
    return {
        name: FieldChange(before=before.get(name), after=after.get(name))
        for name in sorted(set(before) | set(after))
        if before.get(name) != after.get(name)
    }


def _goal_fields(goal: Goal) -> dict[str, Any]:
    return goal.model_dump(mode="json", exclude={"id", "actions"})


def _action_fields(action: Action) -> dict[str, Any]:
    return action.model_dump(mode="json", exclude={"id"})


def _actions(goals: Sequence[Goal]) -> dict[UUID, tuple[UUID, Action]]:
    return {action.id: (goal.id, action) for goal in goals for action in goal.actions}


def _section(before: Sequence[str], after: Sequence[str]) -> SectionChange:
    return SectionChange(
        added=[item for item in after if item not in before],
        removed=[item for item in before if item not in after],
    )


def diff(
    old_goals: Sequence[Goal],
    old_safety: SafetyPlan,
    new_goals: Sequence[Goal],
    new_safety: SafetyPlan,
) -> ContentDiff:
    """From the old version to the new one, in the new version's order (removed: the old's)."""
    old = {goal.id: goal for goal in old_goals}
    new = {goal.id: goal for goal in new_goals}
    changed_goals = [
        GoalChange(goal_id=goal.id, fields=fields)
        for goal in new_goals
        if goal.id in old and (fields := _fields(_goal_fields(old[goal.id]), _goal_fields(goal)))
    ]
    old_actions, new_actions = _actions(old_goals), _actions(new_goals)
    changed_actions = []
    for action_id, (goal_id, action) in new_actions.items():
        if action_id not in old_actions:
            continue
        before_goal, before = old_actions[action_id]
        fields = _fields(
            {**_action_fields(before), "goal_id": str(before_goal)},
            {**_action_fields(action), "goal_id": str(goal_id)},
        )
        if fields:
            changed_actions.append(
                ActionChange(goal_id=goal_id, action_id=action_id, fields=fields)
            )
    sections = {
        name: change
        for name in SAFETY_SECTIONS
        if (change := _section(getattr(old_safety, name), getattr(new_safety, name))).added
        or change.removed
    }
    return ContentDiff(
        goals=GoalsDiff(
            added=[goal.id for goal in new_goals if goal.id not in old],
            removed=[goal.id for goal in old_goals if goal.id not in new],
            changed=changed_goals,
        ),
        actions=ActionsDiff(
            added=[
                ActionRef(goal_id=goal_id, action_id=action_id)
                for action_id, (goal_id, _) in new_actions.items()
                if action_id not in old_actions
            ],
            removed=[
                ActionRef(goal_id=goal_id, action_id=action_id)
                for action_id, (goal_id, _) in old_actions.items()
                if action_id not in new_actions
            ],
            changed=changed_actions,
        ),
        safety_plan=sections,
    )
