"""Audit rows name the HMAC key that sealed them (key_id); older rows keep null (SHA-256).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

from shared.audit.log import downgrade_audit_log_v2, upgrade_audit_log_v2

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "referrals"


def upgrade() -> None:
    upgrade_audit_log_v2(op.get_bind(), SCHEMA)


def downgrade() -> None:
    downgrade_audit_log_v2(op.get_bind(), SCHEMA)
