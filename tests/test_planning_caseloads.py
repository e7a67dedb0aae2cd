"""Caseload views on planning: a worker's open cases, a team's weighted load against capacity,
and ranked assignment suggestions, on one worked example at a frozen time.

Team team-c of org-load: ana (capacity 10, speaks pt), ben (capacity 5, en), cy (capacity 8,
pt and es), sup (the team's supervisor, capacity 0), zed (inactive). dan is of team-d. The
cases and their clients' access facts are written directly (opening cases is another part of
planning's API); the weights come from the data file (crisis 3, high 2, moderate 1.5, low 1,
not assessed 1).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest

from services.planning.caseloads.models import WorkerLoad
from services.planning.caseloads.service import language_key, suggest
from services.planning.caseloads.weights import RISK_WEIGHTS, parse_weights
from shared.clock import FrozenClock
from shared.settings import Settings
from tests.support import Stack, User, bearer, running_stack

ORG = "org-load"
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
ADMIN = User("load-admin", ("admin",), ORG, None)
ANA = User("ana", ("caseworker",), ORG, "team-c")
BEN = User("ben", ("caseworker",), ORG, "team-c")
SUP = User("sup", ("supervisor",), ORG, "team-c")
DAN_SUP = User("dan-sup", ("supervisor",), ORG, "team-d")
FOREIGN_SUP = User("sup", ("supervisor",), "org-load-b", "team-c")

DAY = timedelta(days=1)
# (case key, worker, team, status, risk level, review due (from NOW), last contact (from NOW))
CASES: list[tuple[str, str, str, str, str | None, timedelta | None, timedelta | None]] = [
    ("A1", "ana", "team-c", "open", "crisis", -DAY, -timedelta(days=3, hours=12)),
    ("A2", "ana", "team-c", "active", "high", 2 * DAY, None),
    ("A3", "ana", "team-c", "on_hold", "low", 10 * DAY, -40 * DAY),
    ("A4", "ana", "team-c", "open", None, None, None),
    ("A5", "ana", "team-c", "closed", "high", -DAY, None),
    ("B1", "ben", "team-c", "open", "moderate", -timedelta(hours=2), None),
    ("B2", "ben", "team-c", "open", "moderate", -5 * DAY, None),
    ("B3", "ben", "team-c", "open", "high", 3 * DAY, None),
    ("B4", "ben", "team-c", "open", "crisis", DAY, None),
    ("C1", "cy", "team-c", "open", "low", 30 * DAY, None),
    ("C2", "cy", "team-d", "open", "moderate", 30 * DAY, None),  # cy's case of another team
    ("Z1", "zed", "team-c", "open", "high", -DAY, None),
    ("D1", "dan", "team-d", "open", "crisis", -DAY, None),
]


@pytest.fixture(scope="module")
async def stack(settings: Settings) -> AsyncIterator[Stack]:
    async with running_stack(settings, clock=FrozenClock(NOW)) as stack:
        yield stack


async def call(
    stack: Stack, settings: Settings, user: User, path: str
) -> tuple[httpx.Response, str]:
    request_id = str(uuid.uuid4())
    headers = {"X-Request-ID": request_id, **bearer(settings, user)}
    return await stack.api["planning"].get(path, headers=headers), request_id


async def audit(settings: Settings, request_id: str) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(settings.database_url)
    try:
        return list(
            await connection.fetch(
                "SELECT action, outcome, resource_id, client_id FROM planning.audit_log "
                "WHERE request_id = $1 ORDER BY seq",
                request_id,
            )
        )
    finally:
        await connection.close()


@pytest.fixture(scope="module")
async def world(stack: Stack, settings: Settings) -> dict[str, tuple[str, str]]:
    """The directory and the cases; returns each case key's (case id, client id)."""
    for worker_id, fields in (
        ("ana", {"team_id": "team-c", "capacity_points": 10, "languages": ["pt"]}),
        ("ben", {"team_id": "team-c", "capacity_points": 5, "languages": ["en"]}),
        ("cy", {"team_id": "team-c", "capacity_points": 8, "languages": ["pt", "es"]}),
        ("sup", {"team_id": "team-c", "capacity_points": 0, "role": "supervisor"}),
        ("zed", {"team_id": "team-c", "capacity_points": 9, "active": False}),
        ("dan", {"team_id": "team-d", "capacity_points": 9}),
    ):
        response = await stack.api["planning"].put(
            f"/v1/workers/{worker_id}",
            json={"display_name": worker_id.title(), **fields},
            headers=bearer(settings, ADMIN),
        )
        assert response.status_code == 201, response.text
    ids: dict[str, tuple[str, str]] = {}
    connection = await asyncpg.connect(settings.database_url)
    try:
        for key, worker, team, status, risk, due, contact in CASES:
            case_id, client_id = uuid.uuid4(), uuid.uuid4()
            await connection.execute(
                "INSERT INTO planning.client_access (client_id, organization_id, team_id, "
                "registered_by, owner_id, assigned_at) VALUES ($1, $2, $3, $4, $4, $5)",
                client_id, ORG, team, worker, NOW - 60 * DAY,
            )  # fmt: skip
            await connection.execute(
                "INSERT INTO planning.cases (id, client_id, organization_id, team_id, "
                "worker_id, status, risk_level, preferred_language, source, opened_by, "
                "opened_at, next_review_due_at, last_contact_at, updated_at) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'manual', $5, $9, $10, $11, $9)",
                case_id, client_id, ORG, team, worker, status, risk,
                "por" if key == "A2" else None, NOW - 60 * DAY,
                NOW + due if due is not None else None,
                NOW + contact if contact is not None else None,
            )  # fmt: skip
            ids[key] = (str(case_id), str(client_id))
    finally:
        await connection.close()
    return ids


