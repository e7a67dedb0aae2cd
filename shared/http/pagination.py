"""Keyset (cursor) pagination for every list: stable under inserts, cheap at any depth."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar
from uuid import UUID

from fastapi import Query
from pydantic import BaseModel, Field

from shared.http.problems import ProblemError

MAX_PAGE_SIZE = 200
T = TypeVar("T")

Limit = Annotated[
    int, Query(ge=1, le=MAX_PAGE_SIZE, description=f"Page size, at most {MAX_PAGE_SIZE}.")
]
Cursor = Annotated[
    str | None,
    Query(max_length=500, description="`next_cursor` of the previous page; omit for the first."),
]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )


def encode_cursor(*values: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(values, default=str).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, arity: int) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as error:
        raise invalid_cursor() from error
    if not isinstance(values, list) or len(values) != arity:
        raise invalid_cursor()
    return values


Keyset = tuple[datetime, UUID]


def encode_keyset(moment: datetime, identifier: UUID) -> str:
    """The cursor after a row of a list ordered by (timestamp, id)."""
    return encode_cursor(moment.isoformat(), str(identifier))


def keyset_page(found: list[T], limit: int, keyset: Callable[[T], Keyset]) -> Page[T]:
    """A page of a keyset list fetched with `limit + 1` rows: the first `limit`, and the cursor
    after the last of them when the extra row says there is more."""
    items = found[:limit]
    more = len(found) > limit
    return Page(items=items, next_cursor=encode_keyset(*keyset(items[-1])) if more else None)


def decode_keyset(cursor: str) -> Keyset:
    """The (timestamp, id) an `encode_keyset` cursor stands for; anything else is a 400,
    never a query the database would refuse."""
    moment, identifier = decode_cursor(cursor, 2)
    if not isinstance(moment, str) or not isinstance(identifier, str):
        raise invalid_cursor()
    try:
        keyset = (datetime.fromisoformat(moment), UUID(identifier))
    except ValueError as error:
        raise invalid_cursor() from error
    if keyset[0].tzinfo is None or not 2000 <= keyset[0].year <= 9000:
        raise invalid_cursor()
    return keyset


def invalid_cursor() -> ProblemError:
    return ProblemError(
        400, "invalid-cursor", "Invalid cursor", detail="Use the next_cursor of a previous page."
    )
