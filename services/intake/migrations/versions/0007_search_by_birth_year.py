"""Name search within a birth year: a generated birth_year and a GIN index on it together
with the trigram name key (btree_gin), which replaces the name-only trigram index.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "intake"


def upgrade() -> None:
    op.add_column(
        "clients",
        sa.Column(
            "birth_year",
            sa.SmallInteger(),
            sa.Computed("(EXTRACT(year FROM birth_date))::smallint", persisted=True),
        ),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_clients_birth_year_name_key_trgm",
        "clients",
        ["birth_year", "name_key"],
        schema=SCHEMA,
        postgresql_using="gin",
        postgresql_ops={"name_key": "extensions.gin_trgm_ops"},
    )
    op.drop_index("ix_clients_name_key_trgm", table_name="clients", schema=SCHEMA)


def downgrade() -> None:
    op.create_index(
        "ix_clients_name_key_trgm",
        "clients",
        ["name_key"],
        schema=SCHEMA,
        postgresql_using="gin",
        postgresql_ops={"name_key": "extensions.gin_trgm_ops"},
    )
    op.drop_index("ix_clients_birth_year_name_key_trgm", table_name="clients", schema=SCHEMA)
    op.drop_column("clients", "birth_year", schema=SCHEMA)
