"""Progress notes: drafts, signing (once, never changed after), addenda, co-signature by
data, restricted visibility.

The pure rules first, then the API against the real database and broker, one stack for the
module.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest

from services.planning.notes import rules
from services.planning.notes.models import NoteCreate
from shared.auth.principal import Principal, Role
from shared.clock import FrozenClock
from shared.events.planning import NoteKind
from shared.settings import Settings
from tests.planning_support import (
    ALICE,
    BOB,
    SAM,
    SUE,
    call,
    ensure_case,
    events_of,
    fetchval,
    problem,
    reassign,
    register_client,
)
from tests.support import Stack, User, running_stack


@dataclass(frozen=True)
class _Case:
    organization_id: str = "org-a"
    team_id: str | None = "team-a"


def principal(
    subject: str, role: Role, team: str | None = "team-a", org: str = "org-a"
) -> Principal:
    return Principal(subject=subject, roles=frozenset({role}), organization_id=org, team_id=team)


ALICE_P = principal("alice", Role.CASEWORKER)
BOB_P = principal("bob", Role.CASEWORKER)
SAM_P = principal("sam", Role.SUPERVISOR)
SUE_P = principal("sue", Role.SUPERVISOR, team="team-b")
TWIN_P = principal("sam", Role.SUPERVISOR, org="org-b")


def test_which_kinds_need_a_cosignature_is_data() -> None:
    assert {NoteKind.CRISIS_INTERVENTION, NoteKind.CONSULTATION} == rules.COSIGNED_KINDS
    assert rules.needs_cosignature(NoteKind.CONSULTATION)
    assert not rules.needs_cosignature(NoteKind.CONTACT)


def test_a_restricted_note_is_seen_by_its_author_and_the_case_supervisor_only() -> None:
    case = _Case()
    seen = {
        p.subject + "/" + p.organization_id + "/" + str(p.team_id)
        for p in (ALICE_P, BOB_P, SAM_P, SUE_P, TWIN_P)
        if rules.may_see(restricted=True, author_id="alice", principal=p, case=case)
    }
    assert seen == {"alice/org-a/team-a", "sam/org-a/team-a"}
    assert rules.may_see(restricted=False, author_id="alice", principal=BOB_P, case=case)


def test_cosignature_rules() -> None:
    case = _Case()

    def refusal(p: Principal, **state: bool) -> str | None:
        facts = {"signed": True, "needs": True, "cosigned": False, **state}
        refused = rules.cosign_refusal(author_id="alice", principal=p, case=case, **facts)
        return refused.code if refused else None

    assert refusal(SAM_P) is None
    assert refusal(SUE_P) == "not-case-supervisor"
    assert refusal(TWIN_P) == "not-case-supervisor"
    assert refusal(BOB_P) == "not-case-supervisor"
    assert refusal(SAM_P, signed=False) == "note-not-signed"
    assert refusal(SAM_P, needs=False) == "cosignature-not-needed"
    assert refusal(SAM_P, cosigned=True) == "note-already-cosigned"
    sam_writes = rules.cosign_refusal(
        signed=True, needs=True, cosigned=False, author_id="sam", principal=SAM_P, case=case
    )
    assert sam_writes is not None and sam_writes.code == "self-cosignature"


@pytest.mark.parametrize(
    ("details", "message"),
    [
        ({"kind": "contact"}, "mode"),
        ({"kind": "contact", "mode": "telepathy"}, "mode"),
        ({"kind": "service_provided"}, "either minutes or units"),
        ({"kind": "service_provided", "minutes": 30, "units": 2}, "either minutes or units"),
        ({"kind": "advocacy", "with_role": "landlord", "on_what": "repairs"}, "with_organization"),
        ({"kind": "consultation", "participants": []}, "participants"),
        ({"kind": "note", "mode": "phone"}, "mode"),
        ({"kind": "séance"}, "kind"),
    ],
)
def test_each_kind_has_its_own_fields(details: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        NoteCreate.model_validate({"details": details, "text": "Called the client."})


def test_kind_fields_that_are_right_are_kept() -> None:
    note = NoteCreate.model_validate(
        {
            "details": {
                "kind": "consultation",
                "participants": [{"role": "psychiatrist", "organization_id": "org-clinic"}],
            },
            "text": "Case conference on medication.",
        }
    )
    assert note.details.kind == "consultation"
    assert note.details.participants[0].role == "psychiatrist"
    assert note.visibility == "standard" and note.goal_ids == []


# --- The API ----------------------------------------------------------------------------------

START = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
CONTACT = {"details": {"kind": "contact", "mode": "phone"}, "text": "Called about the flat."}
CRISIS = {"details": {"kind": "crisis_intervention"}, "text": "Safety planning after a call."}


@pytest.fixture(scope="module")
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture(autouse=True)
def _clock_back(clock: FrozenClock) -> Iterator[None]:
    clock.set(START)
    yield
    clock.set(START)


@pytest.fixture(scope="module")
async def stack(settings: Settings, clock: FrozenClock) -> AsyncIterator[Stack]:
    async with running_stack(settings, clock=clock) as stack:
        yield stack


@pytest.fixture
async def case(stack: Stack, settings: Settings) -> tuple[str, str]:
    """A fresh client of alice's with an open case assigned to her."""
    client_id = await register_client(stack, settings)
    return client_id, await ensure_case(settings, client_id)


