"""The audit trail: who read or changed (or tried to) which record, when, from where and why.

Append-only: the service's role may insert but not update or delete (its migration revokes
those rights). Tamper-evident: each row carries a SHA-256 over its content and the previous
row's hash in the same chain. Rows are spread over a few chains so that concurrent requests do
not all queue on one lock; within a chain an advisory lock held until commit makes insertion
order, `seq` order and commit order the same. `verify_chains` recomputes every chain.
Each record is also published (ids only) to the `casework.audit` topic through the outbox.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import zlib
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    MetaData,
    SmallInteger,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import UUID as PgUUID
from sqlalchemy.engine import Connection

from shared.db.metadata import create_tables
from shared.events.contracts import AuditRecorded
from shared.messaging.outbox import UnitOfWork
from shared.settings import service_role

CHAINS = 16
GENESIS = "0" * 64

# While a request runs: the audit records it has written so far, one entry per write (0 for an
# attempt only counted, see attempts.py). Set by the RefusalAuditMiddleware, which records a
# refusal nothing else did.
written_in_request: ContextVar[list[int] | None] = ContextVar("audit_written", default=None)


class Outcome:
    ALLOWED = "allowed"
    BREAK_GLASS = "break_glass"
    DENIED = "denied"
    NOT_FOUND = "not_found"
    UNAUTHENTICATED = "unauthenticated"
    DUPLICATE_SUSPECTED = "duplicate_suspected"
    PRECONDITION_FAILED = "precondition_failed"
    INVALID = "invalid"


def audit_log_table(metadata: MetaData) -> Table:
    return Table(
        "audit_log",
        metadata,
        Column("seq", BigInteger, Identity(always=True), primary_key=True),
        Column("id", PgUUID(as_uuid=True), nullable=False, unique=True),
        Column("chain", SmallInteger, nullable=False),
        Column("occurred_at", DateTime(timezone=True), nullable=False),
        Column("actor_id", Text),
        Column("actor_roles", ARRAY(Text), nullable=False),
        Column("actor_organization_id", Text),
        Column("action", Text, nullable=False),
        Column("resource_type", Text, nullable=False),
        Column("resource_id", Text),
        Column("client_id", PgUUID(as_uuid=True)),
        Column("outcome", Text, nullable=False),
        Column("request_id", Text),
        Column("source_address", Text),
        Column("purpose", Text),
        Column("break_glass_reason", Text),
        Column("prev_hash", Text, nullable=False),
        Column("hash", Text, nullable=False),
        Index("ix_audit_log_chain_seq", "chain", "seq"),
        Index("ix_audit_log_client_id_seq", "client_id", "seq"),
    )


@dataclass(frozen=True)
class AuditEntry:
    id: UUID
    occurred_at: datetime
    actor_id: str | None
    actor_roles: list[str]
    actor_organization_id: str | None
    action: str
    resource_type: str
    resource_id: str | None
    client_id: UUID | None
    outcome: str
    request_id: str | None
    source_address: str | None
    purpose: str | None
    break_glass_reason: str | None

    @classmethod
    def new(cls, **fields: Any) -> AuditEntry:
        return cls(id=uuid4(), occurred_at=datetime.now(UTC), **fields)

    def canonical(self) -> bytes:
        """The bytes the hash covers: every field, as sorted-key compact JSON."""
        values = {name: getattr(self, name) for name in _ENTRY_FIELDS}
        values["id"] = str(self.id)
        values["client_id"] = str(self.client_id) if self.client_id else None
        values["occurred_at"] = self.occurred_at.astimezone(UTC).isoformat()
        values["actor_roles"] = sorted(self.actor_roles)
        return json.dumps(values, sort_keys=True, separators=(",", ":")).encode()


_ENTRY_FIELDS = tuple(AuditEntry.__dataclass_fields__)


def chain_hash(previous: str, entry: AuditEntry) -> str:
    return hashlib.sha256(previous.encode() + entry.canonical()).hexdigest()


def _lock_namespace(schema: str) -> int:
    return zlib.crc32(f"casework-audit:{schema}".encode()) - 2**31  # a signed int4


# One round trip for any number of entries. `audit_chain_head` takes the chain's lock, then
# reads its head with a fresh snapshot (a volatile function's statements each get one), so it
# sees the last commit; each entry's hash is sha256(previous hash || canonical bytes), as in
# chain_hash, computed here in order.
_APPEND = f"""
WITH RECURSIVE entries AS (
    SELECT * FROM unnest($3::uuid[], $4::timestamptz[], $5::text[], $6::text[], $7::text[],
                         $8::text[], $9::text[], $10::text[], $11::uuid[], $12::text[],
                         $13::text[], $14::text[], $15::text[], $16::text[], $17::bytea[])
        WITH ORDINALITY AS e(id, occurred_at, actor_id, actor_roles, actor_organization_id,
                             action, resource_type, resource_id, client_id, outcome,
                             request_id, source_address, purpose, break_glass_reason,
                             canonical, n)
), chained (n, prev_hash, hash) AS (
    SELECT 0::bigint, NULL::text, coalesce(audit_chain_head($1, $2), '{GENESIS}')
    UNION ALL
    SELECT e.n, c.hash, encode(sha256(convert_to(c.hash, 'UTF8') || e.canonical), 'hex')
    FROM chained c JOIN entries e ON e.n = c.n + 1
)
INSERT INTO audit_log (id, chain, occurred_at, actor_id, actor_roles, actor_organization_id,
    action, resource_type, resource_id, client_id, outcome, request_id, source_address, purpose,
    break_glass_reason, prev_hash, hash)
