"""Who may see what, in every service, and the audit record every attempt leaves behind.

The cast: alice registers a client (team a). bob is her teammate, sam supervises team a, sue
team b; pat works at a partner organisation, ada administers, audrey audits; two agency
systems, one in alice's organisation and one elsewhere.
"""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import jwt
import pytest

from shared.audit.log import CHAINS, verify_chains
from shared.settings import Settings
from tests.support import (
    CASEWORKER,
    VALID_CLIENT,
    Stack,
    User,
    bearer,
    eventually,
    first_attempts,
    header,
    read_topic,
    unauthenticated_attempts,
)

pytestmark = pytest.mark.asyncio

ALICE = CASEWORKER
BOB = User("bob", ("caseworker",))
SAM = User("sam", ("supervisor",))
SUE = User("sue", ("supervisor",), team_id="team-b")
PAT = User("pat", ("partner",), organization_id="org-partner", team_id=None)
ADA = User("ada", ("admin",))
AUDREY = User("audrey", ("auditor",), team_id=None)
SYNC = User("agency-sync", ("integration",), team_id=None)
FOREIGN_SYNC = User("other-sync", ("integration",), organization_id="org-b", team_id=None)
EVERYONE = [ALICE, BOB, SAM, SUE, PAT, ADA, AUDREY, SYNC, FOREIGN_SYNC]

OUTCOME_OF_STATUS = {200: "allowed", 201: "allowed", 403: "denied", 404: "denied"}


@pytest.fixture(scope="module")
async def client_id(stack: Stack, settings: Settings) -> str:
    """A client alice registered, already known (with its access facts) to every service."""
    response = await stack.api["intake"].post("/v1/clients", json=VALID_CLIENT)
    assert response.status_code == 201
    registered: str = response.json()["id"]
    for service in ("planning", "referrals", "notifications"):
        await wait_known(settings, service, registered)
    return registered


async def wait_known(settings: Settings, service: str, client_id: str) -> None:
    async def probe() -> bool | None:
        connection = await asyncpg.connect(settings.database_url)
        try:
            known = await connection.fetchval(
                f"SELECT count(*) FROM {service}.client_refs WHERE client_id = $1",
                uuid.UUID(client_id),
            )
        finally:
            await connection.close()
        return True if known else None

    await eventually(probe)


async def call(
    stack: Stack,
    settings: Settings,
    user: User | None,
    service: str,
    method: str,
    path: str,
    **kwargs: Any,
) -> tuple[httpx.Response, str]:
    """Call as `user` (None: without a token) with a fresh request id; return both."""
    request_id = str(uuid.uuid4())
    headers = {"X-Request-ID": request_id, **kwargs.pop("headers", {})}
    if user is not None:
        headers.update(bearer(settings, user))
    client = stack.api[service]
    if user is None:
        client.headers.pop("Authorization", None)
    try:
        response = await client.request(method, path, headers=headers, **kwargs)
    finally:
        client.headers.update(bearer(settings, ALICE))
    return response, request_id


async def audit_rows(settings: Settings, service: str, request_id: str) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(settings.database_url)
    try:
        return list(
            await connection.fetch(
                f"SELECT * FROM {service}.audit_log WHERE request_id = $1 ORDER BY seq",
                request_id,
            )
        )
    finally:
        await connection.close()


# (user, expected status) for reading alice's client, in every service that holds it.
READ_MATRIX = [
    (ALICE, 200), (BOB, 404), (SAM, 200), (SUE, 404), (PAT, 403), (ADA, 403),
    (AUDREY, 403), (SYNC, 200), (FOREIGN_SYNC, 404),
]  # fmt: skip
READ_PATHS = {
    "intake": "/v1/clients/{id}",
    "planning": "/v1/client-refs/{id}",
    "referrals": "/v1/client-refs/{id}",
    "notifications": "/v1/client-refs/{id}",
}


@pytest.mark.parametrize("service", list(READ_PATHS))
@pytest.mark.parametrize(("user", "status"), READ_MATRIX, ids=[u.subject for u, _ in READ_MATRIX])
async def test_reading_a_client_is_allowed_only_in_scope_and_always_audited(
    stack: Stack, settings: Settings, client_id: str, service: str, user: User, status: int
) -> None:
    path = READ_PATHS[service].format(id=client_id)
    response, request_id = await call(stack, settings, user, service, "GET", path)

    assert response.status_code == status, response.text
    if status == 200:
        assert (response.json().get("id") or response.json().get("client_id")) == client_id
    else:
        assert response.headers["content-type"] == "application/problem+json"
        assert "given_name" not in response.text
    [row] = await audit_rows(settings, service, request_id)
    assert row["outcome"] == OUTCOME_OF_STATUS[status]
    assert row["actor_id"] == user.subject
    assert row["actor_roles"] == list(user.roles)
    assert row["actor_organization_id"] == user.organization_id
    assert str(row["client_id"]) == client_id
    assert row["action"] in {"client.read", "client_ref.read"}


