"""Validated dates and times for what a caller sends: within the years a case record can mean.

Python's date and datetime reach years 1 to 9999, so `9999-12-31T23:59:59-14:00` parses, and
then overflows the moment it is converted to UTC (to compare it with now, or to store it): an
OverflowError, which was a 500. The year is checked first, on the value as written, so no
conversion ever runs on a value outside the range; 1900 to 2100 is wider than any consent,
flag expiry or birth date a person can have, and narrower than what breaks a conversion.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime

EARLIEST_YEAR = 1900
LATEST_YEAR = 2100
_RANGE = f"between {EARLIEST_YEAR} and {LATEST_YEAR}"


def _plausible_date(value: date) -> date:
    if not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
        raise ValueError(f"the year must be {_RANGE}")
    return value


def _plausible_datetime(value: datetime) -> datetime:
    # Converted to UTC, a value near the edge of the range moves by at most a day: no overflow.
    _plausible_date(value.date())
    return value


PlausibleDate = Annotated[date, AfterValidator(_plausible_date)]
PlausibleDatetime = Annotated[AwareDatetime, AfterValidator(_plausible_datetime)]
