"""Organisations are walls; break-glass only reads, inside one's own organisation; search and
the duplicate check show no more than a worker needs (issue 9, items 1, 2 and 10).

The route-by-route matrix (every route, same `sub` in another organisation, break-glass) is in
tests/test_access.py; here the stories of the issue, one by one.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from services.intake.assessments.equity import MIN_CELL
from shared.settings import Settings
from tests.support import VALID_CLIENT, Stack, User
from tests.test_access import ALICE, BOB, SAM, SUE, audit_rows, call
from tests.test_intake_consents import REFERRAL_CONSENT
from tests.test_scoring import NO_NEEDS

REASON = "Client in crisis at the night shelter, her worker is on leave"
GLASS = {"X-Break-Glass-Reason": REASON}
# Sue's namesake in another organisation: a supervisor, with a reason.
FOREIGN_SUE = User("sue", ("supervisor",), "org-b", "team-b")


def letters(length: int = 10) -> str:
    """A made-up word no other test uses (a name must be letters to sound like anything)."""
    return "".join(chr(ord("a") + int(c, 16)) for c in uuid.uuid4().hex[:length]).capitalize()


async def register(stack: Stack, user: User, settings: Settings, **fields: Any) -> dict[str, Any]:
    response, _ = await call(
        stack, settings, user, "intake", "POST", "/v1/clients", json={**VALID_CLIENT, **fields}
    )
    assert response.status_code == 201, response.text
    registered: dict[str, Any] = response.json()
    return registered


# --- 1. Break-glass --------------------------------------------------------------------------


async def test_break_glass_reads_but_never_writes_and_stays_in_the_organisation(
    stack: Stack, settings: Settings
) -> None:
    """The issue's story: a supervisor with only a reason changed a phone, added an assessment,
    overrode a crisis to low and resolved a violence flag. Now she reads, and that is all."""
    client = await register(stack, ALICE, settings, phone="555-303-1000")
    base = f"/v1/clients/{client['id']}"
    crisis = {
        "instrument_id": "needs-risk-screening",
        "version": "1.0",
        "answers": {**NO_NEEDS, "danger_at_home": "yes"},
    }
    assessed, _ = await call(stack, settings, ALICE, "intake", "POST", f"{base}/assessments", json=crisis)  # fmt: skip
    assert assessed.json()["risk_level"] == "crisis", assessed.text
    flags, _ = await call(stack, settings, ALICE, "intake", "GET", f"{base}/flags")
    [flag] = flags.json()["items"]

    read, read_request = await call(stack, settings, SUE, "intake", "GET", base, headers=GLASS)
    attempts = {
        "change her phone": ("PATCH", base, {"phone": "555-999-0000"}),
        "add an assessment": ("POST", f"{base}/assessments", crisis),
        "override her risk": (
            "POST",
            f"{base}/assessments/{assessed.json()['id']}/override",
            {"risk_level": "low", "reason": "She says things are calm at home now."},
        ),
        "resolve her flag": (
            "POST",
            f"{base}/flags/{flag['id']}/resolution",
            {"note": "Talked it through, closed."},
        ),
    }
    refused = {}
    for attempt, (method, path, body) in attempts.items():
        headers = {**GLASS, "If-Match": f'"{client["id"]}.{client["version"]}"'}
        response, request_id = await call(
            stack, settings, SUE, "intake", method, path, json=body, headers=headers
        )
        refused[attempt] = response.status_code
        [row] = await audit_rows(settings, "intake", request_id)
        assert (row["outcome"], row["break_glass_reason"]) == ("denied", None), attempt
    foreign, foreign_request = await call(
        stack, settings, FOREIGN_SUE, "intake", "GET", base, headers=GLASS
    )

    assert read.status_code == 200 and read.json()["phone"] == "555-303-1000"
    [row] = await audit_rows(settings, "intake", read_request)
    assert (row["outcome"], row["break_glass_reason"]) == ("break_glass", REASON)
    assert refused == dict.fromkeys(attempts, 404)
    assert foreign.status_code == 404 and "given_name" not in foreign.text
    [row] = await audit_rows(settings, "intake", foreign_request)
    assert (row["outcome"], row["actor_organization_id"]) == ("denied", "org-b")
    now, _ = await call(stack, settings, ALICE, "intake", "GET", base)
    assert (now.json()["phone"], now.json()["version"]) == ("555-303-1000", client["version"])
    assessments, _ = await call(stack, settings, ALICE, "intake", "GET", f"{base}/assessments")
    [only] = assessments.json()["items"]
    assert (only["risk_level"], only["overrides"]) == ("crisis", [])
    flag_now, _ = await call(stack, settings, ALICE, "intake", "GET", f"{base}/flags/{flag['id']}")
    assert flag_now.json()["resolved_at"] is None


@pytest.mark.parametrize(
    "reason",
    ["..........", " " * 12, "aaaaaaaaaaaa", "aaa aaa aaa aaa", "1234567890 12", "x y z w v u t"],
    ids=["dots", "spaces", "one letter", "one letter, words", "digits", "single letters"],
)
async def test_a_break_glass_reason_must_say_something(
    stack: Stack, settings: Settings, reason: str
) -> None:
    client = await register(stack, ALICE, settings)
    response, request_id = await call(
        stack, settings, SUE, "intake", "GET", f"/v1/clients/{client['id']}",
        headers={"X-Break-Glass-Reason": reason},
    )  # fmt: skip

    assert response.status_code == 422, response.text
    problem = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    assert [error["field"] for error in problem["errors"]] == ["header.X-Break-Glass-Reason"]
    assert "given_name" not in response.text
    assert not [
        r for r in await audit_rows(settings, "intake", request_id) if r["outcome"] == "break_glass"
    ]


async def test_a_short_plain_reason_opens_the_record(stack: Stack, settings: Settings) -> None:
    client = await register(stack, ALICE, settings)
    response, _ = await call(
        stack, settings, SUE, "intake", "GET", f"/v1/clients/{client['id']}",
        headers={"X-Break-Glass-Reason": "  welfare check  "},
    )  # fmt: skip
    assert response.status_code == 200 and response.json()["id"] == client["id"]


# --- 2. Every scope compares the organisation ------------------------------------------------


async def test_the_same_sub_in_another_organisation_is_a_stranger(
    stack: Stack, settings: Settings
) -> None:
    """The issue's story: a caseworker token with alice's `sub` and another `org_id` read,
    listed, patched and recorded consents on alice's clients."""
    client = await register(stack, ALICE, settings, family_name=letters())
    twin = User("alice", ("caseworker",), "org-b")
    base = f"/v1/clients/{client['id']}"

    read, _ = await call(stack, settings, twin, "intake", "GET", base)
    patched, _ = await call(
        stack, settings, twin, "intake", "PATCH", base, json={"phone": "555-000-0000"},
        headers={"If-Match": f'"{client["id"]}.{client["version"]}"'},
    )  # fmt: skip
    consent, _ = await call(
        stack, settings, twin, "intake", "POST", f"{base}/consents",
        json=REFERRAL_CONSENT,
    )  # fmt: skip
    listed, _ = await call(stack, settings, twin, "intake", "GET", "/v1/clients?limit=100")

    assert (read.status_code, patched.status_code, consent.status_code) == (404, 404, 404)
    assert client["id"] not in {item["id"] for item in listed.json()["items"]}
    mine, _ = await call(stack, settings, ALICE, "intake", "GET", f"{base}/consents")
    assert mine.json()["items"] == []
    still, _ = await call(stack, settings, ALICE, "intake", "GET", base)
    assert still.json()["version"] == client["version"]


