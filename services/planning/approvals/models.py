"""Approvals: one generic mechanism for what a supervisor of the case's team must agree to
(a plan version, a closure, later a referral denial or a consent override).

requested -> approved | rejected (a supervisor of the case's team, never the requester)
          -> withdrawn (the requester).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import CheckConstraint, Column, DateTime, Index, MetaData, Table, Text, text
from sqlalchemy.dialects.postgresql import UUID as PgUUID

from shared.events.planning import ApprovalSubject
from shared.text import Note


class ApprovalStatus(StrEnum):
    REQUESTED = "requested"
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


class Approval(BaseModel):
    """One approval request and, once decided, its decision."""

    model_config = ConfigDict(frozen=True)

    id: UUID
    case_id: UUID
    client_id: UUID
    subject: ApprovalSubject
    subject_id: UUID = Field(description="The plan version, closure request, … to decide on.")
    status: ApprovalStatus
    requested_by: str
    requested_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    comment: str | None
    team_id: str | None = Field(description="The case's team when it was requested.")
    organization_id: str


class DecisionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["approved", "rejected"]
    comment: Note | None = Field(
        default=None, description="Why; kept in planning, never in an event."
    )


class WithdrawalRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: Note | None = None


APPROVAL_COLUMNS = (
    "id, case_id, client_id, subject, subject_id, status, requested_by, requested_at, "
    "decided_by, decided_at, comment, team_id, organization_id"
)


def approvals_table(metadata: MetaData) -> Table:
    return Table(
        "approvals",
        metadata,
        Column("id", PgUUID(as_uuid=True), primary_key=True),
        Column("case_id", PgUUID(as_uuid=True), nullable=False),
        Column("client_id", PgUUID(as_uuid=True), nullable=False),
        Column("subject", Text, nullable=False),
        Column("subject_id", PgUUID(as_uuid=True), nullable=False),
        Column("status", Text, nullable=False),
        Column("requested_by", Text, nullable=False),
        Column("requested_at", DateTime(timezone=True), nullable=False),
        Column("decided_by", Text),
        Column("decided_at", DateTime(timezone=True)),
        Column("comment", Text),
        Column("team_id", Text),
        Column("organization_id", Text, nullable=False),
        CheckConstraint(
            "status IN ('requested', 'approved', 'rejected', 'withdrawn')", name="status_known"
        ),
        # One pending request per thing to decide on.
        Index(
            "uq_approvals_pending_subject",
            "subject",
            "subject_id",
            unique=True,
            postgresql_where=text("status = 'requested'"),
        ),
        Index(
            "ix_approvals_organization_id_team_id_status",
            "organization_id",
            "team_id",
            "status",
            "requested_at",
        ),
        Index("ix_approvals_case_id", "case_id"),
    )
