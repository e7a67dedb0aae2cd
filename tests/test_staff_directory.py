"""The staff directory (`/v1/workers` on planning) and the rule it serves: an assignment names an
active worker of the supervisor's own organisation and team.

The cast, in organisations of this module's own (so no other test's workers or syncs meet
them): ada administers org-dir, olga org-dir-b; sam supervises org-dir's team-a, sue team-b;
carl is a caseworker of team-a; an identity-provider sync client works for org-sync.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import ConsumerRecord

from services.planning.cases.service import refusal
from services.planning.workers.models import WorkerPublic
from services.planning.workers.service import in_scope, scope_clause
from shared.auth.facts import ClientFacts
from shared.auth.policy import Scope
from shared.auth.principal import Principal, Role
from shared.events.contracts import CaseAssigned, Topic
from shared.settings import Settings
from tests.support import (
    VALID_CLIENT,
    Stack,
    User,
    bearer,
    eventually,
    header,
    open_case,
    read_topic,
)

ORG, OTHER_ORG, SYNC_ORG = "org-dir", "org-dir-b", "org-sync"
ADA = User("ada", ("admin",), ORG, None)
OLGA = User("olga", ("admin",), OTHER_ORG, None)
SAM = User("sam", ("supervisor",), ORG, "team-a")
SUE = User("sue", ("supervisor",), ORG, "team-b")
CARL = User("carl", ("caseworker",), ORG, "team-a")
IDP = User("idp-sync", ("integration",), SYNC_ORG, None)
SYNC_ADMIN = User("sync-admin", ("admin",), SYNC_ORG, None)
REFUSED_ADMIN = User("refused-admin", ("admin",), "org-sync-refused", None)


def worker_body(team_id: str | None = "team-a", **changes: Any) -> dict[str, Any]:
    return {
        "team_id": team_id,
        "display_name": "Carl Mendes",
        "languages": ["pt", "EN"],
        "capacity_points": 20,
        "active": True,
        **changes,
    }


async def call(
    stack: Stack, settings: Settings, user: User, method: str, path: str, **kwargs: Any
) -> tuple[httpx.Response, str]:
    """Call planning as `user` with a fresh request id; return both."""
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


async def audit_rows(settings: Settings, request_id: str) -> list[asyncpg.Record]:
    return await fetch(
        settings, "SELECT * FROM planning.audit_log WHERE request_id = $1 ORDER BY seq", request_id
    )


async def put_worker(
    stack: Stack, settings: Settings, admin: User, worker_id: str, body: dict[str, Any]
) -> dict[str, Any]:
    """Create a worker as `admin` (or replace it, with the current ETag)."""
    current, _ = await call(stack, settings, admin, "GET", f"/v1/workers/{worker_id}")
    headers = {"If-Match": current.headers["ETag"]} if current.status_code == 200 else {}
    response, _ = await call(
        stack, settings, admin, "PUT", f"/v1/workers/{worker_id}", json=body, headers=headers
    )
    assert response.status_code in (200, 201), response.text
    created: dict[str, Any] = response.json()
    return created


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"] == f"https://casework.dev/problems/{slug}"
    assert body["status"] == status
    return body


# --- maintaining the directory ---------------------------------------------------------------


async def test_an_admin_creates_reads_and_replaces_a_worker_with_etags(
    stack: Stack, settings: Settings
) -> None:
    created, create_request = await call(
        stack, settings, ADA, "PUT", "/v1/workers/w-etag", json=worker_body()
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["worker_id"] == "w-etag" and body["organization_id"] == ORG
    assert (body["team_id"], body["display_name"]) == ("team-a", "Carl Mendes")
    assert body["languages"] == ["pt", "en"]  # codes are stored lower-case
    assert (body["capacity_points"], body["active"], body["version"]) == (20, True, 1)
    assert created.headers["Location"] == "/v1/workers/w-etag"
    first_etag = created.headers["ETag"]
    [row] = await audit_rows(settings, create_request)
    assert (row["action"], row["resource_type"], row["resource_id"]) == (
        "worker.write",
        "worker",
        "w-etag",
    )
    assert (row["outcome"], row["client_id"], row["actor_id"]) == ("allowed", None, "ada")

    read, read_request = await call(stack, settings, ADA, "GET", "/v1/workers/w-etag")
    assert read.status_code == 200 and read.json() == body
    assert read.headers["ETag"] == first_etag
    [row] = await audit_rows(settings, read_request)
    assert (row["action"], row["outcome"], row["client_id"]) == ("worker.read", "allowed", None)

    # A retried create (the same body, no If-Match) changes nothing and says so.
    retried, _ = await call(stack, settings, ADA, "PUT", "/v1/workers/w-etag", json=worker_body())
    assert retried.status_code == 200 and retried.json()["version"] == 1
    assert retried.headers["ETag"] == first_etag

    changed = worker_body(capacity_points=30)
    blind, blind_request = await call(
        stack, settings, ADA, "PUT", "/v1/workers/w-etag", json=changed
    )
    assert "If-Match" in assert_problem(blind, 428, "precondition-required")["detail"]
    [row] = await audit_rows(settings, blind_request)
    assert row["outcome"] == "precondition_failed"

    replaced, _ = await call(
        stack, settings, ADA, "PUT", "/v1/workers/w-etag", json=changed,
        headers={"If-Match": first_etag},
    )  # fmt: skip
    assert replaced.status_code == 200, replaced.text
    assert (replaced.json()["capacity_points"], replaced.json()["version"]) == (30, 2)
    assert replaced.headers["ETag"] != first_etag

    stale, stale_request = await call(
        stack, settings, ADA, "PUT", "/v1/workers/w-etag", json=worker_body(active=False),
        headers={"If-Match": first_etag},
    )  # fmt: skip
    assert "changed since you read it" in assert_problem(stale, 412, "precondition-failed")["title"]
    [row] = await audit_rows(settings, stale_request)
    assert (row["action"], row["outcome"]) == ("worker.write", "precondition_failed")
    still, _ = await call(stack, settings, ADA, "GET", "/v1/workers/w-etag")
    assert (still.json()["active"], still.json()["version"]) == (True, 2)

    patched, _ = await call(
        stack, settings, ADA, "PATCH", "/v1/workers/w-etag", json={"languages": ["es"]},
        headers={"If-Match": replaced.headers["ETag"]},
    )  # fmt: skip
    assert patched.status_code == 200, patched.text
    assert (patched.json()["languages"], patched.json()["capacity_points"]) == (["es"], 30)
    assert patched.json()["version"] == 3
    unconditional, _ = await call(
        stack, settings, ADA, "PATCH", "/v1/workers/w-etag", json={"active": False}
    )
    assert_problem(unconditional, 428, "precondition-required")
    stale_patch, _ = await call(
        stack, settings, ADA, "PATCH", "/v1/workers/w-etag", json={"active": False},
        headers={"If-Match": replaced.headers["ETag"]},
    )  # fmt: skip
    assert_problem(stale_patch, 412, "precondition-failed")

    # If-Match on a worker that does not exist fails too (nothing is created).
    ghost, _ = await call(
        stack, settings, ADA, "PUT", "/v1/workers/w-ghost", json=worker_body(),
        headers={"If-Match": first_etag},
    )  # fmt: skip
    assert_problem(ghost, 412, "precondition-failed")
    missing, _ = await call(stack, settings, ADA, "GET", "/v1/workers/w-ghost")
    assert_problem(missing, 404, "not-found")


async def test_invalid_worker_records_are_refused_with_field_errors(
    stack: Stack, settings: Settings
) -> None:
    body = worker_body(languages=["pt", "xx"], capacity_points=-1, display_name=" ")
    response, _ = await call(stack, settings, ADA, "PUT", "/v1/workers/w-invalid", json=body)

    problem = assert_problem(response, 422, "validation-error")
    fields = {error["field"] for error in problem["errors"]}
    assert {"body.languages.1", "body.capacity_points", "body.display_name"} <= fields
    missing, _ = await call(stack, settings, ADA, "GET", "/v1/workers/w-invalid")
    assert_problem(missing, 404, "not-found")


async def test_organisations_are_walls_between_directories(
    stack: Stack, settings: Settings
) -> None:
    ours = await put_worker(stack, settings, ADA, "w-wall", worker_body())

    read, read_request = await call(stack, settings, OLGA, "GET", "/v1/workers/w-wall")
    assert_problem(read, 404, "not-found")
    [row] = await audit_rows(settings, read_request)
    assert (row["actor_organization_id"], row["outcome"]) == (OTHER_ORG, "not_found")
    listed, _ = await call(stack, settings, OLGA, "GET", "/v1/workers", params={"limit": 200})
    assert listed.status_code == 200
    assert all(item["organization_id"] == OTHER_ORG for item in listed.json()["items"])
    assert "w-wall" not in [item["worker_id"] for item in listed.json()["items"]]
    patched, _ = await call(
        stack, settings, OLGA, "PATCH", "/v1/workers/w-wall", json={"active": False},
        headers={"If-Match": '"anything.1"'},
    )  # fmt: skip
    assert_problem(patched, 404, "not-found")

    # The same `sub` in another organisation is another person, with a record of its own.
    theirs, _ = await call(
        stack, settings, OLGA, "PUT", "/v1/workers/w-wall", json=worker_body(team_id="team-z")
    )
    assert theirs.status_code == 201, theirs.text
    assert (theirs.json()["organization_id"], theirs.json()["team_id"]) == (OTHER_ORG, "team-z")
    again, _ = await call(stack, settings, ADA, "GET", "/v1/workers/w-wall")
    assert again.json() == ours


async def test_supervisors_read_their_team_and_caseworkers_themselves(
    stack: Stack, settings: Settings
) -> None:
    await put_worker(stack, settings, ADA, "carl", worker_body(languages=["pt"]))
    await put_worker(stack, settings, ADA, "dana", worker_body(languages=["fr"], active=False))
    await put_worker(stack, settings, ADA, "erin", worker_body(team_id="team-b", languages=["fr"]))

    team_a: list[str] = []
    cursor: str | None = None
    while True:
        params = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        page, page_request = await call(stack, settings, SAM, "GET", "/v1/workers", params=params)
        assert page.status_code == 200, page.text
        team_a += [item["worker_id"] for item in page.json()["items"]]
        rows = await audit_rows(settings, page_request)  # one record per worker shown
        assert [(r["action"], r["resource_id"]) for r in rows] == [
            ("worker.read", item["worker_id"]) for item in page.json()["items"]
        ]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert len(team_a) == len(set(team_a)), "pages must not overlap"
    assert team_a == sorted(team_a)
    assert {"carl", "dana"} <= set(team_a) and "erin" not in team_a

    filtered, _ = await call(
        stack, settings, SAM, "GET", "/v1/workers", params={"active": "true", "language": "PT"}
    )
    assert "carl" in [item["worker_id"] for item in filtered.json()["items"]]
    assert all(item["active"] and "pt" in item["languages"] for item in filtered.json()["items"])
    assert "dana" not in [item["worker_id"] for item in filtered.json()["items"]]
    by_team, _ = await call(
        stack, settings, ADA, "GET", "/v1/workers", params={"team_id": "team-b", "limit": 200}
    )
    assert {item["team_id"] for item in by_team.json()["items"]} == {"team-b"}
    assert "erin" in [item["worker_id"] for item in by_team.json()["items"]]

    teammate, _ = await call(stack, settings, SAM, "GET", "/v1/workers/carl")
    assert teammate.status_code == 200 and teammate.json()["worker_id"] == "carl"
    other_team, other_request = await call(stack, settings, SAM, "GET", "/v1/workers/erin")
    assert_problem(other_team, 404, "not-found")
    [row] = await audit_rows(settings, other_request)
    assert (row["outcome"], row["resource_id"]) == ("denied", "erin")

    myself, _ = await call(stack, settings, CARL, "GET", "/v1/workers/carl")
    assert myself.status_code == 200 and myself.json()["display_name"] == "Carl Mendes"
    colleague, _ = await call(stack, settings, CARL, "GET", "/v1/workers/dana")
    assert_problem(colleague, 404, "not-found")
    mine, _ = await call(stack, settings, CARL, "GET", "/v1/workers")
    assert [item["worker_id"] for item in mine.json()["items"]] == ["carl"]

    for user, method, path, body in (
        (SAM, "PUT", "/v1/workers/carl", worker_body()),
        (CARL, "PATCH", "/v1/workers/carl", {"capacity_points": 99}),
        (SAM, "POST", "/v1/workers/sync", {"workers": []}),
        (CARL, "POST", "/v1/workers/sync", {"workers": []}),
    ):
        refused, refused_request = await call(
            stack, settings, user, method, path, json=body, headers={"If-Match": '"x"'}
        )
        assert "worker." in assert_problem(refused, 403, "forbidden")["detail"]
        [row] = await audit_rows(settings, refused_request)
        assert (row["outcome"], row["actor_id"]) == ("denied", user.subject)
    unchanged, _ = await call(stack, settings, ADA, "GET", "/v1/workers/carl")
    assert unchanged.json()["capacity_points"] == 20


# --- roles and WorkerUpdated --------------------------------------------------------------------


async def worker_events(settings: Settings, worker_id: str) -> list[dict[str, Any]]:
    """The WorkerUpdated events planning's outbox holds for `worker_id`, oldest first."""
    rows = await fetch(
        settings,
        "SELECT payload FROM planning.outbox WHERE aggregateid = $1 AND type = $2 "
        "ORDER BY created_at, id",
        worker_id,
        "org.casework.planning.worker.updated.v1",
    )
    return [json.loads(row["payload"]) if isinstance(row["payload"], str) else row["payload"]
            for row in rows]  # fmt: skip