REGISTER_MATRIX = [
    (ALICE, 201), (SAM, 201), (PAT, 403), (ADA, 403), (AUDREY, 403), (SYNC, 403),
]  # fmt: skip


@pytest.mark.parametrize(
    ("user", "status"), REGISTER_MATRIX, ids=[u.subject for u, _ in REGISTER_MATRIX]
)
async def test_registering_is_for_caseworkers_and_supervisors_and_audited(
    stack: Stack, settings: Settings, user: User, status: int
) -> None:
    response, request_id = await call(
        stack, settings, user, "intake", "POST", "/v1/clients", json=VALID_CLIENT
    )

    assert response.status_code == status
    # Registering the same person again also records the duplicates the worker dismissed.
    rows = await audit_rows(settings, "intake", request_id)
    [row] = [r for r in rows if r["action"] == "client.create"]
    assert row["outcome"] == OUTCOME_OF_STATUS[status]
    assert {r["action"] for r in rows} <= {"client.create", "client.duplicate_dismissed"}
    if status == 201:
        assert str(row["client_id"]) == response.json()["id"]


LIST_MATRIX = [
    (ALICE, True), (BOB, False), (SAM, True), (SUE, False), (SYNC, True), (FOREIGN_SYNC, False),
]  # fmt: skip


@pytest.mark.parametrize(("user", "sees"), LIST_MATRIX, ids=[u.subject for u, _ in LIST_MATRIX])
async def test_the_client_list_holds_only_what_the_caller_may_see(
    stack: Stack, settings: Settings, client_id: str, user: User, sees: bool
) -> None:
    seen: list[str] = []
    cursor: str | None = None
    request_ids = []
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        response, request_id = await call(
            stack, settings, user, "intake", "GET", "/v1/clients", params=params
        )
        request_ids.append(request_id)
        assert response.status_code == 200
        page = response.json()
        assert len(page["items"]) <= 2
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert (client_id in seen) is sees
    assert len(seen) == len(set(seen)), "pages must not overlap"
    audited = [row for rid in request_ids for row in await audit_rows(settings, "intake", rid)]
    assert {str(row["client_id"]) for row in audited if row["client_id"]} == set(seen)


@pytest.mark.parametrize("user", [PAT, ADA, AUDREY], ids=lambda u: u.subject)
async def test_roles_without_client_access_cannot_list(
    stack: Stack, settings: Settings, user: User
) -> None:
    response, request_id = await call(stack, settings, user, "intake", "GET", "/v1/clients")
    assert response.status_code == 403
    [row] = await audit_rows(settings, "intake", request_id)
    assert row["outcome"] == "denied"


def forged_tokens(settings: Settings) -> dict[str, str]:
    now = int(time.time())
    claims = {
        "iss": settings.jwt_issuer, "aud": settings.jwt_audience, "sub": "mallory",
        "roles": ["supervisor"], "org_id": "org-a", "team_id": "team-a",
        "iat": now, "exp": now + 600,
    }  # fmt: skip
    secret = settings.jwt_secret

    def signed(**changes: Any) -> str:
        return jwt.encode({**claims, **changes}, secret, algorithm="HS256")

    unsigned = jwt.encode(claims, None, algorithm="none")  # type: ignore[arg-type]
    return {
        "wrong key": jwt.encode(claims, "not-the-secret-" * 4, algorithm="HS256"),
        "alg none": unsigned,
        "alg none, signature stripped": signed().rsplit(".", 1)[0] + ".",
        "expired": signed(iat=now - 7200, exp=now - 3600),
        "wrong audience": signed(aud="someone-else"),
        "wrong issuer": signed(iss="https://evil.example"),
        "no roles": signed(roles=[]),
        "no organisation": signed(org_id=""),
        "malformed": "not.a.jwt",
        "garbage": "x" * 40,
    }


