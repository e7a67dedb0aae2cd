"""Webhooks for agency systems, end to end: a real local HTTP server receives deliveries and
verifies their Standard Webhooks signatures with the `standardwebhooks` library; failures are
retried on the worker's (frozen, moved) clock and, past the retry window, the subscription is
disabled; consent and protected data decide who receives what; private targets are refused."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from standardwebhooks.webhooks import Webhook

from services.notifications.main import SPEC
from services.notifications.webhooks.catalogue import DELIVERABLE
from services.notifications.webhooks.fanout import WEBHOOK_HANDLERS
from services.registry import TOPICS
from shared.clock import FrozenClock
from shared.events.assessment import ClientAssessed, ProtectedFlagRaised
from shared.events.consent import ConsentGranted, ProtectedConsentGranted
from shared.events.contracts import ClientRegistered, ClientUpdated, Topic
from shared.events.protection import PROTECTED_TOPIC_READERS
from shared.events.registry import EVENT_TYPES
from shared.http.app import create_app
from shared.settings import Settings
from tests.conftest import make_settings
from tests.support import (
    CASEWORKER,
    VALID_CLIENT,
    Stack,
    User,
    admin_fetchval,
    bearer,
    eventually,
    running_stack,
)
from tests.test_scoring import NO_NEEDS
from tests.webhook_receiver import Receiver, garbage_server, running_receiver

ALICE = CASEWORKER
AGENCY_A = User("agency-a", ("integration",), "org-a", None)
ADMIN_A = User("ada", ("admin",), "org-a", None)
AGENCY_B = User("agency-b", ("integration",), "org-b", None)
REGISTERED = ClientRegistered.event_type
UPDATED = ClientUpdated.event_type


@pytest.fixture(scope="module")
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture(scope="module")
async def webhook_settings(settings: Settings) -> Settings:
    """The session's database and broker; a receiver on this machine (http, loopback)."""
    return make_settings(
        settings.database_url,
        settings.kafka_bootstrap,
        audit_checkpoint_file=settings.audit_checkpoint_file,
        webhook_allow_http=True,
        webhook_allow_private_targets=True,
        webhook_poll_seconds=0.05,
        webhook_timeout_seconds=2.0,
    )


@pytest.fixture(scope="module")
async def wstack(webhook_settings: Settings, clock: FrozenClock) -> AsyncIterator[Stack]:
    async with running_stack(webhook_settings, clock=clock) as stack:
        yield stack


@pytest.fixture(scope="module", autouse=True)
async def no_subscription_outlives_the_module(settings: Settings) -> AsyncIterator[None]:
    """Other modules share this database: what is subscribed here must not go on receiving
    (and retrying) their events."""
    yield
    await admin_fetchval(
        settings, "UPDATE notifications.webhook_subscriptions SET deleted_at = now()"
    )
    await admin_fetchval(
        settings,
        "UPDATE notifications.webhook_deliveries SET state = 'failed', next_attempt_at = NULL "
        "WHERE state IN ('pending', 'retrying')",
    )


@pytest.fixture(scope="module")
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as running:
        yield running


