"""HTTP for the consent ledger: thin; rules live in service.py, permissions in access.py."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import JSONResponse

from services.intake.consents import service
from services.intake.consents.models import (
    ConsentCreate,
    ConsentPublic,
    ConsentStatus,
    RevocationRequest,
)
from shared.auth.guard import Grant, Guard, GuardDep
from shared.http import idempotency
from shared.http.app import DatabaseDep
from shared.http.pagination import (
    Cursor,
    Limit,
    Page,
    decode_keyset,
    keyset_page,
)
from shared.http.problems import ProblemError, problem_responses
from shared.messaging.outbox import UnitOfWork, unit_of_work

router = APIRouter(prefix="/v1/clients", tags=["consents"])

ClientId = Annotated[UUID, Path(description="The client's id.")]
ConsentId = Annotated[UUID, Path(description="The consent's id.")]


def etag(consent: ConsentPublic) -> str:
    # The representation changes only with the status (revocation, or the calendar).
    return f'"{consent.id}.{consent.status}"'


def location(consent: ConsentPublic) -> str:
    return f"/v1/clients/{consent.client_id}/consents/{consent.id}"


async def _authorize_write(
    guard: Guard, uow: UnitOfWork, client_id: UUID, resource_id: str | None = None
) -> Grant:
    # Only those who hold the case record consent: the Guard never lets break-glass write.
    return await guard.authorize_client(
        uow.connection, "consent.write", client_id, resource_type="consent", resource_id=resource_id
    )


@router.post(
    "/{client_id}/consents",
    status_code=201,
    response_model=ConsentPublic,
    responses=problem_responses(400, 401, 403, 404, 413, 422),
    summary="Record a client's consent",
    description="Stores the consent and publishes it (ids and codes only): `ConsentGranted` "
    "with the general class when it covers `general`, `ProtectedConsentGranted` with its "
    "protected classes (on a protected topic) when it covers any. A "
    "consent names its recipient organisations or the whole network (`network: true`); a "
    "network-wide consent cannot cover domestic_violence (VAWA) or substance_use (42 CFR Part "
    "2) data. It applies from `starts_on` up to, not including, `expires_on`.",
)
async def grant_consent(
    client_id: ClientId,
    body: ConsentCreate,
    guard: GuardDep,
    database: DatabaseDep,
    response: Response,
    idempotency_key: idempotency.IdempotencyKey = None,
) -> ConsentPublic | JSONResponse:
    idempotent = idempotency.IdempotentCreate(
        idempotency_key, "grant_consent", guard.principal, body, target=client_id
    )
    async with unit_of_work(database) as uow:
        connection = uow.connection
        grant = await _authorize_write(guard, uow, client_id)
        stored = await idempotent.previous(connection)
        if stored is not None:
            replayed = ConsentPublic.model_validate(stored.body)
            await guard.audit(uow, grant.about(resource_id=str(replayed.id), client_id=client_id))
            return stored.replay({"ETag": etag(replayed), "Location": location(replayed)})
        consent = await service.grant_consent(
            uow, client_id=client_id, data=body, recorded_by=guard.principal
        )
        await idempotent.remember(connection, consent)
        await guard.audit(uow, grant.about(resource_id=str(consent.id), client_id=client_id))
    response.headers["ETag"] = etag(consent)
    response.headers["Location"] = location(consent)
    return consent


@router.get(
    "/{client_id}/consents",
    response_model=Page[ConsentPublic],
    responses=problem_responses(400, 401, 403, 404, 422),
    summary="List a client's consents, newest first",
)
async def list_consents(
    client_id: ClientId,
    guard: GuardDep,
    database: DatabaseDep,
    status: Annotated[
        ConsentStatus | None, Query(description="Only consents with this status today.")
    ] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[ConsentPublic]:
    after = decode_keyset(cursor) if cursor else None
    async with unit_of_work(database) as uow:
        grant = await guard.authorize_client(
            uow.connection, "consent.read", client_id, resource_type="consent"
        )
        consents = await service.list_consents(
            uow.connection, client_id=client_id, status=status, after=after, limit=limit + 1
        )
        page = keyset_page(consents, limit, lambda c: (c.recorded_at, c.id))
        # One record per consent the caller was shown: each consent's access log is complete.
        shown = [grant.about(resource_id=str(c.id), client_id=client_id) for c in page.items]
        await guard.audit(uow, *(shown or [grant]))
    return page


@router.get(
    "/{client_id}/consents/{consent_id}",
    response_model=ConsentPublic,
    responses=problem_responses(401, 403, 404, 422),
    summary="Read a consent",
)
async def get_consent(
    client_id: ClientId,
    consent_id: ConsentId,
    guard: GuardDep,
    database: DatabaseDep,
    response: Response,
) -> ConsentPublic:
    async with unit_of_work(database) as uow:
        grant = await guard.authorize_client(
            uow.connection,
            "consent.read",
            client_id,
            resource_type="consent",
            resource_id=str(consent_id),
        )
        consent = await guard.found(
            grant,
            await service.get_consent(uow.connection, client_id=client_id, consent_id=consent_id),
        )
        await guard.audit(uow, grant)
    response.headers["ETag"] = etag(consent)
    return consent


@router.post(
    "/{client_id}/consents/{consent_id}/revocation",
    response_model=ConsentPublic,
    responses=problem_responses(400, 401, 403, 404, 409, 413, 422),
    summary="Revoke a consent",
    description="From now on the consent covers nothing; publishes `ConsentRevoked`, or "
    "`ProtectedConsentRevoked` for a consent of protected classes only (the reason code, never "
    "the note). A consent is revoked once: a second revocation is 409.",
)
async def revoke_consent(
    client_id: ClientId,
    consent_id: ConsentId,
    body: RevocationRequest,
    guard: GuardDep,
    database: DatabaseDep,
    response: Response,
) -> ConsentPublic:
    async with unit_of_work(database) as uow:
        grant = await _authorize_write(guard, uow, client_id, str(consent_id))
        consent = await service.revoke_consent(
            uow, client_id=client_id, consent_id=consent_id, data=body, revoked_by=guard.principal
        )
        if consent is None:  # unknown (404), or revoked already (409 below)
            await guard.found(
                grant,
                await service.get_consent(
                    uow.connection, client_id=client_id, consent_id=consent_id
                ),
            )
        # Allowed either way (a second revocation only changes nothing): audited as allowed.
        await guard.audit(uow, grant)
    if consent is None:
        raise ProblemError(
            409,
            "consent-already-revoked",
            "Consent already revoked",
            detail="This consent was revoked already; a revocation is final and recorded once.",
        )
    response.headers["ETag"] = etag(consent)
    return consent
