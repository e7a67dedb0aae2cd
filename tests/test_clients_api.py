"""POST/GET /v1/clients on intake: stored, returned, evented; bad input changes nothing."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

from shared.events.contracts import ClientRegistered
from shared.settings import Settings
from tests.support import VALID_CLIENT, Stack, admin_fetchval

pytestmark = pytest.mark.asyncio


async def counts(settings: Settings) -> tuple[int, int]:
    """Clients and events, audit records aside (a refusal is audited, and its record
    published)."""
    clients = await admin_fetchval(settings, "SELECT count(*) FROM intake.clients")
    events = await admin_fetchval(
        settings, "SELECT count(*) FROM intake.outbox WHERE topic <> 'casework.audit'"
    )
    return clients, events


async def registrations(settings: Settings) -> tuple[int, int]:
    """Clients, and ClientRegistered events in the outbox (audit records publish events too)."""
    clients = await admin_fetchval(settings, "SELECT count(*) FROM intake.clients")
    events = await admin_fetchval(
        settings, "SELECT count(*) FROM intake.outbox WHERE type = $1", ClientRegistered.event_type
    )
    return clients, events


async def test_register_returns_the_stored_client_with_etag_and_location(stack: Stack) -> None:
    response = await stack.api["intake"].post("/v1/clients", json=VALID_CLIENT)

    assert response.status_code == 201
    body = response.json()
    assert {key: body[key] for key in REQUIRED} == {key: VALID_CLIENT[key] for key in REQUIRED}
    assert "duplicate_check" not in body
    assert (body["name_data_quality"], body["birth_date_quality"]) == ("1", "1")
    assert body["version"] == 1
    assert response.headers["location"] == f"/v1/clients/{body['id']}"
    assert response.headers["etag"] == f'"{body["id"]}.1"'
    fetched = await stack.api["intake"].get(response.headers["location"])
    assert fetched.json() == body
    assert fetched.headers["etag"] == response.headers["etag"]


async def test_register_writes_client_and_event_in_one_transaction(
    stack: Stack, settings: Settings
) -> None:
    response = await stack.api["intake"].post("/v1/clients", json=VALID_CLIENT)
    client_id = response.json()["id"]

    payload = await admin_fetchval(
        settings,
        "SELECT payload FROM intake.outbox WHERE aggregateid = $1 AND type = $2",
        client_id,
        "org.casework.intake.client.registered.v1",
    )
    event = json.loads(payload)
    registered_at = event.pop("registered_at")
    assert event == {
        "client_id": client_id,
        "preferred_language": "pt",
        "organization_id": "org-a",
        "team_id": "team-a",
        "registered_by": "alice",
        "interpreter_needed": False,
        "postal_area": None,
    }
    assert datetime.fromisoformat(registered_at) == datetime.fromisoformat(
        response.json()["created_at"]
    )


async def test_names_are_trimmed_and_language_lower_cased(stack: Stack) -> None:
    response = await stack.api["intake"].post(
        "/v1/clients",
        json={**VALID_CLIENT, "given_name": "  Ana  ", "preferred_language": "PT"},
    )
    assert response.status_code == 201
    assert response.json()["given_name"] == "Ana"
    assert response.json()["preferred_language"] == "pt"


async def test_unknown_client_is_a_problem_404(stack: Stack) -> None:
    response = await stack.api["intake"].get("/v1/clients/6f1c1f7e-1111-4c1e-9a7e-000000000000")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"].endswith("/not-found")
    assert problem["status"] == 404
    assert problem["instance"] == "/v1/clients/6f1c1f7e-1111-4c1e-9a7e-000000000000"


REQUIRED = ("given_name", "family_name", "birth_date", "preferred_language")


def _without(field: str) -> dict[str, Any]:
    return {key: value for key, value in VALID_CLIENT.items() if key != field}


BAD_BODIES: list[tuple[str, Any, set[str]]] = [
    ("missing given_name", _without("given_name"), {"body.given_name"}),
    ("missing birth_date", _without("birth_date"), {"body.birth_date"}),
    ("empty body", {}, {f"body.{key}" for key in REQUIRED}),
    ("number as name", {**VALID_CLIENT, "family_name": 42}, {"body.family_name"}),
    ("date not a date", {**VALID_CLIENT, "birth_date": "03/02/1990"}, {"body.birth_date"}),
    ("birth date in the future", {**VALID_CLIENT, "birth_date": "2999-01-01"}, {"body.birth_date"}),
    ("birth date before 1900", {**VALID_CLIENT, "birth_date": "1850-01-01"}, {"body.birth_date"}),
    ("blank name", {**VALID_CLIENT, "given_name": "   "}, {"body.given_name"}),
    ("control character", {**VALID_CLIENT, "given_name": "A\u0000na"}, {"body.given_name"}),
    ("name too long", {**VALID_CLIENT, "family_name": "x" * 101}, {"body.family_name"}),
    (
        "language not ISO 639",
        {**VALID_CLIENT, "preferred_language": "english"},
        {"body.preferred_language"},
    ),
    ("unknown field", {**VALID_CLIENT, "ssn": "123-45-6789"}, {"body.ssn"}),
    ("a list, not an object", [VALID_CLIENT], {"body"}),
]


@pytest.mark.parametrize(("case", "body", "fields"), BAD_BODIES, ids=[c[0] for c in BAD_BODIES])
async def test_bad_input_is_a_422_problem_and_writes_nothing(
    stack: Stack, settings: Settings, case: str, body: Any, fields: set[str]
) -> None:
    before = await counts(settings)

    response = await stack.api["intake"].post("/v1/clients", json=body)

    assert response.status_code == 422, case
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"].endswith("/validation-error")
    assert {error["field"] for error in problem["errors"]} == fields
    assert all(error["message"] and error["code"] for error in problem["errors"])
    assert await counts(settings) == before


async def test_malformed_json_is_a_problem_and_writes_nothing(
    stack: Stack, settings: Settings
) -> None:
    before = await counts(settings)
    response = await stack.api["intake"].post(
        "/v1/clients",
        content=b'{"given_name": "Ana",',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["code"] == "json_invalid"
    assert await counts(settings) == before


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_one_megabyte_body_is_refused_with_413_and_writes_nothing(
    stack: Stack, settings: Settings, chunked: bool
) -> None:
    before = await counts(settings)
    huge = json.dumps({**VALID_CLIENT, "given_name": "x" * 1_000_000}).encode()

    async def stream() -> Any:
        for start in range(0, len(huge), 65_536):
            yield huge[start : start + 65_536]

    content: Any = stream() if chunked else huge
    response = await stack.api["intake"].post(
        "/v1/clients", content=content, headers={"content-type": "application/json"}
    )

    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("/payload-too-large")
    assert await counts(settings) == before


async def test_idempotency_key_replays_the_first_response_and_creates_once(
    stack: Stack, settings: Settings
) -> None:
    headers = {"Idempotency-Key": "retry-test-1"}
    first = await stack.api["intake"].post("/v1/clients", json=VALID_CLIENT, headers=headers)
    before = await registrations(settings)

    second = await stack.api["intake"].post(
        "/v1/clients", json=VALID_CLIENT, headers={**headers, "X-Request-ID": "replay-1"}
    )

    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second.headers["etag"] == first.headers["etag"]
    assert await registrations(settings) == before
    # The replay shows the record again: it is on the record, as the first answer was.
    replay_audited = await admin_fetchval(
        settings,
        "SELECT client_id::text FROM intake.audit_log WHERE request_id = 'replay-1' "
        "AND action = 'client.create' AND outcome = 'allowed'",
    )
    assert replay_audited == first.json()["id"]


async def test_idempotency_key_reused_with_another_body_is_refused(stack: Stack) -> None:
    headers = {"Idempotency-Key": "retry-test-2"}
    await stack.api["intake"].post("/v1/clients", json=VALID_CLIENT, headers=headers)

    response = await stack.api["intake"].post(
        "/v1/clients", json={**VALID_CLIENT, "given_name": "Bea"}, headers=headers
    )

    assert response.status_code == 422
    assert response.json()["type"].endswith("/idempotency-key-reused")


async def test_errors_carry_the_request_id_the_caller_sent(stack: Stack) -> None:
    response = await stack.api["intake"].post(
        "/v1/clients", json={}, headers={"X-Request-ID": "req-abc-123"}
    )
    assert response.headers["x-request-id"] == "req-abc-123"
    assert response.json()["request_id"] == "req-abc-123"
