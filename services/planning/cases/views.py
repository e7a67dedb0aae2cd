"""HTTP for cases: thin; rules in opening.py, lifecycle.py and service.py (assignment),
permissions in access.py."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Path, Query, Request, Response

from services.planning.cases import lifecycle, queries, service
from services.planning.cases.lookup import Case, authorize_case, load_case
from services.planning.cases.models import (
    AssignmentPublic,
    AssignmentRequest,
    CasePublic,
    ClosureRequest,
    ClosureResult,
    HoldRequest,
    OpenCaseRequest,
    ReopenRequest,
)
from services.planning.cases.opening import open_case, open_case_of
from services.planning.refusals import refusals_audited
from shared.audit.log import Outcome
from shared.auth.facts import load_facts
from shared.auth.guard import Grant, Guard, GuardDep
from shared.db.database import Database
from shared.events.planning import CaseStatus
from shared.http.app import ClockDep, DatabaseDep
from shared.http.pagination import Cursor, Limit, Page, decode_keyset, keyset_page
from shared.http.preconditions import IfMatch, matches, precondition_required, stale
from shared.http.problems import (
    RESOURCE_HEADERS,
    ProblemError,
    problem_responses,
)
from shared.messaging.outbox import UnitOfWork, unit_of_work
from shared.settings import Settings

router = APIRouter(prefix="/v1/cases", tags=["cases"])

CaseId = Annotated[UUID, Path()]
WITH_ETAG: dict[int | str, dict[str, Any]] = {200: {"headers": {"ETag": RESOURCE_HEADERS["ETag"]}}}
CHANGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    **problem_responses(400, 401, 403, 404, 409, 412, 413, 422, 428),
    **WITH_ETAG,
}


async def _public(uow: UnitOfWork, guard: Guard, grant: Grant, case: Case) -> CasePublic:
    return await queries.case_public(
        uow.connection, case, guard.principal, break_glass=grant.outcome == Outcome.BREAK_GLASS
    )


@router.post(
    "",
    response_model=CasePublic,
    status_code=201,
    responses={
        **problem_responses(400, 401, 403, 404, 409, 413, 422),
        201: {"headers": RESOURCE_HEADERS},
    },
    summary="Open a case for a client in your scope",
    description="One case is open per client and organisation: when one is open already, 409 "
    "`case-already-open` with its id in `case_id`. The case's team and worker are the "
    "client's (their current owner, or unassigned: the team's supervisors then assign it). "
    "Publishes `CaseOpened`; the first review is scheduled by the risk cadence "
    "(`ReviewScheduled`).",
)
async def post_case(
    body: OpenCaseRequest,
    guard: GuardDep,
    database: DatabaseDep,
    clock: ClockDep,
    response: Response,
) -> CasePublic:
    async with unit_of_work(database) as uow:
        connection = uow.connection
        grant = await guard.authorize_client(
            connection, "case.open", body.client_id, resource_type="case"
        )
        facts = await load_facts(connection, body.client_id)
        assert facts is not None
        principal = guard.principal
        opened = await open_case(
            uow,
            client_id=body.client_id,
            organization_id=principal.organization_id,
            team_id=facts.team_id,
            worker_id=facts.owner_id,
            source="manual",
            opened_by=principal.subject,
            now=clock.now(),
        )
        if opened is None:
            existing = await open_case_of(connection, body.client_id, principal.organization_id)
            assert existing is not None
            raise await guard.refuse(
                grant,
                ProblemError(
                    409,
                    "case-already-open",
                    "The client has an open case",
                    detail="The client already has an open case in your organisation; nothing "
                    "was written.",
                    case_id=str(existing.id),
                ),
            )
        grant = grant.about(resource_id=str(opened.id), client_id=opened.client_id)
        reread = await lifecycle_reload(uow, opened.id)
        result = await _public(uow, guard, grant, reread)
        await guard.audit(uow, grant)
    response.headers["ETag"] = reread.etag
    response.headers["Location"] = f"/v1/cases/{reread.id}"
    return result


async def lifecycle_reload(uow: UnitOfWork, case_id: UUID) -> Case:
    case = await load_case(uow.connection, case_id)
    assert case is not None
    return case


@router.get(
    "",
    response_model=Page[CasePublic],
    responses=problem_responses(400, 401, 403, 422),
    summary="The cases you may see, oldest first",
    description="Cases of your organisation whose client is in your scope (your caseload, "
    "your team's); filter by `client_id` and `status`.",
)
async def get_cases(
    guard: GuardDep,
    database: DatabaseDep,
    client_id: Annotated[UUID | None, Query()] = None,
    status: Annotated[CaseStatus | None, Query()] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[CasePublic]:
    grant = await guard.require("case.read", resource_type="case")
    after = decode_keyset(cursor) if cursor else None
    async with unit_of_work(database) as uow:
        cases = await queries.list_cases(
            uow.connection,
            guard.principal,
            visible=guard.policy.list_filter(guard.principal, "case.read", first_parameter=1),
            client_id=client_id,
            status=status,
            after=after,
            limit=limit + 1,
        )
        page = keyset_page(cases, limit, lambda c: (c.opened_at, c.id))
        shown = [grant.about(resource_id=str(c.id), client_id=c.client_id) for c in page.items]
        await guard.audit(uow, *(shown or [grant]))
    return page


@router.get(
    "/{case_id}",
    response_model=CasePublic,
    responses={**problem_responses(401, 403, 404, 422), **WITH_ETAG},
    summary="One case, with its needs",
    description="Needs of protected data classes are shown only to the case's own worker and "
    "its team's supervisors (never through break-glass).",
)
async def get_case(
    case_id: CaseId, guard: GuardDep, database: DatabaseDep, response: Response
) -> CasePublic:
    async with unit_of_work(database) as uow:
        grant, case = await authorize_case(guard, uow.connection, "case.read", case_id)
        result = await _public(uow, guard, grant, case)
        await guard.audit(uow, grant)
    response.headers["ETag"] = case.etag
    return result


async def _changing(
    guard: Guard, uow: UnitOfWork, case_id: UUID, if_match: str | None, action: str
) -> tuple[Grant, Case]:
    """The case, locked, in scope, at the version the caller read (428 / 412 otherwise)."""
    if if_match is None:
        raise precondition_required("case")
    grant, case = await authorize_case(guard, uow.connection, action, case_id, lock=True)
    if not matches(if_match, case.etag):
        raise await guard.refuse(grant, stale("case"), Outcome.PRECONDITION_FAILED)
    return grant, case


async def _change_state(
    guard: Guard,
    database: Database,
    case_id: UUID,
    if_match: str | None,
    response: Response,
    change: Callable[[UnitOfWork, Case], Awaitable[Case]],
) -> CasePublic:
    """Hold, resume or reopen (If-Match), refusals audited: the case after, with its ETag."""
    async with unit_of_work(database) as uow:
        grant, case = await _changing(guard, uow, case_id, if_match, "case.update")
        async with refusals_audited(guard, grant):
            changed = await change(uow, case)
        result = await _public(uow, guard, grant, changed)
        await guard.audit(uow, grant)
    response.headers["ETag"] = changed.etag
    return result


@router.post(
    "/{case_id}/hold",
    response_model=CasePublic,
    responses=CHANGE_RESPONSES,
    summary="Put a case on hold (If-Match)",
)
async def hold_case(
    case_id: CaseId,
    body: HoldRequest,
    guard: GuardDep,
    database: DatabaseDep,
    clock: ClockDep,
    response: Response,
    if_match: IfMatch = None,
) -> CasePublic:
    return await _change_state(
        guard, database, case_id, if_match, response,
        lambda uow, case: lifecycle.hold(uow, case, now=clock.now()),
    )  # fmt: skip


@router.post(
    "/{case_id}/resume",
    response_model=CasePublic,
    responses=CHANGE_RESPONSES,
    summary="Resume a case on hold, back to its state before (If-Match)",
)
async def resume_case(
    case_id: CaseId,
    guard: GuardDep,
    database: DatabaseDep,
    clock: ClockDep,
    response: Response,
    if_match: IfMatch = None,
) -> CasePublic:
    return await _change_state(
        guard, database, case_id, if_match, response,
        lambda uow, case: lifecycle.resume(uow, case, now=clock.now()),
    )  # fmt: skip


@router.post(
    "/{case_id}/closure",
    response_model=ClosureResult,
    responses={**CHANGE_RESPONSES, 202: {"model": ClosureResult}},
    summary="Close a case: reason and HMIS destination (If-Match)",
    description="`reason` from `GET /v1/code-lists/closure-reasons`, `destination_code` from "
    "`GET /v1/code-lists/destinations` (anything else: 422, nothing written); an optional "
    "note. 200 with the case closed (`CaseClosed`); or, when your organisation's setting asks "
    "for a supervisor's approval of closures, 202 with the closure `requested` and its "
    "`approval_id` (`ApprovalRequested`): the case closes when a supervisor of its team "
    "approves (`POST /v1/approvals/{id}/decision`). A second closure while one awaits a "
    "decision is 409 `closure-pending`.",
)
async def close_case(
    case_id: CaseId,
    body: ClosureRequest,
    request: Request,
    guard: GuardDep,
    database: DatabaseDep,
    clock: ClockDep,
    response: Response,
    if_match: IfMatch = None,
) -> ClosureResult:
    settings: Settings = request.app.state.settings
    async with unit_of_work(database) as uow:
        grant, case = await _changing(guard, uow, case_id, if_match, "case.update")
        needs_approval = case.organization_id in settings.planning_closure_approval_organizations
        async with refusals_audited(guard, grant):
            after, closure, approval = await lifecycle.request_closure(
                uow,
                case,
                body,
                by=guard.principal,
                needs_approval=needs_approval,
                now=clock.now(),
            )
        result = ClosureResult(case=await _public(uow, guard, grant, after), closure=closure)
        await guard.audit(uow, grant)
    response.headers["ETag"] = after.etag
    if approval is not None:
        response.status_code = 202
    return result


@router.post(
    "/{case_id}/reopening",
    response_model=CasePublic,
    responses=CHANGE_RESPONSES,
    summary="Reopen a closed case, with a reason (If-Match)",
    description="The reopening is logged with its reason (kept in planning); `CaseReopened`; "
    "a review is scheduled by the cadence. 409 `case-already-open` (with its `case_id`) when "
    "the client has another open case in your organisation.",
)
async def reopen_case(
    case_id: CaseId,
    body: ReopenRequest,
    guard: GuardDep,
    database: DatabaseDep,
    clock: ClockDep,
    response: Response,
    if_match: IfMatch = None,
) -> CasePublic:
    return await _change_state(
        guard, database, case_id, if_match, response,
        lambda uow, case: lifecycle.reopen(
            uow, case, reason=body.reason, by=guard.principal.subject, now=clock.now()
        ),
    )  # fmt: skip


@router.put(
    "/{case_id}/assignment",
    response_model=AssignmentPublic,
    responses=problem_responses(400, 401, 403, 404, 409, 412, 413, 422),
    summary="Assign a case to a worker of your team",
    description="Supervisors assign within their own team, to an active worker of the staff "
    "directory (`/v1/workers`) of their own organisation and team; otherwise 422 with the "
    "reason in `errors[0].code`: `unknown-worker`, `worker-inactive` or `worker-outside-team` "
    "(audited, nothing written). A closed case is 409 `case-closed`. `If-Match` with the "
    "case's ETag is optional here (412 when stale). The worker's access (and the registering "
    "worker's loss of it) reaches every service through `CaseAssigned` (with the case's id), "
    "with the directory's team.",
)
async def assign_case(
    case_id: CaseId,
    body: AssignmentRequest,
    guard: GuardDep,
    database: DatabaseDep,
    clock: ClockDep,
    if_match: IfMatch = None,
) -> AssignmentPublic:
    async with unit_of_work(database) as uow:
        connection = uow.connection
        grant, case = await authorize_case(guard, connection, "case.assign", case_id, lock=True)
        if if_match is not None and not matches(if_match, case.etag):
            raise await guard.refuse(grant, stale("case"), Outcome.PRECONDITION_FAILED)
        if case.status == CaseStatus.CLOSED:
            raise await guard.refuse(
                grant,
                ProblemError(
                    409, "case-closed", "The case is closed",
                    detail="This case is closed: reopen it first. Nothing was changed.",
                ),
            )  # fmt: skip
        facts = await load_facts(connection, case.client_id)
        assert facts is not None
        async with refusals_audited(guard, grant):
            assignment = await service.assign_case(
                uow, case=case, facts=facts, worker_id=body.worker_id,
                assigned_by=guard.principal, now=clock.now(),
            )  # fmt: skip
        await guard.audit(uow, grant)
    return assignment


@router.get(
    "/{case_id}/assignment",
    response_model=AssignmentPublic,
    responses=problem_responses(401, 403, 404, 422),
    summary="Who a case is assigned to",
)
async def get_assignment(
    case_id: CaseId, guard: GuardDep, database: DatabaseDep
) -> AssignmentPublic:
    async with unit_of_work(database) as uow:
        connection = uow.connection
        grant, case = await authorize_case(guard, connection, "case.read", case_id)
        assignment = await service.current_assignment(connection, case_id=case.id)
        if assignment is None:
            raise await guard.refuse(
                grant,
                ProblemError(404, "not-found", "Not found", detail="This case is not assigned."),
                Outcome.NOT_FOUND,
            )
        await guard.audit(uow, grant)
    return assignment
