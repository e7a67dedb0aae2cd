"""The latest assessment of each client (from ClientAssessed), for matching.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op
from sqlalchemy import Column, DateTime, Integer, MetaData, Table, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import UUID as PgUUID

from shared.db.metadata import create_tables

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "referrals"


def client_assessments_table_v1(metadata: MetaData) -> Table:
    return Table(
        "client_assessments",
        metadata,
        Column("client_id", PgUUID(as_uuid=True), primary_key=True),
        Column("assessment_id", PgUUID(as_uuid=True), nullable=False),
        Column("risk_level", Text, nullable=False),
        Column("priority", Integer, nullable=False),
        Column("needs", JSONB, nullable=False, comment="need category -> severity (general)"),
        Column("preferred_language", Text, nullable=False),
        Column("postal_area", Text),
        Column("assessed_at", DateTime(timezone=True), nullable=False, comment="event time"),
        Column("source_event_id", Text, nullable=False),
        Column(
            "received_at", DateTime(timezone=True), nullable=False, server_default=text("now()")
        ),
    )


def upgrade() -> None:
    create_tables(op.get_bind(), SCHEMA, client_assessments_table_v1)


def downgrade() -> None:
    op.drop_table("client_assessments", schema=SCHEMA)