async def subscribe(
    stack: Stack, settings: Settings, user: User, url: str, event_types: list[str]
) -> dict[str, Any]:
    response = await stack.api["notifications"].post(
        "/v1/webhooks",
        json={"url": url, "event_types": event_types, "description": "Case system"},
        headers=bearer(settings, user),
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def register(stack: Stack) -> str:
    response = await stack.api["intake"].post("/v1/clients", json=VALID_CLIENT)
    assert response.status_code == 201, response.text
    client_id: str = response.json()["id"]
    return client_id


def about(receiver: Receiver, path: str, client_id: str) -> list[dict[str, Any]]:
    return [
        json.loads(r.body)
        for r in receiver.at(path)
        if json.loads(r.body)["data"].get("client_id") == client_id
    ]


async def received(receiver: Receiver, path: str, client_id: str) -> dict[str, Any]:
    """The first CloudEvent about the client the receiver got at `path`."""

    async def probe() -> dict[str, Any] | None:
        found = about(receiver, path, client_id)
        return found[0] if found else None

    return await eventually(probe, timeout=15)


async def deliveries(
    stack: Stack, settings: Settings, user: User, webhook_id: str
) -> list[dict[str, Any]]:
    response = await stack.api["notifications"].get(
        f"/v1/webhooks/{webhook_id}/deliveries", headers=bearer(settings, user)
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def delivery_where(
    stack: Stack, settings: Settings, user: User, webhook_id: str, *, event_id: str | None = None,
    state: str, attempts: int | None = None,
) -> dict[str, Any]:  # fmt: skip
    async def probe() -> dict[str, Any] | None:
        for item in await deliveries(stack, settings, user, webhook_id):
            if (
                (event_id is None or item["event_id"] == event_id)
                and item["state"] == state
                and (attempts is None or item["attempts"] == attempts)
            ):
                return item
        return None

    return await eventually(probe, timeout=15)


# --- what may be subscribed -------------------------------------------------------------------


def test_protected_and_audit_events_are_never_deliverable() -> None:
    protected = {t for t, m in EVENT_TYPES.items() if m.topic in PROTECTED_TOPIC_READERS}
    audit = {t for t, m in EVENT_TYPES.items() if m.topic == Topic.AUDIT}
    assert {ProtectedFlagRaised.event_type, ProtectedConsentGranted.event_type} <= protected
    assert not (protected | audit) & set(DELIVERABLE)
    assert not (protected | audit) & set(WEBHOOK_HANDLERS)
    assert REGISTERED in DELIVERABLE


async def test_unknown_or_protected_event_types_are_refused(
    wstack: Stack, webhook_settings: Settings, receiver: Receiver
) -> None:
    for event_type in ("org.casework.nothing.v1", ProtectedFlagRaised.event_type):
        response = await wstack.api["notifications"].post(
            "/v1/webhooks",
            json={"url": receiver.url("/ok/x"), "event_types": [REGISTERED, event_type]},
            headers=bearer(webhook_settings, AGENCY_A),
        )
        assert response.status_code == 422, response.text
        problem = response.json()
        assert problem["type"].endswith("unknown-event-type")
        assert problem["errors"][0]["field"] == "body.event_types"
        assert event_type in problem["detail"]
    listed = await wstack.api["notifications"].get(
        "/v1/webhooks", headers=bearer(webhook_settings, AGENCY_A)
    )
    assert all(receiver.url("/ok/x") != w["url"] for w in listed.json()["items"])


async def test_private_targets_and_plain_http_are_refused_unless_allowed(
    settings: Settings,
) -> None:
    """The session's settings are production's: https only, public addresses only."""
    app = create_app(SPEC, settings, topics=TOPICS)
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://notifications.test"
        ) as api,
    ):
        refused = {
            "http://agency.example.org/hook": "https-required",
            "https://127.0.0.1/hook": "target-not-public",
            "https://10.1.2.3:8443/hook": "target-not-public",
            "https://[::1]/hook": "target-not-public",
            "https://169.254.169.254/latest/meta-data": "target-not-public",
            "https://localhost/hook": "target-not-public",
            "https://user:pw@agency.example.org/hook": "credentials-in-url",
        }
        for url, code in refused.items():
            response = await api.post(
                "/v1/webhooks",
                json={"url": url, "event_types": [REGISTERED]},
                headers=bearer(settings, AGENCY_A),
            )
            assert response.status_code == 422, (url, response.text)
            assert response.json()["type"].endswith(code), (url, response.json())
            assert response.json()["errors"][0]["field"] == "body.url"
    created = await admin_fetchval(
        settings,
        "SELECT count(*) FROM notifications.webhook_subscriptions WHERE url = ANY($1::text[])",
        list(refused),
    )
    assert created == 0


