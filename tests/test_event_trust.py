"""Trust on the bus, against the real services, database and broker: a forged event is
dead-lettered and changes nothing; protected facts travel only on the protected topic; every
message's Kafka key is what AsyncAPI says it is."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
import yaml
from aiokafka import ConsumerRecord

from shared.events.assessment import ProtectedFlagRaised, ProtectedNeedsAssessed
from shared.events.contracts import (
    SERVICE_NAMES,
    AuditRecorded,
    CaseAssigned,
    ClientRegistered,
    EventData,
    Topic,
    dead_letter_topic,
)
from shared.events.docs import ASYNCAPI_PATH
from shared.events.envelope import (
    UndecodableEvent,
    UnknownEventType,
    decode,
    encode_data,
    kafka_headers,
    source_of,
)
from shared.events.protection import CLASSIFICATION, PROTECTED_TOPIC_READERS
from shared.events.registry import EVENT_TYPES
from shared.messaging.kafka import producer
from shared.settings import Settings
from tests.support import (
    VALID_CLIENT,
    Stack,
    User,
    bearer,
    enrol_worker,
    eventually,
    header,
    open_case,
    read_topic,
)
from tests.test_scoring import NO_NEEDS

SAM = User("sam", ("supervisor",))
SERVICES = ("intake", "planning", "referrals", "notifications")
# A suicidal-thoughts answer (mental health, a `safety` crisis flag), danger at home (domestic
# violence, a `violence` crisis flag), and a general need (food insecurity).
CRISIS_WITH_FOOD = {
    **NO_NEEDS,
    "suicidal_thoughts": "yes",
    "danger_at_home": "yes",
    "food_worry": "often_true",
    "food_ran_out": "often_true",
}
PROTECTED_WORDS = sorted(
    {c for c, cls in CLASSIFICATION.need_categories.items() if cls != "general"}
    | {t for t, cls in CLASSIFICATION.flag_types.items() if cls != "general"}
)


def _message(
    data: EventData, *, source: str, event_id: str | None = None
) -> tuple[list[tuple[str, bytes]], bytes]:
    headers = kafka_headers(
        event_id=event_id or str(uuid.uuid4()),
        event_type=data.event_type,
        source=source,
        subject=data.aggregate_id(),
        time=datetime.now(UTC),
        traceparent=None,
    )
    return headers, encode_data(data.model_dump(mode="json"))


def _assignment(client_id: uuid.UUID, worker_id: str, *, at: datetime) -> CaseAssigned:
    return CaseAssigned(
        client_id=client_id,
        worker_id=worker_id,
        team_id="team-evil",
        organization_id="org-evil",
        assigned_by=worker_id,
        assigned_at=at,
    )


# --- the decoder's rule, without a broker ------------------------------------------------------


def test_an_event_is_accepted_from_its_owner_on_its_own_topic() -> None:
    data = _assignment(uuid.uuid4(), "bob", at=datetime.now(UTC))
    headers, value = _message(data, source=source_of("planning"))
    event = decode(headers, value, topic=Topic.PLANNING_CASES)
    assert (event.source, event.data) == ("/casework/planning", data)


@pytest.mark.parametrize(
    ("source", "topic", "reason"),
    [
        ("/casework/intake", Topic.PLANNING_CASES, "comes from /casework/planning, not from"),
        ("/casework/mallory", Topic.PLANNING_CASES, "not from '/casework/mallory'"),
        ("planning", Topic.PLANNING_CASES, "not from 'planning'"),
        ("/casework/planning", Topic.INTAKE_CLIENTS, "travels on casework.planning.cases"),
        ("/casework/planning", Topic.AUDIT, "travels on casework.planning.cases"),
    ],
)
def test_an_event_from_another_source_or_on_another_topic_is_refused_with_the_reason(
    source: str, topic: str, reason: str
) -> None:
    headers, value = _message(_assignment(uuid.uuid4(), "bob", at=datetime.now(UTC)), source=source)
    with pytest.raises(UndecodableEvent, match="untrusted") as refused:
        decode(headers, value, topic=topic)
    assert reason in str(refused.value)


def test_a_consumer_ignores_even_an_untrusted_event_of_a_type_it_does_not_handle() -> None:
    # It would have no effect there, and a dead-letter copy would only spread it further.
    headers, value = _message(
        _assignment(uuid.uuid4(), "bob", at=datetime.now(UTC)), source="/casework/mallory"
    )
    with pytest.raises(UnknownEventType):
        decode(headers, value, topic=Topic.INTAKE_CLIENTS, handled={ClientRegistered.event_type})
    with pytest.raises(UndecodableEvent, match="untrusted"):
        decode(headers, value, topic=Topic.INTAKE_CLIENTS, handled={CaseAssigned.event_type})


def _audit_record() -> AuditRecorded:
    return AuditRecorded(
        audit_id=uuid.uuid4(),
        service="referrals",
        occurred_at=datetime.now(UTC),
        actor_id=None,
        actor_roles=[],
        actor_organization_id=None,
        action="client.read",
        resource_type="client",
        resource_id=None,
        client_id=None,
        outcome="unauthenticated",
        request_id=None,
        source_address=None,
    )


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_the_audit_stream_accepts_every_known_service_but_only_on_the_audit_topic(
    service: str,
) -> None:
    headers, value = _message(_audit_record(), source=source_of(service))
    assert decode(headers, value, topic=Topic.AUDIT).source == source_of(service)
    with pytest.raises(UndecodableEvent, match=r"travels on casework\.audit"):
        decode(headers, value, topic=Topic.INTAKE_CLIENTS)
    stranger, _ = _message(_audit_record(), source="/casework/mallory")
    with pytest.raises(UndecodableEvent, match="untrusted"):
        decode(stranger, value, topic=Topic.AUDIT)


# --- the forged assignment, end to end ---------------------------------------------------------


async def _access_rows(settings: Settings, client_id: str) -> dict[str, tuple[Any, ...] | None]:
    connection = await asyncpg.connect(settings.database_url)
    try:
        rows = {}
        for service in SERVICES:
            row = await connection.fetchrow(
                f"SELECT organization_id, team_id, owner_id, assigned_at "
                f"FROM {service}.client_access WHERE client_id = $1::uuid",
                client_id,
            )
            rows[service] = tuple(row) if row else None
        return rows
    finally:
        await connection.close()


async def _register_known_everywhere(stack: Stack, settings: Settings) -> str:
    """A new client, once every service has its access facts (planning needs them to assign)."""
    registered = await stack.api["intake"].post("/v1/clients", json=VALID_CLIENT)
    assert registered.status_code == 201, registered.text
    client_id: str = registered.json()["id"]

    async def known() -> bool | None:
        rows = await _access_rows(settings, client_id)
        return True if all(rows.values()) else None

    await eventually(known)
    return client_id


Records = list[ConsumerRecord[bytes, bytes]]


def _holds_ids(ids: set[str]) -> Callable[[Records], bool]:
    return lambda records: ids <= {header(r, "ce_id") for r in records}


def _holds_types(types: set[str], *, key: str) -> Callable[[Records], bool]:
    return lambda records: types <= {header(r, "ce_type") for r in records if r.key == key.encode()}


async def _produce(settings: Settings, topic: str, data: EventData, *, source: str) -> str:
    event_id = str(uuid.uuid4())
    headers, value = _message(data, source=source, event_id=event_id)
    kafka = producer(settings)
    await kafka.start()
    try:
        await kafka.send_and_wait(
            topic, value=value, key=data.aggregate_id().encode(), headers=headers
        )
    finally:
        await kafka.stop()
    return event_id


async def test_a_forged_case_assignment_is_dead_lettered_and_changes_nothing(
    stack: Stack, settings: Settings
) -> None:
    client_id = await _register_known_everywhere(stack, settings)
    for worker in ("alice", "bob"):
        await enrol_worker(stack, settings, User(worker, ("caseworker",)))
    path = f"/v1/cases/{await open_case(stack, settings, client_id)}/assignment"
    first = await stack.api["planning"].put(
        path, json={"worker_id": "alice"}, headers=bearer(settings, SAM)
    )
    assert first.status_code == 200, first.text

    async def assigned_everywhere(worker: str) -> dict[str, tuple[Any, ...] | None] | None:
        rows = await _access_rows(settings, client_id)
        owners = {row[2] if row else None for row in rows.values()}
        return rows if owners == {worker} else None

    before = await eventually(lambda: assigned_everywhere("alice"))
    assert {row[0] for row in before.values() if row} == {"org-a"}

    # Mallory, with no credentials of planning, moves the client to her own organisation: an
    # assignment dated tomorrow (it would win over any real one), once speaking as intake on
    # planning's topic, once speaking as planning on intake's topic.
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    forged = _assignment(uuid.UUID(client_id), "mallory", at=tomorrow)
    wrong_source = await _produce(
        settings, Topic.PLANNING_CASES, forged, source=source_of("intake")
    )
    wrong_topic = await _produce(
        settings, Topic.INTAKE_CLIENTS, forged, source=source_of("planning")
    )

    # Every group that reads planning's topic dead-letters the first; every group that reads
    # intake's topic (planning, referrals, notifications) the second; each with the reason.
    expected = {
        "intake": {wrong_source},
        "planning": {wrong_source, wrong_topic},
        "referrals": {wrong_source, wrong_topic},
        "notifications": {wrong_source, wrong_topic},
    }
    for group, ids in expected.items():
        letters = await read_topic(
            settings,
            dead_letter_topic(group),
            until=_holds_ids(ids),
        )
        ours = {header(r, "ce_id"): r for r in letters if header(r, "ce_id") in ids}
        assert set(ours) == ids
        if wrong_source in ours:
            letter = ours[wrong_source]
            assert header(letter, "dlq_original_topic") == Topic.PLANNING_CASES
            assert "comes from /casework/planning, not from '/casework/intake'" in (
                header(letter, "dlq_error") or ""
            )
        if wrong_topic in ours:
            letter = ours[wrong_topic]
            assert header(letter, "dlq_original_topic") == Topic.INTAKE_CLIENTS
            assert "travels on casework.planning.cases, not on casework.intake.clients" in (
                header(letter, "dlq_error") or ""
            )
        assert header(ours[wrong_source], "dlq_consumer_group") == group

    # Dead-lettered means handled: by now the forgery would have applied. Nothing changed, and
    # no inbox claimed it.
    assert await _access_rows(settings, client_id) == before
    connection = await asyncpg.connect(settings.database_url)
    try:
        for service in SERVICES:
            claimed = await connection.fetchval(
                f"SELECT count(*) FROM {service}.inbox WHERE event_id = ANY($1::text[])",
                [wrong_source, wrong_topic],
            )
            assert claimed == 0, service
    finally:
        await connection.close()

    # The partition moved on: the next real assignment applies everywhere.
    second = await stack.api["planning"].put(
        path, json={"worker_id": "bob"}, headers=bearer(settings, SAM)
    )
    assert second.status_code == 200, second.text
    after = await eventually(lambda: assigned_everywhere("bob"))
    assert {row[0] for row in after.values() if row} == {"org-a"}


# --- protected facts ---------------------------------------------------------------------------


async def _outbox(settings: Settings, client_id: str) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(settings.database_url)
    try:
        rows: list[asyncpg.Record] = await connection.fetch(
            "SELECT type, topic, payload FROM intake.outbox WHERE aggregateid = $1 ORDER BY seq",
            client_id,
        )
        return rows
    finally:
        await connection.close()


def _wire(record: ConsumerRecord[bytes, bytes]) -> bytes:
    return (record.value or b"") + b"".join(bytes(value) for _, value in record.headers)


async def test_protected_facts_travel_only_on_the_protected_topic(
    stack: Stack, settings: Settings
) -> None:
    registered = await stack.api["intake"].post("/v1/clients", json=VALID_CLIENT)
    client_id = registered.json()["id"]
    assessed = await stack.api["intake"].post(
        f"/v1/clients/{client_id}/assessments",
        json={
            "instrument_id": "needs-risk-screening",
            "version": "1.0",
            "answers": CRISIS_WITH_FOOD,
        },
    )
    assert assessed.status_code == 201, assessed.text
    body = assessed.json()
    assert {need["category"] for need in body["needs"]} >= {
        "mental_health",
        "intimate_partner_violence",
        "food_insecurity",
    }

    rows = await _outbox(settings, client_id)
    by_type: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        assert row["topic"] == EVENT_TYPES[row["type"]].topic
        by_type.setdefault(row["type"], []).append(json.loads(row["payload"]))
    general = [row for row in rows if row["topic"] not in PROTECTED_TOPIC_READERS]
    for row in general:
        for word in PROTECTED_WORDS:
            assert word not in row["payload"], (row["type"], word)

    [assessed_event] = by_type["org.casework.intake.client.assessed.v1"]
    assert assessed_event["needs"] == [
        need for need in body["needs"] if need["category"] == "food_insecurity"
    ]
    assert (assessed_event["risk_level"], assessed_event["priority"]) == ("crisis", 1)
    assert "org.casework.intake.flag.raised.v1" not in by_type

    [protected_needs] = by_type[ProtectedNeedsAssessed.event_type]
    assert protected_needs["assessment_id"] == body["id"]
    assert sorted((n["category"], n["data_class"]) for n in protected_needs["needs"]) == [
        ("intimate_partner_violence", "domestic_violence"),
        ("mental_health", "mental_health"),
    ]
    flags = by_type[ProtectedFlagRaised.event_type]
    assert sorted(f["flag_id"] for f in flags) == sorted(body["raised_flag_ids"])
    assert sorted((f["flag_type"], f["crisis"]) for f in flags) == [
        ("safety", True),
        ("violence", True),
    ]

    # On the wire: the protected events on the protected topic; the general topic and the
    # agency-facing audit stream carry none of the protected words for this client.
    protected = await read_topic(
        settings,
        Topic.INTAKE_PROTECTED,
        until=lambda records: sum(r.key == client_id.encode() for r in records) == 3,
    )
    assert sorted(
        header(r, "ce_type") or "" for r in protected if r.key == client_id.encode()
    ) == sorted([ProtectedNeedsAssessed.event_type, *[ProtectedFlagRaised.event_type] * 2])
    for topic in (Topic.INTAKE_CLIENTS, Topic.AUDIT):
        records = await read_topic(
            settings,
            topic,
            until=lambda records: any(
                r.key == client_id.encode()
                and header(r, "ce_type")
                in ("org.casework.intake.client.assessed.v1", AuditRecorded.event_type)
                for r in records
            ),
        )
        for record in records:
            if record.key == client_id.encode():
                for word in PROTECTED_WORDS:
                    assert word.encode() not in _wire(record), (topic, word)


# --- documented keys ---------------------------------------------------------------------------


def _documented_key_fields() -> dict[str, list[str]]:
    document = yaml.safe_load(ASYNCAPI_PATH.read_text())
    return {
        message["name"]: message["bindings"]["kafka"]["key"]["x-key-fields"]
        for message in document["components"]["messages"].values()
    }


async def test_every_message_is_keyed_as_asyncapi_documents(
    stack: Stack, settings: Settings
) -> None:
    documented = _documented_key_fields()
    assert set(documented) == set(EVENT_TYPES)
    assert documented[CaseAssigned.event_type] == ["client_id"]
    assert documented[AuditRecorded.event_type] == ["client_id", "audit_id"]

    # Traffic of every kind: a registration, an assignment, a crisis assessment (protected
    # events), a refused request (audited without a client).
    client_id = await _register_known_everywhere(stack, settings)
    assigned = await stack.api["planning"].put(
        f"/v1/cases/{await open_case(stack, settings, client_id)}/assignment",
        json={"worker_id": "alice"},
        headers=bearer(settings, SAM),
    )
    assert assigned.status_code == 200, assigned.text
    assessed = await stack.api["intake"].post(
        f"/v1/clients/{client_id}/assessments",
        json={
            "instrument_id": "needs-risk-screening",
            "version": "1.0",
            "answers": CRISIS_WITH_FOOD,
        },
    )
    assert assessed.status_code == 201, assessed.text
    anonymous = await stack.api["intake"].get("/v1/clients", headers={"Authorization": ""})
    assert anonymous.status_code == 401

    wanted = {
        Topic.INTAKE_CLIENTS: {
            ClientRegistered.event_type,
            "org.casework.intake.client.assessed.v1",
        },
        Topic.PLANNING_CASES: {CaseAssigned.event_type},
        Topic.INTAKE_PROTECTED: {ProtectedNeedsAssessed.event_type, ProtectedFlagRaised.event_type},
        Topic.AUDIT: {AuditRecorded.event_type},
    }
    checked: dict[str, int] = {}
    keyed_by: set[str] = set()
    for topic, types in wanted.items():
        records = await read_topic(
            settings,
            topic,
            until=_holds_types(types, key=client_id),
        )
        for record in records:
            try:
                event = decode(list(record.headers), record.value, topic=record.topic)
            except (UndecodableEvent, UnknownEventType):
                continue  # not the relay's: the forgeries and poison of other tests
            fields = documented[event.type]
            key_field = next(f for f in fields if getattr(event.data, f) is not None)
            assert record.key == str(getattr(event.data, key_field)).encode(), event.type
            assert event.subject == record.key.decode()
            checked[event.type] = checked.get(event.type, 0) + 1
            if event.type == AuditRecorded.event_type:
                keyed_by.add(key_field)
    assert set().union(*wanted.values()) <= set(checked)
    assert keyed_by == {"client_id", "audit_id"}
