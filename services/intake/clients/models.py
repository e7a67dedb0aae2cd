"""Clients: the table and the API models (a `table=True` model never validates input)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated
from uuid import UUID

from pydantic import AfterValidator, ConfigDict, StringConstraints
from sqlalchemy import Column, Date, DateTime, Integer, Text, text
from sqlalchemy.dialects.postgresql import UUID as PgUUID
from sqlmodel import Field, SQLModel

from services.intake.tables import IntakeTable

EARLIEST_BIRTH_DATE = date(1900, 1, 1)


def _no_control_characters(value: str) -> str:
    if any(ord(character) < 32 for character in value):
        raise ValueError("must not contain control characters")
    return value


def _plausible_birth_date(value: date) -> date:
    if value > datetime.now(UTC).date():
        raise ValueError("birth date is in the future")
    if value < EARLIEST_BIRTH_DATE:
        raise ValueError(f"birth date is before {EARLIEST_BIRTH_DATE.isoformat()}")
    return value


PersonName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    AfterValidator(_no_control_characters),
]
BirthDate = Annotated[date, AfterValidator(_plausible_birth_date)]
LanguageCode = Annotated[
    str,
    StringConstraints(strip_whitespace=True, to_lower=True, pattern=r"^[a-zA-Z]{2,3}$"),
]


class ClientBase(SQLModel):
    given_name: PersonName = Field(description="Given name(s).", schema_extra={"examples": ["Ana"]})
    family_name: PersonName = Field(
        description="Family name(s).", schema_extra={"examples": ["Lima"]}
    )
    birth_date: BirthDate = Field(
        description="Date of birth; not in the future, not before 1900-01-01."
    )
    preferred_language: LanguageCode = Field(
        description="ISO 639 code of the language the client prefers.",
        schema_extra={"examples": ["en"]},
    )


class ClientCreate(ClientBase):
    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]


class ClientPublic(ClientBase):
    id: UUID
    version: int = Field(description="Increases with every change; the ETag carries it.")
    created_at: datetime
    updated_at: datetime


class Client(IntakeTable, table=True):
    __tablename__ = "clients"

    id: UUID = Field(sa_column=Column(PgUUID(as_uuid=True), primary_key=True))
    given_name: str = Field(sa_column=Column(Text, nullable=False))
    family_name: str = Field(sa_column=Column(Text, nullable=False))
    birth_date: date = Field(sa_column=Column(Date, nullable=False))
    preferred_language: str = Field(sa_column=Column(Text, nullable=False))
    version: int = Field(sa_column=Column(Integer, nullable=False, server_default=text("1")))
    created_at: datetime = Field(
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=text("now()"))
    )
    updated_at: datetime = Field(
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=text("now()"))
    )