async def test_the_team_view_weighs_each_worker_s_open_cases_against_capacity(
    stack: Stack, settings: Settings, world: dict[str, tuple[str, str]]
) -> None:
    response, request_id = await call(stack, settings, SUP, "/v1/teams/team-c/caseload")

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["organization_id"], body["team_id"]) == (ORG, "team-c")
    assert body["as_of"] == "2026-12-01T09:00:00Z"
    assert body["weights"] == {"crisis": 3, "high": 2, "moderate": 1.5, "low": 1, "unknown": 1}
    figures = {
        w["worker_id"]: (w["open_cases"], w["weighted_caseload"], w["capacity_points"],
                         w["remaining_capacity"], w["over_capacity"], w["overdue_reviews"])
        for w in body["workers"]
    }  # fmt: skip
    assert figures == {
        "ana": (4, 7.0, 10, 3.0, False, 1),  # 3 + 2 + 1 + 1 (not assessed); A5 is closed
        "ben": (4, 8.0, 5, -3.0, True, 2),  # 1.5 + 1.5 + 2 + 3
        "cy": (2, 2.5, 8, 5.5, False, 0),  # her team-d case counts: capacity is hers
        "sup": (0, 0.0, 0, 0.0, False, 0),
    }, "zed is inactive, dan of another team"
    assert [w["worker_id"] for w in body["workers"]] == ["ana", "ben", "cy", "sup"]
    assert body["workers"][3]["role"] == "supervisor"
    assert all(case_id not in response.text for case_id, _ in world.values())
    [row] = await audit(settings, request_id)
    assert (row["action"], row["outcome"], row["resource_id"], row["client_id"]) == (
        "team.read", "allowed", "team-c", None
    )  # fmt: skip


@pytest.mark.parametrize(
    ("user", "status", "outcome"),
    [(DAN_SUP, 404, "denied"), (ANA, 403, "denied")],
)
async def test_the_team_view_is_only_for_the_team_s_supervisors(
    stack: Stack, settings: Settings, world: dict[str, tuple[str, str]], user: User,
    status: int, outcome: str,
) -> None:  # fmt: skip
    response, request_id = await call(stack, settings, user, "/v1/teams/team-c/caseload")

    assert response.status_code == status, response.text
    assert "ana" not in response.text
    [row] = await audit(settings, request_id)
    assert (row["action"], row["outcome"]) == ("team.read", outcome)


async def test_a_team_of_the_same_name_in_another_organisation_is_another_team(
    stack: Stack, settings: Settings, world: dict[str, tuple[str, str]]
) -> None:
    response, _ = await call(stack, settings, FOREIGN_SUP, "/v1/teams/team-c/caseload")

    assert response.status_code == 200, response.text
    assert (response.json()["organization_id"], response.json()["workers"]) == ("org-load-b", [])


@pytest.mark.parametrize("user", [ANA, SUP], ids=["herself", "her supervisor"])
async def test_a_worker_s_caseload_lists_open_cases_by_risk_then_review_due(
    stack: Stack, settings: Settings, world: dict[str, tuple[str, str]], user: User
) -> None:
    response, request_id = await call(stack, settings, user, "/v1/workers/ana/caseload")

    assert response.status_code == 200, response.text
    body = response.json()
    cases = [
        (c["case_id"], c["status"], c["risk_level"], c["review_overdue"],
         c["days_since_last_contact"])
        for c in body["cases"]
    ]  # fmt: skip
    assert cases == [
        (world["A1"][0], "open", "crisis", True, 3),
        (world["A2"][0], "active", "high", False, None),
        (world["A3"][0], "on_hold", "low", False, 40),
        (world["A4"][0], "open", None, False, None),
    ]
    assert body["cases"][0]["next_review_due_at"] == "2026-11-30T09:00:00Z"
    assert body["cases"][0]["client_id"] == world["A1"][1]
    assert (body["open_cases"], body["weighted_caseload"], body["remaining_capacity"]) == (
        4, 7.0, 3.0
    )  # fmt: skip
    assert (body["overdue_reviews"], body["over_capacity"], body["team_id"]) == (1, False, "team-c")
    rows = await audit(settings, request_id)
    assert [(r["action"], r["resource_id"], str(r["client_id"])) for r in rows] == [
        ("caseload.read", world[key][0], world[key][1]) for key in ("A1", "A2", "A3", "A4")
    ]


