"""Service plans: versions of each case's plan (content as one document per version), the
status changes and progress of their goals.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

from services.planning.plans.models import (
    goal_progress_table,
    goal_status_changes_table,
    plans_table,
)
from shared.db.metadata import create_tables

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "planning"


def upgrade() -> None:
    create_tables(
        op.get_bind(), SCHEMA, plans_table, goal_progress_table, goal_status_changes_table
    )


def downgrade() -> None:
    for table in ("goal_status_changes", "goal_progress", "plans"):
        op.drop_table(table, schema=SCHEMA)
