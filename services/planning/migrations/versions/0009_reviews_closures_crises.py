"""Reviews, crises, closures (with their approval), reopenings, each assessment's needs; and
the case each assignment is of.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

from services.planning.cases.models import (
    assessment_needs_table,
    assessments_received_table,
    case_assignment_case_id,
    case_closures_table,
    case_reopenings_table,
)
from services.planning.reviews.models import case_crises_table, reviews_table
from shared.db.metadata import create_tables

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "planning"
TABLES = (
    "reviews",
    "case_crises",
    "case_closures",
    "case_reopenings",
    "assessment_needs",
    "assessments_received",
)


def upgrade() -> None:
    op.add_column("case_assignments", case_assignment_case_id(), schema=SCHEMA)
    op.create_index(
        "ix_case_assignments_case_id_assigned_at",
        "case_assignments",
        ["case_id", "assigned_at"],
        schema=SCHEMA,
    )
    create_tables(
        op.get_bind(),
        SCHEMA,
        reviews_table,
        case_crises_table,
        case_closures_table,
        case_reopenings_table,
        assessment_needs_table,
        assessments_received_table,
    )


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table, schema=SCHEMA)
    op.drop_index("ix_case_assignments_case_id_assigned_at", "case_assignments", schema=SCHEMA)
    op.drop_column("case_assignments", "case_id", schema=SCHEMA)