async def test_a_worker_s_role_defaults_to_caseworker_and_can_be_changed(
    stack: Stack, settings: Settings
) -> None:
    created = await put_worker(stack, settings, ADA, "w-role", worker_body())
    assert created["role"] == "caseworker"
    read, _ = await call(stack, settings, ADA, "GET", "/v1/workers/w-role")

    patched, _ = await call(
        stack, settings, ADA, "PATCH", "/v1/workers/w-role", json={"role": "supervisor"},
        headers={"If-Match": read.headers["ETag"]},
    )  # fmt: skip

    assert patched.status_code == 200, patched.text
    assert (patched.json()["role"], patched.json()["version"]) == ("supervisor", 2)
    assert patched.json()["languages"] == created["languages"], "only the role changed"
    for body, field_name in (
        ({"role": "director"}, "body.role"),
        ({"role": None}, "body"),
    ):
        refused, _ = await call(
            stack, settings, ADA, "PATCH", "/v1/workers/w-role", json=body,
            headers={"If-Match": patched.headers["ETag"]},
        )  # fmt: skip
        problem = assert_problem(refused, 422, "validation-error")
        assert problem["errors"][0]["field"] == field_name
    unknown, _ = await call(
        stack, settings, ADA, "PUT", "/v1/workers/w-role-bad", json=worker_body(role="boss")
    )
    assert_problem(unknown, 422, "validation-error")
    still, _ = await call(stack, settings, ADA, "GET", "/v1/workers/w-role")
    assert (still.json()["role"], still.json()["version"]) == ("supervisor", 2)