async def write(
    stack: Stack, settings: Settings, case_id: str, body: dict[str, Any], user: User = ALICE
) -> httpx.Response:
    response = await call(stack, settings, user, "POST", f"/v1/cases/{case_id}/notes", json=body)
    assert response.status_code == 201, response.text
    return response


async def signed(stack: Stack, settings: Settings, draft: httpx.Response) -> httpx.Response:
    response = await call(
        stack, settings, ALICE, "POST", f"/v1/notes/{draft.json()['id']}/signature",
        headers={"If-Match": draft.headers["ETag"]},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    return response


async def note_rows(settings: Settings, note_id: str) -> tuple[Any, ...]:
    """What signing would change: the note's row and the events about it."""
    row = await fetchval(
        settings, "SELECT row(n.*)::text FROM planning.notes n WHERE id = $1", UUID(note_id)
    )
    events = await fetchval(
        settings,
        "SELECT count(*) FROM planning.outbox WHERE payload ->> 'note_id' = $1",
        note_id,
    )
    return row, events


async def test_a_draft_is_changed_with_if_match_signed_once_and_never_changed_again(
    stack: Stack, settings: Settings, clock: FrozenClock, case: tuple[str, str]
) -> None:
    client_id, case_id = case
    draft = await write(stack, settings, case_id, CONTACT)
    note = draft.json()
    assert (note["status"], note["kind"], note["details"]) == (
        "draft", "contact", {"kind": "contact", "mode": "phone"}
    )  # fmt: skip
    assert (note["author_id"], note["needs_cosignature"]) == ("alice", False)
    path = f"/v1/notes/{note['id']}"

    changed = await call(
        stack, settings, ALICE, "PATCH", path, json={"details": {"kind": "contact", "mode": "home_visit"}},
        headers={"If-Match": draft.headers["ETag"]},
    )  # fmt: skip
    assert changed.status_code == 200, changed.text
    assert changed.json()["details"]["mode"] == "home_visit"
    assert changed.json()["text"] == CONTACT["text"]
    stale = await call(
        stack, settings, ALICE, "PATCH", path, json={"text": "Overwritten"},
        headers={"If-Match": draft.headers["ETag"]},
    )  # fmt: skip
    problem(stale, 412, "precondition-failed")
    teammate = await call(
        stack, settings, SAM, "PATCH", path, json={"text": "Rewritten by sam"},
        headers={"If-Match": changed.headers["ETag"]},
    )  # fmt: skip
    problem(teammate, 403, "not-author")
    current = await call(stack, settings, ALICE, "GET", path)
    assert current.json()["text"] == CONTACT["text"]

    clock.advance(timedelta(minutes=30))
    done = await signed(stack, settings, changed)
    assert (done.json()["status"], done.json()["signed_by"]) == ("signed", "alice")
    assert done.json()["signed_at"] == (START + timedelta(minutes=30)).isoformat().replace(
        "+00:00", "Z"
    )
    before = await note_rows(settings, note["id"])
    twice = await call(
        stack,
        settings,
        ALICE,
        "POST",
        f"{path}/signature",
        headers={"If-Match": done.headers["ETag"]},
    )
    problem(twice, 409, "note-already-signed")
    edit = await call(
        stack, settings, ALICE, "PATCH", path, json={"text": "Changed after signing"},
        headers={"If-Match": done.headers["ETag"]},
    )  # fmt: skip
    problem(edit, 409, "note-already-signed")
    assert await note_rows(settings, note["id"]) == before

    # The contact happened when the draft was written: that is the case's last contact.
    last_contact = await fetchval(
        settings, "SELECT last_contact_at FROM planning.cases WHERE id = $1", UUID(case_id)
    )
    assert last_contact == START
    entry = await fetchval(
        settings,
        "SELECT row(kind, codes::text)::text FROM planning.case_timeline WHERE subject_id = $1",
        UUID(note["id"]),
    )
    assert entry == '(note.signed,"{""kind"": ""contact""}")'
    [event] = await events_of(
        settings, "org.casework.planning.note.signed.v1", where={"note_id": note["id"]}
    )
    assert event == {
        "case_id": case_id, "client_id": client_id, "organization_id": "org-a",
        "note_id": note["id"], "kind": "contact", "addendum_to": None, "signed_by": "alice",
        "signed_at": event["signed_at"], "needs_cosignature": False,
    }  # fmt: skip


async def test_an_addendum_corrects_a_signed_note_and_is_signed_on_its_own(
    stack: Stack, settings: Settings, case: tuple[str, str]
) -> None:
    _, case_id = case
    draft = await write(stack, settings, case_id, CONTACT)
    on_draft = await call(
        stack, settings, ALICE, "POST", f"/v1/notes/{draft.json()['id']}/addenda",
        json={"text": "Too early"},
    )  # fmt: skip
    problem(on_draft, 409, "note-not-signed")
    original = (await signed(stack, settings, draft)).json()

    added = await call(
        stack, settings, ALICE, "POST", f"/v1/notes/{original['id']}/addenda",
        json={"text": "Correction: it was a video call."},
    )  # fmt: skip
    assert added.status_code == 201, added.text
    addendum = added.json()
    assert (addendum["addendum_to"], addendum["status"], addendum["kind"]) == (
        original["id"], "draft", "contact"
    )  # fmt: skip
    await signed(stack, settings, added)
    shown = await call(stack, settings, ALICE, "GET", f"/v1/notes/{original['id']}")
    assert shown.json() == original  # the original is untouched
    [event] = await events_of(
        settings, "org.casework.planning.note.signed.v1", where={"note_id": addendum["id"]}
    )
    assert event["addendum_to"] == original["id"]


async def test_kinds_listed_as_data_need_a_cosignature_by_the_case_s_team_supervisor(
    stack: Stack, settings: Settings, case: tuple[str, str]
) -> None:
    _, case_id = case
    crisis = (await signed(stack, settings, await write(stack, settings, case_id, CRISIS))).json()
    assert crisis["needs_cosignature"] is True
    path = f"/v1/notes/{crisis['id']}/cosignature"

    [item] = [
        i for i in (await call(stack, settings, SAM, "GET", "/v1/work")).json()
        if i["subject_id"] == crisis["id"]
    ]  # fmt: skip
    assert (item["kind"], item["reason"]) == ("note_cosignature", "note_awaiting_cosignature")
    problem(await call(stack, settings, SUE, "POST", path), 404, "not-found")
    assert (await call(stack, settings, ALICE, "POST", path)).status_code == 403

    cosigned = await call(stack, settings, SAM, "POST", path)
    assert cosigned.status_code == 200, cosigned.text
    assert (cosigned.json()["cosigned_by"], cosigned.json()["status"]) == ("sam", "signed")
    problem(await call(stack, settings, SAM, "POST", path), 409, "note-already-cosigned")
    work = (await call(stack, settings, SAM, "GET", "/v1/work")).json()
    assert crisis["id"] not in {i["subject_id"] for i in work}

    contact = (await signed(stack, settings, await write(stack, settings, case_id, CONTACT))).json()
    problem(
        await call(stack, settings, SAM, "POST", f"/v1/notes/{contact['id']}/cosignature"),
        409,
        "cosignature-not-needed",
    )
    own = await write(stack, settings, case_id, CRISIS, user=SAM)
    await call(
        stack, settings, SAM, "POST", f"/v1/notes/{own.json()['id']}/signature",
        headers={"If-Match": own.headers["ETag"]},
    )  # fmt: skip
    problem(
        await call(stack, settings, SAM, "POST", f"/v1/notes/{own.json()['id']}/cosignature"),
        403,
        "self-cosignature",
    )


async def test_a_restricted_note_is_invisible_to_another_worker_of_the_team(
    stack: Stack, settings: Settings, case: tuple[str, str]
) -> None:
    client_id, case_id = case
    secret = (await write(stack, settings, case_id, {**CONTACT, "visibility": "restricted"})).json()
    standard = (await write(stack, settings, case_id, CONTACT)).json()
    sam_sees = await call(stack, settings, SAM, "GET", f"/v1/cases/{case_id}/notes")
    assert {n["id"] for n in sam_sees.json()["items"]} == {secret["id"], standard["id"]}

    await reassign(stack, settings, case_id=case_id, client_id=client_id, to=BOB)

    listed = await call(stack, settings, BOB, "GET", f"/v1/cases/{case_id}/notes")
    assert [n["id"] for n in listed.json()["items"]] == [standard["id"]]
    hidden = await call(stack, settings, BOB, "GET", f"/v1/notes/{secret['id']}")
    missing = await call(stack, settings, BOB, "GET", f"/v1/notes/{uuid4()}")
    assert hidden.status_code == missing.status_code == 404
    assert {k: v for k, v in hidden.json().items() if k not in ("instance", "request_id")} == {
        k: v for k, v in missing.json().items() if k not in ("instance", "request_id")
    }
    glass = await call(
        stack, settings, SUE, "GET", f"/v1/notes/{secret['id']}",
        headers={"X-Break-Glass-Reason": "Crisis call on the weekend line, worker away"},
    )  # fmt: skip
    problem(glass, 404, "not-found")
    opened = await call(
        stack, settings, SUE, "GET", f"/v1/notes/{standard['id']}",
        headers={"X-Break-Glass-Reason": "Crisis call on the weekend line, worker away"},
    )  # fmt: skip
    assert opened.status_code == 200, opened.text
    assert (await call(stack, settings, SAM, "GET", f"/v1/notes/{secret['id']}")).status_code == 200
    entries = await fetchval(
        settings, "SELECT count(*) FROM planning.case_timeline WHERE subject_id = $1",
        UUID(secret["id"]),
    )  # fmt: skip
    assert entries == 0


async def test_a_note_points_only_at_goals_of_its_case_and_not_into_the_future(
    stack: Stack, settings: Settings, case: tuple[str, str]
) -> None:
    _, case_id = case
    unknown = await call(
        stack, settings, ALICE, "POST", f"/v1/cases/{case_id}/notes",
        json={**CONTACT, "goal_ids": [str(uuid4())]},
    )  # fmt: skip
    assert problem(unknown, 422, "unknown-goal")["errors"][0]["field"] == "body.goal_ids"
    future = await call(
        stack, settings, ALICE, "POST", f"/v1/cases/{case_id}/notes",
        json={**CONTACT, "occurred_at": (START + timedelta(hours=1)).isoformat()},
    )  # fmt: skip
    problem(future, 422, "occurred-in-future")
    assert (
        await fetchval(
            settings, "SELECT count(*) FROM planning.notes WHERE case_id = $1", UUID(case_id)
        )
        == 0
    )


async def test_drafts_unsigned_for_more_than_48_hours_are_their_author_s_due_work(
    stack: Stack, settings: Settings, clock: FrozenClock, case: tuple[str, str]
) -> None:
    _, case_id = case
    draft = (await write(stack, settings, case_id, CONTACT)).json()

    async def unsigned(user: User) -> list[dict[str, Any]]:
        response = await call(stack, settings, user, "GET", "/v1/work")
        assert response.status_code == 200, response.text
        return [i for i in response.json() if i["subject_id"] == draft["id"]]

    clock.advance(timedelta(hours=47))
    assert await unsigned(ALICE) == []
    clock.advance(timedelta(hours=2))
    [item] = await unsigned(ALICE)
    assert (item["kind"], item["overdue"], item["case_id"]) == ("unsigned_note", True, case_id)
    assert await unsigned(SAM) == []
