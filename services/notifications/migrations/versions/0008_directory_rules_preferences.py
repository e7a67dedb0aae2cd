"""What notifications keeps to find recipients (staff, cases, referrals, reviews, crisis flags,
on-call lists), organisations' rules, users' preferences and live-stream tickets.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op
from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    Time,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import UUID as PgUUID

from shared.db.metadata import create_tables

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "notifications"


def staff_table_v1(metadata: MetaData) -> Table:
    return Table(
        "staff",
        metadata,
        Column("organization_id", Text, nullable=False),
        Column("worker_id", Text, nullable=False),
        Column("team_id", Text),
        Column("role", Text, nullable=False),
        Column("active", Boolean, nullable=False),
        Column("languages", ARRAY(Text), nullable=False),
        Column("version", BigInteger, nullable=False),
        PrimaryKeyConstraint("organization_id", "worker_id"),
        Index("ix_staff_organization_id_team_id", "organization_id", "team_id"),
    )


def cases_table_v1(metadata: MetaData) -> Table:
    return Table(
        "cases",
        metadata,
        Column("case_id", PgUUID(as_uuid=True), primary_key=True),
        Column("client_id", PgUUID(as_uuid=True), nullable=False, index=True),
        Column("organization_id", Text, nullable=False),
        Column("team_id", Text),
        Column("worker_id", Text),
        Column("status", Text, nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
    )


def referral_refs_table_v1(metadata: MetaData) -> Table:
    return Table(
        "referral_refs",
        metadata,
        Column("referral_id", PgUUID(as_uuid=True), primary_key=True),
        Column("client_id", PgUUID(as_uuid=True), nullable=False),
        Column("sending_organization_id", Text, nullable=False),
        Column("receiving_organization_id", Text),
        Column("made_by", Text, nullable=False),
    )


def reviews_table_v1(metadata: MetaData) -> Table:
    return Table(
        "reviews",
        metadata,
        Column("review_id", PgUUID(as_uuid=True), primary_key=True),
        Column("case_id", PgUUID(as_uuid=True), nullable=False),
        Column("client_id", PgUUID(as_uuid=True), nullable=False),
        Column("organization_id", Text, nullable=False),
        Column("team_id", Text),
        Column("worker_id", Text),
        Column("due_at", DateTime(timezone=True), nullable=False),
        Column("completed_at", DateTime(timezone=True)),
    )


def crisis_flags_table_v1(metadata: MetaData) -> Table:
    return Table(
        "crisis_flags",
        metadata,
        Column("flag_id", PgUUID(as_uuid=True), primary_key=True),
        Column("client_id", PgUUID(as_uuid=True), nullable=False),
        Column("raised_at", DateTime(timezone=True), nullable=False),
        Column("acknowledged_at", DateTime(timezone=True)),
        Column("acknowledged_by", Text),
        # The raising event's data and time; pending: raised before notifications knew the
        # client's organisation (events of two topics are not ordered), and notified when the
        # client's facts arrive.
        Column("event_data", JSONB, nullable=False),
        Column("event_time", DateTime(timezone=True), nullable=False),
        Column("pending", Boolean, nullable=False),
        Column("source_event_id", Text, nullable=False),
    )


def on_call_table_v1(metadata: MetaData) -> Table:
    return Table(
        "on_call",
        metadata,
        Column("organization_id", Text, nullable=False),
        Column("position", Integer, nullable=False),
        Column("user_id", Text, nullable=False),
        PrimaryKeyConstraint("organization_id", "position"),
    )


def on_call_versions_table_v1(metadata: MetaData) -> Table:
    return Table(
        "on_call_versions",
        metadata,
        Column("organization_id", Text, primary_key=True),
        Column("version", Integer, nullable=False),
        Column("updated_by", Text, nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
    )


def preferences_table_v1(metadata: MetaData) -> Table:
    return Table(
        "preferences",
        metadata,
        Column("organization_id", Text, nullable=False),
        Column("user_id", Text, nullable=False),
        Column("channels", JSONB, nullable=False),
        Column("quiet_start", Time),
        Column("quiet_end", Time),
        Column("quiet_time_zone", Text),
        Column("daily_digest", Boolean, nullable=False),
        Column("email", Text),
        Column("language", Text, nullable=False),
        Column("version", Integer, nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
        PrimaryKeyConstraint("organization_id", "user_id"),
    )


def rule_sets_table_v1(metadata: MetaData) -> Table:
    """An organisation's own rules, replacing the shipped ones for it."""
    return Table(
        "rule_sets",
        metadata,
        Column("organization_id", Text, primary_key=True),
        Column("document", JSONB, nullable=False),
        Column("version", Integer, nullable=False),
        Column("updated_by", Text, nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
    )


def stream_tickets_table_v1(metadata: MetaData) -> Table:
    return Table(
        "stream_tickets",
        metadata,
        Column("ticket_hash", Text, primary_key=True),
        Column("organization_id", Text, nullable=False),
        Column("user_id", Text, nullable=False),
        Column("roles", ARRAY(Text), nullable=False),
        Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
    )


TABLES = (
    staff_table_v1,
    cases_table_v1,
    referral_refs_table_v1,
    reviews_table_v1,
    crisis_flags_table_v1,
    on_call_table_v1,
    on_call_versions_table_v1,
    preferences_table_v1,
    rule_sets_table_v1,
    stream_tickets_table_v1,
)


def upgrade() -> None:
    create_tables(op.get_bind(), SCHEMA, *TABLES)


def downgrade() -> None:
    for name in (
        "stream_tickets",
        "rule_sets",
        "preferences",
        "on_call_versions",
        "on_call",
        "crisis_flags",
        "reviews",
        "referral_refs",
        "cases",
        "staff",
    ):
        op.drop_table(name, schema=SCHEMA)
