"""Opening a case: by hand, from an assessment's needs, or by a crisis.

At most one case is open per client and organisation (a partial unique index): opening when
one is open writes nothing and returns None, which is also what makes an assessment delivered
twice (or republished after a risk override) open one case only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID, uuid4

import asyncpg

from services.planning.cases.lookup import CASE_COLUMNS, Case
from services.planning.reviews.models import ReviewReason
from services.planning.reviews.service import schedule_review
from services.planning.timeline.service import record_timeline
from shared.events.assessment import RiskLevel
from shared.events.planning import CaseOpened, CaseStatus
from shared.messaging.outbox import UnitOfWork

CaseSource = Literal["manual", "assessment", "crisis"]
SYSTEM = "system"


async def open_case(
    uow: UnitOfWork,
    *,
    client_id: UUID,
    organization_id: str,
    team_id: str | None,
    worker_id: str | None,
    source: CaseSource,
    opened_by: str,
    now: datetime,
    assessment_id: UUID | None = None,
    risk_level: RiskLevel | None = None,
    preferred_language: str | None = None,
    review_reason: ReviewReason | None = "cadence",
) -> Case | None:
    """Open the case (CaseOpened, timeline, first review by the cadence unless
    `review_reason` is None: the caller schedules it), or None when one is open already."""
    row = await uow.connection.fetchrow(
        "INSERT INTO cases (id, client_id, organization_id, team_id, worker_id, status, "
        "risk_level, preferred_language, source, assessment_id, opened_by, opened_at, "
        "updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) "
        "ON CONFLICT (client_id, organization_id) WHERE status <> 'closed' DO NOTHING "
        f"RETURNING {CASE_COLUMNS}",
        uuid4(),
        client_id,
        organization_id,
        team_id,
        worker_id,
        CaseStatus.OPEN.value,
        risk_level.value if risk_level else None,
        preferred_language,
        source,
        assessment_id,
        opened_by,
        now,
    )
    if row is None:
        return None
    case = Case.of(row)
    uow.publish(
        CaseOpened(
            case_id=case.id,
            client_id=client_id,
            organization_id=organization_id,
            team_id=team_id,
            worker_id=worker_id,
            opened_by=opened_by,
            opened_at=now,
            source=source,
            assessment_id=assessment_id,
        )
    )
    await record_timeline(
        uow.connection,
        case_id=case.id,
        client_id=client_id,
        kind="case.opened",
        occurred_at=now,
        subject_type="case",
        subject_id=case.id,
        codes={"source": source},
    )
    if review_reason is not None:
        await schedule_review(uow, case, reason=review_reason, now=now)
    return case


async def open_case_of(
    connection: asyncpg.Connection, client_id: UUID, organization_id: str, *, lock: bool = False
) -> Case | None:
    """The client's open case in the organisation, if any."""
    row = await connection.fetchrow(
        f"SELECT {CASE_COLUMNS} FROM cases WHERE client_id = $1 AND organization_id = $2 "
        "AND status <> 'closed'" + (" FOR UPDATE" if lock else ""),
        client_id,
        organization_id,
    )
    return Case.of(row) if row else None


async def case_for_client(connection: asyncpg.Connection, client_id: UUID) -> Case | None:
    """The case another service's event about the client belongs to: the open one, else the
    latest."""
    row = await connection.fetchrow(
        f"SELECT {CASE_COLUMNS} FROM cases WHERE client_id = $1 "
        "ORDER BY (status <> 'closed') DESC, opened_at DESC, id DESC LIMIT 1",
        client_id,
    )
    return Case.of(row) if row else None
