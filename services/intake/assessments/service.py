"""Assessments and flags: rows and events in one transaction (the caller's unit of work).

An assessment stores the answers, the computed result with its explanation and the level in
force; a crisis answer raises a crisis flag in the same transaction, and the events go out with
it: nothing is stored without its events, and no event without its rows.

What goes where (`shared/events/protection.py`): `ClientAssessed` carries the needs of general
data classes, `ProtectedNeedsAssessed` (only when there are any) the protected ones; a flag goes
out once, as `FlagRaised` when it is no crisis and of a general type, as `ProtectedFlagRaised`
otherwise.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal
from uuid import UUID, uuid4

import asyncpg

from services.intake.assessments.definitions import Instrument
from services.intake.assessments.models import (
    AssessmentPublic,
    FlagCreate,
    FlagPublic,
    OverrideCreate,
)
from services.intake.assessments.scoring import ScoreResult, priority_of
from shared.events.assessment import (
    ClientAssessed,
    FlagAcknowledged,
    FlagRaised,
    FlagSeverity,
    FlagType,
    GeneralNeed,
    ProtectedFlagRaised,
    ProtectedNeed,
    ProtectedNeedsAssessed,
)
from shared.events.contracts import EventData
from shared.events.protection import flag_travels_general, is_general_need, need_class
from shared.http.pagination import Keyset
from shared.messaging.outbox import UnitOfWork

# --- assessments ------------------------------------------------------------------------------

_ASSESSMENT_COLUMNS = """
    s.id, s.client_id, s.instrument_id, s.instrument_version, s.answers, s.needs,
    s.explanation, s.total_points, s.crisis, s.computed_risk_level, s.computed_priority,
    s.risk_level, s.priority, s.risk_level <> s.computed_risk_level AS risk_overridden,
    s.assessed_by, s.created_at,
    coalesce(
        (SELECT json_agg(json_build_object(
                    'risk_level', o.risk_level, 'reason', o.reason,
                    'overridden_by', o.overridden_by, 'overridden_at', o.overridden_at)
                ORDER BY o.overridden_at, o.id)
         FROM assessment_overrides o WHERE o.assessment_id = s.id),
        '[]'::json) AS overrides,
    ARRAY(SELECT f.id FROM flags f WHERE f.assessment_id = s.id ORDER BY f.raised_at, f.id)
        AS raised_flag_ids
