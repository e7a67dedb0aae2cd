"""Due work from notes: drafts left unsigned for more than 48 hours (for their authors), and
signed notes awaiting a co-signature (for the supervisors of the case's team)."""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg

from services.planning.work.models import PRIORITY_APPROVAL, PRIORITY_DUE, WorkItem
from shared.auth.principal import Principal, Role

SIGN_WITHIN = timedelta(hours=48)
COSIGN_WITHIN = timedelta(days=2)


async def unsigned_drafts(
    connection: asyncpg.Connection, principal: Principal, now: datetime
) -> list[WorkItem]:
    """The caller's own drafts older than 48 hours, in cases of their organisation. Fresher
    drafts are work in progress, not due work."""
    rows = await connection.fetch(
        "SELECT n.id, n.case_id, n.client_id, n.created_at FROM notes n "
        "JOIN cases c ON c.id = n.case_id "
        "WHERE n.status = 'draft' AND n.author_id = $1 AND c.organization_id = $2 "
        "AND n.created_at < $3 ORDER BY n.created_at, n.id",
        principal.subject,
        principal.organization_id,
        now - SIGN_WITHIN,
    )
    return [
        WorkItem(
            kind="unsigned_note",
            case_id=row["case_id"],
            client_id=row["client_id"],
            subject_type="note",
            subject_id=row["id"],
            due_at=row["created_at"] + SIGN_WITHIN,
            overdue=True,
            priority=PRIORITY_DUE,
            reason="note_unsigned_48h",
        )
        for row in rows
    ]


async def notes_awaiting_cosignature(
    connection: asyncpg.Connection, principal: Principal, now: datetime
) -> list[WorkItem]:
    """Signed notes of kinds that need it, not co-signed yet, of the supervisor's team; never
    the supervisor's own (they cannot co-sign what they wrote)."""
    if not principal.has(Role.SUPERVISOR) or principal.team_id is None:
        return []
    rows = await connection.fetch(
        "SELECT n.id, n.case_id, n.client_id, n.signed_at FROM notes n "
        "JOIN cases c ON c.id = n.case_id "
        "WHERE n.needs_cosignature AND n.cosigned_at IS NULL AND n.status = 'signed' "
        "AND c.organization_id = $1 AND c.team_id = $2 AND n.author_id <> $3 "
        "ORDER BY n.signed_at, n.id",
        principal.organization_id,
        principal.team_id,
        principal.subject,
    )
    return [
        WorkItem(
            kind="note_cosignature",
            case_id=row["case_id"],
            client_id=row["client_id"],
            subject_type="note",
            subject_id=row["id"],
            due_at=row["signed_at"] + COSIGN_WITHIN,
            overdue=row["signed_at"] + COSIGN_WITHIN < now,
            priority=PRIORITY_APPROVAL,
            reason="note_awaiting_cosignature",
        )
        for row in rows
    ]
