"""HTTP for webhook subscriptions and their delivery log: thin; rules in service.py, the target
rules in targets.py, permissions in access.py (an organisation's `integration` and `admin`
users). Subscriptions are the organisation's configuration, not client data: every query is
within the caller's organisation, and another organisation's subscription is a 404. Reads and
writes are audited (resource type `webhook`, no client)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path, Response
from fastapi.responses import JSONResponse

from services.notifications.webhooks import service
from services.notifications.webhooks.catalogue import DELIVERABLE, undeliverable
from services.notifications.webhooks.models import (
    DeliveryPublic,
    EventTypeInfo,
    SecretRotation,
    WebhookCreate,
    WebhookPatch,
    WebhookPublic,
    WebhookWithSecret,
)
from services.notifications.webhooks.secrets_at_rest import seal, unseal, webhook_secret_keys
from services.notifications.webhooks.targets import TargetRefused, check_url
from shared.audit.log import Outcome
from shared.auth.guard import Grant, Guard, GuardDep
from shared.http import idempotency
from shared.http.app import ClockDep, DatabaseDep, SettingsDep
from shared.http.pagination import Cursor, Limit, Page, decode_keyset, keyset_page
from shared.http.preconditions import IfMatch, matches, precondition_required, stale
from shared.http.problems import ProblemError, not_found, problem_responses
from shared.messaging.outbox import UnitOfWork, unit_of_work
from shared.settings import Settings

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

READ, WRITE = "webhook.read", "webhook.write"
RESOURCE = "webhook"

WebhookId = Annotated[UUID, Path(description="The subscription's id.")]
DeliveryId = Annotated[UUID, Path(description="The delivery's id (its `webhook-id` header).")]


def etag(webhook: WebhookPublic) -> str:
    return f'"{webhook.id}.{webhook.version}"'


def location(webhook: WebhookPublic) -> str:
    return f"/v1/webhooks/{webhook.id}"


def _refused_types(names: list[str], field: str) -> ProblemError | None:
    unknown = undeliverable(names)
    if not unknown:
        return None
    message = (
        f"not an event type agency systems may subscribe to: {', '.join(unknown)} (unknown, "
        "protected or the audit stream; see GET /v1/webhooks/event-types)"
    )
    return ProblemError(
        422,
        "unknown-event-type",
        "Unknown event type",
        detail=message,
        errors=[{"field": field, "message": message, "code": "unknown-event-type"}],
    )


def _refused_target(refused: TargetRefused, field: str) -> ProblemError:
    return ProblemError(
        422,
        refused.code,
        "This URL cannot receive webhooks",
        detail=f"{refused} Nothing was changed.",
        errors=[{"field": field, "message": str(refused), "code": refused.code}],
    )


async def _check_body(
    guard: Guard, grant: Grant, settings: Settings, url: str | None, types: list[str] | None
) -> None:
    """Event types and URL, before any transaction (resolving a name may take a while)."""
    if types is not None:
        problem = _refused_types(types, "body.event_types")
        if problem is not None:
            raise await guard.refuse(grant, problem, Outcome.DENIED)
    if url is not None:
        try:
            await check_url(url, settings)
        except TargetRefused as refused:
            raise await guard.refuse(grant, _refused_target(refused, "body.url")) from None


async def _found(
    guard: Guard, grant: Grant, uow: UnitOfWork, subscription_id: UUID
) -> WebhookPublic:
    found = await service.get(
        uow.connection,
        organization_id=guard.principal.organization_id,
        subscription_id=subscription_id,
    )
    if found is None:
        raise await guard.refuse(grant, not_found(RESOURCE), Outcome.NOT_FOUND)
    return found


@router.get(
    "/event-types",
    response_model=list[EventTypeInfo],
    responses=problem_responses(401, 403),
    summary="The event types a webhook may subscribe to",
    description="The general topics' events (ids and codes only). Protected-topic events and "
    "the audit stream are never delivered by webhook.",
)
async def list_event_types(guard: GuardDep) -> list[EventTypeInfo]:
    await guard.require(READ, resource_type=RESOURCE)
    return [
        EventTypeInfo(event_type=name, summary=model.summary) for name, model in DELIVERABLE.items()
    ]


@router.post(
    "",
    status_code=201,
    response_model=WebhookWithSecret,
    responses=problem_responses(400, 401, 403, 413, 422),
    summary="Subscribe a URL to event types",
    description="The answer carries the subscription's signing `secret`, shown this once. The "
    "URL must be https and resolve to public addresses only (422 otherwise: "
    "`https-required`, `target-not-public`, `target-unresolvable`, `credentials-in-url`, "
    "`invalid-url`); the event types must be ones agency systems may receive "
    "(`unknown-event-type`).",
)
async def create_webhook(
    body: WebhookCreate,
    guard: GuardDep,
    database: DatabaseDep,
    clock: ClockDep,
    settings: SettingsDep,
    response: Response,
    idempotency_key: idempotency.IdempotencyKey = None,
) -> WebhookWithSecret | JSONResponse:
    grant = await guard.require(WRITE, resource_type=RESOURCE)
    await _check_body(guard, grant, settings, body.url, body.event_types)
    idempotent = idempotency.IdempotentCreate(
        idempotency_key, "create_webhook", guard.principal, body
    )
    keys = webhook_secret_keys(settings)
    async with unit_of_work(database) as uow:
        stored = await idempotent.previous(uow.connection)
        if stored is not None:
            # The remembered answer holds the secret sealed, as the subscription does.
            replayed = WebhookWithSecret.model_validate(stored.body)
            replayed.secret = unseal(keys, replayed.secret, subscription_id=replayed.id)
            await guard.audit(uow, grant.about(resource_id=str(replayed.id), client_id=None))
            return replace(stored, body=replayed.model_dump(mode="json")).replay(
                {"ETag": etag(replayed), "Location": location(replayed)}
            )
        webhook, secret = await service.create(
            uow.connection,
            organization_id=guard.principal.organization_id,
            created_by=guard.principal.subject,
            data=body,
            keys=keys,
            now=clock.now(),
        )
        created = WebhookWithSecret(**webhook.model_dump(), secret=secret)
        sealed = seal(keys, secret, subscription_id=webhook.id)
        await idempotent.remember(uow.connection, created.model_copy(update={"secret": sealed}))
        await guard.audit(uow, grant.about(resource_id=str(webhook.id), client_id=None))
    response.headers["ETag"] = etag(webhook)
    response.headers["Location"] = location(webhook)
    return created


@router.get(
    "",
    response_model=Page[WebhookPublic],
    responses=problem_responses(400, 401, 403, 422),
    summary="Your organisation's webhook subscriptions, oldest first",
)
async def list_webhooks(
    guard: GuardDep, database: DatabaseDep, cursor: Cursor = None, limit: Limit = 50
) -> Page[WebhookPublic]:
    grant = await guard.require(READ, resource_type=RESOURCE)
    after = decode_keyset(cursor) if cursor else None
    async with unit_of_work(database) as uow:
        found = await service.list_subscriptions(
            uow.connection,
            organization_id=guard.principal.organization_id,
            after=after,
            limit=limit + 1,
        )
        page = keyset_page(found, limit, lambda w: (w.created_at, w.id))
        shown = [grant.about(resource_id=str(w.id), client_id=None) for w in page.items]
        await guard.audit(uow, *(shown or [grant]))
    return page


@router.get(
    "/{webhook_id}",
    response_model=WebhookPublic,
    responses=problem_responses(401, 403, 404, 422),
    summary="Read a subscription (never its secret)",
)
async def get_webhook(
    webhook_id: WebhookId, guard: GuardDep, database: DatabaseDep, response: Response
) -> WebhookPublic:
    grant = await guard.require(READ, resource_type=RESOURCE, resource_id=str(webhook_id))
    async with unit_of_work(database) as uow:
        webhook = await _found(guard, grant, uow, webhook_id)
        await guard.audit(uow, grant)
    response.headers["ETag"] = etag(webhook)
    return webhook


@router.patch(
    "/{webhook_id}",
    response_model=WebhookPublic,
    responses=problem_responses(400, 401, 403, 404, 412, 413, 422, 428),
    summary="Change a subscription (If-Match required)",
    description="Only the fields present change. `state: disabled` stops deliveries (those "
    "waiting fail); `state: active` resumes a disabled one. A new URL or event types are "
    "checked as when subscribing.",
)
async def patch_webhook(
    webhook_id: WebhookId,
    body: WebhookPatch,
    guard: GuardDep,
    database: DatabaseDep,
    clock: ClockDep,
    settings: SettingsDep,
    response: Response,
    if_match: IfMatch = None,
) -> WebhookPublic:
    grant = await guard.require(WRITE, resource_type=RESOURCE, resource_id=str(webhook_id))
    async with unit_of_work(database) as uow:
        current = await _found(guard, grant, uow, webhook_id)
    if if_match is None:
        raise await guard.refuse(
            grant, precondition_required(RESOURCE), Outcome.PRECONDITION_FAILED
        )
    await _check_body(guard, grant, settings, body.url, body.event_types)
    async with unit_of_work(database) as uow:
        current = await _found(guard, grant, uow, webhook_id)
        if not matches(if_match, etag(current)):
            raise await guard.refuse(grant, stale(RESOURCE), Outcome.PRECONDITION_FAILED)
        webhook = await service.update(uow.connection, current=current, patch=body, now=clock.now())
        await guard.audit(uow, grant)
    response.headers["ETag"] = etag(webhook)
    return webhook


@router.delete(
    "/{webhook_id}",
    status_code=204,
    responses=problem_responses(401, 403, 404, 422),
    summary="Delete a subscription",
    description="No more deliveries; those waiting fail. Its delivery log is kept as the "
    "record of what was sent, but no longer served.",
)
async def delete_webhook(
    webhook_id: WebhookId, guard: GuardDep, database: DatabaseDep, clock: ClockDep
) -> Response:
    grant = await guard.require(WRITE, resource_type=RESOURCE, resource_id=str(webhook_id))
    async with unit_of_work(database) as uow:
        current = await _found(guard, grant, uow, webhook_id)
        await service.delete(uow.connection, current=current, now=clock.now())
        await guard.audit(uow, grant)
    return Response(status_code=204)


@router.post(
    "/{webhook_id}/secret-rotation",
    response_model=WebhookWithSecret,
    responses=problem_responses(400, 401, 403, 404, 413, 422),
    summary="Rotate the signing secret",
    description="Answers the new secret, shown this once. For `previous_valid_hours` (default "
    "24) deliveries are signed with both secrets (two signatures in `webhook-signature`).",
)
async def rotate_secret(
    webhook_id: WebhookId,
    guard: GuardDep,
    database: DatabaseDep,
    clock: ClockDep,
    settings: SettingsDep,
    response: Response,
    body: SecretRotation | None = None,
) -> WebhookWithSecret:
    grant = await guard.require(WRITE, resource_type=RESOURCE, resource_id=str(webhook_id))
    rotation = body or SecretRotation()
    async with unit_of_work(database) as uow:
        current = await _found(guard, grant, uow, webhook_id)
        webhook, secret = await service.rotate_secret(
            uow.connection,
            current=current,
            previous_valid=timedelta(hours=rotation.previous_valid_hours),
            keys=webhook_secret_keys(settings),
            now=clock.now(),
        )
        await guard.audit(uow, grant)
    response.headers["ETag"] = etag(webhook)
    return WebhookWithSecret(**webhook.model_dump(), secret=secret)


@router.get(
    "/{webhook_id}/deliveries",
    response_model=Page[DeliveryPublic],
    responses=problem_responses(400, 401, 403, 404, 422),
    summary="The subscription's delivery log, newest first",
    description="Each delivery with its state (pending, retrying, delivered, failed) and its "
    "attempts: when, the subscriber's status code, the error, how long it took.",
)
async def list_deliveries(
    webhook_id: WebhookId,
    guard: GuardDep,
    database: DatabaseDep,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[DeliveryPublic]:
    grant = await guard.require(READ, resource_type=RESOURCE, resource_id=str(webhook_id))
    after = decode_keyset(cursor) if cursor else None
    async with unit_of_work(database) as uow:
        await _found(guard, grant, uow, webhook_id)
        found = await service.list_deliveries(
            uow.connection, subscription_id=webhook_id, after=after, limit=limit + 1
        )
        page = keyset_page(found, limit, lambda d: (d.created_at, d.id))
        await guard.audit(uow, grant)
    return page


@router.get(
    "/{webhook_id}/deliveries/{delivery_id}",
    response_model=DeliveryPublic,
    responses=problem_responses(401, 403, 404, 422),
    summary="One delivery and its attempts",
)
async def get_delivery(
    webhook_id: WebhookId, delivery_id: DeliveryId, guard: GuardDep, database: DatabaseDep
) -> DeliveryPublic:
    grant = await guard.require(READ, resource_type=RESOURCE, resource_id=str(webhook_id))
    async with unit_of_work(database) as uow:
        await _found(guard, grant, uow, webhook_id)
        delivery = await service.get_delivery(
            uow.connection, subscription_id=webhook_id, delivery_id=delivery_id
        )
        delivery = await guard.found(grant, delivery)
        await guard.audit(uow, grant)
    return delivery


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/redelivery",
    status_code=202,
    response_model=DeliveryPublic,
    responses=problem_responses(401, 403, 404, 409, 422),
    summary="Send a delivery again",
    description="The delivery is due again at once, with a new retry window; its attempt log "
    "goes on. The subscription must be active (409 otherwise); consent is checked again "
    "before the attempt.",
)
async def redeliver(
    webhook_id: WebhookId, delivery_id: DeliveryId, guard: GuardDep, database: DatabaseDep
) -> DeliveryPublic:
    grant = await guard.require(WRITE, resource_type=RESOURCE, resource_id=str(webhook_id))
    async with unit_of_work(database) as uow:
        webhook = await _found(guard, grant, uow, webhook_id)
        found = await service.get_delivery(
            uow.connection, subscription_id=webhook_id, delivery_id=delivery_id
        )
        await guard.found(grant, found)
        if webhook.state != "active":
            raise await guard.refuse(
                grant,
                ProblemError(
                    409,
                    "subscription-disabled",
                    "The subscription is disabled",
                    detail="Enable it first (PATCH with state: active), then redeliver.",
                ),
            )
        await service.redeliver(uow.connection, delivery_id=delivery_id)
        delivery = await service.get_delivery(
            uow.connection, subscription_id=webhook_id, delivery_id=delivery_id
        )
        await guard.audit(uow, grant)
    assert delivery is not None
    return delivery
