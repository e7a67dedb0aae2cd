"""HTTP for case transfers: thin; rules in service.py, permissions in access.py.

A transfer's routes by id decide visibility by side: the receiving worker (or a supervisor of
their team) and the case's side (the requester, the worker the case belonged to, a supervisor
of the case's team). To anyone else a transfer does not exist: 404, audited.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal
from uuid import UUID

import asyncpg
from fastapi import APIRouter, Path, Query, Response

from services.planning.cases.lookup import Case, authorize_case, load_case
from services.planning.refusals import refusals_audited
from services.planning.transfers import service
from services.planning.transfers.models import (
    DeclinationRequest,
    Transfer,
    TransferDetail,
    TransferRequest,
    TransferStatus,
)
from services.planning.transfers.service import TransferRow
from shared.audit.log import Outcome
from shared.auth.guard import Grant, Guard, GuardDep
from shared.auth.policy import Scope
from shared.auth.principal import Principal
from shared.http.app import ClockDep, DatabaseDep
from shared.http.pagination import Cursor, Limit, Page, decode_keyset, keyset_page
from shared.http.problems import not_found, problem_responses
from shared.messaging.outbox import unit_of_work

case_transfers_router = APIRouter(prefix="/v1/cases", tags=["transfers"])
router = APIRouter(prefix="/v1/transfers", tags=["transfers"])

REQUEST, READ, ANSWER, REVOKE = (
    "transfer.request",
    "transfer.read",
    "transfer.answer",
    "transfer.revoke",
)
CaseId = Annotated[UUID, Path()]
TransferId = Annotated[UUID, Path()]
Side = Callable[[set[Scope], Principal, Transfer], bool]


def _either_side(scopes: set[Scope], principal: Principal, transfer: Transfer) -> bool:
    return service.receiving_side(scopes, principal, transfer) or service.sending_side(
        scopes, principal, transfer
    )


def _requester_side(scopes: set[Scope], principal: Principal, transfer: Transfer) -> bool:
    return service.sending_side(scopes, principal, transfer, requester_only=True)


async def _authorize(
    guard: Guard,
    connection: asyncpg.Connection,
    action: str,
    transfer_id: UUID,
    side: Side,
    *,
    lock: bool,
) -> tuple[Grant, TransferRow, Case]:
    """The transfer and its case, when the caller is on `side` of it (404 otherwise, audited).
    With `lock`, the case's row then the transfer's (always in that order) are held."""
    grant = await guard.require(action, resource_type="transfer", resource_id=str(transfer_id))
    transfer = await service.load_transfer(connection, transfer_id)
    if transfer is None:
        raise await guard.refuse(grant, not_found("transfer"), Outcome.NOT_FOUND)
    grant = grant.about(resource_id=str(transfer_id), client_id=transfer.client_id)
    if not side(guard.policy.scopes(guard.principal, action), guard.principal, transfer):
        raise await guard.refuse(grant, not_found("transfer"))
    case = await load_case(connection, transfer.case_id, lock=lock)
    assert case is not None  # cases are never deleted
    if lock:
        locked = await service.load_transfer(connection, transfer_id, lock=True)
        assert locked is not None  # transfers are never deleted
        transfer = locked
    return grant, transfer, case


@case_transfers_router.post(
    "/{case_id}/transfers",
    status_code=201,
    response_model=Transfer,
    responses=problem_responses(400, 401, 403, 404, 409, 413, 422),
    summary="Ask to transfer a case to another worker of your organisation",
    description="The case's worker, or a supervisor of the case's team (403 `not-case-owner` "
    "for anyone else who can see the case), asks an active worker of the organisation's staff "
    "directory, of any team, to take the case; it stays where it is until they accept. 422 "
    "naming `body.to_worker_id` for `transfer-to-self`, `transfer-to-owner`, "
    "`unknown-worker` (also a worker of another organisation), `worker-inactive`, "
    "`worker-without-team`; 409 `transfer-pending` (one pending transfer per case) or "
    "`case-closed`. Nothing is written when refused. Publishes `TransferRequested`.",
)
async def request_transfer(
    case_id: CaseId,
    body: TransferRequest,
    guard: GuardDep,
    database: DatabaseDep,
    clock: ClockDep,
    response: Response,
) -> Transfer:
    async with unit_of_work(database) as uow:
        grant, case = await authorize_case(guard, uow.connection, REQUEST, case_id, lock=True)
        async with refusals_audited(guard, grant):
            transfer = await service.request_transfer(
                uow, case, to_worker_id=body.to_worker_id, by=guard.principal, now=clock.now()
            )
        await guard.audit(uow, grant)
    response.headers["Location"] = f"/v1/transfers/{transfer.id}"
    return transfer


@case_transfers_router.get(
    "/{case_id}/transfers",
    response_model=list[Transfer],
    responses=problem_responses(401, 403, 404, 422),
    summary="A case's transfers, oldest first",
)
async def case_transfers(case_id: CaseId, guard: GuardDep, database: DatabaseDep) -> list[Transfer]:
    async with unit_of_work(database) as uow:
        grant, case = await authorize_case(guard, uow.connection, READ, case_id)
        transfers = await service.transfers_of_case(uow.connection, case.id)
        await guard.audit(uow, grant)
    return transfers


@router.get(
    "",
    response_model=Page[Transfer],
    responses=problem_responses(400, 401, 403, 422),
    summary="Transfers to you (incoming) or that you asked for (outgoing), oldest first",
    description="`incoming`: transfers to you, or (supervisors) to a worker of your team. "
    "`outgoing`: transfers you asked for or of your cases, or (supervisors) of your team's "
    "cases. Filter by `status` (e.g. `pending`: awaiting an answer). Each one listed is "
    "audited.",
)
async def list_transfers(
    guard: GuardDep,
    database: DatabaseDep,
    direction: Annotated[Literal["incoming", "outgoing"], Query()] = "incoming",
    status: Annotated[TransferStatus | None, Query()] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[Transfer]:
    grant = await guard.require(READ, resource_type="transfer")
    after = decode_keyset(cursor) if cursor else None
    scopes = guard.policy.scopes(guard.principal, READ)
    visible = service.side_clause(scopes, guard.principal, incoming=direction == "incoming")
    async with unit_of_work(database) as uow:
        found = await service.list_transfers(
            uow.connection, visible=visible, status=status, after=after, limit=limit + 1
        )
        page = keyset_page(found, limit, lambda t: (t.requested_at, t.id))
        shown = [grant.about(resource_id=str(t.id), client_id=t.client_id) for t in page.items]
        await guard.audit(uow, *(shown or [grant]))
    return Page[Transfer](items=[t.public() for t in page.items], next_cursor=page.next_cursor)


@router.get(
    "/{transfer_id}",
    response_model=TransferDetail,
    responses=problem_responses(401, 403, 404, 422),
    summary="A transfer, with what the receiving side needs to decide",
    description="Either side sees it. `case` is a minimal summary: status, risk level, "
    "preferred language, the next review and the general needs' categories; protected needs "
    "and the client's record wait until the case is theirs. Audited as a read of the "
    "client's case.",
)
async def get_transfer(
    transfer_id: TransferId, guard: GuardDep, database: DatabaseDep
) -> TransferDetail:
    async with unit_of_work(database) as uow:
        grant, transfer, case = await _authorize(
            guard, uow.connection, READ, transfer_id, _either_side, lock=False
        )
        summary = await service.case_summary(uow.connection, case)
        await guard.audit(uow, grant)
    return TransferDetail(**transfer.public().model_dump(), case=summary)


@router.post(
    "/{transfer_id}/acceptance",
    response_model=Transfer,
    responses=problem_responses(400, 401, 403, 404, 409, 413, 422),
    summary="Accept a transfer (the receiving worker, or a supervisor of their team)",
    description="The case becomes the receiving worker's, as an assignment would make it: "
    "their team (the directory's, now), the client's access in every service through "
    "`CaseAssigned`; `TransferAnswered` (`accepted`). 409 `transfer-not-pending`, "
    "`case-closed`, `case-reassigned` (the case changed hands since the request) or "
    "`worker-inactive`. Anyone but the receiving side: 404.",
)
async def accept_transfer(
    transfer_id: TransferId, guard: GuardDep, database: DatabaseDep, clock: ClockDep
) -> Transfer:
    async with unit_of_work(database) as uow:
        grant, transfer, case = await _authorize(
            guard, uow.connection, ANSWER, transfer_id, service.receiving_side, lock=True
        )
        async with refusals_audited(guard, grant):
            accepted = await service.accept(
                uow, transfer, case, by=guard.principal, now=clock.now()
            )
        await guard.audit(uow, grant)
    return accepted


@router.post(
    "/{transfer_id}/declination",
    response_model=Transfer,
    responses=problem_responses(400, 401, 403, 404, 409, 413, 422),
    summary="Decline a transfer, with a reason code (the receiving side)",
    description="The case stays where it is. `TransferAnswered` (`declined`; the reason stays "
    "in planning). 409 `transfer-not-pending`. Anyone but the receiving side: 404.",
)
async def decline_transfer(
    transfer_id: TransferId,
    body: DeclinationRequest,
    guard: GuardDep,
    database: DatabaseDep,
    clock: ClockDep,
) -> Transfer:
    async with unit_of_work(database) as uow:
        grant, transfer, _case = await _authorize(
            guard, uow.connection, ANSWER, transfer_id, service.receiving_side, lock=True
        )
        async with refusals_audited(guard, grant):
            declined = await service.decline(
                uow, transfer, reason=body.reason, by=guard.principal, now=clock.now()
            )
        await guard.audit(uow, grant)
    return declined


@router.post(
    "/{transfer_id}/revocation",
    response_model=Transfer,
    responses=problem_responses(400, 401, 403, 404, 409, 413, 422),
    summary="Revoke a pending transfer (its requester, or a supervisor of the case's team)",
    description="Only while pending (409 `transfer-not-pending`). `TransferAnswered` "
    "(`revoked`). Anyone else: 404.",
)
async def revoke_transfer(
    transfer_id: TransferId, guard: GuardDep, database: DatabaseDep, clock: ClockDep
) -> Transfer:
    async with unit_of_work(database) as uow:
        grant, transfer, _case = await _authorize(
            guard, uow.connection, REVOKE, transfer_id, _requester_side, lock=True
        )
        async with refusals_audited(guard, grant):
            revoked = await service.revoke(uow, transfer, by=guard.principal, now=clock.now())
        await guard.audit(uow, grant)
    return revoked
