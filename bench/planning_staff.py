"""Planning's team view under a realistic caseload: 20 workers of a team with 60 open cases
each, among the cases of other teams of the organisation.

`team_caseload` seeds the cases directly (as a migration of an agency's records would), then
asks `GET /v1/teams/{team_id}/caseload` as the team's supervisor, one request at a time, and
emits p50/p95/p99. The baseline, measured in the same run, is planning's own team-load query
run with raw asyncpg on one connection: what the database costs, before the API (token, Guard,
audit record, JSON) adds its share.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

import asyncpg

from bench.load import HttpConnection, build_request, percentile, rounded
from bench.stack import BenchStack
from services.planning.caseloads.service import TEAM_LOAD_QUERY, weights_parameter
from services.planning.caseloads.weights import RISK_WEIGHTS, UNKNOWN
from shared.auth.tokens import issue_dev_token

if TYPE_CHECKING:
    from bench.cases import BenchContext

ORGANIZATION = "bench-planning"
TEAM = "team-bench"
WORKERS = 20
CASES_PER_WORKER = 60
OTHER_TEAMS = 9  # as many again per team: the team view must not read them
REQUESTS = 500
WARMUP = 50

_SEED_WORKERS = """
INSERT INTO planning.workers (organization_id, worker_id, team_id, display_name, role,
                              languages, capacity_points, active, created_at, updated_at)
SELECT $1, format('w-%s-%s', t, n), CASE WHEN t = 0 THEN $2 ELSE format('team-%s', t) END,
       format('Worker %s-%s', t, n), 'caseworker', ARRAY['en'], 90, true, now(), now()
FROM generate_series(0, $3) AS t, generate_series(1, $4) AS n
ON CONFLICT DO NOTHING
"""

_SEED_CASES = """
INSERT INTO planning.cases (id, client_id, organization_id, team_id, worker_id, status,
                            risk_level, source, opened_by, opened_at, next_review_due_at,
                            updated_at)
SELECT gen_random_uuid(), gen_random_uuid(), $1,
       CASE WHEN t = 0 THEN $2 ELSE format('team-%s', t) END, format('w-%s-%s', t, n),
       (ARRAY['open', 'active', 'on_hold', 'closed'])[1 + (c % 4)],
       (ARRAY['crisis', 'high', 'moderate', 'low', NULL])[1 + (c % 5)],
       'manual', 'bench', $5::timestamptz, $5::timestamptz + (c % 90 - 30) * interval '1 day',
       $5::timestamptz
FROM generate_series(0, $3) AS t, generate_series(1, $4) AS n,
     generate_series(1, $6) AS c
"""


def _supervisor_header(stack: BenchStack) -> tuple[str, str]:
    assert stack.settings is not None
    token = issue_dev_token(
        stack.settings,
        subject="bench-supervisor",
        roles=["supervisor"],
        organization_id=ORGANIZATION,
        team_id=TEAM,
    )
    return ("Authorization", f"Bearer {token}")


async def _seed(admin_url: str, now: datetime) -> int:
    """The workers and their cases (a quarter of them closed: open ones count); returns how
    many cases the team's workers have open."""
    connection = await asyncpg.connect(admin_url)
    try:
        if not await connection.fetchval(
            "SELECT count(*) FROM planning.cases WHERE organization_id = $1", ORGANIZATION
        ):
            await connection.execute(_SEED_WORKERS, ORGANIZATION, TEAM, OTHER_TEAMS, WORKERS)
            # 60 open cases per worker: 80 written, one in four closed.
            per_worker = CASES_PER_WORKER * 4 // 3
            await connection.execute(
                _SEED_CASES, ORGANIZATION, TEAM, OTHER_TEAMS, WORKERS, now, per_worker
            )
            await connection.execute("VACUUM (ANALYZE) planning.cases, planning.workers")
        open_cases: int = await connection.fetchval(
            "SELECT count(*) FROM planning.cases WHERE organization_id = $1 AND team_id = $2 "
            "AND status <> 'closed'",
            ORGANIZATION,
            TEAM,
        )
        return open_cases
    finally:
        await connection.close()


async def _baseline(admin_url: str, now: datetime) -> list[float]:
    connection = await asyncpg.connect(admin_url, server_settings={"search_path": "planning"})
    weights = weights_parameter(RISK_WEIGHTS)
    unknown: Decimal = RISK_WEIGHTS[UNKNOWN]
    await connection.set_type_codec(
        "jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
    )
    latencies: list[float] = []
    try:
        for index in range(WARMUP + REQUESTS):
            started = time.perf_counter()
            rows = await connection.fetch(
                TEAM_LOAD_QUERY, ORGANIZATION, TEAM, now, weights, unknown
            )
            if index >= WARMUP:
                latencies.append((time.perf_counter() - started) * 1000)
            assert len(rows) == WORKERS
    finally:
        await connection.close()
    return latencies


async def _api(stack: BenchStack) -> tuple[list[float], int, int]:
    url = f"{stack.api_url('planning')}/v1/teams/{TEAM}/caseload"
    raw = build_request("GET", url, headers=[_supervisor_header(stack)])
    connection = HttpConnection.for_url(url)
    latencies: list[float] = []
    errors = 0
    open_cases = 0
    try:
        for index in range(WARMUP + REQUESTS):
            started = time.perf_counter()
            status, body = await connection.request(raw)
            elapsed = (time.perf_counter() - started) * 1000
            if status != 200:
                errors += 1
                continue
            if index >= WARMUP:
                latencies.append(elapsed)
            open_cases = sum(worker["open_cases"] for worker in json.loads(body)["workers"])
    finally:
        await connection.close()
    return latencies, errors, open_cases


async def team_caseload(context: BenchContext) -> None:
    """The team view, 20 workers x 60 open cases, against the raw query (same run)."""
    stack = context.stack
    now = datetime.now(UTC) - timedelta(seconds=1)
    seeded = await _seed(stack.admin_url, now)
    baseline = await _baseline(stack.admin_url, now)
    api, errors, shown = await _api(stack)
    for target, latencies in (("baseline_raw_query", baseline), ("planning_api", api)):
        context.emit(
            {
                "case": "team_caseload",
                "target": target,
                "workers": WORKERS,
                "open_cases": seeded,
                "requests": len(latencies),
                "p50_ms": rounded(percentile(latencies, 50)),
                "p95_ms": rounded(percentile(latencies, 95)),
                "p99_ms": rounded(percentile(latencies, 99)),
                **(
                    {"errors": errors, "open_cases_shown": shown}
                    if target == "planning_api"
                    else {}
                ),
            }
        )
