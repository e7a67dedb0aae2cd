"""Assessments and safety flags.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op

from services.intake.assessments.models import (
    assessment_overrides_table,
    assessments_table,
    flags_table,
)
from shared.db.metadata import create_tables

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "intake"


def upgrade() -> None:
    create_tables(op.get_bind(), SCHEMA, assessments_table, assessment_overrides_table, flags_table)


def downgrade() -> None:
    op.drop_table("flags", schema=SCHEMA)
    op.drop_table("assessment_overrides", schema=SCHEMA)
    op.drop_table("assessments", schema=SCHEMA)
