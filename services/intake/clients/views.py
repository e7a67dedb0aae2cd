"""HTTP for the client registry: thin; rules live in service.py and search.py, permissions in
access.py."""

from __future__ import annotations

from datetime import date
from functools import partial
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Header, Path, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError

from services.intake.clients import service
from services.intake.clients.models import (
    ClientCreate,
    ClientFields,
    ClientPublic,
    ClientUpdate,
    Phone,
    digits,
)
from services.intake.clients.search import (
    Candidate,
    ScopeFilter,
    find_candidates,
    find_likely_duplicates,
    find_namesakes,
)
from shared.audit.log import Outcome
from shared.auth.guard import Grant, Guard, GuardDep
from shared.http import idempotency
from shared.http.app import DatabaseDep
from shared.http.pagination import (
    Cursor,
    Limit,
    Page,
    decode_keyset,
    encode_keyset,
)
from shared.http.problems import PROBLEM_RESPONSES, ProblemError
from shared.messaging.outbox import unit_of_work
from shared.text import ShortText

router = APIRouter(prefix="/v1/clients", tags=["clients"])


def etag(client: ClientPublic) -> str:
    return f'"{client.id}.{client.version}"'


class CandidatePublic(BaseModel):
    """What a worker needs to tell whether a candidate is the same person; nothing more."""

    client_id: UUID
    given_name: str | None
    family_name: str | None
    birth_date: date | None
    score: float = Field(description="0 to 1; at or above 0.65 a likely duplicate.")
    reasons: list[str] = Field(examples=[["name similarity 0.83", "same birth date"]])
    likely_duplicate: bool

    @classmethod
    def of(cls, candidate: Candidate) -> CandidatePublic:
        return cls(
            client_id=candidate.client_id,
            given_name=candidate.given_name,
            family_name=candidate.family_name,
            birth_date=candidate.birth_date,
            score=candidate.score,
            reasons=candidate.reasons,
            likely_duplicate=candidate.likely_duplicate,
        )


class SearchResult(BaseModel):
    candidates: list[CandidatePublic]


def _shown(grant: Grant, candidates: list[Candidate], action: str) -> list[Grant]:
    return [
        Grant(action, "client", str(c.client_id), c.client_id, grant.outcome) for c in candidates
    ]


def _searchable(guard: Guard) -> ScopeFilter:
    """The clients the caller may find, as the search queries take it."""
    return partial(guard.policy.list_filter, guard.principal, "client.search")


