"""Caseload views: a worker's open cases, a team's load against capacity, and ranked
suggestions of who could take a case. Ids, codes and figures; the team view names no client."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, Field

from services.planning.workers.models import WorkerRole


class CaseloadEntry(BaseModel):
    case_id: UUID
    client_id: UUID
    status: str
    risk_level: str | None = Field(description="Null: not assessed yet (weighted as `unknown`).")
    next_review_due_at: datetime | None
    review_overdue: bool
    last_contact_at: datetime | None
    days_since_last_contact: int | None = Field(
        description="Whole days since the last contact note; null when there was none."
    )
    opened_at: datetime


class Load(BaseModel):
    """A worker's open cases against the capacity the staff directory gives them."""

    open_cases: int
    weighted_caseload: float = Field(description="The open cases' risk weights, summed.")
    capacity_points: int
    remaining_capacity: float = Field(description="Capacity points minus weighted caseload.")
    over_capacity: bool
    overdue_reviews: int


class WorkerCaseload(Load):
    worker_id: str
    team_id: str | None
    as_of: datetime
    cases: list[CaseloadEntry] = Field(
        description="Highest risk first (crisis, high, moderate, low, not assessed), then by "
        "the next review due."
    )


class WorkerLoad(Load):
    worker_id: str
    display_name: str
    role: WorkerRole
    languages: list[str]


class TeamCaseload(BaseModel):
    organization_id: str
    team_id: str
    as_of: datetime
    weights: dict[str, float] = Field(description="The weight of one open case per risk level.")
    workers: list[WorkerLoad] = Field(description="The team's active workers, by worker id.")


class Reason(BaseModel):
    code: str = Field(examples=["speaks_client_language", "remaining_capacity", "over_capacity"])
    message: str = Field(examples=["remaining capacity 4.5 of 20"])


class Suggestion(BaseModel):
    rank: int = Field(ge=1)
    worker_id: str
    display_name: str
    role: WorkerRole
    speaks_client_language: bool | None = Field(
        description="Null when the case's preferred language is not known."
    )
    load: Load
    reasons: list[Reason]


class AssignmentSuggestions(BaseModel):
    case_id: UUID
    team_id: str | None
    preferred_language: str | None
    suggestions: list[Suggestion] = Field(
        description="The team's active workers but the case's own: those who speak the "
        "client's language first, then the most remaining capacity."
    )