SELECT e.id, $2, e.occurred_at, e.actor_id,
    ARRAY(SELECT jsonb_array_elements_text(e.actor_roles::jsonb)), e.actor_organization_id,
    e.action, e.resource_type, e.resource_id, e.client_id, e.outcome, e.request_id,
    e.source_address, e.purpose, e.break_glass_reason, c.prev_hash, c.hash
FROM entries e JOIN chained c USING (n)
ORDER BY e.n
"""


async def record(uow: UnitOfWork, *, schema: str, entries: list[AuditEntry]) -> None:
    """Append entries inside the caller's transaction, all on one chain, and publish them.
    Call it last: the chain's lock is held until the transaction ends."""
    await append(uow.connection, schema=schema, entries=entries)
    uow.publish(*(_published(schema, entry) for entry in entries))


async def append(connection: asyncpg.Connection, *, schema: str, entries: list[AuditEntry]) -> None:
    """The rows alone, in one round trip (`record` is what a service calls)."""
    if not entries:
        return
    written = written_in_request.get()
    if written is not None:
        written.append(len(entries))
    columns: list[list[Any]] = [
        [getattr(entry, name) for entry in entries] for name in _ENTRY_FIELDS
    ]
    # Postgres arrays are rectangular: each entry's roles travel as one text (a JSON array).
    roles = _ENTRY_FIELDS.index("actor_roles")
    columns[roles] = [json.dumps(entry.actor_roles) for entry in entries]
    await connection.execute(
        _APPEND,
        _lock_namespace(schema),
        entries[0].id.int % CHAINS,
        *columns,
        [entry.canonical() for entry in entries],
    )


def _published(schema: str, entry: AuditEntry) -> AuditRecorded:
    return AuditRecorded(
        audit_id=entry.id,
        service=schema,
        occurred_at=entry.occurred_at,
        actor_id=entry.actor_id,
        actor_roles=entry.actor_roles,
        actor_organization_id=entry.actor_organization_id,
        action=entry.action,
        resource_type=entry.resource_type,
        resource_id=entry.resource_id,
        client_id=entry.client_id,
        outcome=entry.outcome,
        request_id=entry.request_id,
        source_address=entry.source_address,
    )


_ENTRY_COLUMNS = (
    "id, occurred_at, actor_id, actor_roles, actor_organization_id, action, resource_type, "
    "resource_id, client_id, outcome, request_id, source_address, purpose, break_glass_reason"
)


def entry_from_row(row: asyncpg.Record) -> AuditEntry:
    return AuditEntry(**{name: row[name] for name in AuditEntry.__dataclass_fields__})


@dataclass(frozen=True)
class ChainBreak:
    chain: int
    seq: int
    reason: str


async def verify_chains(connection: asyncpg.Connection) -> list[ChainBreak]:
    """Recompute every chain of the audit_log on the connection's search_path."""
    breaks: list[ChainBreak] = []
    previous: dict[int, str] = {}
    broken: set[int] = set()
    snapshot = (
        contextlib.nullcontext()
        if connection.is_in_transaction()
        else connection.transaction(isolation="repeatable_read", readonly=True)
    )
    async with snapshot:
        cursor = connection.cursor(
            f"SELECT seq, chain, prev_hash, hash, {_ENTRY_COLUMNS} FROM audit_log ORDER BY seq"
        )
        async for row in cursor:
            chain = row["chain"]
            if chain in broken:
                continue
            expected_previous = previous.get(chain, GENESIS)
            if row["prev_hash"] != expected_previous:
                breaks.append(
                    ChainBreak(chain, row["seq"], "a row before it was removed or changed")
                )
                broken.add(chain)
            elif chain_hash(expected_previous, entry_from_row(row)) != row["hash"]:
                breaks.append(ChainBreak(chain, row["seq"], "its content was changed"))
                broken.add(chain)
            previous[chain] = row["hash"]
    return breaks


def chain_head_function(schema: str) -> str:
    """The DDL of `audit_chain_head`: lock a chain until commit, then read its newest hash."""
    return f"""
        CREATE FUNCTION "{schema}".audit_chain_head(namespace integer, chain_number integer)
        RETURNS text LANGUAGE plpgsql VOLATILE AS $$
        BEGIN
            PERFORM pg_advisory_xact_lock(namespace, chain_number);
            RETURN (SELECT hash FROM "{schema}".audit_log
                    WHERE chain = chain_number ORDER BY seq DESC LIMIT 1);
        END $$
        """


def create_audit_log_v1(connection: Connection, schema: str) -> None:
    """For a service's migration: the table, then withhold UPDATE, DELETE and TRUNCATE from
    the service's login role (the default privileges granted them on every table)."""
    create_tables(connection, schema, audit_log_table)
    connection.exec_driver_sql(chain_head_function(schema))
    connection.exec_driver_sql(
        f'REVOKE UPDATE, DELETE, TRUNCATE ON "{schema}".audit_log FROM "{service_role(schema)}"'
    )