async def test_no_token_and_forged_tokens_get_401_with_www_authenticate_and_are_audited(
    stack: Stack, settings: Settings, client_id: str
) -> None:
    cases: dict[str, str | None] = {"no token": None, **forged_tokens(settings)}
    before = await unauthenticated_attempts(settings, "intake")
    started = datetime.now(UTC)
    for case, token in cases.items():
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response, _request_id = await call(
            stack, settings, None, "intake", "GET", f"/v1/clients/{client_id}", headers=headers
        )
        assert response.status_code == 401, case
        assert response.headers["www-authenticate"].startswith('Bearer realm="casework"'), case
        assert response.headers["content-type"] == "application/problem+json", case
        assert "given_name" not in response.text, case
    # Counted per source and minute; the first attempt of each minute audited in full.
    assert await unauthenticated_attempts(settings, "intake") == before + len(cases)
    for first_request_id in await first_attempts(settings, "intake", started):
        [row] = await audit_rows(settings, "intake", first_request_id)
        assert (row["outcome"], row["actor_id"]) == ("unauthenticated", None)


async def test_break_glass_opens_a_record_for_a_supervisor_with_a_reason_and_is_flagged(
    stack: Stack, settings: Settings, client_id: str
) -> None:
    reason = "Crisis call on the weekend line, assigned worker unreachable"
    without, _ = await call(stack, settings, SUE, "intake", "GET", f"/v1/clients/{client_id}")
    opened, request_id = await call(
        stack, settings, SUE, "intake", "GET", f"/v1/clients/{client_id}",
        headers={"X-Break-Glass-Reason": reason},
    )  # fmt: skip
    caseworker, bob_request = await call(
        stack, settings, BOB, "intake", "GET", f"/v1/clients/{client_id}",
        headers={"X-Break-Glass-Reason": reason},
    )  # fmt: skip

    assert without.status_code == 404
    assert opened.status_code == 200 and opened.json()["id"] == client_id
    [row] = await audit_rows(settings, "intake", request_id)
    assert (row["outcome"], row["break_glass_reason"]) == ("break_glass", reason)
    assert caseworker.status_code == 404
    [refused] = await audit_rows(settings, "intake", bob_request)
    assert refused["outcome"] == "denied" and refused["break_glass_reason"] is None


async def test_assignment_moves_access_in_every_service(stack: Stack, settings: Settings) -> None:
    registered = (await stack.api["intake"].post("/v1/clients", json=VALID_CLIENT)).json()["id"]
    for service in ("planning", "referrals", "notifications"):
        await wait_known(settings, service, registered)
    path = f"/v1/cases/{registered}/assignment"

    by_alice, _ = await call(
        stack, settings, ALICE, "planning", "PUT", path, json={"worker_id": "bob"}
    )
    by_sue, _ = await call(stack, settings, SUE, "planning", "PUT", path, json={"worker_id": "bob"})
    by_sam, request_id = await call(
        stack, settings, SAM, "planning", "PUT", path, json={"worker_id": "bob"}
    )

    assert by_alice.status_code == 403
    assert by_sue.status_code == 404
    assert by_sam.status_code == 200
    assert by_sam.json()["worker_id"] == "bob" and by_sam.json()["team_id"] == "team-a"
    [row] = await audit_rows(settings, "planning", request_id)
    assert (row["action"], row["outcome"]) == ("case.assign", "allowed")
    for service, template in READ_PATHS.items():
        target = template.format(id=registered)

        async def bob_sees(service: str = service, target: str = target) -> bool | None:
            response, _ = await call(stack, settings, BOB, service, "GET", target)
            return True if response.status_code == 200 else None

        await eventually(bob_sees)
        lost, _ = await call(stack, settings, ALICE, service, "GET", target)
        assert lost.status_code == 404, f"{service}: alice keeps access after reassignment"


AUDIT_MATRIX = [
    (AUDREY, True, 200), (AUDREY, False, 200), (SAM, True, 200), (SAM, False, 403),
    (SUE, True, 404), (ALICE, True, 403), (ADA, True, 403), (SYNC, True, 403),
]  # fmt: skip


@pytest.mark.parametrize("service", list(READ_PATHS))
@pytest.mark.parametrize(
    ("user", "for_client", "status"),
    AUDIT_MATRIX,
    ids=[f"{u.subject}-{'client' if c else 'all'}" for u, c, _ in AUDIT_MATRIX],
)
async def test_the_audit_trail_is_for_auditors_and_supervisors_in_scope(
    stack: Stack,
    settings: Settings,
    client_id: str,
    service: str,
    user: User,
    for_client: bool,
    status: int,
) -> None:
    params = {"client_id": client_id} if for_client else {}
    response, request_id = await call(
        stack, settings, user, service, "GET", "/v1/audit", params=params
    )

    assert response.status_code == status, response.text
    if status == 200:
        items = response.json()["items"]
        assert items, "the trail of a client that was read is not empty"
        if for_client:
            assert {item["client_id"] for item in items} == {client_id}
    [row] = await audit_rows(settings, service, request_id)
    assert row["action"] == "audit.read"
    assert row["outcome"] == OUTCOME_OF_STATUS[status]


