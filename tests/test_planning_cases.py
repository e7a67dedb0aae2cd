"""Planning's cases against the real stack (PostgreSQL, the broker, every service): opening from
an assessment read off the broker (once, however often it arrives), by hand, closing with a
reason and an HMIS destination (and a supervisor's approval where the organisation asks for
it), reopening, reviews and due work across a time change (a FrozenClock), crises, and the
timeline across intake's events."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import ConsumerRecord

from services.planning.code_lists.catalogue import CLOSURE_REASONS, catalogue
from services.planning.reviews.cadence import cadence
from shared.clock import FrozenClock
from shared.events.assessment import ClientAssessed, RiskLevel
from shared.events.contracts import Topic
from shared.events.planning import ClosureReason
from shared.messaging.kafka import producer
from shared.settings import Settings
from tests.support import (
    CASEWORKER,
    VALID_CLIENT,
    Stack,
    User,
    admin_fetchval,
    bearer,
    enrol_worker,
    eventually,
    header,
    read_topic,
    running_stack,
)
from tests.test_intake_consents import REFERRAL_CONSENT
from tests.test_scoring import NO_NEEDS

pytestmark = pytest.mark.asyncio

ALICE = CASEWORKER
BOB = User("bob", ("caseworker",))
SAM = User("sam", ("supervisor",))
SUE = User("sue", ("supervisor",), team_id="team-b")
PAT = User("pat", ("partner",), team_id=None)
# An organisation whose closures need a supervisor's approval.
APPROVING = "org-approve"
CORA = User("cora", ("caseworker",), APPROVING)
SAGE = User("sage", ("supervisor",), APPROVING)
SETH = User("seth", ("supervisor",), APPROVING)
STAN = User("stan", ("supervisor",), APPROVING, "team-b")
STRANGER = User("sage", ("supervisor",), "org-elsewhere")

FOOD = {**NO_NEEDS, "food_worry": "often_true", "food_ran_out": "often_true"}
SCREENING = {"instrument_id": "needs-risk-screening", "version": "1.0"}


@pytest.fixture(scope="module")
def clock() -> FrozenClock:
    return FrozenClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture(scope="module")
async def stack(settings: Settings, clock: FrozenClock) -> AsyncIterator[Stack]:
    approving = settings.model_copy(update={"planning_closure_approval_organizations": [APPROVING]})
    async with running_stack(approving, clock=clock) as stack:
        yield stack


async def call(
    stack: Stack, settings: Settings, user: User, method: str, path: str, **kwargs: Any
) -> httpx.Response:
    headers = {**bearer(settings, user), **kwargs.pop("headers", {})}
    return await stack.api["planning"].request(method, path, headers=headers, **kwargs)


def problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"] == f"https://casework.dev/problems/{slug}", body
    return body


async def fetch(settings: Settings, query: str, *args: Any) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(settings.database_url)
    try:
        return list(await connection.fetch(query, *args))
    finally:
        await connection.close()


async def register(stack: Stack, settings: Settings, user: User = ALICE) -> str:
    """A client registered by `user`, once planning knows it."""
    response = await stack.api["intake"].post(
        "/v1/clients", json=VALID_CLIENT, headers=bearer(settings, user)
    )
    assert response.status_code == 201, response.text
    client_id: str = response.json()["id"]

    async def known() -> bool | None:
        rows = await fetch(
            settings,
            "SELECT 1 FROM planning.client_access WHERE client_id = $1",
            uuid.UUID(client_id),
        )
        return True if rows else None

    await eventually(known)
    return client_id


async def assess(
    stack: Stack, settings: Settings, client_id: str, answers: dict[str, str], user: User = ALICE
) -> dict[str, Any]:
    response = await stack.api["intake"].post(
        f"/v1/clients/{client_id}/assessments",
        json={**SCREENING, "answers": answers},
        headers=bearer(settings, user),
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def cases_of(
    stack: Stack, settings: Settings, client_id: str, user: User = ALICE
) -> list[dict[str, Any]]:
    response = await call(
        stack, settings, user, "GET", "/v1/cases", params={"client_id": client_id}
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def the_case(
    stack: Stack, settings: Settings, client_id: str, user: User = ALICE, **expected: Any
) -> dict[str, Any]:
    """The client's one case, once it shows `expected`."""

    async def probe() -> dict[str, Any] | None:
        found = await cases_of(stack, settings, client_id, user)
        if len(found) == 1 and all(found[0][k] == v for k, v in expected.items()):
            return found[0]
        return None

    return await eventually(probe)


