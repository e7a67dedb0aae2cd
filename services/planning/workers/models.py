"""The staff directory: who may be assigned cases, in which organisation and team.

A worker is the identity provider's user (the token's `sub`) within one organisation: the same
`sub` in two organisations is two people, so the key is (organization_id, worker_id). These are
staff records, not client data: a display name, languages spoken, capacity, active or not.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    model_validator,
)
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY

from services.planning.cases.models import UserId
from shared.languages import LanguageCode
from shared.text import ShortText

MAX_LANGUAGES = 20
MAX_CAPACITY_POINTS = 10_000
MAX_SYNC_WORKERS = 500


def _distinct(values: list[str]) -> list[str]:
    if len(set(values)) != len(values):
        raise ValueError("must not repeat a language")
    return values


# What the organisation has the worker do: supervisors of a team decide its approvals and receive
# its escalations (notifications finds them through `WorkerUpdated`). What a caller may do in the
# API is still their token's role; this is the directory's record of it, for other services.
WorkerRole = Literal["caseworker", "supervisor"]

TeamId = ShortText
DisplayName = ShortText
Languages = Annotated[
    list[LanguageCode], Field(max_length=MAX_LANGUAGES), AfterValidator(_distinct)
]
CapacityPoints = Annotated[
    int,
    Field(ge=0, le=MAX_CAPACITY_POINTS, description="How much casework the worker can carry."),
]

# A worker id in a path: the identity provider's `sub`, as the token carries it.
WORKER_ID_PATTERN = r"^[^\s\x00-\x1f\x7f-\x9f](?:[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f])?$"


class WorkerFields(BaseModel):
    """What the directory records about a worker (PUT replaces all of it)."""

    model_config = ConfigDict(extra="forbid")

    team_id: TeamId | None = Field(
        description="The worker's team; a worker without a team cannot be assigned cases."
    )
    display_name: DisplayName = Field(description="The staff member's name, as colleagues see it.")
    role: WorkerRole = Field(
        default="caseworker",
        description="`supervisor`: decides the team's approvals and receives its escalations.",
    )
    languages: Languages = Field(
        default_factory=list, description="Languages the worker works in (ISO 639-1 or 639-3)."
    )
    capacity_points: CapacityPoints = 0
    active: bool = Field(default=True, description="Only active workers can be assigned cases.")


class WorkerPatch(BaseModel):
    """JSON merge-patch semantics: only the fields present change (send the ETag in If-Match)."""

    model_config = ConfigDict(extra="forbid")

    team_id: TeamId | None = None
    display_name: DisplayName | None = None
    role: WorkerRole | None = None
    languages: Languages | None = None
    capacity_points: CapacityPoints | None = None
    active: bool | None = None

    @model_validator(mode="after")
    def _required_stay_present(self) -> Self:
        for name in ("display_name", "role", "languages", "capacity_points", "active"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be removed, only changed")
        return self


class SyncedWorker(WorkerFields):
    worker_id: UserId = Field(description="The identity provider's user id (the token's `sub`).")


class WorkerSync(BaseModel):
    """The identity provider's view of the caller's organisation (or a part of it)."""

    model_config = ConfigDict(extra="forbid")

    workers: list[SyncedWorker] = Field(max_length=MAX_SYNC_WORKERS)
    deactivate_missing: bool = Field(
        default=False,
        description="Deactivate (never delete) the workers absent from the list: of the whole "
        "organisation, or only of `team_id` when it is given.",
    )
    team_id: TeamId | None = Field(
        default=None,
        description="The list is this whole team (every listed worker must be of it): a large "
        "organisation syncs team by team, within the request size limit.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        ids = [worker.worker_id for worker in self.workers]
        if len(set(ids)) != len(ids):
            raise ValueError("each worker_id may appear only once")
        if self.team_id is not None and any(w.team_id != self.team_id for w in self.workers):
            raise ValueError("every listed worker must be of team_id")
        if self.deactivate_missing and not self.workers:
            # An identity provider's glitch must not deactivate everyone at once.
            raise ValueError("deactivate_missing needs a list: deactivate workers one by one")
        return self


class WorkerSyncResult(BaseModel):
    created: int
    updated: int
    deactivated: int
    unchanged: int


class WorkerPublic(BaseModel):
    worker_id: str
    organization_id: str
    team_id: str | None
    display_name: str
    role: WorkerRole
    languages: list[str]
    capacity_points: int
    active: bool
    version: int = Field(description="Increases with every change; the ETag carries it.")
    created_at: datetime
    updated_at: datetime


def workers_table(metadata: MetaData) -> Table:
    return Table(
        "workers",
        metadata,
        Column("organization_id", Text, nullable=False),
        Column("worker_id", Text, nullable=False, comment="the identity provider's user id"),
        Column("team_id", Text),
        Column("display_name", Text, nullable=False),
        Column("role", Text, nullable=False, server_default=text("'caseworker'")),
        Column("languages", ARRAY(Text), nullable=False, server_default=text("'{}'::text[]")),
        Column("capacity_points", Integer, nullable=False, server_default=text("0")),
        Column("active", Boolean, nullable=False, server_default=text("true")),
        Column("version", Integer, nullable=False, server_default=text("1")),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
        PrimaryKeyConstraint("organization_id", "worker_id"),
        CheckConstraint("capacity_points >= 0", name="capacity_points"),
        CheckConstraint("role IN ('caseworker', 'supervisor')", name="role"),
        Index(
            "ix_workers_organization_id_team_id_worker_id",
            "organization_id",
            "team_id",
            "worker_id",
        ),
    )