async def test_an_idempotency_key_never_replays_another_organisation_s_record(
    stack: Stack, settings: Settings
) -> None:
    key = {"Idempotency-Key": f"register-{uuid.uuid4()}"}
    body = {**VALID_CLIENT, "family_name": letters()}
    twin = User("alice", ("caseworker",), "org-b")

    first, _ = await call(stack, settings, ALICE, "intake", "POST", "/v1/clients", json=body, headers=key)  # fmt: skip
    elsewhere, _ = await call(stack, settings, twin, "intake", "POST", "/v1/clients", json=body, headers=key)  # fmt: skip
    again, _ = await call(stack, settings, ALICE, "intake", "POST", "/v1/clients", json=body, headers=key)  # fmt: skip

    assert first.status_code == elsewhere.status_code == 201
    assert elsewhere.json()["id"] != first.json()["id"], "a replay of another organisation's record"
    assert again.json()["id"] == first.json()["id"]
    theirs, _ = await call(stack, settings, twin, "intake", "GET", f"/v1/clients/{elsewhere.json()['id']}")  # fmt: skip
    assert theirs.status_code == 200
    ours, _ = await call(stack, settings, twin, "intake", "GET", f"/v1/clients/{first.json()['id']}")  # fmt: skip
    assert ours.status_code == 404


