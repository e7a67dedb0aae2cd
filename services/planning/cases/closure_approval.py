"""What a decision on a closure approval does: approved closes the case as requested; rejected
or withdrawn ends the request and the case stays as it is."""

from __future__ import annotations

from datetime import datetime

from services.planning.approvals.models import Approval
from services.planning.cases.lifecycle import apply_closure, end_closure_request, load_closure
from services.planning.cases.lookup import Case
from shared.auth.principal import Principal
from shared.messaging.outbox import UnitOfWork


async def closure_approved(
    uow: UnitOfWork, approval: Approval, case: Case, _by: Principal, now: datetime
) -> None:
    closure = await load_closure(uow.connection, approval.subject_id)
    assert closure is not None, "a closure approval names a closure request"
    await apply_closure(uow, case, closure, now=now)


async def closure_rejected(
    uow: UnitOfWork, approval: Approval, _case: Case, _by: Principal, _now: datetime
) -> None:
    await end_closure_request(uow.connection, approval.subject_id, "rejected")


async def closure_withdrawn(
    uow: UnitOfWork, approval: Approval, _case: Case, _by: Principal, _now: datetime
) -> None:
    await end_closure_request(uow.connection, approval.subject_id, "withdrawn")
