"""Assessment and safety-flag events (intake).

They carry ids, levels and need categories, never answers, names or notes: a consumer that needs
more reads it back through the API, where access is checked and audited.

Protected data classes (`shared/events/protection.py`) split each fact in two: `ClientAssessed`
and `FlagRaised` on the general topic carry only general need categories and non-crisis flags of
general types, and say nothing of what was left out (no count, no marker); the protected needs
travel as `ProtectedNeedsAssessed` and every other flag (protected types, and every crisis flag,
whose type can reveal a protected answer) as `ProtectedFlagRaised`, on the protected topic. A
crisis's urgency stays general: `ClientAssessed.risk_level` is `crisis`.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal, Self
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema, model_validator

from shared.events.consent import DataClass
from shared.events.contracts import EventData, Topic
from shared.events.protection import (
    GENERAL_FLAG_TYPES,
    GENERAL_NEED_CATEGORIES,
    flag_travels_general,
    is_general_need,
)


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


def _general_need_category(category: str) -> str:
    if not is_general_need(category):
        raise ValueError("a protected or unclassified need category never travels on this topic")
    return category


GeneralNeedCategory = Annotated[
    str,
    AfterValidator(_general_need_category),
    WithJsonSchema({"type": "string", "enum": list(GENERAL_NEED_CATEGORIES)}),
]


class GeneralNeed(BaseModel):
    """A need of a general data class, as the general topic carries it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    category: GeneralNeedCategory = Field(
        description="A need category of the general data class (shared/events/data_classes.json)."
    )
    severity: NeedSeverity


class ProtectedNeed(BaseModel):
    """A need of a protected data class, with its class (the rules of that class apply)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    category: str = Field(description="The instrument's need category.", examples=["substance_use"])
    severity: NeedSeverity
    data_class: DataClass | None = Field(
        description="The category's protected class, whose rules apply to it; null for a "
        "category not classified yet, which is handled as protected."
    )


class ClientAssessed(EventData):
    """A client was assessed, or an assessment's risk level was overridden."""

    event_type = "org.casework.intake.client.assessed.v1"
    topic = Topic.INTAKE_CLIENTS
    aggregate_type = "client"
    source_service = "intake"
    summary = (
        "A client was assessed with a standard instrument (published again after a risk "
        "override). Levels and the needs of general data classes only (protected needs travel "
        "as ProtectedNeedsAssessed): no answers, no names."
    )

    assessment_id: UUID
    client_id: UUID
    instrument_id: str = Field(examples=["needs-risk-screening"])
    instrument_version: str = Field(examples=["1.0"])
    risk_level: RiskLevel = Field(description="The risk level in force (overridden or computed).")
    priority: int = Field(description="1 is the most urgent.", ge=1)
    needs: list[GeneralNeed] = Field(
        description="The needs of general data classes only; protected ones travel as "
        "ProtectedNeedsAssessed on casework.intake.protected."
    )
    preferred_language: str = Field(description="ISO 639 code.", examples=["en"])
    postal_area: str | None = Field(
        description="The first three characters of the client's postal code, if known."
    )
    risk_overridden: bool = Field(description="A worker set the risk level, with a reason.")


class _FlagFacts(EventData):
    """What both flag events say about a flag."""

    flag_id: UUID
    client_id: UUID
    flag_type: FlagType
    severity: FlagSeverity
    crisis: bool = Field(description="The severity is `crisis`: someone must act now.")
    source: Literal["assessment", "manual"]
    assessment_id: UUID | None = Field(description="The assessment that raised it, if any.")
    raised_by: str = Field(description="User id of the worker who raised it or who assessed.")
    raised_at: datetime


def _general_flag_type(flag_type: FlagType) -> FlagType:
    if flag_type not in GENERAL_FLAG_TYPES:
        raise ValueError("a flag type of a protected data class never travels on this topic")
    return flag_type


GeneralFlagType = Annotated[
    FlagType,
    AfterValidator(_general_flag_type),
    WithJsonSchema({"type": "string", "enum": list(GENERAL_FLAG_TYPES)}),
]


class FlagRaised(_FlagFacts):
    """A non-crisis flag of a general type was raised on a client."""

    event_type = "org.casework.intake.flag.raised.v1"
    topic = Topic.INTAKE_CLIENTS
    aggregate_type = "client"
    source_service = "intake"
    summary = (
        "A flag of a general type (e.g. a legal matter) was raised on a client, by a worker or "
        "by an assessment answer. Type and severity only: never the note or the answers. Crisis "
        "flags and flags of protected types travel only as ProtectedFlagRaised."
    )

    flag_type: GeneralFlagType = Field(description="A flag type of the general data class.")

    @model_validator(mode="after")
    def _general(self) -> Self:
        if not flag_travels_general(self.flag_type, severity=self.severity):
            raise ValueError("a crisis flag travels only as ProtectedFlagRaised")
        return self


class ProtectedFlagRaised(_FlagFacts):
    """A crisis flag, or a flag of a protected type, was raised on a client."""

    event_type = "org.casework.intake.protected.flag.raised.v1"
    topic = Topic.INTAKE_PROTECTED
    aggregate_type = "client"
    source_service = "intake"
    summary = (
        "A crisis flag (someone must act now), or a flag of a protected type (e.g. violence), "
        "was raised on a client. Protected topic: only its named readers. Type and severity "
        "only: never the note or the answers."
    )


class ProtectedNeedsAssessed(EventData):
    """An assessment found needs of protected data classes."""

    event_type = "org.casework.intake.protected.needs.assessed.v1"
    topic = Topic.INTAKE_PROTECTED
    aggregate_type = "client"
    source_service = "intake"
    summary = (
        "An assessment found needs of protected data classes (domestic violence, substance use, "
        "HIV, mental health, child safety); published only when it found any. The assessment's "
        "general needs and levels are in ClientAssessed. Protected topic: only its named readers."
    )

    assessment_id: UUID
    client_id: UUID
    instrument_id: str = Field(examples=["needs-risk-screening"])
    instrument_version: str = Field(examples=["1.0"])
    needs: list[ProtectedNeed] = Field(min_length=1)


class FlagAcknowledged(EventData):
    """Someone took responsibility for a flag: escalation stops."""

    event_type = "org.casework.intake.protected.flag.acknowledged.v1"
    topic = Topic.INTAKE_PROTECTED
    aggregate_type = "client"
    source_service = "intake"
    summary = (
        "A worker acknowledged a flag (took responsibility for it): notifications stops "
        "escalating it. On the protected topic because crisis flags travel there; ids only."
    )

    flag_id: UUID
    client_id: UUID
    acknowledged_by: str = Field(description="User id of the worker who acknowledged it.")
    acknowledged_at: datetime


EVENTS: tuple[type[EventData], ...] = (
    ClientAssessed,
    FlagRaised,
    ProtectedNeedsAssessed,
    ProtectedFlagRaised,
    FlagAcknowledged,
)
