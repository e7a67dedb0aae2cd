"""Identity links.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "intake"


def upgrade() -> None:
    op.create_table(
        "identity_links",
        sa.Column("id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("client_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("linked_client_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column(
            "split_overridden", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column("linked_by", sa.Text(), nullable=False),
        sa.Column("linked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("unlinked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("unlinked_by", sa.Text(), nullable=True),
        sa.Column("unlink_reason", sa.Text(), nullable=True),
        sa.CheckConstraint("client_id <> linked_client_id", name="ck_identity_links_not_self"),
        sa.ForeignKeyConstraint(
            ["client_id"], [f"{SCHEMA}.clients.id"], name="fk_identity_links_client_id_clients"
        ),
        sa.ForeignKeyConstraint(
            ["linked_client_id"],
            [f"{SCHEMA}.clients.id"],
            name="fk_identity_links_linked_client_id_clients",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_identity_links"),
        schema=SCHEMA,
    )
    op.create_index("ix_identity_links_client_id", "identity_links", ["client_id"], schema=SCHEMA)
    op.create_index(
        "ix_identity_links_linked_client_id", "identity_links", ["linked_client_id"], schema=SCHEMA
    )
    op.create_table(
        "identity_link_splits",
        sa.Column("id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("link_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("client_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("linked_client_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("split_by", sa.Text(), nullable=False),
        sa.Column("split_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["link_id"],
            [f"{SCHEMA}.identity_links.id"],
            name="fk_identity_link_splits_link_id_identity_links",
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            [f"{SCHEMA}.clients.id"],
            name="fk_identity_link_splits_client_id_clients",
        ),
        sa.ForeignKeyConstraint(
            ["linked_client_id"],
            [f"{SCHEMA}.clients.id"],
            name="fk_identity_link_splits_linked_client_id_clients",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_identity_link_splits"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_identity_link_splits_client_id", "identity_link_splits", ["client_id"], schema=SCHEMA
    )
    op.create_index(
        "ix_identity_link_splits_linked_client_id",
        "identity_link_splits",
        ["linked_client_id"],
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("identity_link_splits", schema=SCHEMA)
    op.drop_table("identity_links", schema=SCHEMA)