"""


@dataclass(frozen=True)
class ClientContext:
    """What the events say about the client: a language and a coarse area, nothing more."""

    preferred_language: str
    postal_area: str | None


async def client_context(connection: asyncpg.Connection, client_id: UUID) -> ClientContext:
    row = await connection.fetchrow(
        "SELECT preferred_language, nullif(btrim(left(postal_code, 3)), '') AS postal_area "
        "FROM clients WHERE id = $1",
        client_id,
    )
    assert row is not None, "access facts exist only for registered clients"
    return ClientContext(row["preferred_language"], row["postal_area"])


def _assessed_event(assessment: AssessmentPublic, context: ClientContext) -> ClientAssessed:
    return ClientAssessed(
        assessment_id=assessment.id,
        client_id=assessment.client_id,
        instrument_id=assessment.instrument_id,
        instrument_version=assessment.instrument_version,
        risk_level=assessment.risk_level,
        priority=assessment.priority,
        needs=[
            GeneralNeed(category=need.category, severity=need.severity)
            for need in assessment.needs
            if is_general_need(need.category)
        ],
        preferred_language=context.preferred_language,
        postal_area=context.postal_area,
        risk_overridden=assessment.risk_overridden,
    )


def _protected_needs_event(assessment: AssessmentPublic) -> ProtectedNeedsAssessed | None:
    needs = [
        ProtectedNeed(
            category=need.category, severity=need.severity, data_class=need_class(need.category)
        )
        for need in assessment.needs
        if not is_general_need(need.category)
    ]
    if not needs:
        return None
    return ProtectedNeedsAssessed(
        assessment_id=assessment.id,
        client_id=assessment.client_id,
        instrument_id=assessment.instrument_id,
        instrument_version=assessment.instrument_version,
        needs=needs,
    )


async def create_assessment(
    uow: UnitOfWork,
    *,
    client_id: UUID,
    instrument: Instrument,
    answers: Mapping[str, str],
    result: ScoreResult,
    assessed_by: str,
    assessment_id: UUID | None = None,
    flags_already_raised: Collection[FlagType] = (),
) -> AssessmentPublic:
    """Store an assessment and raise a crisis flag per crisis type its answers name, except
    those its draft raised already (`flags_already_raised`, with the draft's id as
    `assessment_id`: the draft's flags then belong to the assessment)."""
    connection = uow.connection
    assessment_id = assessment_id or uuid4()
    now = datetime.now(UTC)
    await connection.execute(
        """
        INSERT INTO assessments (
            id, client_id, instrument_id, instrument_version, answers, needs, explanation,
            total_points, crisis, computed_risk_level, computed_priority, risk_level, priority,
            assessed_by, created_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $10, $11, $12, $13)
        """,
        assessment_id,
        client_id,
        instrument.id,
        instrument.version,
        dict(answers),
        [need.model_dump(mode="json") for need in result.needs],
        [contribution.model_dump(mode="json") for contribution in result.explanation],
        result.total_points,
        result.crisis,
        result.risk_level,
        result.priority,
        assessed_by,
        now,
    )
    if flags_already_raised:
        await connection.execute(
            "UPDATE flags SET assessment_id = $1 WHERE draft_id = $1", assessment_id
        )
    flags = await raise_crisis_flags(
        uow,
        client_id=client_id,
        flag_types=[t for t in result.crisis_flags if t not in flags_already_raised],
        assessment_id=assessment_id,
        raised_by=assessed_by,
        raised_at=now,
        publish=False,
    )
    assessment = await get_assessment(connection, client_id=client_id, assessment_id=assessment_id)
    assert assessment is not None
    # The assessment first, then its flags: a consumer sees the level before the alarm's cause.
    uow.publish(_assessed_event(assessment, await client_context(connection, client_id)))
    protected_needs = _protected_needs_event(assessment)
    if protected_needs is not None:
        uow.publish(protected_needs)
    uow.publish(*(_flag_event(flag) for flag in flags))
    return assessment


async def get_assessment(
    connection: asyncpg.Connection, *, client_id: UUID, assessment_id: UUID
) -> AssessmentPublic | None:
    row = await connection.fetchrow(
        f"SELECT {_ASSESSMENT_COLUMNS} FROM assessments s WHERE s.id = $1 AND s.client_id = $2",
        assessment_id,
        client_id,
    )
    return AssessmentPublic.model_validate(dict(row)) if row else None


async def list_assessments(
    connection: asyncpg.Connection, *, client_id: UUID, after: Keyset | None, limit: int
) -> list[AssessmentPublic]:
    """Newest first, keyset-paginated on (created_at, id)."""
    rows = await connection.fetch(
        f"SELECT {_ASSESSMENT_COLUMNS} FROM assessments s WHERE s.client_id = $1 "
        "AND ($2::timestamptz IS NULL OR (s.created_at, s.id) < ($2, $3)) "
        "ORDER BY s.created_at DESC, s.id DESC LIMIT $4",
        client_id,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
    return [AssessmentPublic.model_validate(dict(row)) for row in rows]


async def lock_assessment(
    connection: asyncpg.Connection, *, client_id: UUID, assessment_id: UUID
) -> AssessmentPublic | None:
    """The assessment, locked until the transaction ends (overrides of it queue up)."""
    found = await connection.fetchval(
        "SELECT id FROM assessments WHERE id = $1 AND client_id = $2 FOR UPDATE",
        assessment_id,
        client_id,
    )
    if found is None:
        return None
    return await get_assessment(connection, client_id=client_id, assessment_id=assessment_id)


async def override_risk(
    uow: UnitOfWork,
    *,
    assessment: AssessmentPublic,
    instrument: Instrument,
    data: OverrideCreate,
    overridden_by: str,
) -> AssessmentPublic:
    """Set the level in force, with the reason, beside the computed one; publish it again."""
    connection = uow.connection
    await connection.execute(
        "INSERT INTO assessment_overrides "
        "(id, assessment_id, risk_level, reason, overridden_by, overridden_at) "
        "VALUES ($1, $2, $3, $4, $5, $6)",
        uuid4(),
        assessment.id,
        data.risk_level,
        data.reason,
        overridden_by,
        datetime.now(UTC),
    )
    await connection.execute(
        "UPDATE assessments SET risk_level = $2, priority = $3 WHERE id = $1",
        assessment.id,
        data.risk_level,
        priority_of(instrument, data.risk_level),
    )
    updated = await get_assessment(
        connection, client_id=assessment.client_id, assessment_id=assessment.id
    )
    assert updated is not None
    uow.publish(_assessed_event(updated, await client_context(connection, updated.client_id)))
    return updated


# --- flags ------------------------------------------------------------------------------------

FLAG_COLUMNS = """
    f.id, f.client_id, f.flag_type, f.severity, f.source, f.assessment_id, f.note, f.raised_by,
    f.raised_at, f.expires_at, f.acknowledged_by, f.acknowledged_at, f.resolved_by,
    f.resolved_at, f.resolution_note,
    CASE WHEN f.resolved_at IS NOT NULL THEN 'resolved'
         WHEN f.expires_at <= now() THEN 'expired'
         ELSE 'active' END AS status
"""
IS_ACTIVE = "f.resolved_at IS NULL AND (f.expires_at IS NULL OR f.expires_at > now())"


def _flag_event(flag: FlagPublic) -> EventData:
    """One event per flag, on the general topic or the protected one, never both."""
    general = flag_travels_general(flag.flag_type, severity=flag.severity)
    return (FlagRaised if general else ProtectedFlagRaised)(
        flag_id=flag.id,
        client_id=flag.client_id,
        flag_type=flag.flag_type,
        severity=flag.severity,
        crisis=flag.severity is FlagSeverity.CRISIS,
        source=flag.source,
        assessment_id=flag.assessment_id,
        raised_by=flag.raised_by,
        raised_at=flag.raised_at,
    )


async def _insert_flag(
    uow: UnitOfWork,
    *,
    client_id: UUID,
    flag_type: FlagType,
    severity: FlagSeverity,
    source: Literal["assessment", "manual"],
    assessment_id: UUID | None,
    note: str | None,
    expires_at: datetime | None,
    raised_by: str,
    raised_at: datetime,
    draft_id: UUID | None = None,
) -> FlagPublic:
    row = await uow.connection.fetchrow(
        f"""
        INSERT INTO flags AS f (id, client_id, flag_type, severity, source, assessment_id, note,
                                raised_by, raised_at, expires_at, draft_id)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
        RETURNING {FLAG_COLUMNS}
        """,
        uuid4(),
        client_id,
        flag_type,
        severity,
        source,
        assessment_id,
        note,
        raised_by,
        raised_at,
        expires_at,
        draft_id,
    )
    return FlagPublic.model_validate(dict(row))


async def raise_crisis_flags(
    uow: UnitOfWork,
    *,
    client_id: UUID,
    flag_types: Iterable[FlagType],
    raised_by: str,
    raised_at: datetime,
    assessment_id: UUID | None = None,
    draft_id: UUID | None = None,
    publish: bool = True,
) -> list[FlagPublic]:
    """One crisis flag per type a crisis answer named, from an assessment or (at once, before
    it is complete) from its draft. `publish=False`: the caller publishes them after its own
    event, so a consumer sees the assessment before the alarm's cause."""
    flags = [
        await _insert_flag(
            uow,
            client_id=client_id,
            flag_type=flag_type,
            severity=FlagSeverity.CRISIS,
            source="assessment",
            assessment_id=assessment_id,
            note=None,
            expires_at=None,
            raised_by=raised_by,
            raised_at=raised_at,
            draft_id=draft_id,
        )
        for flag_type in flag_types
    ]
    if publish:
        uow.publish(*(_flag_event(flag) for flag in flags))
    return flags


async def raise_flag(
    uow: UnitOfWork, *, client_id: UUID, data: FlagCreate, raised_by: str
) -> FlagPublic:
    """A worker raises a flag by hand; `FlagRaised` goes out without the note."""
    flag = await _insert_flag(
        uow,
        client_id=client_id,
        flag_type=data.flag_type,
        severity=data.severity,
        source="manual",
        assessment_id=None,
        note=data.note,
        expires_at=data.expires_at,
        raised_by=raised_by,
        raised_at=datetime.now(UTC),
    )
    uow.publish(_flag_event(flag))
    return flag


async def list_flags(
    connection: asyncpg.Connection,
    *,
    client_id: UUID,
    include_inactive: bool,
    after: Keyset | None,
    limit: int,
) -> list[FlagPublic]:
    """Newest first, keyset-paginated on (raised_at, id); only active ones unless asked."""
    rows = await connection.fetch(
        f"SELECT {FLAG_COLUMNS} FROM flags f WHERE f.client_id = $1 "
        f"AND ($2 OR ({IS_ACTIVE})) "
        "AND ($3::timestamptz IS NULL OR (f.raised_at, f.id) < ($3, $4)) "
        "ORDER BY f.raised_at DESC, f.id DESC LIMIT $5",
        client_id,
        include_inactive,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
    return [FlagPublic.model_validate(dict(row)) for row in rows]


async def get_flag(
    connection: asyncpg.Connection, *, client_id: UUID, flag_id: UUID, for_update: bool = False
) -> FlagPublic | None:
    """`for_update` locks the flag until the transaction ends: two acknowledgements of one flag
    cannot both win."""
    row = await connection.fetchrow(
        f"SELECT {FLAG_COLUMNS} FROM flags f WHERE f.id = $1 AND f.client_id = $2"
        + (" FOR UPDATE" if for_update else ""),
        flag_id,
        client_id,
    )
    return FlagPublic.model_validate(dict(row)) if row else None


class FlagStateConflict(Exception):
    """The flag's state does not allow the step: raised -> acknowledged -> resolved, each once
    (a flag may also be resolved without an acknowledgement)."""

    def __init__(self, slug: str, title: str, detail: str) -> None:
        super().__init__(detail)
        self.slug, self.title, self.detail = slug, title, detail


async def acknowledge_flag(
    connection: asyncpg.Connection, *, flag: FlagPublic, acknowledged_by: str
) -> FlagPublic:
    """Someone has seen the flag and is acting (FlagStateConflict if acknowledged or resolved
    already). Call with the flag locked (get_flag(for_update=True))."""
    if flag.acknowledged_at is not None:
        raise FlagStateConflict(
            "flag-already-acknowledged",
            "Flag already acknowledged",
            f"{flag.acknowledged_by} acknowledged this flag at {flag.acknowledged_at.isoformat()}.",
        )
    if flag.resolved_at is not None:
        raise FlagStateConflict("flag-resolved", "Flag resolved", "This flag is resolved already.")
    row = await connection.fetchrow(
        "UPDATE flags AS f SET acknowledged_by = $2, acknowledged_at = $3 WHERE f.id = $1 "
        f"RETURNING {FLAG_COLUMNS}",
        flag.id,
        acknowledged_by,
        datetime.now(UTC),
    )
    return FlagPublic.model_validate(dict(row))


def acknowledged_event(flag: FlagPublic) -> FlagAcknowledged:
    """What an acknowledgement publishes (ids only), for notifications to stop escalating."""
    assert flag.acknowledged_by is not None and flag.acknowledged_at is not None
    return FlagAcknowledged(
        flag_id=flag.id,
        client_id=flag.client_id,
        acknowledged_by=flag.acknowledged_by,
        acknowledged_at=flag.acknowledged_at,
    )


async def resolve_flag(
    connection: asyncpg.Connection, *, flag: FlagPublic, note: str, resolved_by: str
) -> FlagPublic:
    """Resolve the flag with a note on how (FlagStateConflict if resolved already). Call with
    the flag locked."""
    if flag.resolved_at is not None:
        raise FlagStateConflict(
            "flag-already-resolved",
            "Flag already resolved",
            f"{flag.resolved_by} resolved this flag at {flag.resolved_at.isoformat()}.",
        )
    row = await connection.fetchrow(
        "UPDATE flags AS f SET resolved_by = $2, resolved_at = $3, resolution_note = $4 "
        f"WHERE f.id = $1 RETURNING {FLAG_COLUMNS}",
        flag.id,
        resolved_by,
        datetime.now(UTC),
        note,
    )
    return FlagPublic.model_validate(dict(row))
