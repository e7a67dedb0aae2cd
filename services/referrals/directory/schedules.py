"""Whether a service is open now, or when it next opens, from its HSDS schedules.

HSDS schedules are RFC 5545 recurrence rules in columns. Casework reads the weekly ones:
`freq` WEEKLY with `byday` (MO,TU,...), `opens_at` and `closes_at`, within `valid_from` /
`valid_to` / `until`, in the schedule's `timezone` (an offset from UTC in hours; an offset
written in `opens_at`, e.g. `09:00-05:00`, wins). Monthly rules and schedules without times
are not read: with nothing readable the answer is "unknown", never "closed".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field

DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_TIME = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?\s*(Z|[+-]\d{2}:?\d{2})?$", re.I)


class Opening(BaseModel):
    open_now: bool | None = Field(description="Null: no schedule Casework can read.")
    closes_at: datetime | None = None
    next_opens_at: datetime | None = Field(default=None, description="Within the next 7 days.")


def _parse_time(text: Any) -> tuple[time, timezone | None] | None:
    if not isinstance(text, str):
        return None
    match = _TIME.match(text.strip())
    if match is None:
        return None
    hour, minute, second = int(match[1]), int(match[2]), int(match[3] or 0)
    if hour > 23 or minute > 59 or second > 59:
        return None
    zone = None
    if match[4]:
        if match[4].upper() == "Z":
            zone = UTC
        else:
            sign = -1 if match[4][0] == "-" else 1
            digits = match[4][1:].replace(":", "")
            zone = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
    return time(hour, minute, second), zone


def _zone(schedule: dict[str, Any]) -> timezone:
    offset = schedule.get("timezone")
    if isinstance(offset, (int, float, Decimal)) and -14 <= offset <= 14:
        return timezone(timedelta(hours=float(offset)))
    return UTC


def _days(schedule: dict[str, Any]) -> set[int]:
    byday = schedule.get("byday")
    if not isinstance(byday, str):
        return set()
    days = set()
    for part in byday.upper().replace(" ", "").split(","):
        code = part[-2:]
        if code in DAYS:
            days.add(DAYS.index(code))
    return days


@dataclass(frozen=True, slots=True)
class Weekly:
    """A readable weekly schedule, parsed once (hashable: equal schedules answer alike)."""

    opens: time
    closes: time
    closes_zone: timezone | None
    zone: timezone
    days: frozenset[int]
    start: date | None
    ends: tuple[date, ...]


def weekly(schedules: list[dict[str, Any]]) -> tuple[Weekly, ...]:
    """The schedules Casework can read, in their order."""
    readable = []
    for schedule in schedules:
        if str(schedule.get("freq") or "").upper() != "WEEKLY":
            continue
        opens, closes, days = (
            _parse_time(schedule.get("opens_at")),
            _parse_time(schedule.get("closes_at")),
            _days(schedule),
        )
        if opens is None or closes is None or not days:
            continue
        start = schedule.get("valid_from") or schedule.get("dtstart")
        readable.append(
            Weekly(
                opens=opens[0],
                closes=closes[0],
                closes_zone=closes[1],
                zone=opens[1] or _zone(schedule),
                days=frozenset(days),
                start=start if isinstance(start, date) else None,
                ends=tuple(
                    d for d in (schedule.get("valid_to"), schedule.get("until"))
                    if isinstance(d, date)
                ),
            )
        )  # fmt: skip
    return tuple(readable)


def _valid(schedule: Weekly, day: date) -> bool:
    if schedule.start is not None and day < schedule.start:
        return False
    return not any(day > limit for limit in schedule.ends)


def opening_of(schedules: tuple[Weekly, ...], now: datetime) -> Opening:
    open_until: datetime | None = None
    next_open: datetime | None = None
    for schedule in schedules:
        zone = schedule.zone
        local_now = now.astimezone(zone)
        for offset in range(-1, 8):
            day = local_now.date() + timedelta(days=offset)
            if day.weekday() not in schedule.days or not _valid(schedule, day):
                continue
            start = datetime.combine(day, schedule.opens, zone)
            end = datetime.combine(day, schedule.closes, schedule.closes_zone or zone)
            if end <= start:
                end += timedelta(days=1)
            if start <= now < end:
                open_until = max(open_until, end) if open_until else end
            elif start > now and (next_open is None or start < next_open):
                next_open = start
    if not schedules:
        return Opening(open_now=None)
    if open_until is not None:
        return Opening(open_now=True, closes_at=open_until.astimezone(UTC))
    return Opening(open_now=False, next_opens_at=next_open.astimezone(UTC) if next_open else None)
