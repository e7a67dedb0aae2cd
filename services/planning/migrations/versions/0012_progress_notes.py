"""Progress notes: drafts, signatures, addenda and co-signatures.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op
from sqlalchemy import (
    ARRAY,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import UUID as PgUUID

from shared.db.metadata import create_tables

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "planning"


def notes_table_v1(metadata: MetaData) -> Table:
    return Table(
        "notes",
        metadata,
        Column("id", PgUUID(as_uuid=True), primary_key=True),
        Column("case_id", PgUUID(as_uuid=True), nullable=False),
        Column("client_id", PgUUID(as_uuid=True), nullable=False),
        Column("kind", Text, nullable=False),
        Column("details", JSONB, nullable=False),
        Column("text", Text, nullable=False),
        Column("visibility", Text, nullable=False),
        Column("goal_ids", ARRAY(PgUUID(as_uuid=True)), nullable=False),
        Column("occurred_at", DateTime(timezone=True), nullable=False),
        Column("status", Text, nullable=False),
        Column("addendum_to", PgUUID(as_uuid=True)),
        Column("author_id", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
        Column("row_version", Integer, nullable=False),
        Column("signed_by", Text),
        Column("signed_at", DateTime(timezone=True)),
        Column("needs_cosignature", Boolean, nullable=False),
        Column("cosigned_by", Text),
        Column("cosigned_at", DateTime(timezone=True)),
        CheckConstraint(
            "kind IN ('note', 'contact', 'service_provided', 'advocacy', "
            "'crisis_intervention', 'consultation')",
            name="kind",
        ),
        CheckConstraint("status IN ('draft', 'signed')", name="status"),
        CheckConstraint("visibility IN ('standard', 'restricted')", name="visibility"),
        # A signed note names who signed and when; a draft neither.
        CheckConstraint(
            "(status = 'signed') = (signed_by IS NOT NULL AND signed_at IS NOT NULL)",
            name="signed",
        ),
        Index("ix_notes_case_id_created_at_id", "case_id", "created_at", "id"),
        Index("ix_notes_addendum_to", "addendum_to"),
        Index(
            "ix_notes_drafts",
            "created_at",
            postgresql_where=text("status = 'draft'"),
        ),
        Index(
            "ix_notes_awaiting_cosignature",
            "signed_at",
            postgresql_where=text("needs_cosignature AND cosigned_at IS NULL"),
        ),
    )


def upgrade() -> None:
    create_tables(op.get_bind(), SCHEMA, notes_table_v1)


def downgrade() -> None:
    op.drop_table("notes", schema=SCHEMA)
