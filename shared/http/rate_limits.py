"""Rate limits per source address, per principal, and for attempts without a valid token.

Counted with the `limits` library's sliding-window counter in this process's memory: no
round trip per request, and nothing for an attacker to fill but a bounded dictionary. The
price is that each API instance counts on its own (n replicas admit n times the rate); a
shared store (`limits` supports Redis) is the step when that matters. A refusal is a 429
problem with `Retry-After`.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import SlidingWindowCounterRateLimiter

from shared.auth.principal import Principal
from shared.http.problems import ProblemError
from shared.settings import Settings


def _rules(notation: str) -> list[RateLimitItem]:
    return parse_many(notation) if notation.strip() else []


def too_many_requests(retry_after_seconds: int) -> ProblemError:
    return ProblemError(
        429,
        "too-many-requests",
        "Too many requests",
        detail=f"Too many requests from you; nothing was done. Retry in {retry_after_seconds} s.",
        headers={"Retry-After": str(retry_after_seconds)},
    )


class RateLimiter:
    def __init__(self, settings: Settings) -> None:
        self._limiter = SlidingWindowCounterRateLimiter(MemoryStorage())
        self._per_source = _rules(settings.rate_limit_per_source)
        self._per_principal = _rules(settings.rate_limit_per_principal)
        self._unauthenticated = _rules(settings.rate_limit_unauthenticated)

    def source(self, address: str | None) -> ProblemError | None:
        """Any request from this address: the error to answer with, or None to go on."""
        return self._hit(self._per_source, "source", address or "unknown")

    def principal(self, principal: Principal) -> ProblemError | None:
        return self._hit(
            self._per_principal, "principal", principal.organization_id, principal.subject
        )

    def unauthenticated(self, address: str | None) -> ProblemError | None:
        """An attempt without a valid token (or a malformed request) from this address."""
        return self._hit(self._unauthenticated, "unauthenticated", address or "unknown")

    def _hit(self, rules: list[RateLimitItem], *key: str) -> ProblemError | None:
        for rule in rules:
            if not self._limiter.hit(rule, *key):
                reset_at = self._limiter.get_window_stats(rule, *key).reset_time
                return too_many_requests(max(1, math.ceil(reset_at - time.time())))
        return None