# --- delivery, signature, log -----------------------------------------------------------------


async def test_a_delivery_is_signed_and_verified_with_the_library(
    wstack: Stack, webhook_settings: Settings, receiver: Receiver
) -> None:
    path = f"/ok/{uuid.uuid4().hex}"
    webhook = await subscribe(wstack, webhook_settings, AGENCY_A, receiver.url(path), [REGISTERED])
    assert webhook["secret"].startswith("whsec_")
    client_id = await register(wstack)

    got = await received(receiver, path, client_id)
    request = next(r for r in receiver.at(path) if json.loads(r.body) == got)
    verified = Webhook(webhook["secret"]).verify(request.body, request.headers)
    assert verified["data"]["client_id"] == client_id
    assert request.headers["content-type"] == "application/cloudevents+json"
    assert got["type"] == REGISTERED and got["specversion"] == "1.0"
    assert got["source"] == "/casework/intake"
    # Ids and codes only: nothing of the person.
    assert VALID_CLIENT["family_name"] not in request.body.decode()
    assert VALID_CLIENT["birth_date"] not in request.body.decode()
    with pytest.raises(Exception, match=r"(?i)signature"):
        Webhook("whsec_" + "A" * 43 + "=").verify(request.body, request.headers)

    item = await delivery_where(
        wstack, webhook_settings, AGENCY_A, webhook["id"], event_id=got["id"], state="delivered"
    )
    assert request.headers["webhook-id"] == item["id"]
    assert item["attempts"] == 1 and item["last_status_code"] == 204
    assert [a["status_code"] for a in item["attempt_log"]] == [204]
    audited = await admin_fetchval(
        webhook_settings,
        "SELECT count(*) FROM notifications.audit_log WHERE action = 'webhook.deliver' "
        "AND resource_id = $1 AND client_id = $2 AND actor_organization_id = 'org-a'",
        item["id"],
        uuid.UUID(client_id),
    )
    assert audited == 1

    # A manual redelivery: the same message (same webhook-id) again, logged as attempt 2.
    redelivered = await wstack.api["notifications"].post(
        f"/v1/webhooks/{webhook['id']}/deliveries/{item['id']}/redelivery",
        headers=bearer(webhook_settings, ADMIN_A),
    )
    assert redelivered.status_code == 202, redelivered.text
    await delivery_where(
        wstack, webhook_settings, AGENCY_A, webhook["id"], event_id=got["id"], state="delivered",
        attempts=2,
    )  # fmt: skip
    again = [r for r in receiver.at(path) if r.headers["webhook-id"] == item["id"]]
    assert len(again) == 2


async def test_another_organisation_cannot_see_or_change_a_subscription(
    wstack: Stack, webhook_settings: Settings, receiver: Receiver
) -> None:
    webhook = await subscribe(
        wstack, webhook_settings, AGENCY_A, receiver.url("/ok/walls"), [REGISTERED]
    )
    api = wstack.api["notifications"]
    stranger = bearer(webhook_settings, AGENCY_B)
    assert (await api.get(f"/v1/webhooks/{webhook['id']}", headers=stranger)).status_code == 404
    deleted = await api.delete(f"/v1/webhooks/{webhook['id']}", headers=stranger)
    assert deleted.status_code == 404
    listed = await api.get("/v1/webhooks", headers=stranger)
    assert webhook["id"] not in [w["id"] for w in listed.json()["items"]]
    # A caseworker manages no subscriptions at all.
    mine = await api.get("/v1/webhooks", headers=bearer(webhook_settings, ALICE))
    assert mine.status_code == 403
    # The owner reads it, without its secret.
    read = await api.get(f"/v1/webhooks/{webhook['id']}", headers=bearer(webhook_settings, ADMIN_A))
    assert read.status_code == 200 and "secret" not in read.json()


