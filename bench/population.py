"""A large client population for the search and registration-at-scale cases, inserted in
bulk straight into intake's tables (as an administrator of the private stack), with the same
search keys the service computes, in the bench organisation so the bench token sees them."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from bench.baseline_app import SCHEMA as BASELINE_SCHEMA
from bench.people import (
    BIRTH_DATE_SPAN_DAYS,
    FAMILY,
    FIRST_BIRTH_DATE,
    GIVEN,
    LANGUAGES,
    ORGANIZATION,
    TEAM,
)

_INSERT = """
WITH people AS (
    SELECT gen_random_uuid() AS id,
           ($1::text[])[1 + floor(random() * cardinality($1::text[]))::int] AS given,
           ($2::text[])[1 + floor(random() * cardinality($2::text[]))::int] AS family,
           $3::date + floor(random() * $4)::int AS birth_date,
           ($5::text[])[1 + floor(random() * cardinality($5::text[]))::int] AS language
    FROM generate_series(1, $6)
), inserted AS (
    INSERT INTO intake.clients (id, given_name, family_name, birth_date, preferred_language,
        name_key, given_phonetic, family_phonetic, created_at, updated_at)
    SELECT id, given, family, birth_date, language, lower(given || ' ' || family),
           extensions.dmetaphone(given), extensions.dmetaphone(family), now(), now()
    FROM people
    RETURNING id
)
INSERT INTO intake.client_access (client_id, organization_id, team_id, registered_by)
SELECT id, $7, $8, 'bench-seed' FROM inserted
"""


# The baseline's registry: a copy of intake's (bench/baseline_app.py, same tables).
_SEARCH_COLUMNS = (
    "id, given_name, family_name, birth_date, preferred_language, name_key, given_phonetic, "
    "family_phonetic, phone_digits, created_at, updated_at"
)
_MIRROR = f"""
WITH copied AS (
    INSERT INTO {BASELINE_SCHEMA}.clients ({_SEARCH_COLUMNS})
    SELECT {_SEARCH_COLUMNS} FROM intake.clients c
    WHERE NOT EXISTS (SELECT 1 FROM {BASELINE_SCHEMA}.clients b WHERE b.id = c.id)
    RETURNING id
)
INSERT INTO {BASELINE_SCHEMA}.client_access (client_id, organization_id, team_id, registered_by)
SELECT id, '{ORGANIZATION}', '{TEAM}', 'bench-seed' FROM copied
"""


async def population(admin_url: str) -> int:
    connection = await asyncpg.connect(admin_url)
    try:
        count: int = await connection.fetchval("SELECT count(*) FROM intake.clients")
        return count
    finally:
        await connection.close()


async def grow_population(admin_url: str, size: int, batch: int = 100_000) -> float:
    """Insert clients until intake holds `size`, and give the baseline the same registry; the
    seconds it took. The trigram index is dropped during the bulk insert and built again after,
    as one would for a migration."""
    started = time.monotonic()
    connection = await asyncpg.connect(admin_url)
    try:
        missing = size - await connection.fetchval("SELECT count(*) FROM intake.clients")
        if missing <= 0:
            return 0.0
        async with _without_trigram_index(connection, "intake"):
            while missing > 0:
                step = min(batch, missing)
                await connection.execute(
                    _INSERT, GIVEN, FAMILY, FIRST_BIRTH_DATE, BIRTH_DATE_SPAN_DAYS,
                    list(LANGUAGES), step, ORGANIZATION, TEAM,
                )  # fmt: skip
                missing -= step
        async with _without_trigram_index(connection, BASELINE_SCHEMA):
            await connection.execute(_MIRROR)
        # What one does after a bulk load; otherwise autovacuum and the checkpointer would
        # work through the new rows during the measured phases.
        for schema in ("intake", BASELINE_SCHEMA):
            await connection.execute(
                f'VACUUM (ANALYZE) "{schema}".clients, "{schema}".client_access'
            )
        await connection.execute("CHECKPOINT")
    finally:
        await connection.close()
    return time.monotonic() - started


@asynccontextmanager
async def _without_trigram_index(
    connection: asyncpg.Connection, schema: str
) -> AsyncIterator[None]:
    # The baseline's copy of the index has a generated name: find it by what it indexes.
    name, definition = await connection.fetchrow(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1 "
        "AND tablename = 'clients' AND indexdef LIKE '%USING gin (birth_year, name_key%'",
        schema,
    )
    await connection.execute(f'DROP INDEX "{schema}"."{name}"')
    yield
    await connection.execute("SET maintenance_work_mem = '512MB'")
    await connection.execute(definition)


async def sample_people(admin_url: str, count: int) -> list[tuple[str, str, str]]:
    """(given, family, birth date) of random registered clients, for searches that must hit."""
    connection = await asyncpg.connect(admin_url)
    try:
        rows = await connection.fetch(
            "SELECT given_name, family_name, birth_date FROM intake.clients "
            "TABLESAMPLE SYSTEM (1) WHERE given_name IS NOT NULL LIMIT $1",
            count,
        )
    finally:
        await connection.close()
    return [(r["given_name"], r["family_name"], r["birth_date"].isoformat()) for r in rows]
