"""Case transfers on planning: asked by the case's side, answered by the receiving side.

The cast, in an organisation of this module's own: carl and erin are caseworkers of team-a,
sam supervises it; dora is a caseworker of team-b, tom supervises it; inez is inactive, nate
has no team; olaf works in another organisation. Each test opens a case of its own (a client
carl registered at intake, its case opened by hand and assigned to carl by sam).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest

from services.planning.cases.lookup import Case
from services.planning.transfers.service import request_refusal
from services.planning.workers.models import WorkerPublic
from shared.auth.principal import Principal, Role
from shared.settings import Settings
from tests import support
from tests.support import VALID_CLIENT, Stack, User, bearer, eventually

ORG, OTHER_ORG = "org-xfer", "org-xfer-b"
ADMIN = User("xfer-admin", ("admin",), ORG, None)
OTHER_ADMIN = User("xfer-admin-b", ("admin",), OTHER_ORG, None)
CARL = User("carl", ("caseworker",), ORG, "team-a")
ERIN = User("erin", ("caseworker",), ORG, "team-a")
SAM = User("sam", ("supervisor",), ORG, "team-a")
DORA = User("dora", ("caseworker",), ORG, "team-b")
TOM = User("tom", ("supervisor",), ORG, "team-b")


async def call(
    stack: Stack, settings: Settings, user: User, method: str, path: str, **kwargs: Any
) -> tuple[httpx.Response, str]:
    request_id = str(uuid.uuid4())
    headers = {"X-Request-ID": request_id, **bearer(settings, user), **kwargs.pop("headers", {})}
    response = await stack.api["planning"].request(method, path, headers=headers, **kwargs)
    return response, request_id


async def fetch(settings: Settings, query: str, *args: Any) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(settings.database_url)
    try:
        return list(await connection.fetch(query, *args))
    finally:
        await connection.close()


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"] == f"https://casework.dev/problems/{slug}"
    return body


@pytest.fixture(scope="module")
async def directory(stack: Stack, settings: Settings) -> None:
    workers: list[tuple[User, str, dict[str, Any]]] = [
        (ADMIN, "carl", {"team_id": "team-a"}),
        (ADMIN, "erin", {"team_id": "team-a"}),
        (ADMIN, "sam", {"team_id": "team-a", "role": "supervisor"}),
        (ADMIN, "dora", {"team_id": "team-b", "languages": ["pt"]}),
        (ADMIN, "tom", {"team_id": "team-b", "role": "supervisor"}),
        (ADMIN, "inez", {"team_id": "team-b", "active": False}),
        (ADMIN, "nate", {"team_id": None}),
        (OTHER_ADMIN, "olaf", {"team_id": "team-b"}),
    ]
    for admin, worker_id, fields in workers:
        body = {"display_name": worker_id.title(), "capacity_points": 20, **fields}
        response, _ = await call(
            stack, settings, admin, "PUT", f"/v1/workers/{worker_id}", json=body
        )
        assert response.status_code == 201, response.text


async def open_case(stack: Stack, settings: Settings) -> tuple[str, str]:
    """A client carl registered at intake, its case opened in planning and assigned to carl by
    sam; the risk level, language and needs an assessment would have given it (a general need
    and a protected one) written directly. Returns (client id, case id)."""
    registered = await stack.api["intake"].post(
        "/v1/clients", json=VALID_CLIENT, headers=bearer(settings, CARL)
    )
    assert registered.status_code == 201, registered.text
    client_id = registered.json()["id"]
    case_id = await support.open_case(stack, settings, client_id, CARL)
    assigned, _ = await call(
        stack, settings, SAM, "PUT", f"/v1/cases/{case_id}/assignment", json={"worker_id": "carl"}
    )
    assert assigned.status_code == 200, assigned.text
    now = datetime.now(UTC)
    connection = await asyncpg.connect(settings.database_url)
    try:
        await connection.execute(
            "UPDATE planning.cases SET risk_level = 'high', preferred_language = 'pt' "
            "WHERE id = $1",
            uuid.UUID(case_id),
        )
        await connection.execute(
            "INSERT INTO planning.case_needs (case_id, category, severity, data_class, "
            "updated_at) VALUES ($1, 'housing', 'high', NULL, $2), "
            "($1, 'domestic_violence', 'high', 'domestic_violence', $2)",
            uuid.UUID(case_id), now,
        )  # fmt: skip
    finally:
        await connection.close()
    return client_id, case_id


async def outbox(settings: Settings, client_id: str, event_type: str) -> list[dict[str, Any]]:
    rows = await fetch(
        settings,
        "SELECT payload FROM planning.outbox WHERE aggregateid = $1 AND type = $2 "
        "ORDER BY created_at, id",
        client_id,
        f"org.casework.planning.{event_type}.v1",
    )
    return [
        json.loads(r["payload"]) if isinstance(r["payload"], str) else r["payload"] for r in rows
    ]


async def assignments_to(
    settings: Settings, client_id: str, worker_id: str
) -> list[dict[str, Any]]:
    """The CaseAssigned events of the client's case that gave it to `worker_id`."""
    events = await outbox(settings, client_id, "case.assigned")
    return [event for event in events if event["worker_id"] == worker_id]


