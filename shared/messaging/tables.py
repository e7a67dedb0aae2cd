"""The messaging tables every service has in its own schema: outbox, inbox, idempotency keys.

The outbox columns follow Debezium's outbox event router (id, aggregatetype, aggregateid, type,
payload) so a later switch to change-data-capture needs no migration.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.engine import Connection

from shared.db.metadata import create_tables


def outbox_table(metadata: MetaData) -> Table:
    return Table(
        "outbox",
        metadata,
        # seq orders the relay's reads; it is not commit order, so the relay never
        # remembers "the last seq seen" and always reads every unpublished row.
        Column("seq", BigInteger, Identity(always=True), primary_key=True),
        Column("id", UUID(as_uuid=True), nullable=False, unique=True),
        Column("aggregatetype", Text, nullable=False),
        Column("aggregateid", Text, nullable=False),
        Column("type", Text, nullable=False),
        Column("topic", Text, nullable=False),
        Column("payload", JSONB, nullable=False),
        Column("headers", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
        Column("published_at", DateTime(timezone=True)),
        Index("ix_outbox_unpublished", "seq", postgresql_where=text("published_at IS NULL")),
        Index("ix_outbox_published_at", "published_at"),
    )


def inbox_table(metadata: MetaData) -> Table:
    return Table(
        "inbox",
        metadata,
        Column("consumer_group", Text, nullable=False),
        Column("event_id", Text, nullable=False),
        Column("event_type", Text, nullable=False),
        Column(
            "processed_at", DateTime(timezone=True), nullable=False, server_default=text("now()")
        ),
        PrimaryKeyConstraint("consumer_group", "event_id"),
    )


def idempotency_keys_table(metadata: MetaData) -> Table:
    return Table(
        "idempotency_keys",
        metadata,
        Column("key", Text, primary_key=True),
        Column("fingerprint", Text, nullable=False),
        Column("status_code", Integer),
        Column("response_body", JSONB),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    )


def add_messaging_tables(metadata: MetaData) -> None:
    outbox_table(metadata)
    inbox_table(metadata)
    idempotency_keys_table(metadata)


def outbox_channel(schema: str) -> str:
    """The LISTEN/NOTIFY channel the outbox trigger signals on commit."""
    return f"{schema}_outbox"


def create_messaging_tables_v1(connection: Connection, schema: str) -> None:
    """Used by each service's first migration; later changes get migrations of their own."""
    create_tables(connection, schema, outbox_table, inbox_table, idempotency_keys_table)
    # A statement-level trigger: NOTIFY is delivered at commit, waking the relay at once.
    connection.exec_driver_sql(
        f"""
        CREATE FUNCTION "{schema}".notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{outbox_channel(schema)}', '');
            RETURN NULL;
        END $$
        """
    )
    connection.exec_driver_sql(
        f'CREATE TRIGGER outbox_notify AFTER INSERT ON "{schema}".outbox '
        f'FOR EACH STATEMENT EXECUTE FUNCTION "{schema}".notify_outbox()'
    )


def drop_messaging_tables_v1(connection: Connection, schema: str) -> None:
    connection.exec_driver_sql(
        f'DROP TABLE "{schema}".outbox, "{schema}".inbox, "{schema}".idempotency_keys'
    )
    connection.exec_driver_sql(f'DROP FUNCTION "{schema}".notify_outbox()')
