"""Assessment drafts: answers saved as they are given, so a crisis answer raises its flag the
moment it is recorded, not when the whole form is done. Completing a draft scores it as any
assessment (same id); the flags the draft raised become the assessment's, never raised twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from uuid import UUID, uuid4

import asyncpg

from services.intake.assessment_drafts.models import DraftPublic
from services.intake.assessments import scoring, service
from services.intake.assessments.definitions import INSTRUMENTS, Instrument
from services.intake.assessments.models import AssessmentPublic
from shared.events.assessment import FlagType
from shared.messaging.outbox import UnitOfWork

_COLUMNS = """
    d.id, d.client_id, d.instrument_id, d.instrument_version, d.answers, d.version,
    d.created_by, d.created_at, d.updated_by, d.updated_at,
    ARRAY(SELECT f.id FROM flags f WHERE f.draft_id = d.id ORDER BY f.raised_at, f.id)
        AS raised_flag_ids
"""


class IncompleteDraft(Exception):
    """Completion refused: the answers do not make a whole assessment yet."""

    def __init__(self, errors: list[scoring.AnswerError]) -> None:
        super().__init__("incomplete")
        self.errors = errors


def instrument_of(draft: DraftPublic) -> Instrument:
    return INSTRUMENTS[(draft.instrument_id, draft.instrument_version)]


def _public(row: asyncpg.Record) -> DraftPublic:
    instrument = INSTRUMENTS[(row["instrument_id"], row["instrument_version"])]
    return DraftPublic(**dict(row), unanswered=scoring.unanswered(instrument, row["answers"]))


async def _raised_types(connection: asyncpg.Connection, draft_id: UUID) -> set[FlagType]:
    rows = await connection.fetch("SELECT flag_type FROM flags WHERE draft_id = $1", draft_id)
    return {FlagType(row["flag_type"]) for row in rows}


async def _raise_new_crisis_flags(
    uow: UnitOfWork, *, client_id: UUID, draft_id: UUID, flag_types: list[FlagType], by: str
) -> None:
    already = await _raised_types(uow.connection, draft_id)
    await service.raise_crisis_flags(
        uow,
        client_id=client_id,
        flag_types=[t for t in flag_types if t not in already],
        draft_id=draft_id,
        raised_by=by,
        raised_at=datetime.now(UTC),
    )


async def create_draft(
    uow: UnitOfWork,
    *,
    client_id: UUID,
    instrument: Instrument,
    answers: Mapping[str, str],
    created_by: str,
) -> DraftPublic:
    draft_id = uuid4()
    now = datetime.now(UTC)
    await uow.connection.execute(
        "INSERT INTO assessment_drafts (id, client_id, instrument_id, instrument_version, "
        "answers, version, created_by, created_at, updated_by, updated_at) "
        "VALUES ($1, $2, $3, $4, $5, 1, $6, $7, $6, $7)",
        draft_id,
        client_id,
        instrument.id,
        instrument.version,
        dict(answers),
        created_by,
        now,
    )
    await _raise_new_crisis_flags(
        uow,
        client_id=client_id,
        draft_id=draft_id,
        flag_types=scoring.crisis_flags_of(instrument, answers),
        by=created_by,
    )
    draft = await get_draft(uow.connection, client_id=client_id, draft_id=draft_id)
    assert draft is not None
    return draft


async def get_draft(
    connection: asyncpg.Connection, *, client_id: UUID, draft_id: UUID, for_update: bool = False
) -> DraftPublic | None:
    row = await connection.fetchrow(
        f"SELECT {_COLUMNS} FROM assessment_drafts d WHERE d.id = $1 AND d.client_id = $2"
        + (" FOR UPDATE OF d" if for_update else ""),
        draft_id,
        client_id,
    )
    return _public(row) if row else None


def changed_answers(
    current: Mapping[str, str], changes: Mapping[str, str | None]
) -> dict[str, str]:
    """The answers after a change: a value sets an answer, `None` takes it back."""
    answers = dict(current)
    for question_id, value in changes.items():
        if value is None:
            answers.pop(question_id, None)
        else:
            answers[question_id] = value
    return answers


async def update_draft(
    uow: UnitOfWork, *, draft: DraftPublic, answers: Mapping[str, str], updated_by: str
) -> DraftPublic:
    """Store the new answers (checked by the caller) and raise what new crisis answers name.
    A crisis answer taken back leaves its flag: someone must still look at it."""
    await uow.connection.execute(
        "UPDATE assessment_drafts SET answers = $2, version = version + 1, updated_by = $3, "
        "updated_at = now() WHERE id = $1",
        draft.id,
        dict(answers),
        updated_by,
    )
    await _raise_new_crisis_flags(
        uow,
        client_id=draft.client_id,
        draft_id=draft.id,
        flag_types=scoring.crisis_flags_of(instrument_of(draft), answers),
        by=updated_by,
    )
    updated = await get_draft(uow.connection, client_id=draft.client_id, draft_id=draft.id)
    assert updated is not None
    return updated


async def complete_draft(
    uow: UnitOfWork, *, draft: DraftPublic, completed_by: str
) -> AssessmentPublic:
    """Score the draft's answers as an assessment with the draft's id (IncompleteDraft if a
    required answer is missing), move its flags to it, and delete the draft."""
    instrument = instrument_of(draft)
    errors = scoring.check_answers(instrument, draft.answers)
    if errors:
        raise IncompleteDraft(errors)
    assessment = await service.create_assessment(
        uow,
        client_id=draft.client_id,
        instrument=instrument,
        answers=draft.answers,
        result=scoring.score(instrument, draft.answers),
        assessed_by=completed_by,
        assessment_id=draft.id,
        flags_already_raised=await _raised_types(uow.connection, draft.id),
    )
    await uow.connection.execute("DELETE FROM assessment_drafts WHERE id = $1", draft.id)
    return assessment
