"""Progress notes: drafts, signatures, addenda and co-signatures.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

from services.planning.notes.models import notes_table
from shared.db.metadata import create_tables

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "planning"


def upgrade() -> None:
    create_tables(op.get_bind(), SCHEMA, notes_table)


def downgrade() -> None:
    op.drop_table("notes", schema=SCHEMA)
