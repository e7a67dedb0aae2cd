"""Reading and replacing a user's preferences, and what they mean for one notification."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from services.notifications.email.digest import cancel_digest, schedule_digest
from services.notifications.inbox.models import Draft, Recipient
from services.notifications.preferences.models import (
    PreferencesPublic,
    PreferencesUpdate,
    QuietHours,
)

_COLUMNS = (
    "channels, quiet_start, quiet_end, quiet_time_zone, daily_digest, digest_hour, "
    "digest_time_zone, email, language, version"
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
        digest_hour=row["digest_hour"],
        digest_time_zone=row["digest_time_zone"],
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
        update.digest_hour,
        update.digest_time_zone,
        update.email,
        update.language,
        version,
        now,
    ]
    row = await connection.fetchrow(
        f"""
        INSERT INTO preferences (organization_id, user_id, {_COLUMNS}, updated_at)
        VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
        ON CONFLICT (organization_id, user_id) DO UPDATE SET
            channels = EXCLUDED.channels, quiet_start = EXCLUDED.quiet_start,
            quiet_end = EXCLUDED.quiet_end, quiet_time_zone = EXCLUDED.quiet_time_zone,
            daily_digest = EXCLUDED.daily_digest, digest_hour = EXCLUDED.digest_hour,
            digest_time_zone = EXCLUDED.digest_time_zone, email = EXCLUDED.email,
            language = EXCLUDED.language, version = EXCLUDED.version,
            updated_at = EXCLUDED.updated_at
        RETURNING {_COLUMNS}
        """,
        *parameters,
    )
    saved = _public(row)
    await _keep_digest(connection, organization_id=organization_id, user_id=user_id,
                       preferences=saved, now=now)  # fmt: skip
    return saved


async def _keep_digest(
    connection: asyncpg.Connection,
    *,
    organization_id: str,
    user_id: str,
    preferences: PreferencesPublic,
    now: datetime,
) -> None:
    """The user's next digest follows what they just saved: (re)scheduled at their hour while
    they want it and have an address, cancelled otherwise (same transaction)."""
    if preferences.daily_digest and preferences.email:
        await schedule_digest(
            connection,
            organization_id=organization_id,
            user_id=user_id,
            email=preferences.email,
            language=preferences.language,
            hour=preferences.digest_hour,
            timezone=preferences.digest_time_zone,
            now=now,
        )
    else:
        await cancel_digest(connection, organization_id=organization_id, user_id=user_id)


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
