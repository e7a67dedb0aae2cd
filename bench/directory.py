"""The referrals directory's cases: importing 10,000 services, and matching over them.

`directory_import`: 10,000 `service_full` services (an organization per 50, each service with
a location and its address, a phone, two languages, a service area and a weekly schedule:
about 80,000 rows) imported as the directory operator's administrator, then the same body
again (every row unchanged). Aim: under 30 s.

`directory_matching`: each service mapped to two need categories and given two eligibility
rules (set in the database: that is setup, not what is measured), then POST /v1/matches with
a client's facts (two needs, age, household size, language, postal area) one request at a
time: p50, p95, p99. Beside it, in the same run, GET /hsds/ (the same API's floor: routing,
middleware, no work) measured the same way. Aim: p95 under 50 ms.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from typing import TYPE_CHECKING, Any

import asyncpg

from bench.load import HttpConnection, build_request, percentile, rounded
from bench.people import ORGANIZATION
from shared.auth.tokens import issue_dev_token
from shared.events.protection import GENERAL_NEED_CATEGORIES

if TYPE_CHECKING:  # bench.cases lists these cases: no import cycle at run time
    from bench.cases import BenchContext, Figure

SERVICES = 10_000
PER_ORGANIZATION = 50
MATCHES = 400
POSTAL_AREAS = [f"{letters}{digit}" for letters in ("RV", "NG", "HB", "LS") for digit in range(10)]


def _id(random_source: random.Random) -> str:
    return str(uuid.UUID(int=random_source.getrandbits(128), version=4))


def directory_body(count: int, seed: int = 11) -> bytes:
    source = random.Random(seed)
    services: list[dict[str, Any]] = []
    organization: dict[str, Any] = {}
    for n in range(count):
        if n % PER_ORGANIZATION == 0:
            organization = {"id": _id(source), "name": f"Organisation {n // PER_ORGANIZATION}",
                            "description": "A community organisation."}  # fmt: skip
        area = source.choice(POSTAL_AREAS)
        services.append({
            "id": _id(source), "name": f"Service {n}", "status": "active",
            "description": "Help for people in the area.", "organization": organization,
            "minimum_age": source.choice([0, 16, 18]),
            "phones": [{"id": _id(source), "number": f"0100 {n:06d}"}],
            "languages": [{"id": _id(source), "code": "en"},
                          {"id": _id(source), "code": source.choice(["pt", "pl", "ur", "es"])}],
            "service_areas": [{"id": _id(source), "extent": area, "extent_type": "text"}],
            "schedules": [{"id": _id(source), "freq": "WEEKLY", "byday": "MO,TU,WE,TH,FR",
                           "opens_at": "09:00", "closes_at": "17:00"}],
            "service_at_locations": [{"id": _id(source), "location": {
                "id": _id(source), "location_type": "physical", "name": f"Hall {n}",
                "addresses": [{"id": _id(source), "address_1": f"{n} High Street",
                               "city": "Town", "state_province": "Shire",
                               "postal_code": f"{area} {n % 9}AB", "country": "GB",
                               "address_type": "physical"}]}}],
        })  # fmt: skip
    return json.dumps(services).encode()


def _admin_headers(context: BenchContext) -> tuple[tuple[str, str], ...]:
    assert context.stack.settings is not None
    token = issue_dev_token(
        context.stack.settings, subject="bench-admin", roles=["admin"],
        organization_id=ORGANIZATION, team_id=None,
    )  # fmt: skip
    return (("Authorization", f"Bearer {token}"),)


async def _import(context: BenchContext, body: bytes) -> tuple[float, dict[str, Any]]:
    url = f"{context.stack.api_url('referrals')}/v1/directory/imports"
    connection = HttpConnection.for_url(url)
    try:
        started = time.perf_counter()
        status, answer = await connection.request(
            build_request("POST", url, body, headers=_admin_headers(context))
        )
        seconds = time.perf_counter() - started
    finally:
        await connection.close()
    if status != 200:
        raise RuntimeError(f"import answered {status}: {answer[:500]!r}")
    report: dict[str, Any] = json.loads(answer)
    return seconds, report


async def directory_import(context: BenchContext) -> None:
    body = directory_body(SERVICES)
    for run in ("first", "again"):
        seconds, report = await _import(context, body)
        totals = {key: sum(t[key] for t in report["tables"].values())
                  for key in ("received", "inserted", "updated", "unchanged", "rejected")}  # fmt: skip
        figure: Figure = {"case": "directory_import", "run": run, "services": SERVICES,
                          "megabytes": round(len(body) / 1e6, 1), "seconds": round(seconds, 2),
                          "rows_per_second": round(totals["received"] / seconds), **totals}  # fmt: skip
        context.emit(figure)


async def _ensure_directory(context: BenchContext) -> list[str]:
    connection = await asyncpg.connect(context.stack.admin_url)
    try:
        if await connection.fetchval("SELECT count(*) FROM referrals.service") < SERVICES:
            await _import(context, directory_body(SERVICES))
        ids = [r["id"] for r in await connection.fetch("SELECT id FROM referrals.service")]
        source = random.Random(5)
        categories = [(i, c) for i in ids for c in source.sample(GENERAL_NEED_CATEGORIES, 2)]
        rules = [
            rule
            for i in ids
            for rule in (
                (i, "age", "Age limit", f"age >= {source.choice([0, 16, 18, 25])}", 0),
                (i, "household", "Household size", f"household_size <= {source.randint(2, 8)}", 1),
            )
        ]
        await connection.execute("DELETE FROM referrals.service_need_categories")
        await connection.execute("DELETE FROM referrals.eligibility_rules")
        await connection.copy_records_to_table(
            "service_need_categories", schema_name="referrals", records=categories,
            columns=["service_id", "need_category"],
        )  # fmt: skip
        await connection.copy_records_to_table(
            "eligibility_rules", schema_name="referrals",
            records=[(*rule, True) for rule in rules],
            columns=["service_id", "rule_id", "description", "expression", "position",
                     "compiled_ok"],
        )  # fmt: skip
        await connection.execute("ANALYZE referrals.service_need_categories")
        await connection.execute("ANALYZE referrals.eligibility_rules")
    finally:
        await connection.close()
    return ids


async def _latencies(url: str, raw: bytes, count: int) -> tuple[list[float], int, int]:
    connection = HttpConnection.for_url(url)
    latencies: list[float] = []
    errors = size = 0
    try:
        for _ in range(count):
            started = time.perf_counter()
            status, body = await connection.request(raw)
            if status != 200:
                errors += 1
                continue
            latencies.append((time.perf_counter() - started) * 1000)
            size = len(body)
    finally:
        await connection.close()
    return latencies, errors, size


async def directory_matching(context: BenchContext) -> None:
    await _ensure_directory(context)
    base = context.stack.api_url("referrals")
    needs = ["food_insecurity", "housing_instability"]
    facts = {"need_categories": needs, "age": 34,
             "household_size": 3, "language": "pt", "postal_area": "RV3"}  # fmt: skip
    body = json.dumps({"facts": facts, "limit": 20}).encode()
    match = build_request("POST", f"{base}/v1/matches", body, headers=context.options.headers)
    floor = build_request("GET", f"{base}/hsds/", headers=context.options.headers)
    await _latencies(f"{base}/v1/matches", match, 20)  # warm-up: connections, caches
    for target, url, raw in (("match", f"{base}/v1/matches", match),
                             ("hsds_info_floor", f"{base}/hsds/", floor)):  # fmt: skip
        latencies, errors, size = await _latencies(url, raw, MATCHES)
        context.emit({
            "case": "directory_matching", "target": target, "services": SERVICES,
            "requests": MATCHES, "p50_ms": rounded(percentile(latencies, 50)),
            "p95_ms": rounded(percentile(latencies, 95)),
            "p99_ms": rounded(percentile(latencies, 99)), "response_bytes": size,
            "errors": errors,
        })  # fmt: skip
    candidates = await _candidates(context, needs)
    context.emit({"case": "directory_matching_candidates", "candidates": candidates})


async def _candidates(context: BenchContext, needs: list[str]) -> int:
    connection = await asyncpg.connect(context.stack.admin_url)
    try:
        count: int = await connection.fetchval(
            "SELECT count(DISTINCT service_id) FROM referrals.service_need_categories "
            "WHERE need_category = ANY($1::text[])",
            needs,
        )
    finally:
        await connection.close()
    return count
