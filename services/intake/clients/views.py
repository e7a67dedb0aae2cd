"""HTTP for the client registry: thin; rules live in service.py and search.py, permissions in
access.py."""

from __future__ import annotations

from datetime import date
from functools import partial
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Body, Path, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from services.intake.clients import service
from services.intake.clients.candidates import (
    CandidatePublic,
    CandidateShown,
    CandidateSummary,
    shown,
)
from services.intake.clients.models import (
    ClientCreate,
    ClientPublic,
    ClientUpdate,
    IdentifierType,
    Phone,
    digits,
)
from services.intake.clients.search import (
    IDENTIFYING_TYPES,
    Candidate,
    DuplicateCheck,
    IdentifierProbe,
    ScopeFilter,
    check_before_registering,
    find_candidates,
    identifies,
)
from shared.audit.log import Outcome
from shared.auth.guard import Grant, Guard, GuardDep
from shared.http import idempotency
from shared.http.app import DatabaseDep
from shared.http.merge_patch import MERGE_PATCH_JSON
from shared.http.pagination import (
    Cursor,
    Limit,
    Page,
    decode_keyset,
    keyset_page,
)
from shared.http.preconditions import IfMatch, matches, precondition_required, stale
from shared.http.problems import (
    RESOURCE_HEADERS,
    FieldError,
    Problem,
    ProblemError,
    documented_problem,
    problem_responses,
)
from shared.messaging.outbox import unit_of_work
from shared.text import ShortText

router = APIRouter(prefix="/v1/clients", tags=["clients"])


def etag(client: ClientPublic) -> str:
    return f'"{client.id}.{client.version}"'


class SearchResult(BaseModel):
    """The list envelope every list has; a search is ranked, not paginated: one page."""

    items: list[CandidateShown] = Field(
        description="Best first. `access: full` for records you may read; `access: limited` "
        "(names, birth year, which fields matched) for the others."
    )
    next_cursor: None = Field(default=None, description="Always null: one page, best first.")


class LikelyDuplicateProblem(Problem):
    """The 409 of a registration that may be someone already registered."""

    candidates: list[CandidateShown] = Field(description="As in a search: best first.")
    compared: list[Literal["name", "birth_date", "phone"]] = Field(
        description="What the check compared: only `name` when the new record has neither "
        "birth date nor phone."
    )


def _seen(grant: Grant, candidates: list[Candidate], action: str) -> list[Grant]:
    return [
        Grant(action, "client", str(c.client_id), c.client_id, grant.outcome) for c in candidates
    ]


def _searchable(guard: Guard) -> ScopeFilter:
    """The clients the caller may find, as the search queries take it."""
    return partial(guard.policy.list_filter, guard.principal, "client.search")


def _as_seen_by(
    guard: Guard, candidates: list[Candidate]
) -> list[CandidatePublic | CandidateSummary]:
    """Each candidate in full if the caller may read the record, reduced otherwise."""
    return [
        shown(
            c,
            readable=c.facts is not None
            and guard.policy.allows_client(guard.principal, "client.read", c.facts),
        )
        for c in candidates
    ]


