"""Telling a subscription's creator that it was disabled after its deliveries kept failing: an
inbox notification (high urgency: an agency system stopped hearing from Casework), in the
transaction that disabled it."""

from __future__ import annotations

import asyncpg

from services.notifications.inbox.models import Draft, Recipient, Urgency
from services.notifications.inbox.service import deliver
from services.notifications.webhooks.sender import Disabled

KIND = "webhook_disabled"


async def tell_owner(connection: asyncpg.Connection, disabled: Disabled) -> None:
    await deliver(
        connection,
        recipient=Recipient(user_id=disabled.created_by, organization_id=disabled.organization_id),
        draft=Draft(
            kind=KIND,
            subject_type="webhook",
            subject_id=str(disabled.subscription_id),
            client_id=None,
            urgency=Urgency.HIGH,
            message_key="webhook.disabled",
            parameters={
                "webhook_id": str(disabled.subscription_id),
                "delivery_id": str(disabled.delivery_id),
            },
            rule_id="webhook-disabled",
            source_event_id=f"webhook-disabled:{disabled.subscription_id}:{disabled.at.isoformat()}",
            channels=("inbox",),
        ),
        now=disabled.at,
    )
