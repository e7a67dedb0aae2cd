"""Case reviews: scheduled by the risk cadence (and by assessments and crises), held with an
outcome and who attended (roles and organisations; no names needed)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import CheckConstraint, Column, DateTime, Index, MetaData, Table, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import UUID as PgUUID

from shared.events.assessment import RiskLevel
from shared.events.planning import ReviewOutcome
from shared.text import ShortText

ReviewReason = Literal["cadence", "assessment", "crisis", "manual"]
MAX_ATTENDEES = 50


class ReviewStatus(StrEnum):
    SCHEDULED = "scheduled"
    COMPLETED = "completed"
    SUPERSEDED = "superseded"  # a later schedule (assessment, crisis, closure) replaced it


class AttendeeRole(StrEnum):
    CLIENT = "client"
    CASEWORKER = "caseworker"
    SUPERVISOR = "supervisor"
    FAMILY_OR_SUPPORT = "family_or_support"
    PARTNER = "partner"
    OTHER_PROFESSIONAL = "other_professional"


class Attendee(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    role: AttendeeRole
    organization_id: ShortText | None = Field(
        default=None, description="The attendee's organisation, for professionals."
    )


class ReviewPublic(BaseModel):
    id: UUID
    case_id: UUID
    due_at: datetime
    reason: ReviewReason
    risk_level: RiskLevel | None
    status: ReviewStatus
    outcome: ReviewOutcome | None
    attendees: list[Attendee]
    scheduled_at: datetime
    completed_by: str | None
    completed_at: datetime | None


class CompletionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: ReviewOutcome
    attendees: Annotated[list[Attendee], Field(min_length=1, max_length=MAX_ATTENDEES)]


REVIEW_COLUMNS = (
    "id, case_id, due_at, reason, risk_level, status, outcome, attendees, scheduled_at, "
    "completed_by, completed_at"
)


def reviews_table(metadata: MetaData) -> Table:
    return Table(
        "reviews",
        metadata,
        Column("id", PgUUID(as_uuid=True), primary_key=True),
        Column("case_id", PgUUID(as_uuid=True), nullable=False),
        Column("client_id", PgUUID(as_uuid=True), nullable=False),
        Column("due_at", DateTime(timezone=True), nullable=False),
        Column("reason", Text, nullable=False),
        Column("risk_level", Text),
        Column("status", Text, nullable=False),
        Column("outcome", Text),
        Column("attendees", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
        Column("scheduled_at", DateTime(timezone=True), nullable=False),
        Column("completed_by", Text),
        Column("completed_at", DateTime(timezone=True)),
        CheckConstraint("status IN ('scheduled', 'completed', 'superseded')", name="status_known"),
        # At most one scheduled review per case: scheduling supersedes the previous one.
        Index(
            "uq_reviews_scheduled_case_id",
            "case_id",
            unique=True,
            postgresql_where=text("status = 'scheduled'"),
        ),
        Index("ix_reviews_case_id_due_at", "case_id", "due_at"),
    )


def case_crises_table(metadata: MetaData) -> Table:
    """Crisis flags raised on a case's client (from ProtectedFlagRaised): the crisis stays on
    top of due work until a review is completed after it. Never the flag's type."""
    return Table(
        "case_crises",
        metadata,
        Column("flag_id", PgUUID(as_uuid=True), primary_key=True),
        Column("case_id", PgUUID(as_uuid=True), nullable=False),
        Column("client_id", PgUUID(as_uuid=True), nullable=False),
        Column("raised_at", DateTime(timezone=True), nullable=False),
        Column("review_id", PgUUID(as_uuid=True), nullable=False),
        Index("ix_case_crises_case_id_raised_at", "case_id", "raised_at"),
    )
