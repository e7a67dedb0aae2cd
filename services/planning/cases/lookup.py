"""Finding a case and checking the caller may act on it: the one way every case endpoint
(cases, approvals, plans, notes, transfers, timeline) reaches a case.

A case is in the caller's scope when its client is (the client access facts, as for every
client record) and it belongs to the caller's organisation (organisations are walls). A case
that does not exist and a case outside the scope are the same 404, audited.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from shared.audit.log import Outcome
from shared.auth.guard import Grant, Guard
from shared.http.problems import not_found

CASE_COLUMNS = (
    "id, client_id, organization_id, team_id, worker_id, status, status_before_hold, risk_level, "
    "preferred_language, source, assessment_id, opened_by, opened_at, closed_at, closed_by, "
    "closure_reason, destination_code, next_review_due_at, last_contact_at, version, updated_at"
)


@dataclass(frozen=True)
class Case:
    """One row of `cases`."""

    id: UUID
    client_id: UUID
    organization_id: str
    team_id: str | None
    worker_id: str | None
    status: str
    status_before_hold: str | None
    risk_level: str | None
    preferred_language: str | None
    source: str
    assessment_id: UUID | None
    opened_by: str
    opened_at: datetime
    closed_at: datetime | None
    closed_by: str | None
    closure_reason: str | None
    destination_code: str | None
    next_review_due_at: datetime | None
    last_contact_at: datetime | None
    version: int
    updated_at: datetime

    @property
    def etag(self) -> str:
        return f'"{self.version}"'

    @classmethod
    def of(cls, row: asyncpg.Record) -> Case:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


async def load_case(
    connection: asyncpg.Connection, case_id: UUID, *, lock: bool = False
) -> Case | None:
    """The case, or None; `lock` holds its row until the transaction ends (FOR UPDATE)."""
    row = await connection.fetchrow(
        f"SELECT {CASE_COLUMNS} FROM cases WHERE id = $1" + (" FOR UPDATE" if lock else ""),
        case_id,
    )
    return Case.of(row) if row else None


async def authorize_case(
    guard: Guard, connection: asyncpg.Connection, action: str, case_id: UUID, *, lock: bool = False
) -> tuple[Grant, Case]:
    """The grant for `action` on the case and the case itself; 404 (audited) when there is no
    such case or it is outside the caller's scope or organisation; 403 when the caller's roles
    never allow the action."""
    case = await load_case(connection, case_id, lock=lock)
    if case is None:
        grant = await guard.require(action, resource_type="case", resource_id=str(case_id))
        raise await guard.refuse(grant, not_found("case"), Outcome.NOT_FOUND)
    grant = await guard.authorize_client(
        connection, action, case.client_id, resource_type="case", resource_id=str(case_id)
    )
    if case.organization_id != guard.principal.organization_id:
        raise await guard.refuse(grant, not_found("case"))
    return grant, case
