"""The staff directory: workers of each organisation, who may be assigned cases.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op
from sqlalchemy import (
    Boolean,
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
from sqlalchemy.dialects.postgresql import ARRAY

from shared.db.metadata import create_tables

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "planning"


def workers_table_v1(metadata: MetaData) -> Table:
    """The directory as this revision created it (later revisions add to it: 0030 the role)."""
    return Table(
        "workers",
        metadata,
        Column("organization_id", Text, nullable=False),
        Column("worker_id", Text, nullable=False, comment="the identity provider's user id"),
        Column("team_id", Text),
        Column("display_name", Text, nullable=False),
        Column("languages", ARRAY(Text), nullable=False, server_default=text("'{}'::text[]")),
        Column("capacity_points", Integer, nullable=False, server_default=text("0")),
        Column("active", Boolean, nullable=False, server_default=text("true")),
        Column("version", Integer, nullable=False, server_default=text("1")),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
        PrimaryKeyConstraint("organization_id", "worker_id"),
        CheckConstraint("capacity_points >= 0", name="capacity_points"),
        Index(
            "ix_workers_organization_id_team_id_worker_id",
            "organization_id",
            "team_id",
            "worker_id",
        ),
    )


def upgrade() -> None:
    create_tables(op.get_bind(), SCHEMA, workers_table_v1)


def downgrade() -> None:
    op.drop_table("workers", schema=SCHEMA)
