"""The staff directory records each worker's role: caseworker (the default) or supervisor.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "planning"


def upgrade() -> None:
    op.add_column(
        "workers",
        sa.Column("role", sa.Text(), nullable=False, server_default=sa.text("'caseworker'")),
        schema=SCHEMA,
    )
    op.create_check_constraint(
        "ck_workers_role", "workers", "role IN ('caseworker', 'supervisor')", schema=SCHEMA
    )


def downgrade() -> None:
    op.drop_constraint("ck_workers_role", "workers", schema=SCHEMA)
    op.drop_column("workers", "role", schema=SCHEMA)