async def audit(settings: Settings, request_id: str) -> list[tuple[str, str, str | None]]:
    rows = await fetch(
        settings,
        "SELECT action, outcome, client_id FROM planning.audit_log WHERE request_id = $1 "
        "ORDER BY seq",
        request_id,
    )
    return [
        (r["action"], r["outcome"], str(r["client_id"]) if r["client_id"] else None) for r in rows
    ]


async def case_row(settings: Settings, case_id: str) -> asyncpg.Record:
    [row] = await fetch(
        settings,
        "SELECT worker_id, team_id, version FROM planning.cases WHERE id = $1",
        uuid.UUID(case_id),
    )
    return row


async def ask(
    stack: Stack, settings: Settings, user: User, case_id: str, to: str
) -> tuple[httpx.Response, str]:
    return await call(
        stack, settings, user, "POST", f"/v1/cases/{case_id}/transfers", json={"to_worker_id": to}
    )


async def reads_client_at_intake(
    stack: Stack, settings: Settings, user: User, client_id: str
) -> int:
    response = await stack.api["intake"].get(
        f"/v1/clients/{client_id}", headers=bearer(settings, user)
    )
    return response.status_code


async def test_an_accepted_transfer_moves_the_case_and_the_client_s_access(
    stack: Stack, settings: Settings, directory: None
) -> None:
    client_id, case_id = await open_case(stack, settings)
    assert await reads_client_at_intake(stack, settings, DORA, client_id) == 404

    asked, ask_request = await ask(stack, settings, CARL, case_id, "dora")

    assert asked.status_code == 201, asked.text
    transfer = asked.json()
    transfer_id = transfer["id"]
    assert asked.headers["Location"] == f"/v1/transfers/{transfer_id}"
    assert {k: transfer[k] for k in ("case_id", "from_worker_id", "from_team_id", "to_worker_id",
                                     "to_team_id", "status", "requested_by", "answered_by")} == {
        "case_id": case_id, "from_worker_id": "carl", "from_team_id": "team-a",
        "to_worker_id": "dora", "to_team_id": "team-b", "status": "pending",
        "requested_by": "carl", "answered_by": None,
    }  # fmt: skip
    assert "client_id" not in transfer
    assert await audit(settings, ask_request) == [("transfer.request", "allowed", client_id)]
    [requested] = await outbox(settings, client_id, "transfer.requested")
    assert (requested["transfer_id"], requested["to_worker_id"], requested["from_worker_id"]) == (
        transfer_id,
        "dora",
        "carl",
    )
    assert (await case_row(settings, case_id))["worker_id"] == "carl", "nothing moves yet"

    # The receiving worker sees it, with what she needs to decide and nothing more.
    incoming, _ = await call(
        stack, settings, DORA, "GET", "/v1/transfers",
        params={"direction": "incoming", "status": "pending"},
    )  # fmt: skip
    assert [t["id"] for t in incoming.json()["items"]] == [transfer_id]
    outgoing, _ = await call(
        stack, settings, CARL, "GET", "/v1/transfers", params={"direction": "outgoing"}
    )
    assert transfer_id in [t["id"] for t in outgoing.json()["items"]]
    not_mine, _ = await call(stack, settings, ERIN, "GET", "/v1/transfers")
    assert transfer_id not in [t["id"] for t in not_mine.json()["items"]]
    detail, detail_request = await call(
        stack, settings, DORA, "GET", f"/v1/transfers/{transfer_id}"
    )
    assert detail.status_code == 200, detail.text
    summary = detail.json()["case"]
    [due] = await fetch(
        settings, "SELECT next_review_due_at FROM planning.cases WHERE id = $1", uuid.UUID(case_id)
    )
    assert datetime.fromisoformat(summary.pop("next_review_due_at")) == due[0]  # by the cadence
    assert summary == {
        "case_id": case_id, "status": "open", "risk_level": "high", "preferred_language": "pt",
        "need_categories": ["housing"],
    }  # fmt: skip
    assert client_id not in detail.text and "domestic" not in detail.text
    assert await audit(settings, detail_request) == [("transfer.read", "allowed", client_id)]
    work, _ = await call(stack, settings, DORA, "GET", "/v1/work")
    [item] = [i for i in work.json() if i["subject_id"] == transfer_id]
    assert (item["kind"], item["reason"], item["overdue"]) == (
        "transfer_incoming",
        "transfer_to_answer",
        False,
    )
    carl_work, _ = await call(stack, settings, CARL, "GET", "/v1/work")
    [mine] = [i for i in carl_work.json() if i["subject_id"] == transfer_id]
    assert mine["kind"] == "transfer_outgoing" and mine["priority"] > item["priority"]

    accepted, accept_request = await call(
        stack, settings, DORA, "POST", f"/v1/transfers/{transfer_id}/acceptance"
    )

    assert accepted.status_code == 200, accepted.text
    assert (accepted.json()["status"], accepted.json()["answered_by"]) == ("accepted", "dora")
    assert await audit(settings, accept_request) == [("transfer.answer", "allowed", client_id)]
    row = await case_row(settings, case_id)
    assert (row["worker_id"], row["team_id"], row["version"]) == ("dora", "team-b", 3)
    [assigned] = await assignments_to(settings, client_id, "dora")
    assert (assigned["case_id"], assigned["worker_id"], assigned["team_id"]) == (
        case_id,
        "dora",
        "team-b",
    )
    assert (assigned["organization_id"], assigned["assigned_by"]) == (ORG, "dora")
    [answered] = await outbox(settings, client_id, "transfer.answered")
    assert (answered["answer"], answered["answered_by"]) == ("accepted", "dora")
    kinds = await fetch(
        settings,
        "SELECT kind FROM planning.case_timeline WHERE case_id = $1 AND occurred_at >= $2 "
        "ORDER BY occurred_at, kind",
        uuid.UUID(case_id),
        datetime.fromisoformat(transfer["requested_at"]),
    )
    assert [k["kind"] for k in kinds] == [
        "transfer.requested",
        "case.assigned",
        "transfer.accepted",
    ]

    # Access follows the case through CaseAssigned, read off the broker by intake.
    async def moved() -> bool | None:
        dora = await reads_client_at_intake(stack, settings, DORA, client_id)
        carl = await reads_client_at_intake(stack, settings, CARL, client_id)
        return True if (dora, carl) == (200, 404) else None

    await eventually(moved)
    again, _ = await call(stack, settings, DORA, "POST", f"/v1/transfers/{transfer_id}/acceptance")
    assert_problem(again, 409, "transfer-not-pending")
    assert len(await assignments_to(settings, client_id, "dora")) == 1


