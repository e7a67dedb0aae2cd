"""Case transfers: a case handed from one worker to another, who accepts or declines it.

Distinct from assignment (a supervisor placing a case within their team): a transfer is asked
by the owning worker or a supervisor of the case's team, for an active worker of the same
organisation (any team), and takes effect only when the receiving side accepts it.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    Index,
    MetaData,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import UUID as PgUUID

from services.planning.cases.models import UserId
from shared.events.assessment import RiskLevel


class TransferStatus(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    REVOKED = "revoked"


class DeclineReason(StrEnum):
    """Why the receiving side declined, as a code (no free text travels with a transfer)."""

    AT_CAPACITY = "at_capacity"
    LANGUAGE = "language"
    CONFLICT_OF_INTEREST = "conflict_of_interest"
    EXPERTISE = "expertise"
    OTHER = "other"


class TransferRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to_worker_id: UserId = Field(
        description="An active worker of your organisation's staff directory, of any team."
    )


class DeclinationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: DeclineReason


class Transfer(BaseModel):
    """A transfer as its two sides see it: ids and codes (the case's client is not named)."""

    id: UUID
    case_id: UUID
    organization_id: str
    from_worker_id: str | None = Field(description="Who the case belonged to when requested.")
    from_team_id: str | None
    to_worker_id: str
    to_team_id: str | None = Field(description="The receiving worker's team when requested.")
    status: TransferStatus
    requested_by: str
    requested_at: datetime
    answered_by: str | None
    answered_at: datetime | None
    decline_reason: DeclineReason | None


class CaseSummary(BaseModel):
    """What the receiving side sees of the case before accepting: enough to decide, no more.
    Protected needs (data classes such as domestic violence or HIV) are withheld until the
    case is theirs; so is the client's record (the id alone says nothing)."""

    case_id: UUID
    status: str
    risk_level: RiskLevel | None
    preferred_language: str | None
    need_categories: list[str] = Field(description="General needs only, by category code.")
    next_review_due_at: datetime | None


class TransferDetail(Transfer):
    case: CaseSummary


TRANSFER_COLUMNS = (
    "id, case_id, client_id, organization_id, from_worker_id, from_team_id, to_worker_id, "
    "to_team_id, status, requested_by, requested_at, answered_by, answered_at, decline_reason"
)


def case_transfers_table(metadata: MetaData) -> Table:
    """Every transfer ever asked; at most one pending per case (the partial unique index)."""
    return Table(
        "case_transfers",
        metadata,
        Column("id", PgUUID(as_uuid=True), primary_key=True),
        Column("case_id", PgUUID(as_uuid=True), nullable=False),
        Column("client_id", PgUUID(as_uuid=True), nullable=False),
        Column("organization_id", Text, nullable=False),
        Column("from_worker_id", Text),
        Column("from_team_id", Text),
        Column("to_worker_id", Text, nullable=False),
        Column("to_team_id", Text),
        Column("status", Text, nullable=False),
        Column("requested_by", Text, nullable=False),
        Column("requested_at", DateTime(timezone=True), nullable=False),
        Column("answered_by", Text),
        Column("answered_at", DateTime(timezone=True)),
        Column("decline_reason", Text),
        CheckConstraint(
            "status IN ('pending', 'accepted', 'declined', 'revoked')", name="status_known"
        ),
        CheckConstraint(
            "(status = 'declined') = (decline_reason IS NOT NULL)", name="declined_with_reason"
        ),
        CheckConstraint(
            "(status = 'pending') = (answered_at IS NULL)", name="answered_unless_pending"
        ),
        Index(
            "uq_case_transfers_pending_per_case",
            "case_id",
            unique=True,
            postgresql_where=text("status = 'pending'"),
        ),
        Index("ix_case_transfers_case_id_requested_at", "case_id", "requested_at"),
        Index(
            "ix_case_transfers_organization_id_to_worker_id_status",
            "organization_id",
            "to_worker_id",
            "status",
        ),
        Index(
            "ix_case_transfers_organization_id_to_team_id_status",
            "organization_id",
            "to_team_id",
            "status",
        ),
        Index(
            "ix_case_transfers_organization_id_from_team_id_status",
            "organization_id",
            "from_team_id",
            "status",
        ),
        Index(
            "ix_case_transfers_organization_id_requested_by_status",
            "organization_id",
            "requested_by",
            "status",
        ),
    )