async def test_every_directory_change_publishes_worker_updated_and_no_change_publishes_nothing(
    stack: Stack, settings: Settings
) -> None:
    created = await put_worker(stack, settings, ADA, "w-upd", worker_body(role="supervisor"))
    retried, _ = await call(
        stack, settings, ADA, "PUT", "/v1/workers/w-upd", json=worker_body(role="supervisor")
    )
    assert retried.status_code == 200  # unchanged: no event
    stale, _ = await call(
        stack, settings, ADA, "PATCH", "/v1/workers/w-upd", json={"active": False},
        headers={"If-Match": '"0000000000000000.9"'},
    )  # fmt: skip
    assert_problem(stale, 412, "precondition-failed")  # refused: no event
    patched, _ = await call(
        stack, settings, ADA, "PATCH", "/v1/workers/w-upd", json={"languages": ["ar"]},
        headers={"If-Match": retried.headers["ETag"]},
    )  # fmt: skip
    assert patched.status_code == 200, patched.text

    events = await worker_events(settings, "w-upd")
    assert [(e["version"], e["role"], e["languages"], e["active"]) for e in events] == [
        (1, "supervisor", ["pt", "en"], True),
        (2, "supervisor", ["ar"], True),
    ]
    assert {e["organization_id"] for e in events} == {ORG}
    assert {e["team_id"] for e in events} == {"team-a"}
    assert events[0]["updated_at"][:19] == created["updated_at"][:19]
    assert not any("display_name" in e or "Carl" in json.dumps(e) for e in events), "no names"

    # Off the broker: both reach casework.planning.workers, keyed by the worker's id.
    records = await read_topic(
        settings,
        Topic.PLANNING_WORKERS,
        until=lambda records: sum(r.key == b"w-upd" for r in records) >= 2,
    )
    published = [json.loads(r.value or b"{}") for r in records if r.key == b"w-upd"]
    assert [(e["version"], e["languages"]) for e in published] == [(1, ["pt", "en"]), (2, ["ar"])]
    assert {header(r, "ce_type") for r in records if r.key == b"w-upd"} == {
        "org.casework.planning.worker.updated.v1"
    }


