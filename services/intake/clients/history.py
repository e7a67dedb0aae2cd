"""A client's field-level history: every change, who made it, each field's old and new value."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
from pydantic import BaseModel, Field

from shared.http.pagination import Keyset


class FieldChange(BaseModel):
    from_: Any = Field(alias="from", description="The value before the change (null: none).")
    to: Any = Field(description="The value after the change (null: removed).")

    model_config = {"populate_by_name": True, "serialize_by_alias": True}


class ClientChange(BaseModel):
    id: UUID
    version: int = Field(description="The record's version this change produced.")
    changed_by: str = Field(description="User id of who made the change.")
    changed_at: datetime
    changes: dict[str, FieldChange] = Field(
        description="Field name -> its value before and after.",
        examples=[{"preferred_language": {"from": "es", "to": "sw"}}],
    )


async def list_changes(
    connection: asyncpg.Connection, *, client_id: UUID, after: Keyset | None, limit: int
) -> list[ClientChange]:
    """Newest first, keyset-paginated on (changed_at, id)."""
    rows = await connection.fetch(
        "SELECT id, version, changed_by, changed_at, changes FROM client_changes "
        "WHERE client_id = $1 AND ($2::timestamptz IS NULL OR (changed_at, id) < ($2, $3)) "
        "ORDER BY changed_at DESC, id DESC LIMIT $4",
        client_id,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
    return [ClientChange.model_validate(dict(row)) for row in rows]
