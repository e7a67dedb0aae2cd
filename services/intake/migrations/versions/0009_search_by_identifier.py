"""Search by an exact identifier: a GIN index (jsonb_path_ops) on the identifiers, which serves
`identifiers @> '[{"type": ..., "value": ...}]'`.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "intake"


def upgrade() -> None:
    op.create_index(
        "ix_clients_identifiers",
        "clients",
        ["identifiers"],
        schema=SCHEMA,
        postgresql_using="gin",
        postgresql_ops={"identifiers": "jsonb_path_ops"},
    )


def downgrade() -> None:
    op.drop_index("ix_clients_identifiers", table_name="clients", schema=SCHEMA)
