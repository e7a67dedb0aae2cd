"""What the plans and notes tests share: a client with a case in planning, calls as a user,
the case's reassignment, and the planning events read off the broker.

The case is put in place in planning's own tables (with its needs), as the assessment that
would open it is the cases tests' subject: these tests then depend on the case's row only.
An open case already there (opened from an event) is kept: the insert yields to the one-open-
case-per-client index exactly as the opening from an assessment does.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx

from shared.events.contracts import Topic
from shared.settings import Settings
from tests.support import VALID_CLIENT, Stack, User, bearer, enrol_worker, eventually, read_topic

ALICE = User("alice", ("caseworker",))
BOB = User("bob", ("caseworker",))
SAM = User("sam", ("supervisor",))
SID = User("sid", ("supervisor",))  # a second supervisor of team a
SUE = User("sue", ("supervisor",), team_id="team-b")
TWIN = User("alice", ("caseworker",), organization_id="org-b")
AUDREY = User("audrey", ("auditor",), team_id=None)


async def call(
    stack: Stack, settings: Settings, user: User, method: str, path: str, **kwargs: Any
) -> httpx.Response:
    headers = {**bearer(settings, user), **kwargs.pop("headers", {})}
    return await stack.api["planning"].request(method, path, headers=headers, **kwargs)


async def register_client(stack: Stack, settings: Settings, by: User = ALICE) -> str:
    """A client `by` registers at intake, once planning knows it (and who may see it)."""
    response = await stack.api["intake"].post(
        "/v1/clients",
        json={**VALID_CLIENT, "family_name": f"Planner{uuid.uuid4().hex[:8]}"},
        headers=bearer(settings, by),
    )
    assert response.status_code == 201, response.text
    client_id: str = response.json()["id"]

    async def known() -> bool | None:
        count = await fetchval(
            settings, "SELECT count(*) FROM planning.client_access WHERE client_id = $1",
            uuid.UUID(client_id),
        )  # fmt: skip
        return True if count else None

    await eventually(known)
    return client_id


async def ensure_case(
    settings: Settings,
    client_id: str,
    *,
    needs: Iterable[str] = ("housing", "employment"),
    worker_id: str | None = "alice",
    organization_id: str = "org-a",
    team_id: str = "team-a",
) -> str:
    """The client's open case in the organisation (put in place if there is none), with
    `needs` among its needs."""
    connection = await asyncpg.connect(settings.database_url)
    try:
        now = datetime.now(UTC)
        await connection.execute(
            "INSERT INTO planning.cases (id, client_id, organization_id, team_id, worker_id, "
            "status, source, opened_by, opened_at, updated_at) "
            "VALUES ($1, $2, $3, $4, $5, 'open', 'manual', 'alice', $6, $6) "
            "ON CONFLICT (client_id, organization_id) WHERE status <> 'closed' DO NOTHING",
            uuid.uuid4(), uuid.UUID(client_id), organization_id, team_id, worker_id, now,
        )  # fmt: skip
        case_id = await connection.fetchval(
            "SELECT id FROM planning.cases WHERE client_id = $1 AND organization_id = $2 "
            "AND status <> 'closed'",
            uuid.UUID(client_id), organization_id,
        )  # fmt: skip
        for category in needs:
            await connection.execute(
                "INSERT INTO planning.case_needs (case_id, category, severity, updated_at) "
                "VALUES ($1, $2, 'moderate', $3) ON CONFLICT DO NOTHING",
                case_id, category, now,
            )  # fmt: skip
    finally:
        await connection.close()
    return str(case_id)


async def reassign(
    stack: Stack, settings: Settings, *, case_id: str, client_id: str, to: User
) -> None:
    """The case's assignment to `to` (a teammate), by sam, on whichever assignment path
    planning serves (by case since the cases work, by client before it)."""
    await enrol_worker(stack, settings, to)
    served = (await stack.api["planning"].get("/openapi.json")).json()["paths"]
    by_case = "/v1/cases/{case_id}/assignment" in served
    target = case_id if by_case else client_id
    response = await call(
        stack, settings, SAM, "PUT", f"/v1/cases/{target}/assignment",
        json={"worker_id": to.subject},
    )  # fmt: skip
    assert response.status_code == 200, response.text

    async def moved() -> bool | None:
        owner = await fetchval(
            settings, "SELECT owner_id FROM planning.client_access WHERE client_id = $1",
            uuid.UUID(client_id),
        )  # fmt: skip
        return True if owner == to.subject else None

    await eventually(moved)


async def fetchval(settings: Settings, query: str, *args: Any) -> Any:
    connection = await asyncpg.connect(settings.database_url)
    try:
        return await connection.fetchval(query, *args)
    finally:
        await connection.close()


async def events_of(
    settings: Settings, event_type: str, *, where: dict[str, str], count: int = 1
) -> list[dict[str, Any]]:
    """The payloads of `event_type` on planning's case topic whose fields match `where`."""

    def matching(records: list[Any]) -> list[dict[str, Any]]:
        found = []
        for record in records:
            kind = dict(record.headers).get("ce_type")
            payload = json.loads(record.value)
            if kind == event_type.encode() and all(payload.get(k) == v for k, v in where.items()):
                found.append(payload)
        return found

    records = await read_topic(
        settings, Topic.PLANNING_CASES, until=lambda rs: len(matching(rs)) >= count
    )
    return matching(records)


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"].endswith("/" + code), body
    return body
