"""Durable timers (shared/timers): reminders and escalations that survive restarts.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

from shared.timers import create_timers_v1, drop_timers_v1

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "notifications"


def upgrade() -> None:
    create_timers_v1(op.get_bind(), SCHEMA)


def downgrade() -> None:
    drop_timers_v1(op.get_bind(), SCHEMA)
