"""Each user's own notification preferences: extra channels per kind or urgency, quiet hours
(which delay what is neither crisis nor high), a daily digest, and the e-mail address and
language e-mail uses."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Annotated, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)
from sqlalchemy import Boolean, Column, DateTime, Integer, MetaData, Table, Text, Time, text
from sqlalchemy import PrimaryKeyConstraint as Pk
from sqlalchemy.dialects.postgresql import JSONB

from shared.languages import LanguageCode

_ONE_DAY = timedelta(days=1)
# An address as mail systems accept it (the mail server has the last word).
Email = Annotated[
    str, StringConstraints(pattern=r"^[^@\s<>(),;:\"]{1,64}@[A-Za-z0-9.-]{1,189}\.[A-Za-z]{2,}$")
]
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,63}$")]


def _zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as error:
        raise ValueError("not an IANA time zone, e.g. Europe/Lisbon") from error
    return name


TimeZone = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,2}$", max_length=64),
    AfterValidator(_zone),
]


class QuietHours(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: time = Field(description="Local time they begin, e.g. 21:00.")
    end: time = Field(description="Local time they end, e.g. 07:00 (the next day if earlier).")
    time_zone: TimeZone = Field(examples=["Europe/Lisbon"])

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if self.start == self.end:
            raise ValueError("start and end are the same: leave quiet_hours out instead")
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("local times, without an offset: the time zone says where")
        return self


class PreferencesUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channels: dict[Slug, Annotated[list[Slug], Field(max_length=10)]] = Field(
        default_factory=dict,
        max_length=50,
        description='Kind or urgency -> channels, e.g. {"crisis": ["inbox", "email"]}: a '
        "rule's channels are narrowed to these (the inbox always keeps every notification).",
    )
    quiet_hours: QuietHours | None = None
    daily_digest: bool = Field(
        default=False,
        description="One e-mail a day (to `email`) counting your unread notifications, at "
        "`digest_hour` in `digest_time_zone`; none when nothing is unread.",
    )
    digest_hour: int = Field(default=7, ge=0, le=23)
    digest_time_zone: TimeZone = Field(default="UTC", examples=["Europe/Lisbon"])
    email: Email | None = None
    language: LanguageCode = Field(default="en", description="ISO 639 code for messages.")


class PreferencesPublic(PreferencesUpdate):
    version: int


def preferences_table(metadata: MetaData) -> Table:
    return Table(
        "preferences",
        metadata,
        Column("organization_id", Text, nullable=False),
        Column("user_id", Text, nullable=False),
        Column("channels", JSONB, nullable=False),
        Column("quiet_start", Time),
        Column("quiet_end", Time),
        Column("quiet_time_zone", Text),
        Column("daily_digest", Boolean, nullable=False),
        Column("digest_hour", Integer, nullable=False, server_default=text("7")),
        Column("digest_time_zone", Text, nullable=False, server_default=text("'UTC'")),
        Column("email", Text),
        Column("language", Text, nullable=False),
        Column("version", Integer, nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
        Pk("organization_id", "user_id"),
    )


def quiet_until(quiet: QuietHours | None, at: datetime) -> datetime | None:
    """When the quiet hours that contain `at` end (None when `at` is outside them)."""
    if quiet is None:
        return None
    zone = ZoneInfo(quiet.time_zone)
    local = at.astimezone(zone)
    now = local.time().replace(tzinfo=None)
    if quiet.start < quiet.end:
        inside = quiet.start <= now < quiet.end
        end_day = local.date()
    else:  # across midnight
        inside = now >= quiet.start or now < quiet.end
        end_day = local.date() if now < quiet.end else (local + _ONE_DAY).date()
    if not inside:
        return None
    return datetime.combine(end_day, quiet.end, tzinfo=zone)
