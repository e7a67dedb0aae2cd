"""The client registry: full records with data quality, code lists, search before create,
the 409-then-confirm flow, and conflict-aware updates."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import pytest

from shared.http.pagination import encode_cursor
from shared.settings import Settings
from tests.support import Stack, eventually, header, read_topic

pytestmark = pytest.mark.asyncio

FULL_RECORD: dict[str, Any] = {
    "given_name": "José",
    "family_name": "Álvarez Quintero",
    "other_names": ["Pepe"],
    "birth_date": "1985-04-12",
    "sex": "1",
    "gender_identity": ["man"],
    "race_ethnicity": ["6", "5"],
    "preferred_language": "es",
    "interpreter_needed": True,
    "phone": "+1 (555) 010-4477",
    "email": "jose@example.org",
    "address": {"line1": "12 Elm St", "city": "Springfield", "postal_code": "62704", "country": "US"},
    "household_members": [{"given_name": "Lucía", "relationship": "child", "birth_date": "2015-06-01"}],
    "identifiers": [{"type": "national_id_last4", "value": "1234"}],
}  # fmt: skip


async def register(stack: Stack, body: dict[str, Any]) -> dict[str, Any]:
    response = await stack.api["intake"].post("/v1/clients", json=body)
    assert response.status_code == 201, response.text
    registered: dict[str, Any] = response.json()
    return registered


async def count_clients(settings: Settings) -> int:
    connection = await asyncpg.connect(settings.database_url)
    try:
        count: int = await connection.fetchval("SELECT count(*) FROM intake.clients")
        return count
    finally:
        await connection.close()


@pytest.fixture(scope="module")
async def jose(stack: Stack) -> dict[str, Any]:
    return await register(stack, {**FULL_RECORD, "duplicate_check": "confirmed_new"})


async def test_a_full_record_round_trips_with_its_data_quality(
    stack: Stack, jose: dict[str, Any]
) -> None:
    fetched = (await stack.api["intake"].get(f"/v1/clients/{jose['id']}")).json()
    assert {key: fetched[key] for key in FULL_RECORD if key != "address"} == {
        **{key: value for key, value in FULL_RECORD.items() if key != "address"},
        "household_members": [{**FULL_RECORD["household_members"][0], "family_name": None, "client_id": None}],
        "identifiers": [{"type": "national_id_last4", "value": "1234", "data_quality": "1"}],
    }  # fmt: skip
    assert fetched["address"]["postal_code"] == "62704"
    assert (fetched["name_data_quality"], fetched["birth_date_quality"]) == ("1", "1")


async def test_code_lists_are_served_with_their_version(stack: Stack) -> None:
    lists = (await stack.api["intake"].get("/v1/code-lists")).json()
    by_name = {entry["name"]: entry for entry in lists}
    assert {"sex", "race_ethnicity", "name_data_quality", "relationship"} <= set(by_name)
    assert {c["code"] for c in by_name["sex"]["codes"]} == {"0", "1", "8", "9", "99"}
    assert by_name["sex"]["version"] == "2026.1"
    missing = await stack.api["intake"].get("/v1/code-lists/shoe_size")
    assert missing.status_code == 404


BAD_RECORDS = [
    ("unknown sex code", {"sex": "7"}, "body.sex"),
    ("unknown race code", {"race_ethnicity": ["42"]}, "body.race_ethnicity.0"),
    ("not a language", {"preferred_language": "zz"}, "body.preferred_language"),
    ("null names without a reason", {"given_name": None, "family_name": None}, "body"),
    ("a reason but a name", {"name_data_quality": "9"}, "body"),
    ("no birth date without a reason", {"birth_date": None}, "body"),
    ("last four that are not four digits", {"identifiers": [{"type": "national_id_last4", "value": "12a4"}]}, "body.identifiers.0"),
    ("unknown relationship", {"household_members": [{"relationship": "landlord"}]}, "body.household_members.0.relationship"),
    ("birth date in the future", {"birth_date": "2999-01-01"}, "body.birth_date"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "change", "field"), BAD_RECORDS, ids=[c for c, _, _ in BAD_RECORDS]
)
async def test_records_that_break_the_rules_are_refused_and_write_nothing(
    stack: Stack, settings: Settings, case: str, change: dict[str, Any], field: str
) -> None:
    before = await count_clients(settings)
    response = await stack.api["intake"].post(
        "/v1/clients", json={**FULL_RECORD, **change, "duplicate_check": "confirmed_new"}
    )
    assert response.status_code == 422, case
    assert field in {error["field"] for error in response.json()["errors"]}, response.text
    assert await count_clients(settings) == before


async def test_a_missing_name_is_allowed_with_the_reason_why(stack: Stack) -> None:
    anonymous = await register(
        stack,
        {**FULL_RECORD, "given_name": None, "family_name": None, "name_data_quality": "9",
         "birth_date": None, "birth_date_quality": "8", "duplicate_check": "confirmed_new"},
    )  # fmt: skip
    assert (anonymous["given_name"], anonymous["name_data_quality"]) == (None, "9")
    assert (anonymous["birth_date"], anonymous["birth_date_quality"]) == (None, "8")


async def search(stack: Stack, **params: str) -> list[dict[str, Any]]:
    response = await stack.api["intake"].get("/v1/clients/search", params=params)
    assert response.status_code == 200, response.text
    assert response.json()["next_cursor"] is None  # ranked, not paginated: one page
    candidates: list[dict[str, Any]] = response.json()["items"]
    return candidates


def find(candidates: list[dict[str, Any]], client_id: str) -> dict[str, Any] | None:
    return next((c for c in candidates if c["client_id"] == client_id), None)


@pytest.mark.parametrize(
    ("case", "params"),
    [
        ("missing accents", {"name": "Jose Alvarez Quintero", "birth_date": "1985-04-12"}),
        ("a typo", {"name": "Jose Alvares Quintero", "birth_date": "1985-04-12"}),
        ("transposed names", {"name": "Alvarez Quintero Jose", "birth_date": "1985-04-12"}),
        ("day and month swapped", {"name": "José Álvarez Quintero", "birth_date": "1985-12-04"}),
    ],
)
async def test_search_finds_the_same_person_despite(
    stack: Stack, jose: dict[str, Any], case: str, params: dict[str, str]
) -> None:
    candidate = find(await search(stack, **params), jose["id"])
    assert candidate is not None, case
    assert candidate["likely_duplicate"], candidate
    assert candidate["reasons"], candidate
    assert candidate["given_name"] == "José" and "email" not in candidate


async def test_search_explains_its_score(stack: Stack, jose: dict[str, Any]) -> None:
    candidate = find(
        await search(stack, name="Jose Alvarez Quintero", birth_date="1985-12-04", phone="555-010-4477"),
        jose["id"],
    )  # fmt: skip
    assert candidate is not None
    assert "birth date with day and month swapped" in candidate["reasons"]
    assert "same phone number" in candidate["reasons"]
    assert any(reason.startswith("name similarity") for reason in candidate["reasons"])
    assert candidate["score"] == 1.0


async def test_search_does_not_mistake_a_different_person(
    stack: Stack, jose: dict[str, Any]
) -> None:
    other = find(await search(stack, name="Mei Chen", birth_date="1985-04-13"), jose["id"])
    assert other is None or not other["likely_duplicate"]
    namesake = find(
        await search(stack, name="Jose Alvarez Quintero", birth_date="1961-09-30"), jose["id"]
    )
    assert namesake is not None and not namesake["likely_duplicate"], namesake


async def test_search_needs_a_criterion(stack: Stack) -> None:
    response = await stack.api["intake"].get("/v1/clients/search")
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


async def test_a_likely_duplicate_is_refused_then_registered_on_confirmation(
    stack: Stack, settings: Settings, jose: dict[str, Any]
) -> None:
    again = {**FULL_RECORD, "given_name": "Jose", "family_name": "Alvarez Quinteros"}
    before = await count_clients(settings)
    refused = await stack.api["intake"].post("/v1/clients", json=again)

    assert refused.status_code == 409
    problem = refused.json()
    assert problem["type"].endswith("/likely-duplicate")
    assert jose["id"] in {c["client_id"] for c in problem["candidates"]}
    assert await count_clients(settings) == before

    request_id = str(uuid.uuid4())
    confirmed = await stack.api["intake"].post(
        "/v1/clients", json={**again, "duplicate_check": "confirmed_new"},
        headers={"X-Request-ID": request_id},
    )  # fmt: skip
    assert confirmed.status_code == 201
    connection = await asyncpg.connect(settings.database_url)
    try:
        rows = await connection.fetch(
            "SELECT action, resource_id, client_id FROM intake.audit_log WHERE request_id = $1",
            request_id,
        )
    finally:
        await connection.close()
    decisions = {(r["action"], r["resource_id"]) for r in rows}
    assert ("client.duplicate_dismissed", jose["id"]) in decisions
    assert ("client.create", confirmed.json()["id"]) in decisions


# A family and a namesake; the probes below are registrations a worker might attempt.
WISNIEWSKI = [
    {"given_name": "Tomasz", "family_name": "Wiśniewski", "birth_date": "1972-06-08", "phone": "555-201-3344"},
    {"given_name": "Tomas", "family_name": "Wisniewski", "birth_date": "1972-08-06"},
    {"given_name": "Halina", "family_name": "Wiśniewska", "birth_date": "1974-01-20", "phone": "555-201-3344"},
    {"given_name": "Tomasz", "family_name": "Wiśniewski", "birth_date": "1950-03-15"},
]  # fmt: skip
PROBES: list[tuple[str, dict[str, Any]]] = [
    ("the same person", {"given_name": "Tomasz", "family_name": "Wisniewski", "birth_date": "1972-06-08"}),
    ("day and month swapped, a typo", {"given_name": "Tomasz", "family_name": "Wisnewski", "birth_date": "1972-08-06"}),
    ("no birth date, the family phone", {"given_name": "Tomasz", "family_name": "Wiśniewski", "birth_date": None, "birth_date_quality": "8", "phone": "(555) 201-3344"}),
    ("another name, same birth date and phone", {"given_name": "Karol", "family_name": "Nowicki", "birth_date": "1972-06-08", "phone": "555 201 3344"}),
    ("a namesake born another year", {"given_name": "Tomasz", "family_name": "Wiśniewski", "birth_date": "1999-11-02"}),
    ("someone else", {"given_name": "Irena", "family_name": "Zielinska", "birth_date": "1972-06-09"}),
]  # fmt: skip


async def test_the_registration_check_refuses_exactly_whom_a_search_flags(
    stack: Stack, settings: Settings
) -> None:
    """The check before registering looks through the birth date and phone indexes only; it
    must still refuse exactly the candidates a full search flags as likely duplicates."""
    for person in WISNIEWSKI:
        await register(
            stack, {**person, "preferred_language": "pl", "duplicate_check": "confirmed_new"}
        )
    outcomes = {}
    for case, probe in PROBES:
        query = {
            "name": f"{probe['given_name']} {probe['family_name']}",
            **({"birth_date": probe["birth_date"]} if probe["birth_date"] else {}),
            **({"phone": probe["phone"]} if "phone" in probe else {}),
            "limit": "50",
        }
        flagged = [c["client_id"] for c in await search(stack, **query) if c["likely_duplicate"]]
        before = await count_clients(settings)
        response = await stack.api["intake"].post(
            "/v1/clients", json={**probe, "preferred_language": "pl"}
        )
        if flagged:
            assert response.status_code == 409, (case, response.text)
            refused = [c["client_id"] for c in response.json()["candidates"]]
            assert refused == flagged[:5], case
            assert await count_clients(settings) == before
        else:
            assert response.status_code == 201, (case, response.text)
        outcomes[case] = len(flagged)
    assert outcomes == {
        "the same person": 2,
        "day and month swapped, a typo": 2,
        "no birth date, the family phone": 1,
        "another name, same birth date and phone": 1,
        "a namesake born another year": 0,
        "someone else": 0,
    }


async def test_a_registration_with_only_a_name_is_checked_against_near_namesakes(
    stack: Stack, settings: Settings
) -> None:
    """No birth date, no phone: no score can reach a likely duplicate, so the check asks about
    records with nearly the same name that also sound alike or are a typo apart."""
    known = await register(
        stack,
        {"given_name": "Bartosz", "family_name": "Kwiatkowski", "birth_date": "1968-02-14",
         "preferred_language": "pl", "duplicate_check": "confirmed_new"},
    )  # fmt: skip
    name_only = {
        "given_name": "Bartosz", "family_name": "Kwaitkowski", "birth_date": None,
        "birth_date_quality": "8", "preferred_language": "pl",
    }  # fmt: skip
    before = await count_clients(settings)

    refused = await stack.api["intake"].post("/v1/clients", json=name_only)

    assert refused.status_code == 409, refused.text
    problem = refused.json()
    assert problem["compared"] == ["name"]
    assert [c["client_id"] for c in problem["candidates"]] == [known["id"]]
    assert problem["candidates"][0]["reasons"] == ["name similarity 0.67", "names sound alike"]
    assert await count_clients(settings) == before

    # Another given name of the same family is someone else.
    relative = await stack.api["intake"].post(
        "/v1/clients", json={**name_only, "given_name": "Bogdan", "family_name": "Kwiatkowski"}
    )
    assert relative.status_code == 201, relative.text
    confirmed = await stack.api["intake"].post(
        "/v1/clients", json={**name_only, "duplicate_check": "confirmed_new"}
    )
    assert confirmed.status_code == 201, confirmed.text


async def test_updates_need_the_current_etag_and_keep_history(
    stack: Stack, settings: Settings
) -> None:
    client = await register(
        stack, {**FULL_RECORD, "given_name": "Wanjiru", "family_name": "Kamau",
                "birth_date": "1979-03-03", "duplicate_check": "confirmed_new"},
    )  # fmt: skip
    path = f"/v1/clients/{client['id']}"
    etag = (await stack.api["intake"].get(path)).headers["etag"]

    without = await stack.api["intake"].patch(path, json={"preferred_language": "sw"})
    changed = await stack.api["intake"].patch(
        path, json={"preferred_language": "sw", "phone": None}, headers={"If-Match": etag}
    )
    stale = await stack.api["intake"].patch(
        path, json={"preferred_language": "en"}, headers={"If-Match": etag}
    )

    assert without.status_code == 428
    assert changed.status_code == 200, changed.text
    assert changed.json()["version"] == 2 and changed.json()["preferred_language"] == "sw"
    assert changed.json()["phone"] is None
    assert changed.headers["etag"] != etag
    assert stale.status_code == 412
    assert (await stack.api["intake"].get(path)).json()["preferred_language"] == "sw"
    connection = await asyncpg.connect(settings.database_url)
    try:
        history = await connection.fetchval(
            "SELECT changes FROM intake.client_changes WHERE client_id = $1 AND version = 2",
            uuid.UUID(client["id"]),
        )
    finally:
        await connection.close()
    assert json.loads(history) == {
        "preferred_language": {"from": "es", "to": "sw"},
        "phone": {"from": "+1 (555) 010-4477", "to": None},
    }
    records = await read_topic(
        settings,
        "casework.intake.clients",
        until=lambda rs: any(
            header(r, "ce_type") == "org.casework.intake.client.updated.v1"
            and header(r, "ce_subject") == client["id"]
            for r in rs
        ),
    )
    [event] = [
        json.loads(r.value or b"{}") for r in records
        if header(r, "ce_type") == "org.casework.intake.client.updated.v1"
        and header(r, "ce_subject") == client["id"]
    ]  # fmt: skip
    assert event["changed_fields"] == ["phone", "preferred_language"]
    assert "010-4477" not in json.dumps(event) and "5550104477" not in json.dumps(event)

    async def planning_has(language: str) -> bool | None:
        response = await stack.api["planning"].get(f"/v1/client-refs/{client['id']}")
        return True if response.json().get("preferred_language") == language else None

    await eventually(lambda: planning_has("sw"))


async def test_an_update_that_breaks_the_rules_changes_nothing(stack: Stack) -> None:
    client = await register(
        stack, {**FULL_RECORD, "given_name": "Oluwaseun", "family_name": "Adeyemi",
                "birth_date": "1992-08-19", "duplicate_check": "confirmed_new"},
    )  # fmt: skip
    path = f"/v1/clients/{client['id']}"
    etag = (await stack.api["intake"].get(path)).headers["etag"]
    response = await stack.api["intake"].patch(
        path, json={"birth_date": None}, headers={"If-Match": etag}
    )
    assert response.status_code == 422
    assert (await stack.api["intake"].get(path)).headers["etag"] == etag


@pytest.mark.parametrize(
    "values",
    [
        ["2024-01-01T00:00:00+00:00", 5],
        ["0001-01-01T00:00:00+14:00", "6f1c1f7e-1111-4c1e-9a7e-000000000000"],
        ["2024-01-01T00:00:00", "6f1c1f7e-1111-4c1e-9a7e-000000000000"],
        ["yesterday", "6f1c1f7e-1111-4c1e-9a7e-000000000000"],
    ],
)
async def test_forged_cursors_are_a_400_on_every_keyset_list(
    stack: Stack, jose: dict[str, Any], values: list[Any]
) -> None:
    cursor = encode_cursor(*values)
    for path in (
        "/v1/clients",
        f"/v1/clients/{jose['id']}/consents",
        f"/v1/clients/{jose['id']}/assessments",
        f"/v1/clients/{jose['id']}/flags",
    ):
        response = await stack.api["intake"].get(path, params={"cursor": cursor})
        assert response.status_code == 400, (path, response.text)
        assert response.json()["type"].endswith("/invalid-cursor")


async def test_a_merge_patch_of_the_address_changes_only_the_members_sent(
    stack: Stack, settings: Settings
) -> None:
    client = await register(
        stack, {**FULL_RECORD, "given_name": "Imani", "family_name": "Okafor",
                "birth_date": "1985-11-30", "duplicate_check": "confirmed_new"},
    )  # fmt: skip
    path = f"/v1/clients/{client['id']}"
    before = (await stack.api["intake"].get(path)).json()["address"]
    assert before["line1"] and before["postal_code"] and before["country"]
    etag = (await stack.api["intake"].get(path)).headers["etag"]

    response = await stack.api["intake"].patch(
        path,
        content=json.dumps({"address": {"city": "Shelbyville", "line2": None}}),
        headers={"If-Match": etag, "Content-Type": "application/merge-patch+json"},
    )

    assert response.status_code == 200, response.text
    after = response.json()["address"]
    assert after["city"] == "Shelbyville" != before["city"]
    assert after["line2"] is None
    assert {k: after[k] for k in ("line1", "postal_code", "country")} == {
        k: before[k] for k in ("line1", "postal_code", "country")
    }
    etag = response.headers["etag"]
    cleared = await stack.api["intake"].patch(
        path, json={"other_names": None, "address": None}, headers={"If-Match": etag}
    )
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["other_names"] == [] and cleared.json()["address"] is None
