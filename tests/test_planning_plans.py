"""Service plans: versioned goals, actions and safety plan; approval through the generic
mechanism; goal status and progress on the version in force; the diff between versions.

The pure rules first (content building, goal transitions, the diff), then the API against the
real database and broker, one stack for the module.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest

from services.planning.plans.content import (
    InvalidContent,
    PlanContent,
    PlanContentInput,
    SafetyPlan,
    build_content,
)
from services.planning.plans.diff import diff
from services.planning.plans.goals import may_change
from shared.clock import FrozenClock
from shared.events.planning import GoalStatus
from shared.settings import Settings
from tests.planning_support import (
    ALICE,
    AUDREY,
    BOB,
    SAM,
    SID,
    SUE,
    TWIN,
    call,
    ensure_case,
    events_of,
    fetchval,
    problem,
    register_client,
)
from tests.support import Stack, User, running_stack

TODAY = date(2026, 11, 29)
NEEDS = frozenset({"housing", "employment"})


def goal(**overrides: object) -> dict[str, object]:
    return {
        "need_category": "housing",
        "description": "Move into a stable tenancy",
        "measure": "Nights in own tenancy per month",
        "target_value": 30,
        "target_date": "2027-03-01",
        "priority": "high",
        "actions": [
            {
                "description": "Apply for the housing register",
                "responsible": {"kind": "client"},
                "due_date": "2026-12-15",
            }
        ],
        **overrides,
    }


def content(*goals: dict[str, object], **safety: list[str]) -> PlanContentInput:
    return PlanContentInput.model_validate({"goals": list(goals), "safety_plan": safety})


def built(data: PlanContentInput, previous: PlanContent | None = None) -> PlanContent:
    return build_content(data, previous=previous or PlanContent(), case_needs=NEEDS, today=TODAY)


# --- Content rules --------------------------------------------------------------------------


def test_new_goals_and_actions_get_ids_and_keep_them_on_edit() -> None:
    first = built(content(goal()))
    [kept] = first.goals
    edited = built(
        content(
            goal(
                id=str(kept.id),
                target_value=25,
                actions=[{**goal()["actions"][0], "id": str(kept.actions[0].id)}],  # type: ignore[index]
            ),
            goal(need_category="employment", description="Find part-time work"),
        ),
        previous=first,
    )
    assert edited.goals[0].id == kept.id
    assert edited.goals[0].actions[0].id == kept.actions[0].id
    assert edited.goals[0].target_value == 25
    assert edited.goals[1].id not in (kept.id, kept.actions[0].id)


def test_ids_a_caller_invents_are_refused() -> None:
    with pytest.raises(InvalidContent) as refused:
        built(content(goal(id=str(uuid4()))))
    assert [(e.field, e.code) for e in refused.value.errors] == [
        ("body.goals.0.id", "unknown-goal")
    ]


def test_a_goal_must_be_tied_to_a_need_of_the_case() -> None:
    with pytest.raises(InvalidContent) as refused:
        built(content(goal(need_category="legal")))
    assert [e.code for e in refused.value.errors] == ["need-not-on-case"]


def test_past_target_and_due_dates_are_refused_when_written() -> None:
    past_action = {
        "description": "Call",
        "responsible": {"kind": "client"},
        "due_date": "2026-11-28",
    }
    with pytest.raises(InvalidContent) as refused:
        built(content(goal(target_date="2026-11-28", actions=[past_action])))
    assert sorted((e.field, e.code) for e in refused.value.errors) == [
        ("body.goals.0.actions.0.due_date", "date_past"),
        ("body.goals.0.target_date", "date_past"),
    ]


def test_a_past_date_carried_unchanged_from_before_stays_as_agreed() -> None:
    earlier = build_content(
        content(goal(target_date="2026-06-01", actions=[])),
        previous=PlanContent(),
        case_needs=NEEDS,
        today=date(2026, 1, 1),
    )
    [old] = earlier.goals
    again = built(content(goal(id=str(old.id), target_date="2026-06-01", actions=[])), earlier)
    assert again.goals[0].target_date == date(2026, 6, 1)


def test_a_goal_without_measure_or_target_date_is_invalid() -> None:
    for missing in ("measure", "target_date"):
        incomplete = {k: v for k, v in goal().items() if k != missing}
        with pytest.raises(ValueError, match=missing):
            content(incomplete)


def test_responsible_party_names_exactly_what_its_kind_needs() -> None:
    for responsible in (
        {"kind": "worker"},
        {"kind": "client", "worker_id": "alice"},
        {"kind": "partner", "worker_id": "alice"},
    ):
        action = {"description": "x", "responsible": responsible, "due_date": "2027-01-01"}
        with pytest.raises(ValueError, match="worker names worker_id only"):
            content(goal(actions=[action]))
    assert (
        content(
            goal(
                actions=[
                    {
                        "description": "Hold a place",
                        "responsible": {"kind": "partner", "organization_id": "org-shelter"},
                        "due_date": "2027-01-01",
                    }
                ]
            )
        )
        .goals[0]
        .actions[0]
        .responsible.organization_id
        == "org-shelter"
    )


def test_a_goal_or_action_repeated_is_refused() -> None:
    first = built(content(goal()))
    again = str(first.goals[0].id)
    with pytest.raises(InvalidContent) as refused:
        built(content(goal(id=again), goal(id=again)), first)
    assert [e.code for e in refused.value.errors] == ["duplicate-id"]


# --- Goal transitions -----------------------------------------------------------------------


def test_goal_transitions() -> None:
    assert may_change(GoalStatus.PROPOSED, GoalStatus.ACTIVE)
    assert may_change(GoalStatus.ACTIVE, GoalStatus.ACHIEVED)
    assert may_change(GoalStatus.ON_HOLD, GoalStatus.ACTIVE)
    assert not may_change(GoalStatus.ACHIEVED, GoalStatus.ACTIVE)
    assert not may_change(GoalStatus.CANCELLED, GoalStatus.PROPOSED)
    assert not may_change(GoalStatus.ACTIVE, GoalStatus.ACTIVE)


# --- The diff -------------------------------------------------------------------------------


def test_diff_names_goals_and_actions_added_removed_and_changed_and_safety_items() -> None:
    old = built(
        content(
            goal(),
            goal(need_category="employment", description="Find work", actions=[]),
            warning_signs=["Not sleeping"],
            coping_strategies=["Walk the dog"],
        )
    )
    housing, work = old.goals
    new = built(
        content(
            goal(
                id=str(housing.id),
                target_date="2027-04-01",
                actions=[
                    {
                        "id": str(housing.actions[0].id),
                        "description": "Apply for the housing register",
                        "responsible": {"kind": "worker", "worker_id": "alice"},
                        "due_date": "2026-12-15",
                    },
                    {
                        "description": "View flats",
                        "responsible": {"kind": "client"},
                        "due_date": "2027-01-10",
                    },
                ],
            ),
            goal(need_category="employment", description="Start a course", actions=[]),
            warning_signs=["Not sleeping", "Missing appointments"],
            coping_strategies=[],
        ),
        old,
    )
    changes = diff(old.goals, old.safety_plan, new.goals, new.safety_plan)

    new_goal = new.goals[1].id
    assert changes.goals.added == [new_goal]
    assert changes.goals.removed == [work.id]
    [changed] = changes.goals.changed
    assert changed.goal_id == housing.id
    assert {k: (v.before, v.after) for k, v in changed.fields.items()} == {
        "target_date": ("2027-03-01", "2027-04-01")
    }
    [action_change] = changes.actions.changed
    assert action_change.action_id == housing.actions[0].id
    assert action_change.fields["responsible"].after == {
        "kind": "worker",
        "worker_id": "alice",
        "organization_id": None,
    }
    assert [a.action_id for a in changes.actions.added] == [new.goals[0].actions[1].id]
    assert changes.actions.removed == []
    assert {k: (v.added, v.removed) for k, v in changes.safety_plan.items()} == {
        "warning_signs": (["Missing appointments"], []),
        "coping_strategies": ([], ["Walk the dog"]),
    }


def test_the_diff_of_a_version_with_itself_is_empty() -> None:
    same = built(content(goal(), warning_signs=["x"]))
    changes = diff(same.goals, same.safety_plan, same.goals, same.safety_plan)
    assert changes.goals.added == changes.goals.removed == changes.goals.changed == []
    assert changes.actions.changed == [] and changes.safety_plan == {}


def test_safety_plan_items_are_checked_text() -> None:
    with pytest.raises(ValueError, match="control characters"):
        SafetyPlan.model_validate({"warning_signs": ["ok\x1b[31m"]})


# --- The API ----------------------------------------------------------------------------------

START = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


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
    """A fresh client of alice's with an open case (needs: housing, employment)."""
    client_id = await register_client(stack, settings)
    return client_id, await ensure_case(settings, client_id)


