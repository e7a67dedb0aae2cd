"""The baselines: intake's POST /v1/clients written with nothing but FastAPI, pydantic and raw
asyncpg, to measure what the service's framework costs.

- `POST /v1/clients`: the same database work as intake's registration, statement for
  statement, in one transaction: the duplicate check (intake's own query), the client row,
  its access facts, an audit row on an HMAC chain (the shared append: the head under the
  chain's lock, the HMAC in Python, the insert), and the outbox rows of `ClientRegistered` and
  `AuditRecorded`; 201 with the row as JSON, or 409 when a
  likely duplicate exists. What it leaves out is what the comparison is about: token
  verification, the Guard, middleware (request id, trace context, metrics, body limit), the
  full record's validation, event models and envelopes, response models.
- `POST /v1/minimal-clients`: the architecture guide's reference point, a client row and an
  outbox row and nothing else.

Its schema `bench_baseline` copies intake's migrated tables (`CREATE TABLE ... (LIKE intake.x
INCLUDING ALL)`: same columns, defaults, generated columns, keys and indexes), the NOTIFY
trigger on the outbox and the audit chain function, so it stays identical to intake's as
intake's migrations evolve. It connects with the admin URL (settings.database_url) and
intake's pool size and pool settings.

Served like the services (uvicorn, uvloop, httptools, one process, no access log):
`python -m bench.baseline_app --port PORT`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from typing import Annotated, Any
from uuid import UUID, uuid4

import asyncpg
from fastapi import FastAPI, Request, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints

from bench.people import ORGANIZATION, TEAM, WORKER
from services.intake.clients.search import (
    find_likely_duplicates,
    first_token,
    last_token,
    name_key,
)
from shared.audit.keys import ChainKeys, chain_keys
from shared.audit.log import AuditEntry, append, chain_claim_function
from shared.db.database import pool_options
from shared.events.contracts import AuditRecorded, ClientRegistered
from shared.messaging.outbox import insert_statement
from shared.messaging.tables import outbox_channel
from shared.settings import Settings

SCHEMA = "bench_baseline"
SOURCE_SCHEMA = "intake"
TABLES = ("clients", "client_access", "audit_log", "outbox")


# Who registers: the bench's case worker, whose search scope is their organisation.
def _visible(first_parameter: int) -> tuple[str, list[str]]:
    return f"(a.organization_id = ${first_parameter})", [ORGANIZATION]


def _no_control_characters(value: str) -> str:
    if any(ord(character) < 32 for character in value):
        raise ValueError("must not contain control characters")
    return value


def _plausible_birth_date(value: date) -> date:
    if not date(1900, 1, 1) <= value <= datetime.now(UTC).date():
        raise ValueError("implausible birth date")
    return value


Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    AfterValidator(_no_control_characters),
]
Language = Annotated[
    str, StringConstraints(strip_whitespace=True, to_lower=True, pattern=r"^[a-zA-Z]{2,3}$")
]


class ClientIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    given_name: Name
    family_name: Name
    birth_date: Annotated[date, AfterValidator(_plausible_birth_date)]
    preferred_language: Language


_RETURNING = (
    "RETURNING id, given_name, family_name, birth_date, preferred_language, version, "
    "created_at, updated_at"
)
_INSERT_CLIENT = f"""
INSERT INTO clients (id, given_name, family_name, birth_date, preferred_language, name_key,
    given_phonetic, family_phonetic, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, dmetaphone($7), dmetaphone($8), $9, $9)
{_RETURNING}
"""
_INSERT_MINIMAL_CLIENT = f"""
INSERT INTO clients (id, given_name, family_name, birth_date, preferred_language, created_at,
    updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $6)
{_RETURNING}
"""
_INSERT_ACCESS = """
INSERT INTO client_access (client_id, organization_id, team_id, registered_by)
VALUES ($1, $2, $3, $4)
"""


async def create_schema(admin_url: str) -> None:
    """(Re)create bench_baseline as a copy of intake's tables, trigger and chain function."""
    connection: asyncpg.Connection = await asyncpg.connect(admin_url)
    try:
        async with connection.transaction():
            await connection.execute(f'DROP SCHEMA IF EXISTS "{SCHEMA}" CASCADE')
            await connection.execute(f'CREATE SCHEMA "{SCHEMA}"')
            for table in TABLES:
                await connection.execute(
                    f'CREATE TABLE "{SCHEMA}".{table} '
                    f'(LIKE "{SOURCE_SCHEMA}".{table} INCLUDING ALL)'
                )
            await connection.execute(
                f"""
                CREATE FUNCTION "{SCHEMA}".notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    PERFORM pg_notify('{outbox_channel(SCHEMA)}', '');
                    RETURN NULL;
                END $$
                """
            )
            await connection.execute(
                f'CREATE TRIGGER outbox_notify AFTER INSERT ON "{SCHEMA}".outbox '
                f'FOR EACH STATEMENT EXECUTE FUNCTION "{SCHEMA}".notify_outbox()'
            )
            await connection.execute(chain_claim_function(SCHEMA))
    finally:
        await connection.close()


