"""Matching on worked examples: services ranked with a score and, per service, why (needs met,
each eligibility rule, language, postal area, capacity with its staleness, opening), for facts
given in the body or for a client from its latest assessment."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.clock import FrozenClock
from shared.settings import Settings
from tests.directory_support import (
    OPERATOR,
    as_user,
    directory_settings,
    import_json,
    new_id,
    organization,
    service,
)
from tests.support import VALID_CLIENT, Stack, User, admin_fetchval, eventually, running_stack
from tests.test_scoring import NO_NEEDS

__all__ = ["directory_settings"]

# A Wednesday, 10:00 UTC: the services' weekday 09:00-17:00 schedules are open.
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture(scope="module")
async def stack(directory_settings: Settings, clock: FrozenClock) -> AsyncIterator[Stack]:
    async with running_stack(directory_settings, clock=clock) as stack:
        yield stack


async def _configure(
    stack: Stack, settings: Settings, clock: FrozenClock, record: dict[str, Any],
    needs: list[str], rules: list[dict[str, str]], capacity: tuple[str, timedelta] | None,
) -> None:  # fmt: skip
    api, admin = stack.api["referrals"], as_user(settings, OPERATOR)
    base = f"/v1/directory/services/{record['id']}"
    response = await api.put(f"{base}/need-categories", json={"need_categories": needs},
                             headers=admin)  # fmt: skip
    assert response.status_code == 200, response.text
    response = await api.put(f"{base}/eligibility-rules", json={"rules": rules}, headers=admin)
    assert response.status_code == 200, response.text
    if capacity is not None:
        status, age = capacity
        clock.set(NOW - age)
        response = await api.put(f"{base}/capacity", json={"status": status}, headers=admin)
        assert response.status_code == 200, response.text
        clock.set(NOW)


@pytest.fixture(scope="module")
async def directory(
    stack: Stack, directory_settings: Settings, clock: FrozenClock
) -> dict[str, str]:
    org = organization(name="Matching Trust")
    a = service(org, name="A Riverside parcels")
    b = service(
        org,
        name="B Northgate pantry",
        languages=[{"id": new_id(), "code": "en"}],
        service_areas=[{"id": new_id(), "extent": "NG1", "extent_type": "text"}],
    )
    c = service(org, name="C Family housing", minimum_age=None)
    d = service(org, name="D Youth food club", minimum_age=None, maximum_age=25)
    e = service(org, name="E Legal clinic")
    response = await import_json(stack.api["referrals"], directory_settings, OPERATOR,
                                 [a, b, c, d, e])  # fmt: skip
    assert response.json()["rejected"] == [], response.text
    adults = {"rule_id": "adults", "description": "Adults", "expression": "age >= 18"}
    await _configure(
        stack, directory_settings, clock, a, ["food"], [adults], ("capacity", timedelta(days=1))
    )
    await _configure(
        stack, directory_settings, clock, b, ["food"], [], ("capacity", timedelta(days=20))
    )
    await _configure(
        stack,
        directory_settings,
        clock,
        c,
        ["housing"],
        [
            {
                "rule_id": "families",
                "description": "Households of three or more",
                "expression": "household_size >= 3",
            },
            {
                "rule_id": "low-income",
                "description": "On a low income",
                "expression": "income_band == 'low'",
            },
        ],
        ("waitlist", timedelta(days=2)),
    )
    await _configure(stack, directory_settings, clock, d, ["food"], [], None)
    await _configure(stack, directory_settings, clock, e, ["legal"], [], None)
    return {"a": a["id"], "b": b["id"], "c": c["id"], "d": d["id"], "e": e["id"]}  # fmt: skip


FACTS = {
    "need_categories": ["food", "housing"],
    "need_severities": {"food": "high", "housing": "low"},
    "age": 30,
    "language": "pt",
    "postal_area": "RV1",
    "household_size": 3,
}


def mine(result: dict[str, Any], directory: dict[str, str]) -> list[dict[str, Any]]:
    ours = set(directory.values())
    return [s for s in result["services"] if s["service_id"] in ours]


async def test_services_are_ranked_with_their_explanation(
    stack: Stack, directory: dict[str, str]
) -> None:
    response = await stack.api["referrals"].post("/v1/matches", json={"facts": FACTS, "limit": 100})

    assert response.status_code == 200, response.text
    ranked = mine(response.json(), directory)
    by_id = {s["service_id"]: s for s in ranked}
    # C (housing, waitlist) outranks B (food, but not spoken, not served): 58 against 18.
    assert [s["service_id"] for s in ranked] == [directory[k] for k in "acbd"]
    assert directory["e"] not in by_id  # meets no need of the client's

    a = by_id[directory["a"]]
    # 40 food (high) + 5 + 5 rules passed (adults; HSDS minimum age 18) + 10 Portuguese
    # + 15 Riverside served + 15 capacity confirmed yesterday + 3 open now.
    assert a["score"] == 93
    assert a["eligible"] == "eligible"
    why = a["explanation"]
    assert why["needs_met"] == ["food"]
    assert [(r["rule_id"], r["outcome"]) for r in why["eligibility"]] == [
        ("hsds-minimum-age", "passed"), ("adults", "passed"),
    ]  # fmt: skip
    assert why["language"] == {"client_language": "pt", "service_languages": ["en", "pt"],
                               "spoken": True}  # fmt: skip
    assert why["postal_area"]["served"] is True
    assert why["capacity"]["effective"] == "capacity" and why["capacity"]["stale"] is False
    assert why["opening"]["open_now"] is True
    assert why["opening"]["closes_at"] == "2026-11-25T17:00:00Z"

    b = by_id[directory["b"]]["explanation"]
    # English only, Northgate only, capacity confirmed 20 days ago (stale after 14).
    assert b["language"]["spoken"] is False
    assert b["postal_area"]["served"] is False
    assert (b["capacity"]["status"], b["capacity"]["stale"], b["capacity"]["effective"]) == (
        "capacity", True, "unknown",
    )  # fmt: skip
    assert by_id[directory["b"]]["score"] == 40 + 5 - 5 - 25 + 3

    c = by_id[directory["c"]]
    assert c["eligible"] == "unknown"
    assert [(r["rule_id"], r["outcome"], r["detail"]) for r in c["explanation"]["eligibility"]] == [
        ("families", "passed", None),
        ("low-income", "unknown", "not known about the client: income_band"),
    ]
    assert c["score"] == 20 + 5 + 10 + 15 + 5 + 3

    d = by_id[directory["d"]]
    assert d["eligible"] == "ineligible"
    assert d["explanation"]["eligibility"][0]["rule_id"] == "hsds-maximum-age"
    assert d["explanation"]["eligibility"][0]["outcome"] == "failed"


async def test_capacity_goes_stale_with_time(
    stack: Stack, directory: dict[str, str], clock: FrozenClock
) -> None:
    clock.set(NOW + timedelta(days=14))
    try:
        response = await stack.api["referrals"].post("/v1/matches", json={"facts": FACTS,
                                                                           "limit": 100})  # fmt: skip
    finally:
        clock.set(NOW)

    a = next(s for s in mine(response.json(), directory) if s["service_id"] == directory["a"])
    assert a["explanation"]["capacity"]["stale"] is True
    assert a["explanation"]["capacity"]["effective"] == "unknown"
    assert a["explanation"]["opening"]["open_now"] is True  # a Wednesday again


async def test_a_match_needs_a_client_or_facts(stack: Stack) -> None:
    response = await stack.api["referrals"].post("/v1/matches", json={})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


async def test_suggestions_follow_the_clients_latest_assessment(
    stack: Stack, directory_settings: Settings, clock: FrozenClock
) -> None:
    org = organization(name="Pantry for assessed clients")
    pantry = service(org, name="Assessed pantry")
    await import_json(stack.api["referrals"], directory_settings, OPERATOR, [pantry])
    await _configure(stack, directory_settings, clock, pantry, ["food_insecurity"], [], None)
    intake = stack.api["intake"]
    client_id = (await intake.post("/v1/clients", json=VALID_CLIENT)).json()["id"]
    answers = {**NO_NEEDS, "food_worry": "sometimes_true", "food_ran_out": "often_true"}
    assessed = await intake.post(
        f"/v1/clients/{client_id}/assessments",
        json={"instrument_id": "needs-risk-screening", "version": "1.0", "answers": answers},
    )
    assert assessed.status_code == 201, assessed.text

    async def suggestions() -> list[str] | None:
        response = await stack.api["referrals"].get(
            f"/v1/clients/{client_id}/suggested-services", params={"limit": 100}
        )
        if response.status_code != 200:
            return None
        ids = [s["service_id"] for s in response.json()["services"]]
        return ids if pantry["id"] in ids else None

    suggested = await eventually(suggestions)
    assert suggested is not None and pantry["id"] in suggested
    response = await stack.api["referrals"].get(f"/v1/clients/{client_id}/suggested-services")
    body = response.json()
    assert body["facts"]["need_severities"] == {"food_insecurity": "high"}
    assert body["facts"]["language"] == "pt"
    assert (
        await admin_fetchval(
            directory_settings,
            "SELECT count(*) FROM referrals.audit_log WHERE action = 'match.read' AND client_id = $1",
            uuid.UUID(client_id),
        )
        >= 1
    )

    # The same for POST /v1/matches with the client, a fact added by the worker.
    posted = await stack.api["referrals"].post(
        "/v1/matches", json={"client_id": client_id, "facts": {"age": 40}, "limit": 100}
    )
    assert posted.status_code == 200, posted.text
    assert posted.json()["facts"]["age"] == 40
    assert pantry["id"] in [s["service_id"] for s in posted.json()["services"]]

    # Outside the caller's scope: 404, as for any client record.
    stranger = User("bob", ("caseworker",))
    refused = await stack.api["referrals"].get(
        f"/v1/clients/{client_id}/suggested-services",
        headers=as_user(directory_settings, stranger),
    )
    assert refused.status_code == 404


async def test_facts_that_are_not_facts_are_422(stack: Stack) -> None:
    for facts in ({"need_categories": ["food\x00"]}, {"age": -1}, {"income": "low"}):
        response = await stack.api["referrals"].post("/v1/matches", json={"facts": facts})
        assert response.status_code == 422, facts
        assert response.headers["content-type"] == "application/problem+json"


async def _matched(stack: Stack, need: str, service_id: str) -> dict[str, Any]:
    response = await stack.api["referrals"].post(
        "/v1/matches", json={"facts": {"need_categories": [need], "age": 30}, "limit": 100}
    )
    assert response.status_code == 200, response.text
    [found] = [s for s in response.json()["services"] if s["service_id"] == service_id]
    return dict(found)


async def test_a_rule_saved_through_the_api_changes_the_next_match(
    stack: Stack, directory_settings: Settings, clock: FrozenClock
) -> None:
    """Matching reads a snapshot of the directory kept in memory: a change is seen at once."""
    pantry = service(organization(name="Snapshot Trust"), name="Snapshot pantry")
    await import_json(stack.api["referrals"], directory_settings, OPERATOR, [pantry])
    await _configure(stack, directory_settings, clock, pantry, ["utilities"], [], None)
    before = await _matched(stack, "utilities", pantry["id"])
    assert [r["rule_id"] for r in before["explanation"]["eligibility"]] == ["hsds-minimum-age"]

    seniors = {"rule_id": "seniors", "description": "Aged 65 or over", "expression": "age >= 65"}
    await _configure(stack, directory_settings, clock, pantry, ["utilities"], [seniors], None)
    after = await _matched(stack, "utilities", pantry["id"])

    assert [(r["rule_id"], r["outcome"]) for r in after["explanation"]["eligibility"]] == [
        ("hsds-minimum-age", "passed"), ("seniors", "failed"),
    ]  # fmt: skip
    assert after["eligible"] == "ineligible"
    assert after["score"] == before["score"] - 100


async def test_a_direct_sql_change_to_the_directory_changes_the_next_match(
    stack: Stack, directory_settings: Settings, clock: FrozenClock
) -> None:
    """Writes outside the API move the directory's version too (statement-level triggers)."""
    clinic = service(organization(name="Trigger Trust"), name="Trigger clinic")
    await import_json(stack.api["referrals"], directory_settings, OPERATOR, [clinic])
    adults = {"rule_id": "adults", "description": "Adults", "expression": "age >= 18"}
    await _configure(stack, directory_settings, clock, clinic, ["child_care"], [adults], None)
    before = await _matched(stack, "child_care", clinic["id"])
    assert before["explanation"]["eligibility"][1]["outcome"] == "passed"
    version = await admin_fetchval(
        directory_settings, "SELECT version FROM referrals.directory_version"
    )

    for statement in (
        "UPDATE referrals.eligibility_rules SET expression = 'age >= 40' WHERE service_id = $1",
        "UPDATE referrals.service SET name = 'Trigger clinic (renamed)' WHERE id = $1",
        "UPDATE referrals.schedule SET byday = 'SA' WHERE service_id = $1",
    ):
        await admin_fetchval(
            directory_settings, f"WITH changed AS ({statement} RETURNING 1) SELECT 1", clinic["id"]
        )
    after = await _matched(stack, "child_care", clinic["id"])

    assert (
        await admin_fetchval(directory_settings, "SELECT version FROM referrals.directory_version")
        == version + 3
    )
    assert after["service_name"] == "Trigger clinic (renamed)"
    assert after["explanation"]["eligibility"][1]["outcome"] == "failed"
    assert after["explanation"]["opening"]["open_now"] is False  # a Wednesday; open Saturdays