async def test_a_rotated_secret_and_the_previous_one_both_verify(
    wstack: Stack, webhook_settings: Settings, receiver: Receiver
) -> None:
    path = f"/ok/{uuid.uuid4().hex}"
    webhook = await subscribe(wstack, webhook_settings, AGENCY_A, receiver.url(path), [REGISTERED])
    rotated = await wstack.api["notifications"].post(
        f"/v1/webhooks/{webhook['id']}/secret-rotation",
        json={"previous_valid_hours": 1},
        headers=bearer(webhook_settings, AGENCY_A),
    )
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["secret"] != webhook["secret"]
    client_id = await register(wstack)
    await received(receiver, path, client_id)
    request = next(r for r in receiver.at(path) if client_id in r.body.decode())
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    for secret in (webhook["secret"], rotated.json()["secret"]):
        assert (
            Webhook(secret).verify(request.body, request.headers)["data"]["client_id"] == client_id
        )


# --- slow and garbage subscribers -------------------------------------------------------------


async def test_a_slow_or_garbage_subscriber_blocks_nobody_and_is_recorded_as_failed(
    wstack: Stack, webhook_settings: Settings, receiver: Receiver
) -> None:
    held, fine = f"/held/{uuid.uuid4().hex}", f"/ok/{uuid.uuid4().hex}"
    receiver.release.clear()
    async with garbage_server() as garbage_port:
        slow = await subscribe(wstack, webhook_settings, AGENCY_A, receiver.url(held), [REGISTERED])
        garbage = await subscribe(
            wstack, webhook_settings, AGENCY_A, f"http://127.0.0.1:{garbage_port}/", [REGISTERED]
        )
        good = await subscribe(wstack, webhook_settings, AGENCY_A, receiver.url(fine), [REGISTERED])
        client_id = await register(wstack)
        # The good subscriber gets it while the slow one still holds its request.
        await received(receiver, fine, client_id)
        assert not receiver.release.is_set()
        await delivery_where(wstack, webhook_settings, AGENCY_A, good["id"], state="delivered")
        broken = await delivery_where(
            wstack, webhook_settings, AGENCY_A, garbage["id"], state="retrying"
        )
        assert broken["last_status_code"] is None
        assert "Protocol" in broken["last_error"] or "Error" in broken["last_error"]
        timed_out = await delivery_where(
            wstack, webhook_settings, AGENCY_A, slow["id"], state="retrying"
        )
        assert timed_out["last_error"] == "no answer within 2 s"
        assert timed_out["next_attempt_at"] is not None
    receiver.release.set()
    for webhook in (slow, garbage):  # stop them retrying in the following tests
        await _disable(wstack, webhook_settings, webhook)


async def _disable(stack: Stack, settings: Settings, webhook: dict[str, Any]) -> None:
    api = stack.api["notifications"]
    current = await api.get(f"/v1/webhooks/{webhook['id']}", headers=bearer(settings, AGENCY_A))
    response = await api.patch(
        f"/v1/webhooks/{webhook['id']}",
        json={"state": "disabled"},
        headers={**bearer(settings, AGENCY_A), "If-Match": current.headers["ETag"]},
    )
    assert response.status_code == 200, response.text
    assert response.json()["disabled_reason"] == "by-owner"


# --- retries on the clock, then disabled --------------------------------------------------------


