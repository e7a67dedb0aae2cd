"""The `timers` table a service keeps in its own schema, and its migration."""

from __future__ import annotations

from sqlalchemy import (
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
from sqlalchemy.engine import Connection

from shared.db.metadata import create_tables


def timers_table(metadata: MetaData) -> Table:
    return Table(
        "timers",
        metadata,
        # What the timer is for (the handler that fires it) and which thing it is about:
        # scheduling the same (kind, key) again moves the timer instead of adding one.
        Column("kind", Text, nullable=False),
        Column("key", Text, nullable=False),
        Column("due_at", DateTime(timezone=True), nullable=False),
        # Ids and codes the handler needs; never names or free text.
        Column("payload", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
        # Failed attempts so far, and the last failure (the exception's type and message).
        Column("attempts", Integer, nullable=False, server_default=text("0")),
        Column("last_error", Text),
        Column("fired_at", DateTime(timezone=True)),
        # Set when the handler failed timer_max_attempts times: kept for an operator, not retried.
        Column("parked_at", DateTime(timezone=True)),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
        PrimaryKeyConstraint("kind", "key"),
        Index(
            "ix_timers_pending_due_at",
            "due_at",
            postgresql_where=text("fired_at IS NULL AND parked_at IS NULL"),
        ),
        Index("ix_timers_fired_at", "fired_at"),
    )


def add_timer_tables(metadata: MetaData) -> None:
    timers_table(metadata)


def timers_channel(schema: str) -> str:
    """The LISTEN/NOTIFY channel the timers trigger signals on commit of a schedule."""
    return f"{schema}_timers"


def create_timers_v1(connection: Connection, schema: str) -> None:
    """For a service's migration."""
    create_tables(connection, schema, timers_table)
    # Statement-level: NOTIFY is delivered at commit and wakes the worker, so a timer due now
    # (or sooner than the next poll) fires without waiting for it.
    connection.exec_driver_sql(
        f"""
        CREATE FUNCTION "{schema}".notify_timers() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{timers_channel(schema)}', '');
            RETURN NULL;
        END $$
        """
    )
    connection.exec_driver_sql(
        f'CREATE TRIGGER timers_notify AFTER INSERT ON "{schema}".timers '
        f'FOR EACH STATEMENT EXECUTE FUNCTION "{schema}".notify_timers()'
    )


def drop_timers_v1(connection: Connection, schema: str) -> None:
    connection.exec_driver_sql(f'DROP TABLE "{schema}".timers')
    connection.exec_driver_sql(f'DROP FUNCTION "{schema}".notify_timers()')
