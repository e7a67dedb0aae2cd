"""Due work from reviews and crises.

- Reviews: the assigned worker's scheduled reviews; a supervisor also sees their team's
  overdue ones.
- Crises: a case with a crisis flag raised since its last completed review is on top of the
  assigned worker's work (priority 0); an unassigned one on top of its team's supervisors'.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from services.planning.work.models import PRIORITY_CRISIS, PRIORITY_DUE, PRIORITY_OVERDUE, WorkItem
from shared.auth.principal import Principal, Role


def _supervised_team(principal: Principal) -> str | None:
    return principal.team_id if principal.has(Role.SUPERVISOR) else None


async def reviews_due(
    connection: asyncpg.Connection, principal: Principal, now: datetime
) -> list[WorkItem]:
    rows = await connection.fetch(
        "SELECT r.id, r.case_id, r.client_id, r.due_at FROM reviews r "
        "JOIN cases c ON c.id = r.case_id "
        "WHERE r.status = 'scheduled' AND c.status <> 'closed' AND c.organization_id = $1 "
        "AND (c.worker_id = $2 OR ($3::text IS NOT NULL AND c.team_id = $3 AND r.due_at < $4)) "
        "ORDER BY r.due_at, r.id",
        principal.organization_id,
        principal.subject,
        _supervised_team(principal),
        now,
    )
    return [
        WorkItem(
            kind="review",
            case_id=row["case_id"],
            client_id=row["client_id"],
            subject_type="review",
            subject_id=row["id"],
            due_at=row["due_at"],
            overdue=row["due_at"] < now,
            priority=PRIORITY_OVERDUE if row["due_at"] < now else PRIORITY_DUE,
            reason="review_overdue" if row["due_at"] < now else "review_due",
        )
        for row in rows
    ]


async def crises(
    connection: asyncpg.Connection, principal: Principal, now: datetime
) -> list[WorkItem]:
    rows = await connection.fetch(
        "SELECT DISTINCT ON (c.id) c.id AS case_id, c.client_id, c.worker_id, cr.raised_at, "
        "cr.review_id FROM case_crises cr "
        "JOIN cases c ON c.id = cr.case_id "
        "JOIN reviews crisis_review ON crisis_review.id = cr.review_id "
        "WHERE c.status <> 'closed' AND c.organization_id = $1 "
        "AND (c.worker_id = $2 OR (c.worker_id IS NULL AND $3::text IS NOT NULL "
        "AND c.team_id = $3)) "
        "AND NOT EXISTS (SELECT 1 FROM reviews done WHERE done.case_id = c.id "
        "AND done.status = 'completed' AND done.scheduled_at >= crisis_review.scheduled_at) "
        "ORDER BY c.id, cr.raised_at",
        principal.organization_id,
        principal.subject,
        _supervised_team(principal),
    )
    return [
        WorkItem(
            kind="crisis",
            case_id=row["case_id"],
            client_id=row["client_id"],
            subject_type="review",
            subject_id=row["review_id"],
            due_at=row["raised_at"],
            overdue=row["raised_at"] < now,
            priority=PRIORITY_CRISIS,
            reason="crisis_unassigned" if row["worker_id"] is None else "crisis",
        )
        for row in rows
    ]
