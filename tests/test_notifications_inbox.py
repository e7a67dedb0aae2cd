"""Notifications end to end: a crisis answer at intake reaches the assigned worker's live
stream; streams resume after Last-Event-ID; the inbox counts and marks; users see only their
own; rules are validated; crisis flags escalate until acknowledged; quiet hours delay what is
not urgent.

One stack for the module, on a FrozenClock the tests move (timers fire when it passes them);
the notifications API also runs under uvicorn, because a live stream needs a real server
(httpx's ASGI transport buffers whole responses).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest
import uvicorn

from services.notifications.main import SPEC as NOTIFICATIONS
from services.registry import TOPICS
from shared.clock import FrozenClock
from shared.events.contracts import EventData
from shared.events.envelope import OutgoingEvent
from shared.events.planning import ReviewCompleted, ReviewOutcome, ReviewScheduled, WorkerUpdated
from shared.http.app import create_app
from shared.messaging.outbox import enqueue
from shared.ports import free_port
from shared.settings import Settings
from tests.support import (
    CASEWORKER,
    VALID_CLIENT,
    Stack,
    User,
    admin_fetchval,
    audit_rows,
    bearer,
    enrol_worker,
    eventually,
    open_case,
    running_stack,
)
from tests.test_scoring import NO_NEEDS

pytestmark = pytest.mark.asyncio

ALICE = CASEWORKER
SAM = User("sam", ("supervisor",))
BOB = User("bob", ("caseworker",))
ADA = User("ada", ("admin",), team_id=None)
QUINN = User("quinn", ("caseworker",))
OSCAR = User("oscar", ("caseworker",), team_id="team-night")
CRISIS_ANSWERS = {
    "instrument_id": "needs-risk-screening",
    "version": "1.0",
    "answers": {**NO_NEEDS, "suicidal_thoughts": "yes"},
}
CLOCK = FrozenClock(datetime.now(UTC))


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[no-untyped-def]
        yield


@pytest.fixture(scope="module")
async def stack(settings: Settings) -> AsyncIterator[Stack]:
    fast = settings.model_copy(update={"timer_poll_seconds": 0.1})
    # Now, not when the module was imported (minutes earlier in a full run): intake stamps
    # events with the real time, and escalations are due 15 minutes after the flag's.
    CLOCK.set(datetime.now(UTC))
    async with running_stack(fast, clock=CLOCK) as stack:
        yield stack


@pytest.fixture(scope="module")
async def stream_url(stack: Stack, settings: Settings) -> AsyncIterator[str]:
    """The notifications API under uvicorn (a second instance beside the stack's)."""
    port = free_port()
    server = _Server(
        uvicorn.Config(
            create_app(NOTIFICATIONS, settings, topics=TOPICS, clock=CLOCK),
            host="127.0.0.1",
            port=port,
            log_config=None,
            timeout_graceful_shutdown=1,
        )
    )
    task = asyncio.create_task(server.serve())
    await eventually(lambda: _started(server), timeout=30)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


async def _started(server: uvicorn.Server) -> bool | None:
    return True if server.started else None


async def as_user(
    stack: Stack, settings: Settings, user: User, method: str, path: str, **kwargs: Any
) -> httpx.Response:
    headers = {**bearer(settings, user), **kwargs.pop("headers", {})}
    return await stack.api[kwargs.pop("service", "notifications")].request(
        method, path, headers=headers, **kwargs
    )


async def publish_as_planning(settings: Settings, data: EventData) -> None:
    """An event of planning's written to planning's outbox: its relay publishes it on the real
    broker (for facts planning's API does not publish yet: the directory, reviews)."""
    connection = await asyncpg.connect(
        settings.database_url, server_settings={"search_path": "planning"}
    )
    try:
        await connection.set_type_codec(
            "jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )
        await enqueue(connection, OutgoingEvent.of(data))
    finally:
        await connection.close()


async def publish_worker(
    settings: Settings, user: User, role: Literal["caseworker", "supervisor"]
) -> None:
    await publish_as_planning(
        settings,
        WorkerUpdated(
            worker_id=user.subject,
            organization_id=user.organization_id,
            team_id=user.team_id,
            role=role,
            languages=["en"],
            active=True,
            version=int(datetime.now(UTC).timestamp()),
            updated_at=datetime.now(UTC),
        ),
    )

    async def known() -> bool | None:
        role_here = await admin_fetchval(
            settings,
            "SELECT role FROM notifications.staff WHERE organization_id = $1 AND worker_id = $2",
            user.organization_id,
            user.subject,
        )
        return True if role_here == role else None

    await eventually(known, timeout=20)


async def client_assigned_to(stack: Stack, settings: Settings, worker: User) -> str:
    """A new client of org-a, its case assigned to `worker` and known so in notifications."""
    registered = await as_user(
        stack, settings, ALICE, "POST", "/v1/clients", service="intake",
        json={**VALID_CLIENT, "family_name": f"Notif{uuid.uuid4().hex[:8]}"},
    )  # fmt: skip
    assert registered.status_code == 201, registered.text
    client_id: str = registered.json()["id"]
    await enrol_worker(stack, settings, worker)

    async def known_in_planning() -> bool | None:
        known = await admin_fetchval(
            settings,
            "SELECT count(*) FROM planning.client_refs WHERE client_id = $1",
            uuid.UUID(client_id),
        )
        return True if known else None

    await eventually(known_in_planning, timeout=20)
    assigned = await as_user(
        stack, settings, SAM, "PUT", f"/v1/cases/{await open_case(stack, settings, client_id, SAM)}/assignment",
        service="planning",
        json={"worker_id": worker.subject},
    )  # fmt: skip
    assert assigned.status_code == 200, assigned.text

    async def owner_known() -> bool | None:
        owner = await admin_fetchval(
            settings,
            "SELECT owner_id FROM notifications.client_access WHERE client_id = $1",
            uuid.UUID(client_id),
        )
        return True if owner == worker.subject else None

    await eventually(owner_known, timeout=20)
    return client_id


async def crisis_assessment(
    stack: Stack, settings: Settings, client_id: str, worker: User = ALICE
) -> str:
    """POST a crisis answer at intake as the client's worker; the crisis flag's id."""
    response = await as_user(
        stack, settings, worker, "POST", f"/v1/clients/{client_id}/assessments", service="intake",
        json=CRISIS_ANSWERS,
    )  # fmt: skip
    assert response.status_code == 201, response.text
    flags = await as_user(
        stack, settings, worker, "GET", f"/v1/clients/{client_id}/flags", service="intake"
    )
    [flag] = [f for f in flags.json()["items"] if f["severity"] == "crisis"]
    return str(flag["id"])


async def inbox(stack: Stack, settings: Settings, user: User, **params: Any) -> dict[str, Any]:
    response = await as_user(stack, settings, user, "GET", "/v1/inbox", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def items_about(
    stack: Stack, settings: Settings, user: User, subject_id: str, kind: str | None = None
) -> list[dict[str, Any]]:
    body = await inbox(stack, settings, user, limit=200)
    return [
        item
        for item in body["items"]
        if item["subject_id"] == subject_id and (kind is None or item["kind"] == kind)
    ]


async def eventually_items(
    stack: Stack, settings: Settings, user: User, subject_id: str, kind: str, count: int = 1
) -> list[dict[str, Any]]:
    async def probe() -> list[dict[str, Any]] | None:
        found = await items_about(stack, settings, user, subject_id, kind)
        return found if len(found) >= count else None

    return await eventually(probe, timeout=20)


async def ticket(stack: Stack, settings: Settings, user: User) -> str:
    response = await as_user(stack, settings, user, "POST", "/v1/inbox/stream-tickets")
    assert response.status_code == 201, response.text
    value: str = response.json()["ticket"]
    return value


async def frames(
    url: str, ticket_value: str, *, last_event_id: str | None = None
) -> AsyncGenerator[dict[str, str], None]:
    """The stream's frames (id, event, data), as a browser's EventSource reads them."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id is not None else {}
    async with (
        httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(30.0)) as client,
        client.stream(
            "GET", "/v1/inbox/stream", params={"ticket": ticket_value}, headers=headers
        ) as response,
    ):
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        frame: dict[str, str] = {}
        async for line in response.aiter_lines():
            if not line:
                if "data" in frame:
                    yield frame
                frame = {}
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            frame[name] = value.removeprefix(" ")


async def next_frame(
    stream: AsyncGenerator[dict[str, str], None], timeout: float = 20
) -> dict[str, str]:
    return await asyncio.wait_for(anext(stream), timeout)


async def first_frame_of_kind(
    url: str, ticket_value: str, last_event_id: str, kind: str
) -> dict[str, str]:
    stream = frames(url, ticket_value, last_event_id=last_event_id)
    try:
        async for frame in stream:
            if json.loads(frame["data"])["kind"] == kind:
                return frame
    finally:
        await stream.aclose()
    raise AssertionError("the stream ended")


# --- the tests, in order: later ones move the clock -----------------------------------------


async def test_a_crisis_answer_at_intake_reaches_the_assigned_workers_live_stream(
    stack: Stack, settings: Settings, stream_url: str
) -> None:
    await publish_worker(settings, SAM, "supervisor")
    client_id = await client_assigned_to(stack, settings, ALICE)
    # Whatever alice has so far: the stream resumes after it, so a crisis committed before
    # the stream is connected still comes (a stream without Last-Event-ID starts from now).
    newest = (await inbox(stack, settings, ALICE, limit=1))["items"]
    after = str(newest[0]["seq"]) if newest else "0"
    reading = asyncio.create_task(
        first_frame_of_kind(stream_url, await ticket(stack, settings, ALICE), after, "crisis_flag")
    )
    flag_id = await crisis_assessment(stack, settings, client_id)
    frame = await asyncio.wait_for(reading, 40)
    item = json.loads(frame["data"])
    assert frame["event"] == "notification"
    assert frame["id"] == str(item["seq"])
    assert (item["kind"], item["subject_type"], item["subject_id"]) == (
        "crisis_flag",
        "flag",
        flag_id,
    )
    assert (item["urgency"], item["client_id"]) == ("crisis", client_id)
    assert item["message"] == f"Crisis flag {flag_id} on client {client_id}: someone must act now."
    # Never the flag's type (it would reveal the answer), never the client's name.
    assert "flag_type" not in item["parameters"]
    for secret in ("safety", "suicid", "Ana", "Lima"):
        assert secret not in frame["data"], secret
    # The team's supervisor was told at once too.
    [for_sam] = await eventually_items(stack, settings, SAM, flag_id, "crisis_flag")
    assert for_sam["urgency"] == "crisis"


async def test_a_stream_resumes_after_last_event_id_with_nothing_missed(
    stack: Stack, settings: Settings, stream_url: str
) -> None:
    body = await inbox(stack, settings, ALICE, limit=200)
    seqs = sorted(item["seq"] for item in body["items"])
    assert len(seqs) >= 2, body
    replay = frames(stream_url, await ticket(stack, settings, ALICE), last_event_id="0")
    try:
        first = await next_frame(replay)
        second = await next_frame(replay)
    finally:
        await replay.aclose()
    assert [int(first["id"]), int(second["id"])] == seqs[:2]
    # Reconnect after the first: the second comes next, then what arrives live.
    resumed = frames(stream_url, await ticket(stack, settings, ALICE), last_event_id=first["id"])
    try:
        again = await next_frame(resumed)
        assert again["id"] == second["id"]
        for expected in seqs[2:]:
            assert int((await next_frame(resumed))["id"]) == expected
        client_id = await client_assigned_to(stack, settings, ALICE)
        # The assignment opens a case too: its review reminder may come first.
        live = [await next_frame(resumed)]
        while json.loads(live[-1]["data"])["kind"] != "case_assigned" and len(live) < 5:
            live.append(await next_frame(resumed))
    finally:
        await resumed.aclose()
    assert all(int(frame["id"]) > seqs[-1] for frame in live)
    item = json.loads(live[-1]["data"])
    assert (item["kind"], item["subject_id"]) == ("case_assigned", client_id)


async def test_a_stream_needs_a_valid_ticket(
    stack: Stack, settings: Settings, stream_url: str
) -> None:
    async with httpx.AsyncClient(base_url=stream_url) as client:
        forged = await client.get("/v1/inbox/stream", params={"ticket": "x" * 40})
        bare = await client.get("/v1/inbox/stream", headers=bearer(settings, ALICE))
    assert forged.status_code == 401 and forged.json()["type"].endswith("/unauthenticated")
    assert bare.status_code == 400 and bare.json()["type"].endswith("/stream-ticket-required")


async def test_the_inbox_counts_unread_and_marks_read(stack: Stack, settings: Settings) -> None:
    body = await inbox(stack, settings, ALICE, limit=200)
    unread = [item for item in body["items"] if item["read_at"] is None]
    assert body["unread_count"] == len(unread) >= 2
    newest, older = unread[0], unread[1]
    assert newest["seq"] > older["seq"]

    marked = await as_user(stack, settings, ALICE, "POST", f"/v1/inbox/{older['id']}/read")
    assert marked.status_code == 200, marked.text
    assert marked.json()["id"] == older["id"] and marked.json()["read_at"] is not None
    again = await as_user(stack, settings, ALICE, "POST", f"/v1/inbox/{older['id']}/read")
    assert again.json()["read_at"] == marked.json()["read_at"]  # no change the second time
    after = await inbox(stack, settings, ALICE, unread="true", limit=200)
    assert after["unread_count"] == body["unread_count"] - 1
    assert older["id"] not in [item["id"] for item in after["items"]]
    assert newest["id"] in [item["id"] for item in after["items"]]

    first_page = await inbox(stack, settings, ALICE, limit=1)
    assert len(first_page["items"]) == 1 and first_page["next_cursor"]
    second_page = await inbox(stack, settings, ALICE, limit=1, cursor=first_page["next_cursor"])
    assert second_page["items"][0]["seq"] < first_page["items"][0]["seq"]

    everything = await as_user(
        stack, settings, ALICE, "POST", "/v1/inbox/read", json={"up_to": newest["id"]}
    )
    assert everything.status_code == 200, everything.text
    assert everything.json() == {"marked": after["unread_count"], "unread_count": 0}
    assert (await inbox(stack, settings, ALICE, unread="true"))["items"] == []


async def test_another_users_notification_is_not_found(stack: Stack, settings: Settings) -> None:
    [item, *_] = (await inbox(stack, settings, ALICE))["items"]
    request_id = str(uuid.uuid4())
    response = await as_user(
        stack, settings, BOB, "POST", f"/v1/inbox/{item['id']}/read",
        headers={"X-Request-ID": request_id},
    )  # fmt: skip
    assert response.status_code == 404, response.text
    body = response.json()
    assert body["detail"] == "No notification with this id."  # the same as for none at all
    assert item["message"] not in response.text and item["subject_id"] not in response.text
    [row] = await audit_rows(settings, "notifications", request_id)
    assert (row["actor_id"], row["outcome"]) == ("bob", "not_found")
    twin = User("alice", ("caseworker",), "org-b")  # the same sub in another organisation
    assert (await inbox(stack, settings, twin))["items"] == []
    up_to = await as_user(
        stack, settings, twin, "POST", "/v1/inbox/read", json={"up_to": item["id"]}
    )
    assert up_to.status_code == 404


async def test_rules_with_an_unknown_event_type_or_a_missing_language_are_refused(
    stack: Stack, settings: Settings
) -> None:
    admin = User("ruth", ("admin",), "org-rules", None)
    current = await as_user(stack, settings, admin, "GET", "/v1/notification-rules")
    assert current.status_code == 200 and current.json()["source"] == "default"
    rules = current.json()["rules"]
    bad = {
        "rules": [
            *rules,
            {**rules[0], "id": "made-up", "event_type": "org.casework.made.up.v1"},
            {**rules[3], "id": "half", "message": "half_translated"},
        ],
        "messages": {"half_translated": {"en": "Case {case_id} moved."}},
    }
    refused = await as_user(
        stack, settings, admin, "PUT", "/v1/notification-rules", json=bad,
        headers={"If-Match": current.headers["ETag"]},
    )  # fmt: skip
    assert refused.status_code == 422, refused.text
    problems = {(e["field"], e["message"].split(";")[0]) for e in refused.json()["errors"]}
    index = len(rules)
    assert (f"body.rules.{index}.event_type", "unknown event type") in problems
    assert (
        f"body.rules.{index + 1}.message",
        "message half_translated has no template in es",
    ) in problems
    after = await as_user(stack, settings, admin, "GET", "/v1/notification-rules")
    assert after.json()["source"] == "default"  # nothing saved

    good = {"rules": rules[:2], "timing": {"crisis_unacknowledged_minutes": 5}}
    saved = await as_user(
        stack, settings, admin, "PUT", "/v1/notification-rules", json=good,
        headers={"If-Match": current.headers["ETag"]},
    )  # fmt: skip
    assert saved.status_code == 200, saved.text
    assert (saved.json()["source"], saved.json()["version"], len(saved.json()["rules"])) == (
        "organisation",
        1,
        2,
    )
    stale = await as_user(
        stack, settings, admin, "PUT", "/v1/notification-rules", json=good,
        headers={"If-Match": current.headers["ETag"]},
    )  # fmt: skip
    assert stale.status_code == 412
    caseworker = await as_user(stack, settings, ALICE, "GET", "/v1/notification-rules")
    assert caseworker.status_code == 403


async def test_a_crisis_flag_escalates_until_someone_acknowledges_it(
    stack: Stack, settings: Settings
) -> None:
    on_call = await as_user(stack, settings, ADA, "GET", "/v1/on-call")
    put = await as_user(
        stack, settings, ADA, "PUT", "/v1/on-call", json={"user_ids": ["oscar"]},
        headers={"If-Match": on_call.headers["ETag"]},
    )  # fmt: skip
    assert put.status_code == 200 and put.json()["user_ids"] == ["oscar"], put.text
    ignored = await crisis_assessment(
        stack, settings, await client_assigned_to(stack, settings, ALICE)
    )
    answered_client = await client_assigned_to(stack, settings, ALICE)
    answered = await crisis_assessment(stack, settings, answered_client)
    for flag_id in (ignored, answered):
        await eventually_items(stack, settings, SAM, flag_id, "crisis_flag")
    acknowledged = await as_user(
        stack, settings, ALICE, "POST",
        f"/v1/clients/{answered_client}/flags/{answered}/acknowledgement", service="intake",
    )  # fmt: skip
    assert acknowledged.status_code == 200, acknowledged.text

    async def escalation_cancelled() -> bool | None:
        left = await admin_fetchval(
            settings,
            "SELECT count(*) FROM notifications.timers WHERE key LIKE $1 AND fired_at IS NULL",
            f"{answered}|%",
        )
        return True if left == 0 else None

    await eventually(escalation_cancelled, timeout=30)
    assert await items_about(stack, settings, SAM, ignored, "crisis_flag_escalation") == []

    CLOCK.advance(timedelta(minutes=16))  # nobody acknowledged the first: supervisors again
    [first] = await eventually_items(stack, settings, SAM, ignored, "crisis_flag_escalation")
    assert first["parameters"]["level"] == 1 and first["urgency"] == "crisis"
    assert await items_about(stack, settings, OSCAR, ignored) == []

    CLOCK.advance(timedelta(minutes=16))  # and then the on-call list
    [to_oscar] = await eventually_items(stack, settings, OSCAR, ignored, "crisis_flag_escalation")
    assert to_oscar["parameters"]["level"] == 2
    assert "no safe place" not in to_oscar["message"] and "safety" not in to_oscar["message"]
    # The acknowledged flag never escalated.
    assert await items_about(stack, settings, SAM, answered, "crisis_flag_escalation") == []
    assert await items_about(stack, settings, OSCAR, answered) == []


async def test_quiet_hours_delay_a_normal_message_but_not_a_crisis(
    stack: Stack, settings: Settings
) -> None:
    now = datetime.now(UTC)
    quiet = {
        "start": (now - timedelta(hours=1)).strftime("%H:%M"),
        "end": (now + timedelta(hours=2)).strftime("%H:%M"),
        "time_zone": "UTC",
    }
    current = await as_user(stack, settings, QUINN, "GET", "/v1/preferences")
    saved = await as_user(
        stack, settings, QUINN, "PUT", "/v1/preferences",
        json={"quiet_hours": quiet, "language": "pt"}, headers={"If-Match": current.headers["ETag"]},
    )  # fmt: skip
    assert saved.status_code == 200, saved.text
    assigned_client = await client_assigned_to(stack, settings, QUINN)
    crisis_client = await client_assigned_to(stack, settings, QUINN)
    flag_id = await crisis_assessment(stack, settings, crisis_client, QUINN)

    [crisis] = await eventually_items(stack, settings, QUINN, flag_id, "crisis_flag")
    assert crisis["message"].startswith("Alerta de crise")  # quinn reads Portuguese

    async def delayed() -> datetime | None:
        due: datetime | None = await admin_fetchval(
            settings,
            "SELECT due_at FROM notifications.timers WHERE kind = 'notifications.deliver' "
            "AND key LIKE $1 AND fired_at IS NULL AND due_at > $2",
            "org-a|quinn|%",
            now,
        )
        return due

    due_at = await eventually(delayed, timeout=20)
    assert await items_about(stack, settings, QUINN, assigned_client, "case_assigned") == []
    assert due_at > now and due_at.strftime("%H:%M") == quiet["end"]

    CLOCK.set(due_at + timedelta(seconds=1))  # the quiet hours are over
    [assigned] = await eventually_items(stack, settings, QUINN, assigned_client, "case_assigned")
    assert assigned["urgency"] == "normal"
    assert assigned["message"].startswith("O caso")


async def test_reviews_are_reminded_before_and_after_due_and_escalated_when_overdue(
    stack: Stack, settings: Settings
) -> None:
    client_id = uuid.UUID(await client_assigned_to(stack, settings, ALICE))
    case_id = uuid.uuid4()
    due_at = CLOCK.now() + timedelta(days=3)
    reviews = {"held": uuid.uuid4(), "forgotten": uuid.uuid4()}
    for review_id in reviews.values():
        await publish_as_planning(
            settings,
            ReviewScheduled(
                case_id=case_id, client_id=client_id, organization_id="org-a", review_id=review_id,
                team_id="team-a", worker_id="alice", due_at=due_at, risk_level=None,
                reason="cadence",
            ),
        )  # fmt: skip

    async def scheduled() -> bool | None:
        count = await admin_fetchval(
            settings,
            "SELECT count(*) FROM notifications.timers WHERE kind = 'notifications.review' "
            "AND payload->>'client_id' = $1",
            str(client_id),
        )
        return True if count == 6 else None

    await eventually(scheduled, timeout=20)
    CLOCK.set(due_at - timedelta(hours=47))  # within the 48 hours before
    for review_id in reviews.values():
        [soon] = await eventually_items(stack, settings, ALICE, str(review_id), "review_due_soon")
        assert soon["subject_type"] == "review" and soon["urgency"] == "normal"
    await publish_as_planning(
        settings,
        ReviewCompleted(
            case_id=case_id, client_id=client_id, organization_id="org-a",
            review_id=reviews["held"], outcome=ReviewOutcome.CONTINUE, completed_by="alice",
            completed_at=CLOCK.now(),
        ),
    )  # fmt: skip

    async def cancelled() -> bool | None:
        left = await admin_fetchval(
            settings,
            "SELECT count(*) FROM notifications.timers WHERE kind = 'notifications.review' "
            "AND key LIKE $1",
            f"{reviews['held']}|%",
        )
        return True if left == 1 else None  # the due-soon one, fired

    await eventually(cancelled, timeout=20)
    CLOCK.set(due_at + timedelta(hours=73))  # due, and overdue beyond the escalation setting
    forgotten = str(reviews["forgotten"])
    [overdue] = await eventually_items(stack, settings, ALICE, forgotten, "review_overdue")
    assert overdue["urgency"] == "high"
    [escalated] = await eventually_items(
        stack, settings, SAM, forgotten, "review_overdue_escalated"
    )
    assert escalated["message"].startswith(f"Review {forgotten} of case {case_id} is overdue")
    held = str(reviews["held"])
    assert await items_about(stack, settings, ALICE, held, "review_overdue") == []
    assert await items_about(stack, settings, SAM, held) == []


async def test_saving_preferences_schedules_the_daily_digest_and_turning_it_off_cancels_it(
    stack: Stack, settings: Settings
) -> None:
    async def pending_digests() -> list[asyncpg.Record]:
        connection = await asyncpg.connect(settings.database_url)
        try:
            return list(
                await connection.fetch(
                    "SELECT due_at, payload FROM notifications.timers WHERE kind = 'email.digest' "
                    "AND key LIKE 'org-a:oscar:%' AND fired_at IS NULL"
                )
            )
        finally:
            await connection.close()

    async def save(body: dict[str, object]) -> None:
        current = await as_user(stack, settings, OSCAR, "GET", "/v1/preferences")
        saved = await as_user(
            stack, settings, OSCAR, "PUT", "/v1/preferences",
            json=body, headers={"If-Match": current.headers["ETag"]},
        )  # fmt: skip
        assert saved.status_code == 200, saved.text
        assert saved.json()["digest_hour"] == body.get("digest_hour", 7)

    wanted = {
        "daily_digest": True, "digest_hour": 6, "digest_time_zone": "Europe/Lisbon",
        "email": "oscar@example.org", "language": "es",
    }  # fmt: skip
    await save(wanted)
    [digest] = await pending_digests()
    lisbon = digest["due_at"].astimezone(ZoneInfo("Europe/Lisbon"))
    assert (lisbon.hour, lisbon.minute) == (6, 0) and digest["due_at"] > CLOCK.now()
    payload = json.loads(digest["payload"])
    assert payload["email"] == "oscar@example.org" and payload["language"] == "es"

    await save({**wanted, "daily_digest": False})
    assert await pending_digests() == []
    await save({**wanted, "email": None})  # no address: nothing to send a digest to
    assert await pending_digests() == []
