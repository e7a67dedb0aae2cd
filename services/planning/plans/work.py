"""Due work from plans: versions awaiting approval, for the supervisors of the case's team
(the requester excepted: they cannot approve their own request)."""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg

from services.planning.work.models import PRIORITY_APPROVAL, WorkItem
from shared.auth.principal import Principal, Role

# A plan awaiting approval should be decided within two days of the request.
DECIDE_WITHIN = timedelta(days=2)


async def plans_awaiting_approval(
    connection: asyncpg.Connection, principal: Principal, now: datetime
) -> list[WorkItem]:
    if not principal.has(Role.SUPERVISOR) or principal.team_id is None:
        return []
    rows = await connection.fetch(
        "SELECT p.id, p.case_id, p.client_id, a.requested_at FROM plans p "
        "JOIN approvals a ON a.id = p.approval_id JOIN cases c ON c.id = p.case_id "
        "WHERE p.status = 'awaiting_approval' AND a.status = 'requested' "
        "AND c.organization_id = $1 AND c.team_id = $2 AND a.requested_by <> $3 "
        "ORDER BY a.requested_at, p.id",
        principal.organization_id,
        principal.team_id,
        principal.subject,
    )
    return [
        WorkItem(
            kind="plan_approval",
            case_id=row["case_id"],
            client_id=row["client_id"],
            subject_type="plan",
            subject_id=row["id"],
            due_at=row["requested_at"] + DECIDE_WITHIN,
            overdue=row["requested_at"] + DECIDE_WITHIN < now,
            priority=PRIORITY_APPROVAL,
            reason="plan_awaiting_approval",
        )
        for row in rows
    ]