async def test_a_sync_publishes_one_worker_updated_per_changed_worker(
    stack: Stack, settings: Settings
) -> None:
    org_admin = User("upd-admin", ("admin",), "org-upd", None)
    listed = [idp_worker("u-1"), idp_worker("u-2", role="supervisor"), idp_worker("u-3")]
    await sync(stack, settings, {"workers": listed}, user=org_admin)
    await sync(stack, settings, {"workers": listed}, user=org_admin)  # unchanged: nothing
    listed[0] = idp_worker("u-1", capacity_points=7)  # a change that other services don't see
    body = {"workers": listed[:2], "deactivate_missing": True}
    assert await sync(stack, settings, body, user=org_admin) == {
        "created": 0, "updated": 1, "deactivated": 1, "unchanged": 1,
    }  # fmt: skip

    history = {w: await worker_events(settings, w) for w in ("u-1", "u-2", "u-3")}
    assert [(e["version"], e["active"]) for e in history["u-1"]] == [(1, True), (2, True)]
    assert [(e["version"], e["role"]) for e in history["u-2"]] == [(1, "supervisor")]
    assert [(e["version"], e["active"]) for e in history["u-3"]] == [(1, True), (2, False)]
    assert {e["organization_id"] for events in history.values() for e in events} == {"org-upd"}
    records = await read_topic(
        settings,
        Topic.PLANNING_WORKERS,
        until=lambda records: any(
            r.key == b"u-3" and json.loads(r.value or b"{}")["active"] is False for r in records
        ),
    )
    assert sum(r.key in (b"u-1", b"u-2", b"u-3") for r in records) == 5


