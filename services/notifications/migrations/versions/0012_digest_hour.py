"""Preferences: the hour and time zone of a user's daily digest.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "notifications"


def upgrade() -> None:
    op.add_column(
        "preferences",
        sa.Column("digest_hour", sa.Integer(), nullable=False, server_default=sa.text("7")),
        schema=SCHEMA,
    )
    op.add_column(
        "preferences",
        sa.Column("digest_time_zone", sa.Text(), nullable=False, server_default=sa.text("'UTC'")),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_column("preferences", "digest_time_zone", schema=SCHEMA)
    op.drop_column("preferences", "digest_hour", schema=SCHEMA)
