"""Assessment and safety-flag events (intake).

They carry ids, levels and need categories, never answers, names or notes: a consumer that needs
more reads it back through the API, where access is checked and audited.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from shared.events.contracts import EventData, Topic


class RiskLevel(StrEnum):
    """Overall risk, lowest first; `crisis` means a human must act now."""

    LOW = "low"
    MODERATE = "moderate"
    HIGH = "high"
    CRISIS = "crisis"


RISK_ORDER: tuple[RiskLevel, ...] = tuple(RiskLevel)


class NeedSeverity(StrEnum):
    LOW = "low"
    MODERATE = "moderate"
    HIGH = "high"


class FlagType(StrEnum):
    SAFETY = "safety"
    VIOLENCE = "violence"
    MEDICAL = "medical"
    LEGAL = "legal"
    DUPLICATE = "duplicate"
    OTHER = "other"


class FlagSeverity(StrEnum):
    LOW = "low"
    MODERATE = "moderate"
    HIGH = "high"
    CRISIS = "crisis"


class Need(BaseModel):
    """One need category an assessment found, with how severe it is."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    category: str = Field(description="The instrument's need category.", examples=["housing"])
    severity: NeedSeverity


class ClientAssessed(EventData):
    """A client was assessed, or an assessment's risk level was overridden."""

    event_type = "org.casework.intake.client.assessed.v1"
    topic = Topic.INTAKE_CLIENTS
    aggregate_type = "client"
    source_service = "intake"
    summary = (
        "A client was assessed with a standard instrument (published again after a risk "
        "override). Levels and need categories only: no answers, no names."
    )

    assessment_id: UUID
    client_id: UUID
    instrument_id: str = Field(examples=["needs-risk-screening"])
    instrument_version: str = Field(examples=["1.0"])
    risk_level: RiskLevel = Field(description="The risk level in force (overridden or computed).")
    priority: int = Field(description="1 is the most urgent.", ge=1)
    needs: list[Need]
    preferred_language: str = Field(description="ISO 639 code.", examples=["en"])
    postal_area: str | None = Field(
        description="The first three characters of the client's postal code, if known."
    )
    risk_overridden: bool = Field(description="A worker set the risk level, with a reason.")

    def aggregate_id(self) -> str:
        return str(self.client_id)


class FlagRaised(EventData):
    """A flag was raised on a client; a crisis flag needs a human at once."""

    event_type = "org.casework.intake.flag.raised.v1"
    topic = Topic.INTAKE_CLIENTS
    aggregate_type = "client"
    source_service = "intake"
    summary = (
        "A flag (e.g. a safety concern) was raised on a client, by a worker or by an assessment "
        "answer. Type and severity only: never the note or the answers."
    )

    flag_id: UUID
    client_id: UUID
    flag_type: FlagType
    severity: FlagSeverity
    crisis: bool = Field(description="The severity is `crisis`: someone must act now.")
    source: Literal["assessment", "manual"]
    assessment_id: UUID | None = Field(description="The assessment that raised it, if any.")
    raised_by: str = Field(description="User id of the worker who raised it or who assessed.")
    raised_at: datetime

    def aggregate_id(self) -> str:
        return str(self.client_id)


EVENTS: tuple[type[EventData], ...] = (ClientAssessed, FlagRaised)
