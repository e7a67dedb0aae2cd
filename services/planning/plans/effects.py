"""What a plan's approval does (registered in services/planning/approvals/effects.py):
approved, the version is in force (the previous one superseded, an open case active,
`PlanApproved`); rejected or withdrawn, it is a draft again for the worker to rework."""

from __future__ import annotations

from datetime import datetime

from services.planning.approvals.models import Approval
from services.planning.cases.lookup import Case
from services.planning.plans import service
from shared.auth.principal import Principal
from shared.messaging.outbox import UnitOfWork


async def plan_approved(
    uow: UnitOfWork, approval: Approval, case: Case, by: Principal, now: datetime
) -> None:
    await service.approve(
        uow, case=case, plan_id=approval.subject_id, approved_by=by.subject, now=now
    )


async def plan_returned(
    uow: UnitOfWork, approval: Approval, _case: Case, by: Principal, now: datetime
) -> None:
    await service.back_to_draft(uow, plan_id=approval.subject_id, by=by.subject, now=now)