# --- syncing from the identity provider -------------------------------------------------------


def idp_worker(worker_id: str, **changes: Any) -> dict[str, Any]:
    return {"worker_id": worker_id, **worker_body(display_name=f"Staff {worker_id}"), **changes}


async def sync(
    stack: Stack, settings: Settings, body: dict[str, Any], user: User = IDP, **kwargs: Any
) -> dict[str, Any]:
    response, _ = await call(stack, settings, user, "POST", "/v1/workers/sync", json=body, **kwargs)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_syncing_is_idempotent_and_deactivates_the_missing_without_deleting(
    stack: Stack, settings: Settings
) -> None:
    listed = [idp_worker("s-1"), idp_worker("s-2"), idp_worker("s-3", team_id="team-b")]
    # An admin elsewhere has a worker of the same id: a sync of org-sync never touches it.
    await put_worker(stack, settings, ADA, "s-3", worker_body())

    first, first_request = await call(
        stack, settings, IDP, "POST", "/v1/workers/sync", json={"workers": listed}
    )
    assert first.json() == {"created": 3, "updated": 0, "deactivated": 0, "unchanged": 0}
    rows = await audit_rows(settings, first_request)
    assert {row["resource_id"] for row in rows} == {None, "s-1", "s-2", "s-3"}
    assert {(row["action"], row["outcome"], row["client_id"]) for row in rows} == {
        ("worker.sync", "allowed", None)
    }
    assert await sync(stack, settings, {"workers": listed}) == {
        "created": 0, "updated": 0, "deactivated": 0, "unchanged": 3,
    }  # fmt: skip

    listed[1] = idp_worker("s-2", languages=["ar"], capacity_points=5)
    assert await sync(stack, settings, {"workers": listed}) == {
        "created": 0, "updated": 1, "deactivated": 0, "unchanged": 2,
    }  # fmt: skip
    s2, _ = await call(stack, settings, SYNC_ADMIN, "GET", "/v1/workers/s-2")
    assert (s2.json()["languages"], s2.json()["capacity_points"], s2.json()["version"]) == (
        ["ar"],
        5,
        2,
    )

    # Without deactivate_missing, a shorter list deactivates nobody.
    assert await sync(stack, settings, {"workers": listed[:2]}) == {
        "created": 0, "updated": 0, "deactivated": 0, "unchanged": 2,
    }  # fmt: skip
    body = {"workers": listed[:2], "deactivate_missing": True}
    assert await sync(stack, settings, body) == {
        "created": 0, "updated": 0, "deactivated": 1, "unchanged": 2,
    }  # fmt: skip
    assert await sync(stack, settings, body) == {
        "created": 0, "updated": 0, "deactivated": 0, "unchanged": 2,
    }  # fmt: skip
    s3, _ = await call(stack, settings, SYNC_ADMIN, "GET", "/v1/workers/s-3")
    assert s3.status_code == 200, "deactivated, not deleted"
    assert (s3.json()["active"], s3.json()["team_id"], s3.json()["version"]) == (False, "team-b", 2)
    elsewhere, _ = await call(stack, settings, ADA, "GET", "/v1/workers/s-3")
    assert (elsewhere.json()["active"], elsewhere.json()["version"]) == (True, 1)

    # A team-sized sync deactivates only that team's missing workers; an admin may sync too.
    team_sync = {"workers": [listed[0]], "deactivate_missing": True, "team_id": "team-a"}
    assert await sync(stack, settings, team_sync, user=SYNC_ADMIN) == {
        "created": 0, "updated": 0, "deactivated": 1, "unchanged": 1,
    }  # fmt: skip
    s2_after, _ = await call(stack, settings, SYNC_ADMIN, "GET", "/v1/workers/s-2")
    assert s2_after.json()["active"] is False

    # An Idempotency-Key replays the first answer.
    revive = {"workers": [idp_worker("s-2", languages=["ar"], capacity_points=5)]}
    key = {"Idempotency-Key": f"revive-{uuid.uuid4()}"}
    assert await sync(stack, settings, revive, headers=key) == {
        "created": 0, "updated": 1, "deactivated": 0, "unchanged": 0,
    }  # fmt: skip
    assert await sync(stack, settings, revive, headers=key) == {
        "created": 0, "updated": 1, "deactivated": 0, "unchanged": 0,
    }  # fmt: skip
    s2_revived, _ = await call(stack, settings, SYNC_ADMIN, "GET", "/v1/workers/s-2")
    assert (s2_revived.json()["active"], s2_revived.json()["version"]) == (True, 4)


