"""A client registered at intake reaches every other service through Kafka, and what travels
on the wire is a CloudEvent an agency can read with the official SDK, with no personal data."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from cloudevents.core.bindings.kafka import KafkaMessage, from_binary
from cloudevents.core.formats.json import JSONFormat

from shared.events.contracts import Topic
from shared.settings import Settings
from tests.support import VALID_CLIENT, Stack, get_when_found, header, read_topic

pytestmark = pytest.mark.asyncio

CONSUMERS = ("planning", "referrals", "notifications")
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
# ClientRegistered's data: ids and the facts consumers need, nothing that identifies the person.
ALLOWED_FIELDS = {
    "client_id",
    "preferred_language",
    "interpreter_needed",
    "postal_area",
    "registered_at",
    "organization_id",
    "team_id",
    "registered_by",
}


async def test_a_registered_client_appears_in_every_consumer(stack: Stack) -> None:
    registered = (await stack.api["intake"].post("/v1/clients", json=VALID_CLIENT)).json()

    for service in CONSUMERS:
        reference = await get_when_found(stack.api[service], f"/v1/client-refs/{registered['id']}")
        assert reference["client_id"] == registered["id"]
        assert reference["preferred_language"] == "pt"
        assert datetime.fromisoformat(reference["registered_at"]) == datetime.fromisoformat(
            registered["created_at"]
        )
        assert "given_name" not in reference and "birth_date" not in reference


async def test_an_unknown_client_reference_is_a_problem_404(stack: Stack) -> None:
    response = await stack.api["planning"].get(
        "/v1/client-refs/00000000-0000-4000-8000-000000000000"
    )
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_the_event_is_a_binary_cloudevent_readable_with_the_sdk(
    stack: Stack, settings: Settings
) -> None:
    response = await stack.api["intake"].post(
        "/v1/clients",
        json=VALID_CLIENT,
        headers={"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"},
    )
    client_id = response.json()["id"]

    records = await read_topic(
        settings,
        Topic.INTAKE_CLIENTS,
        until=lambda records: any(r.key == client_id.encode() for r in records),
    )
    record = next(r for r in records if r.key == client_id.encode())
    event = from_binary(
        KafkaMessage(headers=dict(record.headers), key=record.key, value=record.value),
        JSONFormat(),
    )

    assert event.get_specversion() == "1.0"
    assert event.get_type() == "org.casework.intake.client.registered.v1"
    assert event.get_source() == "/casework/intake"
    assert event.get_subject() == client_id
    assert event.get_datacontenttype() == "application/json"
    assert event.get_time() is not None
    data = event.get_data()
    assert isinstance(data, dict)
    assert set(data) == ALLOWED_FIELDS
    assert (data["client_id"], data["preferred_language"]) == (client_id, "pt")
    assert datetime.fromisoformat(data["registered_at"]) == datetime.fromisoformat(
        response.json()["created_at"]
    )
    # W3C trace context travels from the HTTP request through the outbox into Kafka.
    assert header(record, "ce_traceparent").split("-")[1] == TRACE_ID  # type: ignore[union-attr]
    assert response.headers["traceparent"].split("-")[1] == TRACE_ID


async def test_no_event_on_the_wire_carries_names_or_birth_dates(
    stack: Stack, settings: Settings
) -> None:
    marker = {"given_name": "Zephyrine", "family_name": "Quistgaard", "birth_date": "1977-07-07"}
    response = await stack.api["intake"].post("/v1/clients", json={**VALID_CLIENT, **marker})
    client_id = response.json()["id"]

    records = await read_topic(
        settings,
        Topic.INTAKE_CLIENTS,
        until=lambda records: any(r.key == client_id.encode() for r in records),
    )
    # Only this client's records: other tests put hand-made (some deliberately malformed)
    # messages on this topic, with intake's source header forged.
    for record in (r for r in records if r.key == client_id.encode()):
        wire = (record.value or b"") + b"".join(value for _, value in record.headers)
        for secret in marker.values():
            assert secret.encode() not in wire
        if header(record, "ce_type") == "org.casework.intake.client.registered.v1":
            assert set(json.loads(record.value or b"{}")) <= ALLOWED_FIELDS
