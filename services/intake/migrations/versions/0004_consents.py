"""The consent ledger.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op
from sqlalchemy import (
    ARRAY,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    MetaData,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import UUID as PgUUID

from shared.db.metadata import create_tables

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "intake"


def consents_table_v1(metadata: MetaData) -> Table:
    """Every consent ever recorded for a client; revocation fills in the revoked_* columns."""
    return Table(
        "consents",
        metadata,
        Column("id", PgUUID(as_uuid=True), primary_key=True),
        Column("client_id", PgUUID(as_uuid=True), ForeignKey("clients.id"), nullable=False),
        Column("given_by", Text, nullable=False),
        Column("network", Boolean, nullable=False),
        Column("recipients", ARRAY(Text), nullable=False, server_default=text("'{}'::text[]")),
        Column("purposes", ARRAY(Text), nullable=False),
        Column("data_classes", ARRAY(Text), nullable=False),
        Column("starts_on", Date, nullable=False),
        Column("expires_on", Date, nullable=False),
        Column("recorded_by", Text, nullable=False),
        Column("recorded_at", DateTime(timezone=True), nullable=False),
        Column("revoked_at", DateTime(timezone=True)),
        Column("revoked_by", Text),
        Column("revocation_reason", Text),
        Column("revocation_note", Text),
        CheckConstraint("expires_on > starts_on", name="dates"),
        CheckConstraint("network <> (cardinality(recipients) > 0)", name="recipients_or_network"),
        CheckConstraint(
            "cardinality(purposes) > 0 AND cardinality(data_classes) > 0", name="scope"
        ),
        # VAWA and 42 CFR Part 2: see RECIPIENT_SPECIFIC_DATA_CLASSES.
        CheckConstraint(
            "NOT (network AND data_classes && ARRAY['domestic_violence', 'substance_use'])",
            name="network_excludes_recipient_specific_classes",
        ),
        CheckConstraint(
            "(revoked_at IS NULL AND revoked_by IS NULL AND revocation_reason IS NULL "
            "AND revocation_note IS NULL) OR (revoked_at IS NOT NULL AND revoked_by IS NOT NULL "
            "AND revocation_reason IS NOT NULL)",
            name="revocation",
        ),
        Index("ix_consents_client_id_recorded_at_id", "client_id", "recorded_at", "id"),
    )


def _clients_reference(metadata: MetaData) -> Table:
    """Only what the consents' foreign key refers to; `clients` exists since 0001 and is left
    as it is (create_all skips tables that exist)."""
    return Table("clients", metadata, Column("id", PgUUID(as_uuid=True), primary_key=True))


def upgrade() -> None:
    create_tables(op.get_bind(), SCHEMA, _clients_reference, consents_table_v1)


def downgrade() -> None:
    op.drop_table("consents", schema=SCHEMA)
