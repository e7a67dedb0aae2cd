"""HTTP for closed-loop referrals: thin; rules live in service.py and transitions.json, access in
authorize.py and access.py."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from services.referrals.lifecycle import checks, service
from services.referrals.lifecycle.authorize import (
    RESOURCE,
    authorize_referral,
    sending_sides,
    visibility,
)
from services.referrals.lifecycle.models import (
    HistoryEntry,
    ReferralCreate,
    ReferralPublic,
    StatusChange,
)
from services.referrals.lifecycle.service import (
    Actor,
    Referral,
    Timing,
    TransitionRefused,
    Visibility,
)
from services.referrals.lifecycle.transitions import RefusalKind, Side
from shared.audit.log import Outcome
from shared.auth.guard import Grant, Guard, GuardDep
from shared.events.referrals import ReferralStatus
from shared.http import idempotency
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

router = APIRouter(prefix="/v1/referrals", tags=["referrals"])

ReferralId = Annotated[UUID, Path(description="The referral's id.")]


def etag(referral: Referral) -> str:
    return f'"{referral.id}.{referral.version}"'


def timing(request: Request) -> Timing:
    settings: Settings = request.app.state.settings
    return Timing(
        default_acceptance_days=settings.referral_default_acceptance_days,
        follow_up_days=settings.referral_follow_up_days,
    )


def refused_transition(refused: TransitionRefused) -> ProblemError:
    refusal = refused.refusal
    return ProblemError(
        409 if refusal.kind is RefusalKind.NOT_ALLOWED else 422,
        refusal.kind.value,
        "This status change is not allowed",
        detail=refusal.detail,
        allowed_next=[status.value for status in refusal.allowed_next],
    )


@router.post(
    "",
    status_code=201,
    response_model=ReferralPublic,
    responses={
        **problem_responses(400, 401, 403, 404, 413, 422),
        201: {"headers": RESOURCE_HEADERS},
    },
    summary="Refer a client to a service of the directory",
    description="`sent`: to a service of the network; the classes in `share` reach the "
    "service's organisation only under the client's consent (purpose `referral`, naming that "
    "organisation or the network, unexpired, covering each class; domestic_violence and "
    "substance_use only under a consent naming the organisation). Without one: 422 "
    "`consent-required` listing exactly what is missing. `logged`: records a referral and "
    "shares nothing (no consent needed); the only kind for a service outside the network. "
    "An unknown service is 422 `unknown-service`. Publishes `ReferralMade`; a requested sent "
    "referral expires unless accepted within the service's deadline.",
)
async def make_referral(
    body: ReferralCreate,
    request: Request,
    guard: GuardDep,
    database: DatabaseDep,
    clock: ClockDep,
    response: Response,
    idempotency_key: idempotency.IdempotencyKey = None,
) -> ReferralPublic | JSONResponse:
    idempotent = idempotency.IdempotentCreate(
        idempotency_key, "make_referral", guard.principal, body, target=body.client_id
    )
    now = clock.now()
    async with unit_of_work(database) as uow:
        connection = uow.connection
        grant = await guard.authorize_client(
            connection, "referral.create", body.client_id, resource_type=RESOURCE
        )
        stored = await idempotent.previous(connection)
        if stored is not None:
            replayed = ReferralPublic.model_validate(stored.body)
            await guard.audit(
                uow, grant.about(resource_id=str(replayed.id), client_id=replayed.client_id)
            )
            return stored.replay({"ETag": f'"{replayed.id}.{replayed.version}"',
                                  "Location": f"/v1/referrals/{replayed.id}"})  # fmt: skip
        target = await checks.target_of(connection, body.service_id)
        receiving = target.casework_organization_id
        if body.mode == "sent" and receiving is None:
            raise ProblemError(
                422, "service-outside-network", "The service is outside the network",
                detail="Nobody in the network receives referrals for this service: log the "
                "referral instead (mode `logged`), which records it and shares nothing.",
            )  # fmt: skip
        consent_id = None
        if body.mode == "sent" and not body.draft:
            assert receiving is not None
            consent_id = await checks.consent_for(
                connection, client_id=body.client_id, organization_id=receiving,
                data_classes=body.share, on=now.date(),
            )  # fmt: skip
        referral, events = await service.make_referral(
            connection,
            client_id=body.client_id,
            service_id=body.service_id,
            mode=body.mode,
            receiving_organization_id=receiving if body.mode == "sent" else None,
            share=body.share,
            consent_id=consent_id,
            note=body.note,
            draft=body.draft,
            acceptance_days=target.acceptance_days,
            made_by=Actor(Side.SENDING, guard.principal.organization_id, guard.principal.subject, "api"),
            now=now,
            timing=timing(request),
        )  # fmt: skip
        uow.publish(*events)
        shown = referral.shown_to(sending_sides(referral))
        await idempotent.remember(connection, shown)
        await guard.audit(
            uow, grant.about(resource_id=str(referral.id), client_id=referral.client_id)
        )
    response.headers["ETag"] = etag(referral)
    response.headers["Location"] = f"/v1/referrals/{referral.id}"
    return shown


@router.get(
    "",
    response_model=Page[ReferralPublic],
    responses=problem_responses(400, 401, 403, 422),
    summary="List the referrals you may see, newest first",
    description="`outgoing`: referrals of clients in your scope; `incoming`: sent referrals "
    "addressed to your organisation (partner staff and systems). Without `direction`, both.",
)
async def list_referrals(
    guard: GuardDep,
    database: DatabaseDep,
    client_id: Annotated[UUID | None, Query(description="Only this client's.")] = None,
    status: Annotated[ReferralStatus | None, Query(description="Only in this status.")] = None,
    direction: Annotated[Literal["incoming", "outgoing"] | None, Query()] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[ReferralPublic]:
    grant = await guard.require("referral.list", resource_type=RESOURCE)
    after = decode_keyset(cursor) if cursor else None
    seen_as = visibility(guard, "referral.list")
    async with unit_of_work(database) as uow:
        found = await service.list_referrals(
            uow.connection, visibility=seen_as, direction=direction, client_id=client_id,
            status=status, after=after, limit=limit + 1,
        )  # fmt: skip
        page = keyset_page(found, limit, lambda item: (item[0].created_at, item[0].id))
        # One record per referral shown: each client's access log is complete.
        shown = [grant.about(resource_id=str(r.id), client_id=r.client_id) for r, _ in page.items]
        await guard.audit(uow, *(shown or [grant]))
    return Page(
        items=[
            r.shown_to(_list_sides(r, guard.principal.organization_id, seen_as, by_client_scope))
            for r, by_client_scope in page.items
        ],
        next_cursor=page.next_cursor,
    )


def _list_sides(
    referral: Referral, organisation: str, seen_as: Visibility, by_client_scope: bool
) -> frozenset[Side]:
    """The caller's sides for a listed referral, by the same rule as `authorize_referral`."""
    sides: set[Side] = set()
    if (
        seen_as.incoming_organization_id is not None
        and referral.was_sent
        and referral.receiving_organization_id == organisation
    ):
        sides.add(Side.RECEIVING)
    if by_client_scope:
        sides |= sending_sides(referral)
    return frozenset(sides)


