"""Notification figures: the inbox's first page for a user with 10^5 items, and a crisis
answer's way from intake's POST to the frame on a live stream.

`inbox_first_page`: 10^5 notifications are written for one user straight into the stack's
notifications schema (as the worker would store them), then GET /v1/inbox (the first page,
and the first page of unread ones) is measured one request at a time; beside it, in the same
run, the page's own SQL on a raw asyncpg connection: the database's part of the figure.

`crisis_to_stream`: the bench worker's clients (registered, not assigned: a crisis of an
unassigned client goes to the on-call list, which here is the bench worker) are assessed with
a crisis answer at a steady rate; one live stream of the bench worker (a real SSE connection,
opened with a ticket) receives the frames. Latency = frame received - POST answered (the
client's monotonic clock), matched by the flag id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from typing import TYPE_CHECKING, Any

import asyncpg
import httpx

from bench.load import HttpConnection, build_request, percentile, rounded
from bench.people import ORGANIZATION, TEAM, WORKER, people_bodies
from bench.stages import Moments, p50_p99, published_at, stage_ms
from shared.auth.tokens import issue_dev_token
from shared.events.assessment import ProtectedFlagRaised

if TYPE_CHECKING:
    from bench.cases import BenchContext

Figure = dict[str, Any]
INBOX_ITEMS = 100_000
PAGE_REQUESTS = 300
CRISIS_RATE_PER_SECOND = 100
CRISIS_SECONDS = 5
CRISIS_WARMUP = 50
# Every question answered with no need, but one crisis answer (the screening's own codes).
CRISIS_ANSWERS = {
    "instrument_id": "needs-risk-screening",
    "version": "1.0",
    "answers": {
        "living_situation": "steady",
        "homeless_past_year": "no",
        "safe_place_tonight": "no",
        "food_worry": "never_true",
        "food_ran_out": "never_true",
        "paying_for_basics": "not_hard",
        "transportation": "no",
        "utilities_shutoff": "no",
        "physically_hurt": "never",
        "threatened_with_harm": "never",
        "danger_at_home": "no",
        "lonely": "never",
        "little_interest": "not_at_all",
        "feeling_down": "not_at_all",
        "suicidal_thoughts": "no",
        "child_in_danger": "no_children",
        "child_needs_unmet": "no_children",
    },
}


def _token(context: BenchContext, subject: str, roles: list[str], team: str | None) -> str:
    settings = context.stack.settings
    assert settings is not None
    return issue_dev_token(
        settings, subject=subject, roles=roles, organization_id=ORGANIZATION, team_id=team
    )


async def inbox_first_page(context: BenchContext) -> None:
    stack = context.stack
    reader = f"bench-reader-{uuid.uuid4().hex[:6]}"
    connection = await asyncpg.connect(
        stack.admin_url, server_settings={"search_path": "notifications"}
    )
    try:
        started = time.monotonic()
        await connection.execute(
            """
            INSERT INTO notifications (id, organization_id, recipient_id, seq, kind, subject_type,
                subject_id, client_id, urgency, message_key, parameters, rule_id,
                source_event_id, created_at, read_at)
            SELECT gen_random_uuid(), $1, $2, n, 'case_assigned', 'case', gen_random_uuid()::text,
                gen_random_uuid(), 'normal', 'case_assigned',
                jsonb_build_object('case_id', gen_random_uuid(), 'worker_id', $2::text), 'case-assigned',
                'bench:' || n, now() - make_interval(secs => $3 - n),
                CASE WHEN n % 3 = 0 THEN NULL ELSE now() END
            FROM generate_series(1, $3) AS n
            """,
            ORGANIZATION,
            reader,
            INBOX_ITEMS,
        )
        await connection.execute(
            "INSERT INTO inbox_state (organization_id, recipient_id, last_seq, unread_count) "
            "VALUES ($1, $2, $3, $4)",
            ORGANIZATION,
            reader,
            INBOX_ITEMS,
            INBOX_ITEMS // 3,
        )
        await connection.execute("ANALYZE notifications")
        seeded_s = time.monotonic() - started
        sql_ms: list[float] = []
        for _ in range(PAGE_REQUESTS):
            begun = time.perf_counter()
            await connection.fetch(
                "SELECT * FROM notifications WHERE organization_id = $1 AND recipient_id = $2 "
                "AND seq < $3 ORDER BY seq DESC LIMIT 51",
                ORGANIZATION,
                reader,
                2**62,
            )
            sql_ms.append((time.perf_counter() - begun) * 1000)
    finally:
        await connection.close()
    token = _token(context, reader, ["caseworker"], TEAM)
    for target, query in (("first_page", ""), ("first_unread_page", "?unread=true")):
        url = f"{stack.api_url('notifications')}/v1/inbox{query}"
        raw = build_request("GET", url, headers=[("Authorization", f"Bearer {token}")])
        http = HttpConnection.for_url(url)
        latencies: list[float] = []
        errors = 0
        try:
            for _ in range(PAGE_REQUESTS):
                begun = time.perf_counter()
                status, _body = await http.request(raw)
                latencies.append((time.perf_counter() - begun) * 1000)
                errors += status != 200
        finally:
            await http.close()
        context.emit(
            {
                "case": "inbox_first_page",
                "target": target,
                "items": INBOX_ITEMS,
                "requests": PAGE_REQUESTS,
                "p50_ms": rounded(percentile(latencies, 50)),
                "p95_ms": rounded(percentile(latencies, 95)),
                "p99_ms": rounded(percentile(latencies, 99)),
                "baseline_sql_p95_ms": rounded(percentile(sql_ms, 95)),
                "seeded_in_s": round(seeded_s, 1),
                "errors": errors,
            }
        )


async def crisis_to_stream(context: BenchContext) -> None:
    stack = context.stack
    base = stack.api_url("notifications")
    worker = {"Authorization": f"Bearer {_token(context, WORKER, ['caseworker'], TEAM)}"}
    admin = {"Authorization": f"Bearer {_token(context, 'bench-admin', ['admin'], None)}"}
    count = CRISIS_WARMUP + CRISIS_RATE_PER_SECOND * CRISIS_SECONDS
    async with httpx.AsyncClient(timeout=30) as client:
        current = await client.get(f"{base}/v1/on-call", headers=admin)
        await client.put(
            f"{base}/v1/on-call",
            json={"user_ids": [WORKER]},
            headers={**admin, "If-Match": current.headers["ETag"]},
        )
        intake = stack.api_url("intake")
        clients: list[str] = []
        for body in people_bodies(count):
            response = await client.post(
                f"{intake}/v1/clients",
                content=body,
                headers={**worker, "Content-Type": "application/json"},
            )
            if response.status_code == 201:
                clients.append(response.json()["id"])
        ticket = (await client.post(f"{base}/v1/inbox/stream-tickets", headers=worker)).json()
    answered: dict[str, float] = {}  # client id -> when its POST was answered
    received: dict[str, float] = {}  # client id -> when its frame arrived
    answered_at: Moments = {}  # the same two, on the wall clock (for the stages)
    received_at: Moments = {}
    frames_open = asyncio.Event()
    warmup, measured = clients[:CRISIS_WARMUP], clients[CRISIS_WARMUP:]
    warmed = asyncio.Event()  # every warm-up crisis's frame arrived

    async def listen() -> None:
        async with (
            httpx.AsyncClient(timeout=httpx.Timeout(60.0)) as streaming,
            streaming.stream(
                "GET", f"{base}/v1/inbox/stream", params={"ticket": ticket["ticket"]}
            ) as response,
        ):
            frames_open.set()
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    item = json.loads(line.removeprefix("data:").strip())
                    if item["kind"] == "crisis_flag" and item["client_id"]:
                        received.setdefault(item["client_id"], time.monotonic())
                        received_at.setdefault(item["client_id"], time.time())
                        if received.keys() >= set(warmup):
                            warmed.set()
                        if len(received) >= len(clients):
                            return

    listener = asyncio.create_task(listen())
    await asyncio.wait_for(frames_open.wait(), 30)
    errors = 0
    body = json.dumps(CRISIS_ANSWERS).encode()
    interval = 1 / CRISIS_RATE_PER_SECOND

    async def assess(http: httpx.AsyncClient, client_id: str) -> None:
        nonlocal errors
        response = await http.post(
            f"{stack.api_url('intake')}/v1/clients/{client_id}/assessments",
            content=body,
            headers={**worker, "Content-Type": "application/json"},
        )
        if response.status_code == 201:
            answered[client_id] = time.monotonic()
            answered_at[client_id] = time.time()
        else:
            errors += 1

    async def assess_at_rate(http: httpx.AsyncClient, some: list[str]) -> float:
        """POST an assessment for each at the rate; the rate offered."""
        started = time.monotonic()
        posts = []
        for index, client_id in enumerate(some):
            delay = started + index * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            posts.append(asyncio.create_task(assess(http, client_id)))
        await asyncio.gather(*posts)
        return len(some) / max(time.monotonic() - started, 1e-9)

    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=64)) as http:
        # Not measured: the first crises load the instrument, the rules and the templates
        # and fill every service's caches on the way; their frames arrive before the rest go.
        await assess_at_rate(http, warmup)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(warmed.wait(), 30)
        offered_rate = await assess_at_rate(http, measured)
    timeouts = 0
    try:
        await asyncio.wait_for(listener, 30)
    except TimeoutError:
        timeouts = len(set(measured) & set(answered)) - len(set(measured) & set(received))
    for client_id in warmup:
        answered.pop(client_id, None)
        answered_at.pop(client_id, None)
    latencies = [(received[c] - answered[c]) * 1000 for c in answered if c in received]
    published = await published_at(stack.admin_url, ProtectedFlagRaised.event_type, list(answered))
    picked_up = await _picked_up(stack.admin_url, list(answered))
    stages = {
        "relay_publish": stage_ms(answered_at, published),
        "consumer_pickup": stage_ms(published, picked_up),
        "handling_and_stream": stage_ms(picked_up, received_at),
    }
    context.emit(
        {
            "case": "crisis_to_stream",
            "assessments": len(answered),
            "offered_per_s": round(offered_rate, 1),
            "p50_ms": rounded(percentile(latencies, 50)),
            "p99_ms": rounded(percentile(latencies, 99)),
            "max_ms": rounded(max(latencies)) if latencies else None,
            "timeouts": timeouts,
            "errors": errors,
            # Where the time went: intake's relay (the answer until ProtectedFlagRaised was
            # acknowledged by the broker), notifications' consumer picking it up (until its
            # batch's transaction began), the handling, commit and stream (until the bench read
            # the frame). Wall clock, one machine.
            "stages_p50_p99_ms": p50_p99(stages),
        }
    )


async def _picked_up(admin_url: str, clients: list[str]) -> Moments:
    """When notifications' consumer began the transaction handling each client's
    ProtectedFlagRaised (its inbox row is stamped with the transaction's start, now())."""
    connection: asyncpg.Connection = await asyncpg.connect(admin_url)
    try:
        rows = await connection.fetch(
            "SELECT o.aggregateid AS client_id, extract(epoch FROM min(i.processed_at)) AS at "
            "FROM intake.outbox o JOIN notifications.inbox i ON i.event_id = o.id::text "
            "WHERE o.type = $1 AND o.aggregateid = ANY($2::text[]) GROUP BY o.aggregateid",
            ProtectedFlagRaised.event_type,
            clients,
        )
    finally:
        await connection.close()
    return {row["client_id"]: float(row["at"]) for row in rows}
