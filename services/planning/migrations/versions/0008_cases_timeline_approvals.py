"""Cases (one open per client and organisation), their needs, their timeline, and approvals.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

from services.planning.approvals.models import approvals_table
from services.planning.cases.models import case_needs_table, cases_table
from services.planning.timeline.models import case_timeline_table
from shared.db.metadata import create_tables

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "planning"


def upgrade() -> None:
    create_tables(
        op.get_bind(), SCHEMA, cases_table, case_needs_table, case_timeline_table, approvals_table
    )


def downgrade() -> None:
    for table in ("approvals", "case_timeline", "case_needs", "cases"):
        op.drop_table(table, schema=SCHEMA)
