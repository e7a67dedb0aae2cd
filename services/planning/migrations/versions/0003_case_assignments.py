"""Case assignments.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op
from sqlalchemy import Column, DateTime, Index, MetaData, Table, Text
from sqlalchemy.dialects.postgresql import UUID as PgUUID

from shared.db.metadata import create_tables

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "planning"


def case_assignments_table_v1(metadata: MetaData) -> Table:
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


def upgrade() -> None:
    create_tables(op.get_bind(), SCHEMA, case_assignments_table_v1)


def downgrade() -> None:
    op.drop_table("case_assignments", schema=SCHEMA)