@router.get(
    "/{referral_id}",
    response_model=ReferralPublic,
    responses={
        **problem_responses(401, 403, 404, 422),
        200: {"headers": {"ETag": RESOURCE_HEADERS["ETag"]}},
    },
    summary="Read a referral",
    description="Ids and codes: the client's details are read at intake, within the consent. "
    "`your_sides` and `allowed_next` say what you may do with it.",
)
async def get_referral(
    referral_id: ReferralId, guard: GuardDep, database: DatabaseDep, response: Response
) -> ReferralPublic:
    async with unit_of_work(database) as uow:
        grant, referral, sides = await authorize_referral(
            guard, uow.connection, "referral.read", referral_id
        )
        await guard.audit(uow, grant)
    response.headers["ETag"] = etag(referral)
    return referral.shown_to(sides)


@router.get(
    "/{referral_id}/history",
    response_model=list[HistoryEntry],
    responses=problem_responses(401, 403, 404, 422),
    summary="Every status a referral took, who set it, when and why",
)
async def referral_history(
    referral_id: ReferralId, guard: GuardDep, database: DatabaseDep
) -> list[HistoryEntry]:
    async with unit_of_work(database) as uow:
        grant, referral, _ = await authorize_referral(
            guard, uow.connection, "referral.read", referral_id
        )
        entries = await service.history(uow.connection, referral.id)
        await guard.audit(uow, grant)
    return entries