async def test_audit_records_are_published_with_ids_only(
    stack: Stack, settings: Settings, client_id: str
) -> None:
    _, request_id = await call(stack, settings, ALICE, "intake", "GET", f"/v1/clients/{client_id}")
    [row] = await audit_rows(settings, "intake", request_id)

    audit_id = str(row["id"])
    records = await read_topic(
        settings,
        "casework.audit",
        until=lambda records: any(
            header(r, "ce_subject") == client_id and audit_id.encode() in (r.value or b"")
            for r in records
        ),
    )
    [published] = [r for r in records if audit_id.encode() in (r.value or b"")]
    assert header(published, "ce_type") == "org.casework.audit.recorded.v1"
    assert published.key == client_id.encode()
    for personal in (
        VALID_CLIENT["given_name"],
        VALID_CLIENT["family_name"],
        VALID_CLIENT["birth_date"],
    ):
        assert personal.encode() not in (published.value or b"")


@pytest.mark.parametrize("service", list(READ_PATHS))
async def test_the_service_role_cannot_update_or_delete_audit_rows(
    settings: Settings, service: str
) -> None:
    connection = await asyncpg.connect(settings.database_url_for(service))
    try:
        for statement in (
            "UPDATE audit_log SET outcome = 'allowed'",
            "DELETE FROM audit_log",
            "TRUNCATE audit_log",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await connection.execute(statement)
    finally:
        await connection.close()


async def test_verification_detects_an_altered_or_removed_row(
    stack: Stack, settings: Settings, client_id: str
) -> None:
    # More records than chains: at least one chain holds two or more.
    for _ in range(CHAINS + 1):
        await call(stack, settings, ALICE, "intake", "GET", f"/v1/clients/{client_id}")
    connection = await asyncpg.connect(settings.database_url)
    try:
        await connection.execute("SET search_path = intake")
        assert await verify_chains(connection) == []
        chain, seq = await connection.fetchrow(
            "SELECT chain, min(seq) FROM audit_log GROUP BY chain HAVING count(*) >= 2 LIMIT 1"
        )
        tamperings = {
            "UPDATE audit_log SET purpose = coalesce(purpose, '') || '-edited' WHERE seq = $1": (
                "its content was changed"
            ),
            "DELETE FROM audit_log WHERE seq = $1": "a row before it was removed or changed",
        }
        for tampering, reason in tamperings.items():
            transaction = connection.transaction()
            await transaction.start()
            try:
                await connection.execute(tampering, seq)
                breaks = await verify_chains(connection)
            finally:
                await transaction.rollback()
            assert [(found.chain, found.reason) for found in breaks] == [(chain, reason)]
        assert await verify_chains(connection) == []
    finally:
        await connection.close()


async def test_one_request_s_records_are_linked_in_order_on_one_chain(
    stack: Stack, settings: Settings, client_id: str
) -> None:
    # A list shows several clients: one record each, appended in one statement.
    for _ in range(3):
        assert (await stack.api["intake"].post("/v1/clients", json=VALID_CLIENT)).status_code == 201
    response, request_id = await call(stack, settings, ALICE, "intake", "GET", "/v1/clients")
    shown = [client["id"] for client in response.json()["items"]]
    rows = await audit_rows(settings, "intake", request_id)

    assert len(shown) >= 4
    assert [str(row["client_id"]) for row in rows] == shown
    assert len({row["chain"] for row in rows}) == 1
    for previous, row in itertools.pairwise(rows):
        assert row["prev_hash"] == previous["hash"]
        assert row["seq"] > previous["seq"]
    assert [tuple(row["actor_roles"]) for row in rows] == [("caseworker",)] * len(rows)
    connection = await asyncpg.connect(settings.database_url)
    try:
        await connection.execute("SET search_path = intake")
        assert await verify_chains(connection) == []
    finally:
        await connection.close()


async def test_the_verify_command_reports_intact_trails(settings: Settings) -> None:
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "services.cli", "audit-verify"],
        env={"CASEWORK_DATABASE_URL": settings.database_url, "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("audit trail intact") == 4
