"""Who may see what, in every service, and the audit record every attempt leaves behind.

The cast: alice registers a client (team a). bob is her teammate, sam supervises team a, sue
team b; pat works at a partner organisation, ada administers, audrey audits; two agency
systems, one in alice's organisation and one elsewhere.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import jwt
import pytest

from services.registry import SERVICES
from shared.audit.keys import chain_keys
from shared.audit.log import CHAINS
from shared.audit.verify import BreakKind, verify_chains
from shared.auth.policy import ActionKind, Scope
from shared.auth.principal import Principal, Role
from shared.http.app import create_app
from shared.settings import Settings
from tests.support import (
    CASEWORKER,
    VALID_CLIENT,
    Stack,
    User,
    admin_fetchval,
    bearer,
    enrol_worker,
    eventually,
    first_attempts,
    header,
    open_case,
    read_topic,
    unauthenticated_attempts,
)
from tests.test_intake_consents import REFERRAL_CONSENT
from tests.test_scoring import NO_NEEDS

# Async tests run under asyncio_mode = auto (pyproject); the route table checks are plain.

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
    path = f"/v1/cases/{await open_case(stack, settings, registered)}/assignment"
    # An assignment names a worker of the staff directory: ada keeps org-a's.
    await enrol_worker(stack, settings, BOB)

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


# (user, expected status) for reading bob's staff directory record in planning.
WORKER_READ_MATRIX = [
    (ALICE, 404), (BOB, 200), (SAM, 200), (SUE, 404), (PAT, 403), (ADA, 200),
    (AUDREY, 403), (SYNC, 403), (FOREIGN_SYNC, 403),
]  # fmt: skip


@pytest.mark.parametrize(
    ("user", "status"), WORKER_READ_MATRIX, ids=[u.subject for u, _ in WORKER_READ_MATRIX]
)
async def test_the_staff_directory_is_read_in_scope_and_audited(
    stack: Stack, settings: Settings, user: User, status: int
) -> None:
    await enrol_worker(stack, settings, BOB)
    response, request_id = await call(stack, settings, user, "planning", "GET", "/v1/workers/bob")

    assert response.status_code == status, response.text
    if status == 200:
        assert (response.json()["worker_id"], response.json()["team_id"]) == ("bob", "team-a")
    else:
        assert response.headers["content-type"] == "application/problem+json"
        assert "display_name" not in response.text
    [row] = await audit_rows(settings, "planning", request_id)
    assert (row["action"], row["resource_type"], row["resource_id"]) == (
        "worker.read",
        "worker",
        "bob",
    )
    assert row["outcome"] == OUTCOME_OF_STATUS[status]
    assert (row["actor_id"], row["client_id"]) == (user.subject, None)


# (user, expected status) for writing and syncing the directory: admins, and sync clients.
WORKER_WRITE_MATRIX = [
    (ALICE, 403, 403), (SAM, 403, 403), (PAT, 403, 403), (ADA, 200, 200), (AUDREY, 403, 403),
    (SYNC, 403, 200), (FOREIGN_SYNC, 403, 200),
]  # fmt: skip


@pytest.mark.parametrize(
    ("user", "write", "sync"),
    WORKER_WRITE_MATRIX,
    ids=[u.subject for u, _, _ in WORKER_WRITE_MATRIX],
)
async def test_the_staff_directory_is_kept_by_admins_and_synced_by_them_or_agency_systems(
    stack: Stack, settings: Settings, user: User, write: int, sync: int
) -> None:
    await enrol_worker(stack, settings, BOB)
    body = {"team_id": "team-a", "display_name": "Bob", "languages": ["en"]}
    written, write_request = await call(
        stack, settings, user, "planning", "PUT", "/v1/workers/bob", json=body
    )
    # An empty list without deactivate_missing changes nothing, wherever it lands.
    synced, sync_request = await call(
        stack, settings, user, "planning", "POST", "/v1/workers/sync", json={"workers": []}
    )

    assert written.status_code == write, written.text
    assert synced.status_code == sync, synced.text
    if sync == 200:
        assert synced.json() == {"created": 0, "updated": 0, "deactivated": 0, "unchanged": 0}
    for request_id, action, status in (
        (write_request, "worker.write", write),
        (sync_request, "worker.sync", sync),
    ):
        [row] = await audit_rows(settings, "planning", request_id)
        assert (row["action"], row["outcome"]) == (action, OUTCOME_OF_STATUS[status])


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
        keys = chain_keys(settings)
        assert await verify_chains(connection, keys) == []
        chain, seq = await connection.fetchrow(
            "SELECT chain, min(seq) FROM audit_log GROUP BY chain HAVING count(*) >= 2 LIMIT 1"
        )
        tamperings = {
            "UPDATE audit_log SET purpose = coalesce(purpose, '') || '-edited' WHERE seq = $1": (
                BreakKind.REWRITTEN
            ),
            "DELETE FROM audit_log WHERE seq = $1": BreakKind.DELETED,
        }
        for tampering, reason in tamperings.items():
            transaction = connection.transaction()
            await transaction.start()
            try:
                await connection.execute(tampering, seq)
                breaks = await verify_chains(connection, keys)
            finally:
                await transaction.rollback()
            assert [(found.chain, found.kind) for found in breaks] == [(chain, reason)]
        assert await verify_chains(connection, keys) == []
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
        assert await verify_chains(connection, chain_keys(settings)) == []
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


# --- The role x scope matrix over every route: organisations and break-glass ------------------
#
# Every route of every service (enumerated from the apps' OpenAPI, which FastAPI builds from
# their route tables) is called by visitors who must not see alice's client: the same `sub` in
# another organisation, for each role; a supervisor of alice's organisation breaking the glass;
# a supervisor of another organisation breaking it. What each may do is worked out here from
# first principles, not from the policy under test: a GET reads, anything else writes;
# break-glass opens reads to a supervisor of the same organisation; everything else outside
# scope is 404 (403 when the role never has the action), and a refused write changes nothing.

REASON = "Crisis call on the weekend line, assigned worker unreachable"
TWIN_ORG = "org-b"
VISITORS: dict[str, tuple[User, str | None]] = {
    "caseworker, same sub, other org": (User("alice", ("caseworker",), TWIN_ORG), None),
    "supervisor, same sub, other org": (User("sam", ("supervisor",), TWIN_ORG), None),
    "auditor, same sub, other org": (User("audrey", ("auditor",), TWIN_ORG, None), None),
    "integration, same sub, other org": (User("agency-sync", ("integration",), TWIN_ORG, None), None),
    "break-glass, same org": (SUE, REASON),
    "break-glass, other org": (User("sam", ("supervisor",), TWIN_ORG), REASON),
}  # fmt: skip


@dataclass(frozen=True)
class World:
    """Alice's client with one of everything, and what the routes' paths and bodies need."""

    client_id: str
    other_client_id: str
    family_name: str
    etag: str
    draft_etag: str
    path_ids: dict[str, str]
    case_etag: str


@dataclass(frozen=True)
class Route:
    action: str | None  # None: reference data for any signed-in user, not about a client
    request: Callable[[World], dict[str, Any]] = lambda world: {}
    client_bound: bool | None = None  # None: whether the path names {client_id}


ASSESSMENT = {
    "instrument_id": "needs-risk-screening",
    "version": "1.0",
    "answers": {**NO_NEEDS, "suicidal_thoughts": "yes"},
}

PLAN_GOAL = {
    "need_category": "housing", "description": "Stable tenancy", "measure": "Nights housed",
    "target_value": 30, "target_date": "2099-01-01",
}  # fmt: skip
CONTACT_NOTE = {"details": {"kind": "contact", "mode": "phone"}, "text": "Called her."}
_ANY_VERSION = {"If-Match": '"any"'}
# Plans and notes: every route names a case's record (client-bound), through its id.
PLAN_AND_NOTE_ROUTES: dict[tuple[str, str, str], Route] = {
    ("planning", "POST", "/v1/cases/{case_id}/plans"): Route(
        "plan.write", lambda w: {"json": {"goals": [PLAN_GOAL]}}, client_bound=True
    ),
    ("planning", "GET", "/v1/cases/{case_id}/plans"): Route("plan.read", client_bound=True),
    ("planning", "GET", "/v1/plans/{plan_id}"): Route("plan.read", client_bound=True),
    ("planning", "PUT", "/v1/plans/{plan_id}"): Route(
        "plan.write", lambda w: {"json": {"goals": []}, "headers": _ANY_VERSION},
        client_bound=True,
    ),
    ("planning", "PUT", "/v1/plans/{plan_id}/agreement"): Route(
        "plan.write",
        lambda w: {"json": {"how": "verbal", "at": "2026-01-01T00:00:00Z"},
                   "headers": _ANY_VERSION},
        client_bound=True,
    ),
    ("planning", "POST", "/v1/plans/{plan_id}/approval-request"): Route(
        "plan.write", lambda w: {"headers": _ANY_VERSION}, client_bound=True
    ),
    ("planning", "POST", "/v1/plans/{plan_id}/revision"): Route("plan.write", client_bound=True),
    ("planning", "GET", "/v1/plans/{plan_id}/diff"): Route(
        "plan.read", lambda w: {"params": {"against": w.path_ids["plan_id"]}}, client_bound=True
    ),
    ("planning", "POST", "/v1/plans/{plan_id}/goals/{goal_id}/status"): Route(
        "plan.write", lambda w: {"json": {"status": "active"}}, client_bound=True
    ),
    ("planning", "POST", "/v1/plans/{plan_id}/goals/{goal_id}/progress"): Route(
        "plan.write", lambda w: {"json": {"value": 3}}, client_bound=True
    ),
    ("planning", "POST", "/v1/cases/{case_id}/notes"): Route(
        "note.write", lambda w: {"json": CONTACT_NOTE}, client_bound=True
    ),
    ("planning", "GET", "/v1/cases/{case_id}/notes"): Route("note.read", client_bound=True),
    ("planning", "GET", "/v1/notes/{note_id}"): Route("note.read", client_bound=True),
    ("planning", "PATCH", "/v1/notes/{note_id}"): Route(
        "note.write", lambda w: {"json": {"text": "Changed"}, "headers": _ANY_VERSION},
        client_bound=True,
    ),
    ("planning", "POST", "/v1/notes/{note_id}/signature"): Route(
        "note.write", lambda w: {"headers": _ANY_VERSION}, client_bound=True
    ),
    ("planning", "POST", "/v1/notes/{note_id}/addenda"): Route(
        "note.write", lambda w: {"json": {"text": "Correction"}}, client_bound=True
    ),
    ("planning", "POST", "/v1/notes/{note_id}/cosignature"): Route(
        "note.cosign", client_bound=True
    ),
}  # fmt: skip

ROUTES: dict[tuple[str, str, str], Route] = {
    ("intake", "GET", "/v1/code-lists"): Route(None),
    ("intake", "GET", "/v1/code-lists/{name}"): Route(None),
    ("intake", "GET", "/v1/instruments"): Route(None),
    ("intake", "GET", "/v1/instruments/{instrument_id}/versions/{version}"): Route(None),
    ("intake", "GET", "/v1/clients/search"): Route(
        "client.search", lambda w: {"params": {"name": w.family_name}}
    ),
    ("intake", "POST", "/v1/clients"): Route(
        "client.create", lambda w: {"json": {**VALID_CLIENT, "family_name": "Elsewhere"}}
    ),
    ("intake", "GET", "/v1/clients"): Route("client.list"),
    ("intake", "GET", "/v1/reports/equity"): Route(
        "report.equity", lambda w: {"params": {"instrument_id": "needs-risk-screening"}}
    ),
    ("intake", "GET", "/v1/clients/{client_id}"): Route("client.read"),
    ("intake", "PATCH", "/v1/clients/{client_id}"): Route(
        "client.update",
        lambda w: {"json": {"phone": "555-000-9999"}, "headers": {"If-Match": w.etag}},
    ),
    ("intake", "POST", "/v1/clients/{client_id}/consents"): Route(
        "consent.write", lambda w: {"json": REFERRAL_CONSENT}
    ),
    ("intake", "GET", "/v1/clients/{client_id}/consents"): Route("consent.read"),
    ("intake", "GET", "/v1/clients/{client_id}/consents/{consent_id}"): Route("consent.read"),
    ("intake", "POST", "/v1/clients/{client_id}/consents/{consent_id}/revocation"): Route(
        "consent.write", lambda w: {"json": {"reason": "client_request"}}
    ),
    ("intake", "POST", "/v1/clients/{client_id}/assessments"): Route(
        "assessment.write", lambda w: {"json": ASSESSMENT}
    ),
    ("intake", "GET", "/v1/clients/{client_id}/assessments"): Route("assessment.read"),
    ("intake", "GET", "/v1/clients/{client_id}/assessments/{assessment_id}"): Route(
        "assessment.read"
    ),
    ("intake", "POST", "/v1/clients/{client_id}/assessments/{assessment_id}/override"): Route(
        "assessment.override",
        lambda w: {"json": {"risk_level": "low", "reason": "Spoke with her, she is safe now."}},
    ),
    ("intake", "GET", "/v1/clients/{client_id}/flags"): Route("flag.read"),
    ("intake", "POST", "/v1/clients/{client_id}/flags"): Route(
        "flag.write", lambda w: {"json": {"flag_type": "legal", "severity": "low"}}
    ),
    ("intake", "GET", "/v1/clients/{client_id}/flags/{flag_id}"): Route("flag.read"),
    ("intake", "POST", "/v1/clients/{client_id}/flags/{flag_id}/acknowledgement"): Route(
        "flag.write"
    ),
    ("intake", "POST", "/v1/clients/{client_id}/flags/{flag_id}/resolution"): Route(
        "flag.write", lambda w: {"json": {"note": "Resolved: no longer at risk."}}
    ),
    ("intake", "POST", "/v1/clients/{client_id}/links"): Route(
        "link.write",
        lambda w: {"json": {"other_client_id": w.other_client_id, "reason": "duplicate_registration"}},
    ),
    ("intake", "GET", "/v1/clients/{client_id}/links"): Route("link.read"),
    ("intake", "DELETE", "/v1/clients/{client_id}/links/{other_client_id}"): Route(
        "link.write", lambda w: {"params": {"reason": "wrong_person"}}
    ),
    **{
        (service, "GET", "/v1/audit"): Route(
            "audit.read", lambda w: {"params": {"client_id": w.client_id}}, client_bound=True
        )
        for service in READ_PATHS
    },
    **{
        (service, "GET", "/v1/client-refs/{client_id}"): Route("client_ref.read")
        for service in ("planning", "referrals", "notifications")
    },
    ("planning", "PUT", "/v1/cases/{case_id}/assignment"): Route(
        "case.assign", lambda w: {"json": {"worker_id": "bob"}}, client_bound=True
    ),
    ("planning", "GET", "/v1/cases/{case_id}/assignment"): Route("case.read", client_bound=True),
    ("planning", "GET", "/v1/code-lists/closure-reasons"): Route(None),
    ("planning", "GET", "/v1/code-lists/destinations"): Route(None),
    ("planning", "POST", "/v1/cases"): Route(
        "case.open", lambda w: {"json": {"client_id": w.client_id}}, client_bound=True
    ),
    ("planning", "GET", "/v1/cases"): Route("case.read"),
    ("planning", "GET", "/v1/cases/{case_id}"): Route("case.read", client_bound=True),
    ("planning", "POST", "/v1/cases/{case_id}/hold"): Route(
        "case.update", lambda w: {"json": {}, "headers": {"If-Match": w.case_etag}},
        client_bound=True,
    ),
    ("planning", "POST", "/v1/cases/{case_id}/resume"): Route(
        "case.update", lambda w: {"headers": {"If-Match": w.case_etag}}, client_bound=True
    ),
    ("planning", "POST", "/v1/cases/{case_id}/closure"): Route(
        "case.update",
        lambda w: {
            "json": {"reason": "goals_met", "destination_code": "410"},
            "headers": {"If-Match": w.case_etag},
        },
        client_bound=True,
    ),
    ("planning", "POST", "/v1/cases/{case_id}/reopening"): Route(
        "case.update",
        lambda w: {"json": {"reason": "Client came back"}, "headers": {"If-Match": w.case_etag}},
        client_bound=True,
    ),
    ("planning", "GET", "/v1/cases/{case_id}/reviews"): Route("case.read", client_bound=True),
    ("planning", "POST", "/v1/cases/{case_id}/reviews/{review_id}/completion"): Route(
        "review.complete",
        lambda w: {"json": {"outcome": "continue", "attendees": [{"role": "client"}]}},
        client_bound=True,
    ),
    ("planning", "GET", "/v1/cases/{case_id}/timeline"): Route("case.read", client_bound=True),
    ("intake", "GET", "/v1/clients/{client_id}/history"): Route("client.read"),
    ("intake", "GET", "/v1/clients/{client_id}/shared-record"): Route("client.shared_read"),
    ("intake", "GET", "/v1/flags"): Route("flag.read"),
    ("intake", "POST", "/v1/clients/{client_id}/assessment-drafts"): Route(
        "assessment.write",
        lambda w: {"json": {"instrument_id": "needs-risk-screening", "version": "1.0",
                            "answers": {"danger_at_home": "yes"}}},
    ),
    ("intake", "GET", "/v1/clients/{client_id}/assessment-drafts/{draft_id}"): Route(
        "assessment.read"
    ),
    ("intake", "PATCH", "/v1/clients/{client_id}/assessment-drafts/{draft_id}"): Route(
        "assessment.write",
        lambda w: {"json": {"answers": {"danger_at_home": "yes"}},
                   "headers": {"If-Match": w.draft_etag}},
    ),
    ("intake", "POST", "/v1/clients/{client_id}/assessment-drafts/{draft_id}/completion"): Route(
        "assessment.write", lambda w: {"headers": {"If-Match": w.draft_etag}}
    ),
    # The staff directory holds no client data: outside the caller's organisation it is empty.
    ("planning", "GET", "/v1/approvals"): Route("approval.read"),
    ("planning", "GET", "/v1/approvals/{approval_id}"): Route("approval.read", client_bound=True),
    ("planning", "POST", "/v1/approvals/{approval_id}/decision"): Route(
        "approval.decide", lambda w: {"json": {"decision": "approved"}}, client_bound=True
    ),
    ("planning", "POST", "/v1/approvals/{approval_id}/withdrawal"): Route(
        "approval.withdraw", lambda w: {"json": {}}, client_bound=True
    ),
    ("planning", "GET", "/v1/work"): Route("work.read"),
    **PLAN_AND_NOTE_ROUTES,
    ("planning", "POST", "/v1/cases/{case_id}/transfers"): Route(
        "transfer.request", lambda w: {"json": {"to_worker_id": "bob"}}, client_bound=True
    ),
    ("planning", "GET", "/v1/cases/{case_id}/transfers"): Route("transfer.read", client_bound=True),
    # A transfer by id is open to its two sides only (no break-glass: that goes by the case).
    ("planning", "GET", "/v1/transfers"): Route("transfer.read"),
    ("planning", "GET", "/v1/transfers/{transfer_id}"): Route("transfer.read"),
    ("planning", "POST", "/v1/transfers/{transfer_id}/acceptance"): Route("transfer.answer"),
    ("planning", "POST", "/v1/transfers/{transfer_id}/declination"): Route(
        "transfer.answer", lambda w: {"json": {"reason": "at_capacity"}}
    ),
    ("planning", "POST", "/v1/transfers/{transfer_id}/revocation"): Route("transfer.revoke"),
    ("planning", "GET", "/v1/workers/{worker_id}/caseload"): Route("caseload.read"),
    ("planning", "GET", "/v1/teams/{team_id}/caseload"): Route("team.read"),
    ("planning", "GET", "/v1/cases/{case_id}/assignment-suggestions"): Route(
        "assignment.suggest", client_bound=True
    ),
    ("planning", "GET", "/v1/workers"): Route("worker.read"),
    ("planning", "GET", "/v1/workers/{worker_id}"): Route("worker.read"),
    ("planning", "PUT", "/v1/workers/{worker_id}"): Route(
        "worker.write", lambda w: {"json": {"team_id": "team-a", "display_name": "Mallory"}}
    ),
    ("planning", "PATCH", "/v1/workers/{worker_id}"): Route(
        "worker.write", lambda w: {"json": {"active": False}}
    ),
    ("referrals", "POST", "/v1/referrals"): Route(
        "referral.create",
        lambda w: {"json": {"client_id": w.client_id, "service_id": w.path_ids["service_id"],
                            "mode": "logged"}},
        client_bound=True,
    ),
    ("referrals", "GET", "/v1/referrals"): Route("referral.list"),
    ("referrals", "GET", "/v1/referrals/{referral_id}"): Route("referral.read", client_bound=True),
    ("referrals", "GET", "/v1/referrals/{referral_id}/history"): Route(
        "referral.read", client_bound=True
    ),
    ("referrals", "GET", "/v1/referrals/{referral_id}/fhir"): Route(
        "referral.read", client_bound=True
    ),
    ("referrals", "POST", "/v1/referrals/{referral_id}/status"): Route(
        "referral.status",
        lambda w: {"json": {"status": "cancelled", "reason_code": "other"},
                   "headers": {"If-Match": f'"{w.path_ids["referral_id"]}.1"'}},
        client_bound=True,
    ),
    ("referrals", "POST", "/v1/referrals/{referral_id}/fhir/task"): Route(
        "referral.status",
        lambda w: {"json": {"resourceType": "Task", "status": "accepted", "intent": "order"},
                   "headers": {"If-Match": f'"{w.path_ids["referral_id"]}.1"'}},
        client_bound=True,
    ),
    # The resource directory (referrals): records of organisations, never of clients. Writes
    # are narrowed to the records the caller manages; the HSDS API is public.
    ("referrals", "POST", "/v1/directory/imports"): Route("directory.write", lambda w: {"json": []}),
    ("referrals", "GET", "/v1/directory/export"): Route("directory.read"),
    ("referrals", "GET", "/v1/directory/services/{service_id}"): Route("directory.read"),
    ("referrals", "PUT", "/v1/directory/services/{service_id}/need-categories"): Route(
        "directory.write", lambda w: {"json": {"need_categories": ["food"]}}
    ),
    ("referrals", "PUT", "/v1/directory/services/{service_id}/eligibility-rules"): Route(
        "directory.write",
        lambda w: {"json": {"rules": [{"rule_id": "r", "description": "d",
                                       "expression": "age > 1"}]}},
    ),
    ("referrals", "PUT", "/v1/directory/services/{service_id}/capacity"): Route(
        "capacity.write", lambda w: {"json": {"status": "capacity"}}
    ),
    ("referrals", "PUT", "/v1/directory/organizations/{organization_id}/casework-organization"):
        Route("directory.write", lambda w: {"json": {"casework_organization_id": "org-b"}}),
    ("referrals", "POST", "/v1/matches"): Route(
        "match.run", lambda w: {"json": {"client_id": w.client_id}}, client_bound=True
    ),
    ("referrals", "GET", "/v1/clients/{client_id}/suggested-services"): Route("match.read"),
    **{("referrals", "GET", path): Route(None) for path in (
        "/hsds/", "/hsds/services", "/hsds/services/{service_id}", "/hsds/organizations",
        "/hsds/organizations/{organization_id}", "/hsds/service_at_locations",
        "/hsds/service_at_locations/{service_at_location_id}",
    )},
    ("planning", "POST", "/v1/workers/sync"): Route(
        "worker.sync",
        lambda w: {"json": {"workers": [{"worker_id": "mallory", "team_id": "team-x",
                                         "display_name": "Mallory"}]}},
    ),
    # Notifications: every user's own inbox and preferences (what they hold is theirs, in
    # their organisation), the organisation's rules and on-call list (its admins').
    ("notifications", "GET", "/v1/inbox"): Route("inbox.read"),
    ("notifications", "POST", "/v1/inbox/read"): Route(
        "inbox.write", lambda w: {"json": {"up_to": w.path_ids["notification_id"]}}
    ),
    ("notifications", "POST", "/v1/inbox/{notification_id}/read"): Route("inbox.write"),
    ("notifications", "POST", "/v1/inbox/stream-tickets"): Route("inbox.write"),
    ("notifications", "GET", "/v1/inbox/stream"): Route(
        "inbox.read", lambda w: {"params": {"ticket": "not-a-ticket-anyone-was-given"}}
    ),
    ("notifications", "GET", "/v1/preferences"): Route("preferences.read"),
    ("notifications", "PUT", "/v1/preferences"): Route(
        "preferences.write", lambda w: {"json": {"language": "pt"}, "headers": {"If-Match": '"x"'}}
    ),
    ("notifications", "GET", "/v1/notification-rules"): Route("rules.read"),
    ("notifications", "PUT", "/v1/notification-rules"): Route(
        "rules.write", lambda w: {"json": {"rules": []}, "headers": {"If-Match": '"x"'}}
    ),
    ("notifications", "GET", "/v1/on-call"): Route("on_call.read"),
    ("notifications", "PUT", "/v1/on-call"): Route(
        "on_call.write", lambda w: {"json": {"user_ids": ["mallory"]}, "headers": {"If-Match": '"x"'}}
    ),
    # Webhook subscriptions are an organisation's configuration: no client data, and another
    # organisation's subscription does not exist for the caller.
    ("notifications", "GET", "/v1/webhooks/event-types"): Route("webhook.read"),
    ("notifications", "GET", "/v1/webhooks"): Route("webhook.read"),
    ("notifications", "POST", "/v1/webhooks"): Route(
        "webhook.write",
        lambda w: {"json": {"url": "https://agency.example.org/hook",
                            "event_types": ["org.casework.intake.client.registered.v1"]}},
    ),
    ("notifications", "GET", "/v1/webhooks/{webhook_id}"): Route("webhook.read"),
    ("notifications", "PATCH", "/v1/webhooks/{webhook_id}"): Route(
        "webhook.write", lambda w: {"json": {"state": "disabled"}}
    ),
    ("notifications", "DELETE", "/v1/webhooks/{webhook_id}"): Route("webhook.write"),
    ("notifications", "POST", "/v1/webhooks/{webhook_id}/secret-rotation"): Route(
        "webhook.write"
    ),
    ("notifications", "GET", "/v1/webhooks/{webhook_id}/deliveries"): Route("webhook.read"),
    ("notifications", "GET", "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}"): Route(
        "webhook.read"
    ),
    ("notifications", "POST",
     "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redelivery"): Route("webhook.write"),
}  # fmt: skip
UNGUARDED = ("/health/", "/metrics")


def served_routes() -> set[tuple[str, str, str]]:
    routes = set()
    for name, spec in SERVICES.items():
        for path, operations in (
            create_app(spec, Settings.model_construct()).openapi()["paths"].items()
        ):
            if not path.startswith(UNGUARDED):
                routes |= {(name, method.upper(), path) for method in operations}
    return routes


def test_every_route_is_in_the_matrix() -> None:
    """A new route fails here until it is classified in ROUTES (and so tested below)."""
    served = served_routes()
    assert sorted(served - set(ROUTES)) == [], "classify these routes in ROUTES"
    assert sorted(set(ROUTES) - served) == [], "these routes are no longer served"


def test_each_action_is_declared_a_read_exactly_when_its_routes_are_gets() -> None:
    """Break-glass opens what a policy declares a read: that must be what the routes do."""
    for (service, method, _), route in ROUTES.items():
        if route.action is not None:
            kind = SERVICES[service].policy.kinds[route.action]
            assert (kind is ActionKind.READ) == (method == "GET"), (service, route.action)


def _principal(user: User) -> Principal:
    return Principal(
        subject=user.subject,
        roles=frozenset(Role(role) for role in user.roles),
        organization_id=user.organization_id,
        team_id=user.team_id,
    )


def _is_client_bound(path: str, route: Route) -> bool:
    return route.client_bound if route.client_bound is not None else "{client_id}" in path


def _in_scope_anyway(service: str, route: Route, user: User) -> bool:
    """A visitor of alice's organisation whose role reaches the whole organisation for this
    action is simply in scope: no break-glass case (e.g. a supervisor linking records)."""
    scopes = SERVICES[service].policy.scopes(_principal(user), route.action or "")
    return user.organization_id == ALICE.organization_id and bool(
        scopes & {Scope.ORGANISATION, Scope.ALL}
    )


MATRIX = [
    pytest.param(key, visitor, id=f"{key[0]} {key[1]} {key[2]} | {visitor}")
    for key in sorted(ROUTES)
    for visitor in VISITORS
    if not _in_scope_anyway(key[0], ROUTES[key], VISITORS[visitor][0])
]


@pytest.fixture(scope="module")
async def world(stack: Stack, settings: Settings) -> World:
    family_name = f"Wallenstein{uuid.uuid4().hex[:8]}"
    intake = stack.api["intake"]
    registered = await intake.post("/v1/clients", json={**VALID_CLIENT, "family_name": family_name})
    other = await intake.post(
        "/v1/clients", json={**VALID_CLIENT, "family_name": family_name + "x"}
    )
    client_id, other_id = registered.json()["id"], other.json()["id"]
    base = f"/v1/clients/{client_id}"
    assessment = (await intake.post(f"{base}/assessments", json=ASSESSMENT)).json()
    flag = (
        await intake.post(f"{base}/flags", json={"flag_type": "legal", "severity": "low"})
    ).json()
    consent = (await intake.post(f"{base}/consents", json=REFERRAL_CONSENT)).json()
    draft_answers = {"instrument_id": "needs-risk-screening", "version": "1.0", "answers": {}}
    draft = await intake.post(f"{base}/assessment-drafts", json=draft_answers)
    for service in ("planning", "referrals", "notifications"):
        await wait_known(settings, service, client_id)
    # The case assigned to alice herself: the assignment exists to be read, and she keeps it.
    await enrol_worker(stack, settings, ALICE)
    case_id = await open_case(stack, settings, client_id)
    assigned, _ = await call(
        stack, settings, SAM, "planning", "PUT", f"/v1/cases/{case_id}/assignment",
        json={"worker_id": "alice"},
    )  # fmt: skip
    assert assigned.status_code == 200, assigned.text
    for service in ("intake", "referrals", "notifications"):

        async def assigned_here(service: str = service) -> bool | None:
            owner = await admin_fetchval(
                settings,
                f"SELECT owner_id FROM {service}.client_access WHERE client_id = $1",
                uuid.UUID(client_id),
            )
            return True if owner == "alice" else None

        await eventually(assigned_here)
    # A referral of the client (logged: it needs a service of the directory, no consent).
    service_id = await seed_directory_service(settings)
    referral = await stack.api["referrals"].post(
        "/v1/referrals",
        json={"client_id": client_id, "service_id": service_id, "mode": "logged"},
        headers=bearer(settings, ALICE),
    )
    assert referral.status_code == 201, referral.text
    approval_id, review_id = await planning_approval_and_review(settings, case_id)
    transfer_id = await pending_transfer(settings, client_id, case_id)
    case = await stack.api["planning"].get(f"/v1/cases/{case_id}")
    assert case.status_code == 200, case.text
    plan_id, goal_id, note_id = await planning_plan_and_note(stack, settings, case_id)
    current = (await intake.get(base)).json()
    return World(
        client_id=client_id,
        other_client_id=other_id,
        family_name=family_name,
        etag=f'"{client_id}.{current["version"]}"',
        draft_etag=draft.headers["ETag"],
        path_ids={
            "client_id": client_id, "other_client_id": other_id,
            "assessment_id": assessment["id"], "flag_id": flag["id"], "consent_id": consent["id"],
            "name": "sex", "instrument_id": "needs-risk-screening", "version": "1.0",
            "draft_id": draft.json()["id"], "worker_id": "alice",
            "notification_id": str(uuid.uuid4()),
            "webhook_id": str(uuid.uuid4()), "delivery_id": str(uuid.uuid4()),
            "referral_id": referral.json()["id"], "service_id": service_id,
            "case_id": case_id, "approval_id": approval_id, "review_id": review_id,
            "plan_id": plan_id, "goal_id": goal_id, "note_id": note_id,
            "transfer_id": transfer_id, "team_id": "team-a",
            "organization_id": "no-such-organization",
            "service_at_location_id": "no-such-service-at-location",
        },
        case_etag=case.headers["ETag"],
    )  # fmt: skip


async def seed_directory_service(settings: Settings) -> str:
    """A service of an organisation outside the network, in referrals' directory (HSDS
    identifiers are UUIDs: the rows export and import back like any others)."""
    organization_id, service_id = str(uuid.uuid4()), str(uuid.uuid4())
    connection = await asyncpg.connect(settings.database_url)
    try:
        await connection.execute(
            "INSERT INTO referrals.organization (id, name, description) "
            "VALUES ($1, 'Library', 'Job club and computers')",
            organization_id,
        )
        await connection.execute(
            "INSERT INTO referrals.service (id, organization_id, name, status) "
            "VALUES ($1, $2, 'Job club', 'active')",
            service_id,
            organization_id,
        )
    finally:
        await connection.close()
    return service_id


async def planning_approval_and_review(settings: Settings, case_id: str) -> tuple[str, str]:
    """A closure of alice's case awaiting approval (requested by alice), and the case's
    scheduled review: what the approval and review routes act on."""
    connection = await asyncpg.connect(settings.database_url)
    try:
        approval_id = uuid.uuid4()
        await connection.execute(
            "INSERT INTO planning.approvals (id, case_id, client_id, subject, subject_id, "
            "status, requested_by, requested_at, team_id, organization_id) "
            "SELECT $1, id, client_id, 'closure', $2, 'requested', 'alice', now(), team_id, "
            "organization_id FROM planning.cases WHERE id = $3",
            approval_id, uuid.uuid4(), uuid.UUID(case_id),
        )  # fmt: skip
        review_id = await connection.fetchval(
            "SELECT id FROM planning.reviews WHERE case_id = $1 AND status = 'scheduled'",
            uuid.UUID(case_id),
        )
    finally:
        await connection.close()
    return str(approval_id), str(review_id)


async def planning_plan_and_note(
    stack: Stack, settings: Settings, case_id: str
) -> tuple[str, str, str]:
    """A draft plan (one goal) and a draft note of alice's on the case."""
    await admin_fetchval(
        settings,
        "INSERT INTO planning.case_needs (case_id, category, severity, updated_at) "
        "VALUES ($1, 'housing', 'moderate', now()) ON CONFLICT DO NOTHING",
        uuid.UUID(case_id),
    )
    planning = stack.api["planning"]
    plan = await planning.post(f"/v1/cases/{case_id}/plans", json={"goals": [PLAN_GOAL]})
    assert plan.status_code == 201, plan.text
    note = await planning.post(f"/v1/cases/{case_id}/notes", json=CONTACT_NOTE)
    assert note.status_code == 201, note.text
    return plan.json()["id"], plan.json()["goals"][0]["id"], note.json()["id"]


