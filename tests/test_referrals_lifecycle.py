"""Closed-loop referrals: the transition table (every move, by side) and the lifecycle through
the API (who may set what, history, events, access by side)."""

from __future__ import annotations

import itertools
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest

from services.referrals.lifecycle.transitions import (
    TABLE_FILE,
    Allowed,
    Refusal,
    RefusalKind,
    Side,
    decide,
    parse_table,
    table,
)
from shared.events.referrals import ReferralMade, ReferralOutcome, ReferralReason, ReferralStatus
from shared.settings import Settings
from tests.referrals_support import (
    ACCEPTANCE_DAYS,
    ALICE,
    BOB,
    OTHER_PARTNER,
    PARTNER_ORG,
    PARTNER_SYNC,
    PAT,
    SUE,
    Directory,
    fetch,
    grant_consent,
    refer,
    referral_rows,
    register_client,
    seed_directory,
    set_status,
)
from tests.support import Stack, User, audit_rows, bearer

S = ReferralStatus
OPEN = [S.DRAFT, S.REQUESTED, S.ACCEPTED, S.IN_PROGRESS, S.ON_HOLD]
EVERY_BUT_ERROR = [s for s in S if s is not S.ENTERED_IN_ERROR]

# The lifecycle as the SDOH Clinical Care IG's Task uses it, written out here independently of
# the data file: (from, to) -> the sides that may make the move.
EXPECTED: dict[tuple[S, S], set[Side]] = {
    (S.DRAFT, S.REQUESTED): {Side.SENDING},
    (S.DRAFT, S.CANCELLED): {Side.SENDING, Side.SYSTEM},
    (S.REQUESTED, S.ACCEPTED): {Side.RECEIVING},
    (S.REQUESTED, S.REJECTED): {Side.RECEIVING},
    (S.REQUESTED, S.EXPIRED): {Side.SYSTEM},
    (S.ACCEPTED, S.IN_PROGRESS): {Side.RECEIVING},
    (S.IN_PROGRESS, S.ON_HOLD): {Side.RECEIVING},
    (S.IN_PROGRESS, S.COMPLETED): {Side.RECEIVING},
    (S.IN_PROGRESS, S.FAILED): {Side.RECEIVING},
    (S.ON_HOLD, S.IN_PROGRESS): {Side.RECEIVING},
    **{(s, S.CANCELLED): {Side.SENDING, Side.SYSTEM} for s in OPEN},
    **{(s, S.ENTERED_IN_ERROR): {Side.SENDING} for s in EVERY_BUT_ERROR},
}
NEEDS_REASON = {S.REJECTED, S.CANCELLED, S.ON_HOLD, S.FAILED}


def _valid_extras(to: S, side: Side) -> dict[str, Any]:
    """A reason and outcome that satisfy the rules of moving to `to` as `side`."""
    reason = None
    if to in NEEDS_REASON:
        reason = ReferralReason.CONSENT_REVOKED if side is Side.SYSTEM else ReferralReason.OTHER
    outcome = ReferralOutcome.GOT_HELP if to is S.COMPLETED else None
    return {"reason": reason, "outcome": outcome}


TRIPLES = list(itertools.product(S, S, Side))


@pytest.mark.parametrize(
    ("current", "to", "side"), TRIPLES, ids=[f"{a}->{b} by {c}" for a, b, c in TRIPLES]
)
def test_every_move_by_every_side_follows_the_table(current: S, to: S, side: Side) -> None:
    decision = decide(table(), current=current, to=to, sides={side}, **_valid_extras(to, side))

    if side in EXPECTED.get((current, to), set()):
        assert decision == Allowed(side)
    else:
        assert isinstance(decision, Refusal)
        assert decision.kind is RefusalKind.NOT_ALLOWED
        allowed = [t for t in S if side in EXPECTED.get((current, t), set())]
        assert list(decision.allowed_next) == allowed
        assert f"Allowed next: {', '.join(allowed) or 'none'}" in decision.detail


def test_the_data_file_holds_exactly_the_expected_moves() -> None:
    loaded = table()
    moves = {
        key: {side for rule in rules for side in rule.sides} for key, rules in loaded.rules.items()
    }
    assert moves == EXPECTED
    assert loaded.reason_required == NEEDS_REASON
    assert loaded.final == {
        S.COMPLETED,
        S.REJECTED,
        S.CANCELLED,
        S.FAILED,
        S.EXPIRED,
        S.ENTERED_IN_ERROR,
    }
    assert loaded.open == set(OPEN)