async def test_failures_are_retried_with_backoff_then_the_subscription_is_disabled(
    wstack: Stack, webhook_settings: Settings, receiver: Receiver, clock: FrozenClock
) -> None:
    path = f"/status/503/{uuid.uuid4().hex}"
    webhook = await subscribe(wstack, webhook_settings, AGENCY_A, receiver.url(path), [UPDATED])
    client_id = await register(wstack)
    await _update(wstack, client_id)
    first = await delivery_where(
        wstack, webhook_settings, AGENCY_A, webhook["id"], state="retrying"
    )
    assert first["attempts"] == 1 and first["last_status_code"] == 503
    # Nothing more happens until the clock reaches the next attempt; then it is tried again.
    receiver_count = len(receiver.at(path))
    clock.advance(timedelta(seconds=webhook_settings.webhook_retry_base_seconds))
    second = await delivery_where(
        wstack, webhook_settings, AGENCY_A, webhook["id"], state="retrying", attempts=2
    )
    assert len(receiver.at(path)) == receiver_count + 1
    assert [a["status_code"] for a in second["attempt_log"]] == [503, 503]

    # A day later the retry window is over: the delivery fails, the subscription is disabled.
    clock.advance(timedelta(hours=webhook_settings.webhook_retry_window_hours + 1))
    failed = await delivery_where(wstack, webhook_settings, AGENCY_A, webhook["id"], state="failed")
    assert failed["attempts"] == 3
    read = await wstack.api["notifications"].get(
        f"/v1/webhooks/{webhook['id']}", headers=bearer(webhook_settings, AGENCY_A)
    )
    assert read.json()["state"] == "disabled"
    assert read.json()["disabled_reason"] == "deliveries-failing"
    # Its creator is told in their inbox.
    told = await admin_fetchval(
        webhook_settings,
        "SELECT count(*) FROM notifications.notifications WHERE recipient_id = 'agency-a' "
        "AND organization_id = 'org-a' AND kind = 'webhook_disabled' AND subject_id = $1",
        webhook["id"],
    )
    assert told == 1

    # Redelivery needs it enabled again.
    refused = await wstack.api["notifications"].post(
        f"/v1/webhooks/{webhook['id']}/deliveries/{failed['id']}/redelivery",
        headers=bearer(webhook_settings, AGENCY_A),
    )
    assert refused.status_code == 409, refused.text


async def test_a_failing_subscriber_that_recovers_gets_the_delivery(
    wstack: Stack, webhook_settings: Settings, receiver: Receiver, clock: FrozenClock
) -> None:
    path = f"/flaky/{uuid.uuid4().hex}"
    receiver.answers[path] = 500
    webhook = await subscribe(wstack, webhook_settings, AGENCY_A, receiver.url(path), [UPDATED])
    client_id = await register(wstack)
    await _update(wstack, client_id)
    await delivery_where(wstack, webhook_settings, AGENCY_A, webhook["id"], state="retrying")
    receiver.answers[path] = 200
    clock.advance(timedelta(seconds=webhook_settings.webhook_retry_base_seconds))
    done = await delivery_where(
        wstack, webhook_settings, AGENCY_A, webhook["id"], state="delivered"
    )
    assert [a["status_code"] for a in done["attempt_log"]] == [200, 500]


async def _update(stack: Stack, client_id: str) -> None:
    intake = stack.api["intake"]
    current = await intake.get(f"/v1/clients/{client_id}")
    response = await intake.patch(
        f"/v1/clients/{client_id}",
        json={"phone": f"555-010-{uuid.uuid4().int % 10000:04d}"},
        headers={
            "If-Match": current.headers["ETag"],
            "content-type": "application/merge-patch+json",
        },
    )
    assert response.status_code == 200, response.text


# --- consent and protected data ---------------------------------------------------------------

NEXT_YEAR = (date.today() + timedelta(days=365)).isoformat()


def consent_for(organization_id: str, purposes: list[str]) -> dict[str, Any]:
    return {
        "given_by": "client",
        "recipients": [organization_id],
        "purposes": purposes,
        "data_classes": ["general"],
        "expires_on": NEXT_YEAR,
    }


async def grant(stack: Stack, client_id: str, body: dict[str, Any]) -> str:
    response = await stack.api["intake"].post(f"/v1/clients/{client_id}/consents", json=body)
    assert response.status_code == 201, response.text
    consent_id: str = response.json()["id"]
    return consent_id


async def deliveries_about(settings: Settings, webhook: dict[str, Any], client_id: str) -> int:
    count: int = await admin_fetchval(
        settings,
        "SELECT count(*) FROM notifications.webhook_deliveries "
        "WHERE subscription_id = $1 AND client_id = $2",
        uuid.UUID(webhook["id"]),
        uuid.UUID(client_id),
    )
    return count