def _row_json(row: asyncpg.Record) -> bytes:
    document: dict[str, Any] = {
        key: value.isoformat() if isinstance(value, date | datetime) else value
        for key, value in row.items()
    }
    document["id"] = str(row["id"])
    return json.dumps(document).encode()


def _outbox_row(event_type: type[Any], aggregate_id: str, payload: dict[str, Any]) -> list[Any]:
    return [
        uuid4(),
        event_type.aggregate_type,
        aggregate_id,
        event_type.event_type,
        event_type.topic,
        payload,
        {},
        datetime.now(UTC),
    ]


def _audit_entry(request: Request, client_id: UUID) -> AuditEntry:
    return AuditEntry.new(
        actor_id=WORKER,
        actor_roles=["caseworker"],
        actor_organization_id=ORGANIZATION,
        action="client.create",
        resource_type="client",
        resource_id=str(client_id),
        client_id=client_id,
        outcome="allowed",
        request_id=None,
        source_address=request.client.host if request.client else None,
        purpose=None,
        break_glass_reason=None,
    )


async def _register(
    connection: asyncpg.Connection, keys: ChainKeys, body: ClientIn, request: Request
) -> Response:
    likely = await find_likely_duplicates(
        connection,
        name=f"{body.given_name} {body.family_name}",
        birth_date=body.birth_date,
        phone_digits=None,
        visible=_visible,
        limit=5,
    )
    if likely:
        ids = [str(candidate.client_id) for candidate in likely]
        return Response(json.dumps({"candidates": ids}), status_code=409)
    row = await connection.fetchrow(
        _INSERT_CLIENT,
        uuid4(),
        body.given_name,
        body.family_name,
        body.birth_date,
        body.preferred_language,
        name_key(body.given_name, body.family_name),
        first_token(body.given_name),
        last_token(body.family_name),
        datetime.now(UTC),
    )
    assert row is not None
    client_id: UUID = row["id"]
    await connection.execute(_INSERT_ACCESS, client_id, ORGANIZATION, TEAM, WORKER)
    entry = _audit_entry(request, client_id)
    await append(connection, schema=SCHEMA, keys=keys, entries=[entry])
    registered = {
        "client_id": str(client_id),
        "preferred_language": row["preferred_language"],
        "registered_at": row["created_at"].isoformat(),
        "organization_id": ORGANIZATION,
        "team_id": TEAM,
        "registered_by": WORKER,
    }
    recorded = {
        "audit_id": str(entry.id),
        "service": SCHEMA,
        "occurred_at": entry.occurred_at.isoformat(),
        "actor_id": WORKER,
        "action": entry.action,
        "resource_type": entry.resource_type,
        "client_id": str(client_id),
        "outcome": entry.outcome,
    }
    await connection.execute(
        insert_statement(2),
        *_outbox_row(ClientRegistered, str(client_id), registered),
        *_outbox_row(AuditRecorded, str(entry.id), recorded),
    )
    return Response(_row_json(row), status_code=201, media_type="application/json")


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = await asyncpg.create_pool(
            settings.database_url,
            min_size=1,
            max_size=settings.database_pool_size,
            **pool_options(SCHEMA),
        )
        try:
            yield
        finally:
            await app.state.pool.close()

    app = FastAPI(title="Casework bench baseline", lifespan=lifespan)
    keys = chain_keys(settings)

    @app.post("/v1/clients", status_code=201)
    async def register_client(body: ClientIn, request: Request) -> Response:
        pool: asyncpg.Pool = request.app.state.pool
        async with pool.acquire() as connection, connection.transaction():
            return await _register(connection, keys, body, request)

    @app.post("/v1/minimal-clients", status_code=201)
    async def register_minimal_client(body: ClientIn, request: Request) -> Response:
        pool: asyncpg.Pool = request.app.state.pool
        now = datetime.now(UTC)
        async with pool.acquire() as connection, connection.transaction():
            row = await connection.fetchrow(
                _INSERT_MINIMAL_CLIENT,
                uuid4(),
                body.given_name,
                body.family_name,
                body.birth_date,
                body.preferred_language,
                now,
            )
            assert row is not None
            payload = {
                "client_id": str(row["id"]),
                "preferred_language": row["preferred_language"],
                "registered_at": row["created_at"].isoformat(),
            }
            await connection.execute(
                insert_statement(1), *_outbox_row(ClientRegistered, str(row["id"]), payload)
            )
        return Response(_row_json(row), status_code=201, media_type="application/json")

    @app.get("/health/ready")
    async def ready() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m bench.baseline_app", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    settings = Settings()
    asyncio.run(create_schema(settings.database_url))
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        log_config=None,
        log_level=settings.log_level.lower(),
        access_log=False,
        loop="uvloop",
        http="httptools",
        proxy_headers=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
