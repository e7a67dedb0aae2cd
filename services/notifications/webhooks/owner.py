"""Telling a subscription's creator that it was disabled after its deliveries kept failing."""

from __future__ import annotations

import asyncpg

from services.notifications.webhooks.sender import Disabled


async def tell_owner(connection: asyncpg.Connection, disabled: Disabled) -> None:
    """Until the inbox exists, the subscription's recorded state (`disabled`,
    `deliveries-failing`, `disabled_at`) and the sender's log line are what tells."""
    del connection, disabled
