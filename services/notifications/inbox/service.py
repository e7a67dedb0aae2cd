"""Storing notifications for their recipients, and reading and marking a recipient's inbox."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from services.notifications.channels import CHANNELS
from services.notifications.inbox.models import Draft, Notification, Recipient, Urgency

log = logging.getLogger(__name__)

NOTIFICATION_COLUMNS = (
    "id, organization_id, recipient_id, seq, kind, subject_type, subject_id, client_id, urgency, "
    "message_key, parameters, rule_id, source_event_id, created_at, read_at"
)

# The row lock on the recipient's inbox_state is held until commit: one recipient's deliveries
# commit in seq order, which is what lets a stream resume "after seq n" without a gap.
_NEXT_SEQ = """
INSERT INTO inbox_state AS s (organization_id, recipient_id, last_seq, unread_count)
VALUES ($1, $2, 1, 0)
ON CONFLICT (organization_id, recipient_id) DO UPDATE SET last_seq = s.last_seq + 1
RETURNING s.last_seq
"""
_INSERT = f"""
INSERT INTO notifications ({NOTIFICATION_COLUMNS})
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb, $12, $13, $14, NULL)
ON CONFLICT (organization_id, recipient_id, source_event_id) DO NOTHING
RETURNING {NOTIFICATION_COLUMNS}
"""
# Marking read takes the same row lock first: one recipient's changes queue behind each other
# (two "mark all read" at once would otherwise lock the same rows in different orders).
_LOCK_STATE = """
SELECT 1 FROM inbox_state WHERE organization_id = $1 AND recipient_id = $2 FOR UPDATE
"""
_COUNT_UNREAD = """
UPDATE inbox_state SET unread_count = unread_count + $3
WHERE organization_id = $1 AND recipient_id = $2
"""


def notification_of(row: asyncpg.Record) -> Notification:
    values: dict[str, Any] = dict(row)
    values["urgency"] = Urgency(values["urgency"])
    return Notification(**values)


async def deliver(
    connection: asyncpg.Connection, *, recipient: Recipient, draft: Draft, now: datetime
) -> Notification | None:
    """Store the notification for the recipient and hand it to its channels, in the caller's
    transaction. None when the recipient already has it (the same source event or timer)."""
    seq = await connection.fetchval(_NEXT_SEQ, recipient.organization_id, recipient.user_id)
    row = await connection.fetchrow(
        _INSERT,
        uuid4(),
        recipient.organization_id,
        recipient.user_id,
        seq,
        draft.kind,
        draft.subject_type,
        draft.subject_id,
        draft.client_id,
        draft.urgency.value,
        draft.message_key,
        draft.parameters,
        draft.rule_id,
        draft.source_event_id,
        now,
    )
    if row is None:
        return None  # a duplicate: its seq is skipped, which a stream does not notice
    await connection.execute(_COUNT_UNREAD, recipient.organization_id, recipient.user_id, 1)
    notification = notification_of(row)
    for name in ("inbox", *(c for c in draft.channels if c != "inbox")):
        dispatch = CHANNELS.get(name)
        if dispatch is None:
            log.warning(
                "a rule names a channel this service does not have", extra={"channel": name}
            )
            continue
        await dispatch(connection, notification, recipient)
    return notification


async def list_inbox(
    connection: asyncpg.Connection,
    *,
    organization_id: str,
    recipient_id: str,
    before_seq: int | None,
    unread_only: bool,
    limit: int,
) -> list[Notification]:
    """Newest first, `limit` rows after the cursor (seq below `before_seq`)."""
    rows = await connection.fetch(
        f"SELECT {NOTIFICATION_COLUMNS} FROM notifications "
        "WHERE organization_id = $1 AND recipient_id = $2 AND seq < $3 "
        + ("AND read_at IS NULL " if unread_only else "")
        + "ORDER BY seq DESC LIMIT $4",
        organization_id,
        recipient_id,
        before_seq if before_seq is not None else 2**62,
        limit,
    )
    return [notification_of(row) for row in rows]


async def after_seq(
    connection: asyncpg.Connection,
    *,
    organization_id: str,
    recipient_id: str,
    seq: int,
    limit: int,
) -> list[Notification]:
    """The recipient's notifications after seq, oldest first (the stream's replay)."""
    rows = await connection.fetch(
        f"SELECT {NOTIFICATION_COLUMNS} FROM notifications "
        "WHERE organization_id = $1 AND recipient_id = $2 AND seq > $3 ORDER BY seq LIMIT $4",
        organization_id,
        recipient_id,
        seq,
        limit,
    )
    return [notification_of(row) for row in rows]


async def unread_count(
    connection: asyncpg.Connection, *, organization_id: str, recipient_id: str
) -> int:
    count = await connection.fetchval(
        "SELECT unread_count FROM inbox_state WHERE organization_id = $1 AND recipient_id = $2",
        organization_id,
        recipient_id,
    )
    return int(count or 0)


async def mark_read(
    connection: asyncpg.Connection,
    *,
    organization_id: str,
    recipient_id: str,
    notification_id: UUID,
    now: datetime,
) -> Notification | None:
    """Mark one of the recipient's notifications read (no change when it was); None when the
    recipient has no such notification."""
    await connection.execute(_LOCK_STATE, organization_id, recipient_id)
    row = await connection.fetchrow(
        "UPDATE notifications SET read_at = $4 "
        "WHERE organization_id = $1 AND recipient_id = $2 AND id = $3 AND read_at IS NULL "
        f"RETURNING {NOTIFICATION_COLUMNS}",
        organization_id,
        recipient_id,
        notification_id,
        now,
    )
    if row is not None:
        await connection.execute(_COUNT_UNREAD, organization_id, recipient_id, -1)
        return notification_of(row)
    row = await connection.fetchrow(
        f"SELECT {NOTIFICATION_COLUMNS} FROM notifications "
        "WHERE organization_id = $1 AND recipient_id = $2 AND id = $3",
        organization_id,
        recipient_id,
        notification_id,
    )
    return notification_of(row) if row else None


async def mark_read_up_to(
    connection: asyncpg.Connection,
    *,
    organization_id: str,
    recipient_id: str,
    up_to_seq: int,
    now: datetime,
) -> int:
    """Mark every unread notification of the recipient up to and including seq; how many."""
    await connection.execute(_LOCK_STATE, organization_id, recipient_id)
    status: str = await connection.execute(
        "UPDATE notifications SET read_at = $4 "
        "WHERE organization_id = $1 AND recipient_id = $2 AND seq <= $3 AND read_at IS NULL",
        organization_id,
        recipient_id,
        up_to_seq,
        now,
    )
    marked = int(status.split()[-1])
    if marked:
        await connection.execute(_COUNT_UNREAD, organization_id, recipient_id, -marked)
    return marked
