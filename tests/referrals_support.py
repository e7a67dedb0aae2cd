"""What the referral tests share: a directory with services in and outside the network, clients
with their consents known to referrals, and calls as each side."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from shared.settings import Settings
from tests.support import VALID_CLIENT, Stack, User, bearer, eventually

ALICE = User("alice", ("caseworker",))
BOB = User("bob", ("caseworker",))
SUE = User("sue", ("supervisor",), team_id="team-b")
PARTNER_ORG = "org-partner"
PAT = User("pat", ("partner",), organization_id=PARTNER_ORG, team_id=None)
PARTNER_SYNC = User("partner-sync", ("integration",), organization_id=PARTNER_ORG, team_id=None)
OTHER_PARTNER = User("olga", ("partner",), organization_id="org-elsewhere", team_id=None)
ACCEPTANCE_DAYS = 3


@dataclass(frozen=True)
class Directory:
    in_network: str  # a service whose organisation is PARTNER_ORG (accepts within 3 days)
    default_deadline: str  # in the network, no deadline of its own (the setting's default)
    outside: str  # a service of an organisation outside the network


async def seed_directory(settings: Settings) -> Directory:
    """Three services in the directory, as an admin's import would leave them."""
    # HSDS identifiers are UUIDs: the rows must export and import back like any others.
    partner, library = str(uuid.uuid4()), str(uuid.uuid4())
    directory = Directory(
        in_network=str(uuid.uuid4()),
        default_deadline=str(uuid.uuid4()),
        outside=str(uuid.uuid4()),
    )
    connection = await asyncpg.connect(settings.database_url)
    try:
        await connection.execute("SET search_path = referrals")
        await connection.execute(
            "INSERT INTO organization (id, name, description, casework_organization_id) VALUES "
            "($1, 'Food Partners', 'Food parcels and shelter', $2), "
            "($3, 'Public Library', 'Job club and computers', NULL)",
            partner, PARTNER_ORG, library,
        )  # fmt: skip
        await connection.execute(
            "INSERT INTO service (id, organization_id, name, status, referral_acceptance_days) "
            "VALUES ($1, $2, 'Food parcels', 'active', $4), ($3, $2, 'Shelter', 'active', NULL)",
            directory.in_network, partner, directory.default_deadline, ACCEPTANCE_DAYS,
        )  # fmt: skip
        await connection.execute(
            "INSERT INTO service (id, organization_id, name, status) "
            "VALUES ($1, $2, 'Job club', 'active')",
            directory.outside, library,
        )  # fmt: skip
    finally:
        await connection.close()
    return directory


def consent_body(
    *, recipients: list[str] | None = None, data_classes: list[str] | None = None, **more: Any
) -> dict[str, Any]:
    today = datetime.now(UTC).date()
    body: dict[str, Any] = {
        "given_by": "client",
        "purposes": ["referral"],
        "data_classes": data_classes or ["general"],
        "starts_on": today.isoformat(),
        "expires_on": (today + timedelta(days=365)).isoformat(),
        **more,
    }
    if not body.get("network"):
        body["recipients"] = recipients or [PARTNER_ORG]
    return body


async def register_client(stack: Stack, settings: Settings, user: User = ALICE) -> str:
    response = await stack.api["intake"].post(
        "/v1/clients",
        json={**VALID_CLIENT, "family_name": f"Referred{secrets.token_hex(3)}"},
        headers=bearer(settings, user),
    )
    assert response.status_code == 201, response.text
    client_id: str = response.json()["id"]
    await wait_row(
        settings, "SELECT 1 FROM referrals.client_access WHERE client_id = $1", client_id
    )
    return client_id


async def grant_consent(
    stack: Stack, settings: Settings, client_id: str, body: dict[str, Any] | None = None
) -> str:
    body = body or consent_body()
    response = await stack.api["intake"].post(
        f"/v1/clients/{client_id}/consents", json=body, headers=bearer(settings, ALICE)
    )
    assert response.status_code == 201, response.text
    consent_id: str = response.json()["id"]

    # Every class known: the general and the protected classes arrive on two topics.
    async def known() -> bool | None:
        rows = await fetch(
            settings,
            "SELECT 1 FROM referrals.consent_facts WHERE consent_id = $1 AND data_classes @> $2",
            uuid.UUID(consent_id),
            body["data_classes"],
        )
        return True if rows else None

    await eventually(known)
    return consent_id


async def revoke_consent(stack: Stack, settings: Settings, client_id: str, consent_id: str) -> None:
    response = await stack.api["intake"].post(
        f"/v1/clients/{client_id}/consents/{consent_id}/revocation",
        json={"reason": "client_request"},
        headers=bearer(settings, ALICE),
    )
    assert response.status_code == 200, response.text


async def wait_row(settings: Settings, query: str, key: str, timeout: float = 15.0) -> None:
    async def probe() -> bool | None:
        return True if await fetch(settings, query, key) else None

    await eventually(probe, timeout=timeout)


async def fetch(settings: Settings, query: str, *args: Any) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(settings.database_url)
    try:
        return list(await connection.fetch(query, *args))
    finally:
        await connection.close()


async def refer(
    stack: Stack,
    settings: Settings,
    client_id: str,
    service_id: str,
    *,
    user: User = ALICE,
    **body: Any,
) -> httpx.Response:
    payload = {"client_id": client_id, "service_id": service_id, "mode": "sent",
               "share": ["general"], **body}  # fmt: skip
    return await stack.api["referrals"].post(
        "/v1/referrals", json=payload, headers=bearer(settings, user)
    )


async def set_status(
    stack: Stack,
    settings: Settings,
    referral_id: str,
    user: User,
    status: str,
    **body: Any,
) -> httpx.Response:
    """Read the referral as `user`, then move it with its ETag."""
    path = f"/v1/referrals/{referral_id}"
    current = await stack.api["referrals"].get(path, headers=bearer(settings, user))
    etag = current.headers.get("ETag", '"none"')
    return await stack.api["referrals"].post(
        f"{path}/status",
        json={"status": status, **body},
        headers={**bearer(settings, user), "If-Match": etag},
    )


async def referral_rows(settings: Settings, client_id: str) -> list[asyncpg.Record]:
    return await fetch(
        settings, "SELECT * FROM referrals.referrals WHERE client_id = $1", client_id
    )


def today() -> date:
    return datetime.now(UTC).date()
