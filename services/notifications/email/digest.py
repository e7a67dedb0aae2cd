"""The daily digest: one e-mail a day, at the hour the user chose in their time zone, counting
the notifications that arrived since the last digest and are still unread (none: no e-mail).

Each day's digest is a durable timer (shared/timers) of kind `email.digest`, keyed by
organisation, user and local date; firing it queues the e-mail and schedules the next day's,
in the same transaction, so a digest is neither lost nor sent twice across restarts. What the
timer needs (address, language, hour, time zone, since when) travels in its payload:
preferences call `schedule_digest` when a user turns the digest on or changes those, and
`cancel_digest` when they turn it off.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import asyncpg

from services.notifications.email.queue import enqueue_email
from shared.timers.schedule import Timer, schedule_timer

DIGEST_TIMER = "email.digest"
INBOX_PATH = "/inbox"


def next_digest_at(after: datetime, *, hour: int, timezone: str) -> datetime:
    """The first `hour`:00 in `timezone` strictly after `after` (aware, UTC)."""
    zone = ZoneInfo(timezone)
    local = after.astimezone(zone)
    candidate = datetime.combine(local.date(), time(hour), tzinfo=zone)
    while candidate <= local:
        candidate = datetime.combine(candidate.date() + timedelta(days=1), time(hour), tzinfo=zone)
    return candidate.astimezone(ZoneInfo("UTC"))


def _prefix(organization_id: str, user_id: str) -> str:
    return f"{organization_id}:{user_id}:"


async def cancel_digest(
    connection: asyncpg.Connection, *, organization_id: str, user_id: str
) -> int:
    status: str = await connection.execute(
        "DELETE FROM timers WHERE kind = $1 AND starts_with(key, $2) AND fired_at IS NULL",
        DIGEST_TIMER,
        _prefix(organization_id, user_id),
    )
    return int(status.split()[-1])


async def schedule_digest(
    connection: asyncpg.Connection,
    *,
    organization_id: str,
    user_id: str,
    email: str,
    language: str,
    hour: int,
    timezone: str,
    now: datetime,
    since: datetime | None = None,
) -> datetime:
    """(Re)schedule the user's next digest, replacing any pending one; when it is due."""
    if not 0 <= hour <= 23:
        raise ValueError("hour must be 0 to 23")
    await cancel_digest(connection, organization_id=organization_id, user_id=user_id)
    due = next_digest_at(now, hour=hour, timezone=timezone)
    local_day = due.astimezone(ZoneInfo(timezone)).date()
    await schedule_timer(
        connection,
        kind=DIGEST_TIMER,
        key=f"{_prefix(organization_id, user_id)}{local_day.isoformat()}",
        due_at=due,
        payload={
            "organization_id": organization_id,
            "user_id": user_id,
            "email": email,
            "language": language,
            "hour": hour,
            "timezone": timezone,
            "since": (since or now).isoformat(),
        },
    )
    return due


_UNREAD_SINCE = """
SELECT count(*) FROM notifications
WHERE organization_id = $1 AND recipient_id = $2 AND created_at > $3 AND created_at <= $4
  AND read_at IS NULL
"""


async def on_digest_timer(connection: asyncpg.Connection, timer: Timer) -> None:
    payload = timer.payload
    organization_id, user_id = str(payload["organization_id"]), str(payload["user_id"])
    since = datetime.fromisoformat(str(payload["since"]))
    unread = await connection.fetchval(_UNREAD_SINCE, organization_id, user_id, since, timer.due_at)
    if unread:
        await enqueue_email(
            connection,
            recipient_id=user_id,
            organization_id=organization_id,
            address=str(payload["email"]),
            language=str(payload["language"]),
            template_key="digest",
            parameters={"unread": int(unread), "path": INBOX_PATH},
            now=timer.due_at,
        )
    # Tomorrow's (another key: this one is being marked fired).
    hour, timezone = int(payload["hour"]), str(payload["timezone"])
    due = next_digest_at(timer.due_at, hour=hour, timezone=timezone)
    local_day = due.astimezone(ZoneInfo(timezone)).date()
    await schedule_timer(
        connection,
        kind=DIGEST_TIMER,
        key=f"{_prefix(organization_id, user_id)}{local_day.isoformat()}",
        due_at=due,
        payload={**payload, "since": timer.due_at.isoformat()},
    )
