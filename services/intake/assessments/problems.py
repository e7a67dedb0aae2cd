"""The errors and cursors the assessment, flag and report endpoints share."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from services.intake.assessments.definitions import INSTRUMENTS, Instrument
from services.intake.assessments.scoring import AnswerError
from services.intake.assessments.service import Keyset
from shared.http.pagination import decode_cursor, encode_cursor, invalid_cursor
from shared.http.problems import FieldError, ProblemError


def not_found(what: str) -> ProblemError:
    return ProblemError(404, "not-found", "Not found", detail=f"No {what} with this id.")


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


def after(cursor: str | None) -> Keyset | None:
    """The keyset a `next_cursor` stands for."""
    if not cursor:
        return None
    moment, identifier = decode_cursor(cursor, 2)
    try:
        return datetime.fromisoformat(moment), UUID(identifier)
    except (TypeError, ValueError) as error:
        raise invalid_cursor() from error


def next_cursor(moment: datetime, identifier: UUID) -> str:
    return encode_cursor(moment.isoformat(), identifier)
