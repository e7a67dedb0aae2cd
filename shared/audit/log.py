"""The audit trail: who read or changed (or tried to) which record, when, from where and why.

Append-only: the service's role may insert but not update or delete (its migration revokes
those rights). Tamper-evident, even against a database superuser: each row carries an
HMAC-SHA256 over its content and the previous row's hash in the same chain, under a key only
the services hold (shared/audit/keys.py), and the worker publishes signed checkpoints of every
chain head (shared/audit/checkpoints.py), so deleting a chain's newest rows shows too. Rows are
spread over a few chains so that concurrent requests do not all queue on one lock; within a
chain an advisory lock held until commit makes insertion order, `seq` order and commit order
the same. `casework audit-verify` checks it all (shared/audit/verify.py).
Each record is also published (ids only) to the `casework.audit` topic through the outbox.
"""

from __future__ import annotations

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
from sqlalchemy.schema import SchemaItem

from shared.audit.keys import ChainKeys
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


def _columns_v1() -> list[SchemaItem]:
    """The table as migration v1 created it (frozen: later versions add to it)."""
    return [
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
    ]


def _audit_log_table_v1(metadata: MetaData) -> Table:
    return Table("audit_log", metadata, *_columns_v1())


def audit_log_table(metadata: MetaData) -> Table:
    """The table as the code uses it. v2: `key_id`, the HMAC key that sealed the row (null:
    a row from before keys, chained with plain SHA-256)."""
    return Table("audit_log", metadata, *_columns_v1(), Column("key_id", Text))


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
        values = {name: getattr(self, name) for name in ENTRY_FIELDS}
        values["id"] = str(self.id)
        values["client_id"] = str(self.client_id) if self.client_id else None
        values["occurred_at"] = self.occurred_at.astimezone(UTC).isoformat()
        values["actor_roles"] = sorted(self.actor_roles)
        return json.dumps(values, sort_keys=True, separators=(",", ":")).encode()


ENTRY_FIELDS = tuple(AuditEntry.__dataclass_fields__)


def lock_namespace(schema: str) -> int:
    return zlib.crc32(f"casework-audit:{schema}".encode()) - 2**31  # a signed int4


# Two round trips for any number of entries, in the caller's transaction. First
# `audit_chain_claim` locks a chain, then reads its head with a fresh snapshot (a volatile
# function's statements each get one), so it sees the last commit. The hashes are computed
# here, where the key is, and the second statement inserts the rows in order.
_CLAIM = "SELECT chain, head FROM audit_chain_claim($1, $2, $3)"
_INSERT = """
INSERT INTO audit_log (id, chain, occurred_at, actor_id, actor_roles, actor_organization_id,
    action, resource_type, resource_id, client_id, outcome, request_id, source_address, purpose,
    break_glass_reason, prev_hash, hash, key_id)
SELECT e.id, $1, e.occurred_at, e.actor_id,
    ARRAY(SELECT jsonb_array_elements_text(e.actor_roles::jsonb)), e.actor_organization_id,
    e.action, e.resource_type, e.resource_id, e.client_id, e.outcome, e.request_id,
    e.source_address, e.purpose, e.break_glass_reason, e.prev_hash, e.hash, $2
FROM unnest($3::uuid[], $4::timestamptz[], $5::text[], $6::text[], $7::text[], $8::text[],
            $9::text[], $10::text[], $11::uuid[], $12::text[], $13::text[], $14::text[],
            $15::text[], $16::text[], $17::text[], $18::text[])
    WITH ORDINALITY AS e(id, occurred_at, actor_id, actor_roles, actor_organization_id,
                         action, resource_type, resource_id, client_id, outcome, request_id,
                         source_address, purpose, break_glass_reason, prev_hash, hash, n)
ORDER BY e.n
"""


class AuditLog:
    """A service's audit trail: where its rows go and the key that seals them."""

    def __init__(self, *, schema: str, keys: ChainKeys) -> None:
        self.schema = schema
        self.keys = keys

    async def record(self, uow: UnitOfWork, entries: list[AuditEntry]) -> None:
        """Append entries inside the caller's transaction, all on one chain, and publish them.
        Call it last: the chain's lock is held until the transaction ends."""
        await append(uow.connection, schema=self.schema, keys=self.keys, entries=entries)
        uow.publish(*(_published(self.schema, entry) for entry in entries))