async def open_by_hand(
    stack: Stack, settings: Settings, client_id: str, user: User
) -> httpx.Response:
    response = await call(stack, settings, user, "POST", "/v1/cases", json={"client_id": client_id})
    assert response.status_code == 201, response.text
    return response


async def reviews(stack: Stack, settings: Settings, case_id: str, user: User = ALICE) -> list[Any]:
    response = await call(stack, settings, user, "GET", f"/v1/cases/{case_id}/reviews")
    assert response.status_code == 200, response.text
    found: list[Any] = response.json()
    return found


async def outbox_types(settings: Settings, case_id: str) -> list[str]:
    rows = await fetch(
        settings,
        "SELECT type FROM planning.outbox WHERE payload->>'case_id' = $1 ORDER BY created_at, id",
        case_id,
    )
    return [row["type"].rsplit(".", 2)[-2] for row in rows]


async def work(stack: Stack, settings: Settings, user: User) -> list[dict[str, Any]]:
    response = await call(stack, settings, user, "GET", "/v1/work")
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()
    return items


async def assign(stack: Stack, settings: Settings, case_id: str, worker: User, by: User) -> None:
    await enrol_worker(stack, settings, worker)
    response = await call(
        stack, settings, by, "PUT", f"/v1/cases/{case_id}/assignment",
        json={"worker_id": worker.subject},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    assert response.json()["case_id"] == case_id


def days(value: str, since: str) -> float:
    delta = datetime.fromisoformat(value) - datetime.fromisoformat(since)
    return delta / timedelta(days=1)


# --- opening -------------------------------------------------------------------------------


async def test_an_assessment_with_needs_opens_one_case_however_often_it_arrives(
    stack: Stack, settings: Settings
) -> None:
    client_id = await register(stack, settings)
    assessment = await assess(stack, settings, client_id, FOOD)

    case = await the_case(stack, settings, client_id, assessment_id=assessment["id"])
    assert (case["source"], case["status"], case["worker_id"]) == ("assessment", "open", None)
    assert (case["organization_id"], case["team_id"]) == ("org-a", "team-a")
    assert case["risk_level"] == assessment["risk_level"]
    assert {n["category"] for n in case["needs"]} == {"food_insecurity"}
    assert all(n["data_class"] is None for n in case["needs"])
    [review] = await reviews(stack, settings, case["id"])
    assert (review["status"], review["reason"]) == ("scheduled", "assessment")
    cadence_days = cadence().days_by_risk_level[RiskLevel(assessment["risk_level"])]
    assert days(review["due_at"], case["opened_at"]) == cadence_days
    assert case["next_review_due_at"] == review["due_at"]

    # The same ClientAssessed delivered again under another event id (as a replay would).
    records = await read_topic(
        settings,
        Topic.INTAKE_CLIENTS,
        until=lambda rs: any(
            header(r, "ce_type") == ClientAssessed.event_type and r.key == client_id.encode()
            for r in rs
        ),
    )
    [original] = [
        r
        for r in records
        if header(r, "ce_type") == ClientAssessed.event_type and r.key == client_id.encode()
    ]
    again = str(uuid.uuid4())
    await redeliver(settings, original, event_id=again)

    async def handled() -> bool | None:
        rows = await fetch(settings, "SELECT 1 FROM planning.inbox WHERE event_id = $1", again)
        return True if rows else None

    await eventually(handled)
    [after] = await cases_of(stack, settings, client_id)
    assert after == case
    assert await reviews(stack, settings, case["id"]) == [review]
    assert await outbox_types(settings, case["id"]) == ["opened", "scheduled"]
    timeline = await call(stack, settings, ALICE, "GET", f"/v1/cases/{case['id']}/timeline")
    kinds = [entry["kind"] for entry in timeline.json()["items"]]
    assert kinds.count("client.assessed") == 1, kinds

    # Republished after a risk override (same assessment, new level): one case, the level and
    # the review follow, the needs are not repeated.
    override = await stack.api["intake"].post(
        f"/v1/clients/{client_id}/assessments/{assessment['id']}/override",
        json={"risk_level": "high", "reason": "Eviction notice served yesterday"},
    )
    assert override.status_code in (200, 201), override.text
    overridden = await the_case(stack, settings, client_id, risk_level="high")
    assert overridden["id"] == case["id"]
    assert overridden["needs"] == case["needs"]
    # Both scheduled at the same frozen instant: their order is not the point, their states are.
    by_status = {r["status"]: r for r in await reviews(stack, settings, case["id"])}
    superseded, scheduled = by_status["superseded"], by_status["scheduled"]
    assert superseded["id"] == review["id"]
    assert (scheduled["status"], scheduled["risk_level"]) == ("scheduled", "high")
    assert await outbox_types(settings, case["id"]) == ["opened", "scheduled", "scheduled"]


async def redeliver(
    settings: Settings, record: ConsumerRecord[bytes, bytes], *, event_id: str
) -> None:
    headers = [
        (key, event_id.encode() if key == "ce_id" else bytes(value))
        for key, value in record.headers
    ]
    kafka = producer(settings)
    await kafka.start()
    try:
        await kafka.send_and_wait(record.topic, value=record.value, key=record.key, headers=headers)
    finally:
        await kafka.stop()


async def test_an_assessment_without_needs_opens_no_case(stack: Stack, settings: Settings) -> None:
    client_id = await register(stack, settings)
    assessment = await assess(stack, settings, client_id, NO_NEEDS)

    async def received() -> bool | None:
        rows = await fetch(
            settings,
            "SELECT 1 FROM planning.assessments_received WHERE assessment_id = $1",
            uuid.UUID(assessment["id"]),
        )
        return True if rows else None

    await eventually(received)
    assert await cases_of(stack, settings, client_id) == []


async def test_a_case_is_opened_by_hand_once_and_only_in_scope(
    stack: Stack, settings: Settings
) -> None:
    client_id = await register(stack, settings)
    for outsider, status in ((SUE, 404), (STRANGER, 404), (PAT, 403)):
        refused = await call(
            stack, settings, outsider, "POST", "/v1/cases", json={"client_id": client_id}
        )
        assert refused.status_code == status, refused.text
    assert await cases_of(stack, settings, client_id) == []

    opened = await open_by_hand(stack, settings, client_id, ALICE)

    case = opened.json()
    assert (case["source"], case["status"], case["opened_by"]) == ("manual", "open", "alice")
    assert opened.headers["ETag"] == '"1"'
    assert opened.headers["Location"] == f"/v1/cases/{case['id']}"
    again = await call(stack, settings, SAM, "POST", "/v1/cases", json={"client_id": client_id})
    assert problem(again, 409, "case-already-open")["case_id"] == case["id"]
    assert [c["id"] for c in await cases_of(stack, settings, client_id)] == [case["id"]]
    # Outside the scope the case is not there, and the list does not show it.
    assert (await call(stack, settings, SUE, "GET", f"/v1/cases/{case['id']}")).status_code == 404
    assert await cases_of(stack, settings, client_id, SUE) == []
    seen = await call(stack, settings, SAM, "GET", f"/v1/cases/{case['id']}")
    assert seen.status_code == 200 and seen.json()["id"] == case["id"]


# --- closing and reopening -----------------------------------------------------------------


async def test_the_closure_reasons_code_list_is_the_event_contract_s() -> None:
    assert {c.code for c in catalogue().lists[CLOSURE_REASONS]} == set(ClosureReason)


async def test_a_closure_needs_a_reason_and_a_known_destination_or_writes_nothing(
    stack: Stack, settings: Settings
) -> None:
    client_id = await register(stack, settings)
    case = (await open_by_hand(stack, settings, client_id, ALICE)).json()
    path = f"/v1/cases/{case['id']}/closure"
    valid = {"reason": "goals_met", "destination_code": "410", "note": "Moved into her flat."}

    problem(
        await call(stack, settings, ALICE, "POST", path, json=valid), 428, "precondition-required"
    )
    fresh = {"If-Match": '"1"'}
    for body in (
        {"destination_code": "410"},
        {**valid, "reason": "bored"},
        {**valid, "destination_code": "999"},
        {**valid, "destination_code": ""},
        {**valid, "extra": "x"},
    ):
        refused = await call(stack, settings, ALICE, "POST", path, json=body, headers=fresh)
        assert refused.status_code == 422, (body, refused.text)
    stale = await call(
        stack, settings, ALICE, "POST", path, json=valid, headers={"If-Match": '"7"'}
    )
    problem(stale, 412, "precondition-failed")
    unchanged = (await call(stack, settings, ALICE, "GET", f"/v1/cases/{case['id']}")).json()
    assert (unchanged["status"], unchanged["version"]) == ("open", 1)
    assert (
        await fetch(
            settings,
            "SELECT 1 FROM planning.case_closures WHERE case_id = $1",
            uuid.UUID(case["id"]),
        )
        == []
    )
    assert await outbox_types(settings, case["id"]) == ["opened", "scheduled"]

    closed = await call(stack, settings, ALICE, "POST", path, json=valid, headers=fresh)

    assert closed.status_code == 200, closed.text
    result = closed.json()
    assert (result["case"]["status"], result["case"]["closure_reason"]) == ("closed", "goals_met")
    assert result["case"]["destination_code"] == "410"
    assert result["case"]["next_review_due_at"] is None
    assert (result["closure"]["status"], result["closure"]["approval_id"]) == ("closed", None)
    assert closed.headers["ETag"] == '"2"'
    assert [r["status"] for r in await reviews(stack, settings, case["id"])] == ["superseded"]
    assert await outbox_types(settings, case["id"]) == ["opened", "scheduled", "closed"]
    [event] = await fetch(
        settings,
        "SELECT payload FROM planning.outbox WHERE payload->>'case_id' = $1 AND type LIKE $2",
        case["id"],
        "%case.closed%",
    )
    payload = (
        event["payload"] if isinstance(event["payload"], dict) else json.loads(event["payload"])
    )
    assert (payload["reason"], payload["destination_code"]) == ("goals_met", "410")
    assert "note" not in payload and "flat" not in json.dumps(payload)

    # Closed: no hold, no second closure; reopening needs a reason and is logged.
    held = await call(
        stack, settings, ALICE, "POST", f"/v1/cases/{case['id']}/hold", json={},
        headers={"If-Match": '"2"'},
    )  # fmt: skip
    problem(held, 409, "case-closed")
    reopen_path = f"/v1/cases/{case['id']}/reopening"
    no_reason = await call(
        stack, settings, ALICE, "POST", reopen_path, json={}, headers={"If-Match": '"2"'}
    )
    assert no_reason.status_code == 422
    reopened = await call(
        stack, settings, ALICE, "POST", reopen_path,
        json={"reason": "She lost the flat again"}, headers={"If-Match": '"2"'},
    )  # fmt: skip
    assert reopened.status_code == 200, reopened.text
    assert (reopened.json()["status"], reopened.json()["closure_reason"]) == ("open", None)
    [log] = await fetch(
        settings,
        "SELECT reason, reopened_by FROM planning.case_reopenings WHERE case_id = $1",
        uuid.UUID(case["id"]),
    )
    assert (log["reason"], log["reopened_by"]) == ("She lost the flat again", "alice")
    statuses = sorted(r["status"] for r in await reviews(stack, settings, case["id"]))
    assert statuses == ["scheduled", "superseded"]  # scheduled at one frozen instant: any order
    assert await outbox_types(settings, case["id"]) == [
        "opened", "scheduled", "closed", "reopened", "scheduled",
    ]  # fmt: skip


async def test_hold_and_resume_return_the_case_to_where_it_was(
    stack: Stack, settings: Settings
) -> None:
    client_id = await register(stack, settings)
    case = (await open_by_hand(stack, settings, client_id, ALICE)).json()
    base = f"/v1/cases/{case['id']}"
    held = await call(
        stack, settings, ALICE, "POST", f"{base}/hold", json={}, headers={"If-Match": '"1"'}
    )
    assert held.json()["status"] == "on_hold", held.text
    twice = await call(
        stack, settings, ALICE, "POST", f"{base}/hold", json={}, headers={"If-Match": '"2"'}
    )
    problem(twice, 409, "case-on-hold")
    resumed = await call(
        stack, settings, ALICE, "POST", f"{base}/resume", headers={"If-Match": '"2"'}
    )
    assert (resumed.json()["status"], resumed.headers["ETag"]) == ("open", '"3"')


async def test_a_closure_awaits_the_case_team_s_supervisor_where_the_organisation_asks(
    stack: Stack, settings: Settings
) -> None:
    client_id = await register(stack, settings, CORA)
    case = (await open_by_hand(stack, settings, client_id, CORA)).json()
    closure = {"reason": "moved", "destination_code": "312"}

    requested = await call(
        stack, settings, CORA, "POST", f"/v1/cases/{case['id']}/closure", json=closure,
        headers={"If-Match": '"1"'},
    )  # fmt: skip

    assert requested.status_code == 202, requested.text
    body = requested.json()
    assert (body["case"]["status"], body["closure"]["status"]) == ("open", "requested")
    approval_id = body["closure"]["approval_id"]
    path = f"/v1/approvals/{approval_id}"
    again = await call(
        stack, settings, CORA, "POST", f"/v1/cases/{case['id']}/closure", json=closure,
        headers={"If-Match": '"1"'},
    )  # fmt: skip
    assert problem(again, 409, "closure-pending")["approval_id"] == approval_id
    pending = await call(
        stack, settings, SETH, "GET", "/v1/approvals", params={"status": "requested"}
    )
    assert approval_id in [a["id"] for a in pending.json()["items"]]
    assert approval_id not in [
        a["id"] for a in (await call(stack, settings, STAN, "GET", "/v1/approvals")).json()["items"]
    ]

    approve = {"decision": "approved", "comment": "Agreed"}
    # The requester is a caseworker (no decisions); another team's supervisor and another
    # organisation's do not see it; an unknown decision is bad input.
    problem(
        await call(stack, settings, CORA, "POST", f"{path}/decision", json=approve),
        403,
        "forbidden",
    )
    problem(
        await call(stack, settings, STAN, "POST", f"{path}/decision", json=approve),
        404,
        "not-found",
    )
    problem(
        await call(stack, settings, STRANGER, "POST", f"{path}/decision", json=approve),
        404, "not-found",
    )  # fmt: skip
    bad = await call(stack, settings, SETH, "POST", f"{path}/decision", json={"decision": "maybe"})
    assert bad.status_code == 422
    still = (await call(stack, settings, CORA, "GET", f"/v1/cases/{case['id']}")).json()
    assert (still["status"], still["version"]) == ("open", 1)
    assert await outbox_types(settings, case["id"]) == ["opened", "scheduled", "requested"]

    decided = await call(stack, settings, SETH, "POST", f"{path}/decision", json=approve)

    assert decided.status_code == 200, decided.text
    assert (decided.json()["status"], decided.json()["decided_by"]) == ("approved", "seth")
    closed = (await call(stack, settings, CORA, "GET", f"/v1/cases/{case['id']}")).json()
    assert (closed["status"], closed["closure_reason"], closed["destination_code"]) == (
        "closed", "moved", "312",
    )  # fmt: skip
    assert await outbox_types(settings, case["id"]) == [
        "opened", "scheduled", "requested", "closed", "decided",
    ]  # fmt: skip
    problem(
        await call(stack, settings, SAGE, "POST", f"{path}/decision", json=approve),
        409, "approval-not-pending",
    )  # fmt: skip


async def test_nobody_approves_their_own_request_and_a_requester_may_withdraw(
    stack: Stack, settings: Settings
) -> None:
    client_id = await register(stack, settings, CORA)
    case = (await open_by_hand(stack, settings, client_id, CORA)).json()
    requested = await call(
        stack, settings, SAGE, "POST", f"/v1/cases/{case['id']}/closure",
        json={"reason": "lost_contact", "destination_code": "30"}, headers={"If-Match": '"1"'},
    )  # fmt: skip
    assert requested.status_code == 202, requested.text
    path = f"/v1/approvals/{requested.json()['closure']['approval_id']}"

    own = await call(
        stack, settings, SAGE, "POST", f"{path}/decision", json={"decision": "approved"}
    )

    problem(own, 403, "self-approval")
    problem(
        await call(stack, settings, SETH, "POST", f"{path}/withdrawal", json={}),
        403,
        "not-requester",
    )
    withdrawn = await call(stack, settings, SAGE, "POST", f"{path}/withdrawal", json={})
    assert withdrawn.json()["status"] == "withdrawn", withdrawn.text
    [row] = await fetch(
        settings,
        "SELECT status FROM planning.case_closures WHERE case_id = $1",
        uuid.UUID(case["id"]),
    )
    assert row["status"] == "withdrawn"
    after = (await call(stack, settings, CORA, "GET", f"/v1/cases/{case['id']}")).json()
    assert after["status"] == "open"
    problem(
        await call(stack, settings, SETH, "POST", f"{path}/decision", json={"decision": "approved"}),
        409, "approval-not-pending",
    )  # fmt: skip


# --- reviews, due work and crises ----------------------------------------------------------


async def test_due_work_follows_the_clock(
    stack: Stack, settings: Settings, clock: FrozenClock
) -> None:
    client_id = await register(stack, settings)
    assessment = await assess(stack, settings, client_id, NO_NEEDS | {"lonely": "often"})
    case = await the_case(stack, settings, client_id, assessment_id=assessment["id"])
    await assign(stack, settings, case["id"], BOB, SAM)
    [review] = await reviews(stack, settings, case["id"], SAM)
    due = datetime.fromisoformat(review["due_at"])
    start = clock.now()

    def mine(items: list[dict[str, Any]]) -> list[tuple[str, bool, int, str]]:
        return [
            (i["kind"], i["overdue"], i["priority"], i["reason"])
            for i in items
            if i["case_id"] == case["id"]
        ]

    try:
        clock.set(due - timedelta(days=8))
        assert mine(await work(stack, settings, BOB)) == []
        clock.set(due - timedelta(days=6))
        assert mine(await work(stack, settings, BOB)) == [("review", False, 5, "review_due")]
        assert mine(await work(stack, settings, SAM)) == []  # not overdue: the worker's alone
        clock.set(due + timedelta(minutes=1))
        assert mine(await work(stack, settings, BOB)) == [("review", True, 1, "review_overdue")]
        assert mine(await work(stack, settings, SAM)) == [("review", True, 1, "review_overdue")]
        assert mine(await work(stack, settings, ALICE)) == []
        assert mine(await work(stack, settings, SUE)) == []
    finally:
        clock.set(start)


async def test_a_crisis_flag_makes_a_review_due_now_and_puts_the_case_on_top(
    stack: Stack, settings: Settings, clock: FrozenClock
) -> None:
    client_id = await register(stack, settings)
    assessment = await assess(stack, settings, client_id, FOOD)
    case = await the_case(stack, settings, client_id, assessment_id=assessment["id"])
    await assign(stack, settings, case["id"], ALICE, SAM)

    flag = await stack.api["intake"].post(
        f"/v1/clients/{client_id}/flags", json={"flag_type": "safety", "severity": "crisis"}
    )
    assert flag.status_code == 201, flag.text

    async def crisis_review() -> dict[str, Any] | None:
        found = [r for r in await reviews(stack, settings, case["id"]) if r["reason"] == "crisis"]
        return found[0] if found else None

    review = await eventually(crisis_review)
    assert review["status"] == "scheduled"
    raised_at = datetime.fromisoformat(flag.json()["raised_at"])
    assert datetime.fromisoformat(review["due_at"]) == raised_at
    items = await work(stack, settings, ALICE)
    # On top: crises come before anything else (other tests' crises of alice's may be there).
    crises = [i for i in items if i["priority"] == 0]
    assert items[: len(crises)] == crises and {i["kind"] for i in crises} == {"crisis"}
    [mine] = [i for i in crises if i["case_id"] == case["id"]]
    assert mine["subject_id"] == review["id"]
    timeline = (
        await call(stack, settings, ALICE, "GET", f"/v1/cases/{case['id']}/timeline")
    ).json()
    [entry] = [e for e in timeline["items"] if e["kind"] == "crisis"]
    assert entry["codes"] == {"severity": "crisis", "crisis": "true"}
    assert "safety" not in json.dumps(timeline)

    done = await call(
        stack, settings, ALICE, "POST", f"/v1/cases/{case['id']}/reviews/{review['id']}/completion",
        json={"outcome": "continue", "attendees": [{"role": "client"}, {"role": "caseworker"}]},
    )  # fmt: skip

    assert done.status_code == 200, done.text
    assert (done.json()["status"], done.json()["outcome"]) == ("completed", "continue")
    assert [
        i
        for i in await work(stack, settings, ALICE)
        if i["kind"] == "crisis" and i["case_id"] == case["id"]
    ] == []
    statuses = [(r["reason"], r["status"]) for r in await reviews(stack, settings, case["id"])]
    assert [s for s in statuses if s[1] == "scheduled"] == [("cadence", "scheduled")]
    again = await call(
        stack, settings, ALICE, "POST", f"/v1/cases/{case['id']}/reviews/{review['id']}/completion",
        json={"outcome": "continue", "attendees": [{"role": "client"}]},
    )  # fmt: skip
    problem(again, 409, "review-not-scheduled")
    types = await outbox_types(settings, case["id"])
    assert types.count("completed") == 1


async def test_a_crisis_without_a_case_opens_one_for_the_team_s_supervisors(
    stack: Stack, settings: Settings
) -> None:
    client_id = await register(stack, settings)
    flag = await stack.api["intake"].post(
        f"/v1/clients/{client_id}/flags", json={"flag_type": "safety", "severity": "crisis"}
    )
    assert flag.status_code == 201, flag.text

    case = await the_case(stack, settings, client_id, SAM, source="crisis")

    assert (case["worker_id"], case["team_id"]) == (None, "team-a")
    items = await work(stack, settings, SAM)
    assert (items[0]["kind"], items[0]["priority"], items[0]["reason"]) == (
        "crisis", 0, "crisis_unassigned",
    )  # fmt: skip
    ours = [(i["kind"], i["reason"]) for i in items if i["case_id"] == case["id"]]
    assert ("unassigned_case", "case_unassigned") in ours
    assert [i for i in await work(stack, settings, SUE) if i["case_id"] == case["id"]] == []
    assert [i for i in await work(stack, settings, BOB) if i["case_id"] == case["id"]] == []


async def test_a_review_completion_is_checked_and_writes_nothing_when_refused(
    stack: Stack, settings: Settings
) -> None:
    client_id = await register(stack, settings)
    case = (await open_by_hand(stack, settings, client_id, ALICE)).json()
    [review] = await reviews(stack, settings, case["id"])
    path = f"/v1/cases/{case['id']}/reviews/{review['id']}/completion"
    for body in (
        {"outcome": "continue", "attendees": []},
        {"outcome": "shrug", "attendees": [{"role": "client"}]},
        {"outcome": "continue", "attendees": [{"role": "client", "name": "Jo"}]},
    ):
        refused = await call(stack, settings, ALICE, "POST", path, json=body)
        assert refused.status_code == 422, (body, refused.text)
    unknown = f"/v1/cases/{case['id']}/reviews/{uuid.uuid4()}/completion"
    valid = {"outcome": "continue", "attendees": [{"role": "client"}]}
    problem(await call(stack, settings, ALICE, "POST", unknown, json=valid), 404, "not-found")
    problem(await call(stack, settings, SUE, "POST", path, json=valid), 404, "not-found")
    assert await reviews(stack, settings, case["id"]) == [review]


# --- the timeline --------------------------------------------------------------------------


async def test_the_timeline_follows_intake_s_events_with_codes_only(
    stack: Stack, settings: Settings
) -> None:
    client_id = await register(stack, settings)
    assessment = await assess(stack, settings, client_id, FOOD)
    case = await the_case(stack, settings, client_id, assessment_id=assessment["id"])
    intake = stack.api["intake"]
    base = f"/v1/clients/{client_id}"
    flag = (
        await intake.post(f"{base}/flags", json={"flag_type": "legal", "severity": "low"})
    ).json()
    consent = await intake.post(f"{base}/consents", json=REFERRAL_CONSENT)
    assert consent.status_code == 201, consent.text
    # A consent of protected classes only: the timeline never shows that it exists.
    hidden = await intake.post(
        f"{base}/consents", json={**REFERRAL_CONSENT, "data_classes": ["domestic_violence"]}
    )
    assert hidden.status_code == 201, hidden.text
    path = f"/v1/cases/{case['id']}/timeline"
    # (FlagAcknowledged has a handler too; intake does not publish it yet.)
    expected = {"case.opened", "review.scheduled", "client.assessed", "flag.raised",
                "consent.granted"}  # fmt: skip

    seen: set[str] = set()

    async def complete() -> list[dict[str, Any]] | None:
        entries: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:  # two at a time: the cursor carries the order
            params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = (await call(stack, settings, ALICE, "GET", path, params=params)).json()
            entries += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        seen.clear()
        seen.update(e["kind"] for e in entries)
        return entries if seen >= expected else None

    try:
        entries = await eventually(complete)
    except AssertionError:
        raise AssertionError(f"missing from the timeline: {expected - seen}") from None

    keys = [(e["occurred_at"], e["id"]) for e in entries]
    assert keys == sorted(keys, key=lambda k: (datetime.fromisoformat(k[0]), k[1]))
    assert len({e["id"] for e in entries}) == len(entries)
    by_kind = {e["kind"]: e for e in entries}
    assert by_kind["client.assessed"]["codes"] == {"risk_level": assessment["risk_level"]}
    assert by_kind["client.assessed"]["subject_id"] == assessment["id"]
    assert by_kind["client.assessed"]["source"] == "intake"
    assert by_kind["flag.raised"]["codes"] == {"severity": "low", "crisis": "false"}
    assert by_kind["consent.granted"]["subject_id"] == consent.json()["id"]
    assert by_kind["flag.raised"]["subject_id"] == flag["id"]
    assert "legal" not in json.dumps(entries)

    async def hidden_known() -> bool | None:
        known = await admin_fetchval(
            settings,
            "SELECT count(*) FROM planning.consent_facts WHERE consent_id = $1",
            uuid.UUID(hidden.json()["id"]),
        )
        return True if known else None

    await eventually(hidden_known)  # planning has handled its protected event
    everything = (await call(stack, settings, ALICE, "GET", path, params={"limit": 100})).json()
    assert hidden.json()["id"] not in json.dumps(everything)
    assert "domestic_violence" not in json.dumps(everything)
    newest = (await call(stack, settings, ALICE, "GET", path, params={"order": "desc"})).json()
    assert [e["id"] for e in newest["items"]] == [e["id"] for e in reversed(entries)]
    bad = await call(stack, settings, ALICE, "GET", path, params={"cursor": "not-a-cursor"})
    problem(bad, 400, "invalid-cursor")
    problem(await call(stack, settings, SUE, "GET", path), 404, "not-found")


async def test_protected_needs_are_for_the_case_s_own_worker_and_supervisors_only(
    stack: Stack, settings: Settings
) -> None:
    client_id = await register(stack, settings)
    answers = {**FOOD, "danger_at_home": "yes"}
    assessment = await assess(stack, settings, client_id, answers)

    async def with_protected() -> dict[str, Any] | None:
        for case in await cases_of(stack, settings, client_id, SAM):
            # Both halves: the general needs (ClientAssessed) and the protected ones
            # (ProtectedNeedsAssessed) travel on two topics and arrive in either order.
            data_classes = {n["data_class"] for n in case["needs"]}
            both = None in data_classes and len(data_classes) > 1
            if case["assessment_id"] == assessment["id"] and both:
                return case
        return None

    seen_by_sam = await eventually(with_protected)
    protected = [n for n in seen_by_sam["needs"] if n["data_class"]]
    assert {n["category"] for n in seen_by_sam["needs"] if not n["data_class"]} == {
        "food_insecurity"
    }
    case_id = seen_by_sam["id"]
    general = [n for n in seen_by_sam["needs"] if not n["data_class"]]
    # Unassigned: the registering caseworker reaches the case, not its protected needs; a
    # supervisor of another team breaking the glass neither.
    by_alice = (await call(stack, settings, ALICE, "GET", f"/v1/cases/{case_id}")).json()
    assert by_alice["needs"] == general
    glass = await call(
        stack, settings, SUE, "GET", f"/v1/cases/{case_id}",
        headers={"X-Break-Glass-Reason": "Crisis line call, assigned worker unreachable"},
    )  # fmt: skip
    assert glass.status_code == 200, glass.text
    assert glass.json()["needs"] == general
    await assign(stack, settings, case_id, ALICE, SAM)
    mine = (await call(stack, settings, ALICE, "GET", f"/v1/cases/{case_id}")).json()
    assert [n for n in mine["needs"] if n["data_class"]] == protected
    # Never in planning's events.
    rows = await fetch(
        settings, "SELECT payload::text AS p FROM planning.outbox WHERE payload->>'case_id' = $1",
        case_id,
    )  # fmt: skip
    assert rows and not any(n["category"] in row["p"] for row in rows for n in protected)
