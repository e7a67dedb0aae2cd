"""The live stream's plumbing: stream tickets for browsers, and one LISTEN per API process.

`EventSource` cannot send an Authorization header, and a bearer token never goes in a URL
(logs, history, referrers keep URLs). So a browser first asks, with its bearer token, for a
stream ticket: random, kept only as its SHA-256, good for TICKET_SECONDS and only for the
stream of the user it was issued to, so an automatic reconnect within that time works; after
it, the page asks for another.

Each API process holds one dedicated connection that LISTENs on the inbox channel (the inbox
channel NOTIFYs at commit with the recipient's organisation and id) and wakes that
recipient's open streams, which then read what is new from the table. When the connection is
lost it is opened again and every stream is woken (they read the table, so nothing is lost).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import secrets
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta

import asyncpg
from fastapi import FastAPI
from sqlalchemy import ARRAY, Column, DateTime, MetaData, Table, Text

from services.notifications.channels import INBOX_CHANNEL
from shared.auth.principal import Principal, Role
from shared.db.database import Database

log = logging.getLogger(__name__)

TICKET_SECONDS = 60
# A comment frame this often keeps proxies from closing an idle stream; each stream also looks
# at the table then, the safety net behind NOTIFY.
PING_SECONDS = 15
Key = tuple[str, str]


def stream_tickets_table(metadata: MetaData) -> Table:
    return Table(
        "stream_tickets",
        metadata,
        Column("ticket_hash", Text, primary_key=True),
        Column("organization_id", Text, nullable=False),
        Column("user_id", Text, nullable=False),
        Column("roles", ARRAY(Text), nullable=False),
        Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
    )


def _hash(ticket: str) -> str:
    return hashlib.sha256(ticket.encode()).hexdigest()


async def issue_ticket(
    connection: asyncpg.Connection, *, principal: Principal, now: datetime
) -> tuple[str, datetime]:
    ticket = secrets.token_urlsafe(32)
    expires_at = now + timedelta(seconds=TICKET_SECONDS)
    await connection.execute("DELETE FROM stream_tickets WHERE expires_at < $1", now)
    await connection.execute(
        "INSERT INTO stream_tickets (ticket_hash, organization_id, user_id, roles, expires_at) "
        "VALUES ($1, $2, $3, $4, $5)",
        _hash(ticket),
        principal.organization_id,
        principal.subject,
        sorted(principal.roles),
        expires_at,
    )
    return ticket, expires_at


async def redeem_ticket(
    connection: asyncpg.Connection, ticket: str, *, now: datetime
) -> Principal | None:
    """Who the ticket was issued to (with the roles they had then), if it is still good."""
    row = await connection.fetchrow(
        "SELECT organization_id, user_id, roles FROM stream_tickets "
        "WHERE ticket_hash = $1 AND expires_at > $2",
        _hash(ticket),
        now,
    )
    if row is None:
        return None
    roles = frozenset(Role(role) for role in row["roles"] if role in Role.__members__.values())
    return Principal(subject=row["user_id"], roles=roles, organization_id=row["organization_id"])


class InboxBroadcaster:
    def __init__(self, database: Database) -> None:
        self.database = database
        self._streams: dict[Key, set[asyncio.Event]] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @contextlib.contextmanager
    def subscribe(self, organization_id: str, user_id: str) -> Iterator[asyncio.Event]:
        key = (organization_id, user_id)
        wake = asyncio.Event()
        self._streams.setdefault(key, set()).add(wake)
        try:
            yield wake
        finally:
            streams = self._streams.get(key, set())
            streams.discard(wake)
            if not streams:
                self._streams.pop(key, None)

    def _on_notify(self, _connection: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            organization_id, user_id = json.loads(payload)
        except (ValueError, TypeError):
            return
        for wake in self._streams.get((organization_id, user_id), ()):
            wake.set()

    def _wake_all(self) -> None:
        for streams in self._streams.values():
            for wake in streams:
                wake.set()

    async def _listen_forever(self) -> None:
        delay = 0.5
        while True:
            try:
                async with self._listening() as connection:
                    delay = 0.5
                    self._wake_all()  # whatever committed while nobody listened
                    await self._until_closed(connection)
            except asyncio.CancelledError:
                raise
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                log.warning("inbox listener lost; reconnecting", extra={"error": repr(error)})
            self._wake_all()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    @staticmethod
    async def _until_closed(connection: asyncpg.Connection) -> None:
        closed = asyncio.Event()
        connection.add_termination_listener(lambda _connection: closed.set())
        await closed.wait()

    @contextlib.asynccontextmanager
    async def _listening(self) -> AsyncIterator[asyncpg.Connection]:
        connection = await self.database.connect_dedicated()
        try:
            await connection.add_listener(INBOX_CHANNEL, self._on_notify)
            yield connection
        finally:
            with contextlib.suppress(OSError, asyncpg.InterfaceError, asyncpg.PostgresError):
                await connection.close(timeout=1.0)


@contextlib.asynccontextmanager
async def broadcasting(app: FastAPI) -> AsyncIterator[None]:
    """The API's lifespan part: one broadcaster per process."""
    broadcaster = InboxBroadcaster(app.state.database)
    app.state.inbox_broadcaster = broadcaster
    broadcaster.start()
    try:
        yield
    finally:
        await broadcaster.stop()
