"""The staff directory: reading, writing and syncing workers, always within one organisation.

Every query names the organisation first: a worker of another organisation is not there at all.
Within it, the caller's scopes for the action decide which workers they may see or change:
`organisation` all of them, `team` their own team's, `caseload` only themselves.

Every change of a worker publishes `WorkerUpdated` in the same transaction (one event per
changed worker; nothing when nothing changed), so other services (notifications: a team's
supervisors) keep their copy of the directory without ever reading planning's tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncpg

from services.planning.workers.models import WorkerFields, WorkerPublic, WorkerSync
from shared.auth.policy import Scope
from shared.auth.principal import Principal
from shared.events.planning import WorkerUpdated
from shared.messaging.outbox import UnitOfWork

_PUBLIC = (
    "worker_id, organization_id, team_id, display_name, role, languages, capacity_points, "
    "active, version, created_at, updated_at"
)
_FIELDS = ("team_id", "display_name", "role", "languages", "capacity_points", "active")


class StaleVersion(Exception):
    """The worker changed (or was created) since the version the caller based its change on."""


def _public(row: asyncpg.Record) -> WorkerPublic:
    return WorkerPublic.model_validate(dict(row))


def worker_updated(worker: WorkerPublic) -> WorkerUpdated:
    """The event of a directory change: staff data other services route by, never the name."""
    return WorkerUpdated(
        worker_id=worker.worker_id,
        organization_id=worker.organization_id,
        team_id=worker.team_id,
        role=worker.role,
        languages=worker.languages,
        active=worker.active,
        version=worker.version,
        updated_at=worker.updated_at,
    )


def in_scope(
    scopes: set[Scope], principal: Principal, *, worker_id: str, team_id: str | None
) -> bool:
    """Whether a worker of the caller's organisation is within one of the caller's scopes."""
    for scope in scopes:
        if scope in (Scope.ALL, Scope.ORGANISATION):
            return True
        if scope is Scope.TEAM and principal.team_id is not None and team_id == principal.team_id:
            return True
        if scope is Scope.CASELOAD and worker_id == principal.subject:
            return True
    return False


def scope_clause(
    scopes: set[Scope], principal: Principal, first_parameter: int
) -> tuple[str, list[Any]]:
    """The same rule as `in_scope`, as SQL over workers (alias `w`), for lists."""
    if Scope.ALL in scopes or Scope.ORGANISATION in scopes:
        return "TRUE", []
    clauses: list[str] = []
    parameters: list[Any] = []
    if Scope.TEAM in scopes and principal.team_id is not None:
        clauses.append(f"w.team_id = ${first_parameter + len(parameters)}")
        parameters.append(principal.team_id)
    if Scope.CASELOAD in scopes:
        clauses.append(f"w.worker_id = ${first_parameter + len(parameters)}")
        parameters.append(principal.subject)
    return ("(" + " OR ".join(clauses) + ")" if clauses else "FALSE"), parameters


async def get_worker(
    connection: asyncpg.Connection,
    *,
    organization_id: str,
    worker_id: str,
    lock: str | None = None,
) -> WorkerPublic | None:
    """One worker of the organisation; `lock` "update" or "share" locks the row until commit."""
    suffix = {None: "", "update": " FOR UPDATE", "share": " FOR SHARE"}[lock]
    row = await connection.fetchrow(
        f"SELECT {_PUBLIC} FROM workers WHERE organization_id = $1 AND worker_id = $2{suffix}",
        organization_id,
        worker_id,
    )
    return _public(row) if row else None


async def list_workers(
    connection: asyncpg.Connection,
    *,
    organization_id: str,
    visible: tuple[str, list[Any]],
    team_id: str | None,
    active: bool | None,
    language: str | None,
    after: str | None,
    limit: int,
) -> list[WorkerPublic]:
    """Ordered by worker id, keyset-paginated on it, filtered to what the caller may see."""
    clause, parameters = visible
    n = len(parameters) + 2
    rows = await connection.fetch(
        f"SELECT {_PUBLIC} FROM workers w WHERE w.organization_id = $1 AND {clause} "
        f"AND (${n}::text IS NULL OR w.team_id = ${n}) "
        f"AND (${n + 1}::boolean IS NULL OR w.active = ${n + 1}) "
        f"AND (${n + 2}::text IS NULL OR w.languages @> ARRAY[${n + 2}::text]) "
        f"AND (${n + 3}::text IS NULL OR w.worker_id > ${n + 3}) "
        f"ORDER BY w.worker_id LIMIT ${n + 4}",
        organization_id,
        *parameters,
        team_id,
        active,
        language,
        after,
        limit,
    )
    return [_public(row) for row in rows]


async def create_worker(
    uow: UnitOfWork, *, organization_id: str, worker_id: str, fields: WorkerFields
) -> WorkerPublic:
    row = await uow.connection.fetchrow(
        f"INSERT INTO workers (organization_id, worker_id, team_id, display_name, role, "
        f"languages, capacity_points, active, created_at, updated_at) "
        f"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now(), now()) "
        f"ON CONFLICT (organization_id, worker_id) DO NOTHING RETURNING {_PUBLIC}",
        organization_id,
        worker_id,
        fields.team_id,
        fields.display_name,
        fields.role,
        fields.languages,
        fields.capacity_points,
        fields.active,
    )
    if row is None:  # created meanwhile by someone else
        raise StaleVersion
    worker = _public(row)
    uow.publish(worker_updated(worker))
    return worker


def same_fields(current: WorkerPublic, fields: WorkerFields) -> bool:
    return current.model_dump(include=set(_FIELDS)) == fields.model_dump(include=set(_FIELDS))


async def replace_worker(
    uow: UnitOfWork, *, current: WorkerPublic, fields: WorkerFields
) -> WorkerPublic:
    """Write `fields` over `current` if nobody changed it meanwhile (optimistic lock)."""
    if same_fields(current, fields):
        return current
    row = await uow.connection.fetchrow(
        f"UPDATE workers SET team_id = $4, display_name = $5, role = $6, languages = $7, "
        f"capacity_points = $8, active = $9, version = version + 1, updated_at = now() "
        f"WHERE organization_id = $1 AND worker_id = $2 AND version = $3 RETURNING {_PUBLIC}",
        current.organization_id,
        current.worker_id,
        current.version,
        fields.team_id,
        fields.display_name,
        fields.role,
        fields.languages,
        fields.capacity_points,
        fields.active,
    )
    if row is None:
        raise StaleVersion
    worker = _public(row)
    uow.publish(worker_updated(worker))
    return worker


@dataclass
class SyncOutcome:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deactivated: list[str] = field(default_factory=list)
    unchanged: int = 0


_UPSERT = f"""
INSERT INTO workers AS w (organization_id, worker_id, team_id, display_name, role, languages,
                          capacity_points, active, created_at, updated_at)
