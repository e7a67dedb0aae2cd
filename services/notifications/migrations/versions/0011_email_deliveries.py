"""E-mails queued, sent or given up.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op
from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import UUID as PgUUID

from shared.db.metadata import create_tables

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "notifications"


def email_deliveries_table_v1(metadata: MetaData) -> Table:
    return Table(
        "email_deliveries",
        metadata,
        Column("id", PgUUID(as_uuid=True), primary_key=True),
        Column("recipient_id", Text, nullable=False, comment="the user's id (token sub)"),
        Column("organization_id", Text, nullable=False),
        Column("address", Text, nullable=False),
        Column("language", Text, nullable=False),
        Column("template_key", Text, nullable=False),
        Column("parameters", JSONB, nullable=False, comment="ids, codes and links only"),
        Column("notification_id", Text, comment="the inbox item it tells of; NULL: a digest"),
        Column("status", Text, nullable=False),
        Column("attempts", Integer, nullable=False, server_default=text("0")),
        Column("next_attempt_at", DateTime(timezone=True)),
        Column("last_error", Text),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("sent_at", DateTime(timezone=True)),
        CheckConstraint("status IN ('queued', 'retrying', 'sent', 'failed')", name="status"),
        Index(
            "ix_email_deliveries_due",
            "next_attempt_at",
            postgresql_where=text("status IN ('queued', 'retrying')"),
        ),
        Index("ix_email_deliveries_recipient_id_created_at", "recipient_id", "created_at"),
    )


def upgrade() -> None:
    create_tables(op.get_bind(), SCHEMA, email_deliveries_table_v1)


def downgrade() -> None:
    op.drop_table("email_deliveries", schema=SCHEMA)