async def test_a_declined_transfer_leaves_the_case_where_it_was(
    stack: Stack, settings: Settings, directory: None
) -> None:
    client_id, case_id = await open_case(stack, settings)
    asked, _ = await ask(stack, settings, SAM, case_id, "dora")  # a supervisor of the case's team
    assert asked.status_code == 201, asked.text
    transfer_id = asked.json()["id"]
    path = f"/v1/transfers/{transfer_id}/declination"

    no_reason, _ = await call(stack, settings, TOM, "POST", path, json={})
    assert_problem(no_reason, 422, "validation-error")
    declined, _ = await call(stack, settings, TOM, "POST", path, json={"reason": "at_capacity"})

    assert declined.status_code == 200, declined.text
    assert (declined.json()["status"], declined.json()["answered_by"]) == ("declined", "tom")
    assert declined.json()["decline_reason"] == "at_capacity"
    assert (await case_row(settings, case_id))["worker_id"] == "carl"
    assert await assignments_to(settings, client_id, "dora") == []
    [answered] = await outbox(settings, client_id, "transfer.answered")
    assert (answered["answer"], answered["answered_by"]) == ("declined", "tom")
    assert "at_capacity" not in json.dumps(answered), "the reason stays in planning"
    listed, _ = await call(stack, settings, CARL, "GET", f"/v1/cases/{case_id}/transfers")
    assert [(t["id"], t["status"], t["requested_by"]) for t in listed.json()] == [
        (transfer_id, "declined", "sam")
    ]
    accept_late, _ = await call(
        stack, settings, DORA, "POST", f"/v1/transfers/{transfer_id}/acceptance"
    )
    assert_problem(accept_late, 409, "transfer-not-pending")
    # Once answered, a new transfer of the case may be asked.
    again, _ = await ask(stack, settings, CARL, case_id, "erin")
    assert again.status_code == 201, again.text


