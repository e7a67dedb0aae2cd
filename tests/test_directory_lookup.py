"""The directory's foundation: what a referral learns about its target service."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from services.referrals.directory.lookup import ReferralTarget, referral_target
from shared.settings import Settings

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def connection(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(
        settings.database_url, server_settings={"search_path": "referrals"}
    )
    try:
        yield connection
    finally:
        await connection.close()


async def test_a_service_in_the_network_names_its_casework_organisation(
    connection: asyncpg.Connection,
) -> None:
    organization, service = str(uuid.uuid4()), str(uuid.uuid4())
    await connection.execute(
        "INSERT INTO organization (id, name, description, casework_organization_id) "
        "VALUES ($1, 'Food Bank', 'Emergency parcels', 'org-b')",
        organization,
    )
    await connection.execute(
        "INSERT INTO service (id, organization_id, name, status, referral_acceptance_days) "
        "VALUES ($1, $2, 'Emergency parcels', 'active', 3)",
        service,
        organization,
    )

    assert await referral_target(connection, service) == ReferralTarget(
        service_id=service,
        service_name="Emergency parcels",
        organization_id=organization,
        casework_organization_id="org-b",
        acceptance_days=3,
    )


async def test_a_service_outside_the_network_has_no_casework_organisation(
    connection: asyncpg.Connection,
) -> None:
    organization, service = str(uuid.uuid4()), str(uuid.uuid4())
    await connection.execute(
        "INSERT INTO organization (id, name, description) VALUES ($1, 'Library', 'Job club')",
        organization,
    )
    await connection.execute(
        "INSERT INTO service (id, organization_id, name, status) VALUES ($1, $2, 'Job club', "
        "'active')",
        service,
        organization,
    )

    target = await referral_target(connection, service)

    assert target is not None
    assert (target.casework_organization_id, target.acceptance_days) == (None, None)


async def test_an_unknown_service_is_none(connection: asyncpg.Connection) -> None:
    assert await referral_target(connection, "no-such-service") is None
