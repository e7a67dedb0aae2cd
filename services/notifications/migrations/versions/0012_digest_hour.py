"""Preferences: the hour and time zone of a user's daily digest.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "notifications"


def upgrade() -> None:
    # 0008 builds `preferences` from the live model, which has these columns now: on a fresh
    # database they exist already, on one migrated before they are added here.
    op.execute(
        f"ALTER TABLE {SCHEMA}.preferences "
        "ADD COLUMN IF NOT EXISTS digest_hour integer NOT NULL DEFAULT 7, "
        "ADD COLUMN IF NOT EXISTS digest_time_zone text NOT NULL DEFAULT 'UTC'"
    )


def downgrade() -> None:
    op.drop_column("preferences", "digest_time_zone", schema=SCHEMA)
    op.drop_column("preferences", "digest_hour", schema=SCHEMA)
