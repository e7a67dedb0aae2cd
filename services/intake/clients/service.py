"""The client registry: registration, reading, listing and changing client records, each
write with its access facts, its change history and its events in one unit of work."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg
from pydantic import ValidationError

from services.intake.clients.models import ClientFields, ClientPublic, ClientUpdate, digits
from services.intake.clients.search import first_token, last_token, name_key
from shared.auth.facts import record_registration
from shared.auth.principal import Principal
from shared.events.contracts import ClientRegistered, ClientUpdated
from shared.http.merge_patch import merge_patch
from shared.messaging.outbox import UnitOfWork

# Stored as given; what the API shows (ClientPublic) in this order.
RECORD_FIELDS = (
    "given_name", "family_name", "other_names", "name_data_quality", "birth_date",
    "birth_date_quality", "sex", "gender_identity", "race_ethnicity", "preferred_language",
    "interpreter_needed", "phone", "email", "address", "household_members", "identifiers",
)  # fmt: skip
JSON_FIELDS = {"address", "household_members", "identifiers"}
_PUBLIC = ", ".join(
    f"c.{field}" for field in (*RECORD_FIELDS, "id", "version", "created_at", "updated_at")
)


class InconsistentRecord(Exception):
    """A change that would leave the record invalid; carries pydantic's errors."""

    def __init__(self, error: ValidationError) -> None:
        super().__init__(str(error))
        self.errors = error.errors()


def patched(current: ClientPublic, patch: ClientUpdate) -> ClientFields:
    """The record after a JSON merge patch (RFC 7396): nested objects (the address) merge,
    `null` removes a value (a list becomes empty), lists are replaced whole. The result must
    be a valid record as a whole (e.g. a name removed needs a data quality saying why)."""
    record = current.model_dump(mode="json", include=set(RECORD_FIELDS))
    changed = merge_patch(record, patch.model_dump(mode="json", exclude_unset=True))
    for name in RECORD_FIELDS:
        if name not in changed:  # removed by null: what a record without it holds
            field = ClientFields.model_fields[name]
            changed[name] = (
                None if field.is_required() else field.get_default(call_default_factory=True)
            )
    try:
        return ClientFields.model_validate(changed)
    except ValidationError as error:
        raise InconsistentRecord(error) from error


def postal_area(postal_code: str | None) -> str | None:
    return postal_code.replace(" ", "")[:3] if postal_code else None


def _values(data: ClientFields) -> dict[str, Any]:
    """The stored form of the recorded fields, plus the derived search keys."""
    values = data.model_dump(mode="json", include=set(RECORD_FIELDS))
    values["birth_date"] = data.birth_date
    values["postal_code"] = data.address.postal_code if data.address else None
    values["name_key"] = name_key(data.given_name, data.family_name)
    values["given_first"] = first_token(data.given_name)
    values["family_last"] = last_token(data.family_name)
    values["phone_digits"] = digits(data.phone)
    return values


_STORED = (*RECORD_FIELDS, "postal_code", "name_key", "phone_digits")
_INSERT = (
    "INSERT INTO clients AS c (id, created_at, updated_at, given_phonetic, family_phonetic, "
    + ", ".join(_STORED)
    + ") VALUES ($1, $2, $2, dmetaphone($3), dmetaphone($4), "
    + ", ".join(f"${n}" for n in range(5, 5 + len(_STORED)))
    + f") RETURNING {_PUBLIC}"
)


def _public(row: asyncpg.Record) -> ClientPublic:
    return ClientPublic.model_validate(dict(row))


async def register_client(
    uow: UnitOfWork, *, data: ClientFields, registered_by: Principal
) -> ClientPublic:
    values = _values(data)
    row = await uow.connection.fetchrow(
        _INSERT,
        uuid4(),
        datetime.now(UTC),
        values["given_first"],
        values["family_last"],
        *(values[field] for field in _STORED),
    )
    client = _public(row)
    await record_registration(
        uow.connection,
        client_id=client.id,
        organization_id=registered_by.organization_id,
        team_id=registered_by.team_id,
        registered_by=registered_by.subject,
    )
    uow.publish(
        ClientRegistered(
            client_id=client.id,
            preferred_language=client.preferred_language,
            interpreter_needed=client.interpreter_needed,
            postal_area=postal_area(values["postal_code"]),
            registered_at=client.created_at,
            organization_id=registered_by.organization_id,
            team_id=registered_by.team_id,
            registered_by=registered_by.subject,
        )
    )
    return client


async def get_client(connection: asyncpg.Connection, *, client_id: UUID) -> ClientPublic | None:
    row = await connection.fetchrow(f"SELECT {_PUBLIC} FROM clients c WHERE c.id = $1", client_id)
    return _public(row) if row else None


async def list_clients(
    connection: asyncpg.Connection,
    *,
    visible: tuple[str, list[str]],
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> list[ClientPublic]:
    """Newest first, keyset-paginated on (created_at, id), filtered to what the caller may see."""
    clause, parameters = visible
    n = len(parameters)
    rows = await connection.fetch(
        f"SELECT {_PUBLIC} FROM clients c JOIN client_access a ON a.client_id = c.id "
        f"WHERE {clause} AND (${n + 1}::timestamptz IS NULL "
        f"OR (c.created_at, c.id) < (${n + 1}, ${n + 2})) "
        f"ORDER BY c.created_at DESC, c.id DESC LIMIT ${n + 3}",
        *parameters,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
    return [_public(row) for row in rows]


class StaleVersion(Exception):
    """The record changed since the version the caller based its change on."""


async def update_client(
    uow: UnitOfWork, *, current: ClientPublic, changed: ClientFields, changed_by: Principal
) -> ClientPublic:
    """Write `changed` over `current` if nobody else changed it meanwhile (optimistic lock)."""
    before = current.model_dump(mode="json", include=set(RECORD_FIELDS))
    after = changed.model_dump(mode="json", include=set(RECORD_FIELDS))
    changes = {
        field: {"from": before[field], "to": after[field]}
        for field in RECORD_FIELDS
        if before[field] != after[field]
    }
    if not changes:
        return current
    values = _values(changed)
    assignments = ", ".join(f"{field} = ${n}" for n, field in enumerate(_STORED, start=5))
    row = await uow.connection.fetchrow(
        f"UPDATE clients AS c SET version = c.version + 1, updated_at = now(), "
        f"given_phonetic = dmetaphone($3), family_phonetic = dmetaphone($4), {assignments} "
        f"WHERE c.id = $1 AND c.version = $2 RETURNING {_PUBLIC}",
        current.id,
        current.version,
        values["given_first"],
        values["family_last"],
        *(values[field] for field in _STORED),
    )
    if row is None:
        raise StaleVersion
    updated = _public(row)
    await uow.connection.execute(
        "INSERT INTO client_changes (id, client_id, version, changed_by, changed_at, changes) "
        "VALUES ($1, $2, $3, $4, $5, $6)",
        uuid4(),
        updated.id,
        updated.version,
        changed_by.subject,
        updated.updated_at,
        json.loads(json.dumps(changes, default=str)),
    )
    uow.publish(
        ClientUpdated(
            client_id=updated.id,
            version=updated.version,
            changed_fields=sorted(changes),
            preferred_language=updated.preferred_language,
            interpreter_needed=updated.interpreter_needed,
            postal_area=postal_area(values["postal_code"]),
            updated_at=updated.updated_at,
        )
    )
    return updated
