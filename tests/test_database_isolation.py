"""Each service's database role reaches its own schema and nothing else, and cannot change
the schema itself (migrations run as a separate owner role)."""

from __future__ import annotations

from itertools import permutations

import asyncpg
import pytest

from services.registry import SERVICES
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
