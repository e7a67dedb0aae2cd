"""Identity links: two records of one person are linked, never merged; a link can be undone.

Every consuming service re-points its client reference to the group's canonical record (the
oldest registration) and back again on unlink; a split pair is not linked again without an
explicit override, by a person or automatically; linking needs both records in the caller's
own scope and widens nobody's access; every attempt is audited; the events are CloudEvents
with ids only.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import ConsumerRecord
from cloudevents.core.bindings.kafka import KafkaMessage, from_binary
from cloudevents.core.formats.json import JSONFormat

from services.intake.links.service import may_link_automatically
from shared.client_refs import on_client_linked, on_client_registered, on_client_unlinked
from shared.events.contracts import ClientRegistered, Topic
from shared.events.envelope import Event
from shared.events.identity import ClientLinked, ClientUnlinked
from shared.settings import Settings
from tests.support import (
    CASEWORKER,
    VALID_CLIENT,
    Stack,
    User,
    admin_fetchval,
    bearer,
    eventually,
    get_when_found,
    header,
    read_topic,
)

pytestmark = pytest.mark.asyncio

ALICE = CASEWORKER
BOB = User("bob", ("caseworker",))
SAM = User("sam", ("supervisor",))
SUE = User("sue", ("supervisor",), team_id="team-b")  # same organisation, another team
OLGA = User("olga", ("supervisor",), organization_id="org-b", team_id="team-x")
OSCAR = User("oscar", ("caseworker",), organization_id="org-b", team_id="team-x")
CONSUMERS = ("planning", "referrals", "notifications")
LINKED = "org.casework.intake.client.linked.v1"
UNLINKED = "org.casework.intake.client.unlinked.v1"


async def call(
    stack: Stack,
    settings: Settings,
    user: User,
    service: str,
    method: str,
    path: str,
    **kwargs: Any,
) -> tuple[httpx.Response, str]:
    """Call as `user` with a fresh request id; return the response and the request id."""
    request_id = str(uuid.uuid4())
    headers = {"X-Request-ID": request_id, **bearer(settings, user), **kwargs.pop("headers", {})}
    response = await stack.api[service].request(method, path, headers=headers, **kwargs)
    return response, request_id


async def register(
    stack: Stack, settings: Settings, user: User = ALICE, marker: str | None = None
) -> str:
    body = {**VALID_CLIENT, "given_name": marker or f"Linkcase{secrets.token_hex(4)}"}
    response, _ = await call(stack, settings, user, "intake", "POST", "/v1/clients", json=body)
    assert response.status_code == 201, response.text
    client_id: str = response.json()["id"]
    return client_id


async def link(
    stack: Stack,
    settings: Settings,
    client_id: str,
    other: str,
    *,
    user: User = SAM,
    reason: str = "duplicate_registration",
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> tuple[httpx.Response, str]:
    """Link as `user` (sam by default); `extra` goes into the body."""
    return await call(
        stack,
        settings,
        user,
        "intake",
        "POST",
        f"/v1/clients/{client_id}/links",
        json={"other_client_id": other, "reason": reason, **extra},
        headers=headers or {},
    )


async def unlink(
    stack: Stack,
    settings: Settings,
    client_id: str,
    other: str,
    *,
    user: User = SAM,
    reason: str = "wrong_person",
) -> tuple[httpx.Response, str]:
    return await call(
        stack,
        settings,
        user,
        "intake",
        "DELETE",
        f"/v1/clients/{client_id}/links/{other}",
        params={"reason": reason},
    )


async def canonical_in(
    stack: Stack, settings: Settings, service: str, client_id: str
) -> str | None:
    """The service's canonical id for the client; None while it does not know the client."""
    response, _ = await call(stack, settings, SAM, service, "GET", f"/v1/client-refs/{client_id}")
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    canonical: str = response.json()["canonical_client_id"]
    return canonical


async def until_canonical(stack: Stack, settings: Settings, client_id: str, expected: str) -> None:
    """Every consuming service's reference to `client_id` points at `expected`."""
    for service in CONSUMERS:

        async def probe(service: str = service) -> bool | None:
            found = await canonical_in(stack, settings, service, client_id)
            return True if found == expected else None

        await eventually(probe)


async def known_everywhere(stack: Stack, *client_ids: str) -> None:
    for service in CONSUMERS:
        for client_id in client_ids:
            await get_when_found(stack.api[service], f"/v1/client-refs/{client_id}")


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