async def test_a_sync_listing_a_worker_twice_or_off_its_team_is_refused(
    stack: Stack, settings: Settings
) -> None:
    await sync(stack, settings, {"workers": [idp_worker("s-keep")]}, user=REFUSED_ADMIN)
    twice = {"workers": [idp_worker("s-dup"), idp_worker("s-dup")]}
    off_team = {"workers": [idp_worker("s-off", team_id="team-b")], "team_id": "team-a"}
    nobody = {"workers": [], "deactivate_missing": True}
    for body, message in (
        (twice, "each worker_id may appear only once"),
        (off_team, "every listed worker must be of team_id"),
        (nobody, "deactivate_missing needs a list"),
    ):
        response, _ = await call(
            stack, settings, REFUSED_ADMIN, "POST", "/v1/workers/sync", json=body
        )
        problem = assert_problem(response, 422, "validation-error")
        assert problem["errors"][0]["field"] == "body"
        assert message in problem["errors"][0]["message"]
    for worker_id in ("s-dup", "s-off"):
        missing, _ = await call(stack, settings, REFUSED_ADMIN, "GET", f"/v1/workers/{worker_id}")
        assert_problem(missing, 404, "not-found")
    kept, _ = await call(stack, settings, REFUSED_ADMIN, "GET", "/v1/workers/s-keep")
    assert kept.json()["active"] is True, "the refused empty list deactivated nobody"


