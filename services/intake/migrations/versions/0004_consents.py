"""The consent ledger.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op
from sqlalchemy import Column, MetaData, Table
from sqlalchemy.dialects.postgresql import UUID as PgUUID

from services.intake.consents.models import consents_table
from shared.db.metadata import create_tables

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "intake"


def _clients_reference(metadata: MetaData) -> Table:
    """Only what the consents' foreign key refers to; `clients` exists since 0001 and is left
    as it is (create_all skips tables that exist)."""
    return Table("clients", metadata, Column("id", PgUUID(as_uuid=True), primary_key=True))


def upgrade() -> None:
    create_tables(op.get_bind(), SCHEMA, _clients_reference, consents_table)


def downgrade() -> None:
    op.drop_table("consents", schema=SCHEMA)