@router.post(
    "/{referral_id}/status",
    response_model=ReferralPublic,
    responses={
        **problem_responses(400, 401, 403, 404, 409, 412, 413, 422, 428),
        200: {"headers": {"ETag": RESOURCE_HEADERS["ETag"]}},
    },
    summary="Move a referral to another status (If-Match required)",
    description="Follows the transition table (services/referrals/lifecycle/transitions.json): "
    "the sending side requests, cancels and marks entered-in-error; the receiving side "
    "accepts, rejects, starts, holds, fails and completes. A move the table does not allow "
    "your side is 409 `transition-not-allowed` naming `allowed_next`; rejected, cancelled, "
    "on-hold and failed need a `reason_code`; completed records an `outcome` and sets the "
    "follow-up date. Requesting a draft checks the consent as making a referral does. "
    "Publishes `ReferralStatusChanged`, and `ReferralClosed` on a final status.",
)
async def change_status(
    referral_id: ReferralId,
    body: StatusChange,
    request: Request,
    guard: GuardDep,
    database: DatabaseDep,
    clock: ClockDep,
    response: Response,
    if_match: IfMatch = None,
) -> ReferralPublic:
    if if_match is None:
        raise precondition_required("referral")
    async with unit_of_work(database) as uow:
        grant, referral, sides = await authorize_referral(
            guard, uow.connection, "referral.status", referral_id, for_update=True
        )
        if not matches(if_match, etag(referral)):
            raise await guard.refuse(grant, stale("referral"), Outcome.PRECONDITION_FAILED)
        changed = await apply_change(
            guard, uow, grant, referral, body, sides=sides, via="api", now=clock.now(),
            timing=timing(request),
        )  # fmt: skip
        await guard.audit(uow, grant)
    response.headers["ETag"] = etag(changed)
    return changed.shown_to(sides)


async def apply_change(
    guard: Guard,
    uow: UnitOfWork,
    grant: Grant,
    referral: Referral,
    body: StatusChange,
    *,
    sides: frozenset[Side],
    via: Literal["api", "fhir"],
    now: datetime,
    timing: Timing,
) -> Referral:
    """One status change by a caller, the same for the API and an inbound FHIR Task: a draft
    being requested is checked against the directory and the consent first."""
    connection = uow.connection
    acceptance_days = consent_id = None
    if (
        body.status is ReferralStatus.REQUESTED
        and referral.status is ReferralStatus.DRAFT
        and Side.SENDING in sides
    ):
        target = await checks.target_of(connection, referral.service_id)
        acceptance_days = target.acceptance_days
        if referral.mode == "sent":
            assert referral.receiving_organization_id is not None
            consent_id = await checks.consent_for(
                connection, client_id=referral.client_id,
                organization_id=referral.receiving_organization_id,
                data_classes=referral.data_classes, on=now.date(),
            )  # fmt: skip
    actor = Actor(Side.SENDING, guard.principal.organization_id, guard.principal.subject, via)
    try:
        changed, events = await service.change_status(
            connection, referral, to=body.status, reason=body.reason_code, outcome=body.outcome,
            sides=sides, actor=actor, now=now, timing=timing, acceptance_days=acceptance_days,
            consent_id=consent_id,
        )  # fmt: skip
    except TransitionRefused as refused:
        raise await guard.refuse(grant, refused_transition(refused), Outcome.INVALID) from None
    except service.StaleVersion:
        raise await guard.refuse(grant, stale("referral"), Outcome.PRECONDITION_FAILED) from None
    uow.publish(*events)
    return changed
