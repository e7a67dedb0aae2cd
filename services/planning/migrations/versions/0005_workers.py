"""The staff directory: workers of each organisation, who may be assigned cases.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

from services.planning.workers.models import workers_table
from shared.db.metadata import create_tables

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "planning"


def upgrade() -> None:
    create_tables(op.get_bind(), SCHEMA, workers_table)


def downgrade() -> None:
    op.drop_table("workers", schema=SCHEMA)
