"""Client references and the messaging tables.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op

from shared.client_refs import client_refs_table
from shared.db.metadata import create_tables
from shared.messaging.tables import create_messaging_tables_v1, drop_messaging_tables_v1

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "referrals"


def upgrade() -> None:
    create_messaging_tables_v1(op.get_bind(), SCHEMA)
    create_tables(op.get_bind(), SCHEMA, client_refs_table)


def downgrade() -> None:
    op.drop_table("client_refs", schema=SCHEMA)
    drop_messaging_tables_v1(op.get_bind(), SCHEMA)