@pytest.mark.parametrize("to", sorted(NEEDS_REASON))
def test_rejected_cancelled_on_hold_and_failed_need_a_reason(to: S) -> None:
    current = next(
        s
        for s in S
        if Side.RECEIVING in EXPECTED.get((s, to), set())
        or Side.SENDING in EXPECTED.get((s, to), set())
    )
    sides = EXPECTED[(current, to)] - {Side.SYSTEM}

    decision = decide(table(), current=current, to=to, sides=sides, reason=None, outcome=None)

    assert isinstance(decision, Refusal) and decision.kind is RefusalKind.REASON_REQUIRED


def test_only_the_system_cancels_for_a_revoked_consent_and_only_for_that() -> None:
    by_worker = decide(
        table(), current=S.ACCEPTED, to=S.CANCELLED, sides={Side.SENDING},
        reason=ReferralReason.CONSENT_REVOKED, outcome=None,
    )  # fmt: skip
    by_system = decide(
        table(), current=S.ACCEPTED, to=S.CANCELLED, sides={Side.SYSTEM},
        reason=ReferralReason.CLIENT_DECLINED, outcome=None,
    )  # fmt: skip
    revoked = decide(
        table(), current=S.ACCEPTED, to=S.CANCELLED, sides={Side.SYSTEM},
        reason=ReferralReason.CONSENT_REVOKED, outcome=None,
    )  # fmt: skip

    assert isinstance(by_worker, Refusal) and by_worker.kind is RefusalKind.REASON_NOT_ALLOWED
    assert isinstance(by_system, Refusal) and by_system.kind is RefusalKind.REASON_NOT_ALLOWED
    assert revoked == Allowed(Side.SYSTEM)


def test_completion_records_an_outcome_and_only_a_final_status_takes_one() -> None:
    without = decide(
        table(), current=S.IN_PROGRESS, to=S.COMPLETED, sides={Side.RECEIVING}, reason=None,
        outcome=None,
    )  # fmt: skip
    on_open = decide(
        table(), current=S.ACCEPTED, to=S.IN_PROGRESS, sides={Side.RECEIVING}, reason=None,
        outcome=ReferralOutcome.GOT_HELP,
    )  # fmt: skip

    assert isinstance(without, Refusal) and without.kind is RefusalKind.OUTCOME_REQUIRED
    assert isinstance(on_open, Refusal) and on_open.kind is RefusalKind.OUTCOME_NOT_ALLOWED


def test_a_caller_on_both_sides_moves_as_the_side_the_table_allows() -> None:
    both = {Side.SENDING, Side.RECEIVING}
    accepted = decide(
        table(), current=S.REQUESTED, to=S.ACCEPTED, sides=both, reason=None, outcome=None
    )
    assert accepted == Allowed(Side.RECEIVING)
    assert table().allowed_next(S.REQUESTED, both) == [
        S.ACCEPTED,
        S.REJECTED,
        S.CANCELLED,
        S.ENTERED_IN_ERROR,
    ]


def test_an_inconsistent_table_is_refused_when_loaded() -> None:
    raw = json.loads(TABLE_FILE.read_text(encoding="utf-8"))
    reopening = {
        **raw,
        "transitions": [
            *raw["transitions"],
            {"from": ["completed"], "to": "requested", "by": ["sending"]},
        ],
    }
    unknown_side = {
        **raw,
        "transitions": [{"from": ["draft"], "to": "requested", "by": ["anyone"]}],
    }
    unknown_status = {**raw, "transitions": [{"from": ["draft"], "to": "sent", "by": ["sending"]}]}

    for broken in (reopening, unknown_side, unknown_status):
        with pytest.raises(ValueError):
            parse_table(broken)


# --- Through the API ----------------------------------------------------------------------------


@dataclass(frozen=True)
class World:
    directory: Directory
    client_id: str
    consent_id: str


@pytest.fixture(scope="module")
async def world(stack: Stack, settings: Settings) -> World:
    directory = await seed_directory(settings)
    client_id = await register_client(stack, settings)
    consent_id = await grant_consent(stack, settings, client_id)
    return World(directory, client_id, consent_id)