async def test_another_organisation_receives_only_what_the_client_s_consent_covers(
    wstack: Stack, webhook_settings: Settings, receiver: Receiver
) -> None:
    own, partner = f"/ok/{uuid.uuid4().hex}", f"/ok/{uuid.uuid4().hex}"
    ours = await subscribe(wstack, webhook_settings, AGENCY_A, receiver.url(own), [UPDATED])
    theirs = await subscribe(wstack, webhook_settings, AGENCY_B, receiver.url(partner), [UPDATED])
    covered, uncovered, other_purpose = [await register(wstack) for _ in range(3)]
    consent_id = await grant(wstack, covered, consent_for("org-b", ["care_coordination"]))
    await grant(wstack, other_purpose, consent_for("org-b", ["referral"]))
    for client_id in (covered, uncovered, other_purpose):
        await _update(wstack, client_id)

    # The client's own organisation receives every update; the other only the covered one.
    for client_id in (covered, uncovered, other_purpose):
        await received(receiver, own, client_id)
    got = await received(receiver, partner, covered)
    assert got["type"] == UPDATED
    assert await deliveries_about(webhook_settings, theirs, uncovered) == 0
    assert await deliveries_about(webhook_settings, theirs, other_purpose) == 0
    assert await deliveries_about(webhook_settings, ours, uncovered) == 1

    # Revoked: the next update goes to the client's organisation only.
    revoked = await wstack.api["intake"].post(
        f"/v1/clients/{covered}/consents/{consent_id}/revocation",
        json={"reason": "client_request"},
    )
    assert revoked.status_code == 200, revoked.text
    await _update(wstack, covered)

    async def second_update_received() -> bool | None:
        return True if len(about(receiver, own, covered)) == 2 else None

    await eventually(second_update_received, timeout=15)
    assert await deliveries_about(webhook_settings, theirs, covered) == 1
    assert len(about(receiver, partner, covered)) == 1


async def test_protected_events_never_go_out_even_to_a_subscriber_of_everything(
    wstack: Stack, webhook_settings: Settings, receiver: Receiver
) -> None:
    path = f"/ok/{uuid.uuid4().hex}"
    webhook = await subscribe(
        wstack, webhook_settings, AGENCY_A, receiver.url(path), list(DELIVERABLE)
    )
    client_id = await register(wstack)
    crisis = {
        "instrument_id": "needs-risk-screening",
        "version": "1.0",
        "answers": {**NO_NEEDS, "suicidal_thoughts": "yes"},
    }
    response = await wstack.api["intake"].post(f"/v1/clients/{client_id}/assessments", json=crisis)
    assert response.status_code == 201, response.text
    consent = {**consent_for("org-a", ["referral"]), "data_classes": ["general", "hiv"]}
    await grant(wstack, client_id, consent)

    async def assessed() -> bool | None:
        types = {event["type"] for event in about(receiver, path, client_id)}
        wanted = {ClientAssessed.event_type, ConsentGranted.event_type}
        return True if wanted <= types else None

    await eventually(assessed, timeout=15)
    types = {event["type"] for event in about(receiver, path, client_id)}
    assert types <= set(DELIVERABLE)
    assert ProtectedFlagRaised.event_type not in types
    assert ProtectedConsentGranted.event_type not in types
    [granted] = [
        e for e in about(receiver, path, client_id) if e["type"] == ConsentGranted.event_type
    ]
    assert granted["data"]["data_classes"] == ["general"]
    protected_rows = await admin_fetchval(
        webhook_settings,
        "SELECT count(*) FROM notifications.webhook_deliveries WHERE subscription_id = $1 "
        "AND event_type LIKE '%.protected.%'",
        uuid.UUID(webhook["id"]),
    )
    assert protected_rows == 0
    await _disable(wstack, webhook_settings, webhook)
