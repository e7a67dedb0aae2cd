"""HTTP for the flag queue: the active flags across every client the caller may see."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from services.intake.assessments.flag_queue import QueueState, list_queue
from services.intake.assessments.models import FlagPublic
from shared.auth.guard import GuardDep
from shared.http.app import DatabaseDep
from shared.http.pagination import Cursor, Limit, Page, decode_keyset, keyset_page
from shared.http.problems import problem_responses
from shared.messaging.outbox import unit_of_work

router = APIRouter(prefix="/v1/flags", tags=["flags"])


@router.get(
    "",
    response_model=Page[FlagPublic],
    responses=problem_responses(400, 401, 403, 422),
    summary="The flag queue: active flags of every client you may see, oldest first",
    description="For a supervisor, the team's clients; for a worker, their caseload. "
    "`unacknowledged` (default) lists what nobody has acknowledged yet; `active` adds the "
    "acknowledged ones until they are resolved or expire. Each flag shown is audited on its "
    "client's record.",
)
async def list_flag_queue(
    guard: GuardDep,
    database: DatabaseDep,
    state: Annotated[QueueState, Query()] = "unacknowledged",
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[FlagPublic]:
    grant = await guard.require("flag.read", resource_type="flag")
    after = decode_keyset(cursor) if cursor else None
    async with unit_of_work(database) as uow:
        found = await list_queue(
            uow.connection,
            visible=guard.policy.list_filter(guard.principal, "flag.read", first_parameter=1),
            state=state,
            after=after,
            limit=limit + 1,
        )
        page = keyset_page(found, limit, lambda f: (f.raised_at, f.id))
        shown = [grant.about(resource_id=str(f.id), client_id=f.client_id) for f in page.items]
        await guard.audit(uow, *(shown or [grant]))
    return page
