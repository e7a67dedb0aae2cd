"""When a failed delivery is tried again: exponential backoff with jitter, within a window."""

from __future__ import annotations

import random
from datetime import datetime, timedelta


def retry_delay(
    attempts: int, *, base_seconds: float, max_seconds: float, rng: random.Random | None = None
) -> timedelta:
    """The pause after the `attempts`-th failed attempt: base * 2^(attempts-1), at most
    max_seconds, then "equal jitter" (between half and all of it), so a subscriber that comes
    back is not hit by every waiting delivery at the same moment."""
    ceiling = min(max_seconds, base_seconds * 2.0 ** max(attempts - 1, 0))
    fraction = (rng or random).uniform(0.5, 1.0)
    return timedelta(seconds=ceiling * fraction)


def next_attempt(
    *, failed_at: datetime, retry_since: datetime, attempts: int, window: timedelta,
    base_seconds: float, max_seconds: float, rng: random.Random | None = None,
) -> datetime | None:  # fmt: skip
    """When to try again, or None: the next attempt would fall after the retry window, which
    runs from the first failed attempt."""
    due = failed_at + retry_delay(
        attempts, base_seconds=base_seconds, max_seconds=max_seconds, rng=rng
    )
    return due if due <= retry_since + window else None
