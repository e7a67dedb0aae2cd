"""A rule of planning said no: the status, a code and why, for the view to answer with (a
problem, audited as a refusal); nothing was written.

Each area's refusal (cases, approvals, transfers, reviews, assignments) is a Refusal with its
own problem title; views wrap the service call in `async with refusals_audited(guard, grant)`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, ClassVar

from shared.audit.log import Outcome
from shared.auth.guard import Grant, Guard
from shared.http.problems import ProblemError


class Refusal(Exception):
    titles: ClassVar[dict[int, str]] = {
        403: "Not allowed",
        409: "Conflict",
        422: "The request is not valid",
    }

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra

    def title(self) -> str:
        return self.titles.get(self.status, "Refused")

    def problem(self) -> ProblemError:
        return ProblemError(
            self.status,
            self.code,
            self.title(),
            detail=f"{self.message} Nothing was changed.",
            **self.extra,
        )


async def audited(guard: Guard, grant: Grant, refusal: Refusal) -> ProblemError:
    """The problem to raise for `refusal`, its audit record written after the rollback: a 404
    is audited as not found, any other refusal as denied."""
    outcome = Outcome.NOT_FOUND if refusal.status == 404 else Outcome.DENIED
    return await guard.refuse(grant, refusal.problem(), outcome)


@asynccontextmanager
async def refusals_audited(guard: Guard, grant: Grant) -> AsyncIterator[None]:
    """Turns a Refusal raised inside into its audited problem."""
    try:
        yield
    except Refusal as refusal:
        raise await audited(guard, grant, refusal) from None
