"""Assessment drafts: a crisis answer raises its flag the moment it is saved, not when the
whole form is done; completing the draft scores it once and raises nothing twice."""

from __future__ import annotations

import json
import secrets
import uuid
from typing import Any

from shared.settings import Settings
from tests.support import VALID_CLIENT, Stack, User, admin_fetchval, bearer, header, read_topic
from tests.test_scoring import NO_NEEDS

# Crisis flags travel on the protected topic (their type can give away the answer behind them).
FLAG_RAISED = "org.casework.intake.protected.flag.raised.v1"
PROTECTED = "casework.intake.protected"
ASSESSED = "org.casework.intake.client.assessed.v1"
OLGA = User("olga", ("supervisor",), organization_id="org-b", team_id="team-a")


async def _client(stack: Stack) -> str:
    body = {**VALID_CLIENT, "given_name": f"Draft{secrets.token_hex(4)}"}
    response = await stack.api["intake"].post("/v1/clients", json=body)
    assert response.status_code == 201, response.text
    client_id: str = response.json()["id"]
    return client_id


async def _start(stack: Stack, client_id: str, answers: dict[str, str]) -> Any:
    return await stack.api["intake"].post(
        f"/v1/clients/{client_id}/assessment-drafts",
        json={"instrument_id": "needs-risk-screening", "version": "1.0", "answers": answers},
    )


async def _flags(settings: Settings, client_id: str) -> list[tuple[str, str | None]]:
    rows = await admin_fetchval(
        settings,
        "SELECT coalesce(json_agg(json_build_array(flag_type, assessment_id) ORDER BY raised_at),"
        " '[]') FROM intake.flags WHERE client_id = $1",
        uuid.UUID(client_id),
    )
    return [tuple(row) for row in json.loads(rows)]


async def _outbox(settings: Settings, client_id: str, event_type: str) -> int:
    count: int = await admin_fetchval(
        settings,
        "SELECT count(*) FROM intake.outbox WHERE aggregateid = $1 AND type = $2",
        client_id,
        event_type,
    )
    return count


async def test_a_crisis_answer_in_a_draft_raises_its_flag_at_once(
    stack: Stack, settings: Settings
) -> None:
    client_id = await _client(stack)

    response = await _start(stack, client_id, {"safe_place_tonight": "no"})

    assert response.status_code == 201, response.text
    draft = response.json()
    assert draft["answers"] == {"safe_place_tonight": "no"}
    assert len(draft["raised_flag_ids"]) == 1
    assert "living_situation" in draft["unanswered"]
    assert response.headers["etag"] == f'"{draft["id"]}.1"'
    assert await _flags(settings, client_id) == [("safety", None)]
    await read_topic(
        settings,
        PROTECTED,
        until=lambda rs: any(
            header(r, "ce_type") == FLAG_RAISED and header(r, "ce_subject") == client_id for r in rs
        ),
    )
    assert await _outbox(settings, client_id, ASSESSED) == 0  # nothing assessed until complete


async def test_answers_added_later_raise_only_new_crisis_types_and_need_the_etag(
    stack: Stack, settings: Settings
) -> None:
    client_id = await _client(stack)
    draft = (await _start(stack, client_id, {"safe_place_tonight": "no"})).json()
    path = f"/v1/clients/{client_id}/assessment-drafts/{draft['id']}"
    intake = stack.api["intake"]

    without = await intake.patch(path, json={"answers": {"danger_at_home": "yes"}})
    stale = await intake.patch(
        path, json={"answers": {"danger_at_home": "yes"}}, headers={"If-Match": '"x.0"'}
    )
    changed = await intake.patch(
        path,
        json={"answers": {"danger_at_home": "yes", "suicidal_thoughts": "yes"}},
        headers={"If-Match": f'"{draft["id"]}.1"'},
    )

    assert without.status_code == 428 and stale.status_code == 412
    assert changed.status_code == 200, changed.text
    # violence is new; suicidal_thoughts names safety, which the draft raised already.
    assert sorted(t for t, _ in await _flags(settings, client_id)) == ["safety", "violence"]
    assert len(changed.json()["raised_flag_ids"]) == 2
    taken_back = await intake.patch(
        path,
        json={"answers": {"danger_at_home": None}},
        headers={"If-Match": changed.headers["etag"]},
    )
    assert "danger_at_home" not in taken_back.json()["answers"]
    assert len(await _flags(settings, client_id)) == 2  # the flag stays for someone to resolve


async def test_completing_a_draft_scores_it_and_its_flags_become_the_assessments(
    stack: Stack, settings: Settings
) -> None:
    client_id = await _client(stack)
    draft = (await _start(stack, client_id, {"safe_place_tonight": "no"})).json()
    path = f"/v1/clients/{client_id}/assessment-drafts/{draft['id']}"
    intake = stack.api["intake"]

    incomplete = await intake.post(f"{path}/completion", headers={"If-Match": f'"{draft["id"]}.1"'})
    assert incomplete.status_code == 422
    assert any(e["code"] == "missing" for e in incomplete.json()["errors"])

    rest = {k: v for k, v in NO_NEEDS.items() if k != "safe_place_tonight"}
    filled = await intake.patch(
        path, json={"answers": rest}, headers={"If-Match": f'"{draft["id"]}.1"'}
    )
    assert filled.json()["unanswered"] == []
    completed = await intake.post(
        f"{path}/completion", headers={"If-Match": filled.headers["etag"]}
    )

    assert completed.status_code == 201, completed.text
    assessment = completed.json()
    assert assessment["id"] == draft["id"]
    assert assessment["risk_level"] == "crisis"
    assert assessment["raised_flag_ids"] == draft["raised_flag_ids"]  # not raised twice
    assert await _flags(settings, client_id) == [("safety", draft["id"])]
    assert completed.headers["location"] == f"/v1/clients/{client_id}/assessments/{draft['id']}"
    assert (await intake.get(path)).status_code == 404
    await read_topic(
        settings,
        "casework.intake.clients",
        until=lambda rs: any(
            header(r, "ce_type") == ASSESSED and header(r, "ce_subject") == client_id for r in rs
        ),
    )
    assert await _outbox(settings, client_id, FLAG_RAISED) == 1  # not raised again


async def test_a_draft_outside_scope_is_404_and_bad_answers_are_422(
    stack: Stack, settings: Settings
) -> None:
    client_id = await _client(stack)
    unknown = await _start(stack, client_id, {"safe_place_tonight": "maybe"})
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["code"] == "not_an_option"
    assert await _flags(settings, client_id) == []
    draft = (await _start(stack, client_id, {})).json()
    foreign = await stack.api["intake"].get(
        f"/v1/clients/{client_id}/assessment-drafts/{draft['id']}", headers=bearer(settings, OLGA)
    )
    assert foreign.status_code == 404
