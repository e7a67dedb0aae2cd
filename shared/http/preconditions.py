"""Conditional requests (RFC 9110): `If-Match` with a strong ETag on every change, so nobody
overwrites a version they never saw. 428 when a change comes without it, 412 when it names a
version that is no longer current."""

from __future__ import annotations

from typing import Annotated

from fastapi import Header

from shared.http.problems import ProblemError

IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        max_length=200,
        description="The ETag of the version you read and are changing.",
    ),
]


def matches(if_match: str, current_etag: str) -> bool:
    """Whether If-Match names the current version (a weak form of it is accepted too)."""
    return if_match.strip() in (current_etag, f"W/{current_etag}")


def precondition_required(what: str) -> ProblemError:
    return ProblemError(
        428, "precondition-required", "Precondition required",
        detail=f"Send If-Match with the ETag of the {what} you are changing.",
    )  # fmt: skip


def stale(what: str) -> ProblemError:
    return ProblemError(
        412, "precondition-failed", f"The {what} changed since you read it",
        detail=f"Read the {what} again, reapply your change and send it with the new ETag.",
    )  # fmt: skip