@router.get(
    "/search",
    response_model=SearchResult,
    responses={code: PROBLEM_RESPONSES[code] for code in (401, 403, 422)},
    summary="Search before you register: ranked candidates with the reasons for their score",
    description="By name (typos, missing accents and transposed names tolerated), birth date "
    "(also with day and month swapped) and phone, within your organisation. Every candidate "
    "shown is recorded in its access log.",
)
async def search_clients(
    guard: GuardDep,
    database: DatabaseDep,
    name: Annotated[ShortText | None, Query()] = None,
    birth_date: date | None = None,
    phone: Annotated[Phone | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> SearchResult:
    grant = await guard.require("client.search", resource_type="client")
    if not (name and name.strip()) and birth_date is None and phone is None:
        raise ProblemError(
            422, "validation-error", "The request is not valid",
            detail="Search by at least one of name, birth_date or phone.",
            errors=[{"field": "query", "message": "no search criteria", "code": "missing"}],
        )  # fmt: skip
    async with unit_of_work(database) as uow:
        candidates = await find_candidates(
            uow.connection,
            name=name,
            birth_date=birth_date,
            phone_digits=digits(phone),
            visible=_searchable(guard),
            limit=limit,
        )
        await guard.audit(uow, *(_shown(grant, candidates, "client.search") or [grant]))
    return SearchResult(candidates=[CandidatePublic.of(c) for c in candidates])


@router.post(
    "",
    status_code=201,
    response_model=ClientPublic,
    responses={code: PROBLEM_RESPONSES[code] for code in (400, 401, 403, 409, 413, 422)},
    summary="Register a client (after a duplicate check)",
    description="Refuses a likely duplicate with 409 listing the candidates, unless the body "
    'says `"duplicate_check": "confirmed_new"`; that decision is audited. With no birth date '
    "and no phone to compare, a record with nearly the same name counts (the problem's "
    "`compared` says what was compared). Stores the client and publishes `ClientRegistered` (no names or birth date). The client is on the "
    "registering worker's caseload until the case is assigned.",
)
async def register_client(
    body: ClientCreate,
    guard: GuardDep,
    database: DatabaseDep,
    response: Response,
    idempotency_key: idempotency.IdempotencyKey = None,
) -> ClientPublic | JSONResponse:
    grant = await guard.require("client.create", resource_type="client")
    # Keys are per caller: one user's key can never replay another user's response.
    idempotent = idempotency.IdempotentCreate(
        idempotency_key, f"register_client:{guard.principal.subject}", body
    )
    async with unit_of_work(database) as uow:
        stored = await idempotent.previous(uow.connection)
        if stored is not None:
            replayed = ClientPublic.model_validate(stored.body)
            # The record is shown again: on the record again.
            await guard.audit(uow, grant.about(resource_id=str(replayed.id), client_id=replayed.id))
            return stored.replay({"ETag": etag(replayed), "Location": f"/v1/clients/{replayed.id}"})
        name = f"{body.given_name or ''} {body.family_name or ''}"
        name_only = body.birth_date is None and not digits(body.phone)
        if name_only:
            likely = await find_namesakes(
                uow.connection, name=name, visible=_searchable(guard), limit=5
            )
        else:
            likely = await find_likely_duplicates(
                uow.connection,
                name=name,
                birth_date=body.birth_date,
                phone_digits=digits(body.phone),
                visible=_searchable(guard),
                limit=5,
            )
        if likely and body.duplicate_check != "confirmed_new":
            raise await _refuse_duplicate(guard, grant, likely, name_only=name_only)
        client = await service.register_client(uow, data=body, registered_by=guard.principal)
        await idempotent.remember(uow.connection, client)
        registered = grant.about(resource_id=str(client.id), client_id=client.id)
        # The worker saw these candidates and decided this is someone else: on the record.
        dismissed = [
            Grant("client.duplicate_dismissed", "client", str(c.client_id), client.id)
            for c in likely
        ]
        await guard.audit(uow, registered, *dismissed)
    response.headers["ETag"] = etag(client)
    response.headers["Location"] = f"/v1/clients/{client.id}"
    return client


async def _refuse_duplicate(
    guard: Guard, grant: Grant, likely: list[Candidate], *, name_only: bool
) -> ProblemError:
    basis = (
        "With no birth date or phone to compare, these records have nearly the same name. "
        if name_only
        else ""
    )
    return await guard.refuse(
        grant,
        ProblemError(
            409, "likely-duplicate", "This person may already be registered",
            detail=f"{basis}Review the candidates. If none is this person, send the request "
            'again with "duplicate_check": "confirmed_new"; to record that one is, link the '
            "records.",
            candidates=[CandidatePublic.of(c).model_dump(mode="json") for c in likely],
            compared=["name"] if name_only else ["name", "birth_date", "phone"],
        ),
        Outcome.DUPLICATE_SUSPECTED,
        shown=tuple(_shown(grant, likely, "client.search")),
    )  # fmt: skip


@router.get(
    "",
    response_model=Page[ClientPublic],
    responses={code: PROBLEM_RESPONSES[code] for code in (400, 401, 403, 422)},
    summary="List the clients you may see, newest first",
)
async def list_clients(
    guard: GuardDep, database: DatabaseDep, cursor: Cursor = None, limit: Limit = 50
) -> Page[ClientPublic]:
    grant = await guard.require("client.list", resource_type="client")
    after = decode_keyset(cursor) if cursor else None
    async with unit_of_work(database) as uow:
        clients = await service.list_clients(
            uow.connection,
            visible=guard.policy.list_filter(guard.principal, "client.list", first_parameter=1),
            after=after,
            limit=limit + 1,
        )
        page = clients[:limit]
        # One record per client the caller was shown: each client's access log is complete.
        shown = [grant.about(resource_id=str(c.id), client_id=c.id) for c in page]
        await guard.audit(uow, *(shown or [grant]))
    next_cursor = encode_keyset(page[-1].created_at, page[-1].id) if len(clients) > limit else None
    return Page[ClientPublic](items=page, next_cursor=next_cursor)


@router.get(
    "/{client_id}",
    response_model=ClientPublic,
    responses={code: PROBLEM_RESPONSES[code] for code in (401, 403, 404, 422)},
    summary="Read a client",
)
async def get_client(
    client_id: Annotated[UUID, Path()], guard: GuardDep, database: DatabaseDep, response: Response
) -> ClientPublic:
    async with unit_of_work(database) as uow:
        grant = await guard.authorize_client(
            uow.connection, "client.read", client_id, resource_type="client"
        )
        client = await service.get_client(uow.connection, client_id=client_id)
        await guard.audit(uow, grant)
    assert client is not None, "access facts exist for every registered client"
    response.headers["ETag"] = etag(client)
    return client


@router.patch(
    "/{client_id}",
    response_model=ClientPublic,
    responses={code: PROBLEM_RESPONSES[code] for code in (400, 401, 403, 404, 412, 413, 422, 428)},
    summary="Change a client's record (JSON merge patch; If-Match required)",
    description="Send the ETag you read in `If-Match`: 428 without it, 412 if the record "
    "changed since (read it again, reapply, resend). Only the fields present change; the "
    "change history keeps every field's old and new value.",
)
async def update_client(
    client_id: Annotated[UUID, Path()],
    body: ClientUpdate,
    guard: GuardDep,
    database: DatabaseDep,
    response: Response,
    if_match: Annotated[str | None, Header(alias="If-Match", max_length=200)] = None,
) -> ClientPublic:
    if if_match is None:
        raise ProblemError(
            428, "precondition-required", "Precondition required",
            detail="Send If-Match with the ETag of the version you are changing.",
        )  # fmt: skip
    async with unit_of_work(database) as uow:
        grant = await guard.authorize_client(
            uow.connection, "client.update", client_id, resource_type="client"
        )
        current = await service.get_client(uow.connection, client_id=client_id)
        assert current is not None
        if if_match.strip() not in (etag(current), f"W/{etag(current)}"):
            raise await guard.refuse(grant, _stale(current), Outcome.PRECONDITION_FAILED)
        merged = {
            **current.model_dump(include=set(service.RECORD_FIELDS)),
            **body.model_dump(exclude_unset=True),
        }
        try:
            changed = ClientFields.model_validate(merged)
        except ValidationError as error:
            raise ProblemError(
                422, "validation-error", "The request is not valid",
                detail="The change would leave the record inconsistent; nothing was changed.",
                errors=[
                    {"field": ".".join(str(p) for p in e["loc"]) or "body", "message": e["msg"],
                     "code": e["type"]}
                    for e in error.errors()
                ],
            ) from error  # fmt: skip
        try:
            updated = await service.update_client(
                uow, current=current, changed=changed, changed_by=guard.principal
            )
        except service.StaleVersion:
            raise await guard.refuse(grant, _stale(current), Outcome.PRECONDITION_FAILED) from None
        await guard.audit(uow, grant)
    response.headers["ETag"] = etag(updated)
    return updated


def _stale(current: ClientPublic) -> ProblemError:
    return ProblemError(
        412, "precondition-failed", "The record changed since you read it",
        detail="Read the client again, reapply your change and send it with the new ETag.",
    )  # fmt: skip
