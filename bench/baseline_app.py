"""The baseline: intake's POST /v1/clients with nothing but FastAPI, pydantic and raw asyncpg.

The same database work as intake, minus the service framework (middleware, metrics, tracing,
response-model validation, event envelope): parse and validate the same body, then in one
transaction insert the client row and its outbox row, and answer 201 with the row as JSON.

Its schema `bench_baseline` copies intake's migrated tables (`CREATE TABLE ... (LIKE intake.x
INCLUDING ALL)`: same columns, defaults, identity, keys and indexes) plus the same NOTIFY
trigger on the outbox, so it stays identical to intake's as intake's migrations evolve.
It connects with the admin URL (settings.database_url) and intake's pool size.

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
from uuid import uuid4

import asyncpg
from fastapi import FastAPI, Request, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints

from shared.events.contracts import ClientRegistered
from shared.messaging.tables import outbox_channel
from shared.settings import Settings

SCHEMA = "bench_baseline"
SOURCE_SCHEMA = "intake"


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


_INSERT_CLIENT = """
INSERT INTO clients (id, given_name, family_name, birth_date, preferred_language, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $6)
RETURNING id, given_name, family_name, birth_date, preferred_language, version, created_at, updated_at
"""
_INSERT_OUTBOX = """
INSERT INTO outbox (id, aggregatetype, aggregateid, type, topic, payload, headers, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
"""


async def create_schema(admin_url: str) -> None:
    """(Re)create bench_baseline as a copy of intake's clients and outbox tables."""
    connection: asyncpg.Connection = await asyncpg.connect(admin_url)
    try:
        async with connection.transaction():
            await connection.execute(f'DROP SCHEMA IF EXISTS "{SCHEMA}" CASCADE')
            await connection.execute(f'CREATE SCHEMA "{SCHEMA}"')
            for table in ("clients", "outbox"):
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
    finally:
        await connection.close()


async def _init_connection(connection: asyncpg.Connection) -> None:
    for json_type in ("json", "jsonb"):
        await connection.set_type_codec(
            json_type, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )


def _row_json(row: asyncpg.Record) -> bytes:
    document: dict[str, Any] = {
        key: value.isoformat() if isinstance(value, date | datetime) else value
        for key, value in row.items()
    }
    document["id"] = str(row["id"])
    return json.dumps(document).encode()


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = await asyncpg.create_pool(
            settings.database_url,
            min_size=1,
            max_size=settings.database_pool_size,
            init=_init_connection,
            server_settings={"search_path": SCHEMA, "application_name": SCHEMA},
        )
        try:
            yield
        finally:
            await app.state.pool.close()

    app = FastAPI(title="Casework bench baseline", lifespan=lifespan)

    @app.post("/v1/clients", status_code=201)
    async def register_client(body: ClientIn, request: Request) -> Response:
        pool: asyncpg.Pool = request.app.state.pool
        now = datetime.now(UTC)
        async with pool.acquire() as connection, connection.transaction():
            row = await connection.fetchrow(
                _INSERT_CLIENT,
                uuid4(),
                body.given_name,
                body.family_name,
                body.birth_date,
                body.preferred_language,
                now,
            )
            assert row is not None
            await connection.execute(
                _INSERT_OUTBOX,
                uuid4(),
                ClientRegistered.aggregate_type,
                str(row["id"]),
                ClientRegistered.event_type,
                ClientRegistered.topic,
                {
                    "client_id": str(row["id"]),
                    "preferred_language": row["preferred_language"],
                    "registered_at": row["created_at"].isoformat(),
                },
                {},
                now,
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
