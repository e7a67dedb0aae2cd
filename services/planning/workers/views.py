"""HTTP for the staff directory: thin; rules in service.py, permissions in access.py.

Staff records, not client records: audited with resource type `worker` and no client. Every
query is within the caller's organisation; a worker outside the caller's scope is a 404.
"""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from services.planning.workers import service
from services.planning.workers.models import (
    WORKER_ID_PATTERN,
    WorkerFields,
    WorkerPatch,
    WorkerPublic,
    WorkerSync,
    WorkerSyncResult,
)
from shared.audit.log import Outcome
from shared.auth.guard import Grant, Guard, GuardDep
from shared.http import idempotency
from shared.http.app import DatabaseDep
from shared.http.pagination import Cursor, Limit, Page, decode_cursor, encode_cursor, invalid_cursor
from shared.http.preconditions import IfMatch, matches, precondition_required, stale
from shared.http.problems import ProblemError, not_found, problem_responses
from shared.messaging.outbox import unit_of_work

router = APIRouter(prefix="/v1/workers", tags=["staff directory"])

READ, WRITE, SYNC = "worker.read", "worker.write", "worker.sync"

WorkerId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=200,
        pattern=WORKER_ID_PATTERN,
        description="The identity provider's user id (the token's `sub`).",
    ),
]


def etag(worker: WorkerPublic) -> str:
    identity = hashlib.sha256(f"{worker.organization_id}\0{worker.worker_id}".encode())
    return f'"{identity.hexdigest()[:16]}.{worker.version}"'


def location(worker: WorkerPublic) -> str:
    return f"/v1/workers/{worker.worker_id}"


async def _in_scope(guard: Guard, grant: Grant, worker: WorkerPublic | None) -> WorkerPublic:
    """The worker, if the caller's scope for the grant's action covers it; else an audited 404."""
    if worker is None:
        raise await guard.refuse(grant, not_found("worker"), Outcome.NOT_FOUND)
    scopes = guard.policy.scopes(guard.principal, grant.action)
    if not service.in_scope(
        scopes, guard.principal, worker_id=worker.worker_id, team_id=worker.team_id
    ):
        raise await guard.refuse(grant, not_found("worker"))
    return worker