async def test_auditors_read_their_own_organisation_s_trail_unless_they_span_organisations(
    stack: Stack, settings: Settings
) -> None:
    org = f"org-{uuid.uuid4().hex[:8]}"
    theirs = await register(stack, User("olga", ("caseworker",), org), settings)
    ours = await register(stack, ALICE, settings)
    auditor = User("audrey", ("auditor",), org, None)  # alice's auditor's `sub`, another org
    platform = User("ines", ("platform_auditor",), "org-oversight", None)

    async def trail(user: User, **params: str) -> tuple[int, set[str]]:
        seen: set[str] = set()
        cursor: str | None = None
        while True:
            page = {"limit": 200, **params, **({"cursor": cursor} if cursor else {})}
            response, _ = await call(stack, settings, user, "intake", "GET", "/v1/audit", params=page)  # fmt: skip
            if response.status_code != 200:
                return response.status_code, seen
            seen |= {item["client_id"] for item in response.json()["items"] if item["client_id"]}
            cursor = response.json()["next_cursor"]
            if cursor is None:
                return 200, seen

    status, seen = await trail(auditor)
    assert status == 200 and seen == {theirs["id"]}
    assert (await trail(auditor, client_id=ours["id"]))[0] == 404
    assert (await trail(auditor, client_id=theirs["id"])) == (200, {theirs["id"]})
    status, seen = await trail(User("audrey", ("auditor",), team_id=None))
    assert status == 200 and ours["id"] in seen and theirs["id"] not in seen
    status, seen = await trail(platform)
    assert status == 200 and {ours["id"], theirs["id"]} <= seen


async def test_the_equity_report_counts_only_the_caller_s_organisation(
    stack: Stack, settings: Settings
) -> None:
    org = f"org-{uuid.uuid4().hex[:8]}"
    worker = User("olga", ("caseworker",), org)
    for _ in range(MIN_CELL):
        client = await register(stack, worker, settings)
        assessed, _ = await call(
            stack, settings, worker, "intake", "POST", f"/v1/clients/{client['id']}/assessments",
            json={"instrument_id": "needs-risk-screening", "version": "1.0", "answers": NO_NEEDS},
        )  # fmt: skip
        assert assessed.status_code == 201, assessed.text
    # Alice's organisation has assessed clients too (test_access, this module): not counted.
    await call(
        stack, settings, ALICE, "intake", "POST",
        f"/v1/clients/{(await register(stack, ALICE, settings))['id']}/assessments",
        json={"instrument_id": "needs-risk-screening", "version": "1.0", "answers": NO_NEEDS},
    )  # fmt: skip

    report, _ = await call(
        stack, settings, User("audrey", ("auditor",), org, None), "intake", "GET",
        "/v1/reports/equity", params={"instrument_id": "needs-risk-screening"},
    )  # fmt: skip

    assert report.status_code == 200, report.text
    assert report.json()["clients"] == {"count": MIN_CELL, "suppressed": False}


# --- 10. Search and duplicates reveal no more than needed -------------------------------------


async def test_a_birth_date_alone_is_not_a_search(stack: Stack, settings: Settings) -> None:
    await register(stack, ALICE, settings, birth_date="1977-07-07")
    response, _ = await call(
        stack, settings, ALICE, "intake", "GET", "/v1/clients/search",
        params={"birth_date": "1977-07-07"},
    )  # fmt: skip
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert "candidates" not in response.json()


async def test_a_phone_alone_finds_exactly_that_phone(stack: Stack, settings: Settings) -> None:
    client = await register(stack, ALICE, settings, phone="+1 555 404 7781")
    await register(stack, ALICE, settings, phone="+1 555 404 7782")

    response, _ = await call(
        stack, settings, ALICE, "intake", "GET", "/v1/clients/search",
        params={"phone": "(555) 404-7781"},
    )  # fmt: skip

    assert response.status_code == 200, response.text
    [found] = response.json()["items"]
    assert (found["client_id"], found["matched"]) == (client["id"], ["phone"])


