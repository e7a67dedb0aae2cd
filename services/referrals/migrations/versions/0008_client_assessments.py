"""The latest assessment of each client (from ClientAssessed), for matching.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

from services.referrals.directory.assessments import client_assessments_table
from shared.db.metadata import create_tables

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "referrals"


def upgrade() -> None:
    create_tables(op.get_bind(), SCHEMA, client_assessments_table)


def downgrade() -> None:
    op.drop_table("client_assessments", schema=SCHEMA)
