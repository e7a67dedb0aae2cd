"""HTTP for a case's timeline: thin; permissions in access.py."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Path, Query

from services.planning.cases.lookup import authorize_case
from services.planning.timeline.models import TimelineEntry
from services.planning.timeline.service import timeline_page
from shared.auth.guard import GuardDep
from shared.http.app import DatabaseDep
from shared.http.pagination import Cursor, Limit, Page, decode_keyset, keyset_page
from shared.http.problems import problem_responses
from shared.messaging.outbox import unit_of_work

router = APIRouter(prefix="/v1/cases", tags=["timeline"])


@router.get(
    "/{case_id}/timeline",
    response_model=Page[TimelineEntry],
    responses=problem_responses(400, 401, 403, 404, 422),
    summary="Everything that happened to a case, in order",
    description="Planning's own records (opened, assigned, reviews, held, closed, reopened, "
    "approvals) and what other services' events said as they arrived (assessed with its risk "
    "level, flags with severity only, consents, referrals): kinds, times, ids and codes, "
    "never personal data. Oldest first (`order=desc`: newest first), by (occurred_at, id).",
)
async def get_timeline(
    case_id: Annotated[UUID, Path()],
    guard: GuardDep,
    database: DatabaseDep,
    order: Annotated[Literal["asc", "desc"], Query()] = "asc",
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[TimelineEntry]:
    after = decode_keyset(cursor) if cursor else None
    async with unit_of_work(database) as uow:
        grant, case = await authorize_case(guard, uow.connection, "case.read", case_id)
        entries = await timeline_page(
            uow.connection, case.id, after=after, descending=order == "desc", limit=limit + 1
        )
        await guard.audit(uow, grant)
    return keyset_page(entries, limit, lambda e: (e.occurred_at, e.id))