@router.get(
    "",
    response_model=Page[WorkerPublic],
    responses=problem_responses(400, 401, 403, 422),
    summary="List the workers of your organisation you may see, by worker id",
    description="Admins see their whole organisation, supervisors their team, caseworkers "
    "themselves. Filters: `team_id`, `active`, `language` (ISO 639).",
)
async def list_workers(
    guard: GuardDep,
    database: DatabaseDep,
    team_id: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    active: bool | None = None,
    language: Annotated[str | None, Query(pattern=r"^[A-Za-z]{2,3}$")] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[WorkerPublic]:
    grant = await guard.require(READ, resource_type="worker")
    after = _worker_cursor(cursor) if cursor else None
    scopes = guard.policy.scopes(guard.principal, READ)
    async with unit_of_work(database) as uow:
        workers = await service.list_workers(
            uow.connection,
            organization_id=guard.principal.organization_id,
            visible=service.scope_clause(scopes, guard.principal, first_parameter=2),
            team_id=team_id,
            active=active,
            language=language.lower() if language else None,
            after=after,
            limit=limit + 1,
        )
        page = workers[:limit]
        shown = [grant.about(resource_id=w.worker_id, client_id=None) for w in page]
        await guard.audit(uow, *(shown or [grant]))
    next_cursor = encode_cursor(page[-1].worker_id) if len(workers) > limit else None
    return Page[WorkerPublic](items=page, next_cursor=next_cursor)


def _worker_cursor(cursor: str) -> str:
    [worker_id] = decode_cursor(cursor, 1)
    if not isinstance(worker_id, str) or not 0 < len(worker_id) <= 200:
        raise invalid_cursor()
    return worker_id


@router.get(
    "/{worker_id}",
    response_model=WorkerPublic,
    responses=problem_responses(401, 403, 404, 422),
    summary="Read a worker of your organisation",
)
async def get_worker(
    worker_id: WorkerId, guard: GuardDep, database: DatabaseDep, response: Response
) -> WorkerPublic:
    grant = await guard.require(READ, resource_type="worker", resource_id=worker_id)
    async with unit_of_work(database) as uow:
        found = await service.get_worker(
            uow.connection, organization_id=guard.principal.organization_id, worker_id=worker_id
        )
        worker = await _in_scope(guard, grant, found)
        await guard.audit(uow, grant)
    response.headers["ETag"] = etag(worker)
    return worker


@router.put(
    "/{worker_id}",
    response_model=WorkerPublic,
    responses={
        201: {"model": WorkerPublic, "description": "Created"},
        **problem_responses(400, 401, 403, 404, 412, 413, 422, 428),
    },
    summary="Create or replace a worker of your organisation (If-Match to replace)",
    description="Creates the worker (201) when your organisation has none with this id. To "
    "replace one, send the ETag you read in `If-Match`: 428 without it (unless the body is "
    "exactly what is stored: a retried create answers 200), 412 if the worker changed since.",
)
async def put_worker(
    worker_id: WorkerId,
    body: WorkerFields,
    guard: GuardDep,
    database: DatabaseDep,
    response: Response,
    if_match: IfMatch = None,
) -> WorkerPublic:
    grant = await guard.require(WRITE, resource_type="worker", resource_id=worker_id)
    organization_id = guard.principal.organization_id
    scopes = guard.policy.scopes(guard.principal, WRITE)
    async with unit_of_work(database) as uow:
        connection = uow.connection
        current = await service.get_worker(
            connection, organization_id=organization_id, worker_id=worker_id, lock="update"
        )
        if current is None:
            if not service.in_scope(
                scopes, guard.principal, worker_id=worker_id, team_id=body.team_id
            ):
                raise await guard.refuse(grant, not_found("worker"))
            if if_match is not None:  # RFC 9110: If-Match fails when there is no current version
                raise await guard.refuse(grant, stale("worker"), Outcome.PRECONDITION_FAILED)
            try:
                worker = await service.create_worker(
                    uow, organization_id=organization_id, worker_id=worker_id, fields=body
                )
            except service.StaleVersion:
                raise await guard.refuse(
                    grant, stale("worker"), Outcome.PRECONDITION_FAILED
                ) from None
            response.status_code = 201
            response.headers["Location"] = location(worker)
        else:
            current = await _in_scope(guard, grant, current)
            if if_match is None and not service.same_fields(current, body):
                raise await guard.refuse(
                    grant, precondition_required("worker"), Outcome.PRECONDITION_FAILED
                )
            if if_match is not None and not matches(if_match, etag(current)):
                raise await guard.refuse(grant, stale("worker"), Outcome.PRECONDITION_FAILED)
            worker = await service.replace_worker(uow, current=current, fields=body)
        await guard.audit(uow, grant)
    response.headers["ETag"] = etag(worker)
    return worker


@router.patch(
    "/{worker_id}",
    response_model=WorkerPublic,
    responses=problem_responses(400, 401, 403, 404, 412, 413, 422, 428),
    summary="Change a worker (JSON merge patch; If-Match required)",
    description="Send the ETag you read in `If-Match`: 428 without it, 412 if the worker "
    "changed since. Only the fields present change; `team_id: null` removes the team.",
)
async def patch_worker(
    worker_id: WorkerId,
    body: WorkerPatch,
    guard: GuardDep,
    database: DatabaseDep,
    response: Response,
    if_match: IfMatch = None,
) -> WorkerPublic:
    grant = await guard.require(WRITE, resource_type="worker", resource_id=worker_id)
    if if_match is None:
        raise await guard.refuse(
            grant, precondition_required("worker"), Outcome.PRECONDITION_FAILED
        )
    async with unit_of_work(database) as uow:
        connection = uow.connection
        found = await service.get_worker(
            connection,
            organization_id=guard.principal.organization_id,
            worker_id=worker_id,
            lock="update",
        )
        current = await _in_scope(guard, grant, found)
        if not matches(if_match, etag(current)):
            raise await guard.refuse(grant, stale("worker"), Outcome.PRECONDITION_FAILED)
        merged = {
            **current.model_dump(include=set(WorkerFields.model_fields)),
            **body.model_dump(exclude_unset=True),
        }
        try:
            fields = WorkerFields.model_validate(merged)
        except ValidationError as error:  # pragma: no cover - each field was validated alone
            raise ProblemError(422, "validation-error", "The request is not valid") from error
        scopes = guard.policy.scopes(guard.principal, WRITE)
        if not service.in_scope(
            scopes, guard.principal, worker_id=worker_id, team_id=fields.team_id
        ):
            raise await guard.refuse(grant, not_found("worker"))
        try:
            worker = await service.replace_worker(uow, current=current, fields=fields)
        except service.StaleVersion:
            raise await guard.refuse(grant, stale("worker"), Outcome.PRECONDITION_FAILED) from None
        await guard.audit(uow, grant)
    response.headers["ETag"] = etag(worker)
    return worker


@router.post(
    "/sync",
    response_model=WorkerSyncResult,
    responses=problem_responses(400, 401, 403, 413, 422),
    summary="Sync your organisation's workers from the identity provider",
    description="Upserts the listed workers into your organisation's directory; with "
    "`deactivate_missing`, deactivates (never deletes) the active workers absent from the "
    "list (of `team_id` only, when given). The same list twice: everything `unchanged` the "
    "second time. Honours `Idempotency-Key` (a retry replays the first answer).",
)
async def sync_workers(
    body: WorkerSync,
    guard: GuardDep,
    database: DatabaseDep,
    idempotency_key: idempotency.IdempotencyKey = None,
) -> WorkerSyncResult | JSONResponse:
    grant = await guard.require(SYNC, resource_type="worker")
    principal = guard.principal
    idempotent = idempotency.IdempotentCreate(idempotency_key, "sync_workers", principal, body)
    async with unit_of_work(database) as uow:
        stored = await idempotent.previous(uow.connection)
        if stored is not None:
            await guard.audit(uow, grant)
            return stored.replay({})
        outcome = await service.sync_workers(
            uow, organization_id=principal.organization_id, sync=body
        )
        result = WorkerSyncResult(
            created=len(outcome.created),
            updated=len(outcome.updated),
            deactivated=len(outcome.deactivated),
            unchanged=outcome.unchanged,
        )
        await idempotent.remember(uow.connection, result, status_code=200)
        changed = [
            grant.about(resource_id=worker_id, client_id=None)
            for worker_id in (*outcome.created, *outcome.updated, *outcome.deactivated)
        ]
        await guard.audit(uow, grant, *changed)
    return result
