"""Notifications and each recipient's inbox state (sequence and unread count).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import UUID as PgUUID

from shared.db.metadata import create_tables

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "notifications"


def notifications_table_v1(metadata: MetaData) -> Table:
    return Table(
        "notifications",
        metadata,
        Column("id", PgUUID(as_uuid=True), primary_key=True),
        Column("organization_id", Text, nullable=False),
        Column("recipient_id", Text, nullable=False, comment="the recipient's user id (sub)"),
        Column("seq", BigInteger, nullable=False, comment="per recipient, in commit order"),
        Column("kind", Text, nullable=False, comment="what happened, e.g. crisis_flag"),
        Column("subject_type", Text, nullable=False, comment="case, referral, flag, review, …"),
        Column("subject_id", Text, nullable=False),
        Column("client_id", PgUUID(as_uuid=True)),
        Column("urgency", Text, nullable=False),
        Column("message_key", Text, nullable=False),
        Column("parameters", JSONB, nullable=False, comment="ids and codes only"),
        Column("rule_id", Text, nullable=False),
        Column("source_event_id", Text, nullable=False, comment="event or timer it came from"),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("read_at", DateTime(timezone=True)),
        UniqueConstraint("organization_id", "recipient_id", "seq"),
        UniqueConstraint("organization_id", "recipient_id", "source_event_id"),
        Index(
            "ix_notifications_unread",
            "organization_id",
            "recipient_id",
            "seq",
            postgresql_where=text("read_at IS NULL"),
        ),
    )


def inbox_state_table_v1(metadata: MetaData) -> Table:
    """Per recipient: the last seq handed out and how many notifications are unread. Its row
    lock orders one recipient's deliveries, so seq order is commit order."""
    return Table(
        "inbox_state",
        metadata,
        Column("organization_id", Text, nullable=False),
        Column("recipient_id", Text, nullable=False),
        Column("last_seq", BigInteger, nullable=False),
        Column("unread_count", BigInteger, nullable=False),
        PrimaryKeyConstraint("organization_id", "recipient_id"),
    )


def upgrade() -> None:
    create_tables(op.get_bind(), SCHEMA, notifications_table_v1, inbox_state_table_v1)


def downgrade() -> None:
    op.drop_table("inbox_state", schema=SCHEMA)
    op.drop_table("notifications", schema=SCHEMA)
