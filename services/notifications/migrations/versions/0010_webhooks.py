"""Webhook subscriptions, their deliveries and each delivery's attempts.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

from services.notifications.webhooks.models import (
    webhook_attempts_table,
    webhook_deliveries_table,
    webhook_subscriptions_table,
)
from shared.db.metadata import create_tables

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "notifications"


def upgrade() -> None:
    create_tables(
        op.get_bind(),
        SCHEMA,
        webhook_subscriptions_table,
        webhook_deliveries_table,
        webhook_attempts_table,
    )


def downgrade() -> None:
    op.drop_table("webhook_attempts", schema=SCHEMA)
    op.drop_table("webhook_deliveries", schema=SCHEMA)
    op.drop_table("webhook_subscriptions", schema=SCHEMA)
