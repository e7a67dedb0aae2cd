"""Each service's database role reaches its own schema and nothing else, and cannot change
the schema itself (migrations run as a separate owner role)."""

from __future__ import annotations

from itertools import permutations

import asyncpg
import pytest

from services.registry import SERVICES
from shared.db.database import Database
from shared.settings import Settings

pytestmark = pytest.mark.asyncio

OWN_TABLE = {
    "intake": "clients",
    "planning": "client_refs",
    "referrals": "client_refs",
    "notifications": "client_refs",
}


@pytest.mark.parametrize(("reader", "owner"), list(permutations(SERVICES, 2)))
async def test_a_service_cannot_read_another_services_tables(
    settings: Settings, reader: str, owner: str
) -> None:
    connection = await asyncpg.connect(settings.database_url_for(reader))
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await connection.fetch(f"SELECT * FROM {owner}.{OWN_TABLE[owner]} LIMIT 1")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await connection.fetch(f"SELECT * FROM {owner}.outbox LIMIT 1")
    finally:
        await connection.close()


@pytest.mark.parametrize("service", list(SERVICES))
async def test_a_service_reads_its_own_schema_but_cannot_alter_it(
    settings: Settings, service: str
) -> None:
    connection = await asyncpg.connect(settings.database_url_for(service))
    try:
        assert await connection.fetchval(f"SELECT count(*) >= 0 FROM {OWN_TABLE[service]}")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await connection.execute(f"CREATE TABLE {service}.intruder (id int)")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await connection.execute("CREATE TABLE public.intruder (id int)")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await connection.execute(f"DROP TABLE {service}.outbox")
    finally:
        await connection.close()


async def test_a_service_role_with_the_wrong_password_is_refused(settings: Settings) -> None:
    url = settings.database_url_for("intake")
    assert "intake_svc:" in url
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(url.replace(settings.service_db_password, "a-guess"))


async def test_a_pooled_connection_comes_back_without_the_last_transaction_s_state(
    settings: Settings,
) -> None:
    """Released connections are not reset (a round trip saved per request): what the services
    set on a pooled connection must end with its transaction, on success and on error."""
    database = Database(settings.database_url_for("intake"), schema="intake", pool_size=1)
    await database.connect()
    try:
        async with database.transaction() as connection:
            backend = await connection.fetchval("SELECT pg_backend_pid()")
            await connection.execute(
                "SELECT set_config('plan_cache_mode', 'force_custom_plan', true), "
                "pg_advisory_xact_lock(42)"
            )
        with pytest.raises(asyncpg.DivisionByZeroError):
            async with database.transaction() as connection:
                await connection.execute(
                    "SELECT similarity('ana', 'anna'), "
                    "set_config('pg_trgm.similarity_threshold', '0.9', true)"
                )
                await connection.execute("SELECT 1 / 0")
        async with database.transaction() as connection:
            assert await connection.fetchval("SELECT pg_backend_pid()") == backend
            assert await connection.fetchval("SHOW plan_cache_mode") == "auto"
            assert await connection.fetchval("SHOW pg_trgm.similarity_threshold") == "0.3"
            held = await connection.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = $1", backend
            )
            assert held == 0
    finally:
        await database.close()
