"""`python -m bench.directory_inprocess`: the directory cases of `bench/directory.py` against
the referrals API in this process (ASGI, no sockets) on a private embedded PostgreSQL.

For machines too busy for `python -m bench` to start the whole stack (eight processes must be
ready within a minute): the same requests and the same figures, without uvicorn and the
network, so latencies are a little lower than through a socket.
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from asgi_lifespan import LifespanManager

from bench.directory import MATCHES, SERVICES, directory_body
from bench.load import percentile, rounded
from bench.people import ORGANIZATION, TEAM, WORKER
from services.referrals.main import SPEC
from services.registry import SERVICES as ALL_SERVICES
from shared.auth.tokens import issue_dev_token
from shared.db.migrations import migrate_services
from shared.embedded import EmbeddedPostgres
from shared.events.protection import GENERAL_NEED_CATEGORIES
from shared.http.app import create_app
from shared.ports import free_port
from shared.settings import Settings, with_database


def _emit(figure: dict[str, Any]) -> None:
    print(json.dumps(figure), flush=True)


async def _setup_rules(admin_url: str) -> None:
    connection = await asyncpg.connect(admin_url)
    try:
        ids = [r["id"] for r in await connection.fetch("SELECT id FROM referrals.service")]
        source = random.Random(5)
        categories = [(i, c) for i in ids for c in source.sample(GENERAL_NEED_CATEGORIES, 2)]
        rules = [
            rule
            for i in ids
            for rule in (
                (i, "age", "Age limit", f"age >= {source.choice([0, 16, 18, 25])}", 0, True),
                (i, "household", "Household size",
                 f"household_size <= {source.randint(2, 8)}", 1, True),
            )
        ]  # fmt: skip
        await connection.copy_records_to_table(
            "service_need_categories", schema_name="referrals", records=categories,
            columns=["service_id", "need_category"],
        )  # fmt: skip
        await connection.copy_records_to_table(
            "eligibility_rules", schema_name="referrals", records=rules,
            columns=["service_id", "rule_id", "description", "expression", "position",
                     "compiled_ok"],
        )  # fmt: skip
        await connection.execute("ANALYZE")
    finally:
        await connection.close()


async def run(settings: Settings) -> None:
    await migrate_services(settings.database_url, list(ALL_SERVICES.values()),
                           settings.service_db_password)  # fmt: skip
    app = create_app(SPEC, settings)
    admin = issue_dev_token(settings, subject="bench-admin", roles=["admin"],
                            organization_id=ORGANIZATION, team_id=None)  # fmt: skip
    worker = issue_dev_token(settings, subject=WORKER, roles=["caseworker"],
                             organization_id=ORGANIZATION, team_id=TEAM)  # fmt: skip
    async with LifespanManager(app) as manager, httpx.AsyncClient(
        transport=httpx.ASGITransport(app=manager.app), base_url="http://referrals.bench",
        timeout=600,
    ) as client:  # fmt: skip
        body = directory_body(SERVICES)
        for attempt in ("first", "again"):
            started, cpu = time.perf_counter(), time.process_time()
            response = await client.post(
                "/v1/directory/imports", content=body,
                headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/json"},
            )  # fmt: skip
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
            assert response.status_code == 200, response.text[:500]
            tables = response.json()["tables"].values()
            totals = {key: sum(t[key] for t in tables)
                      for key in ("received", "inserted", "updated", "unchanged", "rejected")}  # fmt: skip
            _emit({"case": "directory_import", "run": attempt, "services": SERVICES,
                   "megabytes": round(len(body) / 1e6, 1), "seconds": round(seconds, 2),
                   "api_cpu_seconds": round(cpu, 2), **totals, "in_process": True})  # fmt: skip
        await _setup_rules(settings.database_url)
        facts = {"need_categories": ["food_insecurity", "housing_instability"], "age": 34,
                 "household_size": 3, "language": "pt", "postal_area": "RV3"}  # fmt: skip
        worker_headers = {"Authorization": f"Bearer {worker}"}
        for target, method, path, payload in (
            ("match", "POST", "/v1/matches", {"facts": facts, "limit": 20}),
            ("hsds_info_floor", "GET", "/hsds/", None),
        ):
            for _ in range(20):  # warm-up
                await client.request(method, path, json=payload, headers=worker_headers)
            latencies, errors, candidates = [], 0, None
            for _ in range(MATCHES):
                started = time.perf_counter()
                response = await client.request(method, path, json=payload, headers=worker_headers)
                elapsed = (time.perf_counter() - started) * 1000
                if response.status_code != 200:
                    errors += 1
                    continue
                latencies.append(elapsed)
                candidates = response.json().get("candidates", candidates)
            _emit({"case": "directory_matching", "target": target, "services": SERVICES,
                   "requests": MATCHES, "p50_ms": rounded(percentile(latencies, 50)),
                   "p95_ms": rounded(percentile(latencies, 95)),
                   "p99_ms": rounded(percentile(latencies, 99)), "candidates": candidates,
                   "errors": errors, "in_process": True})  # fmt: skip


def main() -> int:
    directory = Path(tempfile.mkdtemp(prefix="casework-bench-directory-"))
    server = EmbeddedPostgres(directory / "postgres", free_port(), superuser_password="bench")
    server.start()
    try:
        settings = Settings(
            _env_file=None,
            database_url=with_database(server.admin_url, f"bench_{secrets.token_hex(4)}"),
            service_db_password="bench",
            embedded_postgres=False,
            embedded_broker=False,
            rate_limit_per_source="",
            rate_limit_per_principal="",
            rate_limit_unauthenticated="",
            directory_operator_organization_id=ORGANIZATION,
            log_level="WARNING",
        )
        asyncio.run(run(settings))
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