async def append(
    connection: asyncpg.Connection, *, schema: str, keys: ChainKeys, entries: list[AuditEntry]
) -> None:
    """The rows alone (`AuditLog.record` is what a service calls)."""
    if not entries:
        return
    written = written_in_request.get()
    if written is not None:
        written.append(len(entries))
    if not connection.is_in_transaction():
        # The chain's lock lasts until the transaction ends: without one, another append
        # could read the same head between our two statements and fork the chain.
        raise RuntimeError("audit rows are appended inside a transaction")
    chain, head = await connection.fetchrow(
        _CLAIM, lock_namespace(schema), entries[0].id.int % CHAINS, CHAINS
    )
    prev_hashes: list[str] = []
    hashes: list[str] = []
    previous: str = head or GENESIS
    for entry in entries:
        prev_hashes.append(previous)
        previous = keys.seal(previous, entry.canonical())
        hashes.append(previous)
    columns: list[list[Any]] = [
        [getattr(entry, name) for entry in entries] for name in ENTRY_FIELDS
    ]
    # Postgres arrays are rectangular: each entry's roles travel as one text (a JSON array).
    roles = ENTRY_FIELDS.index("actor_roles")
    columns[roles] = [json.dumps(entry.actor_roles) for entry in entries]
    await connection.execute(_INSERT, chain, keys.current_id, *columns, prev_hashes, hashes)


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


ENTRY_COLUMNS = ", ".join(ENTRY_FIELDS)


def entry_from_row(row: asyncpg.Record) -> AuditEntry:
    return AuditEntry(**{name: row[name] for name in ENTRY_FIELDS})


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
    create_tables(connection, schema, _audit_log_table_v1)
    connection.exec_driver_sql(chain_head_function(schema))
    connection.exec_driver_sql(
        f'REVOKE UPDATE, DELETE, TRUNCATE ON "{schema}".audit_log FROM "{service_role(schema)}"'
    )


def chain_claim_function(schema: str) -> str:
    """The DDL of `audit_chain_claim`: lock the first free chain from `preferred` on (a chain
    already held by this transaction counts as free), or wait for `preferred` when all are
    busy; return it and its newest hash. The HMAC append holds a chain's lock for one round
    trip longer than the SQL-hashed append did; taking a free chain instead of queueing on a
    busy one keeps that from turning into lock waits under load."""
    return f"""
        CREATE FUNCTION "{schema}".audit_chain_claim(
            namespace integer, preferred integer, chains integer
        ) RETURNS TABLE (chain integer, head text) LANGUAGE plpgsql VOLATILE AS $$
        DECLARE
            candidate integer := preferred;
        BEGIN
            FOR step IN 0 .. chains - 1 LOOP
                candidate := (preferred + step) % chains;
                EXIT WHEN pg_try_advisory_xact_lock(namespace, candidate);
                candidate := NULL;
            END LOOP;
            IF candidate IS NULL THEN
                candidate := preferred;
                PERFORM pg_advisory_xact_lock(namespace, candidate);
            END IF;
            RETURN QUERY SELECT candidate, (SELECT a.hash FROM "{schema}".audit_log a
                WHERE a.chain = candidate ORDER BY a.seq DESC LIMIT 1);
        END $$
        """


def upgrade_audit_log_v2(connection: Connection, schema: str) -> None:
    """For a service's migration: `key_id` on every row from now on (the rows already there
    keep null: legacy SHA-256, still verified), and the chain claim the HMAC append uses."""
    connection.exec_driver_sql(f'ALTER TABLE "{schema}".audit_log ADD COLUMN key_id text')
    connection.exec_driver_sql(chain_claim_function(schema))


def downgrade_audit_log_v2(connection: Connection, schema: str) -> None:
    connection.exec_driver_sql(
        f'DROP FUNCTION "{schema}".audit_chain_claim(integer, integer, integer)'
    )
    connection.exec_driver_sql(f'ALTER TABLE "{schema}".audit_log DROP COLUMN key_id')
