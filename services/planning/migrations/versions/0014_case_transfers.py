"""Case transfers: asked by the case's side, answered by the receiving side; one pending per
case.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

from services.planning.transfers.models import case_transfers_table
from shared.db.metadata import create_tables

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "planning"


def upgrade() -> None:
    create_tables(op.get_bind(), SCHEMA, case_transfers_table)


def downgrade() -> None:
    op.drop_table("case_transfers", schema=SCHEMA)
