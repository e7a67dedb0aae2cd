"""`Idempotency-Key` on creating POSTs: the key, the request's fingerprint and the response are
stored in the same transaction as the effect, so a retried request replays the first answer."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Annotated, Any
from uuid import UUID

import asyncpg
from fastapi import Header
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from shared.auth.principal import Principal
from shared.http.problems import ProblemError

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        description="Send the same key when retrying a create: the first response is replayed "
        "and nothing is created twice.",
    ),
]


@dataclass(frozen=True)
class StoredResponse:
    status_code: int
    body: dict[str, Any]

    def replay(self, headers: dict[str, str]) -> JSONResponse:
        """The first answer again, with the headers that go with it (Location, ETag)."""
        return JSONResponse(self.body, status_code=self.status_code, headers=headers)


def fingerprint(request_body: BaseModel) -> str:
    return hashlib.sha256(request_body.model_dump_json().encode()).hexdigest()


async def claim(
    connection: asyncpg.Connection, *, key: str, scope: str, request_fingerprint: str
) -> StoredResponse | None:
    """Reserve the key (blocking while a concurrent request holds it) or return its response."""
    scoped_key = f"{scope}:{key}"
    inserted = await connection.execute(
        "INSERT INTO idempotency_keys (key, fingerprint) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        scoped_key,
        request_fingerprint,
    )
    if inserted == "INSERT 0 1":
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

    key: str | None
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
            key=self.key,
            scope=self.scope,
            request_fingerprint=fingerprint(self.request),
        )

    async def remember(
        self, connection: asyncpg.Connection, created: BaseModel, status_code: int = 201
    ) -> None:
        if self.key is not None:
            await remember(
                connection,
                key=self.key,
                scope=self.scope,
                status_code=status_code,
                body=created.model_dump(mode="json"),
            )
