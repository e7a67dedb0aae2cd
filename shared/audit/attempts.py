"""Unauthenticated and malformed attempts, aggregated per source address and minute.

Auditing each attempt in full (a hash-chained row, an outbox row, a Kafka message) let an
anonymous caller amplify every request into three writes: 300 requests in 1.2 s were 300 of
each. Now the first attempt of a (source, minute) is audited in full, so the trail and the SIEM
feed still show that it happened, from where, on which route and with which request id; every
later attempt of that minute only increments the minute's counter (one UPSERT, no chain lock, no
event). Together with the per-source rate limit checked before this, an anonymous flood costs
at most a bounded number of small writes.

The counter rows are not hash-chained: they say how much, the chained first record says that.
The audit record never carries the raw path (caller-chosen text, possibly hostile), only the
route template the request matched, e.g. `GET /v1/clients/{client_id}`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Column, DateTime, Integer, MetaData, PrimaryKeyConstraint, Table, Text
from sqlalchemy.engine import Connection

from shared.audit.log import AuditEntry, AuditLog, Outcome, written_in_request
from shared.db.database import Database
from shared.db.metadata import create_tables
from shared.messaging.outbox import unit_of_work

MALFORMED_ROUTE = "(malformed request)"
UNMATCHED_ROUTE = "(no such route)"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def unauthenticated_attempts_table(metadata: MetaData) -> Table:
    return Table(
        "unauthenticated_attempts",
        metadata,
        Column("source_address", Text, nullable=False),
        Column("minute", DateTime(timezone=True), nullable=False),
        Column("attempts", Integer, nullable=False),
        Column("first_request_id", Text),
        PrimaryKeyConstraint("source_address", "minute"),
    )


def create_unauthenticated_attempts_v1(connection: Connection, schema: str) -> None:
    """For a service's migration."""
    create_tables(connection, schema, unauthenticated_attempts_table)


def action(method: str, route: str) -> str:
    """What the trail says was attempted: never the caller's raw path or method."""
    return f"{method if method in _METHODS else 'OTHER'} {route}"


_COUNT = """
INSERT INTO unauthenticated_attempts AS a (source_address, minute, attempts, first_request_id)
VALUES ($1, $2, 1, $3)
ON CONFLICT (source_address, minute) DO UPDATE SET attempts = a.attempts + 1
RETURNING a.attempts
"""


async def record_attempt(
    database: Database,
    *,
    audit_log: AuditLog,
    action: str,
    source_address: str | None,
    request_id: str | None,
    now: datetime | None = None,
) -> None:
    """Count an attempt without a valid token; the first of its minute is audited in full."""
    written = written_in_request.get()
    if written is not None:
        written.append(0)  # counted: the request's refusal needs no other record
    moment = now or datetime.now(UTC)
    minute = moment.replace(second=0, microsecond=0)
    async with unit_of_work(database) as uow:
        attempts = await uow.connection.fetchval(
            _COUNT, source_address or "unknown", minute, request_id
        )
        if attempts == 1:
            entry = AuditEntry.new(
                actor_id=None,
                actor_roles=[],
                actor_organization_id=None,
                action=action,
                resource_type="request",
                resource_id=None,
                client_id=None,
                outcome=Outcome.UNAUTHENTICATED,
                request_id=request_id,
                source_address=source_address,
                purpose=None,
                break_glass_reason=None,
            )
            await audit_log.record(uow, [entry])
