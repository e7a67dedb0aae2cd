"""E-mails waiting, sent or given up: one row per message, written in the transaction that
decided it (outbox style), sent by the worker's e-mail sender."""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import UUID as PgUUID


class EmailStatus(StrEnum):
    QUEUED = "queued"  # not attempted yet
    RETRYING = "retrying"  # attempted, failed, due again at next_attempt_at
    SENT = "sent"  # the SMTP server accepted it
    FAILED = "failed"  # refused for good, or out of attempts


def email_deliveries_table(metadata: MetaData) -> Table:
    return Table(
        "email_deliveries",
        metadata,
        Column("id", PgUUID(as_uuid=True), primary_key=True),
        Column("recipient_id", Text, nullable=False, comment="the user's id (token sub)"),
        Column("organization_id", Text, nullable=False),
        Column("address", Text, nullable=False),
        Column("language", Text, nullable=False),
        Column("template_key", Text, nullable=False),
        Column("parameters", JSONB, nullable=False, comment="ids, codes and links only"),
        Column("notification_id", Text, comment="the inbox item it tells of; NULL: a digest"),
        Column("status", Text, nullable=False),
        Column("attempts", Integer, nullable=False, server_default=text("0")),
        Column("next_attempt_at", DateTime(timezone=True)),
        Column("last_error", Text),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("sent_at", DateTime(timezone=True)),
        CheckConstraint("status IN ('queued', 'retrying', 'sent', 'failed')", name="status"),
        Index(
            "ix_email_deliveries_due",
            "next_attempt_at",
            postgresql_where=text("status IN ('queued', 'retrying')"),
        ),
        Index("ix_email_deliveries_recipient_id_created_at", "recipient_id", "created_at"),
    )