# --- assignment names a real worker -----------------------------------------------------------


@pytest.fixture(scope="module")
async def case(stack: Stack, settings: Settings) -> str:
    """A client carl registered in org-dir's team-a, known to planning."""
    response = await stack.api["intake"].post(
        "/v1/clients", json=VALID_CLIENT, headers=bearer(settings, CARL)
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


@pytest.fixture(scope="module")
async def case_id(stack: Stack, settings: Settings, case: str) -> str:
    """Carl's client's case, opened by carl."""
    return await open_case(stack, settings, case, CARL)


async def assignments_and_events(settings: Settings, client_id: str) -> tuple[int, int]:
    [assignments] = await fetch(
        settings,
        "SELECT count(*) FROM planning.case_assignments WHERE client_id = $1",
        uuid.UUID(client_id),
    )
    [events] = await fetch(
        settings,
        "SELECT count(*) FROM planning.outbox WHERE aggregateid = $1 AND type = $2",
        client_id,
        "org.casework.planning.case.assigned.v1",
    )
    return assignments[0], events[0]


@pytest.mark.parametrize(
    ("worker_id", "code"),
    [
        ("nobody-invented", "unknown-worker"),  # in no directory at all
        ("inez", "worker-inactive"),  # in ours, deactivated
        ("erin-b", "worker-outside-team"),  # in ours, team-b
        ("olaf", "unknown-worker"),  # only in org-dir-b's directory, under the same sub
    ],
)
async def test_an_assignment_to_anyone_but_an_active_teammate_is_refused(
    stack: Stack, settings: Settings, case: str, case_id: str, worker_id: str, code: str
) -> None:
    await put_worker(stack, settings, ADA, "inez", worker_body(active=False))
    await put_worker(stack, settings, ADA, "erin-b", worker_body(team_id="team-b"))
    await put_worker(stack, settings, OLGA, "olaf", worker_body(team_id="team-a"))
    before = await assignments_and_events(settings, case)

    response, request_id = await call(
        stack,
        settings,
        SAM,
        "PUT",
        f"/v1/cases/{case_id}/assignment",
        json={"worker_id": worker_id},
    )

    problem = assert_problem(response, 422, code)
    assert problem["errors"] == [
        {"field": "body.worker_id", "message": problem["errors"][0]["message"], "code": code}
    ]
    assert "nothing was changed" in problem["detail"]
    assert await assignments_and_events(settings, case) == before == (0, 0)
    [row] = await audit_rows(settings, request_id)
    assert (row["action"], row["outcome"], str(row["client_id"])) == ("case.assign", "denied", case)
    assert row["actor_id"] == "sam"
    current, _ = await call(stack, settings, SAM, "GET", f"/v1/cases/{case_id}/assignment")
    assert_problem(current, 404, "not-found")


async def test_an_assignment_to_an_active_teammate_carries_the_directory_s_team(
    stack: Stack, settings: Settings, case: str, case_id: str
) -> None:
    await put_worker(stack, settings, ADA, "tess", worker_body(display_name="Tess Ito"))
    # Someone of the same sub and team name in another organisation changes nothing.
    await put_worker(stack, settings, OLGA, "tess", worker_body(team_id="team-a", active=False))
    # The supervisor of another team cannot see the case at all.
    outside, _ = await call(
        stack, settings, SUE, "PUT", f"/v1/cases/{case_id}/assignment", json={"worker_id": "tess"}
    )
    assert_problem(outside, 404, "not-found")

    response, request_id = await call(
        stack, settings, SAM, "PUT", f"/v1/cases/{case_id}/assignment", json={"worker_id": "tess"}
    )

    assert response.status_code == 200, response.text
    assigned = response.json()
    assert (assigned["client_id"], assigned["worker_id"]) == (case, "tess")
    assert (assigned["team_id"], assigned["assigned_by"]) == ("team-a", "sam")
    assert await assignments_and_events(settings, case) == (1, 1)
    [row] = await audit_rows(settings, request_id)
    assert (row["action"], row["outcome"]) == ("case.assign", "allowed")
    assert assigned["case_id"] == case_id

    def assignments(records: list[ConsumerRecord[bytes, bytes]]) -> list[dict[str, Any]]:
        return [
            json.loads(r.value or b"{}")
            for r in records
            if r.key == case.encode() and header(r, "ce_type") == CaseAssigned.event_type
        ]

    records = await read_topic(
        settings, Topic.PLANNING_CASES, until=lambda records: bool(assignments(records))
    )
    [event] = assignments(records)
    assert (event["worker_id"], event["team_id"], event["organization_id"]) == (
        "tess",
        "team-a",
        ORG,
    )
    assert event["case_id"] == case_id
    # Access follows: tess now reads the client's reference in planning.
    tess = User("tess", ("caseworker",), ORG, "team-a")

    async def tess_reads() -> bool | None:
        reference, _ = await call(stack, settings, tess, "GET", f"/v1/client-refs/{case}")
        return True if reference.status_code == 200 else None

    await eventually(tess_reads)


# --- the decisions alone (no stack) ------------------------------------------------------------


def directory_record(**changes: Any) -> WorkerPublic:
    values: dict[str, Any] = {
        "worker_id": "tess", "organization_id": ORG, "team_id": "team-a",
        "display_name": "Tess Ito", "role": "caseworker", "languages": [], "capacity_points": 0,
        "active": True,
        "version": 1, "created_at": "2026-11-29T10:00:00Z", "updated_at": "2026-11-29T10:00:00Z",
        **changes,
    }  # fmt: skip
    return WorkerPublic.model_validate(values)


@pytest.mark.parametrize(
    ("worker", "supervisor_team", "case_organisation", "code"),
    [
        (None, "team-a", ORG, "unknown-worker"),
        (directory_record(active=False), "team-a", ORG, "worker-inactive"),
        (directory_record(team_id=None), "team-a", ORG, "worker-outside-team"),
        (directory_record(), None, ORG, "worker-outside-team"),
        (directory_record(), "team-a", OTHER_ORG, "worker-outside-team"),
        (directory_record(), "team-a", ORG, None),
    ],
)
def test_who_may_be_assigned_a_case(
    worker: WorkerPublic | None,
    supervisor_team: str | None,
    case_organisation: str,
    code: str | None,
) -> None:
    supervisor = Principal("sam", frozenset({Role.SUPERVISOR}), ORG, supervisor_team)
    facts = ClientFacts(uuid.uuid4(), case_organisation, "team-a", "carl", None)

    refused = refusal(worker, facts=facts, assigned_by=supervisor)

    assert (refused.code if refused else None) == code


def test_directory_scopes_mean_organisation_team_or_oneself() -> None:
    carl = Principal("carl", frozenset({Role.CASEWORKER}), ORG, "team-a")
    for scopes, sees_teammate, sees_self in (
        ({Scope.ORGANISATION}, True, True),
        ({Scope.TEAM}, True, True),
        ({Scope.CASELOAD}, False, True),
        (set(), False, False),
    ):
        assert in_scope(scopes, carl, worker_id="dana", team_id="team-a") is sees_teammate
        assert in_scope(scopes, carl, worker_id="carl", team_id="team-a") is sees_self
        assert in_scope(scopes, carl, worker_id="erin", team_id="team-b") is bool(
            Scope.ORGANISATION in scopes
        )
    assert scope_clause({Scope.TEAM, Scope.CASELOAD}, carl, 2) == (
        "(w.team_id = $2 OR w.worker_id = $3)",
        ["team-a", "carl"],
    )
    assert scope_clause(set(), carl, 2) == ("FALSE", [])