API_GOAL = {**goal(), "target_date": "2027-03-01"}
SAFETY = {"warning_signs": ["Not sleeping"], "professionals_and_crisis_lines": ["988"]}


async def draft_plan(stack: Stack, settings: Settings, case_id: str) -> httpx.Response:
    response = await call(
        stack, settings, ALICE, "POST", f"/v1/cases/{case_id}/plans",
        json={"goals": [API_GOAL], "safety_plan": SAFETY},
    )  # fmt: skip
    assert response.status_code == 201, response.text
    return response


async def agreed(stack: Stack, settings: Settings, plan: httpx.Response) -> httpx.Response:
    body = plan.json()
    response = await call(
        stack, settings, ALICE, "PUT", f"/v1/plans/{body['id']}/agreement",
        json={"how": "verbal", "at": START.isoformat()},
        headers={"If-Match": plan.headers["ETag"]},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    return response


async def approved(
    stack: Stack, settings: Settings, plan: httpx.Response, *, by: User = SAM
) -> dict[str, Any]:
    """Agreed, requested by alice, approved by `by`: the version in force."""
    ready = await agreed(stack, settings, plan)
    requested = await call(
        stack, settings, ALICE, "POST", f"/v1/plans/{ready.json()['id']}/approval-request",
        headers={"If-Match": ready.headers["ETag"]},
    )  # fmt: skip
    assert requested.status_code == 200, requested.text
    decided = await call(
        stack, settings, by, "POST", f"/v1/approvals/{requested.json()['approval_id']}/decision",
        json={"decision": "approved"},
    )  # fmt: skip
    assert decided.status_code == 200, decided.text
    shown = await call(stack, settings, ALICE, "GET", f"/v1/plans/{ready.json()['id']}")
    result: dict[str, Any] = shown.json()
    return result


async def test_a_draft_is_edited_with_if_match_and_a_stale_edit_changes_nothing(
    stack: Stack, settings: Settings, case: tuple[str, str]
) -> None:
    client_id, case_id = case
    created = await draft_plan(stack, settings, case_id)
    plan = created.json()
    assert (plan["version"], plan["status"], plan["client_id"]) == (1, "draft", client_id)
    assert created.headers["Location"] == f"/v1/plans/{plan['id']}"
    [first] = plan["goals"]
    assert (first["need_category"], first["measure"], first["status"]) == (
        "housing", "Nights in own tenancy per month", "proposed"
    )  # fmt: skip
    assert plan["safety_plan"]["professionals_and_crisis_lines"] == ["988"]
    assert plan["client_agreement"] is None

    edited_goal = {**API_GOAL, "id": first["id"], "target_value": 20}
    edit = {"goals": [edited_goal], "safety_plan": SAFETY}
    path = f"/v1/plans/{plan['id']}"
    missing = await call(stack, settings, ALICE, "PUT", path, json=edit)
    problem(missing, 428, "precondition-required")
    done = await call(
        stack,
        settings,
        ALICE,
        "PUT",
        path,
        json=edit,
        headers={"If-Match": created.headers["ETag"]},
    )
    assert done.status_code == 200, done.text
    assert done.json()["goals"][0]["id"] == first["id"]
    assert done.json()["goals"][0]["target_value"] == 20

    stale = await call(
        stack, settings, ALICE, "PUT", path,
        json={**edit, "goals": [{**edited_goal, "target_value": 99}]},
        headers={"If-Match": created.headers["ETag"]},
    )  # fmt: skip
    problem(stale, 412, "precondition-failed")
    after = await call(stack, settings, ALICE, "GET", path)
    assert after.json()["goals"][0]["target_value"] == 20
    assert after.headers["ETag"] == done.headers["ETag"]

    again = await call(
        stack, settings, ALICE, "POST", f"/v1/cases/{case_id}/plans", json={"goals": []}
    )
    assert problem(again, 409, "plan-exists")["plan_id"] == plan["id"]
    listed = await call(stack, settings, ALICE, "GET", f"/v1/cases/{case_id}/plans")
    assert [(p["id"], p["version"]) for p in listed.json()["items"]] == [(plan["id"], 1)]


@pytest.mark.parametrize(
    ("change", "field", "code"),
    [
        ({"measure": None}, "measure", "missing"),
        ({"target_date": None}, "target_date", "missing"),
        ({"target_date": "2026-11-28"}, "body.goals.0.target_date", "date_past"),
        ({"need_category": "legal"}, "body.goals.0.need_category", "need-not-on-case"),
    ],
)
async def test_a_goal_breaking_a_rule_is_refused_and_nothing_is_written(
    stack: Stack,
    settings: Settings,
    case: tuple[str, str],
    change: dict[str, Any],
    field: str,
    code: str,
) -> None:
    _, case_id = case
    bad = {k: v for k, v in {**API_GOAL, **change}.items() if v is not None}
    response = await call(
        stack, settings, ALICE, "POST", f"/v1/cases/{case_id}/plans", json={"goals": [bad]}
    )
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert any(field in e["field"] and e["code"] == code for e in errors), errors
    assert (
        await fetchval(
            settings, "SELECT count(*) FROM planning.plans WHERE case_id = $1", UUID(case_id)
        )
        == 0
    )


async def test_the_injected_clock_decides_what_is_past(
    stack: Stack, settings: Settings, clock: FrozenClock, case: tuple[str, str]
) -> None:
    _, case_id = case
    clock.advance(timedelta(days=120))  # 2027-03-29: the goal's 2027-03-01 is past now
    response = await call(
        stack, settings, ALICE, "POST", f"/v1/cases/{case_id}/plans", json={"goals": [API_GOAL]}
    )
    assert response.json()["errors"][0]["code"] == "date_past", response.text


async def test_approval_goes_through_a_supervisor_of_the_case_s_team_never_the_requester(
    stack: Stack, settings: Settings, case: tuple[str, str]
) -> None:
    client_id, case_id = case
    ready = await agreed(stack, settings, await draft_plan(stack, settings, case_id))
    plan_id = ready.json()["id"]
    second_plan = await call(
        stack, settings, ALICE, "POST", f"/v1/cases/{case_id}/plans", json={"goals": []}
    )
    problem(second_plan, 409, "plan-exists")
    # sam asks for the approval himself: he cannot decide it, sue (another team) cannot see it.
    requested = await call(
        stack, settings, SAM, "POST", f"/v1/plans/{plan_id}/approval-request",
        headers={"If-Match": ready.headers["ETag"]},
    )  # fmt: skip
    assert requested.status_code == 200, requested.text
    assert requested.json()["status"] == "awaiting_approval"
    approval = f"/v1/approvals/{requested.json()['approval_id']}/decision"
    editing = await call(
        stack, settings, ALICE, "PUT", f"/v1/plans/{plan_id}", json={"goals": []},
        headers={"If-Match": requested.headers["ETag"]},
    )  # fmt: skip
    problem(editing, 409, "plan-not-draft")
    own = await call(stack, settings, SAM, "POST", approval, json={"decision": "approved"})
    problem(own, 403, "self-approval")
    outside = await call(stack, settings, SUE, "POST", approval, json={"decision": "approved"})
    assert outside.status_code == 404, outside.text
    caseworker = await call(stack, settings, ALICE, "POST", approval, json={"decision": "approved"})
    assert caseworker.status_code == 403, caseworker.text
    status = await fetchval(
        settings, "SELECT status FROM planning.plans WHERE id = $1", UUID(plan_id)
    )
    assert status == "awaiting_approval"

    decided = await call(stack, settings, SID, "POST", approval, json={"decision": "approved"})
    assert decided.status_code == 200, decided.text
    shown = (await call(stack, settings, ALICE, "GET", f"/v1/plans/{plan_id}")).json()
    assert (shown["status"], shown["approved_by"]) == ("approved", "sid")
    assert (
        await fetchval(settings, "SELECT status FROM planning.cases WHERE id = $1", UUID(case_id))
        == "active"
    )
    entry = await fetchval(
        settings,
        "SELECT row(kind, subject_type, codes::text)::text FROM planning.case_timeline "
        "WHERE case_id = $1 AND subject_id = $2",
        UUID(case_id), UUID(plan_id),
    )  # fmt: skip
    assert entry == '(plan.approved,plan,"{""version"": ""1""}")'
    [event] = await events_of(
        settings, "org.casework.planning.plan.approved.v1", where={"plan_id": plan_id}
    )
    assert event == {
        "case_id": case_id, "client_id": client_id, "organization_id": "org-a",
        "plan_id": plan_id, "version": 1, "approved_by": "sid",
        "approved_at": event["approved_at"],
    }  # fmt: skip


async def test_a_rejected_plan_is_a_draft_again(
    stack: Stack, settings: Settings, case: tuple[str, str]
) -> None:
    _, case_id = case
    ready = await agreed(stack, settings, await draft_plan(stack, settings, case_id))
    requested = await call(
        stack, settings, ALICE, "POST", f"/v1/plans/{ready.json()['id']}/approval-request",
        headers={"If-Match": ready.headers["ETag"]},
    )  # fmt: skip
    rejected = await call(
        stack, settings, SAM, "POST", f"/v1/approvals/{requested.json()['approval_id']}/decision",
        json={"decision": "rejected", "comment": "Add an employment goal."},
    )  # fmt: skip
    assert rejected.status_code == 200, rejected.text
    shown = await call(stack, settings, ALICE, "GET", f"/v1/plans/{ready.json()['id']}")
    assert (shown.json()["status"], shown.json()["approval_id"]) == ("draft", None)
    assert (
        await fetchval(settings, "SELECT status FROM planning.cases WHERE id = $1", UUID(case_id))
        == "open"
    )


async def test_a_withdrawn_request_leaves_a_draft_to_work_on(
    stack: Stack, settings: Settings, case: tuple[str, str]
) -> None:
    _, case_id = case
    ready = await agreed(stack, settings, await draft_plan(stack, settings, case_id))
    requested = await call(
        stack, settings, ALICE, "POST", f"/v1/plans/{ready.json()['id']}/approval-request",
        headers={"If-Match": ready.headers["ETag"]},
    )  # fmt: skip
    withdrawn = await call(
        stack, settings, ALICE, "POST",
        f"/v1/approvals/{requested.json()['approval_id']}/withdrawal", json={},
    )  # fmt: skip
    assert withdrawn.status_code == 200, withdrawn.text
    shown = await call(stack, settings, ALICE, "GET", f"/v1/plans/{ready.json()['id']}")
    assert (shown.json()["status"], shown.json()["approval_id"]) == ("draft", None)
    edited = await call(
        stack, settings, ALICE, "PUT", f"/v1/plans/{ready.json()['id']}",
        json={"goals": [{**API_GOAL, "id": ready.json()["goals"][0]["id"]}]},
        headers={"If-Match": shown.headers["ETag"]},
    )  # fmt: skip
    assert edited.status_code == 200, edited.text


async def test_approval_needs_the_client_s_agreement_and_a_content_change_clears_it(
    stack: Stack, settings: Settings, clock: FrozenClock, case: tuple[str, str]
) -> None:
    _, case_id = case
    created = await draft_plan(stack, settings, case_id)
    plan_id = created.json()["id"]
    early = await call(
        stack, settings, ALICE, "POST", f"/v1/plans/{plan_id}/approval-request",
        headers={"If-Match": created.headers["ETag"]},
    )  # fmt: skip
    problem(early, 422, "agreement-missing")
    future = await call(
        stack, settings, ALICE, "PUT", f"/v1/plans/{plan_id}/agreement",
        json={"how": "signed", "at": (START + timedelta(hours=1)).isoformat()},
        headers={"If-Match": created.headers["ETag"]},
    )  # fmt: skip
    problem(future, 422, "agreement-in-future")
    signed = await agreed(stack, settings, created)
    assert signed.json()["client_agreement"]["how"] == "verbal"

    clock.advance(timedelta(hours=2))
    changed = await call(
        stack, settings, ALICE, "PUT", f"/v1/plans/{plan_id}",
        json={"goals": [{**API_GOAL, "id": created.json()["goals"][0]["id"], "priority": "low"}]},
        headers={"If-Match": signed.headers["ETag"]},
    )  # fmt: skip
    assert changed.json()["client_agreement"] is None
    before_change = await call(
        stack, settings, ALICE, "PUT", f"/v1/plans/{plan_id}/agreement",
        json={"how": "signed", "at": (START + timedelta(hours=1)).isoformat()},
        headers={"If-Match": changed.headers["ETag"]},
    )  # fmt: skip
    problem(before_change, 422, "agreement-before-content")


async def test_an_approved_version_is_never_edited_revisions_keep_ids_and_the_diff_shows_changes(
    stack: Stack, settings: Settings, case: tuple[str, str]
) -> None:
    _, case_id = case
    v1 = await approved(stack, settings, await draft_plan(stack, settings, case_id))
    housing = v1["goals"][0]
    for method, path, body in (
        ("PUT", f"/v1/plans/{v1['id']}", {"goals": []}),
        ("PUT", f"/v1/plans/{v1['id']}/agreement", {"how": "verbal", "at": START.isoformat()}),
    ):
        refused = await call(
            stack, settings, ALICE, method, path, json=body,
            headers={"If-Match": f'"{v1["id"]}.{v1["row_version"]}"'},
        )  # fmt: skip
        problem(refused, 409, "plan-not-draft")

    revised = await call(stack, settings, ALICE, "POST", f"/v1/plans/{v1['id']}/revision")
    assert revised.status_code == 201, revised.text
    v2 = revised.json()
    assert (v2["version"], v2["status"], v2["based_on"]) == (2, "draft", v1["id"])
    assert [g["id"] for g in v2["goals"]] == [housing["id"]]
    assert v2["goals"][0]["actions"][0]["id"] == housing["actions"][0]["id"]
    twice = await call(stack, settings, ALICE, "POST", f"/v1/plans/{v1['id']}/revision")
    assert problem(twice, 409, "draft-exists")["plan_id"] == v2["id"]

    edited = await call(
        stack, settings, ALICE, "PUT", f"/v1/plans/{v2['id']}",
        json={
            "goals": [
                {**API_GOAL, "id": housing["id"], "target_value": 25, "actions": []},
                {**API_GOAL, "need_category": "employment", "description": "Start a course",
                 "actions": []},
            ],
            "safety_plan": {**SAFETY, "coping_strategies": ["Call my sister"]},
        },
        headers={"If-Match": revised.headers["ETag"]},
    )  # fmt: skip
    assert edited.status_code == 200, edited.text
    added = edited.json()["goals"][1]["id"]

    diff_ = await call(
        stack, settings, ALICE, "GET", f"/v1/plans/{v2['id']}/diff", params={"against": v1["id"]}
    )
    assert diff_.status_code == 200, diff_.text
    changes = diff_.json()
    assert (changes["version"], changes["against_version"]) == (2, 1)
    assert changes["goals"]["added"] == [added]
    assert changes["goals"]["removed"] == []
    assert changes["goals"]["changed"] == [
        {"goal_id": housing["id"], "fields": {"target_value": {"before": 30.0, "after": 25.0}}}
    ]
    assert changes["actions"]["removed"] == [
        {"goal_id": housing["id"], "action_id": housing["actions"][0]["id"]}
    ]
    assert changes["safety_plan"] == {
        "coping_strategies": {"added": ["Call my sister"], "removed": []}
    }

    v2_approved = await approved(stack, settings, edited)
    assert v2_approved["status"] == "approved"
    old = await call(stack, settings, ALICE, "GET", f"/v1/plans/{v1['id']}")
    assert old.json()["status"] == "superseded"
    listed = await call(stack, settings, ALICE, "GET", f"/v1/cases/{case_id}/plans")
    assert [(p["version"], p["status"]) for p in listed.json()["items"]] == [
        (2, "approved"), (1, "superseded")
    ]  # fmt: skip


async def test_the_diff_compares_only_versions_of_the_same_case(
    stack: Stack, settings: Settings, case: tuple[str, str]
) -> None:
    _, case_id = case
    mine = (await draft_plan(stack, settings, case_id)).json()
    other_client = await register_client(stack, settings)
    other = (await draft_plan(stack, settings, await ensure_case(settings, other_client))).json()
    response = await call(
        stack, settings, ALICE, "GET", f"/v1/plans/{mine['id']}/diff",
        params={"against": other["id"]},
    )  # fmt: skip
    problem(response, 404, "not-found")


async def test_goals_of_the_version_in_force_change_status_and_record_progress(
    stack: Stack, settings: Settings, case: tuple[str, str]
) -> None:
    client_id, case_id = case
    created = await draft_plan(stack, settings, case_id)
    draft_goal = created.json()["goals"][0]["id"]
    on_draft = await call(
        stack, settings, ALICE, "POST",
        f"/v1/plans/{created.json()['id']}/goals/{draft_goal}/status", json={"status": "active"},
    )  # fmt: skip
    problem(on_draft, 409, "plan-not-in-force")
    plan = await approved(stack, settings, created)
    goal_path = f"/v1/plans/{plan['id']}/goals/{draft_goal}"

    active = await call(
        stack, settings, ALICE, "POST", f"{goal_path}/status", json={"status": "active"}
    )
    assert active.status_code == 200, active.text
    assert active.json()["goals"][0]["status"] == "active"
    progress = await call(
        stack, settings, ALICE, "POST", f"{goal_path}/progress",
        json={"value": 12, "note": "Twelve nights in the flat."},
    )  # fmt: skip
    assert progress.status_code == 201, progress.text
    future = await call(
        stack, settings, ALICE, "POST", f"{goal_path}/progress",
        json={"value": 13, "recorded_at": (START + timedelta(days=1)).isoformat()},
    )  # fmt: skip
    problem(future, 422, "progress-in-future")
    achieved = await call(
        stack, settings, ALICE, "POST", f"{goal_path}/status", json={"status": "achieved"}
    )
    assert achieved.status_code == 200, achieved.text
    reopened = await call(
        stack, settings, ALICE, "POST", f"{goal_path}/status", json={"status": "active"}
    )
    problem(reopened, 409, "goal-status-transition")
    unknown = await call(
        stack, settings, ALICE, "POST",
        f"/v1/plans/{plan['id']}/goals/{uuid4()}/status", json={"status": "active"},
    )  # fmt: skip
    problem(unknown, 404, "not-found")

    shown = (await call(stack, settings, ALICE, "GET", f"/v1/plans/{plan['id']}")).json()
    [goal_shown] = shown["goals"]
    assert goal_shown["status"] == "achieved"
    assert [(p["value"], p["note"]) for p in goal_shown["progress"]] == [
        (12.0, "Twelve nights in the flat.")
    ]
    events = await events_of(
        settings, "org.casework.planning.goal.status.changed.v1",
        where={"goal_id": draft_goal}, count=2,
    )  # fmt: skip
    assert [(e["from_status"], e["to_status"]) for e in events] == [
        ("proposed", "active"), ("active", "achieved")
    ]  # fmt: skip
    assert set(events[0]) == {
        "case_id", "client_id", "organization_id", "plan_id", "goal_id", "from_status",
        "to_status", "changed_by", "changed_at",
    }  # fmt: skip
    assert events[0]["client_id"] == client_id
    text = json.dumps(events)
    assert "tenancy" not in text and "Twelve" not in text

    # A revision starts from the goals' current status; its progress history follows the id.
    revised = await call(stack, settings, ALICE, "POST", f"/v1/plans/{plan['id']}/revision")
    [carried] = revised.json()["goals"]
    assert (carried["id"], carried["status"]) == (draft_goal, "achieved")
    assert [p["value"] for p in carried["progress"]] == [12.0]


async def test_plans_are_seen_by_the_case_s_worker_and_team_supervisor_only(
    stack: Stack, settings: Settings, case: tuple[str, str]
) -> None:
    _, case_id = case
    plan_id = (await draft_plan(stack, settings, case_id)).json()["id"]
    for user, status in ((SAM, 200), (BOB, 404), (SUE, 404), (TWIN, 404), (AUDREY, 403)):
        response = await call(stack, settings, user, "GET", f"/v1/plans/{plan_id}")
        assert response.status_code == status, (user, response.text)
    missing = await call(stack, settings, ALICE, "GET", f"/v1/plans/{uuid4()}")
    problem(missing, 404, "not-found")


async def test_supervisors_see_plans_awaiting_their_approval_in_their_due_work(
    stack: Stack, settings: Settings, case: tuple[str, str]
) -> None:
    _, case_id = case
    ready = await agreed(stack, settings, await draft_plan(stack, settings, case_id))
    await call(
        stack, settings, ALICE, "POST", f"/v1/plans/{ready.json()['id']}/approval-request",
        headers={"If-Match": ready.headers["ETag"]},
    )  # fmt: skip

    def plan_items(response: httpx.Response) -> list[dict[str, Any]]:
        assert response.status_code == 200, response.text
        return [i for i in response.json() if i["subject_id"] == ready.json()["id"]]

    [item] = plan_items(await call(stack, settings, SAM, "GET", "/v1/work"))
    assert (item["kind"], item["case_id"], item["overdue"]) == ("plan_approval", case_id, False)
    assert plan_items(await call(stack, settings, SUE, "GET", "/v1/work")) == []
    assert plan_items(await call(stack, settings, ALICE, "GET", "/v1/work")) == []
