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


class Topic:
    """One topic per aggregate stream, keyed by the aggregate id (usually the client id)."""

    INTAKE_CLIENTS = "casework.intake.clients"


def dead_letter_topic(consumer_group: str) -> str:
    return f"casework.{consumer_group}.dlq"


class EventData(BaseModel):
    """Base of every event's data. Unknown fields are ignored so producers may add fields."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_type: ClassVar[str]
    topic: ClassVar[str]
    aggregate_type: ClassVar[str]
    source_service: ClassVar[str]
    summary: ClassVar[str]

    def aggregate_id(self) -> str:
        raise NotImplementedError


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

    def aggregate_id(self) -> str:
        return str(self.client_id)


EVENT_TYPES: dict[str, type[EventData]] = {model.event_type: model for model in (ClientRegistered,)}
