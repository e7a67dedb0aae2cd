"""The channel registry: how a stored notification reaches its recipient.

Every notification is stored first (inbox/service.py `deliver`): the inbox is the record of
what each person was told. Then each channel its rule and the recipient's preferences name is
called, in the same transaction: a channel that sends later (e-mail, with retries) writes what
it will send there, so nothing is sent for a notification that was never committed.

`inbox` is built in: it wakes the recipient's open live streams (NOTIFY at commit). Channels
register here by name; a rule may only name a registered channel (rules/validation.py).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import asyncpg

from services.notifications.inbox.models import Notification, Recipient

ChannelDispatch = Callable[[asyncpg.Connection, Notification, Recipient], Awaitable[None]]

INBOX_CHANNEL = "notifications_inbox"


def inbox_wake_payload(organization_id: str, recipient_id: str) -> str:
    return json.dumps([organization_id, recipient_id])


async def inbox(connection: asyncpg.Connection, notification: Notification, _r: Recipient) -> None:
    """Wake the recipient's live streams once this transaction commits."""
    await connection.execute(
        "SELECT pg_notify($1, $2)",
        INBOX_CHANNEL,
        inbox_wake_payload(notification.organization_id, notification.recipient_id),
    )


CHANNELS: dict[str, ChannelDispatch] = {
    "inbox": inbox,
}
