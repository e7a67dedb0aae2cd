"""Notifications and each recipient's inbox state (sequence and unread count).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

from services.notifications.inbox.models import inbox_state_table, notifications_table
from shared.db.metadata import create_tables

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "notifications"


def upgrade() -> None:
    create_tables(op.get_bind(), SCHEMA, notifications_table, inbox_state_table)


def downgrade() -> None:
    op.drop_table("inbox_state", schema=SCHEMA)
    op.drop_table("notifications", schema=SCHEMA)
