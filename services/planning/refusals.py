"""A rule of planning said no: the status, a code and why, for the view to answer with (a
problem, audited as a refusal); nothing was written."""

from __future__ import annotations

from typing import Any

from shared.http.problems import ProblemError


class Refusal(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra

    def problem(self) -> ProblemError:
        return ProblemError(
            self.status,
            self.code,
            _TITLES.get(self.status, "Refused"),
            detail=f"{self.message} Nothing was changed.",
            **self.extra,
        )


_TITLES = {403: "Not allowed", 409: "Conflict", 422: "The request is not valid"}
