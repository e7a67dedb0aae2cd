"""The notification model: one row per recipient of each notification, which is their inbox.

A notification names the kind of thing and its id and says what happened through a message key
and parameters (ids and codes only, never client personal data): the reader follows the ids to
the owning service, where access is checked. `seq` numbers each recipient's notifications in
commit order (inbox_state's row lock is held until commit), so it is the stream's event id and
the inbox's cursor, and a client resuming after seq n misses nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import UUID as PgUUID


class Urgency(StrEnum):
    CRISIS = "crisis"  # someone must act now: never delayed, escalated until acknowledged
    HIGH = "high"  # never delayed by quiet hours
    NORMAL = "normal"
    LOW = "low"


# Delivered at once whatever the recipient's quiet hours.
URGENT = frozenset({Urgency.CRISIS, Urgency.HIGH})


def notifications_table(metadata: MetaData) -> Table:
    return Table(
        "notifications",
        metadata,
        Column("id", PgUUID(as_uuid=True), primary_key=True),
        Column("organization_id", Text, nullable=False),
        Column("recipient_id", Text, nullable=False, comment="the recipient's user id (sub)"),
        Column("seq", BigInteger, nullable=False, comment="per recipient, in commit order"),
        Column("kind", Text, nullable=False, comment="what happened, e.g. crisis_flag"),
        Column("subject_type", Text, nullable=False, comment="case, referral, flag, review, …"),
        Column("subject_id", Text, nullable=False),
        Column("client_id", PgUUID(as_uuid=True)),
        Column("urgency", Text, nullable=False),
        Column("message_key", Text, nullable=False),
        Column("parameters", JSONB, nullable=False, comment="ids and codes only"),
        Column("rule_id", Text, nullable=False),
        Column("source_event_id", Text, nullable=False, comment="event or timer it came from"),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("read_at", DateTime(timezone=True)),
        UniqueConstraint("organization_id", "recipient_id", "seq"),
        UniqueConstraint("organization_id", "recipient_id", "source_event_id"),
        Index(
            "ix_notifications_unread",
            "organization_id",
            "recipient_id",
            "seq",
            postgresql_where=text("read_at IS NULL"),
        ),
    )


def inbox_state_table(metadata: MetaData) -> Table:
    """Per recipient: the last seq handed out and how many notifications are unread. Its row
    lock orders one recipient's deliveries, so seq order is commit order."""
    return Table(
        "inbox_state",
        metadata,
        Column("organization_id", Text, nullable=False),
        Column("recipient_id", Text, nullable=False),
        Column("last_seq", BigInteger, nullable=False),
        Column("unread_count", BigInteger, nullable=False),
        PrimaryKeyConstraint("organization_id", "recipient_id"),
    )


def add_inbox_tables(metadata: MetaData) -> None:
    notifications_table(metadata)
    inbox_state_table(metadata)


@dataclass(frozen=True)
class Recipient:
    """Who a notification goes to, with what their preferences say channels need."""

    user_id: str
    organization_id: str
    language: str = "en"
    email: str | None = None


@dataclass(frozen=True)
class Notification:
    id: UUID
    organization_id: str
    recipient_id: str
    seq: int
    kind: str
    subject_type: str
    subject_id: str
    client_id: UUID | None
    urgency: Urgency
    message_key: str
    parameters: dict[str, Any]
    rule_id: str
    source_event_id: str
    created_at: datetime
    read_at: datetime | None


@dataclass(frozen=True)
class Draft:
    """A notification decided on, before it is numbered and stored for its recipient."""

    kind: str
    subject_type: str
    subject_id: str
    client_id: UUID | None
    urgency: Urgency
    message_key: str
    parameters: dict[str, Any]
    rule_id: str
    source_event_id: str
    channels: tuple[str, ...]


class InboxItem(BaseModel):
    """One notification as its recipient reads it: what happened and the ids to follow."""

    id: UUID
    seq: int = Field(description="The recipient's sequence number: the stream's event id.")
    kind: str = Field(examples=["crisis_flag"])
    subject_type: str = Field(examples=["flag"])
    subject_id: str
    client_id: UUID | None = Field(description="Read details through the owning service.")
    urgency: Urgency
    message_key: str
    message: str = Field(description="What happened, in the reader's language; ids only.")
    parameters: dict[str, Any]
    created_at: datetime
    read_at: datetime | None


class InboxPage(BaseModel):
    items: list[InboxItem]
    next_cursor: str | None = Field(description="Pass as `cursor` for older items.")
    unread_count: int = Field(description="Unread notifications in your whole inbox.")
