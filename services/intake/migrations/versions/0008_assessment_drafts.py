"""Assessment drafts: answers saved before the form is complete, whose crisis answers raise
their flags at once (flags.draft_id names the draft until it becomes the assessment).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "intake"


def upgrade() -> None:
    op.create_table(
        "assessment_drafts",
        sa.Column("id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("client_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("instrument_id", sa.Text(), nullable=False),
        sa.Column("instrument_version", sa.Text(), nullable=False),
        sa.Column("answers", postgresql.JSONB(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assessment_drafts")),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_assessment_drafts_client_id", "assessment_drafts", ["client_id"], schema=SCHEMA
    )
    op.add_column(
        "flags",
        sa.Column(
            "draft_id",
            postgresql.UUID(as_uuid=True),
            comment="raised by this draft before completion",
        ),
        schema=SCHEMA,
    )
    op.create_index("ix_flags_draft_id", "flags", ["draft_id"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_index("ix_flags_draft_id", table_name="flags", schema=SCHEMA)
    op.drop_column("flags", "draft_id", schema=SCHEMA)
    op.drop_index("ix_assessment_drafts_client_id", table_name="assessment_drafts", schema=SCHEMA)
    op.drop_table("assessment_drafts", schema=SCHEMA)
