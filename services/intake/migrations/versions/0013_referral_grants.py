"""Referral grants: the open referrals sent to partner organisations and the consents they rely
on, kept from referrals' events (shared/auth/addressed.py), for partners' shared records.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

from shared.auth.addressed import create_referral_grants_v1

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "intake"


def upgrade() -> None:
    create_referral_grants_v1(op.get_bind(), SCHEMA)


def downgrade() -> None:
    op.drop_table("referral_grants", schema=SCHEMA)
