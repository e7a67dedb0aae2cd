"""The partner's ADDRESSED access (shared/auth/addressed.py): staff of an organisation a client
was referred to see, at intake, what the consent behind the open referral covers for their
organisation, and nothing once the referral closes or the consent is revoked. Referral events
travel through the broker: the test writes them to referrals' outbox as referrals would.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from shared.auth.addressed import (
    decide_addressed,
    record_referral_made,
    record_referral_status,
    shared_classes,
)
from shared.auth.consents import ConsentTerms, covering_consent
from shared.events.consent import DataClass, Purpose
from shared.events.contracts import EventData
from shared.events.envelope import OutgoingEvent
from shared.events.referrals import (
    ReferralClosed,
    ReferralMade,
    ReferralOutcome,
    ReferralReason,
    ReferralStatus,
    ReferralStatusChanged,
)
from shared.messaging.outbox import enqueue
from shared.settings import Settings
from tests.support import VALID_CLIENT, Stack, User, bearer, eventually
from tests.test_access import ROUTES, World
from tests.test_scoring import NO_NEEDS

PARTNER_ORG = "org-partner"
PAT = User("pat", ("partner",), organization_id=PARTNER_ORG, team_id=None)
# Staff of another partner organisation: never addressed here.
OLGA = User("olga", ("partner",), organization_id="org-other-partner", team_id=None)

TODAY = datetime.now(UTC).date()
NEXT_YEAR = TODAY + timedelta(days=365)
# Needs of three classes: food (general), mental health and substance use (protected).
ANSWERS = {
    **NO_NEEDS,
    "food_worry": "often_true",
    "food_ran_out": "often_true",
    "feeling_down": "more_than_half",
    "substance_use": "weekly",
}


def consent_body(**changes: Any) -> dict[str, Any]:
    return {
        "given_by": "client",
        "recipients": [PARTNER_ORG],
        "purposes": ["referral"],
        "data_classes": ["general"],
        "starts_on": TODAY.isoformat(),
        "expires_on": NEXT_YEAR.isoformat(),
        **changes,
    }


# --- the rule, as pure logic ----------------------------------------------------------------


def terms(**changes: Any) -> ConsentTerms:
    values: dict[str, Any] = {
        "consent_id": uuid.UUID(int=1),
        "recipients": frozenset({PARTNER_ORG}),
        "network": False,
        "purposes": frozenset({"referral"}),
        "data_classes": frozenset({"general", "mental_health", "substance_use"}),
        "starts_on": date(2026, 1, 1),
        "expires_on": date(2027, 1, 1),
        "revoked_at": None,
        **changes,
    }
    return ConsentTerms(**values)


ON = date(2026, 6, 1)


def test_a_naming_consent_shares_its_classes() -> None:
    assert shared_classes(terms(), organization_id=PARTNER_ORG, on=ON) == {
        DataClass.GENERAL,
        DataClass.MENTAL_HEALTH,
        DataClass.SUBSTANCE_USE,
    }


def test_a_network_consent_shares_demographics_only() -> None:
    network = terms(
        network=True, recipients=frozenset(), data_classes=frozenset({"general", "mental_health"})
    )
    assert shared_classes(network, organization_id=PARTNER_ORG, on=ON) == {DataClass.GENERAL}


@pytest.mark.parametrize(
    "changes",
    [
        {"revoked_at": datetime(2026, 5, 1, tzinfo=UTC)},
        {"expires_on": ON},
        {"starts_on": ON + timedelta(days=1)},
        {"purposes": frozenset({"care_coordination"})},
        {"recipients": frozenset({"org-other"})},
    ],
)
def test_a_consent_not_in_force_for_the_organisation_shares_nothing(
    changes: dict[str, Any],
) -> None:
    referral = uuid.UUID(int=9)
    consent = terms(**changes)
    assert shared_classes(consent, organization_id=PARTNER_ORG, on=ON) == frozenset()
    decided = decide_addressed(
        [(referral, consent.consent_id)], [consent], organization_id=PARTNER_ORG, on=ON
    )
    assert decided is None


def test_two_open_referrals_share_what_either_consent_covers() -> None:
    general = terms(consent_id=uuid.UUID(int=1), data_classes=frozenset({"general"}))
    protected = terms(consent_id=uuid.UUID(int=2), data_classes=frozenset({"substance_use"}))
    unknown = uuid.UUID(int=3)  # a consent this service has not heard of yet: nothing
    access = decide_addressed(
        [(uuid.UUID(int=10), general.consent_id), (uuid.UUID(int=11), protected.consent_id),
         (uuid.UUID(int=12), unknown)],
        [general, protected],
        organization_id=PARTNER_ORG,
        on=ON,
    )  # fmt: skip
    assert access is not None
    assert access.data_classes == {DataClass.GENERAL, DataClass.SUBSTANCE_USE}
    assert access.referral_ids == (uuid.UUID(int=10), uuid.UUID(int=11))
    assert access.consent_ids == (uuid.UUID(int=1), uuid.UUID(int=2))


# --- the projection of referrals' events -------------------------------------------------------


@pytest.fixture
async def intake_db(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(settings.database_url)
    await connection.execute("SET search_path = intake")
    try:
        yield connection
    finally:
        await connection.close()


def made(referral_id: uuid.UUID, client_id: uuid.UUID, consent_id: uuid.UUID | None, *,
         at: datetime, mode: str = "sent", status: ReferralStatus = ReferralStatus.REQUESTED,
         receiving: str | None = PARTNER_ORG) -> ReferralMade:  # fmt: skip
    return ReferralMade(
        referral_id=referral_id,
        client_id=client_id,
        sending_organization_id="org-a",
        receiving_organization_id=receiving,
        service_id="svc-food-pantry",
        mode=mode,
        consent_id=consent_id,
        status=status,
        made_by="alice",
        made_at=at,
        expires_at=None,
    )


async def grant_row(connection: asyncpg.Connection, referral_id: uuid.UUID) -> asyncpg.Record:
    row = await connection.fetchrow(
        "SELECT status, open, consent_id FROM referral_grants WHERE referral_id = $1", referral_id
    )
    assert row is not None
    return row


async def test_the_projection_opens_closes_and_ignores_stale_events(
    intake_db: asyncpg.Connection,
) -> None:
    t0 = datetime(2026, 6, 1, 9, tzinfo=UTC)
    client, consent = uuid.uuid4(), uuid.uuid4()
    sent, logged, draft = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()

    await record_referral_made(intake_db, made(sent, client, consent, at=t0))
    await record_referral_made(intake_db, made(sent, client, consent, at=t0))  # a repeat
    await record_referral_made(intake_db, made(logged, client, None, at=t0, mode="logged"))
    await record_referral_made(
        intake_db, made(draft, client, consent, at=t0, status=ReferralStatus.DRAFT)
    )
    assert (await grant_row(intake_db, sent))["open"] is True
    assert (await grant_row(intake_db, logged))["open"] is False  # shares nothing
    assert (await grant_row(intake_db, draft))["open"] is False  # not sent yet

    async def status(referral: uuid.UUID, to: ReferralStatus, at: datetime) -> None:
        await record_referral_status(
            intake_db, referral_id=referral, client_id=client,
            receiving_organization_id=PARTNER_ORG, status=to, at=at,
        )  # fmt: skip

    await status(sent, ReferralStatus.ACCEPTED, t0 + timedelta(minutes=2))
    await status(sent, ReferralStatus.REQUESTED, t0 + timedelta(minutes=1))  # stale: ignored
    row = await grant_row(intake_db, sent)
    assert (row["status"], row["open"]) == ("accepted", True)

    await status(sent, ReferralStatus.COMPLETED, t0 + timedelta(minutes=3))
    await status(sent, ReferralStatus.IN_PROGRESS, t0 + timedelta(minutes=9))  # after final
    await record_referral_made(intake_db, made(sent, client, consent, at=t0))  # replayed late
    row = await grant_row(intake_db, sent)
    assert (row["status"], row["open"]) == ("completed", False)

    # A status change that overtakes the referral itself waits closed; the referral then
    # brings the consent and keeps the later status.
    early = uuid.uuid4()
    await status(early, ReferralStatus.ACCEPTED, t0 + timedelta(minutes=5))
    assert (await grant_row(intake_db, early))["open"] is False
    await record_referral_made(intake_db, made(early, client, consent, at=t0))
    row = await grant_row(intake_db, early)
    assert (row["status"], row["open"], row["consent_id"]) == ("accepted", True, consent)


# --- through the services --------------------------------------------------------------------


async def publish_from_referrals(settings: Settings, *events: EventData) -> None:
    """Write events to referrals' outbox as its own transactions would: its relay publishes
    them, and intake's worker consumes them off the broker."""
    connection = await asyncpg.connect(settings.database_url)
    try:
        await connection.execute("SET search_path = referrals")
        for json_type in ("json", "jsonb"):  # as the services' pools encode the payload
            await connection.set_type_codec(
                json_type, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
            )
        async with connection.transaction():
            await enqueue(connection, *(OutgoingEvent.of(data) for data in events))
    finally:
        await connection.close()


