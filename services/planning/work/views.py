"""HTTP for due work: thin; the items come from the sources in sources.py."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request

from services.planning.work.models import WorkItem
from services.planning.work.service import due_work
from services.planning.work.sources import WORK_SOURCES
from shared.auth.guard import GuardDep
from shared.http.app import ClockDep, DatabaseDep
from shared.http.problems import problem_responses
from shared.messaging.outbox import unit_of_work
from shared.settings import Settings

router = APIRouter(prefix="/v1/work", tags=["work"])


@router.get(
    "",
    response_model=list[WorkItem],
    responses=problem_responses(401, 403),
    summary="Your due work: overdue and due soon, crisis first",
    description="Derived on every request from the records (never stored to-do rows): reviews "
    "due, crisis items, unassigned cases of a supervisor's team, and what other planning "
    "features add. Items overdue or due within `planning_due_soon_days` (default 7), sorted by "
    "priority (0: crisis) then due time.",
)
async def get_work(
    request: Request, guard: GuardDep, database: DatabaseDep, clock: ClockDep
) -> list[WorkItem]:
    grant = await guard.require("work.read", resource_type="work")
    settings: Settings = request.app.state.settings
    async with unit_of_work(database) as uow:
        items = await due_work(
            uow.connection,
            guard.principal,
            now=clock.now(),
            horizon=timedelta(days=settings.planning_due_soon_days),
            sources=WORK_SOURCES,
        )
        cases = {item.case_id: item.client_id for item in items}
        shown = [
            grant.about(resource_id=str(case_id), client_id=client_id)
            for case_id, client_id in cases.items()
        ]
        await guard.audit(uow, *(shown or [grant]))
    return items
