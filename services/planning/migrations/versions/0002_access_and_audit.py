"""Access facts and the append-only, hash-chained audit log.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op

from shared.audit.log import create_audit_log_v1
from shared.auth.facts import client_access_table
from shared.db.metadata import create_tables

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "planning"


def upgrade() -> None:
    create_tables(op.get_bind(), SCHEMA, client_access_table)
    create_audit_log_v1(op.get_bind(), SCHEMA)


def downgrade() -> None:
    op.drop_table("audit_log", schema=SCHEMA)
    op.drop_table("client_access", schema=SCHEMA)
