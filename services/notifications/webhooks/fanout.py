"""The consumer's side of webhooks: for each subscribed event, one delivery row per
subscription that may receive it, in the consumer's transaction (outbox style: the event is
handled once, its deliveries exist exactly when it was), then a NOTIFY wakes the sender.

A new delivery is due at once: its next_attempt_at is `-infinity`, earlier than any clock's
now (the worker's clock may be a test's frozen one; the consumer has none)."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import asyncpg

from services.notifications.webhooks import audience
from services.notifications.webhooks.catalogue import DELIVERABLE, cloud_event
from services.notifications.webhooks.models import DeliveryState
from shared.events.envelope import Event
from shared.messaging.consumer import Handler

WAKE_CHANNEL = "casework_webhook_deliveries"

_SUBSCRIBERS = """
SELECT id, organization_id FROM webhook_subscriptions
WHERE state = 'active' AND deleted_at IS NULL AND event_types @> ARRAY[$1]::text[]
ORDER BY id
"""

_INSERT = """
INSERT INTO webhook_deliveries (id, subscription_id, organization_id, event_id, event_type,
    client_id, consent_purpose, payload, state, next_attempt_at, created_at)
SELECT d.id, d.subscription_id, d.organization_id, $1, $2, $3, d.consent_purpose, $4, $5,
    '-infinity', $6
FROM unnest($7::uuid[], $8::uuid[], $9::text[], $10::text[])
    AS d(id, subscription_id, organization_id, consent_purpose)
ON CONFLICT (subscription_id, event_id) DO NOTHING
"""


async def fan_out(connection: asyncpg.Connection, event: Event) -> None:
    subscribers = await connection.fetch(_SUBSCRIBERS, event.type)
    if not subscribers:
        return
    now = datetime.now(UTC)
    owned_by = await audience.owners(connection, event.data)
    admitted: list[tuple[asyncpg.Record, str | None]] = []
    decided: dict[str, audience.Admission | None] = {}
    for subscriber in subscribers:
        organization_id = subscriber["organization_id"]
        if organization_id not in decided:
            decided[organization_id] = await audience.admit(
                connection,
                event_type=event.type,
                data=event.data,
                owned_by=owned_by,
                subscriber=organization_id,
                on=now.date(),
            )
        admission = decided[organization_id]
        if admission is not None:
            purpose = admission.consent_purpose
            admitted.append((subscriber, purpose.value if purpose else None))
    if not admitted:
        return
    await connection.execute(
        _INSERT,
        event.id,
        event.type,
        getattr(event.data, "client_id", None),
        cloud_event(event),
        DeliveryState.PENDING.value,
        now,
        [uuid4() for _ in admitted],
        [subscriber["id"] for subscriber, _ in admitted],
        [subscriber["organization_id"] for subscriber, _ in admitted],
        [purpose for _, purpose in admitted],
    )
    await connection.execute("SELECT pg_notify($1, '')", WAKE_CHANNEL)


WEBHOOK_HANDLERS: dict[str, Handler] = dict.fromkeys(DELIVERABLE, fan_out)
