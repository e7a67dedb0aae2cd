"""Due work: every source's items for the caller, overdue or due within the horizon, crisis
first, then by priority and due time."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import asyncpg

from services.planning.work.models import WorkItem, WorkSource
from shared.auth.principal import Principal


async def due_work(
    connection: asyncpg.Connection,
    principal: Principal,
    *,
    now: datetime,
    horizon: timedelta,
    sources: Sequence[WorkSource],
) -> list[WorkItem]:
    until = now + horizon
    items: list[WorkItem] = []
    for source in sources:  # one connection, one after the other: no second connection held
        items += [item for item in await source(connection, principal, now) if item.due_at <= until]
    return sorted(items, key=lambda i: (i.priority, i.due_at, str(i.case_id), i.kind))
