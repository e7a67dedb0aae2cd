"""Cases (one open per client and organisation), their needs, their timeline, and approvals.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op
from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import UUID as PgUUID

from shared.db.metadata import create_tables

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "planning"


def cases_table_v1(metadata: MetaData) -> Table:
    """A client's episode of service with an organisation: at most one open per client and
    organisation (the partial unique index), which also makes opening from a redelivered or
    republished assessment idempotent."""
    return Table(
        "cases",
        metadata,
        Column("id", PgUUID(as_uuid=True), primary_key=True),
        Column("client_id", PgUUID(as_uuid=True), nullable=False),
        Column("organization_id", Text, nullable=False),
        Column("team_id", Text),
        Column("worker_id", Text, comment="the assigned worker; null: unassigned"),
        Column("status", Text, nullable=False),
        Column("status_before_hold", Text, comment="what resuming returns to"),
        Column("risk_level", Text),
        Column("preferred_language", Text),
        Column("source", Text, nullable=False),
        Column("assessment_id", PgUUID(as_uuid=True)),
        Column("opened_by", Text, nullable=False),
        Column("opened_at", DateTime(timezone=True), nullable=False),
        Column("closed_at", DateTime(timezone=True)),
        Column("closed_by", Text),
        Column("closure_reason", Text),
        Column("destination_code", Text),
        Column("next_review_due_at", DateTime(timezone=True)),
        Column("last_contact_at", DateTime(timezone=True)),
        Column("version", Integer, nullable=False, server_default=text("1")),
        Column("updated_at", DateTime(timezone=True), nullable=False),
        CheckConstraint("status IN ('open', 'active', 'on_hold', 'closed')", name="status_known"),
        CheckConstraint("source IN ('manual', 'assessment', 'crisis')", name="source_known"),
        Index(
            "uq_cases_open_per_client_organization",
            "client_id",
            "organization_id",
            unique=True,
            postgresql_where=text("status <> 'closed'"),
        ),
        Index("ix_cases_organization_id_team_id_status", "organization_id", "team_id", "status"),
        Index("ix_cases_worker_id_status", "worker_id", "status"),
        Index("ix_cases_client_id_opened_at", "client_id", "opened_at"),
    )


def case_needs_table_v1(metadata: MetaData) -> Table:
    """A case's needs as the latest assessment found them; `data_class` set for a protected
    need (visible only to the case's own worker and supervisor)."""
    return Table(
        "case_needs",
        metadata,
        Column("case_id", PgUUID(as_uuid=True), nullable=False),
        Column("category", Text, nullable=False),
        Column("severity", Text, nullable=False),
        Column("data_class", Text),
        Column("assessment_id", PgUUID(as_uuid=True)),
        Column("updated_at", DateTime(timezone=True), nullable=False),
        PrimaryKeyConstraint("case_id", "category"),
    )


def case_timeline_table_v1(metadata: MetaData) -> Table:
    return Table(
        "case_timeline",
        metadata,
        Column("id", PgUUID(as_uuid=True), primary_key=True),
        Column("case_id", PgUUID(as_uuid=True), nullable=False),
        Column("client_id", PgUUID(as_uuid=True), nullable=False),
        Column("occurred_at", DateTime(timezone=True), nullable=False),
        Column("kind", Text, nullable=False),
        Column("subject_type", Text),
        Column("subject_id", PgUUID(as_uuid=True)),
        Column("codes", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
        Column("source", Text, nullable=False),
        Column("event_id", PgUUID(as_uuid=True), unique=True, comment="dedupe of event entries"),
        Column("recorded_at", DateTime(timezone=True), nullable=False),
        Index("ix_case_timeline_case_id_occurred_at_id", "case_id", "occurred_at", "id"),
    )


def approvals_table_v1(metadata: MetaData) -> Table:
    return Table(
        "approvals",
        metadata,
        Column("id", PgUUID(as_uuid=True), primary_key=True),
        Column("case_id", PgUUID(as_uuid=True), nullable=False),
        Column("client_id", PgUUID(as_uuid=True), nullable=False),
        Column("subject", Text, nullable=False),
        Column("subject_id", PgUUID(as_uuid=True), nullable=False),
        Column("status", Text, nullable=False),
        Column("requested_by", Text, nullable=False),
        Column("requested_at", DateTime(timezone=True), nullable=False),
        Column("decided_by", Text),
        Column("decided_at", DateTime(timezone=True)),
        Column("comment", Text),
        Column("team_id", Text),
        Column("organization_id", Text, nullable=False),
        CheckConstraint(
            "status IN ('requested', 'approved', 'rejected', 'withdrawn')", name="status_known"
        ),
        # One pending request per thing to decide on.
        Index(
            "uq_approvals_pending_subject",
            "subject",
            "subject_id",
            unique=True,
            postgresql_where=text("status = 'requested'"),
        ),
        Index(
            "ix_approvals_organization_id_team_id_status",
            "organization_id",
            "team_id",
            "status",
            "requested_at",
        ),
        Index("ix_approvals_case_id", "case_id"),
    )


def upgrade() -> None:
    create_tables(
        op.get_bind(),
        SCHEMA,
        cases_table_v1,
        case_needs_table_v1,
        case_timeline_table_v1,
        approvals_table_v1,
    )


def downgrade() -> None:
    for table in ("approvals", "case_timeline", "case_needs", "cases"):
        op.drop_table(table, schema=SCHEMA)