async def links_of(stack: Stack, settings: Settings, client_id: str) -> dict[str, Any]:
    response, _ = await call(
        stack, settings, SAM, "intake", "GET", f"/v1/clients/{client_id}/links"
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_link_repoints_every_services_reference_and_an_unlink_points_it_back(
    stack: Stack, settings: Settings
) -> None:
    older = await register(stack, settings)
    newer = await register(stack, settings)
    await known_everywhere(stack, older, newer)
    for service in CONSUMERS:
        reference = await get_when_found(stack.api[service], f"/v1/client-refs/{newer}")
        assert reference["client_id"] == newer
        assert reference["canonical_client_id"] == newer  # not linked: itself
        assert reference["preferred_language"] == "pt"
        assert {"registered_at", "received_at"} <= set(reference)

    response, request_id = await link(stack, settings, newer, older)

    assert response.status_code == 201, response.text
    created = response.json()
    assert (created["client_id"], created["linked_client_id"]) == (newer, older)
    assert created["canonical_client_id"] == older
    assert (created["linked_by"], created["reason"]) == ("sam", "duplicate_registration")
    assert created["split_overridden"] is False
    assert created["unlinked_at"] is None
    assert datetime.fromisoformat(created["linked_at"]) <= datetime.now(UTC)
    assert response.headers["location"] == f"/v1/clients/{newer}/links"
    rows = await audit_rows(settings, request_id)
    assert {(str(r["client_id"]), r["outcome"]) for r in rows} == {
        (newer, "allowed"),
        (older, "allowed"),
    }
    assert {(r["action"], r["resource_type"], r["resource_id"]) for r in rows} == {
        ("link.write", "identity_link", created["id"])
    }
    await until_canonical(stack, settings, newer, older)
    for service in CONSUMERS:
        assert await canonical_in(stack, settings, service, older) == older

    group = await links_of(stack, settings, newer)
    assert (group["client_id"], group["canonical_client_id"]) == (newer, older)
    assert group["group"] == [older, newer]
    assert [item["id"] for item in group["links"]] == [created["id"]]
    assert (group["history"], group["splits"]) == ([], [])

    response, request_id = await unlink(stack, settings, newer, older)

    assert response.status_code == 200, response.text
    undone = response.json()
    assert undone["link"]["id"] == created["id"]
    assert (undone["link"]["unlinked_by"], undone["link"]["unlink_reason"]) == (
        "sam",
        "wrong_person",
    )
    assert undone["link"]["unlinked_at"] is not None
    assert (undone["canonical_client_id"], undone["other_canonical_client_id"]) == (newer, older)
    split = undone["split"]
    assert (split["link_id"], split["client_id"], split["linked_client_id"]) == (
        created["id"],
        newer,
        older,
    )
    assert (split["split_by"], split["reason"]) == ("sam", "wrong_person")
    rows = await audit_rows(settings, request_id)
    assert {(str(r["client_id"]), r["action"], r["outcome"]) for r in rows} == {
        (newer, "link.write", "allowed"),
        (older, "link.write", "allowed"),
    }
    await until_canonical(stack, settings, newer, newer)

    group = await links_of(stack, settings, newer)
    assert (group["canonical_client_id"], group["group"], group["links"]) == (newer, [newer], [])
    assert [item["id"] for item in group["history"]] == [created["id"]]
    assert group["history"][0]["unlinked_by"] == "sam"
    assert [item["id"] for item in group["splits"]] == [split["id"]]


async def test_the_canonical_record_of_a_group_is_its_oldest_registration(
    stack: Stack, settings: Settings
) -> None:
    oldest, middle, newest = [await register(stack, settings) for _ in range(3)]
    await known_everywhere(stack, oldest, middle, newest)

    first, _ = await link(stack, settings, newest, middle)
    assert first.status_code == 201, first.text
    assert first.json()["canonical_client_id"] == middle
    await until_canonical(stack, settings, newest, middle)

    # Linking the oldest record to the group re-points every member, not just the pair.
    second, _ = await link(stack, settings, newest, oldest, reason="same_person_confirmed")
    assert second.status_code == 201, second.text
    assert second.json()["canonical_client_id"] == oldest
    for member in (oldest, middle, newest):
        await until_canonical(stack, settings, member, oldest)
    group = await links_of(stack, settings, middle)
    assert (group["canonical_client_id"], group["group"]) == (oldest, [oldest, middle, newest])
    assert {item["id"] for item in group["links"]} == {first.json()["id"], second.json()["id"]}

    # Already linked (directly or through the group), or the same record: nothing to link.
    again, _ = await link(stack, settings, middle, newest)
    assert again.status_code == 409
    assert again.json()["type"].endswith("/already-linked")
    through, _ = await link(stack, settings, middle, oldest)
    assert through.status_code == 409
    assert "through other records" in through.json()["detail"]
    itself, request_id = await link(stack, settings, middle, middle)
    assert itself.status_code == 422
    assert itself.headers["content-type"] == "application/problem+json"
    [row] = await audit_rows(settings, request_id)
    assert (row["action"], row["outcome"], str(row["client_id"])) == (
        "link.write",
        "denied",
        middle,
    )
    # Only a direct link can be undone.
    indirect, request_id = await unlink(stack, settings, middle, oldest)
    assert indirect.status_code == 404
    assert indirect.json()["type"].endswith("/not-linked")
    assert {r["outcome"] for r in await audit_rows(settings, request_id)} == {"not_found"}

    # Undoing newest-middle leaves {middle} and {oldest, newest}: each member is told its own.
    response, _ = await unlink(stack, settings, newest, middle, reason="entered_in_error")
    assert response.status_code == 200, response.text
    assert (
        response.json()["canonical_client_id"],
        response.json()["other_canonical_client_id"],
    ) == (
        oldest,
        middle,
    )
    await until_canonical(stack, settings, middle, middle)
    await until_canonical(stack, settings, newest, oldest)
    await until_canonical(stack, settings, oldest, oldest)


async def test_a_split_pair_is_not_linked_again_without_override(
    stack: Stack, settings: Settings
) -> None:
    first, second, third = [await register(stack, settings) for _ in range(3)]
    linked, _ = await link(stack, settings, second, first)
    assert linked.status_code == 201
    # The reason may come in the body instead of the query.
    response, _ = await call(
        stack,
        settings,
        SAM,
        "intake",
        "DELETE",
        f"/v1/clients/{second}/links/{first}",
        json={"reason": "entered_in_error"},
    )
    assert response.status_code == 200, response.text
    split_id = response.json()["split"]["id"]
    assert response.json()["split"]["reason"] == "entered_in_error"

    connection = await asyncpg.connect(
        settings.database_url, server_settings={"search_path": "intake"}
    )

    async def automatic(a: str, b: str) -> bool:
        return await may_link_automatically(connection, uuid.UUID(a), uuid.UUID(b))

    try:
        assert await automatic(first, second) is False
        assert await automatic(second, first) is False
        assert await automatic(first, third) is True

        refused, request_id = await link(stack, settings, second, first)
        assert refused.status_code == 409
        problem = refused.json()
        assert problem["type"].endswith("/split-records")
        assert "override_split" in problem["detail"]
        assert "sam" in problem["detail"] and "entered_in_error" in problem["detail"]
        assert problem["split_id"] == split_id
        rows = await audit_rows(settings, request_id)
        assert {(str(r["client_id"]), r["outcome"]) for r in rows} == {
            (second, "denied"),
            (first, "denied"),
        }
        assert (await links_of(stack, settings, second))["links"] == []

        # Nor through a third record: first-third is fine, but then second-third would join
        # the split pair again.
        via, _ = await link(stack, settings, third, first)
        assert via.status_code == 201, via.text
        assert await automatic(second, third) is False
        joined, _ = await link(stack, settings, second, third)
        assert joined.status_code == 409
        assert joined.json()["type"].endswith("/split-records")
        unlinked_third, _ = await unlink(stack, settings, third, first)
        assert unlinked_third.status_code == 200

        overridden, _ = await link(
            stack, settings, second, first, reason="same_person_confirmed", override_split=True
        )
        assert overridden.status_code == 201, overridden.text
        assert overridden.json()["split_overridden"] is True
        assert overridden.json()["canonical_client_id"] == first
        # Still split for machines: only a person decides these two are one.
        assert await automatic(first, second) is False
    finally:
        await connection.close()
    await until_canonical(stack, settings, second, first)


async def test_only_supervisors_link_and_only_records_in_their_own_scope(
    stack: Stack, settings: Settings
) -> None:
    mine = await register(stack, settings)
    also_mine = await register(stack, settings)
    foreign = await register(stack, settings, OSCAR)

    # A caseworker may read links, not make them.
    response, request_id = await link(stack, settings, also_mine, mine, user=ALICE)
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    [row] = await audit_rows(settings, request_id)
    assert (row["actor_id"], row["action"], row["outcome"]) == ("alice", "link.write", "denied")
    assert (row["resource_type"], str(row["client_id"])) == ("identity_link", also_mine)

    # Another organisation's supervisor does not learn that the records exist.
    response, request_id = await link(stack, settings, also_mine, mine, user=OLGA)
    assert response.status_code == 404
    [row] = await audit_rows(settings, request_id)
    assert (row["actor_id"], row["outcome"], str(row["client_id"])) == (
        "olga",
        "denied",
        also_mine,
    )
    # Nor does a supervisor here learn about the other organisation's record.
    response, request_id = await link(stack, settings, also_mine, foreign)
    assert response.status_code == 404
    assert "given_name" not in response.text
    rows = await audit_rows(settings, request_id)
    assert [(str(r["client_id"]), r["outcome"]) for r in rows] == [(foreign, "denied")]
    response, _ = await unlink(stack, settings, also_mine, mine, user=OLGA)
    assert response.status_code == 404
    # Break-glass opens records of one's own organisation to read them, never to link them:
    # outside scope, as any other record (404).
    response, _ = await link(
        stack,
        settings,
        foreign,
        also_mine,
        headers={"X-Break-Glass-Reason": "client in crisis at the front desk"},
    )
    assert response.status_code == 404
    assert (await links_of(stack, settings, also_mine))["links"] == []

    # Reading: the caseworker's own client yes, another caseworker's no; audited either way.
    response, request_id = await call(
        stack, settings, ALICE, "intake", "GET", f"/v1/clients/{mine}/links"
    )
    assert response.status_code == 200
    assert response.json()["canonical_client_id"] == mine
    [row] = await audit_rows(settings, request_id)
    assert (row["action"], row["outcome"], str(row["client_id"])) == (
        "link.read",
        "allowed",
        mine,
    )
    response, request_id = await call(
        stack, settings, BOB, "intake", "GET", f"/v1/clients/{mine}/links"
    )
    assert response.status_code == 404
    [row] = await audit_rows(settings, request_id)
    assert (row["actor_id"], row["action"], row["outcome"]) == ("bob", "link.read", "denied")


async def test_a_supervisor_of_another_team_of_the_organisation_may_link(
    stack: Stack, settings: Settings
) -> None:
    first, second = await register(stack, settings), await register(stack, settings)
    response, _ = await link(stack, settings, second, first, user=SUE)
    assert response.status_code == 201, response.text
    assert response.json()["linked_by"] == "sue"


async def test_a_link_widens_nobodys_access(stack: Stack, settings: Settings) -> None:
    alices = await register(stack, settings, ALICE)
    bobs = await register(stack, settings, BOB)
    response, _ = await link(stack, settings, bobs, alices)
    assert response.status_code == 201
    await until_canonical(stack, settings, bobs, alices)

    for user, own, other in ((ALICE, alices, bobs), (BOB, bobs, alices)):
        response, _ = await call(stack, settings, user, "intake", "GET", f"/v1/clients/{other}")
        assert response.status_code == 404, user
        response, _ = await call(stack, settings, user, "intake", "GET", f"/v1/clients/{own}")
        assert response.status_code == 200, user
        for service in CONSUMERS:
            response, _ = await call(
                stack, settings, user, service, "GET", f"/v1/client-refs/{other}"
            )
            assert response.status_code == 404, (user, service)
            response, _ = await call(
                stack, settings, user, service, "GET", f"/v1/client-refs/{own}"
            )
            assert response.status_code == 200, (user, service)
            assert response.json()["canonical_client_id"] == alices
    registered_by = await asyncpg.connect(settings.database_url)
    try:
        owners = await registered_by.fetch(
            "SELECT client_id, registered_by, owner_id FROM intake.client_access "
            "WHERE client_id = ANY($1::uuid[])",
            [uuid.UUID(alices), uuid.UUID(bobs)],
        )
    finally:
        await registered_by.close()
    assert {(str(r["client_id"]), r["registered_by"], r["owner_id"]) for r in owners} == {
        (alices, "alice", None),
        (bobs, "bob", None),
    }


async def test_link_events_are_cloudevents_with_ids_only(stack: Stack, settings: Settings) -> None:
    markers = [f"Quillfeather{secrets.token_hex(3)}" for _ in range(3)]
    oldest, middle, newest = [await register(stack, settings, marker=m) for m in markers]
    # middle-newest, then oldest joins: three ClientLinked for the second link.
    assert (await link(stack, settings, newest, middle))[0].status_code == 201
    second, _ = await link(stack, settings, middle, oldest)
    assert second.status_code == 201
    link_id = second.json()["id"]
    undone, _ = await unlink(stack, settings, middle, oldest)
    assert undone.status_code == 200
    members = {oldest, middle, newest}

    def wanted(record: ConsumerRecord[bytes, bytes]) -> bool:
        return (record.key or b"").decode() in members and header(record, "ce_type") in {
            LINKED,
            UNLINKED,
        }

    def seen(records: list[ConsumerRecord[bytes, bytes]]) -> set[tuple[str, str]]:
        return {
            ((r.key or b"").decode(), header(r, "ce_type") or "")
            for r in records
            if wanted(r) and link_id.encode() in (r.value or b"")
        }

    expected = {(m, t) for m in members for t in (LINKED, UNLINKED)}
    records = await read_topic(
        settings, Topic.INTAKE_CLIENTS, until=lambda records: seen(records) >= expected
    )

    data_by: dict[tuple[str, str], dict[str, Any]] = {}
    for record in (r for r in records if wanted(r)):
        event = from_binary(
            KafkaMessage(headers=dict(record.headers), key=record.key, value=record.value),
            JSONFormat(),
        )
        assert event.get_specversion() == "1.0"
        assert event.get_source() == "/casework/intake"
        assert event.get_datacontenttype() == "application/json"
        assert event.get_time() is not None
        data = event.get_data()
        assert isinstance(data, dict)
        assert event.get_subject() == data["client_id"] == (record.key or b"").decode()
        time_field = "linked_at" if event.get_type() == LINKED else "unlinked_at"
        assert set(data) == {
            "link_id",
            "client_id",
            "linked_client_id",
            "canonical_client_id",
            time_field,
        }
        wire = (record.value or b"") + b"".join(value for _, value in record.headers)
        for secret in (*markers, VALID_CLIENT["family_name"], VALID_CLIENT["birth_date"]):
            assert secret.encode() not in wire
        if data["link_id"] == link_id:
            data_by[(data["client_id"], event.get_type())] = data

    assert set(data_by) == expected
    for member in members:
        assert data_by[(member, LINKED)]["canonical_client_id"] == oldest
    assert data_by[(oldest, LINKED)]["linked_client_id"] == middle
    assert data_by[(middle, LINKED)]["linked_client_id"] == oldest
    assert data_by[(newest, LINKED)]["linked_client_id"] == oldest
    # After the unlink: {oldest} alone, {middle, newest} with middle as its oldest.
    assert data_by[(oldest, UNLINKED)]["canonical_client_id"] == oldest
    assert data_by[(middle, UNLINKED)]["canonical_client_id"] == middle
    assert data_by[(newest, UNLINKED)]["canonical_client_id"] == middle


def _event(data: ClientRegistered | ClientLinked | ClientUnlinked) -> Event:
    return Event(
        id=str(uuid.uuid4()),
        type=data.event_type,
        source="/casework/intake",
        subject=data.aggregate_id(),
        time=datetime.now(UTC),
        data=data,
    )


@pytest.mark.parametrize("service", CONSUMERS)
async def test_a_link_that_arrives_before_the_reference_waits_for_it_and_repeats_are_harmless(
    settings: Settings, service: str
) -> None:
    """The handlers themselves, in a transaction on the service's schema that is rolled back."""
    client, canonical = uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC)
    linked = ClientLinked(
        link_id=uuid.uuid4(),
        client_id=client,
        linked_client_id=canonical,
        canonical_client_id=canonical,
        linked_at=now,
    )
    registered = ClientRegistered(client_id=client, preferred_language="pt", registered_at=now)
    connection = await asyncpg.connect(
        settings.database_url, server_settings={"search_path": service}
    )
    transaction = connection.transaction()
    await transaction.start()
    try:
        await on_client_linked(connection, _event(linked))
        await on_client_linked(connection, _event(linked))  # redelivered under another id
        assert (
            await connection.fetchval(
                "SELECT count(*) FROM client_refs WHERE client_id = $1", client
            )
            == 0
        )
        assert (
            await connection.fetchval(
                "SELECT canonical_client_id FROM client_ref_links_pending WHERE client_id = $1",
                client,
            )
            == canonical
        )

        await on_client_registered(connection, _event(registered))

        assert (
            await connection.fetchval(
                "SELECT canonical_client_id FROM client_refs WHERE client_id = $1", client
            )
            == canonical
        )
        assert (
            await connection.fetchval(
                "SELECT count(*) FROM client_ref_links_pending WHERE client_id = $1", client
            )
            == 0
        )

        unlinked = ClientUnlinked(
            link_id=linked.link_id,
            client_id=client,
            linked_client_id=canonical,
            canonical_client_id=client,
            unlinked_at=now,
        )
        for _ in range(2):
            await on_client_unlinked(connection, _event(unlinked))
            # NULL: the client is its own canonical record (the API shows its own id).
            assert (
                await connection.fetchval(
                    "SELECT canonical_client_id FROM client_refs WHERE client_id = $1", client
                )
                is None
            )
        await on_client_linked(connection, _event(linked))
        await on_client_linked(connection, _event(linked))
        assert (
            await connection.fetchval(
                "SELECT canonical_client_id FROM client_refs WHERE client_id = $1", client
            )
            == canonical
        )
    finally:
        await transaction.rollback()
        await connection.close()


