"""The connection pool a service runs on: raw asyncpg, for the hot paths measured in bench/.

Two rules keep a service answering under any request pattern: a request holds at most one
pooled connection at a time, and acquiring one waits at most `acquire_timeout` seconds
(`DatabaseUnavailable`, answered with 503 and Retry-After). Work that must outlive a
transaction's rollback, such as auditing a refusal, rides on the exception
(`defer_after_rollback`) and is written on the same connection right after the rollback.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

AfterRollback = Callable[[asyncpg.Connection], Awaitable[None]]
_DEFERRED = "_casework_after_rollback"

# What a lost or refusing database raises: an outage (503), not a bug (500).
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08: the connection is gone or refused
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
)


class DatabaseUnavailable(Exception):
    """No connection within the acquire timeout, or the server is unreachable: retry later."""

    def __init__(self, reason: str, retry_after_seconds: int = 2) -> None:
        super().__init__(reason)
        self.retry_after_seconds = retry_after_seconds


def defer_after_rollback(error: BaseException, work: AfterRollback) -> None:
    """Attach work to an error: whoever rolls back the transaction the error aborts runs it
    afterwards, on the same connection, in a transaction of its own."""
    pending: list[AfterRollback] = getattr(error, _DEFERRED, [])
    pending.append(work)
    setattr(error, _DEFERRED, pending)


def take_deferred(error: BaseException) -> list[AfterRollback]:
    """The work attached to an error, once: the caller is now responsible for running it."""
    pending: list[AfterRollback] = getattr(error, _DEFERRED, [])
    if pending:
        setattr(error, _DEFERRED, [])
    return pending


async def run_deferred(connection: asyncpg.Connection, pending: list[AfterRollback]) -> None:
    async with connection.transaction():
        for work in pending:
            await work(connection)


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

    def __init__(
        self, dsn: str, *, schema: str, pool_size: int = 10, acquire_timeout: float = 5.0
    ) -> None:
        self.dsn = dsn
        self.schema = schema
        self.pool_size = pool_size
        self.acquire_timeout = acquire_timeout
        self._pool: asyncpg.Pool | None = None
        # For liveness: when a connection was last handed out, and since when every
        # attempt has timed out (None while acquisitions succeed).
        self.last_acquired = time.monotonic()
        self.starved_since: float | None = None

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
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection, waiting at most `acquire_timeout` for it."""
        try:
            connection = await self.pool.acquire(timeout=self.acquire_timeout)
        except TimeoutError:
            if self.starved_since is None:
                self.starved_since = time.monotonic()
            raise DatabaseUnavailable("no database connection free in time") from None
        except UNAVAILABLE_ERRORS as error:
            raise DatabaseUnavailable("the database is unreachable") from error
        self.starved_since = None
        self.last_acquired = time.monotonic()
        try:
            yield connection
        finally:
            await self.pool.release(connection)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection inside one transaction: committed on success, rolled back on any error.
        Work deferred on the error (`defer_after_rollback`) then runs on the same connection."""
        async with self.connection() as connection:
            try:
                async with connection.transaction():
                    yield connection
            except Exception as error:
                pending = take_deferred(error)
                if pending and not connection.is_closed():
                    await run_deferred(connection, pending)
                raise

    async def run_deferred(self, error: BaseException) -> None:
        """Run what an error raised outside any transaction carries (a refusal before the
        request took a connection), in a transaction of its own."""
        pending = take_deferred(error)
        if pending:
            async with self.connection() as connection:
                await run_deferred(connection, pending)

    def is_starved(self, longer_than: float) -> bool:
        """Every acquisition has timed out for `longer_than` seconds: the service cannot answer."""
        return (
            self.starved_since is not None
            and time.monotonic() - self.starved_since > longer_than
            and time.monotonic() - self.last_acquired > longer_than
        )

    async def connect_dedicated(
        self, server_settings: dict[str, str] | None = None
    ) -> asyncpg.Connection:
        """A connection outside the pool, for LISTEN and session-level advisory locks."""
        connection: asyncpg.Connection = await asyncpg.connect(
            self.dsn,
            server_settings={
                "search_path": f"{self.schema}, extensions",
                **(server_settings or {}),
            },
        )
        await _init_connection(connection)
        return connection

    async def is_reachable(self, timeout: float = 0.8) -> bool:
        try:
            async with self.pool.acquire(timeout=timeout) as connection:
                await connection.fetchval("SELECT 1", timeout=timeout)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return False
        return True