async def test_a_sent_referral_runs_its_loop_by_side_with_history_and_audit(
    stack: Stack, settings: Settings, world: World
) -> None:
    made = await refer(
        stack, settings, world.client_id, world.directory.in_network, note="Call after 5pm"
    )
    assert made.status_code == 201, made.text
    referral = made.json()
    referral_id = referral["id"]
    assert made.headers["Location"] == f"/v1/referrals/{referral_id}"
    assert (referral["status"], referral["mode"], referral["consent_id"]) == (
        "requested",
        "sent",
        world.consent_id,
    )
    assert referral["receiving_organization_id"] == PARTNER_ORG
    assert referral["data_classes"] == ["general"]
    requested_at = datetime.fromisoformat(referral["requested_at"])
    assert datetime.fromisoformat(referral["expires_at"]) == requested_at + timedelta(
        days=ACCEPTANCE_DAYS
    )
    assert (referral["your_sides"], referral["allowed_next"]) == (
        ["sending"],
        ["cancelled", "entered-in-error"],
    )

    # The receiving side sees ids and codes, not the sending worker's note.
    seen = await stack.api["referrals"].get(
        f"/v1/referrals/{referral_id}",
        headers={**bearer(settings, PAT), "X-Request-ID": (rid := str(uuid.uuid4()))},
    )
    assert seen.status_code == 200, seen.text
    assert (seen.json()["note"], seen.json()["your_sides"], seen.json()["allowed_next"]) == (
        None,
        ["receiving"],
        ["accepted", "rejected"],
    )
    [audited] = await audit_rows(settings, "referrals", rid)
    assert (
        audited["action"],
        audited["outcome"],
        audited["actor_id"],
        str(audited["client_id"]),
    ) == ("referral.read", "allowed", "pat", world.client_id)

    # The sending side may not accept; nothing changes.
    by_sender = await set_status(stack, settings, referral_id, ALICE, "accepted")
    assert by_sender.status_code == 409
    assert by_sender.json()["type"].endswith("/transition-not-allowed")
    assert by_sender.json()["allowed_next"] == ["cancelled", "entered-in-error"]

    steps = [
        ("accepted", {}), ("in-progress", {}), ("on-hold", {"reason_code": "client-declined"}),
        ("in-progress", {}), ("completed", {"outcome": "got-help"}),
    ]  # fmt: skip
    for status, extra in steps:
        moved = await set_status(stack, settings, referral_id, PAT, status, **extra)
        assert moved.status_code == 200, (status, moved.text)
        assert moved.json()["status"] == status
    done = moved.json()
    assert (done["outcome"], done["allowed_next"]) == ("got-help", [])
    closed_at = datetime.fromisoformat(done["closed_at"])
    assert datetime.fromisoformat(done["follow_up_due_at"]) == closed_at + timedelta(days=30)

    history = (await stack.api["referrals"].get(f"/v1/referrals/{referral_id}/history")).json()
    assert [
        (h["from_status"], h["to_status"], h["set_by_side"], h["set_by_organization_id"])
        for h in history
    ] == [
        (None, "requested", "sending", "org-a"),
        ("requested", "accepted", "receiving", PARTNER_ORG),
        ("accepted", "in-progress", "receiving", PARTNER_ORG),
        ("in-progress", "on-hold", "receiving", PARTNER_ORG),
        ("on-hold", "in-progress", "receiving", PARTNER_ORG),
        ("in-progress", "completed", "receiving", PARTNER_ORG),
    ]
    assert history[3]["reason_code"] == "client-declined" and history[-1]["outcome"] == "got-help"
    assert {h["set_by_user"] for h in history[1:]} == {"pat"}


@pytest.mark.parametrize(
    ("status", "extra", "problem"),
    [
        ("rejected", {}, "reason-required"),
        ("rejected", {"reason_code": "consent-revoked"}, "reason-not-allowed"),
        ("in-progress", {}, "transition-not-allowed"),
        ("expired", {}, "transition-not-allowed"),
        ("accepted", {"outcome": "got-help"}, "outcome-not-allowed"),
    ],
)
async def test_a_move_the_table_refuses_writes_nothing(
    stack: Stack, settings: Settings, world: World, status: str, extra: dict[str, Any], problem: str
) -> None:
    referral_id = (
        await refer(stack, settings, world.client_id, world.directory.in_network)
    ).json()["id"]
    before = await fetch(
        settings, "SELECT version, status FROM referrals.referrals WHERE id = $1", referral_id
    )

    refused = await set_status(stack, settings, referral_id, PAT, status, **extra)

    assert refused.status_code == (409 if problem == "transition-not-allowed" else 422), (
        refused.text
    )
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"].endswith(f"/{problem}")
    assert refused.json()["allowed_next"] == ["accepted", "rejected"]
    after = await fetch(
        settings, "SELECT version, status FROM referrals.referrals WHERE id = $1", referral_id
    )
    assert after == before
    history = await fetch(
        settings,
        "SELECT count(*) AS n FROM referrals.referral_history WHERE referral_id = $1",
        referral_id,
    )
    assert history[0]["n"] == 1


