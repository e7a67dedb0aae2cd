"""What a plan version says: goals tied to the case's needs, actions under them, a safety plan.

These are the models of the plan's content (what the caller sends and what is stored, as one
JSON document per version) and the pure rules that turn a caller's content into a version's:
ids kept stable across edits and versions (that is what lets two versions be compared), a goal
tied to a need the case has, dates not in the past when they are written. No database here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Annotated, Literal, Self
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.planning.cases.models import UserId
from shared.dates import PlausibleDate
from shared.events.planning import GoalStatus
from shared.text import FreeText, ShortText

MAX_GOALS = 20
MAX_ACTIONS = 10
MAX_SAFETY_ITEMS = 20

Description = Annotated[str, FreeText(max_length=1000, multiline=True)]
SafetyItem = Annotated[str, FreeText(max_length=300)]
SafetyItems = Annotated[list[SafetyItem], Field(max_length=MAX_SAFETY_ITEMS)]
NeedCategory = Annotated[str, Field(min_length=1, max_length=63, pattern=r"^[a-z][a-z0-9_]*$")]
OrganisationId = ShortText


class GoalPriority(StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class ActionStatus(StrEnum):
    PLANNED = "planned"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    CANCELLED = "cancelled"


class ResponsibleParty(BaseModel):
    """Who carries an action out: the client, a worker (user id) or a partner organisation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["client", "worker", "partner"]
    worker_id: UserId | None = Field(default=None, description="For `worker`: their user id.")
    organization_id: OrganisationId | None = Field(
        default=None, description="For `partner`: the partner organisation's id."
    )

    @model_validator(mode="after")
    def _named_once(self) -> Self:
        wanted = {"client": (False, False), "worker": (True, False), "partner": (False, True)}
        if (self.worker_id is not None, self.organization_id is not None) != wanted[self.kind]:
            raise ValueError(
                "a worker names worker_id only, a partner organization_id only, the client neither"
            )
        return self


class SafetyPlan(BaseModel):
    """The safety plan section (Stanley-Brown shape), versioned with the plan."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    warning_signs: SafetyItems = Field(default_factory=list)
    coping_strategies: SafetyItems = Field(default_factory=list)
    people_and_places: SafetyItems = Field(
        default_factory=list, description="People and social settings that help as distraction."
    )
    people_to_ask_for_help: SafetyItems = Field(default_factory=list)
    professionals_and_crisis_lines: SafetyItems = Field(default_factory=list)
    making_the_environment_safe: SafetyItems = Field(default_factory=list)


SAFETY_SECTIONS: tuple[str, ...] = tuple(SafetyPlan.model_fields)


class ActionFields(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    description: Description
    responsible: ResponsibleParty
    due_date: PlausibleDate = Field(description="Not in the past when written.")
    status: ActionStatus = ActionStatus.PLANNED


class ActionInput(ActionFields):
    id: UUID | None = Field(
        default=None, description="Omit for a new action; an existing action's id to keep it."
    )


class Action(ActionFields):
    id: UUID


class GoalFields(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    need_category: NeedCategory = Field(description="One of the case's needs.")
    description: Description
    measure: Description = Field(description="How progress is measured, e.g. its unit.")
    target_value: float = Field(
        ge=-1e12, le=1e12, allow_inf_nan=False, description="The value that means achieved."
    )
    target_date: PlausibleDate = Field(description="Not in the past when written.")
    priority: GoalPriority = GoalPriority.MEDIUM
    status: GoalStatus = GoalStatus.PROPOSED


class GoalInput(GoalFields):
    id: UUID | None = Field(
        default=None, description="Omit for a new goal; an existing goal's id to keep it."
    )
    actions: list[ActionInput] = Field(default_factory=list, max_length=MAX_ACTIONS)


class Goal(GoalFields):
    id: UUID = Field(description="Stable across edits and versions of the case's plan.")
    actions: list[Action] = Field(default_factory=list)


class PlanContentInput(BaseModel):
    """A draft's whole content: what PUT replaces and what a first draft may start with."""

    model_config = ConfigDict(extra="forbid")

    goals: list[GoalInput] = Field(default_factory=list, max_length=MAX_GOALS)
    safety_plan: SafetyPlan = Field(default_factory=SafetyPlan)


