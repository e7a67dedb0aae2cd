"""Service plans: the tables and the API models around a version's content."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    Identity,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import UUID as PgUUID

from services.planning.plans.content import Goal, SafetyPlan
from services.planning.plans.diff import ContentDiff
from shared.dates import PlausibleDatetime
from shared.events.planning import GoalStatus
from shared.text import Note


class PlanStatus(StrEnum):
    DRAFT = "draft"
    AWAITING_APPROVAL = "awaiting_approval"
    APPROVED = "approved"
    SUPERSEDED = "superseded"


class AgreementHow(StrEnum):
    SIGNED = "signed"
    VERBAL = "verbal"
    DECLINED = "declined"


def _one_of(column: str, values: type[StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(str(v)) for v in values)})"


def plans_table(metadata: MetaData) -> Table:
    """Every version of every case's plan. The content (goals, actions, safety plan) is one
    document per version: an approved version's is never written again."""
    return Table(
        "plans",
        metadata,
        Column("id", PgUUID(as_uuid=True), primary_key=True),
        Column("case_id", PgUUID(as_uuid=True), nullable=False),
        Column("client_id", PgUUID(as_uuid=True), nullable=False),
        Column("number", Integer, nullable=False),
        Column("status", Text, nullable=False),
        Column("based_on", PgUUID(as_uuid=True), comment="the approved version it revises"),
        Column("content", JSONB, nullable=False),
        Column("content_changed_at", DateTime(timezone=True), nullable=False),
        Column("agreement_how", Text),
        Column("agreement_at", DateTime(timezone=True)),
        Column("agreement_recorded_by", Text),
        Column("agreement_recorded_at", DateTime(timezone=True)),
        Column("row_version", Integer, nullable=False),
        Column("created_by", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("updated_by", Text, nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
        Column("approval_id", PgUUID(as_uuid=True)),
        Column("approved_by", Text),
        Column("approved_at", DateTime(timezone=True)),
        Column("superseded_at", DateTime(timezone=True)),
        CheckConstraint(_one_of("status", PlanStatus), name="status"),
        CheckConstraint(
            f"agreement_how IS NULL OR {_one_of('agreement_how', AgreementHow)}",
            name="agreement_how",
        ),
        UniqueConstraint("case_id", "number"),
        # One version being worked on per case, and one approved version in force.
        Index(
            "uq_plans_case_id_open",
            "case_id",
            unique=True,
            postgresql_where=text("status IN ('draft', 'awaiting_approval')"),
        ),
        Index(
            "uq_plans_case_id_approved",
            "case_id",
            unique=True,
            postgresql_where=text("status = 'approved'"),
        ),
        Index("ix_plans_status_updated_at", "status", "updated_at"),
    )


def goal_progress_table(metadata: MetaData) -> Table:
    """Measurements of a goal over time; the goal's id is stable across versions, so its
    history follows it into revisions."""
    return Table(
        "goal_progress",
        metadata,
        Column("id", PgUUID(as_uuid=True), primary_key=True),
        Column("case_id", PgUUID(as_uuid=True), nullable=False),
        Column("plan_id", PgUUID(as_uuid=True), nullable=False),
        Column("goal_id", PgUUID(as_uuid=True), nullable=False),
        Column("value", Float, nullable=False),
        Column("note", Text),
        Column("recorded_at", DateTime(timezone=True), nullable=False),
        Column("recorded_by", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Index("ix_goal_progress_goal_id_recorded_at", "goal_id", "recorded_at"),
    )


def goal_status_changes_table(metadata: MetaData) -> Table:
    """Status changes of the goals of an approved version (its content stays as approved)."""
    return Table(
        "goal_status_changes",
        metadata,
        Column("id", PgUUID(as_uuid=True), primary_key=True),
        # The order of changes, even two in one instant (the latest is the goal's status).
        Column("seq", BigInteger, Identity(), nullable=False),
        Column("case_id", PgUUID(as_uuid=True), nullable=False),
        Column("plan_id", PgUUID(as_uuid=True), nullable=False),
        Column("goal_id", PgUUID(as_uuid=True), nullable=False),
        Column("from_status", Text, nullable=False),
        Column("to_status", Text, nullable=False),
        Column("changed_by", Text, nullable=False),
        Column("changed_at", DateTime(timezone=True), nullable=False),
        Index("ix_goal_status_changes_plan_id_goal_id_seq", "plan_id", "goal_id", "seq"),
    )


class AgreementRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    how: AgreementHow = Field(description="Signed, agreed verbally, or declined by the client.")
    at: PlausibleDatetime = Field(
        description="When the client gave it: not in the future, and not before the draft's "
        "content last changed (they agreed to what the draft says now)."
    )


class AgreementPublic(BaseModel):
    how: AgreementHow
    at: datetime
    recorded_by: str
    recorded_at: datetime


class ProgressCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: float = Field(ge=-1e12, le=1e12, allow_inf_nan=False, examples=[12])
    note: Note | None = None
    recorded_at: PlausibleDatetime | None = Field(
        default=None, description="When it was measured (not in the future); default now."
    )


class ProgressPublic(BaseModel):
    id: UUID
    plan_id: UUID = Field(description="The version it was recorded on.")
    goal_id: UUID
    value: float
    note: str | None
    recorded_at: datetime
    recorded_by: str


class GoalStatusRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: GoalStatus


class GoalPublic(Goal):
    """A goal as its version shows it: on an approved version, `status` is the current one."""

    progress: list[ProgressPublic] = Field(
        description="Measurements over time, oldest first (across versions: the id is stable)."
    )


class PlanSummary(BaseModel):
    id: UUID
    case_id: UUID
    version: int = Field(description="1 for the first version, then one more per revision.")
    status: PlanStatus
    based_on: UUID | None
    created_by: str
    created_at: datetime
    approved_by: str | None
    approved_at: datetime | None


class PlanPublic(PlanSummary):
    client_id: UUID
    goals: list[GoalPublic]
    safety_plan: SafetyPlan
    client_agreement: AgreementPublic | None = Field(
        description="Recorded on the draft; required before approval is requested. Changing "
        "the content afterwards clears it: the client agreed to the text they saw."
    )
    approval_id: UUID | None = Field(description="The approval request, once requested.")
    row_version: int = Field(description="Increases with every change; the ETag carries it.")
    updated_by: str
    updated_at: datetime


class PlanDiff(ContentDiff):
    plan_id: UUID
    version: int
    against: UUID
    against_version: int
