"""Assessments and safety flags.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    MetaData,
    SmallInteger,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import UUID as PgUUID

from shared.db.metadata import create_tables

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "intake"


def assessments_table_v1(metadata: MetaData) -> Table:
    """One row per assessment: the answers, the computed result and the level in force."""
    return Table(
        "assessments",
        metadata,
        Column("id", PgUUID(as_uuid=True), primary_key=True),
        Column("client_id", PgUUID(as_uuid=True), nullable=False),
        Column("instrument_id", Text, nullable=False),
        Column("instrument_version", Text, nullable=False),
        Column("answers", JSONB, nullable=False, comment="question id -> option value"),
        Column("needs", JSONB, nullable=False),
        Column("explanation", JSONB, nullable=False, comment="every answer that counted"),
        Column("total_points", SmallInteger, nullable=False),
        Column("crisis", Boolean, nullable=False),
        Column("computed_risk_level", Text, nullable=False),
        Column("computed_priority", SmallInteger, nullable=False),
        Column("risk_level", Text, nullable=False, comment="in force: the latest override's"),
        Column("priority", SmallInteger, nullable=False),
        Column("assessed_by", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        CheckConstraint(
            "computed_risk_level IN ('low', 'moderate', 'high', 'crisis')",
            name="computed_risk_level",
        ),
        CheckConstraint("risk_level IN ('low', 'moderate', 'high', 'crisis')", name="risk_level"),
        Index("ix_assessments_client_id_created_at", "client_id", "created_at"),
        Index("ix_assessments_instrument_id_client_id", "instrument_id", "client_id"),
    )


def assessment_overrides_table_v1(metadata: MetaData) -> Table:
    """Every risk override, append-only: the reason stays beside the computed level."""
    return Table(
        "assessment_overrides",
        metadata,
        Column("id", PgUUID(as_uuid=True), primary_key=True),
        Column(
            "assessment_id",
            PgUUID(as_uuid=True),
            ForeignKey("assessments.id"),
            nullable=False,
        ),
        Column("risk_level", Text, nullable=False),
        Column("reason", Text, nullable=False),
        Column("overridden_by", Text, nullable=False),
        Column("overridden_at", DateTime(timezone=True), nullable=False),
        CheckConstraint("risk_level IN ('low', 'moderate', 'high', 'crisis')", name="risk_level"),
        Index("ix_assessment_overrides_assessment_id", "assessment_id"),
    )


def flags_table_v1(metadata: MetaData) -> Table:
    return Table(
        "flags",
        metadata,
        Column("id", PgUUID(as_uuid=True), primary_key=True),
        Column("client_id", PgUUID(as_uuid=True), nullable=False),
        Column("flag_type", Text, nullable=False),
        Column("severity", Text, nullable=False),
        Column("source", Text, nullable=False),
        Column("assessment_id", PgUUID(as_uuid=True), ForeignKey("assessments.id")),
        Column("note", Text),
        Column("raised_by", Text, nullable=False),
        Column("raised_at", DateTime(timezone=True), nullable=False),
        Column("expires_at", DateTime(timezone=True)),
        Column("acknowledged_by", Text),
        Column("acknowledged_at", DateTime(timezone=True)),
        Column("resolved_by", Text),
        Column("resolved_at", DateTime(timezone=True)),
        Column("resolution_note", Text),
        CheckConstraint(
            "flag_type IN ('safety', 'violence', 'medical', 'legal', 'duplicate', 'other')",
            name="flag_type",
        ),
        CheckConstraint("severity IN ('low', 'moderate', 'high', 'crisis')", name="severity"),
        CheckConstraint("source IN ('assessment', 'manual')", name="source"),
        Index("ix_flags_client_id_raised_at", "client_id", "raised_at"),
        Index("ix_flags_assessment_id", "assessment_id"),
    )


def upgrade() -> None:
    create_tables(
        op.get_bind(), SCHEMA, assessments_table_v1, assessment_overrides_table_v1, flags_table_v1
    )


def downgrade() -> None:
    op.drop_table("flags", schema=SCHEMA)
    op.drop_table("assessment_overrides", schema=SCHEMA)
    op.drop_table("assessments", schema=SCHEMA)
