"""The `email` channel: a notification becomes a queued e-mail, in the transaction that stored
it (nothing is sent for a notification that was never committed).

The message says only that something arrived and how urgent it is, with a link to the item in
the frontend (`frontend_base_url` + `/inbox/<notification id>`), which leads to the record
where access is checked: no client details, no ids of clients in the body. A crisis uses the
`crisis` template; otherwise the template named like the notification's message key, or the
general one.
"""

from __future__ import annotations

import logging

import asyncpg

from services.notifications.email.queue import enqueue_email
from services.notifications.inbox.models import Notification, Recipient, Urgency

log = logging.getLogger(__name__)


def inbox_path(notification: Notification) -> str:
    return f"/inbox/{notification.id}"


async def email_channel(
    connection: asyncpg.Connection, notification: Notification, recipient: Recipient
) -> None:
    if not recipient.email:
        log.info(
            "no e-mail address in the recipient's preferences; inbox only",
            extra={"notification_id": str(notification.id)},
        )
        return
    template_key = "crisis" if notification.urgency is Urgency.CRISIS else notification.message_key
    await enqueue_email(
        connection,
        recipient_id=recipient.user_id,
        organization_id=recipient.organization_id,
        address=recipient.email,
        language=recipient.language,
        template_key=template_key,
        parameters={"path": inbox_path(notification), "urgency": notification.urgency.value},
        now=notification.created_at,
        notification_id=str(notification.id),
    )