def referral_made(client_id: str, consent_id: str | None, **changes: Any) -> ReferralMade:
    values: dict[str, Any] = {
        "referral_id": uuid.uuid4(),
        "client_id": uuid.UUID(client_id),
        "sending_organization_id": "org-a",
        "receiving_organization_id": PARTNER_ORG,
        "service_id": "svc-food-pantry",
        "mode": "sent",
        "consent_id": uuid.UUID(consent_id) if consent_id else None,
        "status": ReferralStatus.REQUESTED,
        "made_by": "alice",
        "made_at": datetime.now(UTC),
        "expires_at": None,
        **changes,
    }
    return ReferralMade(**values)


async def referred_client(
    stack: Stack, settings: Settings, *consent_bodies: dict[str, Any]
) -> tuple[str, list[str]]:
    """A client alice registered and assessed, with the consents given."""
    intake = stack.api["intake"]
    response = await intake.post("/v1/clients", json=VALID_CLIENT)
    assert response.status_code == 201, response.text
    client_id: str = response.json()["id"]
    assessed = await intake.post(
        f"/v1/clients/{client_id}/assessments",
        json={"instrument_id": "needs-risk-screening", "version": "1.0", "answers": ANSWERS},
    )
    assert assessed.status_code == 201, assessed.text
    categories = {need["category"] for need in assessed.json()["needs"]}
    assert {"food_insecurity", "mental_health", "substance_use"} <= categories
    consent_ids = []
    for body in consent_bodies:
        granted = await intake.post(f"/v1/clients/{client_id}/consents", json=body)
        assert granted.status_code == 201, granted.text
        consent_ids.append(granted.json()["id"])
    return client_id, consent_ids


