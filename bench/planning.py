"""Planning's benchmark cases.

- `planning_case_from_assessment`: assessments POSTed at intake at a fixed rate (open loop,
  `--assessment-rate`, default 100/s) for clients registered beforehand; for each, the time
  from just before its POST was sent to the moment planning recorded the first review of the
  case the assessment opened (the timeline entry's `recorded_at`, planning's clock in the
  consumer's transaction, which also opened the case). Same machine, same clock.
- `planning_timeline`: one case with 1,000 timeline entries; `GET /v1/cases/{id}/timeline`
  (first page, 50) one request at a time, beside `GET /v1/cases/{id}` of the same case as the
  baseline (the same token check, Guard, case scope and audit row, without the timeline).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import asyncpg

from bench.load import REQUEST_ERRORS, HttpConnection, build_request, percentile, rounded
from bench.people import people_bodies
from bench.stack import CpuMeter
from bench.stages import p50_p99, published_at, stage_ms
from shared.events.assessment import ClientAssessed

if TYPE_CHECKING:
    from bench.cases import BenchContext

# Answers that find food needs: every assessment opens a case.
FOOD_NEEDS = {
    "living_situation": "steady", "homeless_past_year": "no", "safe_place_tonight": "yes",
    "food_worry": "often_true", "food_ran_out": "often_true", "paying_for_basics": "not_hard",
    "transportation": "no", "utilities_shutoff": "no", "physically_hurt": "never",
    "threatened_with_harm": "never", "danger_at_home": "no", "lonely": "never",
    "little_interest": "not_at_all", "feeling_down": "not_at_all", "suicidal_thoughts": "no",
    "child_in_danger": "no_children", "child_needs_unmet": "no_children",
}  # fmt: skip
SENDERS = 16
WARMUP_ASSESSMENTS = 50
TIMELINE_ENTRIES = 1000
TIMELINE_REQUESTS = 300


async def register_clients(
    base_url: str, count: int, headers: tuple[tuple[str, str], ...]
) -> list[str]:
    connection = HttpConnection.for_url(base_url)
    clients: list[str] = []
    try:
        for body in people_bodies(count):
            raw = build_request("POST", f"{base_url}/v1/clients", body, headers=headers)
            status, answer = await connection.request(raw)
            if status == 201:
                clients.append(json.loads(answer)["id"])
    finally:
        await connection.close()
    return clients


async def wait_known(admin_url: str, clients: list[str], timeout_s: float = 60.0) -> None:
    """Until planning knows every client (its access facts arrived)."""
    connection: asyncpg.Connection = await asyncpg.connect(admin_url)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            known = await connection.fetchval(
                "SELECT count(*) FROM planning.client_access WHERE client_id = ANY($1::uuid[])",
                clients,
            )
            if known == len(clients):
                return
            await asyncio.sleep(0.1)
    finally:
        await connection.close()


async def post_assessments(
    base_url: str, clients: list[str], rate: float, headers: tuple[tuple[str, str], ...]
) -> tuple[dict[str, datetime], dict[str, datetime], int]:
    """One assessment per client at `rate` per second, on SENDERS connections: when each was
    sent and answered (wall clock), and how many failed."""
    interval = 1 / rate
    sent: dict[str, datetime] = {}
    answered: dict[str, datetime] = {}
    errors = 0
    body = json.dumps(
        {"instrument_id": "needs-risk-screening", "version": "1.0", "answers": FOOD_NEEDS}
    ).encode()
    started = time.monotonic() + 0.1

    async def sender(offset: int) -> None:
        nonlocal errors
        connection = HttpConnection.for_url(base_url)
        try:
            for index in range(offset, len(clients), SENDERS):
                delay = started + index * interval - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                client_id = clients[index]
                raw = build_request(
                    "POST", f"{base_url}/v1/clients/{client_id}/assessments", body,
                    headers=headers,
                )  # fmt: skip
                sent[client_id] = datetime.now(UTC)
                try:
                    status, _ = await connection.request(raw)
                    answered[client_id] = datetime.now(UTC)
                except REQUEST_ERRORS:
                    errors += 1
                    await connection.close()
                    continue
                if status != 201:
                    errors += 1
        finally:
            await connection.close()

    await asyncio.gather(*(sender(offset) for offset in range(SENDERS)))
    return sent, answered, errors


async def review_recorded(
    admin_url: str, clients: list[str], timeout_s: float
) -> dict[str, datetime]:
    """When planning recorded the first scheduled review of each client's case."""
    connection: asyncpg.Connection = await asyncpg.connect(admin_url)
    deadline = time.monotonic() + timeout_s
    found: dict[str, datetime] = {}
    try:
        while time.monotonic() < deadline:
            rows = await connection.fetch(
                "SELECT client_id::text AS client_id, min(recorded_at) AS at "
                "FROM planning.case_timeline WHERE kind = 'review.scheduled' "
                "AND client_id = ANY($1::uuid[]) GROUP BY client_id",
                clients,
            )
            found = {row["client_id"]: row["at"] for row in rows}
            if len(found) == len(clients):
                break
            await asyncio.sleep(0.2)
    finally:
        await connection.close()
    return found


