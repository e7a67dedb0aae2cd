"""Unauthenticated attempts counted per source address and minute (only the first of each
minute is audited in full; see shared/audit/attempts.py).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

from shared.audit.attempts import create_unauthenticated_attempts_v1

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "referrals"


def upgrade() -> None:
    create_unauthenticated_attempts_v1(op.get_bind(), SCHEMA)


def downgrade() -> None:
    op.drop_table("unauthenticated_attempts", schema=SCHEMA)
