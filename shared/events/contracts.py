"""Versioned event contracts: the data part of every CloudEvent Casework publishes.

Rules: a type name ends in its major version (`...v1`); within a version only additive,
optional changes; events carry ids and the facts consumers need, never names, birth dates,
identifiers or free text. The JSON Schemas in `schemas/` are generated from these models and
checked by a test, so an accidental breaking change fails CI.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

CE_SOURCE_PREFIX = "/casework"

# Every service that publishes: the `ce_source` a consumer accepts is `/casework/<one of these>`.
# The composition root (services/registry.py) must name the same services; a test checks it.
SERVICE_NAMES: tuple[str, ...] = ("intake", "planning", "referrals", "notifications")
ANY_SERVICE = "any"


class Topic:
    """One topic per aggregate stream, keyed by the aggregate id (usually the client id).

    `INTAKE_PROTECTED` and `INTAKE_PROTECTED_CONSENTS` carry protected data classes (see
    `shared/events/protection.py`): only the services named there may read each. Consents have
    their own protected topic because more services keep consent facts than may read needs."""

    INTAKE_CLIENTS = "casework.intake.clients"
    INTAKE_PROTECTED = "casework.intake.protected"
    INTAKE_PROTECTED_CONSENTS = "casework.intake.protected-consents"
    PLANNING_CASES = "casework.planning.cases"
    PLANNING_WORKERS = "casework.planning.workers"
    REFERRALS = "casework.referrals.referrals"
    AUDIT = "casework.audit"


def dead_letter_topic(consumer_group: str) -> str:
    return f"casework.{consumer_group}.dlq"


class EventData(BaseModel):
    """Base of every event's data. Unknown fields are ignored so producers may add fields."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_type: ClassVar[str]
    topic: ClassVar[str]
    aggregate_type: ClassVar[str]
    # The one service that publishes this type, or ANY_SERVICE (the audit stream).
    source_service: ClassVar[str]
    summary: ClassVar[str]
    # The Kafka key (and `ce_subject`): the first of these fields that is not null. Documented
    # in AsyncAPI from here, so the documentation cannot name another key than the relay sends.
    key_fields: ClassVar[tuple[str, ...]] = ("client_id",)
    key_description: ClassVar[str] = "The client's id: every event about a client stays in order."

    def aggregate_id(self) -> str:
        for name in self.key_fields:
            value = getattr(self, name)
            if value is not None:
                return str(value)
        raise ValueError(f"{self.event_type}: every key field is null: {self.key_fields}")


def publishers(model: type[EventData]) -> tuple[str, ...]:
    """The services whose `ce_source` a consumer accepts for this type."""
    return SERVICE_NAMES if model.source_service == ANY_SERVICE else (model.source_service,)


class ClientRegistered(EventData):
    """A client was registered at intake."""

    event_type = "org.casework.intake.client.registered.v1"
    topic = Topic.INTAKE_CLIENTS
    aggregate_type = "client"
    source_service = "intake"
    summary = "A client was registered at intake. Carries no names or birth dates."

    client_id: UUID = Field(description="The client's id in intake.")
    preferred_language: str = Field(
        description="ISO 639 code of the language the client prefers.", examples=["en"]
    )
    registered_at: datetime = Field(description="When the client was registered.")
    organization_id: str | None = Field(
        default=None, description="The registering organisation: whose client this is."
    )
    team_id: str | None = Field(default=None, description="The registering worker's team.")
    registered_by: str | None = Field(
        default=None, description="User id of the worker who registered the client."
    )
    interpreter_needed: bool = Field(default=False, description="Added in 1.1 (optional).")
    postal_area: str | None = Field(
        default=None, description="The first three characters of the postal code (1.1)."
    )


class ClientUpdated(EventData):
    """A client's record changed at intake. Names which fields changed, never their values."""

    event_type = "org.casework.intake.client.updated.v1"
    topic = Topic.INTAKE_CLIENTS
    aggregate_type = "client"
    source_service = "intake"
    summary = "A client's record changed; carries the facts consumers keep, not the values."

    client_id: UUID
    version: int
    changed_fields: list[str] = Field(description="Names of the fields that changed.")
    preferred_language: str
    interpreter_needed: bool = False
    postal_area: str | None = Field(
        default=None, description="The first three characters of the postal code."
    )
    updated_at: datetime


class CaseAssigned(EventData):
    """A client's case was assigned to a worker: access follows the assignment."""

    event_type = "org.casework.planning.case.assigned.v1"
    topic = Topic.PLANNING_CASES
    aggregate_type = "case"
    source_service = "planning"
    summary = "A client's case was assigned to a worker (ids only)."
    key_description = "The client's id (not a case id: a client has one case in planning)."

    client_id: UUID
    worker_id: str = Field(description="User id of the worker the case now belongs to.")
    team_id: str | None = Field(default=None, description="The worker's team.")
    organization_id: str | None = Field(default=None, description="The case's organisation.")
    case_id: UUID | None = Field(default=None, description="The case's id in planning.")
    assigned_by: str = Field(description="User id of who assigned it.")
    assigned_at: datetime


class AuditRecorded(EventData):
    """An audit record, ids only, for an agency's SIEM."""

    event_type = "org.casework.audit.recorded.v1"
    topic = Topic.AUDIT
    aggregate_type = "audit"
    source_service = ANY_SERVICE
    key_fields = ("client_id", "audit_id")
    key_description = (
        "The client's id when the record concerns a client (its trail stays in order), "
        "otherwise the audit record's own id."
    )
    summary = (
        "Someone read or changed (or tried to) a record. Ids only: no client data, no reasons."
    )

    audit_id: UUID
    service: str
    occurred_at: datetime
    actor_id: str | None = Field(description="User id; null when the caller was not identified.")
    actor_roles: list[str]
    actor_organization_id: str | None
    action: str = Field(examples=["client.read"])
    resource_type: str
    resource_id: str | None
    client_id: UUID | None
    outcome: str = Field(description="allowed, break_glass, denied, not_found or unauthenticated.")
    request_id: str | None
    source_address: str | None


class ChainHead(BaseModel):
    """The newest row of one audit chain when a checkpoint was taken."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    chain: int = Field(ge=0, description="The chain's number.")
    seq: int = Field(ge=1, description="The row's seq in the service's audit_log.")
    hash: str = Field(description="The row's chain hash (hex).")


class AuditCheckpoint(EventData):
    """A signed record of every audit chain head of one service, taken by its worker."""

    event_type = "org.casework.audit.checkpoint.v1"
    topic = Topic.AUDIT
    aggregate_type = "audit_checkpoint"
    source_service = "any"
    summary = (
        "Every audit chain head of one service (ids, seqs and hashes only), signed with Ed25519: "
        "the signature covers this JSON without `signature`, keys sorted, no whitespace."
    )

    checkpoint_id: UUID
    service: str
    taken_at: datetime
    heads: list[ChainHead] = Field(description="One per chain that has rows, by chain number.")
    signing_key: str = Field(
        description="Fingerprint of the public key that verifies the signature: the first 16 "
        "hex digits of the SHA-256 of its raw 32 bytes."
    )
    signature: str = Field(description="Ed25519 signature, base64.")

    key_fields = ("service",)
    key_description = "The service whose chains it covers: one service's checkpoints in order."


PLATFORM_EVENTS: tuple[type[EventData], ...] = (
    ClientRegistered,
    ClientUpdated,
    CaseAssigned,
    AuditRecorded,
    AuditCheckpoint,
)