async def pending_transfer(settings: Settings, client_id: str, case_id: str) -> str:
    """A transfer of alice's case to bob, asked by alice, awaiting bob's answer."""
    transfer_id = uuid.uuid4()
    await admin_fetchval(
        settings,
        "INSERT INTO planning.case_transfers (id, case_id, client_id, organization_id, "
        "from_worker_id, from_team_id, to_worker_id, to_team_id, status, requested_by, "
        "requested_at) VALUES ($1, $2, $3, 'org-a', 'alice', 'team-a', 'bob', 'team-a', "
        "'pending', 'alice', now()) RETURNING id",
        transfer_id, uuid.UUID(case_id), uuid.UUID(client_id),
    )  # fmt: skip
    return str(transfer_id)


async def fingerprint(settings: Settings, client_id: str) -> dict[str, str]:
    """Every row about the client in every service (its audit trail aside), hashed per table."""
    connection = await asyncpg.connect(settings.database_url)
    try:
        tables = await connection.fetch(
            "SELECT table_schema, table_name FROM information_schema.columns "
            "WHERE column_name = 'client_id' AND table_name <> 'audit_log' "
            "AND table_schema = ANY($1::text[])",
            list(READ_PATHS),
        )
        queries = {
            f"{t['table_schema']}.{t['table_name']}": f"FROM {t['table_schema']}.{t['table_name']} "
            "t WHERE client_id = $1"
            for t in tables
        }
        queries["intake.clients"] = "FROM intake.clients t WHERE id = $1"
        # The events about the client; the relay's publishing marks and the audit records'
        # own events (a refusal is audited) are no change to the client.
        for service in READ_PATHS:
            queries[f"{service}.outbox"] = (
                f"FROM (SELECT id, type, payload FROM {service}.outbox WHERE aggregateid = "
                "$1::uuid::text AND topic <> 'casework.audit') t"
            )
        return {
            table: await connection.fetchval(
                f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) {query}",
                uuid.UUID(client_id),
            )
            for table, query in queries.items()
        }
    finally:
        await connection.close()