class PlanContent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    goals: list[Goal] = Field(default_factory=list)
    safety_plan: SafetyPlan = Field(default_factory=SafetyPlan)


@dataclass(frozen=True)
class ContentError:
    field: str
    message: str
    code: str


class InvalidContent(Exception):
    def __init__(self, errors: list[ContentError]) -> None:
        super().__init__("; ".join(error.message for error in errors))
        self.errors = errors


def _duplicates(ids: Iterable[UUID | None]) -> set[UUID]:
    seen: set[UUID] = set()
    repeated: set[UUID] = set()
    for identifier in ids:
        if identifier is not None:
            (repeated if identifier in seen else seen).add(identifier)
    return repeated


def build_content(
    data: PlanContentInput,
    *,
    previous: PlanContent,
    case_needs: frozenset[str],
    today: date,
) -> PlanContent:
    """The content a draft gets from `data`, replacing `previous` (the draft's current content).

    Ids given must name a goal or action of `previous` (so ids stay stable and are never
    invented by a caller); new ones get fresh ids. A goal must be tied to one of the case's
    needs. A target or due date that is new or changed must not be before `today`; one carried
    unchanged from before (a revision of an older plan) stays as agreed. Raises InvalidContent
    listing every problem; nothing is partly applied."""
    errors: list[ContentError] = []
    old_goals = {goal.id: goal for goal in previous.goals}
    old_actions = {action.id: action for goal in previous.goals for action in goal.actions}
    for repeated in _duplicates(goal.id for goal in data.goals):
        errors.append(ContentError("body.goals", f"goal {repeated} appears twice", "duplicate-id"))
    every_action = [action.id for goal in data.goals for action in goal.actions]
    for repeated in _duplicates(every_action):
        errors.append(
            ContentError("body.goals", f"action {repeated} appears twice", "duplicate-id")
        )
    goals: list[Goal] = []
    for g, goal in enumerate(data.goals):
        where = f"body.goals.{g}"
        before = old_goals.get(goal.id) if goal.id is not None else None
        if goal.id is not None and before is None:
            errors.append(ContentError(f"{where}.id", "no such goal in this plan", "unknown-goal"))
        if goal.need_category not in case_needs:
            errors.append(
                ContentError(
                    f"{where}.need_category",
                    "the case has no need of this category",
                    "need-not-on-case",
                )
            )
        if goal.target_date < today and (before is None or before.target_date != goal.target_date):
            errors.append(
                ContentError(f"{where}.target_date", "must not be in the past", "date_past")
            )
        actions: list[Action] = []
        for a, action in enumerate(goal.actions):
            action_where = f"{where}.actions.{a}"
            earlier = old_actions.get(action.id) if action.id is not None else None
            if action.id is not None and earlier is None:
                errors.append(
                    ContentError(
                        f"{action_where}.id", "no such action in this plan", "unknown-action"
                    )
                )
            if action.due_date < today and (earlier is None or earlier.due_date != action.due_date):
                errors.append(
                    ContentError(f"{action_where}.due_date", "must not be in the past", "date_past")
                )
            actions.append(
                Action(
                    **action.model_dump(exclude={"id"}),
                    id=action.id if earlier is not None else uuid4(),
                )
            )
        goals.append(
            Goal(
                **goal.model_dump(exclude={"id", "actions"}),
                id=goal.id if before is not None else uuid4(),
                actions=actions,
            )
        )
    if errors:
        raise InvalidContent(errors)
    return PlanContent(goals=goals, safety_plan=data.safety_plan)
