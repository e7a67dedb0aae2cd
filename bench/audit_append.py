"""Micro-benchmark of the audit append: the HMAC append services use (the chain head under the
chain's lock, the HMACs in Python, the insert: two round trips) against the one-statement
SHA-256 append it replaced (kept here only as the reference point), on the same table.

`python -m bench.audit_append [--appends 3000] [--concurrency 16]`: starts a private embedded
PostgreSQL in a temporary directory, migrates intake (for its audit table), then times one-row
appends (what a registration writes), each in its own transaction, from `concurrency`
connections. One JSON object per line on stdout: appends per second and p50/p99 in ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg

from services.registry import SERVICES
from shared.audit.keys import ChainKeys
from shared.audit.log import (
    CHAINS,
    ENTRY_FIELDS,
    GENESIS,
    AuditEntry,
    append,
    chain_claim_function,
    chain_head_function,
    lock_namespace,
)
from shared.db.migrations import migrate_services
from shared.embedded import EmbeddedPostgres, free_port

# The append before HMAC keys: hashes computed in SQL (sha256), one statement.
_SHA256_APPEND = f"""
WITH RECURSIVE entries AS (
    SELECT * FROM unnest($3::uuid[], $4::timestamptz[], $5::text[], $6::text[], $7::text[],
                         $8::text[], $9::text[], $10::text[], $11::uuid[], $12::text[],
                         $13::text[], $14::text[], $15::text[], $16::text[], $17::bytea[])
        WITH ORDINALITY AS e(id, occurred_at, actor_id, actor_roles, actor_organization_id,
                             action, resource_type, resource_id, client_id, outcome,
                             request_id, source_address, purpose, break_glass_reason,
                             canonical, n)
), chained (n, prev_hash, hash) AS (
    SELECT 0::bigint, NULL::text, coalesce(audit_chain_head($1, $2), '{GENESIS}')
    UNION ALL
    SELECT e.n, c.hash, encode(sha256(convert_to(c.hash, 'UTF8') || e.canonical), 'hex')
    FROM chained c JOIN entries e ON e.n = c.n + 1
)
INSERT INTO audit_log (id, chain, occurred_at, actor_id, actor_roles, actor_organization_id,
    action, resource_type, resource_id, client_id, outcome, request_id, source_address, purpose,
    break_glass_reason, prev_hash, hash)
SELECT e.id, $2, e.occurred_at, e.actor_id,
    ARRAY(SELECT jsonb_array_elements_text(e.actor_roles::jsonb)), e.actor_organization_id,
    e.action, e.resource_type, e.resource_id, e.client_id, e.outcome, e.request_id,
    e.source_address, e.purpose, e.break_glass_reason, c.prev_hash, c.hash
FROM entries e JOIN chained c USING (n)
ORDER BY e.n
"""

KEYS = ChainKeys(current_id="bench", keys={"bench": b"bench-audit-key-" * 2})


def _entry() -> AuditEntry:
    client_id = uuid.uuid4()
    return AuditEntry.new(
        actor_id="bench-worker",
        actor_roles=["caseworker"],
        actor_organization_id="org-bench",
        action="client.create",
        resource_type="client",
        resource_id=str(client_id),
        client_id=client_id,
        outcome="allowed",
        request_id=None,
        source_address="127.0.0.1",
        purpose=None,
        break_glass_reason=None,
    )


async def _sha256_append(connection: asyncpg.Connection, schema: str) -> None:
    entry = _entry()
    columns: list[list[Any]] = [[getattr(entry, name)] for name in ENTRY_FIELDS]
    columns[ENTRY_FIELDS.index("actor_roles")] = [json.dumps(entry.actor_roles)]
    await connection.execute(
        _SHA256_APPEND,
        lock_namespace(schema),
        entry.id.int % CHAINS,
        *columns,
        [entry.canonical()],
    )


async def _hmac_append(connection: asyncpg.Connection, schema: str) -> None:
    await append(connection, schema=schema, keys=KEYS, entries=[_entry()])


async def _measure(
    pool: asyncpg.Pool,
    schema: str,
    work: Callable[[asyncpg.Connection, str], Awaitable[None]],
    appends: int,
    concurrency: int,
) -> dict[str, float]:
    latencies: list[float] = []
    remaining = appends

    async def client() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            async with pool.acquire() as connection:
                started = time.perf_counter()
                async with connection.transaction():
                    await work(connection, schema)
                latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    cuts = statistics.quantiles(latencies, n=100)
    return {
        "appends_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(cuts[49], 3),
        "p99_ms": round(cuts[98], 3),
    }


async def run(admin_url: str, appends: int, concurrency: int) -> None:
    await migrate_services(admin_url, [SERVICES["intake"]], "bench-audit")
    setup = await asyncpg.connect(admin_url)
    try:
        for schema in ("bench_audit_sha256", "bench_audit_hmac"):
            await setup.execute(f'CREATE SCHEMA "{schema}"')
            await setup.execute(
                f'CREATE TABLE "{schema}".audit_log (LIKE intake.audit_log INCLUDING ALL)'
            )
            await setup.execute(chain_head_function(schema))
            await setup.execute(chain_claim_function(schema))
    finally:
        await setup.close()
    variants = {"sha256_one_statement": _sha256_append, "hmac_two_round_trips": _hmac_append}
    for round_number in range(2):  # alternate, so neither always runs on a warmer server
        for name, work in variants.items():
            schema = f"bench_audit_{name.split('_')[0]}"
            pool = await asyncpg.create_pool(
                admin_url,
                min_size=concurrency,
                max_size=concurrency,
                server_settings={"search_path": schema},
            )
            try:
                await _measure(pool, schema, work, 200, concurrency)  # warm-up
                figures = await _measure(pool, schema, work, appends, concurrency)
            finally:
                await pool.close()
            print(
                json.dumps(
                    {"case": "audit_append", "variant": name, "round": round_number, **figures}
                ),
                flush=True,
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.audit_append", description=__doc__)
    parser.add_argument("--appends", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="casework-bench-audit-") as data:
        server = EmbeddedPostgres(Path(data), free_port(), superuser_password="bench-audit")
        server.start()
        try:
            asyncio.run(run(server.admin_url, args.appends, args.concurrency))
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