async def test_a_transfer_is_revoked_by_its_requester_only_while_pending(
    stack: Stack, settings: Settings, directory: None
) -> None:
    client_id, case_id = await open_case(stack, settings)
    asked, _ = await ask(stack, settings, CARL, case_id, "dora")
    transfer_id = asked.json()["id"]
    path = f"/v1/transfers/{transfer_id}/revocation"

    by_receiver, receiver_request = await call(stack, settings, DORA, "POST", path)
    assert_problem(by_receiver, 404, "not-found")
    assert await audit(settings, receiver_request) == [("transfer.revoke", "denied", client_id)]
    revoked, _ = await call(stack, settings, CARL, "POST", path)

    assert revoked.status_code == 200, revoked.text
    assert (revoked.json()["status"], revoked.json()["answered_by"]) == ("revoked", "carl")
    [answered] = await outbox(settings, client_id, "transfer.answered")
    assert answered["answer"] == "revoked"
    twice, _ = await call(stack, settings, CARL, "POST", path)
    assert_problem(twice, 409, "transfer-not-pending")
    accept_revoked, _ = await call(
        stack, settings, DORA, "POST", f"/v1/transfers/{transfer_id}/acceptance"
    )
    assert_problem(accept_revoked, 409, "transfer-not-pending")
    assert (await case_row(settings, case_id))["worker_id"] == "carl"
    incoming, _ = await call(
        stack, settings, DORA, "GET", "/v1/transfers", params={"status": "pending"}
    )
    assert transfer_id not in [t["id"] for t in incoming.json()["items"]]


@pytest.mark.parametrize(
    ("user", "to", "status", "code"),
    [
        (CARL, "carl", 422, "transfer-to-self"),
        (SAM, "carl", 422, "transfer-to-owner"),
        (CARL, "olaf", 422, "unknown-worker"),  # only in another organisation's directory
        (CARL, "nobody-at-all", 422, "unknown-worker"),
        (CARL, "inez", 422, "worker-inactive"),
        (CARL, "nate", 422, "worker-without-team"),
        (ERIN, "dora", 404, "not-found"),  # a teammate: the case is not in her caseload
        (TOM, "dora", 404, "not-found"),  # another team's supervisor
    ],
)
async def test_a_transfer_nobody_may_ask_for_is_refused_and_writes_nothing(
    stack: Stack, settings: Settings, directory: None, user: User, to: str, status: int, code: str
) -> None:
    client_id, case_id = await open_case(stack, settings)

    refused, request_id = await ask(stack, settings, user, case_id, to)

    problem = assert_problem(refused, status, code)
    if status == 422:
        assert problem["errors"][0]["field"] == "body.to_worker_id"
        assert problem["errors"][0]["code"] == code
        assert "Nothing was changed" in problem["detail"]
    assert await audit(settings, request_id) == [("transfer.request", "denied", client_id)]
    rows = await fetch(
        settings, "SELECT 1 FROM planning.case_transfers WHERE case_id = $1", uuid.UUID(case_id)
    )
    assert rows == []
    assert await outbox(settings, client_id, "transfer.requested") == []


async def test_one_pending_transfer_per_case_and_nobody_answers_someone_else_s(
    stack: Stack, settings: Settings, directory: None
) -> None:
    client_id, case_id = await open_case(stack, settings)
    asked, _ = await ask(stack, settings, CARL, case_id, "dora")
    transfer_id = asked.json()["id"]

    second, _ = await ask(stack, settings, SAM, case_id, "erin")
    assert transfer_id in assert_problem(second, 409, "transfer-pending")["detail"]

    for user in (ERIN, SAM, CARL):  # a teammate, the sending team's supervisor, the requester
        for answer, body in (("acceptance", None), ("declination", {"reason": "other"})):
            refused, request_id = await call(
                stack, settings, user, "POST", f"/v1/transfers/{transfer_id}/{answer}", json=body
            )
            assert_problem(refused, 404, "not-found")
            assert await audit(settings, request_id) == [("transfer.answer", "denied", client_id)]
        seen, _ = await call(stack, settings, ERIN, "GET", f"/v1/transfers/{transfer_id}")
        assert_problem(seen, 404, "not-found")
    unknown, unknown_request = await call(
        stack, settings, DORA, "POST", f"/v1/transfers/{uuid.uuid4()}/acceptance"
    )
    assert_problem(unknown, 404, "not-found")
    assert await audit(settings, unknown_request) == [("transfer.answer", "not_found", None)]
    pending = await fetch(
        settings,
        "SELECT status FROM planning.case_transfers WHERE case_id = $1",
        uuid.UUID(case_id),
    )
    assert [r["status"] for r in pending] == ["pending"]
    assert (await case_row(settings, case_id))["worker_id"] == "carl"


