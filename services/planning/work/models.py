"""Due work: derived on every request from the records themselves (reviews, approvals, drafts,
transfers, crises), never stored as to-do rows that drift from them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from uuid import UUID

import asyncpg
from pydantic import BaseModel, Field

from shared.auth.principal import Principal

# Priorities: lower comes first. A crisis is always on top.
PRIORITY_CRISIS = 0
PRIORITY_OVERDUE = 1
PRIORITY_ASSIGNMENT = 2
PRIORITY_APPROVAL = 3
PRIORITY_DUE = 5


class WorkItem(BaseModel):
    kind: str = Field(examples=["review", "crisis", "unassigned_case", "approval"])
    case_id: UUID
    client_id: UUID
    subject_type: str | None = Field(description="What to act on, e.g. `review`.")
    subject_id: UUID | None
    due_at: datetime
    overdue: bool
    priority: int = Field(ge=0, description="0 is a crisis; lower comes first.")
    reason: str = Field(description="Why it is due, as a code.", examples=["review_due"])


# A source of due work: the items the caller should act on, as of `now` (the source decides
# whose items it shows whom; `GET /v1/work` keeps those overdue or due within the horizon).
# Registered in sources.py.
WorkSource = Callable[[asyncpg.Connection, Principal, datetime], Awaitable[list[WorkItem]]]
