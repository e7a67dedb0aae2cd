"""Webhook subscriptions and their delivery log: the decisions and the SQL.

Every query names the caller's organisation: a subscription of another organisation does not
exist for the caller. Deleted subscriptions are kept (their deliveries are the record of what
went where) but no longer shown.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID, uuid4

import asyncpg

from services.notifications.webhooks.fanout import WAKE_CHANNEL
from services.notifications.webhooks.models import (
    Attempt,
    DeliveryPublic,
    SubscriptionState,
    WebhookCreate,
    WebhookPatch,
    WebhookPublic,
)
from services.notifications.webhooks.secrets_at_rest import seal
from services.notifications.webhooks.signing import new_secret
from shared.crypto.sealed import SealingKeys

_COLUMNS = (
    "id, organization_id, url, event_types, description, state, disabled_reason, disabled_at, "
    "created_by, created_at, updated_at, version"
)
_DELIVERY_COLUMNS = (
    "id, subscription_id, event_id, event_type, state, attempts, "
    "nullif(next_attempt_at, '-infinity') AS next_attempt_at, last_status_code, last_error, "
    "created_at, delivered_at"
)


def _public(row: asyncpg.Record) -> WebhookPublic:
    return WebhookPublic.model_validate(dict(row))


async def create(
    connection: asyncpg.Connection,
    *,
    organization_id: str,
    created_by: str,
    data: WebhookCreate,
    keys: SealingKeys,
    now: datetime,
) -> tuple[WebhookPublic, str]:
    """The new subscription and its secret (the only time it is seen in clear: it is stored
    sealed)."""
    subscription_id = uuid4()
    secret = new_secret()
    row = await connection.fetchrow(
        f"INSERT INTO webhook_subscriptions (id, organization_id, url, event_types, description, "
        f"secret, state, created_by, created_at, updated_at) "
        f"VALUES ($1, $2, $3, $4, $5, $6, 'active', $7, $8, $8) RETURNING {_COLUMNS}",
        subscription_id,
        organization_id,
        data.url,
        data.event_types,
        data.description,
        seal(keys, secret, subscription_id=subscription_id),
        created_by,
        now,
    )
    return _public(row), secret


async def get(
    connection: asyncpg.Connection, *, organization_id: str, subscription_id: UUID
) -> WebhookPublic | None:
    row = await connection.fetchrow(
        f"SELECT {_COLUMNS} FROM webhook_subscriptions "
        "WHERE id = $1 AND organization_id = $2 AND deleted_at IS NULL",
        subscription_id,
        organization_id,
    )
    return _public(row) if row else None


async def list_subscriptions(
    connection: asyncpg.Connection,
    *,
    organization_id: str,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> list[WebhookPublic]:
    rows = await connection.fetch(
        f"SELECT {_COLUMNS} FROM webhook_subscriptions "
        "WHERE organization_id = $1 AND deleted_at IS NULL "
        "AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3)) "
        "ORDER BY created_at, id LIMIT $4",
        organization_id,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
    return [_public(row) for row in rows]


async def update(
    connection: asyncpg.Connection,
    *,
    current: WebhookPublic,
    patch: WebhookPatch,
    now: datetime,
) -> WebhookPublic:
    fields = patch.model_fields_set
    state = patch.state if "state" in fields and patch.state is not None else current.state
    enabling = state is SubscriptionState.ACTIVE and current.state is SubscriptionState.DISABLED
    disabling = state is SubscriptionState.DISABLED and current.state is SubscriptionState.ACTIVE
    row = await connection.fetchrow(
        f"UPDATE webhook_subscriptions SET url = $3, event_types = $4, description = $5, "
        f"state = $6, disabled_reason = CASE WHEN $7 THEN 'by-owner' WHEN $8 THEN NULL "
        f"ELSE disabled_reason END, disabled_at = CASE WHEN $7 THEN $9 WHEN $8 THEN NULL "
        f"ELSE disabled_at END, updated_at = $9, version = version + 1 "
        f"WHERE id = $1 AND organization_id = $2 RETURNING {_COLUMNS}",
        current.id,
        current.organization_id,
        patch.url if "url" in fields and patch.url is not None else current.url,
        patch.event_types
        if "event_types" in fields and patch.event_types is not None
        else current.event_types,
        patch.description if "description" in fields else current.description,
        state.value,
        disabling,
        enabling,
        now,
    )
    if disabling:
        await fail_waiting(connection, current.id, "the subscription was disabled by its owner")
    return _public(row)


async def fail_waiting(connection: asyncpg.Connection, subscription_id: UUID, reason: str) -> None:
    await connection.execute(
        "UPDATE webhook_deliveries SET state = 'failed', next_attempt_at = NULL, last_error = $2 "
        "WHERE subscription_id = $1 AND state IN ('pending', 'retrying')",
        subscription_id,
        reason,
    )


async def delete(connection: asyncpg.Connection, *, current: WebhookPublic, now: datetime) -> None:
    await connection.execute(
        "UPDATE webhook_subscriptions SET deleted_at = $2, updated_at = $2, "
        "version = version + 1 WHERE id = $1",
        current.id,
        now,
    )
    await fail_waiting(connection, current.id, "the subscription was deleted")


async def rotate_secret(
    connection: asyncpg.Connection,
    *,
    current: WebhookPublic,
    previous_valid: timedelta,
    keys: SealingKeys,
    now: datetime,
) -> tuple[WebhookPublic, str]:
    """The new secret, stored sealed; the previous one (sealed as it was) signs too until
    `previous_valid` has passed."""
    secret = new_secret()
    row = await connection.fetchrow(
        f"UPDATE webhook_subscriptions SET previous_secret = secret, previous_secret_until = $2, "
        f"secret = $3, updated_at = $4, version = version + 1 WHERE id = $1 RETURNING {_COLUMNS}",
        current.id,
        now + previous_valid,
        seal(keys, secret, subscription_id=current.id),
        now,
    )
    return _public(row), secret


async def _attempts(
    connection: asyncpg.Connection, delivery_ids: list[UUID]
) -> dict[UUID, list[Attempt]]:
    rows = await connection.fetch(
        "SELECT delivery_id, attempt, attempted_at, status_code, error, duration_ms "
        "FROM webhook_attempts WHERE delivery_id = ANY($1::uuid[]) "
        "ORDER BY delivery_id, attempt DESC",
        delivery_ids,
    )
    found: dict[UUID, list[Attempt]] = {}
    for row in rows:
        found.setdefault(row["delivery_id"], []).append(
            Attempt.model_validate({k: v for k, v in dict(row).items() if k != "delivery_id"})
        )
    return found


async def list_deliveries(
    connection: asyncpg.Connection,
    *,
    subscription_id: UUID,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> list[DeliveryPublic]:
    """Newest first, each with its attempts."""
    rows = await connection.fetch(
        f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries WHERE subscription_id = $1 "
        "AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3)) "
        "ORDER BY created_at DESC, id DESC LIMIT $4",
        subscription_id,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
    attempts = await _attempts(connection, [row["id"] for row in rows])
    return [
        DeliveryPublic.model_validate({**dict(row), "attempt_log": attempts.get(row["id"], [])})
        for row in rows
    ]


async def get_delivery(
    connection: asyncpg.Connection, *, subscription_id: UUID, delivery_id: UUID
) -> DeliveryPublic | None:
    row = await connection.fetchrow(
        f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries "
        "WHERE id = $1 AND subscription_id = $2",
        delivery_id,
        subscription_id,
    )
    if row is None:
        return None
    attempts = await _attempts(connection, [delivery_id])
    return DeliveryPublic.model_validate(
        {**dict(row), "attempt_log": attempts.get(delivery_id, [])}
    )


async def redeliver(connection: asyncpg.Connection, *, delivery_id: UUID) -> None:
    """Due again at once, with a new retry window; the attempt log goes on."""
    await connection.execute(
        "UPDATE webhook_deliveries SET state = CASE WHEN attempts = 0 THEN 'pending' "
        "ELSE 'retrying' END, next_attempt_at = '-infinity', retry_since = NULL "
        "WHERE id = $1",
        delivery_id,
    )
    await connection.execute("SELECT pg_notify($1, '')", WAKE_CHANNEL)
