"""Reviews, crises, closures (with their approval), reopenings, each assessment's needs; and
the case each assignment is of.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29
"""

import uuid
from collections.abc import Sequence

from alembic import op
from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    Index,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import UUID as PgUUID

from shared.db.metadata import create_tables

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "planning"


def case_assignment_case_id_v1() -> Column[uuid.UUID]:
    """The case an assignment is of (added here; older rows have none)."""
    return Column("case_id", PgUUID(as_uuid=True))


def reviews_table_v1(metadata: MetaData) -> Table:
    return Table(
        "reviews",
        metadata,
        Column("id", PgUUID(as_uuid=True), primary_key=True),
        Column("case_id", PgUUID(as_uuid=True), nullable=False),
        Column("client_id", PgUUID(as_uuid=True), nullable=False),
        Column("due_at", DateTime(timezone=True), nullable=False),
        Column("reason", Text, nullable=False),
        Column("risk_level", Text),
        Column("status", Text, nullable=False),
        Column("outcome", Text),
        Column("attendees", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
        Column("scheduled_at", DateTime(timezone=True), nullable=False),
        Column("completed_by", Text),
        Column("completed_at", DateTime(timezone=True)),
        CheckConstraint("status IN ('scheduled', 'completed', 'superseded')", name="status_known"),
        # At most one scheduled review per case: scheduling supersedes the previous one.
        Index(
            "uq_reviews_scheduled_case_id",
            "case_id",
            unique=True,
            postgresql_where=text("status = 'scheduled'"),
        ),
        Index("ix_reviews_case_id_due_at", "case_id", "due_at"),
    )


def case_crises_table_v1(metadata: MetaData) -> Table:
    """Crisis flags raised on a case's client (from ProtectedFlagRaised): the crisis stays on
    top of due work until a review is completed after it. Never the flag's type."""
    return Table(
        "case_crises",
        metadata,
        Column("flag_id", PgUUID(as_uuid=True), primary_key=True),
        Column("case_id", PgUUID(as_uuid=True), nullable=False),
        Column("client_id", PgUUID(as_uuid=True), nullable=False),
        Column("raised_at", DateTime(timezone=True), nullable=False),
        Column("review_id", PgUUID(as_uuid=True), nullable=False),
        Index("ix_case_crises_case_id_raised_at", "case_id", "raised_at"),
    )


def case_closures_table_v1(metadata: MetaData) -> Table:
    """Every closure of a case, requested or done: the reason, the HMIS destination and an
    optional note; with the organisation's closure approval, `requested` until decided."""
    return Table(
        "case_closures",
        metadata,
        Column("id", PgUUID(as_uuid=True), primary_key=True),
        Column("case_id", PgUUID(as_uuid=True), nullable=False),
        Column("client_id", PgUUID(as_uuid=True), nullable=False),
        Column("reason", Text, nullable=False),
        Column("destination_code", Text, nullable=False),
        Column("note", Text),
        Column("status", Text, nullable=False),
        Column("requested_by", Text, nullable=False),
        Column("requested_at", DateTime(timezone=True), nullable=False),
        Column("approval_id", PgUUID(as_uuid=True)),
        Column("closed_at", DateTime(timezone=True)),
        CheckConstraint(
            "status IN ('requested', 'closed', 'rejected', 'withdrawn')", name="status_known"
        ),
        Index(
            "uq_case_closures_pending_case_id",
            "case_id",
            unique=True,
            postgresql_where=text("status = 'requested'"),
        ),
    )


def case_reopenings_table_v1(metadata: MetaData) -> Table:
    """The log of a case's reopenings, with why."""
    return Table(
        "case_reopenings",
        metadata,
        Column("id", PgUUID(as_uuid=True), primary_key=True),
        Column("case_id", PgUUID(as_uuid=True), nullable=False),
        Column("client_id", PgUUID(as_uuid=True), nullable=False),
        Column("reason", Text, nullable=False),
        Column("reopened_by", Text, nullable=False),
        Column("reopened_at", DateTime(timezone=True), nullable=False),
        Index("ix_case_reopenings_case_id_reopened_at", "case_id", "reopened_at"),
    )


def assessment_needs_table_v1(metadata: MetaData) -> Table:
    """Each assessment's needs as they arrive (general ones with ClientAssessed, protected ones
    with ProtectedNeedsAssessed, on two topics in no fixed order): a case's needs are copied
    from its latest assessment's, whichever event arrives first."""
    return Table(
        "assessment_needs",
        metadata,
        Column("assessment_id", PgUUID(as_uuid=True), nullable=False),
        Column("client_id", PgUUID(as_uuid=True), nullable=False),
        Column("category", Text, nullable=False),
        Column("severity", Text, nullable=False),
        Column("data_class", Text),
        Column("received_at", DateTime(timezone=True), nullable=False),
        PrimaryKeyConstraint("assessment_id", "category"),
    )


def assessments_received_table_v1(metadata: MetaData) -> Table:
    """Each assessment's levels as ClientAssessed said (the latest word, after an override):
    a case opened first by its protected needs takes its risk level from here."""
    return Table(
        "assessments_received",
        metadata,
        Column("assessment_id", PgUUID(as_uuid=True), primary_key=True),
        Column("client_id", PgUUID(as_uuid=True), nullable=False),
        Column("risk_level", Text, nullable=False),
        Column("preferred_language", Text),
        Column("received_at", DateTime(timezone=True), nullable=False),
    )


TABLES = (
    "reviews",
    "case_crises",
    "case_closures",
    "case_reopenings",
    "assessment_needs",
    "assessments_received",
)


def upgrade() -> None:
    op.add_column("case_assignments", case_assignment_case_id_v1(), schema=SCHEMA)
    op.create_index(
        "ix_case_assignments_case_id_assigned_at",
        "case_assignments",
        ["case_id", "assigned_at"],
        schema=SCHEMA,
    )
    create_tables(
        op.get_bind(),
        SCHEMA,
        reviews_table_v1,
        case_crises_table_v1,
        case_closures_table_v1,
        case_reopenings_table_v1,
        assessment_needs_table_v1,
        assessments_received_table_v1,
    )


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table, schema=SCHEMA)
    op.drop_index("ix_case_assignments_case_id_assigned_at", "case_assignments", schema=SCHEMA)
    op.drop_column("case_assignments", "case_id", schema=SCHEMA)
