"""Identity links: each client reference's canonical id, and links that arrive before it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op

from shared.client_refs import add_client_ref_links_v2, drop_client_ref_links_v2

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "planning"


def upgrade() -> None:
    add_client_ref_links_v2(op.get_bind(), SCHEMA)


def downgrade() -> None:
    drop_client_ref_links_v2(op.get_bind(), SCHEMA)
