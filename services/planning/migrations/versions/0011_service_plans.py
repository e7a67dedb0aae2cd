"""Service plans: versions of each case's plan (content as one document per version), the
status changes and progress of their goals.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    Identity,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import UUID as PgUUID

from shared.db.metadata import create_tables

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "planning"


def plans_table_v1(metadata: MetaData) -> Table:
    """Every version of every case's plan. The content (goals, actions, safety plan) is one
    document per version: an approved version's is never written again."""
    return Table(
        "plans",
        metadata,
        Column("id", PgUUID(as_uuid=True), primary_key=True),
        Column("case_id", PgUUID(as_uuid=True), nullable=False),
        Column("client_id", PgUUID(as_uuid=True), nullable=False),
        Column("number", Integer, nullable=False),
        Column("status", Text, nullable=False),
        Column("based_on", PgUUID(as_uuid=True), comment="the approved version it revises"),
        Column("content", JSONB, nullable=False),
        Column("content_changed_at", DateTime(timezone=True), nullable=False),
        Column("agreement_how", Text),
        Column("agreement_at", DateTime(timezone=True)),
        Column("agreement_recorded_by", Text),
        Column("agreement_recorded_at", DateTime(timezone=True)),
        Column("row_version", Integer, nullable=False),
        Column("created_by", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("updated_by", Text, nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
        Column("approval_id", PgUUID(as_uuid=True)),
        Column("approved_by", Text),
        Column("approved_at", DateTime(timezone=True)),
        Column("superseded_at", DateTime(timezone=True)),
        CheckConstraint(
            "status IN ('draft', 'awaiting_approval', 'approved', 'superseded')", name="status"
        ),
        CheckConstraint(
            "agreement_how IS NULL OR agreement_how IN ('signed', 'verbal', 'declined')",
            name="agreement_how",
        ),
        UniqueConstraint("case_id", "number"),
        # One version being worked on per case, and one approved version in force.
        Index(
            "uq_plans_case_id_open",
            "case_id",
            unique=True,
            postgresql_where=text("status IN ('draft', 'awaiting_approval')"),
        ),
        Index(
            "uq_plans_case_id_approved",
            "case_id",
            unique=True,
            postgresql_where=text("status = 'approved'"),
        ),
        Index("ix_plans_status_updated_at", "status", "updated_at"),
    )


def goal_progress_table_v1(metadata: MetaData) -> Table:
    """Measurements of a goal over time; the goal's id is stable across versions, so its
    history follows it into revisions."""
    return Table(
        "goal_progress",
        metadata,
        Column("id", PgUUID(as_uuid=True), primary_key=True),
        Column("case_id", PgUUID(as_uuid=True), nullable=False),
        Column("plan_id", PgUUID(as_uuid=True), nullable=False),
        Column("goal_id", PgUUID(as_uuid=True), nullable=False),
        Column("value", Float, nullable=False),
        Column("note", Text),
        Column("recorded_at", DateTime(timezone=True), nullable=False),
        Column("recorded_by", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Index("ix_goal_progress_goal_id_recorded_at", "goal_id", "recorded_at"),
    )


def goal_status_changes_table_v1(metadata: MetaData) -> Table:
    """Status changes of the goals of an approved version (its content stays as approved)."""
    return Table(
        "goal_status_changes",
        metadata,
        Column("id", PgUUID(as_uuid=True), primary_key=True),
        # The order of changes, even two in one instant (the latest is the goal's status).
        Column("seq", BigInteger, Identity(), nullable=False),
        Column("case_id", PgUUID(as_uuid=True), nullable=False),
        Column("plan_id", PgUUID(as_uuid=True), nullable=False),
        Column("goal_id", PgUUID(as_uuid=True), nullable=False),
        Column("from_status", Text, nullable=False),
        Column("to_status", Text, nullable=False),
        Column("changed_by", Text, nullable=False),
        Column("changed_at", DateTime(timezone=True), nullable=False),
        Index("ix_goal_status_changes_plan_id_goal_id_seq", "plan_id", "goal_id", "seq"),
    )


def upgrade() -> None:
    create_tables(
        op.get_bind(), SCHEMA, plans_table_v1, goal_progress_table_v1, goal_status_changes_table_v1
    )


def downgrade() -> None:
    for table in ("goal_status_changes", "goal_progress", "plans"):
        op.drop_table(table, schema=SCHEMA)
