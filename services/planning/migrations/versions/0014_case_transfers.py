"""Case transfers: asked by the case's side, answered by the receiving side; one pending per
case.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op
from sqlalchemy import CheckConstraint, Column, DateTime, Index, MetaData, Table, Text, text
from sqlalchemy.dialects.postgresql import UUID as PgUUID

from shared.db.metadata import create_tables

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "planning"


def case_transfers_table_v1(metadata: MetaData) -> Table:
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


def upgrade() -> None:
    create_tables(op.get_bind(), SCHEMA, case_transfers_table_v1)


def downgrade() -> None:
    op.drop_table("case_transfers", schema=SCHEMA)
