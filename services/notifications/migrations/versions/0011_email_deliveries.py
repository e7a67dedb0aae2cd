"""E-mails queued, sent or given up.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

from services.notifications.email.models import email_deliveries_table
from shared.db.metadata import create_tables

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "notifications"


def upgrade() -> None:
    create_tables(op.get_bind(), SCHEMA, email_deliveries_table)


def downgrade() -> None:
    op.drop_table("email_deliveries", schema=SCHEMA)
