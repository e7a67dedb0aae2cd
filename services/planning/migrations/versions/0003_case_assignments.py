"""Case assignments.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op

from services.planning.cases.models import case_assignments_table
from shared.db.metadata import create_tables

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "planning"


def upgrade() -> None:
    create_tables(op.get_bind(), SCHEMA, case_assignments_table)


def downgrade() -> None:
    op.drop_table("case_assignments", schema=SCHEMA)
