"""Webhook subscriptions, their deliveries and each delivery's attempts.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op
from sqlalchemy import (
    ARRAY,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
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

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "notifications"


def webhook_subscriptions_table_v1(metadata: MetaData) -> Table:
    return Table(
        "webhook_subscriptions",
        metadata,
        Column("id", PgUUID(as_uuid=True), primary_key=True),
        Column("organization_id", Text, nullable=False),
        Column("url", Text, nullable=False),
        Column("event_types", ARRAY(Text), nullable=False),
        Column("description", Text),
        Column("secret", Text, nullable=False),
        Column("previous_secret", Text),
        Column("previous_secret_until", DateTime(timezone=True)),
        Column("state", Text, nullable=False),
        Column("disabled_reason", Text),
        Column("disabled_at", DateTime(timezone=True)),
        Column("created_by", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
        Column("deleted_at", DateTime(timezone=True)),
        Column("version", Integer, nullable=False, server_default=text("1")),
        CheckConstraint("state IN ('active', 'disabled')", name="state"),
        CheckConstraint("cardinality(event_types) > 0", name="event_types"),
        Index("ix_webhook_subscriptions_organization_id_id", "organization_id", "id"),
        Index(
            "ix_webhook_subscriptions_event_types",
            "event_types",
            postgresql_using="gin",
            postgresql_where=text("state = 'active' AND deleted_at IS NULL"),
        ),
    )


def webhook_deliveries_table_v1(metadata: MetaData) -> Table:
    return Table(
        "webhook_deliveries",
        metadata,
        Column("id", PgUUID(as_uuid=True), primary_key=True),
        Column(
            "subscription_id",
            PgUUID(as_uuid=True),
            ForeignKey("webhook_subscriptions.id"),
            nullable=False,
        ),
        Column("organization_id", Text, nullable=False),
        Column("event_id", Text, nullable=False),
        Column("event_type", Text, nullable=False),
        Column("client_id", PgUUID(as_uuid=True)),
        Column(
            "consent_purpose",
            Text,
            comment="the consent purpose checked again before each attempt; NULL: the "
            "subscriber's own organisation's client, or no client",
        ),
        Column("payload", JSONB, nullable=False),
        Column("state", Text, nullable=False),
        Column("attempts", Integer, nullable=False, server_default=text("0")),
        Column("next_attempt_at", DateTime(timezone=True)),
        Column("retry_since", DateTime(timezone=True)),
        Column("last_status_code", Integer),
        Column("last_error", Text),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("delivered_at", DateTime(timezone=True)),
        CheckConstraint("state IN ('pending', 'retrying', 'delivered', 'failed')", name="state"),
        Index(
            "uq_webhook_deliveries_subscription_id_event_id",
            "subscription_id",
            "event_id",
            unique=True,
        ),
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            postgresql_where=text("state IN ('pending', 'retrying')"),
        ),
        Index("ix_webhook_deliveries_subscription_id_log", "subscription_id", "created_at", "id"),
    )


def webhook_attempts_table_v1(metadata: MetaData) -> Table:
    return Table(
        "webhook_attempts",
        metadata,
        Column(
            "delivery_id",
            PgUUID(as_uuid=True),
            ForeignKey("webhook_deliveries.id"),
            primary_key=True,
        ),
        Column("attempt", Integer, primary_key=True),
        Column("attempted_at", DateTime(timezone=True), nullable=False),
        Column("status_code", Integer),
        Column("error", Text),
        Column("duration_ms", Integer, nullable=False),
    )


def upgrade() -> None:
    create_tables(
        op.get_bind(),
        SCHEMA,
        webhook_subscriptions_table_v1,
        webhook_deliveries_table_v1,
        webhook_attempts_table_v1,
    )


def downgrade() -> None:
    op.drop_table("webhook_attempts", schema=SCHEMA)
    op.drop_table("webhook_deliveries", schema=SCHEMA)
    op.drop_table("webhook_subscriptions", schema=SCHEMA)