async def test_racing_requests_and_answers_leave_one_outcome(
    stack: Stack, settings: Settings, directory: None
) -> None:
    client_id, case_id = await open_case(stack, settings)

    asked = await asyncio.gather(
        ask(stack, settings, CARL, case_id, "dora"), ask(stack, settings, SAM, case_id, "erin")
    )

    assert sorted(response.status_code for response, _ in asked) == [201, 409]
    [transfer] = [response.json() for response, _ in asked if response.status_code == 201]
    path = f"/v1/transfers/{transfer['id']}"
    receiver = DORA if transfer["to_worker_id"] == "dora" else ERIN
    answered = await asyncio.gather(
        call(stack, settings, receiver, "POST", f"{path}/acceptance"),
        call(stack, settings, transfer_requester(transfer), "POST", f"{path}/revocation"),
    )
    assert sorted(response.status_code for response, _ in answered) == [200, 409]
    [winner] = [response.json() for response, _ in answered if response.status_code == 200]
    events = await outbox(settings, client_id, "transfer.answered")
    assert [event["answer"] for event in events] == [winner["status"]]
    owner = (await case_row(settings, case_id))["worker_id"]
    assert owner == (receiver.subject if winner["status"] == "accepted" else "carl")


def transfer_requester(transfer: dict[str, Any]) -> User:
    return CARL if transfer["requested_by"] == "carl" else SAM


# --- the rule alone (no stack) ----------------------------------------------------------------


def a_case(**changes: Any) -> Case:
    values: dict[str, Any] = {
        "id": uuid.uuid4(), "client_id": uuid.uuid4(), "organization_id": ORG,
        "team_id": "team-a", "worker_id": "carl", "status": "open", "status_before_hold": None,
        "risk_level": None, "preferred_language": None, "source": "manual",
        "assessment_id": None, "opened_by": "carl", "opened_at": datetime.now(UTC),
        "closed_at": None, "closed_by": None, "closure_reason": None, "destination_code": None,
        "next_review_due_at": None, "last_contact_at": None, "version": 1,
        "updated_at": datetime.now(UTC), **changes,
    }  # fmt: skip
    return Case(**values)


def a_worker(**changes: Any) -> WorkerPublic:
    values: dict[str, Any] = {
        "worker_id": "dora", "organization_id": ORG, "team_id": "team-b",
        "display_name": "Dora", "role": "caseworker", "languages": [], "capacity_points": 0,
        "active": True, "version": 1, "created_at": "2026-11-29T10:00:00Z",
        "updated_at": "2026-11-29T10:00:00Z", **changes,
    }  # fmt: skip
    return WorkerPublic.model_validate(values)


def principal(subject: str, role: Role, team_id: str | None) -> Principal:
    return Principal(subject, frozenset({role}), ORG, team_id)


@pytest.mark.parametrize(
    ("case", "to", "target", "by", "code"),
    [
        (a_case(), "dora", a_worker(), principal("carl", Role.CASEWORKER, "team-a"), None),
        (a_case(), "dora", a_worker(), principal("sam", Role.SUPERVISOR, "team-a"), None),
        (a_case(worker_id=None), "dora", a_worker(), principal("sam", Role.SUPERVISOR, "team-a"), None),
        (a_case(worker_id=None), "dora", a_worker(), principal("carl", Role.CASEWORKER, "team-a"),
         "not-case-owner"),
        (a_case(), "dora", a_worker(), principal("sam", Role.SUPERVISOR, "team-b"), "not-case-owner"),
        (a_case(status="closed"), "dora", a_worker(), principal("carl", Role.CASEWORKER, "team-a"),
         "case-closed"),
        (a_case(), "carl", None, principal("carl", Role.CASEWORKER, "team-a"), "transfer-to-self"),
        (a_case(), "carl", None, principal("sam", Role.SUPERVISOR, "team-a"), "transfer-to-owner"),
        (a_case(), "dora", None, principal("carl", Role.CASEWORKER, "team-a"), "unknown-worker"),
        (a_case(), "dora", a_worker(active=False), principal("carl", Role.CASEWORKER, "team-a"),
         "worker-inactive"),
        (a_case(), "dora", a_worker(team_id=None), principal("carl", Role.CASEWORKER, "team-a"),
         "worker-without-team"),
    ],
)  # fmt: skip
def test_who_may_ask_to_transfer_a_case_and_to_whom(
    case: Case, to: str, target: WorkerPublic | None, by: Principal, code: str | None
) -> None:
    refused = request_refusal(case, to, target, by)

    assert (refused.code if refused else None) == code
