"""The consent ledger on intake: granting, revoking and reading consents, the covering rule,
the events on the wire, and who may do what (every attempt audited)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import ConsumerRecord
from cloudevents.core.bindings.kafka import KafkaMessage, from_binary
from cloudevents.core.formats.json import JSONFormat

from services.intake.consents.models import ConsentPublic, DataClass, Purpose
from services.intake.consents.service import consent_covers, consent_status
from shared.events.consent import (
    ConsentGranted,
    ConsentRevoked,
    ProtectedConsentGranted,
    ProtectedConsentRevoked,
)
from shared.events.contracts import Topic
from shared.settings import Settings
from tests.support import (
    CASEWORKER,
    VALID_CLIENT,
    Stack,
    User,
    admin_fetchval,
    bearer,
    header,
    read_topic,
)

ALICE = CASEWORKER
BOB = User("bob", ("caseworker",))  # alice's teammate: her caseload is not his
SAM = User("sam", ("supervisor",))  # supervises alice's team
SUE = User("sue", ("supervisor",), team_id="team-b")
PAT = User("pat", ("partner",), organization_id="org-partner", team_id=None)
SYNC = User("agency-sync", ("integration",), team_id=None)

TODAY = datetime.now(UTC).date()
NEXT_YEAR = TODAY + timedelta(days=365)
# A consent for two named organisations: what the field calls a referral consent.
REFERRAL_CONSENT: dict[str, Any] = {
    "given_by": "client",
    "recipients": ["org-shelter", "org-food-bank"],
    "purposes": ["referral", "care_coordination"],
    "data_classes": ["general", "hiv"],
    "starts_on": TODAY.isoformat(),
    "expires_on": NEXT_YEAR.isoformat(),
}
NETWORK_CONSENT: dict[str, Any] = {
    "given_by": "guardian",
    "network": True,
    "purposes": ["reporting"],
    "data_classes": ["general"],
    "starts_on": TODAY.isoformat(),
    "expires_on": NEXT_YEAR.isoformat(),
}
EXPIRED_CONSENT: dict[str, Any] = {
    **REFERRAL_CONSENT,
    "starts_on": "2020-01-01",
    "expires_on": "2021-01-01",
}
PENDING_CONSENT: dict[str, Any] = {
    **REFERRAL_CONSENT,
    "starts_on": (TODAY + timedelta(days=10)).isoformat(),
}


async def register(stack: Stack, **changes: str) -> str:
    response = await stack.api["intake"].post("/v1/clients", json={**VALID_CLIENT, **changes})
    assert response.status_code == 201, response.text
    client_id: str = response.json()["id"]
    return client_id


async def grant(stack: Stack, client_id: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await stack.api["intake"].post(f"/v1/clients/{client_id}/consents", json=body)
    assert response.status_code == 201, response.text
    consent: dict[str, Any] = response.json()
    return consent


async def call(
    stack: Stack, settings: Settings, user: User, method: str, path: str, **kwargs: Any
) -> tuple[httpx.Response, str]:
    """Call intake as `user` with a fresh request id; return the response and the id."""
    request_id = str(uuid.uuid4())
    headers = {**kwargs.pop("headers", {}), "X-Request-ID": request_id, **bearer(settings, user)}
    response = await stack.api["intake"].request(method, path, headers=headers, **kwargs)
    return response, request_id


async def audit_rows(settings: Settings, request_id: str) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(settings.database_url)
    try:
        return list(
            await connection.fetch(
                "SELECT * FROM intake.audit_log WHERE request_id = $1 ORDER BY seq", request_id
            )
        )
    finally:
        await connection.close()


async def consent_rows(settings: Settings, client_id: str) -> int:
    count: int = await admin_fetchval(
        settings, "SELECT count(*) FROM intake.consents WHERE client_id = $1", uuid.UUID(client_id)
    )
    return count


async def consent_events(settings: Settings, client_id: str) -> int:
    count: int = await admin_fetchval(
        settings,
        "SELECT count(*) FROM intake.outbox WHERE aggregateid = $1 AND type LIKE $2",
        client_id,
        "org.casework.intake.consent.%",
    )
    return count


def _is(record: ConsumerRecord[bytes, bytes], event_type: str, consent_id: str) -> bool:
    return (
        header(record, "ce_type") == event_type
        and json.loads(record.value or b"{}").get("consent_id") == consent_id
    )


async def event_on_the_wire(
    settings: Settings, event_type: str, consent_id: str, topic: str = Topic.INTAKE_CLIENTS
) -> ConsumerRecord[bytes, bytes]:
    records = await read_topic(
        settings,
        topic,
        until=lambda records: any(_is(r, event_type, consent_id) for r in records),
    )
    return next(r for r in records if _is(r, event_type, consent_id))


def parsed(record: ConsumerRecord[bytes, bytes]) -> Any:
    """The record as a CloudEvent, read with the official SDK."""
    return from_binary(
        KafkaMessage(headers=dict(record.headers), key=record.key, value=record.value),
        JSONFormat(),
    )


# --- grant, list, get ---------------------------------------------------------------------


async def test_grant_list_and_get_round_trip(stack: Stack) -> None:
    client_id = await register(stack)
    request = {
        **REFERRAL_CONSENT,
        "purposes": ["care_coordination", "referral", "referral"],  # any order, repeats
    }
    before = datetime.now(UTC)

    response = await stack.api["intake"].post(f"/v1/clients/{client_id}/consents", json=request)

    assert response.status_code == 201, response.text
    body = response.json()
    consent_id = body.pop("id")
    recorded_at = datetime.fromisoformat(body.pop("recorded_at"))
    assert uuid.UUID(consent_id).version == 4
    assert before <= recorded_at <= datetime.now(UTC)
    assert body == {
        "client_id": client_id,
        "given_by": "client",
        "recipients": ["org-food-bank", "org-shelter"],
        "network": False,
        "purposes": ["referral", "care_coordination"],
        "data_classes": ["general", "hiv"],
        "starts_on": TODAY.isoformat(),
        "expires_on": NEXT_YEAR.isoformat(),
        "status": "active",
        "recorded_by": "alice",
        "revoked_at": None,
        "revoked_by": None,
        "revocation_reason": None,
        "revocation_note": None,
    }
    assert response.headers["location"] == f"/v1/clients/{client_id}/consents/{consent_id}"
    assert response.headers["etag"] == f'"{consent_id}.active"'

    fetched = await stack.api["intake"].get(response.headers["location"])
    assert fetched.status_code == 200
    assert fetched.json() == response.json()
    assert fetched.headers["etag"] == response.headers["etag"]

    listed = await stack.api["intake"].get(f"/v1/clients/{client_id}/consents")
    assert listed.status_code == 200
    assert listed.json() == {"items": [response.json()], "next_cursor": None}


async def test_starts_on_defaults_to_today_and_network_consent_has_no_recipients(
    stack: Stack,
) -> None:
    client_id = await register(stack)
    request = {key: value for key, value in NETWORK_CONSENT.items() if key != "starts_on"}

    consent = await grant(stack, client_id, request)

    assert consent["starts_on"] == TODAY.isoformat()
    assert (consent["network"], consent["recipients"]) == (True, [])
    assert (consent["given_by"], consent["status"]) == ("guardian", "active")


async def test_the_list_is_newest_first_paginated_and_filtered_by_status(stack: Stack) -> None:
    client_id = await register(stack)
    active = await grant(stack, client_id, REFERRAL_CONSENT)  # its first day is today
    expired = await grant(stack, client_id, EXPIRED_CONSENT)
    # Ends today: today is already outside it.
    ended = await grant(
        stack,
        client_id,
        {
            **REFERRAL_CONSENT,
            "starts_on": (TODAY - timedelta(days=30)).isoformat(),
            "expires_on": TODAY.isoformat(),
        },
    )
    pending = await grant(stack, client_id, PENDING_CONSENT)
    revoked = await grant(stack, client_id, NETWORK_CONSENT)
    response = await stack.api["intake"].post(
        f"/v1/clients/{client_id}/consents/{revoked['id']}/revocation",
        json={"reason": "entered_in_error"},
    )
    assert response.status_code == 200
    revoked = response.json()
    path = f"/v1/clients/{client_id}/consents"

    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    for _page in range(10):
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await stack.api["intake"].get(path, params=params)).json()
        assert len(page["items"]) <= 2
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert cursor is None
    assert seen == [revoked, pending, ended, expired, active]
    assert [c["status"] for c in seen] == ["revoked", "pending", "expired", "expired", "active"]

    for status, consents in {
        "active": [active],
        "expired": [ended, expired],
        "pending": [pending],
        "revoked": [revoked],
    }.items():
        page = (await stack.api["intake"].get(path, params={"status": status})).json()
        assert page == {"items": consents, "next_cursor": None}, status


async def test_a_malformed_cursor_or_status_is_a_problem(stack: Stack) -> None:
    client_id = await register(stack)
    path = f"/v1/clients/{client_id}/consents"

    bad_cursor = await stack.api["intake"].get(path, params={"cursor": "bm90LWpzb24"})
    bad_status = await stack.api["intake"].get(path, params={"status": "lapsed"})

    assert bad_cursor.status_code == 400
    assert bad_cursor.json()["type"].endswith("/invalid-cursor")
    assert bad_status.status_code == 422
    assert [e["field"] for e in bad_status.json()["errors"]] == ["query.status"]


async def test_idempotency_key_replays_per_client(stack: Stack, settings: Settings) -> None:
    first_client, second_client = await register(stack), await register(stack)
    key = {"Idempotency-Key": f"consent-{uuid.uuid4()}"}

    first = await stack.api["intake"].post(
        f"/v1/clients/{first_client}/consents", json=REFERRAL_CONSENT, headers=key
    )
    retried = await stack.api["intake"].post(
        f"/v1/clients/{first_client}/consents", json=REFERRAL_CONSENT, headers=key
    )
    other_client = await stack.api["intake"].post(
        f"/v1/clients/{second_client}/consents", json=REFERRAL_CONSENT, headers=key
    )

    assert (first.status_code, retried.status_code) == (201, 201)
    assert retried.json() == first.json()
    assert retried.headers["location"] == first.headers["location"]
    assert await consent_rows(settings, first_client) == 1
    assert await consent_events(settings, first_client) == 1
    # The same key about another client is another request, never the first client's consent.
    assert other_client.status_code == 201
    assert other_client.json()["client_id"] == second_client
    assert other_client.json()["id"] != first.json()["id"]


# --- refused input ------------------------------------------------------------------------


@pytest.mark.parametrize("expires_on", [TODAY - timedelta(days=1), TODAY], ids=["before", "same"])
async def test_expiry_not_after_start_is_a_422_naming_the_field_and_writes_nothing(
    stack: Stack, settings: Settings, expires_on: date
) -> None:
    client_id = await register(stack)

    response = await stack.api["intake"].post(
        f"/v1/clients/{client_id}/consents",
        json={**REFERRAL_CONSENT, "expires_on": expires_on.isoformat()},
    )

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"].endswith("/validation-error")
    [error] = problem["errors"]
    assert error["field"] == "body.expires_on"
    assert error["message"] == f"must be after starts_on ({TODAY.isoformat()})"
    assert await consent_rows(settings, client_id) == 0
    assert await consent_events(settings, client_id) == 0


@pytest.mark.parametrize(
    ("data_class", "law"),
    [("substance_use", "42 CFR Part 2"), ("domestic_violence", "VAWA")],
)
async def test_a_network_consent_cannot_cover_recipient_specific_classes(
    stack: Stack, settings: Settings, data_class: str, law: str
) -> None:
    client_id = await register(stack)

    response = await stack.api["intake"].post(
        f"/v1/clients/{client_id}/consents",
        json={**NETWORK_CONSENT, "data_classes": ["general", data_class]},
    )

    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["field"] == "body.data_classes"
    assert error["message"].startswith("a network-wide consent cannot cover " + data_class)
    assert law in error["message"]
    assert await consent_rows(settings, client_id) == 0
    # Named recipients: the same classes are fine.
    allowed = await grant(stack, client_id, {**REFERRAL_CONSENT, "data_classes": [data_class]})
    assert allowed["data_classes"] == [data_class]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"network": True}, "body.network"),  # recipients and network
        ({"recipients": None}, "body.network"),  # neither
        ({"recipients": []}, "body.recipients"),
        ({"recipients": [f"org-{n}" for n in range(51)]}, "body.recipients"),
        ({"recipients": ["org a; DROP"]}, "body.recipients.0"),
        ({"purposes": []}, "body.purposes"),
        ({"purposes": ["marketing"]}, "body.purposes.0"),
        ({"data_classes": ["genetics"]}, "body.data_classes.0"),
        ({"given_by": "neighbour"}, "body.given_by"),
        ({"expires_on": None}, "body.expires_on"),
        ({"status": "active"}, "body.status"),  # status is derived, never sent
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
async def test_bad_consent_input_is_a_422_naming_the_field_and_writes_nothing(
    stack: Stack, settings: Settings, change: dict[str, Any], field: str
) -> None:
    client_id = await register(stack)

    response = await stack.api["intake"].post(
        f"/v1/clients/{client_id}/consents", json={**REFERRAL_CONSENT, **change}
    )

    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == [field]
    assert await consent_rows(settings, client_id) == 0


async def test_the_database_refuses_a_network_consent_for_substance_use_too(
    stack: Stack, settings: Settings
) -> None:
    client_id = await register(stack)
    connection = await asyncpg.connect(settings.database_url)
    try:
        with pytest.raises(asyncpg.CheckViolationError, match="recipient_specific"):
            await connection.execute(
                "INSERT INTO intake.consents (id, client_id, given_by, network, purposes, "
                "data_classes, starts_on, expires_on, recorded_by, recorded_at) VALUES "
                "($1, $2, 'client', true, '{referral}', '{substance_use}', $3, $4, 'x', now())",
                uuid.uuid4(),
                uuid.UUID(client_id),
                TODAY,
                NEXT_YEAR,
            )
    finally:
        await connection.close()


# --- revocation ---------------------------------------------------------------------------


async def test_revocation_makes_the_consent_revoked_and_publishes_consent_revoked(
    stack: Stack, settings: Settings
) -> None:
    client_id = await register(stack)
    consent = await grant(stack, client_id, REFERRAL_CONSENT)
    note = "Client phoned: withdraws consent for the shelter."
    before = datetime.now(UTC)

    response = await stack.api["intake"].post(
        f"/v1/clients/{client_id}/consents/{consent['id']}/revocation",
        json={"reason": "client_request", "note": note},
    )

    assert response.status_code == 200, response.text
    body = response.json()
    revoked_at = datetime.fromisoformat(body["revoked_at"])
    assert before <= revoked_at <= datetime.now(UTC)
    assert body == {
        **consent,
        "status": "revoked",
        "revoked_at": body["revoked_at"],
        "revoked_by": "alice",
        "revocation_reason": "client_request",
        "revocation_note": note,
    }
    assert response.headers["etag"] == f'"{consent["id"]}.revoked"'
    fetched = await stack.api["intake"].get(f"/v1/clients/{client_id}/consents/{consent['id']}")
    assert fetched.json() == body

    record = await event_on_the_wire(settings, ConsentRevoked.event_type, consent["id"])
    event = parsed(record)
    assert event.get_type() == "org.casework.intake.consent.revoked.v1"
    assert event.get_source() == "/casework/intake"
    assert event.get_subject() == client_id
    assert record.key == client_id.encode()
    data = event.get_data()
    assert isinstance(data, dict)
    assert datetime.fromisoformat(data.pop("revoked_at")) == revoked_at
    assert data == {"consent_id": consent["id"], "client_id": client_id, "reason": "client_request"}
    wire = (record.value or b"") + b"".join(value for _, value in record.headers)
    assert note.encode() not in wire and b"shelter" not in wire


async def test_revoking_twice_is_a_409_and_changes_nothing(
    stack: Stack, settings: Settings
) -> None:
    client_id = await register(stack)
    consent = await grant(stack, client_id, REFERRAL_CONSENT)
    path = f"/v1/clients/{client_id}/consents/{consent['id']}/revocation"
    first = await stack.api["intake"].post(path, json={"reason": "client_request"})
    assert first.status_code == 200

    second = await stack.api["intake"].post(path, json={"reason": "other", "note": "again"})

    assert second.status_code == 409
    assert second.headers["content-type"] == "application/problem+json"
    problem = second.json()
    assert problem["type"] == "https://casework.dev/problems/consent-already-revoked"
    assert problem["status"] == 409
    assert problem["instance"] == path
    fetched = await stack.api["intake"].get(f"/v1/clients/{client_id}/consents/{consent['id']}")
    assert fetched.json() == first.json()
    revocations = await admin_fetchval(
        settings,
        "SELECT count(*) FROM intake.outbox WHERE aggregateid = $1 AND type = $2",
        client_id,
        ConsentRevoked.event_type,
    )
    assert revocations == 1


async def test_revoking_an_unknown_consent_is_a_404(stack: Stack) -> None:
    client_id = await register(stack)

    response = await stack.api["intake"].post(
        f"/v1/clients/{client_id}/consents/{uuid.uuid4()}/revocation",
        json={"reason": "client_request"},
    )

    assert response.status_code == 404
    assert response.json()["detail"] == "No consent with this id."


async def test_a_revocation_note_over_500_characters_is_refused(stack: Stack) -> None:
    client_id = await register(stack)
    consent = await grant(stack, client_id, REFERRAL_CONSENT)

    response = await stack.api["intake"].post(
        f"/v1/clients/{client_id}/consents/{consent['id']}/revocation",
        json={"reason": "other", "note": "x" * 501},
    )

    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["body.note"]
    fetched = await stack.api["intake"].get(f"/v1/clients/{client_id}/consents/{consent['id']}")
    assert fetched.json()["status"] == "active"


# --- dates and the covering rule ----------------------------------------------------------


async def test_an_already_expired_consent_reads_expired_and_covers_nothing(stack: Stack) -> None:
    client_id = await register(stack)

    consent = await grant(stack, client_id, EXPIRED_CONSENT)

    assert consent["status"] == "expired"
    fetched = await stack.api["intake"].get(f"/v1/clients/{client_id}/consents/{consent['id']}")
    assert fetched.json()["status"] == "expired"
    terms = ConsentPublic.model_validate(fetched.json())

    def covers(on: date) -> bool:
        return consent_covers(
            [terms],
            organization_id="org-shelter",
            purpose=Purpose.REFERRAL,
            data_class=DataClass.GENERAL,
            on=on,
        )

    assert covers(TODAY) is False
    # While it ran, the same consent covered the same hand-over: only the date decides.
    assert covers(date(2020, 6, 1)) is True


def consent(**changes: Any) -> ConsentPublic:
    """A consent for org-shelter, referral, general data, in force during 2025."""
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "client_id": uuid.uuid4(),
        "given_by": "client",
        "recipients": ["org-shelter"],
        "network": False,
        "purposes": ["referral"],
        "data_classes": ["general"],
        "starts_on": date(2025, 1, 1),
        "expires_on": date(2026, 1, 1),
        "status": "active",
        "recorded_by": "alice",
        "recorded_at": datetime(2025, 1, 1, tzinfo=UTC),
        "revoked_at": None,
        "revoked_by": None,
        "revocation_reason": None,
        "revocation_note": None,
    }
    return ConsentPublic.model_validate({**values, **changes})


REVOKED = {
    "revoked_at": datetime(2025, 3, 1, tzinfo=UTC),
    "revoked_by": "alice",
    "revocation_reason": "client_request",
}
MID_2025 = date(2025, 6, 1)

# (consents, organisation, purpose, data class, day) -> covered?
COVERING_EXAMPLES: dict[str, tuple[list[ConsentPublic], str, Purpose, DataClass, date, bool]] = {
    "named recipient, purpose and class": (
        [consent()], "org-shelter", Purpose.REFERRAL, DataClass.GENERAL, MID_2025, True,
    ),
    "recipient mismatch": (
        [consent()], "org-clinic", Purpose.REFERRAL, DataClass.GENERAL, MID_2025, False,
    ),
    "purpose mismatch": (
        [consent()], "org-shelter", Purpose.REPORTING, DataClass.GENERAL, MID_2025, False,
    ),
    "class mismatch": (
        [consent()], "org-shelter", Purpose.REFERRAL, DataClass.MENTAL_HEALTH, MID_2025, False,
    ),
    "pending: the day before it starts": (
        [consent()], "org-shelter", Purpose.REFERRAL, DataClass.GENERAL, date(2024, 12, 31), False,
    ),
    "its first day": (
        [consent()], "org-shelter", Purpose.REFERRAL, DataClass.GENERAL, date(2025, 1, 1), True,
    ),
    "its last day": (
        [consent()], "org-shelter", Purpose.REFERRAL, DataClass.GENERAL, date(2025, 12, 31), True,
    ),
    "expired: on expires_on": (
        [consent()], "org-shelter", Purpose.REFERRAL, DataClass.GENERAL, date(2026, 1, 1), False,
    ),
    "revoked, even on a day before the revocation": (
        [consent(**REVOKED)], "org-shelter", Purpose.REFERRAL, DataClass.GENERAL,
        date(2025, 2, 1), False,
    ),
    "network: any organisation": (
        [consent(network=True, recipients=[])], "org-anyone", Purpose.REFERRAL,
        DataClass.GENERAL, MID_2025, True,
    ),
    "network never covers substance use, even if stored so": (
        [consent(network=True, recipients=[], data_classes=["general", "substance_use"])],
        "org-anyone", Purpose.REFERRAL, DataClass.SUBSTANCE_USE, MID_2025, False,
    ),
    "named recipient may receive substance use": (
        [consent(data_classes=["substance_use"])], "org-shelter", Purpose.REFERRAL,
        DataClass.SUBSTANCE_USE, MID_2025, True,
    ),
    "no consents": ([], "org-shelter", Purpose.REFERRAL, DataClass.GENERAL, MID_2025, False),
    "a revoked one and a current one: the current one covers": (
        [consent(**REVOKED), consent(starts_on=date(2025, 3, 2))], "org-shelter",
        Purpose.REFERRAL, DataClass.GENERAL, MID_2025, True,
    ),
    "each consent must cover everything by itself": (
        [consent(purposes=["reporting"]), consent(data_classes=["hiv"])], "org-shelter",
        Purpose.REPORTING, DataClass.HIV, MID_2025, False,
    ),
}  # fmt: skip


@pytest.mark.parametrize(
    ("consents", "organization_id", "purpose", "data_class", "on", "covered"),
    list(COVERING_EXAMPLES.values()),
    ids=list(COVERING_EXAMPLES),
)
def test_consent_covers_worked_examples(
    consents: list[ConsentPublic],
    organization_id: str,
    purpose: Purpose,
    data_class: DataClass,
    on: date,
    covered: bool,
) -> None:
    assert (
        consent_covers(
            consents,
            organization_id=organization_id,
            purpose=purpose,
            data_class=data_class,
            on=on,
        )
        is covered
    )


def test_consent_status_follows_the_dates_and_the_revocation() -> None:
    assert consent_status(consent(), on=date(2024, 12, 31)) == "pending"
    assert consent_status(consent(), on=date(2025, 1, 1)) == "active"
    assert consent_status(consent(), on=date(2026, 1, 1)) == "expired"
    assert consent_status(consent(**REVOKED), on=date(2030, 1, 1)) == "revoked"


# --- events -------------------------------------------------------------------------------


async def test_consent_granted_is_a_cloudevent_with_ids_and_codes_only(
    stack: Stack, settings: Settings
) -> None:
    marker = {"given_name": "Wilhelmina", "family_name": "Oyelaran", "birth_date": "1966-06-16"}
    client_id = await register(stack, **marker)
    consent = await grant(stack, client_id, REFERRAL_CONSENT)

    record = await event_on_the_wire(settings, ConsentGranted.event_type, consent["id"])

    event = parsed(record)
    assert event.get_specversion() == "1.0"
    assert event.get_type() == "org.casework.intake.consent.granted.v1"
    assert event.get_source() == "/casework/intake"
    assert event.get_subject() == client_id
    assert event.get_datacontenttype() == "application/json"
    assert record.key == client_id.encode()
    assert event.get_data() == {
        "consent_id": consent["id"],
        "client_id": client_id,
        "recipients": ["org-food-bank", "org-shelter"],
        "network": False,
        "purposes": ["referral", "care_coordination"],
        "data_classes": ["general"],  # hiv travels only on the protected-consents topic
        "starts_on": TODAY.isoformat(),
        "expires_on": NEXT_YEAR.isoformat(),
        "given_by": "client",
    }
    wire = (record.value or b"") + b"".join(value for _, value in record.headers)
    for secret in marker.values():
        assert secret.encode() not in wire


def _wire(record: ConsumerRecord[bytes, bytes]) -> bytes:
    return (record.value or b"") + b"".join(value for _, value in record.headers)


async def test_protected_classes_of_a_consent_travel_only_on_the_protected_consents_topic(
    stack: Stack, settings: Settings
) -> None:
    client_id = await register(stack)
    consent = await grant(
        stack, client_id, {**REFERRAL_CONSENT, "data_classes": ["general", "domestic_violence"]}
    )
    assert consent["data_classes"] == ["general", "domestic_violence"]

    protected = await event_on_the_wire(
        settings,
        ProtectedConsentGranted.event_type,
        consent["id"],
        topic=Topic.INTAKE_PROTECTED_CONSENTS,
    )
    event = parsed(protected)
    assert event.get_type() == "org.casework.intake.protected.consent.granted.v1"
    assert event.get_source() == "/casework/intake"
    assert event.get_subject() == client_id and protected.key == client_id.encode()
    assert event.get_data() == {
        "consent_id": consent["id"],
        "client_id": client_id,
        "recipients": ["org-food-bank", "org-shelter"],
        "network": False,
        "purposes": ["referral", "care_coordination"],
        "data_classes": ["domestic_violence"],
        "starts_on": TODAY.isoformat(),
        "expires_on": NEXT_YEAR.isoformat(),
        "given_by": "client",
    }

    general = await event_on_the_wire(settings, ConsentGranted.event_type, consent["id"])
    assert json.loads(general.value or b"{}")["data_classes"] == ["general"]
    records = await read_topic(
        settings,
        Topic.INTAKE_CLIENTS,
        until=lambda records: any(
            _is(r, ConsentGranted.event_type, consent["id"]) for r in records
        ),
    )
    for record in (r for r in records if r.key == client_id.encode()):
        assert b"domestic_violence" not in _wire(record)
        assert header(record, "ce_type") != ProtectedConsentGranted.event_type


async def test_a_consent_of_protected_classes_only_publishes_nothing_on_the_general_topic(
    stack: Stack, settings: Settings
) -> None:
    client_id = await register(stack)
    hidden = await grant(stack, client_id, {**REFERRAL_CONSENT, "data_classes": ["substance_use"]})
    revoked = await stack.api["intake"].post(
        f"/v1/clients/{client_id}/consents/{hidden['id']}/revocation",
        json={"reason": "client_request"},
    )
    assert revoked.status_code == 200, revoked.text
    # A later general consent of the same client: once it is on the general topic, everything
    # intake published before it about this client is there too (one key, one partition).
    later = await grant(stack, client_id, NETWORK_CONSENT)

    granted = await event_on_the_wire(
        settings,
        ProtectedConsentGranted.event_type,
        hidden["id"],
        topic=Topic.INTAKE_PROTECTED_CONSENTS,
    )
    assert json.loads(granted.value or b"{}")["data_classes"] == ["substance_use"]
    withdrawn = await event_on_the_wire(
        settings,
        ProtectedConsentRevoked.event_type,
        hidden["id"],
        topic=Topic.INTAKE_PROTECTED_CONSENTS,
    )
    assert set(json.loads(withdrawn.value or b"{}")) == {
        "consent_id", "client_id", "revoked_at", "reason",
    }  # fmt: skip

    records = await read_topic(
        settings,
        Topic.INTAKE_CLIENTS,
        until=lambda records: any(_is(r, ConsentGranted.event_type, later["id"]) for r in records),
    )
    mine = [r for r in records if r.key == client_id.encode()]
    consent_types = [t for r in mine if "consent" in (t := header(r, "ce_type") or "")]
    assert consent_types == [ConsentGranted.event_type]  # the later one's only
    for record in mine:
        assert hidden["id"].encode() not in _wire(record)
        assert b"substance_use" not in _wire(record)
    general_rows = await admin_fetchval(
        settings,
        "SELECT count(*) FROM intake.outbox WHERE aggregateid = $1 AND topic = $2 "
        "AND payload::text LIKE $3",
        client_id,
        Topic.INTAKE_CLIENTS,
        f"%{hidden['id']}%",
    )
    assert general_rows == 0


# --- access and audit ---------------------------------------------------------------------


async def test_who_may_read_and_write_consents_and_every_attempt_is_audited(
    stack: Stack, settings: Settings
) -> None:
    client_id = await register(stack)
    consent = await grant(stack, client_id, REFERRAL_CONSENT)
    one = f"/v1/clients/{client_id}/consents/{consent['id']}"
    attempts: list[tuple[User, str, str, dict[str, Any], int, str, str | None]] = [
        # user, method, path, body, status, outcome, resource id
        (ALICE, "GET", one, {}, 200, "allowed", consent["id"]),
        (SAM, "GET", one, {}, 200, "allowed", consent["id"]),
        (SYNC, "GET", one, {}, 200, "allowed", consent["id"]),
        (BOB, "GET", one, {}, 404, "denied", consent["id"]),
        (SUE, "GET", one, {}, 404, "denied", consent["id"]),
        (PAT, "GET", one, {}, 403, "denied", consent["id"]),
        (BOB, "GET", f"/v1/clients/{client_id}/consents", {}, 404, "denied", client_id),
        (PAT, "GET", f"/v1/clients/{client_id}/consents", {}, 403, "denied", client_id),
        (SYNC, "POST", f"/v1/clients/{client_id}/consents", REFERRAL_CONSENT, 403, "denied",
         client_id),
        (BOB, "POST", f"/v1/clients/{client_id}/consents", REFERRAL_CONSENT, 404, "denied",
         client_id),
        (PAT, "POST", f"/v1/clients/{client_id}/consents", REFERRAL_CONSENT, 403, "denied",
         client_id),
        (BOB, "POST", f"{one}/revocation", {"reason": "other"}, 404, "denied", consent["id"]),
        (PAT, "POST", f"{one}/revocation", {"reason": "other"}, 403, "denied", consent["id"]),
    ]  # fmt: skip
    for user, method, path, body, status, outcome, resource_id in attempts:
        attempt = f"{user.subject} {method} {path}"
        response, request_id = await call(
            stack, settings, user, method, path, **({"json": body} if body else {})
        )

        assert response.status_code == status, attempt
        if status == 200:
            assert response.json() == consent, attempt
        else:
            assert response.headers["content-type"] == "application/problem+json", attempt
            assert "org-shelter" not in response.text, attempt
        [row] = await audit_rows(settings, request_id)
        write = method == "POST"
        assert row["action"] == ("consent.write" if write else "consent.read"), attempt
        assert (row["outcome"], row["actor_id"]) == (outcome, user.subject), attempt
        assert (row["resource_type"], row["resource_id"]) == ("consent", resource_id), attempt
        assert str(row["client_id"]) == client_id, attempt

    # Nothing the refused callers tried left a trace in the ledger.
    assert await consent_rows(settings, client_id) == 1
    fetched = await stack.api["intake"].get(one)
    assert fetched.json() == consent


async def test_allowed_grants_revocations_and_lists_are_audited_per_consent(
    stack: Stack, settings: Settings
) -> None:
    client_id = await register(stack)
    path = f"/v1/clients/{client_id}/consents"

    granted, grant_request = await call(stack, settings, ALICE, "POST", path, json=NETWORK_CONSENT)
    consent_id = granted.json()["id"]
    second = await grant(stack, client_id, REFERRAL_CONSENT)
    revoked, revoke_request = await call(
        stack, settings, ALICE, "POST", f"{path}/{consent_id}/revocation", json={"reason": "other"}
    )
    listed, list_request = await call(stack, settings, ALICE, "GET", path)

    assert (granted.status_code, revoked.status_code, listed.status_code) == (201, 200, 200)
    [row] = await audit_rows(settings, grant_request)
    assert (row["action"], row["outcome"], row["resource_id"]) == (
        "consent.write",
        "allowed",
        consent_id,
    )
    [row] = await audit_rows(settings, revoke_request)
    assert (row["action"], row["outcome"], row["resource_id"]) == (
        "consent.write",
        "allowed",
        consent_id,
    )
    rows = await audit_rows(settings, list_request)
    assert [(r["action"], r["outcome"], r["resource_id"]) for r in rows] == [
        ("consent.read", "allowed", second["id"]),
        ("consent.read", "allowed", consent_id),
    ]


async def test_a_consent_of_another_client_is_not_found_and_audited_so(
    stack: Stack, settings: Settings
) -> None:
    mine, also_mine = await register(stack), await register(stack)
    consent = await grant(stack, also_mine, REFERRAL_CONSENT)

    response, request_id = await call(
        stack, settings, ALICE, "GET", f"/v1/clients/{mine}/consents/{consent['id']}"
    )
    revocation, revocation_id = await call(
        stack,
        settings,
        ALICE,
        "POST",
        f"/v1/clients/{mine}/consents/{consent['id']}/revocation",
        json={"reason": "entered_in_error"},
    )

    assert (response.status_code, revocation.status_code) == (404, 404)
    assert response.json()["detail"] == "No consent with this id."
    for rid in (request_id, revocation_id):
        [row] = await audit_rows(settings, rid)
        assert (row["outcome"], row["resource_id"], str(row["client_id"])) == (
            "not_found",
            consent["id"],
            mine,
        )
    still = await stack.api["intake"].get(f"/v1/clients/{also_mine}/consents/{consent['id']}")
    assert still.json()["status"] == "active"


async def test_break_glass_reads_consent_but_never_writes_it(
    stack: Stack, settings: Settings
) -> None:
    client_id = await register(stack)
    consent = await grant(stack, client_id, REFERRAL_CONSENT)
    glass = {"X-Break-Glass-Reason": "client in crisis at the night shelter"}
    one = f"/v1/clients/{client_id}/consents/{consent['id']}"

    read, read_request = await call(stack, settings, SUE, "GET", one, headers=glass)
    write, write_request = await call(
        stack, settings, SUE, "POST", f"{one}/revocation", json={"reason": "other"}, headers=glass
    )

    assert read.status_code == 200 and read.json() == consent
    [row] = await audit_rows(settings, read_request)
    assert (row["outcome"], row["break_glass_reason"]) == (
        "break_glass",
        glass["X-Break-Glass-Reason"],
    )
    assert write.status_code == 404  # outside scope for a write, like any other record
    [row] = await audit_rows(settings, write_request)
    assert (row["action"], row["outcome"]) == ("consent.write", "denied")
    assert (await stack.api["intake"].get(one)).json()["status"] == "active"