async def test_status_changes_need_the_current_etag(
    stack: Stack, settings: Settings, world: World
) -> None:
    referral_id = (
        await refer(stack, settings, world.client_id, world.directory.in_network)
    ).json()["id"]
    path = f"/v1/referrals/{referral_id}/status"
    partner = bearer(settings, PAT)

    without = await stack.api["referrals"].post(path, json={"status": "accepted"}, headers=partner)
    stale = await stack.api["referrals"].post(
        path, json={"status": "accepted"}, headers={**partner, "If-Match": f'"{referral_id}.0"'}
    )

    assert (without.status_code, stale.status_code) == (428, 412)
    assert (await referral_rows_by_id(settings, referral_id))["status"] == "requested"


async def test_other_organisations_and_colleagues_out_of_scope_get_404(
    stack: Stack, settings: Settings, world: World
) -> None:
    referral_id = (
        await refer(stack, settings, world.client_id, world.directory.in_network)
    ).json()["id"]
    for user in (OTHER_PARTNER, BOB, SUE):
        read = await stack.api["referrals"].get(
            f"/v1/referrals/{referral_id}", headers=bearer(settings, user)
        )
        moved = await set_status(
            stack, settings, referral_id, user, "cancelled", reason_code="other"
        )
        assert (read.status_code, moved.status_code) == (404, 404), user
        assert world.client_id not in read.text
    admin = User("ada", ("admin",))
    assert (
        await stack.api["referrals"].get(
            f"/v1/referrals/{referral_id}", headers=bearer(settings, admin)
        )
    ).status_code == 403


async def test_a_receiving_system_acts_like_its_partner_staff(
    stack: Stack, settings: Settings, world: World
) -> None:
    referral_id = (
        await refer(stack, settings, world.client_id, world.directory.in_network)
    ).json()["id"]
    moved = await set_status(
        stack, settings, referral_id, PARTNER_SYNC, "rejected", reason_code="no-capacity"
    )
    assert moved.status_code == 200, moved.text
    assert (moved.json()["status"], moved.json()["reason_code"], moved.json()["outcome"]) == (
        "rejected",
        "no-capacity",
        "unknown",
    )


async def test_lists_by_direction_show_each_side_its_own(
    stack: Stack, settings: Settings, world: World
) -> None:
    referral_id = (
        await refer(stack, settings, world.client_id, world.directory.in_network)
    ).json()["id"]

    async def ids(user: User, **params: str) -> set[str]:
        found: set[str] = set()
        cursor: str | None = None
        while True:
            page = await stack.api["referrals"].get(
                "/v1/referrals", params={**params, "limit": "2", **({"cursor": cursor} if cursor else {})},
                headers=bearer(settings, user),
            )  # fmt: skip
            assert page.status_code == 200, page.text
            found |= {item["id"] for item in page.json()["items"]}
            cursor = page.json()["next_cursor"]
            if cursor is None:
                return found

    assert referral_id in await ids(ALICE, direction="outgoing", client_id=world.client_id)
    assert referral_id not in await ids(ALICE, direction="incoming")
    assert referral_id in await ids(PAT, direction="incoming", status="requested")
    assert referral_id not in await ids(PAT, direction="outgoing")
    assert referral_id not in await ids(PAT, status="accepted")
    for outsider in (OTHER_PARTNER, BOB, SUE):
        assert referral_id not in await ids(outsider)
    listed = await stack.api["referrals"].get(
        "/v1/referrals", params={"direction": "incoming"}, headers=bearer(settings, PAT)
    )
    mine = next(item for item in listed.json()["items"] if item["id"] == referral_id)
    assert (mine["your_sides"], mine["note"]) == (["receiving"], None)