async def test_the_client_links_resource_is_documented(stack: Stack) -> None:
    document = (await stack.api["intake"].get("/openapi.json")).json()
    paths = document["paths"]
    assert set(paths["/v1/clients/{client_id}/links"]) == {"get", "post"}
    assert set(paths["/v1/clients/{client_id}/links/{other_client_id}"]) == {"delete"}
    reference = (await stack.api["planning"].get("/openapi.json")).json()
    assert "canonical_client_id" in json.dumps(
        reference["components"]["schemas"]["ClientRefPublic"]
    )


async def test_a_retried_link_with_the_same_idempotency_key_replays_the_first_answer(
    stack: Stack, settings: Settings
) -> None:
    first, second = await register(stack, settings), await register(stack, settings)
    key = {"Idempotency-Key": f"link-{uuid.uuid4()}"}

    original, _ = await link(stack, settings, second, first, headers=key)
    retried, request_id = await link(stack, settings, second, first, headers=key)

    assert (original.status_code, retried.status_code) == (201, 201)
    assert retried.json() == original.json()
    assert [item["id"] for item in (await links_of(stack, settings, second))["links"]] == [
        original.json()["id"]
    ]
    rows = await audit_rows(settings, request_id)
    assert {(str(r["client_id"]), r["resource_id"], r["outcome"]) for r in rows} == {
        (second, original.json()["id"], "allowed"),
        (first, original.json()["id"], "allowed"),
    }
    # The same key for another request is refused, not replayed.
    other, _ = await link(
        stack, settings, second, first, headers=key, reason="same_person_confirmed"
    )
    assert other.status_code == 422
    assert other.json()["type"].endswith("/idempotency-key-reused")


async def test_the_same_link_requested_many_times_at_once_is_made_once(
    stack: Stack, settings: Settings
) -> None:
    older = await register(stack, settings)
    newer = await register(stack, settings)
    attempts = await asyncio.gather(*(link(stack, settings, newer, older) for _ in range(8)))
    statuses = sorted(response.status_code for response, _ in attempts)
    assert statuses == [201] + [409] * 7
    refused = [r.json() for r, _ in attempts if r.status_code == 409]
    assert {problem["type"].rsplit("/", 1)[1] for problem in refused} == {"already-linked"}
    links = await admin_fetchval(
        settings,
        "SELECT count(*) FROM intake.identity_links WHERE client_id = $1 AND unlinked_at IS NULL",
        uuid.UUID(newer),
    )
    assert links == 1
    # Every refusal is on the record, each on the two records it named.
    for _response, request_id in attempts:
        assert len(await audit_rows(settings, request_id)) >= 1
