"""Webhook subscriptions and deliveries: their tables and the API models.

A subscription belongs to an organisation; its secret signs every delivery (Standard Webhooks)
and is shown once, when created or rotated. A delivery is one event for one subscription: a
row written in the consumer's transaction (outbox style), sent by the worker's sender, retried
with backoff, each attempt logged. Nothing here holds client data: events carry ids only.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import (
    ARRAY,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import UUID as PgUUID

from services.notifications import tables
from shared.text import FreeText

MAX_EVENT_TYPES = 50
MAX_URL_LENGTH = 2000

Description = Annotated[str, FreeText(max_length=500)]
EventTypeName = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[a-z0-9.]+$")]


class SubscriptionState(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"  # by its owner, or after a delivery failed for the retry window


class DeliveryState(StrEnum):
    PENDING = "pending"  # not attempted yet
    RETRYING = "retrying"  # attempted, failed, due again at next_attempt_at
    DELIVERED = "delivered"  # a 2xx answer
    FAILED = "failed"  # given up (retry window over, consent gone, subscription disabled)


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        min_length=1,
        max_length=MAX_URL_LENGTH,
        description="Where deliveries are POSTed: https, a host name that resolves to public "
        "addresses only, no user or password in it.",
        examples=["https://agency.example.org/casework/webhooks"],
    )
    event_types: list[EventTypeName] = Field(
        min_length=1,
        max_length=MAX_EVENT_TYPES,
        description="CloudEvents types to receive (see `GET /v1/webhooks/event-types`).",
        examples=[["org.casework.referrals.referral.made.v1"]],
    )
    description: Description | None = Field(default=None, description="What it is for.")

    @field_validator("event_types")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return sorted(set(value))


class WebhookPatch(BaseModel):
    """A JSON merge patch of a subscription: what may change."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, min_length=1, max_length=MAX_URL_LENGTH)
    event_types: list[EventTypeName] | None = Field(
        default=None, min_length=1, max_length=MAX_EVENT_TYPES
    )
    description: Description | None = None
    state: SubscriptionState | None = Field(
        default=None, description="`disabled` stops deliveries; `active` resumes them."
    )

    @field_validator("event_types")
    @classmethod
    def _unique(cls, value: list[str] | None) -> list[str] | None:
        return sorted(set(value)) if value is not None else None


class WebhookPublic(BaseModel):
    id: UUID
    organization_id: str
    url: str
    event_types: list[str]
    description: str | None
    state: SubscriptionState
    disabled_reason: str | None = Field(
        description="`by-owner`, or `deliveries-failing` after a delivery failed for the whole "
        "retry window."
    )
    disabled_at: datetime | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    version: int


class WebhookWithSecret(WebhookPublic):
    secret: str = Field(
        description="Signs every delivery (Standard Webhooks, `whsec_` + base64). Shown only "
        "now: keep it; rotate to get a new one."
    )


class SecretRotation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    previous_valid_hours: float = Field(
        default=24.0,
        ge=0,
        le=168,
        description="How long deliveries are also signed with the old secret (a second "
        "signature in `webhook-signature`), so receivers can switch without losing any.",
    )


class Attempt(BaseModel):
    attempt: int
    attempted_at: datetime
    status_code: int | None = Field(description="The subscriber's HTTP status; null: no answer.")
    error: str | None
    duration_ms: int


class DeliveryPublic(BaseModel):
    id: UUID = Field(description="Also the `webhook-id` header: the same on every retry.")
    subscription_id: UUID
    event_id: str
    event_type: str
    state: DeliveryState
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    attempt_log: list[Attempt] = Field(default_factory=list, description="Newest first.")


class EventTypeInfo(BaseModel):
    event_type: str
    summary: str


def webhook_subscriptions_table(metadata: MetaData) -> Table:
    return Table(
        "webhook_subscriptions",
        metadata,
        Column("id", PgUUID(as_uuid=True), primary_key=True),
        Column("organization_id", Text, nullable=False),
        Column("url", Text, nullable=False),
        Column("event_types", ARRAY(Text), nullable=False),
        Column("description", Text),
        Column("secret", Text, nullable=False),
        Column("previous_secret", Text),
        Column("previous_secret_until", DateTime(timezone=True)),
        Column("state", Text, nullable=False),
        Column("disabled_reason", Text),
        Column("disabled_at", DateTime(timezone=True)),
        Column("created_by", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
        Column("deleted_at", DateTime(timezone=True)),
        Column("version", Integer, nullable=False, server_default=text("1")),
        CheckConstraint("state IN ('active', 'disabled')", name="state"),
        CheckConstraint("cardinality(event_types) > 0", name="event_types"),
        Index("ix_webhook_subscriptions_organization_id_id", "organization_id", "id"),
        Index(
            "ix_webhook_subscriptions_event_types",
            "event_types",
            postgresql_using="gin",
            postgresql_where=text("state = 'active' AND deleted_at IS NULL"),
        ),
    )


def webhook_deliveries_table(metadata: MetaData) -> Table:
    return Table(
        "webhook_deliveries",
        metadata,
        Column("id", PgUUID(as_uuid=True), primary_key=True),
        Column(
            "subscription_id",
            PgUUID(as_uuid=True),
            ForeignKey("webhook_subscriptions.id"),
            nullable=False,
        ),
        Column("organization_id", Text, nullable=False),
        Column("event_id", Text, nullable=False),
        Column("event_type", Text, nullable=False),
        Column("client_id", PgUUID(as_uuid=True)),
        Column(
            "consent_purpose",
            Text,
            comment="the consent purpose checked again before each attempt; NULL: the "
            "subscriber's own organisation's client, or no client",
        ),
        Column("payload", JSONB, nullable=False),
        Column("state", Text, nullable=False),
        Column("attempts", Integer, nullable=False, server_default=text("0")),
        Column("next_attempt_at", DateTime(timezone=True)),
        Column("retry_since", DateTime(timezone=True)),
        Column("last_status_code", Integer),
        Column("last_error", Text),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("delivered_at", DateTime(timezone=True)),
        CheckConstraint("state IN ('pending', 'retrying', 'delivered', 'failed')", name="state"),
        Index(
            "uq_webhook_deliveries_subscription_id_event_id",
            "subscription_id",
            "event_id",
            unique=True,
        ),
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            postgresql_where=text("state IN ('pending', 'retrying')"),
        ),
        Index("ix_webhook_deliveries_subscription_id_log", "subscription_id", "created_at", "id"),
    )


def webhook_attempts_table(metadata: MetaData) -> Table:
    return Table(
        "webhook_attempts",
        metadata,
        Column(
            "delivery_id",
            PgUUID(as_uuid=True),
            ForeignKey("webhook_deliveries.id"),
            primary_key=True,
        ),
        Column("attempt", Integer, primary_key=True),
        Column("attempted_at", DateTime(timezone=True), nullable=False),
        Column("status_code", Integer),
        Column("error", Text),
        Column("duration_ms", Integer, nullable=False),
    )


def add_webhook_tables(metadata: MetaData) -> None:
    webhook_subscriptions_table(metadata)
    webhook_deliveries_table(metadata)
    webhook_attempts_table(metadata)


add_webhook_tables(tables.metadata)
