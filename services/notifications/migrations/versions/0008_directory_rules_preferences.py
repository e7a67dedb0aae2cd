"""What notifications keeps to find recipients (staff, cases, referrals, reviews, crisis flags,
on-call lists), organisations' rules, users' preferences and live-stream tickets.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

from services.notifications.directory.models import DIRECTORY_TABLES
from services.notifications.inbox.stream import stream_tickets_table
from services.notifications.preferences.models import preferences_table
from services.notifications.rules.models import rule_sets_table
from shared.db.metadata import create_tables

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "notifications"
TABLES = (*DIRECTORY_TABLES, preferences_table, rule_sets_table, stream_tickets_table)


def upgrade() -> None:
    create_tables(op.get_bind(), SCHEMA, *TABLES)


def downgrade() -> None:
    for name in (
        "stream_tickets",
        "rule_sets",
        "preferences",
        "on_call_versions",
        "on_call",
        "crisis_flags",
        "reviews",
        "referral_refs",
        "cases",
        "staff",
    ):
        op.drop_table(name, schema=SCHEMA)
