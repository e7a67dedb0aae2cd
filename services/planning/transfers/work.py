"""Due work: transfers awaiting an answer. The receiving worker (and the supervisors of their
team, who may answer for them) should answer within ANSWER_WITHIN; the requester sees what
they asked for as a reminder of lower priority."""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg

from services.planning.work.models import PRIORITY_APPROVAL, PRIORITY_DUE, WorkItem
from shared.auth.principal import Principal, Role

ANSWER_WITHIN = timedelta(days=2)

_PENDING = """
SELECT id, case_id, client_id, requested_at, requested_by = $2 AS outgoing
FROM case_transfers
WHERE organization_id = $1 AND status = 'pending'
  AND (to_worker_id = $2 OR requested_by = $2 OR ($3::text IS NOT NULL AND to_team_id = $3))
ORDER BY requested_at, id
"""


async def transfers_awaiting_answer(
    connection: asyncpg.Connection, principal: Principal, now: datetime
) -> list[WorkItem]:
    supervised_team = principal.team_id if principal.has(Role.SUPERVISOR) else None
    if not (principal.has(Role.CASEWORKER) or supervised_team is not None):
        return []
    rows = await connection.fetch(
        _PENDING, principal.organization_id, principal.subject, supervised_team
    )
    return [
        WorkItem(
            kind="transfer_outgoing" if row["outgoing"] else "transfer_incoming",
            case_id=row["case_id"],
            client_id=row["client_id"],
            subject_type="transfer",
            subject_id=row["id"],
            due_at=row["requested_at"] + ANSWER_WITHIN,
            overdue=row["requested_at"] + ANSWER_WITHIN < now,
            priority=PRIORITY_DUE if row["outgoing"] else PRIORITY_APPROVAL,
            reason="transfer_awaiting_their_answer" if row["outgoing"] else "transfer_to_answer",
        )
        for row in rows
    ]
