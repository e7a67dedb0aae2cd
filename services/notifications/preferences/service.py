"""Reading and replacing a user's preferences, and what they mean for one notification."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from services.notifications.inbox.models import Draft, Recipient
from services.notifications.preferences.models import (
    PreferencesPublic,
    PreferencesUpdate,
    QuietHours,
)

_COLUMNS = (
    "channels, quiet_start, quiet_end, quiet_time_zone, daily_digest, email, language, version"
)


def _public(row: asyncpg.Record) -> PreferencesPublic:
    quiet = None
    if row["quiet_start"] is not None:
        quiet = QuietHours(
            start=row["quiet_start"], end=row["quiet_end"], time_zone=row["quiet_time_zone"]
        )
    return PreferencesPublic(
        channels=row["channels"],
        quiet_hours=quiet,
        daily_digest=row["daily_digest"],
        email=row["email"],
        language=row["language"],
        version=row["version"],
    )


async def load(
    connection: asyncpg.Connection, *, organization_id: str, user_id: str, for_update: bool = False
) -> PreferencesPublic | None:
    row = await connection.fetchrow(
        f"SELECT {_COLUMNS} FROM preferences WHERE organization_id = $1 AND user_id = $2"
        + (" FOR UPDATE" if for_update else ""),
        organization_id,
        user_id,
    )
    return _public(row) if row else None


async def save(
    connection: asyncpg.Connection,
    *,
    organization_id: str,
    user_id: str,
    update: PreferencesUpdate,
    version: int,
    now: datetime,
) -> PreferencesPublic:
    quiet = update.quiet_hours
    parameters: list[Any] = [
        organization_id,
        user_id,
        update.channels,
        quiet.start if quiet else None,
        quiet.end if quiet else None,
        quiet.time_zone if quiet else None,
        update.daily_digest,
        update.email,
        update.language,
        version,
        now,
    ]
    row = await connection.fetchrow(
        f"""
        INSERT INTO preferences (organization_id, user_id, {_COLUMNS}, updated_at)
        VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7, $8, $9, $10, $11)
        ON CONFLICT (organization_id, user_id) DO UPDATE SET
            channels = EXCLUDED.channels, quiet_start = EXCLUDED.quiet_start,
            quiet_end = EXCLUDED.quiet_end, quiet_time_zone = EXCLUDED.quiet_time_zone,
            daily_digest = EXCLUDED.daily_digest, email = EXCLUDED.email,
            language = EXCLUDED.language, version = EXCLUDED.version,
            updated_at = EXCLUDED.updated_at
        RETURNING {_COLUMNS}
        """,
        *parameters,
    )
    return _public(row)


def recipient_of(
    organization_id: str, user_id: str, preferences: PreferencesPublic | None
) -> Recipient:
    if preferences is None:
        return Recipient(user_id=user_id, organization_id=organization_id)
    return Recipient(
        user_id=user_id,
        organization_id=organization_id,
        language=preferences.language,
        email=preferences.email,
    )


def channels_for(draft: Draft, preferences: PreferencesPublic | None) -> tuple[str, ...]:
    """The rule's channels narrowed to what the user chose for the kind (or else the urgency);
    the inbox always, since it is the record of what the user was told."""
    chosen = None
    if preferences is not None:
        chosen = preferences.channels.get(draft.kind, preferences.channels.get(draft.urgency))
    channels = [c for c in draft.channels if chosen is None or c in chosen]
    return tuple(dict.fromkeys(["inbox", *channels]))
