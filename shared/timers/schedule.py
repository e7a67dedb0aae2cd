"""Scheduling and cancelling timers, always in the caller's transaction: a timer exists exactly
when the change that asked for it was committed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg


@dataclass(frozen=True)
class Timer:
    kind: str
    key: str
    due_at: datetime
    payload: Mapping[str, Any]
    # Failed attempts before this one.
    attempts: int
    created_at: datetime


# Runs inside the transaction that marks the timer fired: what it writes (rows, outbox events,
# other timers) commits with the firing, or not at all.
TimerHandler = Callable[[asyncpg.Connection, Timer], Awaitable[None]]

_SCHEDULE = """
INSERT INTO timers (kind, key, due_at, payload)
VALUES ($1, $2, $3, $4::jsonb)
ON CONFLICT (kind, key) DO UPDATE SET
    due_at = excluded.due_at,
    payload = excluded.payload,
    attempts = 0,
    last_error = NULL,
    fired_at = NULL,
    parked_at = NULL
"""
_CANCEL = "DELETE FROM timers WHERE kind = $1 AND key = $2 AND fired_at IS NULL"


def _require_aware(due_at: datetime) -> None:
    if due_at.tzinfo is None or due_at.utcoffset() is None:
        raise ValueError("a timer's due_at must be timezone-aware")


async def schedule_timer(
    connection: asyncpg.Connection,
    *,
    kind: str,
    key: str,
    due_at: datetime,
    payload: Mapping[str, Any] | None = None,
) -> None:
    """Schedule (kind, key) at due_at. Scheduling it again moves it, replaces its payload and
    arms it afresh, even when it had fired or been parked."""
    _require_aware(due_at)
    await connection.execute(_SCHEDULE, kind, key, due_at, dict(payload or {}))


async def cancel_timer(connection: asyncpg.Connection, *, kind: str, key: str) -> bool:
    """Cancel a timer that has not fired yet; False when there was none to cancel."""
    status: str = await connection.execute(_CANCEL, kind, key)
    return status.split()[-1] != "0"