SELECT $1, i.worker_id, i.team_id, i.display_name, i.role, i.languages, i.capacity_points,
       i.active, now(), now()
FROM jsonb_to_recordset($2::jsonb) AS i(worker_id text, team_id text, display_name text,
                                        role text, languages text[], capacity_points int,
                                        active boolean)
ORDER BY i.worker_id
ON CONFLICT (organization_id, worker_id) DO UPDATE SET
    {", ".join(f"{name} = EXCLUDED.{name}" for name in _FIELDS)},
    version = w.version + 1,
    updated_at = now()
WHERE ({", ".join(f"w.{name}" for name in _FIELDS)})
      IS DISTINCT FROM ({", ".join(f"EXCLUDED.{name}" for name in _FIELDS)})
RETURNING {", ".join(f"w.{name}" for name in _PUBLIC.split(", "))}, (w.xmax = 0) AS created
"""

_DEACTIVATE = f"""
UPDATE workers SET active = false, version = version + 1, updated_at = now()
WHERE organization_id = $1 AND active AND NOT (worker_id = ANY($2::text[]))
  AND ($3::text IS NULL OR team_id = $3)
RETURNING {_PUBLIC}
"""


async def sync_workers(uow: UnitOfWork, *, organization_id: str, sync: WorkerSync) -> SyncOutcome:
    """Upsert the listed workers into the organisation; with `deactivate_missing`, deactivate
    (never delete) its active workers absent from the list (of `sync.team_id` only, if given).
    The same list twice changes nothing (and publishes nothing) the second time."""
    connection = uow.connection
    # One sync per organisation at a time: two would interleave their deactivations.
    await connection.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('planning.workers.sync:' || $1, 0))",
        organization_id,
    )
    listed = [worker.model_dump(mode="json") for worker in sync.workers]
    outcome = SyncOutcome()
    changed: list[WorkerPublic] = []
    for row in await connection.fetch(_UPSERT, organization_id, listed) if listed else []:
        (outcome.created if row["created"] else outcome.updated).append(row["worker_id"])
        changed.append(_public(row))  # the pydantic model ignores `created`
    outcome.unchanged = len(listed) - len(outcome.created) - len(outcome.updated)
    if sync.deactivate_missing:
        rows = await connection.fetch(
            _DEACTIVATE,
            organization_id,
            [worker.worker_id for worker in sync.workers],
            sync.team_id,
        )
        outcome.deactivated = [row["worker_id"] for row in rows]
        changed += [_public(row) for row in rows]
    uow.publish(*(worker_updated(worker) for worker in changed))
    return outcome