async def test_a_surname_alone_finds_exactly_that_family_name(
    stack: Stack, settings: Settings
) -> None:
    surname = letters(7)
    client = await register(
        stack, ALICE, settings, given_name="Maria Fernanda Alejandra", family_name=surname
    )
    await register(stack, ALICE, settings, given_name="Maria", family_name=surname + "son")

    response, _ = await call(
        stack, settings, ALICE, "intake", "GET", "/v1/clients/search", params={"name": surname}
    )

    assert response.status_code == 200, response.text
    exact = [c for c in response.json()["items"] if "same family name" in c.get("reasons", [])]
    assert [c["client_id"] for c in exact] == [client["id"]]


async def test_an_exact_identifier_finds_the_record_and_a_weak_one_is_refused(
    stack: Stack, settings: Settings
) -> None:
    member_id = f"HI-{uuid.uuid4().hex[:10]}"
    client = await register(
        stack, ALICE, settings,
        identifiers=[{"type": "health_insurance_id", "value": member_id},
                     {"type": "national_id_last4", "value": "4321"}],
    )  # fmt: skip

    found, _ = await call(
        stack, settings, ALICE, "intake", "GET", "/v1/clients/search",
        params={"identifier_type": "health_insurance_id", "identifier_value": member_id},
    )  # fmt: skip
    weak, _ = await call(
        stack, settings, ALICE, "intake", "GET", "/v1/clients/search",
        params={"identifier_type": "national_id_last4", "identifier_value": "4321"},
    )  # fmt: skip

    assert found.status_code == 200, found.text
    [candidate] = found.json()["items"]
    assert (candidate["client_id"], candidate["matched"]) == (client["id"], ["identifier"])
    assert weak.status_code == 422
    assert [e["field"] for e in weak.json()["errors"]] == ["query.identifier_type"]


async def test_a_candidate_outside_your_scope_shows_only_name_birth_year_and_what_matched(
    stack: Stack, settings: Settings
) -> None:
    surname = letters()
    client = await register(
        stack, ALICE, settings, given_name="Halina", family_name=surname,
        birth_date="1981-03-09", phone="555-777-0101",
    )  # fmt: skip
    params = {"name": f"Halina {surname}", "birth_date": "1981-03-09", "phone": "555-777-0101"}

    by_bob, request_id = await call(stack, settings, BOB, "intake", "GET", "/v1/clients/search", params=params)  # fmt: skip
    by_alice, _ = await call(stack, settings, ALICE, "intake", "GET", "/v1/clients/search", params=params)  # fmt: skip

    [limited] = [c for c in by_bob.json()["items"] if c["client_id"] == client["id"]]
    assert limited == {
        "access": "limited", "client_id": client["id"], "given_name": "Halina",
        "family_name": surname, "birth_year": 1981, "matched": ["name", "birth_date", "phone"],
    }  # fmt: skip
    assert "1981-03-09" not in by_bob.text and "same phone number" not in by_bob.text
    [row] = [r for r in await audit_rows(settings, "intake", request_id) if r["client_id"]]
    assert (row["action"], str(row["client_id"])) == ("client.search", client["id"])
    [full] = [c for c in by_alice.json()["items"] if c["client_id"] == client["id"]]
    assert full["access"] == "full" and full["birth_date"] == "1981-03-09"
    assert "same phone number" in full["reasons"] and full["likely_duplicate"]


async def test_a_name_only_registration_s_409_shows_another_team_s_client_reduced(
    stack: Stack, settings: Settings
) -> None:
    surname = letters()
    client = await register(
        stack, ALICE, settings, given_name="Bartosz", family_name=surname, birth_date="1968-02-14"
    )
    other_team = User("tess", ("caseworker",), team_id="team-b")

    refused, _ = await call(
        stack, settings, other_team, "intake", "POST", "/v1/clients",
        json={"given_name": "Bartosz", "family_name": surname, "birth_date": None,
              "birth_date_quality": "8", "preferred_language": "pl"},
    )  # fmt: skip

    assert refused.status_code == 409, refused.text
    [candidate] = refused.json()["candidates"]
    assert candidate == {
        "access": "limited", "client_id": client["id"], "given_name": "Bartosz",
        "family_name": surname, "birth_year": 1968, "matched": ["name"],
    }  # fmt: skip
    assert "1968-02-14" not in refused.text
    # Her supervisor's team holds the record: the supervisor sees it in full.
    by_sam, _ = await call(
        stack, settings, SAM, "intake", "GET", "/v1/clients/search",
        params={"name": f"Bartosz {surname}"},
    )  # fmt: skip
    [full] = [c for c in by_sam.json()["items"] if c["client_id"] == client["id"]]
    assert full["access"] == "full" and full["birth_date"] == "1968-02-14"
