"""The errors the assessment, flag and report endpoints share."""

from __future__ import annotations

from collections.abc import Sequence

from services.intake.assessments.definitions import INSTRUMENTS, Instrument
from services.intake.assessments.scoring import AnswerError
from shared.http.problems import FieldError, ProblemError, not_found

__all__ = ["conflict", "instrument_or_422", "invalid", "not_found"]


def conflict(slug: str, title: str, detail: str) -> ProblemError:
    return ProblemError(409, slug, title, detail=detail)


def invalid(errors: Sequence[AnswerError | FieldError]) -> ProblemError:
    """422 with field errors, in the shape request validation uses."""
    return ProblemError(
        422,
        "validation-error",
        "The request is not valid",
        detail="One or more fields are missing or invalid; nothing was changed.",
        errors=[error.model_dump() for error in errors],
    )


def instrument_or_422(
    instrument_id: str, version: str, *, location: str = "body", version_field: str = "version"
) -> Instrument:
    instrument = INSTRUMENTS.get((instrument_id, version))
    if instrument is not None:
        return instrument
    if any(known_id == instrument_id for known_id, _ in INSTRUMENTS):
        field, message = version_field, f"no version {version} of {instrument_id}"
    else:
        field, message = "instrument_id", "unknown instrument"
    raise invalid([FieldError(field=f"{location}.{field}", message=message, code="unknown")])