async def shared_record(stack: Stack, settings: Settings, user: User, client_id: str) -> Any:
    return await stack.api["intake"].get(
        f"/v1/clients/{client_id}/shared-record", headers=bearer(settings, user)
    )


async def when_shared(stack: Stack, settings: Settings, client_id: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        response = await shared_record(stack, settings, PAT, client_id)
        return response.json() if response.status_code == 200 else None

    return await eventually(probe)


async def when_not_shared(stack: Stack, settings: Settings, client_id: str) -> None:
    async def probe() -> bool | None:
        response = await shared_record(stack, settings, PAT, client_id)
        return True if response.status_code == 404 else None

    await eventually(probe)


async def partner_audit(settings: Settings, client_id: str) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(settings.database_url)
    try:
        return list(
            await connection.fetch(
                "SELECT action, resource_type, outcome, actor_organization_id "
                "FROM intake.audit_log WHERE client_id = $1 AND actor_id = 'pat' ORDER BY seq",
                uuid.UUID(client_id),
            )
        )
    finally:
        await connection.close()


def need_categories(record: dict[str, Any]) -> set[str]:
    assessment = record["latest_assessment"]
    return {need["category"] for need in assessment["needs"]} if assessment else set()


async def test_no_referral_no_access(stack: Stack, settings: Settings) -> None:
    client_id, _ = await referred_client(stack, settings, consent_body())
    response = await shared_record(stack, settings, PAT, client_id)
    assert response.status_code == 404, response.text
    assert response.json()["type"].endswith("/not-found")
    # Intake's own record stays closed to partners whatever happens.
    response = await stack.api["intake"].get(
        f"/v1/clients/{client_id}", headers=bearer(settings, PAT)
    )
    assert response.status_code == 403
    audit = await partner_audit(settings, client_id)
    assert [(r["action"], r["outcome"]) for r in audit] == [
        ("client.shared_read", "denied"),
        ("client.read", "denied"),
    ]


async def test_a_sent_referral_with_a_covering_consent_shares_the_general_details(
    stack: Stack, settings: Settings
) -> None:
    client_id, (consent_id,) = await referred_client(stack, settings, consent_body())
    referral = referral_made(client_id, consent_id)
    await publish_from_referrals(settings, referral)

    record = await when_shared(stack, settings, client_id)
    assert record["client_id"] == client_id
    assert record["referral_ids"] == [str(referral.referral_id)]
    assert record["consent_ids"] == [consent_id]
    assert record["data_classes"] == ["general"]
    assert record["demographics"]["given_name"] == VALID_CLIENT["given_name"]
    assert record["demographics"]["birth_date"] == VALID_CLIENT["birth_date"]
    # Only the general needs: neither mental health nor substance use.
    assert need_categories(record) == {"food_insecurity"}
    assert "identifiers" not in record["demographics"]

    audit = await partner_audit(settings, client_id)
    assert ("client.shared_read", "shared_record", "allowed", PARTNER_ORG) in [
        tuple(row) for row in audit
    ]
    assert ("client.shared_read", "assessment", "allowed", PARTNER_ORG) in [
        tuple(row) for row in audit
    ]

    # Another partner organisation: nothing, not even that the client exists.
    response = await shared_record(stack, settings, OLGA, client_id)
    assert response.status_code == 404
    assert client_id not in response.text.replace(f"/v1/clients/{client_id}/", "")


async def test_protected_needs_only_under_a_consent_naming_the_organisation(
    stack: Stack, settings: Settings
) -> None:
    network = consent_body(recipients=None, network=True,
                           data_classes=["general", "mental_health"])  # fmt: skip
    client_id, (network_id,) = await referred_client(stack, settings, network)
    await publish_from_referrals(settings, referral_made(client_id, network_id))
    record = await when_shared(stack, settings, client_id)
    assert record["data_classes"] == ["general"]  # mental health is not named for the partner
    assert need_categories(record) == {"food_insecurity"}

    naming = consent_body(data_classes=["substance_use", "mental_health"])
    client_id, (naming_id,) = await referred_client(stack, settings, naming)
    await publish_from_referrals(settings, referral_made(client_id, naming_id))
    record = await when_shared(stack, settings, client_id)
    assert record["data_classes"] == ["substance_use", "mental_health"]
    assert record["demographics"] is None  # `general` is not covered
    assert need_categories(record) == {"mental_health", "substance_use"}
    assert {need["data_class"] for need in record["latest_assessment"]["needs"]} == {
        "mental_health",
        "substance_use",
    }


async def test_a_logged_referral_or_one_to_another_organisation_opens_nothing(
    stack: Stack, settings: Settings
) -> None:
    client_id, (consent_id,) = await referred_client(stack, settings, consent_body())
    logged = referral_made(client_id, None, mode="logged", receiving_organization_id=None)
    elsewhere = referral_made(client_id, consent_id, receiving_organization_id="org-elsewhere")
    # The last event is one that opens: once it is through, the two before it were too.
    marker = referral_made(client_id, consent_id)
    await publish_from_referrals(settings, logged, elsewhere, marker)
    record = await when_shared(stack, settings, client_id)
    assert record["referral_ids"] == [str(marker.referral_id)]


async def test_revoking_the_consent_ends_the_access_at_once_everywhere(
    stack: Stack, settings: Settings
) -> None:
    client_id, (consent_id,) = await referred_client(stack, settings, consent_body())
    await publish_from_referrals(settings, referral_made(client_id, consent_id))
    await when_shared(stack, settings, client_id)

    revoked = await stack.api["intake"].post(
        f"/v1/clients/{client_id}/consents/{consent_id}/revocation",
        json={"reason": "client_request"},
    )
    assert revoked.status_code == 200, revoked.text
    # At intake: the very next request, no event needed.
    response = await shared_record(stack, settings, PAT, client_id)
    assert response.status_code == 404, response.text

    # In referrals: once the event arrives, its consent facts cover nothing.
    async def revoked_in_referrals() -> list[str] | None:
        connection = await asyncpg.connect(settings.database_url)
        try:
            await connection.execute("SET search_path = referrals")
            coverage = await covering_consent(
                connection,
                client_id=uuid.UUID(client_id),
                organization_id=PARTNER_ORG,
                purpose=Purpose.REFERRAL,
                data_classes=[DataClass.GENERAL],
                on=TODAY,
            )
        finally:
            await connection.close()
        codes = [missing.code.value for missing in coverage.missing]
        return codes if codes == ["revoked"] else None

    assert await eventually(revoked_in_referrals) == ["revoked"]


@pytest.mark.parametrize("how", ["status changed", "closed"])
async def test_a_closed_referral_ends_the_access(
    stack: Stack, settings: Settings, how: str
) -> None:
    client_id, (consent_id,) = await referred_client(stack, settings, consent_body())
    referral = referral_made(client_id, consent_id)
    await publish_from_referrals(settings, referral)
    await when_shared(stack, settings, client_id)

    common = {
        "referral_id": referral.referral_id,
        "client_id": referral.client_id,
        "sending_organization_id": "org-a",
        "receiving_organization_id": PARTNER_ORG,
    }
    now = datetime.now(UTC)
    ending: EventData = (
        ReferralStatusChanged(
            **common, from_status=ReferralStatus.REQUESTED, to_status=ReferralStatus.REJECTED,
            reason_code=ReferralReason.NO_CAPACITY, set_by_organization_id=PARTNER_ORG,
            changed_at=now,
        )
        if how == "status changed"
        else ReferralClosed(
            **common, final_status=ReferralStatus.COMPLETED, outcome=ReferralOutcome.GOT_HELP,
            closed_at=now, follow_up_due_at=None,
        )
    )  # fmt: skip
    await publish_from_referrals(settings, ending)
    await when_not_shared(stack, settings, client_id)


# --- everything else stays closed to a partner ------------------------------------------------

# Routes a partner may call: reference data, and the shared record.
PARTNER_ROUTES = {
    ("intake", "GET", "/v1/clients/{client_id}/shared-record"),
}


@pytest.mark.parametrize("service", ["intake", "planning"])
async def test_every_other_route_refuses_a_partner_of_an_addressed_organisation(
    stack: Stack, settings: Settings, service: str
) -> None:
    """Planning holds case content a partner never sees; intake shows them only the shared
    record. Even while a referral with a covering consent is open, every other route about the
    client answers 403 (the role never has the action) or 404, and shows nothing of it."""
    client_id, (consent_id,) = await referred_client(stack, settings, consent_body())
    await publish_from_referrals(settings, referral_made(client_id, consent_id))
    await when_shared(stack, settings, client_id)

    unknown = str(uuid.uuid4())
    ids = {
        "client_id": client_id, "other_client_id": unknown, "assessment_id": unknown,
        "flag_id": unknown, "consent_id": consent_id, "draft_id": unknown, "name": "sex",
        "instrument_id": "needs-risk-screening", "version": "1.0", "worker_id": "alice",
    }  # fmt: skip
    # Every other id a path names (cases, plans, notes, reviews, transfers, …): one nobody has.
    ids = defaultdict(lambda: unknown, ids)
    world = World(
        client_id=client_id, other_client_id=unknown, family_name=VALID_CLIENT["family_name"],
        etag=f'"{client_id}.1"', draft_etag=f'"{unknown}.1"', path_ids=ids,
        case_etag=f'"{unknown}.1"',
    )  # fmt: skip
    called = []
    for (route_service, method, path), route in sorted(ROUTES.items()):
        if route_service != service or route.action is None:
            continue
        if (route_service, method, path) in PARTNER_ROUTES:
            continue
        request = route.request(world)
        headers = {**request.pop("headers", {}), **bearer(settings, PAT)}
        response = await stack.api[service].request(
            method, path.format_map(ids), headers=headers, **request
        )
        called.append(path)
        assert response.status_code in (403, 404), (method, path, response.text)
        body = response.json()
        assert body["status"] == response.status_code
        shown = json.dumps({k: v for k, v in body.items() if k != "instance"})
        assert client_id not in shown and VALID_CLIENT["family_name"] not in shown, (method, path)
    assert len(called) >= 5
