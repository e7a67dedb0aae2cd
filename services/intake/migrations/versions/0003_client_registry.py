"""The full client registry: names, data quality, demographics, contact, household,
identifiers, search keys, field-level change history.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Column, DateTime, Index, Integer, MetaData, Table, Text
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import UUID as PgUUID

from shared.db.metadata import create_tables

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "intake"


def client_changes_table_v1(target: MetaData) -> Table:
    """Field-level history: who changed which field of a client from what to what, when."""
    return Table(
        "client_changes",
        target,
        Column("id", PgUUID(as_uuid=True), primary_key=True),
        Column("client_id", PgUUID(as_uuid=True), nullable=False),
        Column("version", Integer, nullable=False),
        Column("changed_by", Text, nullable=False),
        Column("changed_at", DateTime(timezone=True), nullable=False),
        Column("changes", JSONB, nullable=False),
        Index("ix_client_changes_client_id_version", "client_id", "version"),
    )


TEXT_ARRAY_DEFAULT = sa.text("'{}'::text[]")


def upgrade() -> None:
    for column in ("given_name", "family_name", "birth_date"):
        op.alter_column("clients", column, nullable=True, schema=SCHEMA)
    columns = [
        sa.Column("other_names", postgresql.ARRAY(sa.Text()), nullable=False, server_default=TEXT_ARRAY_DEFAULT),
        sa.Column("name_data_quality", sa.Text(), nullable=False, server_default=sa.text("'1'")),
        sa.Column("birth_date_quality", sa.Text(), nullable=False, server_default=sa.text("'1'")),
        sa.Column("sex", sa.Text()),
        sa.Column("gender_identity", postgresql.ARRAY(sa.Text()), nullable=False, server_default=TEXT_ARRAY_DEFAULT),
        sa.Column("race_ethnicity", postgresql.ARRAY(sa.Text()), nullable=False, server_default=TEXT_ARRAY_DEFAULT),
        sa.Column("interpreter_needed", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column("phone", sa.Text()),
        sa.Column("email", sa.Text()),
        sa.Column("address", postgresql.JSONB()),
        sa.Column("postal_code", sa.Text()),
        sa.Column("household_members", postgresql.JSONB(), nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("identifiers", postgresql.JSONB(), nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("name_key", sa.Text(), nullable=False, server_default=sa.text("''")),
        sa.Column("given_phonetic", sa.Text()),
        sa.Column("family_phonetic", sa.Text()),
        sa.Column("phone_digits", sa.Text()),
    ]  # fmt: skip
    for column in columns:
        op.add_column("clients", column, schema=SCHEMA)
    # Rows registered before this migration get their search keys (accents are folded by the
    # application on new writes; lower() is the best SQL alone can do here).
    op.execute(
        f"UPDATE {SCHEMA}.clients SET name_key = lower(coalesce(given_name, '') || ' ' || "
        "coalesce(family_name, '')), given_phonetic = extensions.dmetaphone(given_name), "
        "family_phonetic = extensions.dmetaphone(family_name)"
    )
    op.create_index(
        "ix_clients_name_key_trgm", "clients", ["name_key"], schema=SCHEMA,
        postgresql_using="gin", postgresql_ops={"name_key": "extensions.gin_trgm_ops"},
    )  # fmt: skip
    for name, columns_ in (
        ("ix_clients_family_phonetic_given_phonetic", ["family_phonetic", "given_phonetic"]),
        ("ix_clients_given_phonetic_family_phonetic", ["given_phonetic", "family_phonetic"]),
        ("ix_clients_birth_date", ["birth_date"]),
        ("ix_clients_phone_digits", ["phone_digits"]),
        ("ix_clients_created_at_id", ["created_at", "id"]),
    ):
        op.create_index(name, "clients", columns_, schema=SCHEMA)
    create_tables(op.get_bind(), SCHEMA, client_changes_table_v1)


def downgrade() -> None:
    op.drop_table("client_changes", schema=SCHEMA)
    for name in (
        "ix_clients_name_key_trgm", "ix_clients_family_phonetic_given_phonetic",
        "ix_clients_given_phonetic_family_phonetic", "ix_clients_birth_date",
        "ix_clients_phone_digits", "ix_clients_created_at_id",
    ):  # fmt: skip
        op.drop_index(name, table_name="clients", schema=SCHEMA)
    for column in (
        "other_names", "name_data_quality", "birth_date_quality", "sex", "gender_identity",
        "race_ethnicity", "interpreter_needed", "phone", "email", "address", "postal_code",
        "household_members", "identifiers", "name_key", "given_phonetic", "family_phonetic",
        "phone_digits",
    ):  # fmt: skip
        op.drop_column("clients", column, schema=SCHEMA)
