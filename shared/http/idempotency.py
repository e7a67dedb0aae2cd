"""`Idempotency-Key` on creating POSTs: the key, the request's fingerprint and the response are
stored in the same transaction as the effect, so a retried request replays the first answer.

A stored response can hold a whole client record, so keys live only as long as a client could
sensibly retry (`idempotency_ttl_hours`, 24 by default): an expired key is treated as new, and
the worker purges expired rows (`purge_expired`)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Annotated, Any
from uuid import UUID

import asyncpg
from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from shared.auth.principal import Principal
from shared.http.problems import ProblemError


@dataclass(frozen=True)
class SuppliedKey:
    """The `Idempotency-Key` a request sent, and how long this service keeps such keys."""

    value: str
    ttl_seconds: float


async def supplied_key(
    request: Request,
    key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=200,
            description="Send the same key when retrying a create (within 24 hours): the first "
            "response is replayed and nothing is created twice.",
        ),
    ] = None,
) -> SuppliedKey | None:
    if key is None:
        return None
    return SuppliedKey(key, request.app.state.settings.idempotency_ttl_hours * 3600)


IdempotencyKey = Annotated[SuppliedKey | None, Depends(supplied_key)]


@dataclass(frozen=True)
class StoredResponse:
    status_code: int
    body: dict[str, Any]

    def replay(self, headers: dict[str, str]) -> JSONResponse:
        """The first answer again, with the headers that go with it (Location, ETag)."""
        return JSONResponse(self.body, status_code=self.status_code, headers=headers)


def fingerprint(request_body: BaseModel) -> str:
    return hashlib.sha256(request_body.model_dump_json().encode()).hexdigest()


# A new key, or an expired one taken over as new; an unexpired key is left alone (no row back).
_CLAIM = """
INSERT INTO idempotency_keys (key, fingerprint) VALUES ($1, $2)
ON CONFLICT (key) DO UPDATE
    SET fingerprint = EXCLUDED.fingerprint, status_code = NULL, response_body = NULL,
        created_at = now()
    WHERE idempotency_keys.created_at < now() - make_interval(secs => $3)
RETURNING 1
"""


async def claim(
    connection: asyncpg.Connection,
    *,
    key: str,
    scope: str,
    request_fingerprint: str,
    ttl_seconds: float,
) -> StoredResponse | None:
    """Reserve the key (blocking while a concurrent request holds it) or return its response."""
    scoped_key = f"{scope}:{key}"
    if await connection.fetchval(_CLAIM, scoped_key, request_fingerprint, ttl_seconds):
        return None
    row = await connection.fetchrow(
        "SELECT fingerprint, status_code, response_body FROM idempotency_keys WHERE key = $1",
        scoped_key,
    )
    if row["fingerprint"] != request_fingerprint:
        raise ProblemError(
            422,
            "idempotency-key-reused",
            "Idempotency-Key reused with a different request",
            detail="This key was already used for a request with another body; use a new key.",
        )
    return StoredResponse(status_code=row["status_code"], body=row["response_body"])


async def remember(
    connection: asyncpg.Connection, *, key: str, scope: str, status_code: int, body: dict[str, Any]
) -> None:
    await connection.execute(
        "UPDATE idempotency_keys SET status_code = $2, response_body = $3 WHERE key = $1",
        f"{scope}:{key}",
        status_code,
        body,
    )


def key_scope(operation: str, caller: Principal, target: UUID | None) -> str:
    """What keeps keys apart: the operation, the caller's organisation *and* subject (a `sub`
    is unique only within its identity provider's organisation), and the target record. JSON,
    so no value containing a separator can be mistaken for another combination."""
    return json.dumps(
        [operation, caller.organization_id, caller.subject, str(target) if target else None],
        separators=(",", ":"),
    )


@dataclass(frozen=True)
class IdempotentCreate:
    """One creating request and its Idempotency-Key (None: none was sent), scoped by
    `key_scope`: a key never replays a response given to someone else (in this or another
    organisation) or about another record."""

    key: SuppliedKey | None
    operation: str
    caller: Principal
    request: BaseModel
    target: UUID | None = None

    @property
    def scope(self) -> str:
        return key_scope(self.operation, self.caller, self.target)

    async def previous(self, connection: asyncpg.Connection) -> StoredResponse | None:
        """The first answer to this key (blocking while a concurrent request holds it), or
        None after reserving the key for this request."""
        if self.key is None:
            return None
        return await claim(
            connection,
            key=self.key.value,
            scope=self.scope,
            request_fingerprint=fingerprint(self.request),
            ttl_seconds=self.key.ttl_seconds,
        )

    async def remember(
        self, connection: asyncpg.Connection, created: BaseModel, status_code: int = 201
    ) -> None:
        if self.key is not None:
            await remember(
                connection,
                key=self.key.value,
                scope=self.scope,
                status_code=status_code,
                body=created.model_dump(mode="json"),
            )


async def purge_expired(connection: asyncpg.Connection, *, ttl_hours: float) -> int:
    """Delete the keys (and the responses they hold) older than the time to live."""
    status: str = await connection.execute(
        "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(secs => $1)",
        ttl_hours * 3600,
    )
    return int(status.split()[-1])