async def planning_case_from_assessment(context: BenchContext) -> None:
    stack, options = context.stack, context.options
    intake = stack.api_url("intake")
    count = options.events
    rate = options.assessment_rate
    registered = await register_clients(intake, WARMUP_ASSESSMENTS + count, options.headers)
    await wait_known(stack.admin_url, registered)
    warmup, clients = registered[:WARMUP_ASSESSMENTS], registered[WARMUP_ASSESSMENTS:]
    # Not measured: the first assessments load the instrument, compile its rules and fill
    # the caches of every service on the way.
    await post_assessments(intake, warmup, rate, options.headers)
    await review_recorded(stack.admin_url, warmup, options.event_timeout_s + 30)
    await stack.wait_caught_up()
    meter = CpuMeter(stack.process_groups())
    meter.start()
    sent, answered, errors = await post_assessments(intake, clients, rate, options.headers)
    recorded = await review_recorded(stack.admin_url, clients, options.event_timeout_s + 30)
    meter.stop()
    published = await published_at(stack.admin_url, ClientAssessed.event_type, clients)
    sent_at, answered_at, recorded_at = (
        {client: moment.timestamp() for client, moment in moments.items()}
        for moments in (sent, answered, recorded)
    )
    latencies = stage_ms(sent_at, recorded_at)
    # Where the time went: intake's answer, then its relay's publish, then planning's consumer.
    stages = {
        "intake_answer": stage_ms(sent_at, answered_at),
        "relay_publish": stage_ms(answered_at, published),
        "planning_consume": stage_ms(published, recorded_at),
    }
    context.emit(
        {
            "case": "planning_case_from_assessment",
            "assessments": len(sent),
            "target_rate_per_s": rate,
            "p50_ms": rounded(percentile(latencies, 50)),
            "p99_ms": rounded(percentile(latencies, 99)),
            "max_ms": rounded(max(latencies)) if latencies else None,
            "errors": errors,
            "timeouts": len(clients) - len(latencies),
            # CPU seconds per process group from the first POST until the last case's review
            # was recorded (with the polling after it): where the cores went.
            "cpu_s": meter.seconds,
            "stages_p50_p99_ms": p50_p99(stages),
        }
    )


async def _fill_timeline(admin_url: str, case_id: str, client_id: str) -> None:
    connection: asyncpg.Connection = await asyncpg.connect(admin_url)
    start = datetime.now(UTC) - timedelta(days=365)
    try:
        await connection.executemany(
            "INSERT INTO planning.case_timeline (id, case_id, client_id, occurred_at, kind, "
            "subject_type, subject_id, codes, source, recorded_at) "
            "VALUES ($1, $2, $3, $4, 'referral.status_changed', 'referral', $5, "
            "'{\"to_status\": \"accepted\"}'::jsonb, 'referrals', now())",
            [
                (
                    uuid.uuid4(),
                    uuid.UUID(case_id),
                    uuid.UUID(client_id),
                    start + timedelta(hours=index),
                    uuid.uuid4(),
                )
                for index in range(TIMELINE_ENTRIES)
            ],
        )
    finally:
        await connection.close()


async def _timed_gets(url: str, count: int, headers: tuple[tuple[str, str], ...]) -> list[float]:
    connection = HttpConnection.for_url(url)
    raw = build_request("GET", url, headers=headers)
    timings: list[float] = []
    try:
        for _ in range(count):
            began = time.perf_counter()
            status, _ = await connection.request(raw)
            if status == 200:
                timings.append((time.perf_counter() - began) * 1000)
    finally:
        await connection.close()
    return timings


async def planning_timeline(context: BenchContext) -> None:
    stack, options = context.stack, context.options
    intake, planning = stack.api_url("intake"), stack.api_url("planning")
    [client_id] = await register_clients(intake, 1, options.headers)
    await wait_known(stack.admin_url, [client_id])
    connection = HttpConnection.for_url(planning)
    try:
        raw = build_request(
            "POST", f"{planning}/v1/cases", json.dumps({"client_id": client_id}).encode(),
            headers=options.headers,
        )  # fmt: skip
        status, answer = await connection.request(raw)
    finally:
        await connection.close()
    body = json.loads(answer)
    case_id = body["id"] if status == 201 else body["case_id"]
    await _fill_timeline(stack.admin_url, case_id, client_id)
    analyzing: asyncpg.Connection = await asyncpg.connect(stack.admin_url)
    try:
        await analyzing.execute("ANALYZE planning.case_timeline")
    finally:
        await analyzing.close()
    figures: dict[str, list[float]] = {}
    targets = {
        "case_read_baseline": f"{planning}/v1/cases/{case_id}",
        "timeline_first_page": f"{planning}/v1/cases/{case_id}/timeline?limit=50",
    }
    for name, url in targets.items():
        await _timed_gets(url, 30, options.headers)  # warm-up
        figures[name] = await _timed_gets(url, TIMELINE_REQUESTS, options.headers)
    for name, timings in figures.items():
        context.emit(
            {
                "case": "planning_timeline",
                "target": name,
                "entries": TIMELINE_ENTRIES,
                "requests": len(timings),
                "p50_ms": rounded(percentile(timings, 50)),
                "p95_ms": rounded(percentile(timings, 95)),
                "errors": TIMELINE_REQUESTS - len(timings),
            }
        )
