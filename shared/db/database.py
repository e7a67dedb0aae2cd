"""The connection pool a service runs on: raw asyncpg, for the hot paths measured in bench/."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg


async def _init_connection(connection: asyncpg.Connection) -> None:
    for json_type in ("json", "jsonb"):
        await connection.set_type_codec(
            json_type, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )


async def _keep_session(connection: asyncpg.Connection) -> None:
    """What a released connection needs beyond asyncpg's own clean-up (which rolls back an open
    transaction): nothing. Pooled connections only ever hold transaction-scoped state
    (set_config(..., true), pg_advisory_xact_lock); LISTEN and session-level locks use
    connect_dedicated(). asyncpg's default reset would cost a round trip per request."""


def pool_options(schema: str) -> dict[str, Any]:
    """How every pool on a service's schema is set up (asyncpg.create_pool keywords)."""
    return {
        "init": _init_connection,
        "reset": _keep_session,
        "server_settings": {"search_path": f"{schema}, extensions", "application_name": schema},
    }


class Database:
    """One pool per process, bound to one service's schema through search_path."""

    def __init__(self, dsn: str, *, schema: str, pool_size: int = 10) -> None:
        self.dsn = dsn
        self.schema = schema
        self.pool_size = pool_size
        self._pool: asyncpg.Pool | None = None

    async def connect(self) -> None:
        self._pool = await asyncpg.create_pool(
            self.dsn,
            min_size=1,
            max_size=self.pool_size,
            **pool_options(self.schema),
        )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("Database.connect() has not been called")
        return self._pool

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection inside one transaction: committed on success, rolled back on any error."""
        async with self.pool.acquire() as connection, connection.transaction():
            yield connection

    async def connect_dedicated(self) -> asyncpg.Connection:
        """A connection outside the pool, for LISTEN and session-level advisory locks."""
        connection: asyncpg.Connection = await asyncpg.connect(
            self.dsn, server_settings={"search_path": f"{self.schema}, extensions"}
        )
        await _init_connection(connection)
        return connection

    async def is_reachable(self) -> bool:
        try:
            async with self.pool.acquire(timeout=2) as connection:
                await connection.fetchval("SELECT 1", timeout=2)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return False
        return True