@router.get(
    "/search",
    response_model=SearchResult,
    responses=problem_responses(401, 403, 422),
    summary="Search before you register: ranked candidates with the reasons for their score",
    description="Needs a name, an exact phone number or an exact identifier (both "
    "`identifier_type` and `identifier_value`; types that single out a person: "
    f"{', '.join(sorted(IDENTIFYING_TYPES))}); a birth date only narrows a search. Names "
    "tolerate typos, missing accents and transposed names; a one-word name also finds that "
    "exact family name; a birth date also matches with day and month swapped. Within your "
    "organisation: records outside your scope show only names, birth year and which fields "
    "matched. Every candidate shown is recorded in its access log.",
)
async def search_clients(
    guard: GuardDep,
    database: DatabaseDep,
    name: Annotated[ShortText | None, Query()] = None,
    birth_date: date | None = None,
    phone: Annotated[Phone | None, Query()] = None,
    identifier_type: Annotated[IdentifierType | None, Query()] = None,
    identifier_value: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> SearchResult:
    grant = await guard.require("client.search", resource_type="client")
    identifier = _identifier_probe(identifier_type, identifier_value)
    if not identifies(name=name, phone_digits=digits(phone), identifier=identifier):
        raise ProblemError(
            422, "validation-error", "The request is not valid",
            detail="Search by a name, an exact phone number or an exact identifier; a birth "
            "date only narrows such a search.",
            errors=[{"field": "query", "message": "no name, phone or identifier", "code": "missing"}],
        )  # fmt: skip
    async with unit_of_work(database) as uow:
        candidates = await find_candidates(
            uow.connection,
            name=name,
            birth_date=birth_date,
            phone_digits=digits(phone),
            identifier=identifier,
            visible=_searchable(guard),
            limit=limit,
        )
        await guard.audit(uow, *(_seen(grant, candidates, "client.search") or [grant]))
    return SearchResult(items=_as_seen_by(guard, candidates))


def _identifier_probe(kind: str | None, value: str | None) -> IdentifierProbe | None:
    """Both parts or neither; only a type that singles out a person (422 otherwise)."""
    if kind is None and value is None:
        return None
    problem: FieldError | None = None
    if kind is None or value is None:
        problem = FieldError(
            field="query.identifier_type" if kind is None else "query.identifier_value",
            message="identifier_type and identifier_value go together",
            code="missing",
        )
    elif kind not in IDENTIFYING_TYPES:
        problem = FieldError(
            field="query.identifier_type",
            message=f"{kind} does not single out a person; search by "
            f"{' or '.join(sorted(IDENTIFYING_TYPES))}",
            code="not_identifying",
        )
    if problem is not None:
        raise ProblemError(
            422, "validation-error", "The request is not valid",
            detail="The identifier cannot be searched by.", errors=[problem.model_dump()],
        )  # fmt: skip
    assert kind is not None and value is not None
    return IdentifierProbe(type=kind, value=value.strip())


@router.post(
    "",
    status_code=201,
    response_model=ClientPublic,
    responses={
        **problem_responses(400, 401, 403, 413, 422),
        409: documented_problem(LikelyDuplicateProblem, "This person may already be registered"),
        201: {"headers": RESOURCE_HEADERS},
    },
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
    idempotent = idempotency.IdempotentCreate(
        idempotency_key, "register_client", guard.principal, body
    )
    async with unit_of_work(database) as uow:
        stored = await idempotent.previous(uow.connection)
        if stored is not None:
            replayed = ClientPublic.model_validate(stored.body)
            # The record is shown again: on the record again.
            await guard.audit(uow, grant.about(resource_id=str(replayed.id), client_id=replayed.id))
            return stored.replay({"ETag": etag(replayed), "Location": f"/v1/clients/{replayed.id}"})
        check = await check_before_registering(
            uow.connection,
            name=f"{body.given_name or ''} {body.family_name or ''}",
            birth_date=body.birth_date,
            phone_digits=digits(body.phone),
            visible=_searchable(guard),
        )
        likely = check.candidates
        if likely and body.duplicate_check != "confirmed_new":
            raise await _refuse_duplicate(guard, grant, check)
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


async def _refuse_duplicate(guard: Guard, grant: Grant, check: DuplicateCheck) -> ProblemError:
    likely = check.candidates
    basis = (
        "With no birth date or phone to compare, these records have nearly the same name. "
        if check.compared == ["name"]
        else ""
    )
    return await guard.refuse(
        grant,
        ProblemError(
            409, "likely-duplicate", "This person may already be registered",
            detail=f"{basis}Review the candidates. If none is this person, send the request "
            'again with "duplicate_check": "confirmed_new"; to record that one is, link the '
            "records.",
            candidates=[c.model_dump(mode="json") for c in _as_seen_by(guard, likely)],
            compared=check.compared,
        ),
        Outcome.DUPLICATE_SUSPECTED,
        shown=tuple(_seen(grant, likely, "client.search")),
    )  # fmt: skip


@router.get(
    "",
    response_model=Page[ClientPublic],
    responses=problem_responses(400, 401, 403, 422),
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
        page = keyset_page(clients, limit, lambda c: (c.created_at, c.id))
        # One record per client the caller was shown: each client's access log is complete.
        shown = [grant.about(resource_id=str(c.id), client_id=c.id) for c in page.items]
        await guard.audit(uow, *(shown or [grant]))
    return page


@router.get(
    "/{client_id}",
    response_model=ClientPublic,
    responses={
        **problem_responses(401, 403, 404, 422),
        200: {"headers": {"ETag": RESOURCE_HEADERS["ETag"]}},
    },
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
    responses={
        **problem_responses(400, 401, 403, 404, 412, 413, 422, 428),
        200: {"headers": {"ETag": RESOURCE_HEADERS["ETag"]}},
    },
    summary="Change a client's record (JSON merge patch; If-Match required)",
    description="A JSON merge patch (RFC 7396, `application/merge-patch+json`; "
    "`application/json` is read the same way): only the members present change, nested "
    "objects such as `address` merge member by member, `null` removes a value, lists are "
    "replaced whole. Send the ETag you read in `If-Match`: 428 without it, 412 if the record "
    "changed since (read it again, reapply, resend). The change history keeps every field's "
    "old and new value.",
)
async def update_client(
    client_id: Annotated[UUID, Path()],
    body: Annotated[ClientUpdate, Body(media_type=MERGE_PATCH_JSON)],
    guard: GuardDep,
    database: DatabaseDep,
    response: Response,
    if_match: IfMatch = None,
) -> ClientPublic:
    if if_match is None:
        raise precondition_required("record")
    async with unit_of_work(database) as uow:
        grant = await guard.authorize_client(
            uow.connection, "client.update", client_id, resource_type="client"
        )
        current = await service.get_client(uow.connection, client_id=client_id)
        assert current is not None
        if not matches(if_match, etag(current)):
            raise await guard.refuse(grant, stale("record"), Outcome.PRECONDITION_FAILED)
        try:
            changed = service.patched(current, body)
        except service.InconsistentRecord as inconsistent:
            raise ProblemError(
                422, "validation-error", "The request is not valid",
                detail="The change would leave the record inconsistent; nothing was changed.",
                errors=[
                    {"field": ".".join(str(p) for p in e["loc"]) or "body", "message": e["msg"],
                     "code": e["type"]}
                    for e in inconsistent.errors
                ],
            ) from inconsistent  # fmt: skip
        try:
            updated = await service.update_client(
                uow, current=current, changed=changed, changed_by=guard.principal
            )
        except service.StaleVersion:
            raise await guard.refuse(grant, stale("record"), Outcome.PRECONDITION_FAILED) from None
        await guard.audit(uow, grant)
    response.headers["ETag"] = etag(updated)
    return updated
