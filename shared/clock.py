"""What time it is: one injectable clock, so time-dependent rules are tested without sleeping.

The API (`app.state.clock`, `ClockDep`) and the worker (`Worker.clock`) read the time from
here; tests hand a `FrozenClock` to `create_app`, `Worker` or `running_stack` and move it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FrozenClock:
    """A clock that moves only when told to (tests)."""

    def __init__(self, at: datetime | None = None) -> None:
        self._at = at or datetime.now(UTC)

    def now(self) -> datetime:
        return self._at

    def advance(self, by: timedelta) -> datetime:
        self._at += by
        return self._at

    def set(self, at: datetime) -> None:
        self._at = at


SYSTEM_CLOCK: Clock = SystemClock()
