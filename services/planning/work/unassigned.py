"""Due work: open cases nobody is assigned to, for the supervisors of the case's team."""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg

from services.planning.work.models import PRIORITY_ASSIGNMENT, WorkItem
from shared.auth.principal import Principal, Role

# An unassigned case should have a worker within a day of opening.
ASSIGN_WITHIN = timedelta(days=1)


async def unassigned_cases(
    connection: asyncpg.Connection, principal: Principal, now: datetime
) -> list[WorkItem]:
    if not principal.has(Role.SUPERVISOR) or principal.team_id is None:
        return []
    rows = await connection.fetch(
        "SELECT id, client_id, opened_at, source FROM cases "
        "WHERE organization_id = $1 AND team_id = $2 AND worker_id IS NULL "
        "AND status <> 'closed' ORDER BY opened_at, id",
        principal.organization_id,
        principal.team_id,
    )
    return [
        WorkItem(
            kind="unassigned_case",
            case_id=row["id"],
            client_id=row["client_id"],
            subject_type="case",
            subject_id=row["id"],
            due_at=row["opened_at"] + ASSIGN_WITHIN,
            overdue=row["opened_at"] + ASSIGN_WITHIN < now,
            priority=PRIORITY_ASSIGNMENT,
            reason="case_unassigned",
        )
        for row in rows
    ]