@pytest.mark.parametrize(
    ("user", "path"),
    [
        (BEN, "/v1/workers/ana/caseload"),  # a teammate
        (DAN_SUP, "/v1/workers/ana/caseload"),  # another team's supervisor
        (FOREIGN_SUP, "/v1/workers/ana/caseload"),  # the same sub in another organisation
        (SUP, "/v1/workers/nobody/caseload"),
    ],
)
async def test_nobody_else_sees_a_worker_s_caseload(
    stack: Stack, settings: Settings, world: dict[str, tuple[str, str]], user: User, path: str
) -> None:
    response, request_id = await call(stack, settings, user, path)

    assert response.status_code == 404, response.text
    assert world["A1"][0] not in response.text
    [row] = await audit(settings, request_id)
    assert row["action"] == "caseload.read" and row["outcome"] in ("denied", "not_found")


async def test_suggestions_rank_language_first_then_remaining_capacity_with_reasons(
    stack: Stack, settings: Settings, world: dict[str, tuple[str, str]]
) -> None:
    case_id, client_id = world["A2"]  # ana's; the client prefers Portuguese (`por`)

    response, request_id = await call(
        stack, settings, SUP, f"/v1/cases/{case_id}/assignment-suggestions"
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["case_id"], body["team_id"], body["preferred_language"]) == (
        case_id, "team-c", "por"
    )  # fmt: skip
    ranked = [
        (s["rank"], s["worker_id"], s["speaks_client_language"], [r["message"] for r in s["reasons"]])
        for s in body["suggestions"]
    ]  # fmt: skip
    assert ranked == [
        (1, "cy", True, ["speaks the client's language", "remaining capacity 5.5 of 8"]),
        (2, "sup", False, ["does not speak the client's language", "remaining capacity 0 of 0"]),
        (3, "ben", False, ["does not speak the client's language", "over capacity: 8 of 5"]),
    ], "ana owns the case; zed is inactive; dan is of another team"
    assert [r["code"] for r in body["suggestions"][2]["reasons"]] == [
        "does_not_speak_client_language", "over_capacity"
    ]  # fmt: skip
    assert body["suggestions"][0]["load"]["open_cases"] == 2
    [row] = await audit(settings, request_id)
    assert (row["action"], row["outcome"], str(row["client_id"])) == (
        "assignment.suggest", "allowed", client_id
    )  # fmt: skip

    for user, status in ((ANA, 403), (DAN_SUP, 404)):
        refused, _ = await call(
            stack, settings, user, f"/v1/cases/{case_id}/assignment-suggestions"
        )
        assert refused.status_code == status, refused.text
        assert "cy" not in refused.text


# --- the rules alone (no stack) ----------------------------------------------------------------


def load(worker_id: str, languages: list[str], capacity: int, weighted: float) -> WorkerLoad:
    return WorkerLoad(
        worker_id=worker_id, display_name=worker_id, role="caseworker", languages=languages,
        open_cases=1, weighted_caseload=weighted, capacity_points=capacity,
        remaining_capacity=capacity - weighted, over_capacity=weighted > capacity,
        overdue_reviews=0,
    )  # fmt: skip


def test_without_a_known_language_capacity_alone_ranks() -> None:
    loads = [load("a", ["pt"], 10, 9), load("b", [], 10, 2), load("c", [], 10, 2)]

    ranked = suggest(loads, language=None, exclude="zz")

    assert [(s.worker_id, s.speaks_client_language) for s in ranked] == [
        ("b", None), ("c", None), ("a", None),
    ]  # fmt: skip
    assert [r.code for r in ranked[0].reasons] == ["remaining_capacity"]


def test_language_codes_match_across_iso_639_1_and_639_3() -> None:
    assert language_key("pt") == language_key("POR") == "por"
    assert language_key("es") != language_key("pt")
    ranked = suggest(
        [load("a", ["es"], 20, 0), load("b", ["por"], 5, 4)], language="pt", exclude=None
    )
    assert [s.worker_id for s in ranked] == ["b", "a"]


def test_the_weights_file_names_every_risk_level_with_a_positive_weight() -> None:
    assert {
        "crisis": Decimal(3), "high": Decimal(2), "moderate": Decimal("1.5"),
        "low": Decimal(1), "unknown": Decimal(1),
    } == RISK_WEIGHTS  # fmt: skip
    complete: dict[str, Any] = {"crisis": 3, "high": 2, "moderate": 1.5, "low": 1, "unknown": 1}
    for broken in (
        {k: v for k, v in complete.items() if k != "unknown"},
        {**complete, "extreme": 4},
        {**complete, "low": 0},
        {**complete, "low": "1"},
        {**complete, "low": True},
    ):
        with pytest.raises(ValueError, match="risk weights"):
            parse_weights({"weights": broken})
    with pytest.raises(ValueError, match="risk weights"):
        parse_weights([])