def _reveals(body: Any, world: World, *, limited_allowed: bool) -> bool:
    """Whether a response body shows anything of the client: its id or its name. A reduced
    search candidate (`access: limited`) is allowed to a visitor of the same organisation."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            if limited_allowed and value.get("access") == "limited":
                assert "birth_date" not in value and "score" not in value, value
                return None
            # A problem's `instance` is the caller's own request path: it tells them nothing.
            return {k: strip(v) for k, v in value.items() if k != "instance"}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    text = json.dumps(strip(body))
    return world.client_id in text or world.family_name in text


@pytest.mark.parametrize(("key", "visitor"), MATRIX)
async def test_no_route_crosses_an_organisation_or_writes_through_broken_glass(
    stack: Stack, settings: Settings, world: World, key: tuple[str, str, str], visitor: str
) -> None:
    service, method, path = key
    route = ROUTES[key]
    user, reason = VISITORS[visitor]
    request = route.request(world)
    headers = {**request.pop("headers", {}), **({"X-Break-Glass-Reason": reason} if reason else {})}
    writes = method != "GET"
    before = await fingerprint(settings, world.client_id) if writes else None

    response, request_id = await call(
        stack, settings, user, service, method, path.format(**world.path_ids),
        headers=headers, **request,
    )  # fmt: skip

    same_org = user.organization_id == ALICE.organization_id
    if not _is_client_bound(path, route):
        # Lists, search, reports, reference data: never the client, whatever the headers.
        assert response.status_code < 500, response.text
        body = response.json() if response.content else None
        assert not _reveals(body, world, limited_allowed=same_org), response.text
        return
    policy = SERVICES[service].policy
    has_action = route.action is not None and policy.allows_action(_principal(user), route.action)
    # Break-glass opens reads the supervisor's role has at all (not a partner's shared record).
    breaks_glass = (
        bool(reason) and same_org and "supervisor" in user.roles and not writes and has_action
    )
    rows = await audit_rows(settings, service, request_id)
    if breaks_glass:
        assert response.status_code == 200, response.text
        assert rows and all(
            (r["outcome"], r["break_glass_reason"]) == ("break_glass", reason) for r in rows
        ), rows
        return
    assert response.status_code == (404 if has_action else 403), response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert not _reveals(response.json(), world, limited_allowed=False)
    assert [(r["action"], r["outcome"], r["break_glass_reason"]) for r in rows] == [
        (route.action, "denied", None)
    ]
    if writes:
        assert await fingerprint(settings, world.client_id) == before, "a refused write changed"
