"""HTTP for service plans: thin; rules in service.py and content.py, permissions in access.py."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import JSONResponse

from services.planning.approvals.service import ApprovalRefused, request_approval
from services.planning.cases.lookup import Case, authorize_case
from services.planning.plans import service
from services.planning.plans.content import PlanContentInput
from services.planning.plans.models import (
    AgreementRequest,
    GoalStatusRequest,
    PlanDiff,
    PlanPublic,
    PlanStatus,
    PlanSummary,
    ProgressCreate,
    ProgressPublic,
)
from services.planning.refusals import Refusal, audited, refusals_audited
from shared.audit.log import Outcome
from shared.auth.guard import Grant, Guard, GuardDep
from shared.db.database import Database
from shared.events.planning import ApprovalSubject
from shared.http import idempotency
from shared.http.app import ClockDep, DatabaseDep
from shared.http.pagination import Cursor, Limit, Page, decode_cursor, encode_cursor, invalid_cursor
from shared.http.preconditions import IfMatch, matches, precondition_required, stale
from shared.http.problems import not_found, problem_responses
from shared.messaging.outbox import UnitOfWork, unit_of_work

router = APIRouter(tags=["plans"])

CaseId = Annotated[UUID, Path(description="The case's id.")]
PlanId = Annotated[UUID, Path(description="A plan version's id.")]
GoalId = Annotated[UUID, Path(description="A goal's id (stable across versions).")]


def etag(plan: service.Plan | PlanPublic) -> str:
    return f'"{plan.id}.{plan.row_version}"'


def _location(plan_id: UUID) -> str:
    return f"/v1/plans/{plan_id}"


async def _case(
    guard: Guard, uow: UnitOfWork, action: str, case_id: UUID, *, lock: bool = False
) -> tuple[Grant, Case]:
    return await authorize_case(guard, uow.connection, action, case_id, lock=lock)


async def _plan(
    guard: Guard, uow: UnitOfWork, action: str, plan_id: UUID, *, lock: bool = False
) -> tuple[Grant, Case, service.Plan]:
    """The plan version if the caller may act on its case (404 otherwise, audited); with
    `lock`, the case and then the plan locked until the transaction ends."""
    plan = await service.get_plan(uow.connection, plan_id)
    if plan is None:
        grant = await guard.require(action, resource_type="plan", resource_id=str(plan_id))
        raise await guard.refuse(grant, not_found("plan"), Outcome.NOT_FOUND)
    grant, case = await _case(guard, uow, action, plan.case_id, lock=lock)
    if lock:
        locked = await service.get_plan(uow.connection, plan_id, lock=True)
        assert locked is not None  # versions are never deleted
        plan = locked
    return replace(grant, resource_type="plan", resource_id=str(plan_id)), case, plan


async def _change_draft(
    guard: Guard,
    database: Database,
    plan_id: UUID,
    if_match: str | None,
    response: Response,
    change: Callable[[UnitOfWork, Case, service.Plan], Awaitable[service.Plan]],
) -> PlanPublic:
    """A change of a draft the caller read (If-Match), refusals audited: the draft after, with
    its ETag."""
    async with unit_of_work(database) as uow:
        grant, case, plan = await _plan(guard, uow, "plan.write", plan_id, lock=True)
        await _draft_as_read(guard, grant, if_match, plan)
        async with refusals_audited(guard, grant):
            updated = await change(uow, case, plan)
        shown = await service.public(uow.connection, updated)
        await guard.audit(uow, grant)
    response.headers["ETag"] = etag(updated)
    return shown


async def _draft_as_read(
    guard: Guard, grant: Grant, if_match: str | None, plan: service.Plan
) -> None:
    """The caller changes a draft, the version of it they read: 428 without If-Match, 409 when
    it is no draft (whatever the ETag: that is the conflict to resolve), 412 when stale."""
    if if_match is None:
        raise await guard.refuse(grant, precondition_required("plan"), Outcome.PRECONDITION_FAILED)
    if plan.status is not PlanStatus.DRAFT:
        raise await audited(guard, grant, service.not_draft(plan))
    if not matches(if_match, etag(plan)):
        raise await guard.refuse(grant, stale("plan"), Outcome.PRECONDITION_FAILED)


@router.post(
    "/v1/cases/{case_id}/plans",
    status_code=201,
    response_model=PlanPublic,
    responses=problem_responses(400, 401, 403, 404, 409, 413, 422),
    summary="Start a case's service plan: version 1, as a draft",
    description="Goals are tied to the case's needs (`need_category`), each with a measure, a "
    "target value and a target date not in the past; actions under goals name who carries "
    "them out. A case that has a plan already gets 409 (`plan-exists`, with its id): edit "
    "its draft or revise its approved version.",
)
async def create_plan(
    case_id: CaseId,
    body: PlanContentInput,
    guard: GuardDep,
    database: DatabaseDep,
    clock: ClockDep,
    response: Response,
    idempotency_key: idempotency.IdempotencyKey = None,
) -> PlanPublic | JSONResponse:
    idempotent = idempotency.IdempotentCreate(
        idempotency_key, "create_plan", guard.principal, body, target=case_id
    )
    async with unit_of_work(database) as uow:
        grant, case = await _case(guard, uow, "plan.write", case_id, lock=True)
        stored = await idempotent.previous(uow.connection)
        if stored is not None:
            replayed = PlanPublic.model_validate(stored.body)
            await guard.audit(
                uow, grant.about(resource_id=str(replayed.id), client_id=case.client_id)
            )
            return stored.replay({"Location": _location(replayed.id), "ETag": etag(replayed)})
        async with refusals_audited(guard, grant):
            plan = await service.create_first_draft(
                uow, case=case, data=body, by=guard.principal.subject, now=clock.now()
            )
        shown = await service.public(uow.connection, plan)
        await idempotent.remember(uow.connection, shown)
        await guard.audit(uow, replace(grant, resource_type="plan", resource_id=str(plan.id)))
    response.headers["Location"] = _location(plan.id)
    response.headers["ETag"] = etag(plan)
    return shown


@router.get(
    "/v1/cases/{case_id}/plans",
    response_model=Page[PlanSummary],
    responses=problem_responses(400, 401, 403, 404, 422),
    summary="The versions of a case's plan, newest first",
)
async def list_plans(
    case_id: CaseId,
    guard: GuardDep,
    database: DatabaseDep,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[PlanSummary]:
    after = _number_cursor(cursor) if cursor else None
    async with unit_of_work(database) as uow:
        grant, _ = await _case(guard, uow, "plan.read", case_id)
        found = await service.list_versions(
            uow.connection, case_id=case_id, after=after, limit=limit + 1
        )
        items = found[:limit]
        page: Page[PlanSummary] = Page(
            items=items,
            next_cursor=encode_cursor(items[-1].version) if len(found) > limit else None,
        )
        shown = [replace(grant, resource_type="plan", resource_id=str(p.id)) for p in items]
        await guard.audit(uow, *(shown or [grant]))
    return page


def _number_cursor(cursor: str) -> int:
    (number,) = decode_cursor(cursor, 1)
    if not isinstance(number, int) or isinstance(number, bool) or not 1 <= number <= 1_000_000:
        raise invalid_cursor()
    return number


@router.get(
    "/v1/plans/{plan_id}",
    response_model=PlanPublic,
    responses=problem_responses(401, 403, 404, 422),
    summary="A plan version: goals (with current status and progress), actions, safety plan",
)
async def get_plan(
    plan_id: PlanId, guard: GuardDep, database: DatabaseDep, response: Response
) -> PlanPublic:
    async with unit_of_work(database) as uow:
        grant, _, plan = await _plan(guard, uow, "plan.read", plan_id)
        shown = await service.public(uow.connection, plan)
        await guard.audit(uow, grant)
    response.headers["ETag"] = etag(plan)
    return shown


@router.put(
    "/v1/plans/{plan_id}",
    response_model=PlanPublic,
    responses=problem_responses(400, 401, 403, 404, 409, 412, 413, 422, 428),
    summary="Replace a draft's goals, actions and safety plan (If-Match required)",
    description="Only a draft changes (409 `plan-not-draft` otherwise: an approved version is "
    "never edited). Keep a goal's or action's `id` to keep it; omit it for a new one. A "
    "change of content clears a recorded client agreement: they agreed to the old text.",
)
async def update_plan(
    plan_id: PlanId,
    body: PlanContentInput,
    guard: GuardDep,
    database: DatabaseDep,
    clock: ClockDep,
    response: Response,
    if_match: IfMatch = None,
) -> PlanPublic:
    return await _change_draft(
        guard, database, plan_id, if_match, response,
        lambda uow, case, plan: service.update_draft(
            uow, case=case, plan=plan, data=body, by=guard.principal.subject, now=clock.now()
        ),
    )  # fmt: skip


@router.put(
    "/v1/plans/{plan_id}/agreement",
    response_model=PlanPublic,
    responses=problem_responses(400, 401, 403, 404, 409, 412, 413, 422, 428),
    summary="Record the client's agreement to a draft: signed, verbal or declined (If-Match)",
    description="Required before approval is requested: the supervisor decides knowing where "
    "the client stands. A declined plan can still be approved (e.g. a safety plan the client "
    "would not sign); the decline stays on the version. The time must not be in the future "
    "nor before the draft's content last changed.",
)
async def record_agreement(
    plan_id: PlanId,
    body: AgreementRequest,
    guard: GuardDep,
    database: DatabaseDep,
    clock: ClockDep,
    response: Response,
    if_match: IfMatch = None,
) -> PlanPublic:
    return await _change_draft(
        guard, database, plan_id, if_match, response,
        lambda uow, case, plan: service.record_agreement(
            uow, case=case, plan=plan, how=body.how, at=body.at, by=guard.principal.subject,
            now=clock.now(),
        ),
    )  # fmt: skip


@router.post(
    "/v1/plans/{plan_id}/approval-request",
    response_model=PlanPublic,
    responses=problem_responses(401, 403, 404, 409, 412, 422, 428),
    summary="Ask a supervisor of the case's team to approve a draft (If-Match required)",
    description="The draft needs a goal and the client's agreement (422 otherwise). It awaits "
    "approval (no longer editable) through the generic approvals (`/v1/approvals`): approved, "
    "it is the version in force (the previous one superseded, an open case active, "
    "`PlanApproved`); rejected or withdrawn, it is a draft again.",
)
async def request_plan_approval(
    plan_id: PlanId,
    guard: GuardDep,
    database: DatabaseDep,
    clock: ClockDep,
    response: Response,
    if_match: IfMatch = None,
) -> PlanPublic:
    async with unit_of_work(database) as uow:
        grant, case, plan = await _plan(guard, uow, "plan.write", plan_id, lock=True)
        await _draft_as_read(guard, grant, if_match, plan)
        refusal = service.approval_refusal(case, plan)
        if refusal is not None:
            raise await audited(guard, grant, refusal)
        now = clock.now()
        async with refusals_audited(guard, grant):
            try:
                approval = await request_approval(
                    uow,
                    case=case,
                    subject=ApprovalSubject.PLAN,
                    subject_id=plan.id,
                    requested_by=guard.principal,
                    now=now,
                )
            except ApprovalRefused as refused:  # answered with a plan's titles, not an approval's
                raise Refusal(refused.status, refused.code, refused.message) from None
        await service.mark_awaiting(
            uow, plan=plan, approval_id=approval.id, by=guard.principal.subject, now=now
        )
        updated = await service.get_plan(uow.connection, plan.id)
        assert updated is not None
        shown = await service.public(uow.connection, updated)
        await guard.audit(uow, grant)
    response.headers["ETag"] = etag(updated)
    return shown


@router.post(
    "/v1/plans/{plan_id}/revision",
    status_code=201,
    response_model=PlanPublic,
    responses=problem_responses(401, 403, 404, 409, 422),
    summary="Revise the approved version in force: a new draft with the same goals and ids",
    description="The new version copies goals (with their current status), actions and the "
    "safety plan, ids kept, so `/diff` shows what the revision changes. 409 when this is not "
    "the approved version in force, or the case's plan has a version being worked on already "
    "(`draft-exists`, with its id).",
)
async def revise_plan(
    plan_id: PlanId,
    guard: GuardDep,
    database: DatabaseDep,
    clock: ClockDep,
    response: Response,
) -> PlanPublic:
    async with unit_of_work(database) as uow:
        grant, case, plan = await _plan(guard, uow, "plan.write", plan_id, lock=True)
        async with refusals_audited(guard, grant):
            draft = await service.revise(
                uow, case=case, plan=plan, by=guard.principal.subject, now=clock.now()
            )
        shown = await service.public(uow.connection, draft)
        await guard.audit(uow, grant, replace(grant, resource_id=str(draft.id)))
    response.headers["Location"] = _location(draft.id)
    response.headers["ETag"] = etag(draft)
    return shown


@router.get(
    "/v1/plans/{plan_id}/diff",
    response_model=PlanDiff,
    responses=problem_responses(401, 403, 404, 422),
    summary="What changed from another version of the same case's plan to this one",
    description="Goals and actions added, removed and changed (each changed field before and "
    "after; goals as each version shows them, current status included); safety plan items "
    "added and removed per section. `against` must be a version of the same case (404).",
)
async def diff_plans(
    plan_id: PlanId,
    against: Annotated[UUID, Query(description="The version to compare with (the older one).")],
    guard: GuardDep,
    database: DatabaseDep,
) -> PlanDiff:
    async with unit_of_work(database) as uow:
        grant, _, plan = await _plan(guard, uow, "plan.read", plan_id)
        other = await service.get_plan(uow.connection, against)
        other_grant = replace(grant, resource_id=str(against))
        if other is None or other.case_id != plan.case_id:
            raise await guard.refuse(other_grant, not_found("plan"), Outcome.NOT_FOUND)
        changes = await service.compare(uow.connection, plan=plan, against=other)
        await guard.audit(uow, grant, other_grant)
    return changes


@router.post(
    "/v1/plans/{plan_id}/goals/{goal_id}/status",
    response_model=PlanPublic,
    responses=problem_responses(400, 401, 403, 404, 409, 413, 422),
    summary="Change a goal's status on the approved version in force",
    description="Publishes `GoalStatusChanged` (ids and codes). A goal ends achieved, not "
    "achieved or cancelled; an ended goal stays so on its version (409), as does a change on "
    "a version not in force.",
)
async def change_goal_status(
    plan_id: PlanId,
    goal_id: GoalId,
    body: GoalStatusRequest,
    guard: GuardDep,
    database: DatabaseDep,
    clock: ClockDep,
    response: Response,
) -> PlanPublic:
    async with unit_of_work(database) as uow:
        grant, case, plan = await _plan(guard, uow, "plan.write", plan_id, lock=True)
        async with refusals_audited(guard, grant):
            await service.change_goal_status(
                uow,
                case=case,
                plan=plan,
                goal_id=goal_id,
                to=body.status,
                by=guard.principal.subject,
                now=clock.now(),
            )
        shown = await service.public(uow.connection, plan)
        await guard.audit(uow, grant)
    response.headers["ETag"] = etag(plan)
    return shown


@router.post(
    "/v1/plans/{plan_id}/goals/{goal_id}/progress",
    status_code=201,
    response_model=ProgressPublic,
    responses=problem_responses(400, 401, 403, 404, 409, 413, 422),
    summary="Record a measurement of a goal's progress on the approved version in force",
)
async def record_progress(
    plan_id: PlanId,
    goal_id: GoalId,
    body: ProgressCreate,
    guard: GuardDep,
    database: DatabaseDep,
    clock: ClockDep,
) -> ProgressPublic:
    async with unit_of_work(database) as uow:
        grant, case, plan = await _plan(guard, uow, "plan.write", plan_id, lock=True)
        async with refusals_audited(guard, grant):
            progress = await service.record_progress(
                uow,
                case=case,
                plan=plan,
                goal_id=goal_id,
                data=body,
                by=guard.principal.subject,
                now=clock.now(),
            )
        await guard.audit(uow, grant)
    return progress
