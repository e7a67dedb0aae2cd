"""Assessments, safety flags and the equity report in intake, against the real database and
broker: what is stored and published, what is refused (and that nothing is written then), who
may do what, and the audit record every attempt leaves."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from cloudevents.core.bindings.kafka import KafkaMessage, from_binary
from cloudevents.core.formats.json import JSONFormat

from services.intake.assessments.definitions import INSTRUMENTS
from services.intake.assessments.equity import Tally, build_report
from shared.events.assessment import RiskLevel
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
from tests.test_scoring import NO_NEEDS

# Async tests run under asyncio_mode = auto (pyproject); the report's pure checks are plain.

ALICE = CASEWORKER
BOB = User("bob", ("caseworker",))
SAM = User("sam", ("supervisor",))
PAT = User("pat", ("partner",), organization_id="org-partner", team_id=None)
AUDREY = User("audrey", ("auditor",), team_id=None)

SCREENING = "needs-risk-screening"
ASSESSED = "org.casework.intake.client.assessed.v1"
FLAG_RAISED = "org.casework.intake.flag.raised.v1"
PROTECTED_FLAG_RAISED = "org.casework.intake.protected.flag.raised.v1"

# 2 + 1 + 2 + 3 = 8 points: moderate.
MODERATE = {
    **NO_NEEDS,
    "living_situation": "worried",
    "food_worry": "sometimes_true",
    "food_ran_out": "often_true",
    "paying_for_basics": "very_hard",
}
# 8 + 2 + 2 + 2 + 2 = 16 points: high.
HIGH = {
    **MODERATE,
    "transportation": "yes",
    "utilities_shutoff": "threatened",
    "lonely": "often",
    "feeling_down": "more_than_half",
}
CRISIS = {**NO_NEEDS, "suicidal_thoughts": "yes", "danger_at_home": "yes"}


def assessment(answers: dict[str, str], instrument_id: str = SCREENING) -> dict[str, Any]:
    return {"instrument_id": instrument_id, "version": "1.0", "answers": answers}


async def call(
    stack: Stack, settings: Settings, user: User, method: str, path: str, **kwargs: Any
) -> tuple[Any, str]:
    """Call intake as `user` with a fresh request id; return the response and the id."""
    request_id = str(uuid.uuid4())
    headers = {"X-Request-ID": request_id, **bearer(settings, user), **kwargs.pop("headers", {})}
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


async def admin_execute(settings: Settings, query: str, *args: Any) -> None:
    connection = await asyncpg.connect(settings.database_url)
    try:
        await connection.execute(query, *args)
    finally:
        await connection.close()


async def outbox(settings: Settings, client_id: str, event_type: str) -> list[dict[str, Any]]:
    """The data of the events of one type intake wrote for the client, oldest first."""
    connection = await asyncpg.connect(settings.database_url)
    try:
        rows = await connection.fetch(
            "SELECT payload FROM intake.outbox WHERE aggregateid = $1 AND type = $2 "
            "ORDER BY created_at",
            client_id,
            event_type,
        )
    finally:
        await connection.close()
    return [json.loads(row["payload"]) for row in rows]


async def register(stack: Stack, settings: Settings, user: User = ALICE, **fields: Any) -> str:
    response, _ = await call(
        stack, settings, user, "POST", "/v1/clients", json={**VALID_CLIENT, **fields}
    )
    assert response.status_code == 201, response.text
    client_id: str = response.json()["id"]
    return client_id


async def assess(
    stack: Stack, settings: Settings, client_id: str, answers: dict[str, str], user: User = ALICE
) -> dict[str, Any]:
    response, _ = await call(
        stack,
        settings,
        user,
        "POST",
        f"/v1/clients/{client_id}/assessments",
        json=assessment(answers),
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def written(settings: Settings, client_id: str) -> tuple[int, int, int]:
    """Assessments, flags and events (audit records aside) stored for the client."""
    counts = []
    for query in (
        "SELECT count(*) FROM intake.assessments WHERE client_id = $1::uuid",
        "SELECT count(*) FROM intake.flags WHERE client_id = $1::uuid",
        "SELECT count(*) FROM intake.outbox WHERE aggregateid = $1 AND topic <> 'casework.audit'",
    ):
        counts.append(await admin_fetchval(settings, query, client_id))
    return counts[0], counts[1], counts[2]


# --- instruments ------------------------------------------------------------------------------


async def test_instruments_are_listed_and_served_whole(stack: Stack, settings: Settings) -> None:
    listed, _ = await call(stack, settings, PAT, "GET", "/v1/instruments")
    assert listed.status_code == 200
    assert {(i["id"], i["version"]) for i in listed.json()["items"]} == set(INSTRUMENTS)
    assert {i["title"] for i in listed.json()["items"]} >= {"Needs and risk screening"}

    response, _ = await call(
        stack, settings, AUDREY, "GET", f"/v1/instruments/{SCREENING}/versions/1.0"
    )
    assert response.status_code == 200
    assert response.json() == INSTRUMENTS[(SCREENING, "1.0")].model_dump(mode="json")

    missing, _ = await call(
        stack, settings, ALICE, "GET", f"/v1/instruments/{SCREENING}/versions/9"
    )
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    anonymous = await stack.api["intake"].get(
        "/v1/instruments", headers={"Authorization": "Bearer not-a-token"}
    )
    assert anonymous.status_code == 401


# --- assessing --------------------------------------------------------------------------------


async def test_an_assessment_stores_answers_result_and_explanation(
    stack: Stack, settings: Settings
) -> None:
    client_id = await register(stack, settings)
    response, request_id = await call(
        stack,
        settings,
        ALICE,
        "POST",
        f"/v1/clients/{client_id}/assessments",
        json=assessment(MODERATE),
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["location"] == f"/v1/clients/{client_id}/assessments/{body['id']}"
    assert body["client_id"] == client_id
    assert (body["instrument_id"], body["instrument_version"]) == (SCREENING, "1.0")
    assert body["answers"] == MODERATE
    assert body["needs"] == [
        {"category": "housing_instability", "severity": "moderate"},
        {"category": "food_insecurity", "severity": "high"},
        {"category": "financial_strain", "severity": "high"},
    ]
    assert body["explanation"] == [
        {"question_id": "living_situation", "answer": "worried", "points": 2,
         "counted_towards": ["need:housing_instability", "risk:total"]},
        {"question_id": "food_worry", "answer": "sometimes_true", "points": 1,
         "counted_towards": ["need:food_insecurity", "risk:total"]},
        {"question_id": "food_ran_out", "answer": "often_true", "points": 2,
         "counted_towards": ["need:food_insecurity", "risk:total"]},
        {"question_id": "paying_for_basics", "answer": "very_hard", "points": 3,
         "counted_towards": ["need:financial_strain", "risk:total"]},
    ]  # fmt: skip
    assert (body["total_points"], body["crisis"]) == (8, False)
    assert (body["computed_risk_level"], body["computed_priority"]) == ("moderate", 3)
    assert (body["risk_level"], body["priority"], body["risk_overridden"]) == ("moderate", 3, False)
    assert (body["overrides"], body["raised_flag_ids"]) == ([], [])
    assert body["assessed_by"] == "alice"

    fetched, _ = await call(stack, settings, ALICE, "GET", response.headers["location"])
    assert fetched.status_code == 200
    assert fetched.json() == body
    [row] = await audit_rows(settings, request_id)
    assert (row["action"], row["outcome"], row["resource_type"]) == (
        "assessment.write",
        "allowed",
        "assessment",
    )
    assert (row["resource_id"], str(row["client_id"])) == (body["id"], client_id)


async def test_client_assessed_carries_levels_and_needs_but_no_answers(
    stack: Stack, settings: Settings
) -> None:
    client_id = await register(stack, settings, preferred_language="es")
    await admin_execute(
        settings, "UPDATE intake.clients SET postal_code = 'K1A 0B1' WHERE id = $1::uuid", client_id
    )
    body = await assess(stack, settings, client_id, MODERATE)

    [event] = await outbox(settings, client_id, ASSESSED)
    assert event == {
        "assessment_id": body["id"],
        "client_id": client_id,
        "instrument_id": SCREENING,
        "instrument_version": "1.0",
        "risk_level": "moderate",
        "priority": 3,
        "needs": body["needs"],
        "preferred_language": "es",
        "postal_area": "K1A",
        "risk_overridden": False,
    }


async def test_a_client_without_postal_code_has_no_postal_area(
    stack: Stack, settings: Settings
) -> None:
    client_id = await register(stack, settings)
    await assess(stack, settings, client_id, NO_NEEDS)

    [event] = await outbox(settings, client_id, ASSESSED)
    assert event["postal_area"] is None
    assert (event["risk_level"], event["priority"], event["needs"]) == ("low", 4, [])


BAD_REQUESTS = {
    "unknown instrument": (
        {"instrument_id": "horoscope", "version": "1.0", "answers": NO_NEEDS},
        [("body.instrument_id", "unknown")],
    ),
    "unknown version": (
        {"instrument_id": SCREENING, "version": "7.0", "answers": NO_NEEDS},
        [("body.version", "unknown")],
    ),
    "unknown question": (
        assessment({**NO_NEEDS, "star_sign": "leo"}),
        [("body.answers.star_sign", "unknown")],
    ),
    "answer not an option": (
        assessment({**NO_NEEDS, "living_situation": "castle"}),
        [("body.answers.living_situation", "not_an_option")],
    ),
    "required question missing": (
        assessment({k: v for k, v in NO_NEEDS.items() if k != "safe_place_tonight"}),
        [("body.answers.safe_place_tonight", "missing")],
    ),
    # A crisis answer beside a bad one: still nothing, not even the flag.
    "crisis answer with a bad answer": (
        assessment({**CRISIS, "lonely": "sometimes_maybe"}),
        [("body.answers.lonely", "not_an_option")],
    ),
    "unknown body field": (
        {**assessment(NO_NEEDS), "score": 0},
        [("body.score", "extra_forbidden")],
    ),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
async def test_bad_answers_are_422_naming_the_field_and_nothing_is_written(
    stack: Stack, settings: Settings, case: str
) -> None:
    body, expected = BAD_REQUESTS[case]
    client_id = await register(stack, settings)
    before = await written(settings, client_id)

    response, request_id = await call(
        stack, settings, ALICE, "POST", f"/v1/clients/{client_id}/assessments", json=body
    )

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert [(e["field"], e["code"]) for e in problem["errors"]] == expected
    assert await written(settings, client_id) == before
    assert before[:2] == (0, 0)
    # Nothing written but the refusal's audit record (issue 9: every refusal is audited).
    [row] = await audit_rows(settings, request_id)
    assert (row["actor_id"], row["outcome"]) == (ALICE.subject, "invalid")


async def test_a_crisis_answer_raises_a_crisis_flag_and_its_event_in_the_same_transaction(
    stack: Stack, settings: Settings
) -> None:
    client_id = await register(stack, settings)
    response, request_id = await call(
        stack,
        settings,
        ALICE,
        "POST",
        f"/v1/clients/{client_id}/assessments",
        json=assessment(CRISIS),
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["crisis"], body["risk_level"], body["priority"]) == (True, "crisis", 1)
    assert len(body["raised_flag_ids"]) == 2

    flags, _ = await call(stack, settings, ALICE, "GET", f"/v1/clients/{client_id}/flags")
    assert flags.status_code == 200
    items = flags.json()["items"]
    assert sorted(f["id"] for f in items) == sorted(body["raised_flag_ids"])
    assert sorted(f["flag_type"] for f in items) == ["safety", "violence"]
    for flag in items:
        assert (flag["severity"], flag["source"], flag["status"]) == (
            "crisis",
            "assessment",
            "active",
        )
        assert (flag["assessment_id"], flag["raised_by"], flag["note"]) == (
            body["id"],
            "alice",
            None,
        )
        assert flag["acknowledged_at"] is None

    # Rows of one transaction share its id.
    transactions = {
        await admin_fetchval(
            settings, "SELECT xmin::text FROM intake.assessments WHERE id = $1::uuid", body["id"]
        ),
        *[
            await admin_fetchval(
                settings, "SELECT xmin::text FROM intake.flags WHERE id = $1::uuid", flag_id
            )
            for flag_id in body["raised_flag_ids"]
        ],
    }
    assert len(transactions) == 1

    def raised(records: list[Any]) -> list[Any]:
        return [
            r
            for r in records
            if r.key == client_id.encode() and header(r, "ce_type") == PROTECTED_FLAG_RAISED
        ]

    # Crisis flags travel on the protected topic only (tests/test_event_trust.py).
    records = await read_topic(
        settings, Topic.INTAKE_PROTECTED, until=lambda records: len(raised(records)) == 2
    )
    events = [
        from_binary(
            KafkaMessage(headers=dict(record.headers), key=record.key, value=record.value),
            JSONFormat(),
        )
        for record in raised(records)
    ]
    by_flag = {}
    for event in events:
        data = event.get_data()
        assert isinstance(data, dict)
        by_flag[data["flag_id"]] = event
    assert set(by_flag) == set(body["raised_flag_ids"])
    for flag in items:
        event = by_flag[flag["id"]]
        assert event.get_type() == PROTECTED_FLAG_RAISED
        assert event.get_source() == "/casework/intake"
        assert event.get_subject() == client_id
        data = event.get_data()
        assert isinstance(data, dict)
        assert datetime.fromisoformat(data.pop("raised_at")) == datetime.fromisoformat(
            flag["raised_at"]
        )
        assert data == {
            "flag_id": flag["id"],
            "client_id": client_id,
            "flag_type": flag["flag_type"],
            "severity": "crisis",
            "crisis": True,
            "source": "assessment",
            "assessment_id": body["id"],
            "raised_by": "alice",
        }
    for record in raised(records):
        wire = (record.value or b"") + b"".join(value for _, value in record.headers)
        for secret in ("suicidal", "danger_at_home", "answers", "Ana", "Lima", "1990-02-03"):
            assert secret.encode() not in wire

    audited = await audit_rows(settings, request_id)
    assert sorted((r["action"], r["resource_id"], r["outcome"]) for r in audited) == sorted(
        [("assessment.write", body["id"], "allowed")]
        + [("flag.write", flag_id, "allowed") for flag_id in body["raised_flag_ids"]]
    )


async def test_a_retried_crisis_assessment_is_stored_and_flagged_once(
    stack: Stack, settings: Settings
) -> None:
    client_id = await register(stack, settings)
    key = {"Idempotency-Key": str(uuid.uuid4())}
    path = f"/v1/clients/{client_id}/assessments"

    first, _ = await call(
        stack, settings, ALICE, "POST", path, json=assessment(CRISIS), headers=key
    )
    retry, request_id = await call(
        stack, settings, ALICE, "POST", path, json=assessment(CRISIS), headers=key
    )

    assert (first.status_code, retry.status_code) == (201, 201)
    assert retry.json() == first.json()
    assert retry.headers["location"] == first.headers["location"]
    # registered, assessed, its protected needs, 2 flags
    assert await written(settings, client_id) == (1, 2, 5)
    [row] = await audit_rows(settings, request_id)
    assert (row["action"], row["resource_id"]) == ("assessment.write", first.json()["id"])
    other, _ = await call(
        stack, settings, ALICE, "POST", path, json=assessment(NO_NEEDS), headers=key
    )
    assert other.status_code == 422
    assert other.json()["type"].endswith("/idempotency-key-reused")


async def test_assessments_are_listed_newest_first_in_pages(
    stack: Stack, settings: Settings
) -> None:
    client_id = await register(stack, settings)
    created = [
        await assess(stack, settings, client_id, answers) for answers in (NO_NEEDS, MODERATE, HIGH)
    ]

    seen: list[str] = []
    cursor: str | None = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        response, _ = await call(
            stack, settings, ALICE, "GET", f"/v1/clients/{client_id}/assessments", params=params
        )
        assert response.status_code == 200
        seen += [item["id"] for item in response.json()["items"]]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            break

    assert seen == [a["id"] for a in reversed(created)]
    assert [a["computed_risk_level"] for a in created] == ["low", "moderate", "high"]
    bad_cursor, _ = await call(
        stack, settings, ALICE, "GET", f"/v1/clients/{client_id}/assessments?cursor=nonsense"
    )
    assert bad_cursor.status_code == 400


# --- overriding the risk level ----------------------------------------------------------------


async def test_an_override_needs_a_reason_and_keeps_the_computed_level(
    stack: Stack, settings: Settings
) -> None:
    client_id = await register(stack, settings)
    body = await assess(stack, settings, client_id, MODERATE)
    path = f"/v1/clients/{client_id}/assessments/{body['id']}/override"

    for refused in ({"risk_level": "high"}, {"risk_level": "high", "reason": "too short"}):
        response, _ = await call(stack, settings, ALICE, "POST", path, json=refused)
        assert response.status_code == 422
        assert [e["field"] for e in response.json()["errors"]] == ["body.reason"]
    unchanged, _ = await call(
        stack, settings, ALICE, "GET", f"/v1/clients/{client_id}/assessments/{body['id']}"
    )
    assert unchanged.json() == body

    reason = "Eviction notice seen at the home visit today."
    response, request_id = await call(
        stack, settings, ALICE, "POST", path, json={"risk_level": "high", "reason": reason}
    )
    assert response.status_code == 200, response.text
    overridden = response.json()
    assert (overridden["risk_level"], overridden["priority"]) == ("high", 2)
    assert (overridden["computed_risk_level"], overridden["computed_priority"]) == ("moderate", 3)
    assert overridden["risk_overridden"] is True
    [override] = overridden["overrides"]
    assert (override["risk_level"], override["reason"], override["overridden_by"]) == (
        "high",
        reason,
        "alice",
    )
    assert abs(datetime.fromisoformat(override["overridden_at"]) - datetime.now(UTC)) < timedelta(
        minutes=1
    )
    changed = {"risk_level", "priority", "risk_overridden", "overrides"}
    assert {k: v for k, v in overridden.items() if k not in changed} == {
        k: v for k, v in body.items() if k not in changed
    }
    [row] = await audit_rows(settings, request_id)
    assert (row["action"], row["resource_id"], row["outcome"]) == (
        "assessment.override",
        body["id"],
        "allowed",
    )

    first, second = await outbox(settings, client_id, ASSESSED)
    assert (first["risk_level"], first["priority"], first["risk_overridden"]) == (
        "moderate",
        3,
        False,
    )
    assert (second["risk_level"], second["priority"], second["risk_overridden"]) == (
        "high",
        2,
        True,
    )
    assert second["assessment_id"] == body["id"]
    assert reason not in json.dumps(second)

    again, _ = await call(
        stack, settings, ALICE, "POST", path, json={"risk_level": "high", "reason": reason}
    )
    assert again.status_code == 409
    assert again.json()["type"].endswith("/risk-level-unchanged")

    back, _ = await call(
        stack,
        settings,
        SAM,
        "POST",
        path,
        json={"risk_level": "moderate", "reason": "The eviction was withdrawn this morning."},
    )
    assert back.status_code == 200
    assert (back.json()["risk_level"], back.json()["risk_overridden"]) == ("moderate", False)
    assert [(o["risk_level"], o["overridden_by"]) for o in back.json()["overrides"]] == [
        ("high", "alice"),
        ("moderate", "sam"),
    ]


async def test_an_unknown_assessment_is_404_and_audited(stack: Stack, settings: Settings) -> None:
    client_id = await register(stack, settings)
    unknown = str(uuid.uuid4())
    response, request_id = await call(
        stack, settings, ALICE, "GET", f"/v1/clients/{client_id}/assessments/{unknown}"
    )
    assert response.status_code == 404
    [row] = await audit_rows(settings, request_id)
    assert (row["action"], row["resource_id"], row["outcome"]) == (
        "assessment.read",
        unknown,
        "not_found",
    )


# --- flags ------------------------------------------------------------------------------------


async def test_a_manual_flag_is_acknowledged_once_and_resolved_once(
    stack: Stack, settings: Settings
) -> None:
    client_id = await register(stack, settings)
    note = "Landlord called about unpaid rent; client asked us not to contact him."
    expires_at = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    response, request_id = await call(
        stack,
        settings,
        ALICE,
        "POST",
        f"/v1/clients/{client_id}/flags",
        json={"flag_type": "legal", "severity": "moderate", "expires_at": expires_at, "note": note},
    )
    assert response.status_code == 201, response.text
    flag = response.json()
    assert (flag["flag_type"], flag["severity"], flag["source"], flag["status"]) == (
        "legal",
        "moderate",
        "manual",
        "active",
    )
    assert (flag["note"], flag["raised_by"], flag["assessment_id"]) == (note, "alice", None)
    assert datetime.fromisoformat(flag["expires_at"]) == datetime.fromisoformat(expires_at)
    assert response.headers["location"] == f"/v1/clients/{client_id}/flags/{flag['id']}"
    [row] = await audit_rows(settings, request_id)
    assert (row["action"], row["resource_id"], row["outcome"]) == (
        "flag.write",
        flag["id"],
        "allowed",
    )

    [event] = await outbox(settings, client_id, FLAG_RAISED)
    assert (event["flag_id"], event["crisis"], event["source"], event["severity"]) == (
        flag["id"],
        False,
        "manual",
        "moderate",
    )
    assert "note" not in event and note not in json.dumps(event)

    base = f"/v1/clients/{client_id}/flags/{flag['id']}"
    acknowledged, _ = await call(stack, settings, SAM, "POST", f"{base}/acknowledgement")
    assert acknowledged.status_code == 200, acknowledged.text
    assert acknowledged.json()["acknowledged_by"] == "sam"
    assert acknowledged.json()["acknowledged_at"] is not None
    assert acknowledged.json()["status"] == "active"

    twice, request_id = await call(stack, settings, ALICE, "POST", f"{base}/acknowledgement")
    assert twice.status_code == 409
    assert twice.json()["type"].endswith("/flag-already-acknowledged")
    [row] = await audit_rows(settings, request_id)
    assert (row["action"], row["outcome"]) == ("flag.write", "allowed")
    fetched, _ = await call(stack, settings, ALICE, "GET", base)
    assert fetched.json()["acknowledged_by"] == "sam"

    no_note, _ = await call(stack, settings, ALICE, "POST", f"{base}/resolution", json={})
    assert no_note.status_code == 422
    resolved, _ = await call(
        stack,
        settings,
        ALICE,
        "POST",
        f"{base}/resolution",
        json={"note": "Rent arrears paid through the emergency fund."},
    )
    assert resolved.status_code == 200
    assert (resolved.json()["status"], resolved.json()["resolved_by"]) == ("resolved", "alice")
    assert resolved.json()["resolution_note"] == "Rent arrears paid through the emergency fund."

    again, _ = await call(
        stack, settings, ALICE, "POST", f"{base}/resolution", json={"note": "Once more."}
    )
    assert again.status_code == 409
    assert again.json()["type"].endswith("/flag-already-resolved")
    fetched, _ = await call(stack, settings, ALICE, "GET", base)
    assert fetched.json()["resolution_note"] == "Rent arrears paid through the emergency fund."

    active, _ = await call(stack, settings, ALICE, "GET", f"/v1/clients/{client_id}/flags")
    assert active.json()["items"] == []
    everything, _ = await call(
        stack, settings, ALICE, "GET", f"/v1/clients/{client_id}/flags", params={"include": "all"}
    )
    assert [f["id"] for f in everything.json()["items"]] == [flag["id"]]


async def test_a_resolved_flag_cannot_be_acknowledged(stack: Stack, settings: Settings) -> None:
    client_id = await register(stack, settings)
    created, _ = await call(
        stack,
        settings,
        ALICE,
        "POST",
        f"/v1/clients/{client_id}/flags",
        json={"flag_type": "duplicate", "severity": "low"},
    )
    base = f"/v1/clients/{client_id}/flags/{created.json()['id']}"
    resolved, _ = await call(
        stack, settings, ALICE, "POST", f"{base}/resolution", json={"note": "Not a duplicate."}
    )
    assert resolved.status_code == 200
    assert resolved.json()["acknowledged_at"] is None

    response, _ = await call(stack, settings, ALICE, "POST", f"{base}/acknowledgement")
    assert response.status_code == 409
    assert response.json()["type"].endswith("/flag-resolved")


async def test_an_expired_flag_leaves_the_active_list(stack: Stack, settings: Settings) -> None:
    client_id = await register(stack, settings)
    soon = datetime.now(UTC) + timedelta(seconds=1)
    created, _ = await call(
        stack,
        settings,
        ALICE,
        "POST",
        f"/v1/clients/{client_id}/flags",
        json={"flag_type": "medical", "severity": "high", "expires_at": soon.isoformat()},
    )
    assert created.status_code == 201
    active, _ = await call(stack, settings, ALICE, "GET", f"/v1/clients/{client_id}/flags")
    assert [f["id"] for f in active.json()["items"]] == [created.json()["id"]]

    await asyncio.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.2)
    active, _ = await call(stack, settings, ALICE, "GET", f"/v1/clients/{client_id}/flags")
    assert active.json()["items"] == []
    everything, _ = await call(
        stack, settings, ALICE, "GET", f"/v1/clients/{client_id}/flags?include=all"
    )
    assert [f["status"] for f in everything.json()["items"]] == ["expired"]


@pytest.mark.parametrize(
    "body",
    [
        {"flag_type": "safety", "severity": "crisis", "expires_at": "2001-01-01T00:00:00Z"},
        {"flag_type": "safety", "severity": "crisis", "expires_at": "2999-01-01T00:00:00"},
        {"flag_type": "weather", "severity": "crisis"},
        {"flag_type": "safety", "severity": "urgent"},
        {"flag_type": "safety", "severity": "crisis", "note": "x" * 1001},
        {"flag_type": "safety", "severity": "crisis", "raised_by": "someone-else"},
    ],
    ids=["past expiry", "no time zone", "unknown type", "unknown severity", "long note", "extra"],
)
async def test_a_bad_flag_is_422_and_nothing_is_written(
    stack: Stack, settings: Settings, body: dict[str, Any]
) -> None:
    client_id = await register(stack, settings)
    before = await written(settings, client_id)
    response, _ = await call(
        stack, settings, ALICE, "POST", f"/v1/clients/{client_id}/flags", json=body
    )
    assert response.status_code == 422
    assert await written(settings, client_id) == before


# --- who may ----------------------------------------------------------------------------------


ACCESS = [
    ("GET", "/v1/clients/{id}/assessments", None, "assessment.read"),
    ("POST", "/v1/clients/{id}/assessments", assessment(NO_NEEDS), "assessment.write"),
    ("GET", "/v1/clients/{id}/flags", None, "flag.read"),
    ("POST", "/v1/clients/{id}/flags", {"flag_type": "other", "severity": "low"}, "flag.write"),
]


@pytest.mark.parametrize(("method", "path", "body", "action"), ACCESS)
@pytest.mark.parametrize(
    ("user", "status", "outcome"),
    [(ALICE, None, "allowed"), (SAM, None, "allowed"), (BOB, 404, "denied"), (PAT, 403, "denied"), (AUDREY, 403, "denied")],
    ids=["alice", "sam", "bob", "pat", "audrey"],
)  # fmt: skip
async def test_only_workers_in_scope_reach_assessments_and_flags_and_every_attempt_is_audited(
    stack: Stack,
    settings: Settings,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    action: str,
    user: User,
    status: int | None,
    outcome: str,
) -> None:
    client_id = await register(stack, settings)
    response, request_id = await call(
        stack, settings, user, method, path.format(id=client_id), json=body
    )

    expected = status or (201 if method == "POST" else 200)
    assert response.status_code == expected, response.text
    if status:
        assert response.headers["content-type"] == "application/problem+json"
        assert await written(settings, client_id) == (0, 0, 1)  # only ClientRegistered
    rows = await audit_rows(settings, request_id)
    assert [(r["action"], r["outcome"], r["actor_id"]) for r in rows] == [
        (action, outcome, user.subject)
    ]
    assert str(rows[0]["client_id"]) == client_id


async def test_another_caseworker_cannot_override_or_touch_flags(
    stack: Stack, settings: Settings
) -> None:
    client_id = await register(stack, settings)
    body = await assess(stack, settings, client_id, CRISIS)
    flag_id = body["raised_flag_ids"][0]
    attempts = [
        ("GET", f"/v1/clients/{client_id}/assessments/{body['id']}", None),
        ("POST", f"/v1/clients/{client_id}/assessments/{body['id']}/override",
         {"risk_level": "low", "reason": "I know better than the instrument."}),
        ("GET", f"/v1/clients/{client_id}/flags/{flag_id}", None),
        ("POST", f"/v1/clients/{client_id}/flags/{flag_id}/acknowledgement", None),
        ("POST", f"/v1/clients/{client_id}/flags/{flag_id}/resolution", {"note": "Closed."}),
    ]  # fmt: skip
    for method, path, json_body in attempts:
        response, request_id = await call(stack, settings, BOB, method, path, json=json_body)
        assert response.status_code == 404, path
        assert "crisis" not in response.text
        [row] = await audit_rows(settings, request_id)
        assert (row["actor_id"], row["outcome"]) == ("bob", "denied")

    fetched, _ = await call(
        stack, settings, ALICE, "GET", f"/v1/clients/{client_id}/flags/{flag_id}"
    )
    assert (fetched.json()["acknowledged_at"], fetched.json()["resolved_at"]) == (None, None)
    current, _ = await call(
        stack, settings, ALICE, "GET", f"/v1/clients/{client_id}/assessments/{body['id']}"
    )
    assert current.json()["overrides"] == []


# --- the equity report ------------------------------------------------------------------------

# An organisation of its own, so the report counts exactly the clients built here.
EVE = User("eve", ("caseworker",), organization_id="org-equity", team_id="team-equity")
EQUITY_SUPERVISOR = User(
    "sol", ("supervisor",), organization_id="org-equity", team_id="team-equity"
)


def hidden() -> dict[str, Any]:
    return {"count": None, "suppressed": True}


def shown(count: int) -> dict[str, Any]:
    return {"count": count, "suppressed": False}


def risk(low: Any, moderate: Any, high: Any, crisis: Any) -> dict[str, Any]:
    return {"low": low, "moderate": moderate, "high": high, "crisis": crisis}


def all_hidden(group: str) -> dict[str, Any]:
    return {
        "group": group,
        "clients": hidden(),
        "computed_risk_levels": risk(hidden(), hidden(), hidden(), hidden()),
        "overrides_raised": hidden(),
        "overrides_lowered": hidden(),
    }


async def test_the_equity_report_counts_groups_and_suppresses_small_cells(
    stack: Stack, settings: Settings
) -> None:
    """Women (sex code 0, White, Portuguese): 5 low, 5 high lowered to moderate, 2 of the high
    also Hispanic/Latina. Men (1, Hispanic, English): 3 low. Sex not recorded (no race,
    English): 2 low. One woman was assessed high before: only her latest assessment counts."""
    people: list[tuple[str | None, list[str], str, dict[str, str], bool]] = [
        *[("0", ["5"], "pt", NO_NEEDS, False)] * 5,
        *[("0", ["5"], "pt", HIGH, True)] * 3,
        *[("0", ["5", "6"], "pt", HIGH, True)] * 2,
        *[("1", ["6"], "en", NO_NEEDS, False)] * 3,
        *[(None, [], "en", NO_NEEDS, False)] * 2,
    ]
    for index, (sex, race, language, answers, lowered) in enumerate(people):
        client_id = await register(stack, settings, EVE, preferred_language=language)
        await admin_execute(
            settings,
            "UPDATE intake.clients SET sex = $2, race_ethnicity = $3 WHERE id = $1::uuid",
            client_id,
            sex,
            race,
        )
        if index == 0:
            await assess(stack, settings, client_id, HIGH, EVE)  # superseded below
        body = await assess(stack, settings, client_id, answers, EVE)
        if lowered:
            response, _ = await call(
                stack,
                settings,
                EVE,
                "POST",
                f"/v1/clients/{client_id}/assessments/{body['id']}/override",
                json={"risk_level": "moderate", "reason": "Family support confirmed on a visit."},
            )
            assert response.status_code == 200

    response, request_id = await call(
        stack,
        settings,
        EQUITY_SUPERVISOR,
        "GET",
        "/v1/reports/equity",
        params={"instrument_id": SCREENING},
    )

    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["instrument_id"], report["instrument_version"]) == (SCREENING, None)
    assert (report["minimum_cell"], report["clients"]) == (5, shown(15))
    women = {
        "clients": shown(10),
        "computed_risk_levels": risk(shown(5), hidden(), shown(5), hidden()),
        "overrides_raised": hidden(),
        "overrides_lowered": shown(5),
    }
    assert report["dimensions"] == [
        {
            "dimension": "sex",
            "code_list": "sex",
            "multiple_per_client": False,
            "groups": [{"group": "0", **women}, all_hidden("1"), all_hidden("not_recorded")],
        },
        {
            "dimension": "race_ethnicity",
            "code_list": "race_ethnicity",
            "multiple_per_client": True,
            "groups": [
                {"group": "5", **women},
                {
                    "group": "6",
                    "clients": shown(5),
                    "computed_risk_levels": risk(hidden(), hidden(), hidden(), hidden()),
                    "overrides_raised": hidden(),
                    "overrides_lowered": hidden(),
                },
                all_hidden("not_recorded"),
            ],
        },
        {
            "dimension": "preferred_language",
            "code_list": None,
            "multiple_per_client": False,
            "groups": [
                {
                    "group": "en",
                    "clients": shown(5),
                    "computed_risk_levels": risk(shown(5), hidden(), hidden(), hidden()),
                    "overrides_raised": hidden(),
                    "overrides_lowered": hidden(),
                },
                {"group": "pt", **women},
            ],
        },
    ]
    [row] = await audit_rows(settings, request_id)
    assert (row["action"], row["resource_type"], row["resource_id"], row["outcome"]) == (
        "report.equity",
        "report",
        f"equity:{SCREENING}",
        "allowed",
    )
    assert (row["actor_id"], row["client_id"]) == ("sol", None)

    # Another instrument: none of these clients.
    other, _ = await call(
        stack,
        settings,
        EQUITY_SUPERVISOR,
        "GET",
        "/v1/reports/equity",
        params={"instrument_id": "self-sufficiency-matrix"},
    )
    assert other.json()["clients"] == hidden()
    assert [d["groups"] for d in other.json()["dimensions"]] == [[], [], []]


@pytest.mark.parametrize(("user", "status"), [(PAT, 403), (ALICE, 403), (AUDREY, 200), (SAM, 200)])
async def test_the_equity_report_is_for_supervisors_auditors_and_admins(
    stack: Stack, settings: Settings, user: User, status: int
) -> None:
    response, request_id = await call(
        stack, settings, user, "GET", "/v1/reports/equity", params={"instrument_id": SCREENING}
    )
    assert response.status_code == status
    [row] = await audit_rows(settings, request_id)
    assert (row["action"], row["outcome"]) == (
        "report.equity",
        "allowed" if status == 200 else "denied",
    )
    if status == 200:
        assert "given_name" not in response.text and "Lima" not in response.text


async def test_the_equity_report_refuses_an_unknown_instrument(
    stack: Stack, settings: Settings
) -> None:
    for params, field in (
        ({"instrument_id": "horoscope"}, "query.instrument_id"),
        ({"instrument_id": SCREENING, "version": "9.9"}, "query.version"),
    ):
        response, _ = await call(stack, settings, SAM, "GET", "/v1/reports/equity", params=params)
        assert response.status_code == 422
        assert [e["field"] for e in response.json()["errors"]] == [field]


def tally(clients: int, low: int = 0, high: int = 0, raised: int = 0) -> Tally:
    counts = Tally(clients=clients, raised=raised)
    counts.risk[RiskLevel.LOW] = low
    counts.risk[RiskLevel.HIGH] = high
    return counts


def test_one_small_cell_of_a_partition_takes_the_next_smallest_with_it() -> None:
    """Published totals minus the published cells would give a lone suppressed cell away."""
    report = build_report(
        {
            ("all", "all"): tally(23, low=17, high=6),
            ("sex", "0"): tally(12, low=6, high=6),  # no small risk cell
            ("sex", "1"): tally(8, low=8),  # the next smallest group
            ("sex", "not_recorded"): tally(3, low=3),  # the one small group
            ("race_ethnicity", "5"): tally(9, low=5, high=4, raised=5),  # high alone is small...
            ("race_ethnicity", "6"): tally(5, low=5),
            ("preferred_language", "pt"): tally(23, low=17, high=6),
        },
        instrument_id=SCREENING,
        instrument_version=None,
        generated_at=datetime.now(UTC),
    )
    sex, race, language = (d.model_dump(mode="json") for d in report.dimensions)

    # Published counts are rounded to the nearest 5 (12 -> 10).
    assert [(g["group"], g["clients"]["count"]) for g in sex["groups"]] == [
        ("0", 10),
        ("1", None),
        ("not_recorded", None),
    ]
    # Its clients are hidden so the small group's cannot be subtracted from the total; its
    # low count stays published: the hidden moderate, high and crisis (0) keep it from
    # giving the group's size away.
    assert sex["groups"][1] == {
        **all_hidden("1"),
        "computed_risk_levels": risk(shown(10), hidden(), hidden(), hidden()),
    }
    five = race["groups"][0]
    # ... and moderate and crisis (0) are small too: three hidden, nothing to subtract.
    assert five["computed_risk_levels"] == risk(shown(5), hidden(), hidden(), hidden())
    assert five["overrides_raised"] == shown(5)
    # Race is not a partition (several groups per client): a lone small group stays alone.
    assert [g["clients"] for g in race["groups"]] == [shown(10), shown(5)]
    assert language["groups"][0]["clients"] == shown(25)


def test_a_lone_small_risk_cell_hides_the_smallest_other_one() -> None:
    counts = tally(20, low=9, high=6)
    counts.risk[RiskLevel.MODERATE] = 5
    counts.risk[RiskLevel.CRISIS] = 0
    counts.risk[RiskLevel.LOW] = 9
    report = build_report(
        {("all", "all"): counts, ("preferred_language", "en"): counts},
        instrument_id=SCREENING,
        instrument_version=None,
        generated_at=datetime.now(UTC),
    )
    [group] = report.dimensions[2].groups
    assert group.model_dump(mode="json")["computed_risk_levels"] == risk(
        shown(10),
        hidden(),
        shown(5),
        hidden(),  # 9 and 6, rounded to the nearest 5
    )