async def test_a_logged_referral_shares_nothing_and_its_sender_records_the_loop(
    stack: Stack, settings: Settings, world: World
) -> None:
    client_id = await register_client(stack, settings)  # no consent at all
    made = await refer(stack, settings, client_id, world.directory.outside, mode="logged", share=[])
    assert made.status_code == 201, made.text
    logged = made.json()
    assert (logged["receiving_organization_id"], logged["consent_id"], logged["expires_at"]) == (
        None,
        None,
        None,
    )
    assert logged["your_sides"] == ["receiving", "sending"]

    accepted = await set_status(stack, settings, logged["id"], ALICE, "accepted")
    partner = await stack.api["referrals"].get(
        f"/v1/referrals/{logged['id']}", headers=bearer(settings, PAT)
    )

    assert accepted.status_code == 200 and accepted.json()["status"] == "accepted"
    assert partner.status_code == 404


@pytest.mark.parametrize(
    ("service", "body", "problem"),
    [
        ("unknown", {}, "unknown-service"),
        ("outside", {}, "service-outside-network"),
        ("outside", {"mode": "logged", "share": ["general"]}, "validation-error"),
        ("in_network", {"share": []}, "validation-error"),
    ],
)
async def test_a_referral_the_directory_or_rules_refuse_writes_nothing(
    stack: Stack, settings: Settings, world: World, service: str, body: dict[str, Any], problem: str
) -> None:
    service_id = "no-such-service" if service == "unknown" else getattr(world.directory, service)
    client_id = await register_client(stack, settings)
    await grant_consent(stack, settings, client_id)

    refused = await refer(stack, settings, client_id, service_id, **body)

    assert refused.status_code == 422, refused.text
    assert refused.json()["type"].endswith(f"/{problem}")
    assert await referral_rows(settings, client_id) == []


async def test_a_draft_is_checked_when_it_is_requested_and_its_deadline_starts_then(
    stack: Stack, settings: Settings, world: World
) -> None:
    client_id = await register_client(stack, settings)
    draft = await refer(stack, settings, client_id, world.directory.default_deadline, draft=True)
    assert draft.status_code == 201, draft.text
    assert (draft.json()["status"], draft.json()["consent_id"], draft.json()["expires_at"]) == (
        "draft",
        None,
        None,
    )
    hidden = await stack.api["referrals"].get(
        f"/v1/referrals/{draft.json()['id']}", headers=bearer(settings, PAT)
    )
    assert hidden.status_code == 404  # nothing was sent yet

    no_consent = await set_status(stack, settings, draft.json()["id"], ALICE, "requested")
    assert no_consent.status_code == 422 and no_consent.json()["type"].endswith("/consent-required")
    consent_id = await grant_consent(stack, settings, client_id)
    requested = await set_status(stack, settings, draft.json()["id"], ALICE, "requested")

    assert requested.status_code == 200, requested.text
    body = requested.json()
    assert body["consent_id"] == consent_id
    assert datetime.fromisoformat(body["expires_at"]) == datetime.fromisoformat(
        body["requested_at"]
    ) + timedelta(days=14)


async def test_an_idempotency_key_replays_the_first_referral(
    stack: Stack, settings: Settings, world: World
) -> None:
    body = {
        "client_id": world.client_id,
        "service_id": world.directory.in_network,
        "mode": "sent",
        "share": ["general"],
    }
    headers = {**bearer(settings, ALICE), "Idempotency-Key": str(uuid.uuid4())}
    first = await stack.api["referrals"].post("/v1/referrals", json=body, headers=headers)
    again = await stack.api["referrals"].post("/v1/referrals", json=body, headers=headers)

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["ETag"] == first.headers["ETag"]
    made = await fetch(
        settings,
        "SELECT count(*) AS n FROM referrals.outbox WHERE type = $2 "
        "AND payload->>'referral_id' = $1::uuid::text",
        first.json()["id"],
        ReferralMade.event_type,
    )
    rows = await fetch(
        settings, "SELECT count(*) AS n FROM referrals.referrals WHERE id = $1", first.json()["id"]
    )
    assert (rows[0]["n"], made[0]["n"]) == (1, 1)


async def referral_rows_by_id(settings: Settings, referral_id: str) -> asyncpg.Record:
    [row] = await fetch(settings, "SELECT * FROM referrals.referrals WHERE id = $1", referral_id)
    return row
