"""Clients: the tables and the API models (a `table=True` model never validates input).

Names, birth date and identifiers carry HMIS data-quality codes; where a value is missing the
quality says why (8 doesn't know, 9 prefers not to answer, 99 not collected). Coded fields
validate against the versioned code lists in services/intake/code_lists.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, Literal, Self
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)
from sqlalchemy import (
    Boolean,
    Column,
    Computed,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql import UUID as PgUUID
from sqlmodel import Field as TableField

from services.intake.code_lists.catalogue import MISSING_REASONS, check_code
from services.intake.tables import IntakeTable, metadata
from shared.languages import LanguageCode
from shared.text import FreeText, Name, ShortText

EARLIEST_BIRTH_DATE = date(1900, 1, 1)


def _plausible_birth_date(value: date) -> date:
    if value > datetime.now(UTC).date():
        raise ValueError("birth date is in the future")
    if value < EARLIEST_BIRTH_DATE:
        raise ValueError(f"birth date is before {EARLIEST_BIRTH_DATE.isoformat()}")
    return value


def _coded(list_name: str) -> AfterValidator:
    return AfterValidator(lambda value: check_code(list_name, value))


PersonName = Name
BirthDate = Annotated[date, AfterValidator(_plausible_birth_date)]
Phone = Annotated[str, FreeText(max_length=25, pattern=r"^\+?[0-9 ().-]{6,25}$")]
Email = Annotated[str, FreeText(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
NameQuality = Annotated[str, _coded("name_data_quality")]
BirthDateQuality = Annotated[str, _coded("birth_date_quality")]
Sex = Annotated[str, _coded("sex")]
GenderIdentity = Annotated[str, _coded("gender_identity")]
RaceEthnicity = Annotated[str, _coded("race_ethnicity")]
Relationship = Annotated[str, _coded("relationship")]
IdentifierType = Annotated[str, _coded("identifier_type")]
IdentifierQuality = Annotated[str, _coded("identifier_data_quality")]


def digits(phone: str | None) -> str | None:
    return re.sub(r"\D", "", phone)[-10:] or None if phone else None


class Address(BaseModel):
    model_config = ConfigDict(extra="forbid")

    line1: ShortText | None = None
    line2: ShortText | None = None
    city: ShortText | None = None
    region: ShortText | None = None
    postal_code: (
        Annotated[
            str,
            StringConstraints(
                strip_whitespace=True, to_upper=True, pattern=r"^[A-Za-z0-9 -]{2,12}$"
            ),
        ]
        | None
    ) = None
    country: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")] | None = Field(
        default=None, description="ISO 3166-1 alpha-2."
    )


class HouseholdMember(BaseModel):
    model_config = ConfigDict(extra="forbid")

    given_name: PersonName | None = None
    family_name: PersonName | None = None
    birth_date: BirthDate | None = None
    relationship: Relationship
    client_id: UUID | None = Field(
        default=None, description="When the member is a registered client too."
    )


class Identifier(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: IdentifierType
    value: Annotated[str, FreeText(max_length=64)] | None = None
    data_quality: IdentifierQuality = "1"

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.data_quality in MISSING_REASONS:
            if self.value is not None:
                raise ValueError("an identifier with a missing-reason quality has no value")
        elif not self.value:
            raise ValueError("value is required unless data_quality is 8, 9 or 99")
        elif self.type == "national_id_last4" and not re.fullmatch(r"\d{4}", self.value):
            raise ValueError("national_id_last4 is exactly four digits")
        return self


class ClientFields(BaseModel):
    """What a worker records about a client. Names and birth date are required keys that may
    be null, and only when their data quality says why (8, 9 or 99)."""

    given_name: PersonName | None = Field(description="Given name(s).", examples=["Ana"])
    family_name: PersonName | None = Field(description="Family name(s).", examples=["Lima"])
    other_names: list[PersonName] = Field(
        default_factory=list, max_length=10, description="Aliases, former and street names."
    )
    name_data_quality: NameQuality = Field(default="1", description="Code list name_data_quality.")
    birth_date: BirthDate | None = Field(
        description="Date of birth; not in the future, not before 1900-01-01."
    )
    birth_date_quality: BirthDateQuality = Field(
        default="1", description="Code list birth_date_quality."
    )
    sex: Sex | None = Field(default=None, description="Code list sex (HMIS FY2026).")
    gender_identity: list[GenderIdentity] = Field(default_factory=list, max_length=6)
    race_ethnicity: list[RaceEthnicity] = Field(
        default_factory=list, max_length=7, description="Code list race_ethnicity; all that apply."
    )
    preferred_language: LanguageCode = Field(
        description="ISO 639-1 or 639-3 code of the language the client prefers.",
        examples=["en"],
    )
    interpreter_needed: bool = False
    phone: Phone | None = None
    email: Email | None = None
    address: Address | None = None
    household_members: list[HouseholdMember] = Field(default_factory=list, max_length=20)
    identifiers: list[Identifier] = Field(default_factory=list, max_length=10)

    @model_validator(mode="after")
    def _quality_explains_missing_values(self) -> Self:
        missing_name = self.given_name is None and self.family_name is None
        if missing_name != (self.name_data_quality in MISSING_REASONS):
            raise ValueError(
                "names are null exactly when name_data_quality is 8, 9 or 99 "
                "(one of given_name or family_name is enough otherwise)"
            )
        if (self.birth_date is None) != (self.birth_date_quality in MISSING_REASONS):
            raise ValueError("birth_date is null exactly when birth_date_quality is 8, 9 or 99")
        return self


class ClientCreate(ClientFields):
    model_config = ConfigDict(extra="forbid")

    duplicate_check: Literal["confirmed_new"] | None = Field(
        default=None,
        description="Send `confirmed_new` after reviewing the candidates of a 409 to register "
        "the client anyway; the decision is audited.",
    )


class ClientUpdate(BaseModel):
    """JSON merge-patch semantics: only the fields present change (send the ETag in If-Match)."""

    model_config = ConfigDict(extra="forbid")

    given_name: PersonName | None = None
    family_name: PersonName | None = None
    other_names: list[PersonName] | None = Field(default=None, max_length=10)
    name_data_quality: NameQuality | None = None
    birth_date: BirthDate | None = None
    birth_date_quality: BirthDateQuality | None = None
    sex: Sex | None = None
    gender_identity: list[GenderIdentity] | None = Field(default=None, max_length=6)
    race_ethnicity: list[RaceEthnicity] | None = Field(default=None, max_length=7)
    preferred_language: LanguageCode | None = None
    interpreter_needed: bool | None = None
    phone: Phone | None = None
    email: Email | None = None
    address: Address | None = None
    household_members: list[HouseholdMember] | None = Field(default=None, max_length=20)
    identifiers: list[Identifier] | None = Field(default=None, max_length=10)


class ClientPublic(ClientFields):
    id: UUID
    version: int = Field(description="Increases with every change; the ETag carries it.")
    created_at: datetime
    updated_at: datetime


class Client(IntakeTable, table=True):
    __tablename__ = "clients"

    id: UUID = TableField(sa_column=Column(PgUUID(as_uuid=True), primary_key=True))
    given_name: str | None = TableField(sa_column=Column(Text))
    family_name: str | None = TableField(sa_column=Column(Text))
    other_names: list[str] = TableField(
        sa_column=Column(ARRAY(Text), nullable=False, server_default=text("'{}'::text[]"))
    )
    name_data_quality: str = TableField(
        sa_column=Column(Text, nullable=False, server_default=text("'1'"))
    )
    birth_date: date | None = TableField(sa_column=Column(Date))
    birth_date_quality: str = TableField(
        sa_column=Column(Text, nullable=False, server_default=text("'1'"))
    )
    sex: str | None = TableField(sa_column=Column(Text))
    gender_identity: list[str] = TableField(
        sa_column=Column(ARRAY(Text), nullable=False, server_default=text("'{}'::text[]"))
    )
    race_ethnicity: list[str] = TableField(
        sa_column=Column(ARRAY(Text), nullable=False, server_default=text("'{}'::text[]"))
    )
    preferred_language: str = TableField(sa_column=Column(Text, nullable=False))
    interpreter_needed: bool = TableField(
        sa_column=Column(Boolean, nullable=False, server_default=text("false"))
    )
    phone: str | None = TableField(sa_column=Column(Text))
    email: str | None = TableField(sa_column=Column(Text))
    address: dict[str, str] | None = TableField(sa_column=Column(JSONB))
    postal_code: str | None = TableField(sa_column=Column(Text))
    household_members: list[dict[str, str]] = TableField(
        sa_column=Column(JSONB, nullable=False, server_default=text("'[]'::jsonb"))
    )
    identifiers: list[dict[str, str]] = TableField(
        sa_column=Column(JSONB, nullable=False, server_default=text("'[]'::jsonb"))
    )
    # Search keys, maintained on every write: accent-free lower-case names, their phonetic
    # codes (double metaphone) and the last ten digits of the phone.
    name_key: str = TableField(sa_column=Column(Text, nullable=False, server_default=text("''")))
    given_phonetic: str | None = TableField(sa_column=Column(Text))
    family_phonetic: str | None = TableField(sa_column=Column(Text))
    phone_digits: str | None = TableField(sa_column=Column(Text))
    # Lets the name search look within a birth year first: at a million clients a common
    # name alone matches thousands of rows, a name within one year a few hundred.
    birth_year: int | None = TableField(
        sa_column=Column(
            SmallInteger, Computed("(EXTRACT(year FROM birth_date))::smallint", persisted=True)
        )
    )
    version: int = TableField(sa_column=Column(Integer, nullable=False, server_default=text("1")))
    created_at: datetime = TableField(
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=text("now()"))
    )
    updated_at: datetime = TableField(
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=text("now()"))
    )

    __table_args__ = (
        # One GIN index serves both name branches: within a year, and (on its second
        # column alone) across all years.
        Index("ix_clients_birth_year_name_key_trgm", "birth_year", "name_key",
              postgresql_using="gin", postgresql_ops={"name_key": "extensions.gin_trgm_ops"}),
        Index("ix_clients_family_phonetic_given_phonetic", "family_phonetic", "given_phonetic"),
        Index("ix_clients_given_phonetic_family_phonetic", "given_phonetic", "family_phonetic"),
        Index("ix_clients_birth_date", "birth_date"),
        Index("ix_clients_phone_digits", "phone_digits"),
        Index("ix_clients_identifiers", "identifiers", postgresql_using="gin",
              postgresql_ops={"identifiers": "jsonb_path_ops"}),
        Index("ix_clients_created_at_id", "created_at", "id"),
    )  # fmt: skip


def client_changes_table(target: MetaData) -> Table:
    """Field-level history: who changed which field of a client from what to what, when."""
    return Table(
        "client_changes",
        target,
        Column("id", PgUUID(as_uuid=True), primary_key=True),
        Column("client_id", PgUUID(as_uuid=True), nullable=False),
        Column("version", Integer, nullable=False),
        Column("changed_by", Text, nullable=False),
        Column("changed_at", DateTime(timezone=True), nullable=False),
        Column("changes", JSONB, nullable=False),
        Index("ix_client_changes_client_id_version", "client_id", "version"),
    )


client_changes_table(metadata)
