"""Closed-loop referrals: the referrals, their status history, and the durable timers that
expire them.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

from services.referrals.lifecycle.tables import referral_history_table, referrals_table
from shared.db.metadata import create_tables
from shared.timers import create_timers_v1, drop_timers_v1

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "referrals"


def upgrade() -> None:
    create_tables(op.get_bind(), SCHEMA, referrals_table, referral_history_table)
    create_timers_v1(op.get_bind(), SCHEMA)


def downgrade() -> None:
    drop_timers_v1(op.get_bind(), SCHEMA)
    op.drop_table("referral_history", schema=SCHEMA)
    op.drop_table("referrals", schema=SCHEMA)
