"""Consent facts: the client's consents as this service knows them (shared/auth/consents.py),
kept from intake's ConsentGranted and ConsentRevoked.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

from shared.auth.consents import create_consent_facts_v1

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "planning"


def upgrade() -> None:
    create_consent_facts_v1(op.get_bind(), SCHEMA)


def downgrade() -> None:
    op.drop_table("consent_facts", schema=SCHEMA)
