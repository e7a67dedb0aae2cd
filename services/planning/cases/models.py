"""Cases: a client's episode of service with an organisation, its needs, and who it is assigned to."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import UUID as PgUUID

from services.planning.code_lists.catalogue import check_destination
from shared.events.assessment import NeedSeverity, RiskLevel
from shared.events.planning import CaseStatus, ClosureReason
from shared.text import FreeText, Note

UserId = Annotated[str, FreeText(max_length=200)]


class AssignmentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    worker_id: UserId


class AssignmentPublic(BaseModel):
    case_id: UUID | None = Field(description="The case; null for an assignment made before cases.")
    client_id: UUID
    worker_id: str
    team_id: str | None
    assigned_by: str
    assigned_at: datetime


def case_assignments_table(metadata: MetaData) -> Table:
    """Every assignment ever made: the current one is the latest."""
    return Table(
        "case_assignments",
        metadata,
        Column("id", PgUUID(as_uuid=True), primary_key=True),
        Column("client_id", PgUUID(as_uuid=True), nullable=False),
        Column("worker_id", Text, nullable=False),
        Column("team_id", Text),
        Column("assigned_by", Text, nullable=False),
        Column("assigned_at", DateTime(timezone=True), nullable=False),
        Index("ix_case_assignments_client_id_assigned_at", "client_id", "assigned_at"),
    )


def case_assignment_case_id() -> Column[UUID]:
    """The case an assignment is of (added by migration 0010; older rows have none)."""
    return Column("case_id", PgUUID(as_uuid=True))


def cases_table(metadata: MetaData) -> Table:
    """A client's episode of service with an organisation: at most one open per client and
    organisation (the partial unique index), which also makes opening from a redelivered or
    republished assessment idempotent."""
    return Table(
        "cases",
        metadata,
        Column("id", PgUUID(as_uuid=True), primary_key=True),
        Column("client_id", PgUUID(as_uuid=True), nullable=False),
        Column("organization_id", Text, nullable=False),
        Column("team_id", Text),
        Column("worker_id", Text, comment="the assigned worker; null: unassigned"),
        Column("status", Text, nullable=False),
        Column("status_before_hold", Text, comment="what resuming returns to"),
        Column("risk_level", Text),
        Column("preferred_language", Text),
        Column("source", Text, nullable=False),
        Column("assessment_id", PgUUID(as_uuid=True)),
        Column("opened_by", Text, nullable=False),
        Column("opened_at", DateTime(timezone=True), nullable=False),
        Column("closed_at", DateTime(timezone=True)),
        Column("closed_by", Text),
        Column("closure_reason", Text),
        Column("destination_code", Text),
        Column("next_review_due_at", DateTime(timezone=True)),
        Column("last_contact_at", DateTime(timezone=True)),
        Column("version", Integer, nullable=False, server_default=text("1")),
        Column("updated_at", DateTime(timezone=True), nullable=False),
        CheckConstraint("status IN ('open', 'active', 'on_hold', 'closed')", name="status_known"),
        CheckConstraint("source IN ('manual', 'assessment', 'crisis')", name="source_known"),
        Index(
            "uq_cases_open_per_client_organization",
            "client_id",
            "organization_id",
            unique=True,
            postgresql_where=text("status <> 'closed'"),
        ),
        Index("ix_cases_organization_id_team_id_status", "organization_id", "team_id", "status"),
        Index("ix_cases_worker_id_status", "worker_id", "status"),
        Index("ix_cases_client_id_opened_at", "client_id", "opened_at"),
    )


def case_needs_table(metadata: MetaData) -> Table:
    """A case's needs as the latest assessment found them; `data_class` set for a protected
    need (visible only to the case's own worker and supervisor)."""
    return Table(
        "case_needs",
        metadata,
        Column("case_id", PgUUID(as_uuid=True), nullable=False),
        Column("category", Text, nullable=False),
        Column("severity", Text, nullable=False),
        Column("data_class", Text),
        Column("assessment_id", PgUUID(as_uuid=True)),
        Column("updated_at", DateTime(timezone=True), nullable=False),
        PrimaryKeyConstraint("case_id", "category"),
    )


def case_closures_table(metadata: MetaData) -> Table:
    """Every closure of a case, requested or done: the reason, the HMIS destination and an
    optional note; with the organisation's closure approval, `requested` until decided."""
    return Table(
        "case_closures",
        metadata,
        Column("id", PgUUID(as_uuid=True), primary_key=True),
        Column("case_id", PgUUID(as_uuid=True), nullable=False),
        Column("client_id", PgUUID(as_uuid=True), nullable=False),
        Column("reason", Text, nullable=False),
        Column("destination_code", Text, nullable=False),
        Column("note", Text),
        Column("status", Text, nullable=False),
        Column("requested_by", Text, nullable=False),
        Column("requested_at", DateTime(timezone=True), nullable=False),
        Column("approval_id", PgUUID(as_uuid=True)),
        Column("closed_at", DateTime(timezone=True)),
        CheckConstraint(
            "status IN ('requested', 'closed', 'rejected', 'withdrawn')", name="status_known"
        ),
        Index(
            "uq_case_closures_pending_case_id",
            "case_id",
            unique=True,
            postgresql_where=text("status = 'requested'"),
        ),
    )


def case_reopenings_table(metadata: MetaData) -> Table:
    """The log of a case's reopenings, with why."""
    return Table(
        "case_reopenings",
        metadata,
        Column("id", PgUUID(as_uuid=True), primary_key=True),
        Column("case_id", PgUUID(as_uuid=True), nullable=False),
        Column("client_id", PgUUID(as_uuid=True), nullable=False),
        Column("reason", Text, nullable=False),
        Column("reopened_by", Text, nullable=False),
        Column("reopened_at", DateTime(timezone=True), nullable=False),
        Index("ix_case_reopenings_case_id_reopened_at", "case_id", "reopened_at"),
    )


def assessment_needs_table(metadata: MetaData) -> Table:
    """Each assessment's needs as they arrive (general ones with ClientAssessed, protected ones
    with ProtectedNeedsAssessed, on two topics in no fixed order): a case's needs are copied
    from its latest assessment's, whichever event arrives first."""
    return Table(
        "assessment_needs",
        metadata,
        Column("assessment_id", PgUUID(as_uuid=True), nullable=False),
        Column("client_id", PgUUID(as_uuid=True), nullable=False),
        Column("category", Text, nullable=False),
        Column("severity", Text, nullable=False),
        Column("data_class", Text),
        Column("received_at", DateTime(timezone=True), nullable=False),
        PrimaryKeyConstraint("assessment_id", "category"),
    )


class CaseNeed(BaseModel):
    category: str
    severity: NeedSeverity
    data_class: str | None = Field(
        description="Set for a need of a protected data class: shown only to the case's own "
        "worker and its team's supervisors."
    )
    assessment_id: UUID | None


class CasePublic(BaseModel):
    id: UUID
    client_id: UUID
    organization_id: str
    team_id: str | None
    worker_id: str | None = Field(description="The assigned worker; null: unassigned.")
    status: CaseStatus
    risk_level: RiskLevel | None
    preferred_language: str | None
    source: Literal["manual", "assessment", "crisis"]
    assessment_id: UUID | None = Field(description="The latest assessment the case follows.")
    opened_by: str
    opened_at: datetime
    closed_at: datetime | None
    closed_by: str | None
    closure_reason: ClosureReason | None
    destination_code: str | None
    next_review_due_at: datetime | None
    last_contact_at: datetime | None
    version: int
    updated_at: datetime
    needs: list[CaseNeed]


class OpenCaseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    client_id: UUID


class HoldRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: Note | None = Field(default=None, description="Why; kept in planning only.")


DestinationCode = Annotated[
    str,
    Field(max_length=8, description="An HMIS destination code: GET /v1/code-lists/destinations."),
    AfterValidator(check_destination),
]


class ClosureRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: ClosureReason
    destination_code: DestinationCode
    note: Note | None = None


class ClosurePublic(BaseModel):
    id: UUID
    case_id: UUID
    reason: ClosureReason
    destination_code: str
    note: str | None
    status: Literal["requested", "closed", "rejected", "withdrawn"]
    requested_by: str
    requested_at: datetime
    approval_id: UUID | None = Field(description="The approval it awaits or awaited, if any.")
    closed_at: datetime | None


class ClosureResult(BaseModel):
    case: CasePublic
    closure: ClosurePublic


class ReopenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Note = Field(description="Why the case is reopened; kept in planning only.")


class ReopeningPublic(BaseModel):
    id: UUID
    case_id: UUID
    reason: str
    reopened_by: str
    reopened_at: datetime


def assessments_received_table(metadata: MetaData) -> Table:
    """Each assessment's levels as ClientAssessed said (the latest word, after an override):
    a case opened first by its protected needs takes its risk level from here."""
    return Table(
        "assessments_received",
        metadata,
        Column("assessment_id", PgUUID(as_uuid=True), primary_key=True),
        Column("client_id", PgUUID(as_uuid=True), nullable=False),
        Column("risk_level", Text, nullable=False),
        Column("preferred_language", Text),
        Column("received_at", DateTime(timezone=True), nullable=False),
    )
