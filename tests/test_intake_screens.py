"""What a case worker's and a supervisor's screens read from intake beyond the record itself:
the record's field-level history, and the queue of flags waiting for someone."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from shared.settings import Settings
from tests.support import VALID_CLIENT, Stack, User, admin_fetchval, bearer

ALICE = User("alice", ("caseworker",))
SAM = User("sam", ("supervisor",))
SUE = User("sue", ("supervisor",), team_id="team-b")  # same organisation, another team
OLGA = User("olga", ("supervisor",), organization_id="org-b", team_id="team-a")


async def _register(stack: Stack, settings: Settings, user: User = ALICE) -> dict[str, Any]:
    body = {**VALID_CLIENT, "given_name": f"Screen{secrets.token_hex(4)}"}
    response = await stack.api["intake"].post(
        "/v1/clients", json=body, headers=bearer(settings, user)
    )
    assert response.status_code == 201, response.text
    client: dict[str, Any] = response.json()
    return client


async def test_the_history_lists_each_change_with_old_and_new_values_newest_first(
    stack: Stack, settings: Settings
) -> None:
    client = await _register(stack, settings)
    path = f"/v1/clients/{client['id']}"
    intake = stack.api["intake"]
    etag = (await intake.get(path)).headers["etag"]
    first = await intake.patch(path, json={"preferred_language": "sw"}, headers={"If-Match": etag})
    second = await intake.patch(
        path, json={"phone": "+1 555 010 9999"}, headers={"If-Match": first.headers["etag"]}
    )
    assert second.status_code == 200, second.text

    history = await intake.get(f"{path}/history", headers={"X-Request-Id": "history-1"})

    assert history.status_code == 200, history.text
    body = history.json()
    assert [entry["version"] for entry in body["items"]] == [3, 2]
    assert body["items"][1]["changes"] == {"preferred_language": {"from": "pt", "to": "sw"}}
    assert body["items"][0]["changes"]["phone"]["from"] is None
    assert body["items"][0]["changed_by"] == "alice"
    assert body["next_cursor"] is None
    paged = await intake.get(f"{path}/history", params={"limit": 1})
    assert [e["version"] for e in paged.json()["items"]] == [3]
    rest = await intake.get(
        f"{path}/history", params={"limit": 1, "cursor": paged.json()["next_cursor"]}
    )
    assert [e["version"] for e in rest.json()["items"]] == [2]
    audited = await admin_fetchval(
        settings,
        "SELECT resource_type || ' ' || outcome FROM intake.audit_log WHERE request_id = $1",
        "history-1",
    )
    assert audited == "client_history allowed"


async def test_the_history_of_a_client_outside_scope_is_404(
    stack: Stack, settings: Settings
) -> None:
    client = await _register(stack, settings)
    response = await stack.api["intake"].get(
        f"/v1/clients/{client['id']}/history", headers=bearer(settings, OLGA)
    )
    assert response.status_code == 404
    assert response.json()["type"].endswith("/not-found")


async def _raise(stack: Stack, client_id: str, severity: str = "crisis") -> dict[str, Any]:
    response = await stack.api["intake"].post(
        f"/v1/clients/{client_id}/flags", json={"flag_type": "safety", "severity": severity}
    )
    assert response.status_code == 201, response.text
    flag: dict[str, Any] = response.json()
    return flag


async def _queue(stack: Stack, settings: Settings, user: User, **params: str) -> list[str]:
    ids: list[str] = []
    cursor: str | None = None
    while True:
        query = {**params, "limit": "200", **({"cursor": cursor} if cursor else {})}
        response = await stack.api["intake"].get(
            "/v1/flags", params=query, headers=bearer(settings, user)
        )
        assert response.status_code == 200, response.text
        ids += [flag["id"] for flag in response.json()["items"]]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return ids


async def test_a_supervisor_sees_the_teams_waiting_flags_and_acknowledged_ones_leave_the_queue(
    stack: Stack, settings: Settings
) -> None:
    client = await _register(stack, settings)
    waiting = await _raise(stack, client["id"])
    seen = await _raise(stack, client["id"], severity="high")
    acknowledged = await stack.api["intake"].post(
        f"/v1/clients/{client['id']}/flags/{seen['id']}/acknowledgement"
    )
    assert acknowledged.status_code == 200

    queue = await _queue(stack, settings, SAM)
    assert waiting["id"] in queue and seen["id"] not in queue
    active = await _queue(stack, settings, SAM, state="active")
    assert {waiting["id"], seen["id"]} <= set(active)
    # Oldest first: the longest waiting is on top.
    assert active.index(waiting["id"]) < active.index(seen["id"])
    # Another team of the organisation, and another organisation, see none of them.
    assert waiting["id"] not in await _queue(stack, settings, SUE, state="active")
    assert waiting["id"] not in await _queue(stack, settings, OLGA, state="active")


async def test_the_queue_audits_every_flag_it_shows_on_its_clients_record(
    stack: Stack, settings: Settings
) -> None:
    client = await _register(stack, settings)
    flag = await _raise(stack, client["id"])
    response = await stack.api["intake"].get(
        "/v1/flags",
        params={"limit": "200"},
        headers={**bearer(settings, SAM), "X-Request-Id": f"queue-{flag['id']}"},
    )
    assert flag["id"] in [f["id"] for f in response.json()["items"]]
    audited = await admin_fetchval(
        settings,
        "SELECT count(*) FROM intake.audit_log WHERE request_id = $1 AND resource_id = $2 "
        "AND client_id = $3 AND action = 'flag.read'",
        f"queue-{flag['id']}",
        flag["id"],
        uuid.UUID(client["id"]),
    )
    assert audited == 1
