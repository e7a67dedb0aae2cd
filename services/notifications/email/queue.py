"""Putting an e-mail in the queue, in the caller's transaction."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg

WAKE_CHANNEL = "casework_email_deliveries"


async def enqueue_email(
    connection: asyncpg.Connection,
    *,
    recipient_id: str,
    organization_id: str,
    address: str,
    language: str,
    template_key: str,
    parameters: Mapping[str, Any],
    now: datetime,
    notification_id: str | None = None,
) -> UUID:
    """Queue a message; due at once (`-infinity`: before any clock's now). `parameters` are
    what the template shows: ids, codes and links, never client details."""
    email_id = uuid4()
    await connection.execute(
        "INSERT INTO email_deliveries (id, recipient_id, organization_id, address, language, "
        "template_key, parameters, notification_id, status, next_attempt_at, created_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'queued', '-infinity', $9)",
        email_id,
        recipient_id,
        organization_id,
        address,
        language,
        template_key,
        dict(parameters),
        notification_id,
        now,
    )
    await connection.execute("SELECT pg_notify($1, '')", WAKE_CHANNEL)
    return email_id
