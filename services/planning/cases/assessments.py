"""Cases from assessments and crises, as intake's events report them.

- `ClientAssessed` (general topic) and `ProtectedNeedsAssessed` (protected topic) arrive in
  no fixed order: each assessment's needs and levels are kept as they arrive
  (`assessment_needs`, `assessments_received`) and the client's open case in their
  organisation follows its latest assessment: needs, risk level, and a review by the new
  cadence. With needs and no open case, one opens (worker: the client's current owner).
  The same assessment delivered again, under any event id, changes nothing; republished with
  an overridden risk level, it updates the level and the review.
- `ProtectedFlagRaised` with `crisis`: a review due now and a crisis on top of due work
  (reviews/work.py); with no open case, one opens, unassigned, for the team's supervisors.
  The flag's type is never kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

import asyncpg

from services.planning.cases.lookup import CASE_COLUMNS, Case
from services.planning.cases.opening import SYSTEM, case_for_client, open_case, open_case_of
from services.planning.reviews.service import schedule_review
from services.planning.timeline.service import record_timeline
from shared.auth.facts import load_facts
from shared.events.assessment import (
    ClientAssessed,
    ProtectedFlagRaised,
    ProtectedNeedsAssessed,
    RiskLevel,
)
from shared.events.envelope import Event
from shared.messaging.outbox import UnitOfWork

# A protected need whose category has no class yet is handled as protected all the same.
UNCLASSIFIED = "unclassified"


async def on_client_assessed(connection: asyncpg.Connection, event: Event) -> None:
    data = event.data
    assert isinstance(data, ClientAssessed)
    now = event.time
    seen = await connection.fetchval(
        "SELECT risk_level FROM assessments_received WHERE assessment_id = $1", data.assessment_id
    )
    if seen == data.risk_level.value:
        return  # this assessment again, under another event id: it changes nothing
    await connection.execute(
        "INSERT INTO assessments_received (assessment_id, client_id, risk_level, "
        "preferred_language, received_at) VALUES ($1, $2, $3, $4, $5) "
        "ON CONFLICT (assessment_id) DO UPDATE SET risk_level = EXCLUDED.risk_level, "
        "preferred_language = EXCLUDED.preferred_language, received_at = EXCLUDED.received_at",
        data.assessment_id,
        data.client_id,
        data.risk_level.value,
        data.preferred_language,
        now,
    )
    await _keep_needs(
        connection,
        data.assessment_id,
        data.client_id,
        [(n.category, n.severity.value, None) for n in data.needs],
        now,
    )
    uow = UnitOfWork(connection)
    case = await _follow_assessment(uow, data.client_id, data.assessment_id, now)
    if case is None:
        case = await case_for_client(connection, data.client_id)
    if case is not None:
        await record_timeline(
            connection,
            case_id=case.id,
            client_id=data.client_id,
            kind="client.assessed",
            occurred_at=now,
            subject_type="assessment",
            subject_id=data.assessment_id,
            codes={"risk_level": data.risk_level.value},
            source="intake",
            event_id=UUID(event.id),
        )
    await uow.flush()


async def on_protected_needs_assessed(connection: asyncpg.Connection, event: Event) -> None:
    data = event.data
    assert isinstance(data, ProtectedNeedsAssessed)
    now = event.time
    needs = [
        (n.category, n.severity.value, n.data_class.value if n.data_class else UNCLASSIFIED)
        for n in data.needs
    ]
    await _keep_needs(connection, data.assessment_id, data.client_id, needs, now)
    uow = UnitOfWork(connection)
    await _follow_assessment(uow, data.client_id, data.assessment_id, now)
    await uow.flush()


async def _keep_needs(
    connection: asyncpg.Connection,
    assessment_id: UUID,
    client_id: UUID,
    needs: Sequence[tuple[str, str, str | None]],
    now: datetime,
) -> None:
    await connection.executemany(
        "INSERT INTO assessment_needs (assessment_id, client_id, category, severity, "
        "data_class, received_at) VALUES ($1, $2, $3, $4, $5, $6) "
        "ON CONFLICT (assessment_id, category) DO NOTHING",
        [(assessment_id, client_id, c, s, d, now) for c, s, d in needs],
    )


async def _follow_assessment(
    uow: UnitOfWork, client_id: UUID, assessment_id: UUID, now: datetime
) -> Case | None:
    """Bring the client's open case up to this assessment (opening one when it shows needs);
    the case, or None when there is none to follow it."""
    connection = uow.connection
    facts = await load_facts(connection, client_id)
    if facts is None or facts.organization_id is None:
        return None  # a client planning does not know (yet): nobody to open a case for
    received = await connection.fetchrow(
        "SELECT risk_level, preferred_language FROM assessments_received WHERE assessment_id = $1",
        assessment_id,
    )
    risk_level = RiskLevel(received["risk_level"]) if received else None
    language = received["preferred_language"] if received else None
    case = await open_case_of(connection, client_id, facts.organization_id, lock=True)
    if case is None:
        has_needs = await connection.fetchval(
            "SELECT EXISTS (SELECT 1 FROM assessment_needs WHERE assessment_id = $1)",
            assessment_id,
        )
        if not has_needs:
            return None
        opened = await open_case(
            uow,
            client_id=client_id,
            organization_id=facts.organization_id,
            team_id=facts.team_id,
            worker_id=facts.owner_id,
            source="assessment",
            opened_by=SYSTEM,
            now=now,
            assessment_id=assessment_id,
            risk_level=risk_level,
            preferred_language=language,
            review_reason=None,
        )
        assert opened is not None, "the open case's row is locked: none can appear meanwhile"
        case = opened
    elif case.assessment_id == assessment_id and case.risk_level == (
        risk_level.value if risk_level else None
    ):
        # This assessment again (redelivered, republished unchanged, or its other half
        # arriving): only needs it adds.
        await _copy_needs(connection, case.id, assessment_id, now, replace=False)
        return case
    await _copy_needs(
        connection, case.id, assessment_id, now, replace=case.assessment_id != assessment_id
    )
    row = await connection.fetchrow(
        "UPDATE cases SET assessment_id = $2, risk_level = $3, "
        "preferred_language = coalesce($4, preferred_language), version = version + 1, "
        f"updated_at = $5 WHERE id = $1 RETURNING {CASE_COLUMNS}",
        case.id,
        assessment_id,
        risk_level.value if risk_level else None,
        language,
        now,
    )
    updated = Case.of(row)
    await schedule_review(uow, updated, reason="assessment", now=now)
    return updated


async def _copy_needs(
    connection: asyncpg.Connection,
    case_id: UUID,
    assessment_id: UUID,
    now: datetime,
    *,
    replace: bool,
) -> None:
    """The case's needs from the assessment's (all of them replaced by a new assessment)."""
    if replace:
        await connection.execute("DELETE FROM case_needs WHERE case_id = $1", case_id)
    await connection.execute(
        "INSERT INTO case_needs (case_id, category, severity, data_class, assessment_id, "
        "updated_at) SELECT $1, category, severity, data_class, assessment_id, $3 "
        "FROM assessment_needs WHERE assessment_id = $2 "
        "ON CONFLICT (case_id, category) DO UPDATE SET severity = EXCLUDED.severity, "
        "data_class = EXCLUDED.data_class, assessment_id = EXCLUDED.assessment_id, "
        "updated_at = EXCLUDED.updated_at",
        case_id,
        assessment_id,
        now,
    )


async def on_protected_flag_raised(connection: asyncpg.Connection, event: Event) -> None:
    data = event.data
    assert isinstance(data, ProtectedFlagRaised)
    if not data.crisis:
        case = await case_for_client(connection, data.client_id)
        if case is not None:
            await _flag_entry(connection, case, data, event)
        return
    facts = await load_facts(connection, data.client_id)
    if facts is None or facts.organization_id is None:
        return
    known = await connection.fetchval(
        "SELECT EXISTS (SELECT 1 FROM case_crises WHERE flag_id = $1)", data.flag_id
    )
    if known:
        return
    uow = UnitOfWork(connection)
    case = await open_case_of(connection, data.client_id, facts.organization_id, lock=True)
    if case is None:
        case = await open_case(
            uow,
            client_id=data.client_id,
            organization_id=facts.organization_id,
            team_id=facts.team_id,
            worker_id=None,
            source="crisis",
            opened_by=SYSTEM,
            now=data.raised_at,
            review_reason=None,
        )
        assert case is not None
    review = await schedule_review(
        uow, case, reason="crisis", now=data.raised_at, due_at=data.raised_at
    )
    await connection.execute(
        "INSERT INTO case_crises (flag_id, case_id, client_id, raised_at, review_id) "
        "VALUES ($1, $2, $3, $4, $5)",
        data.flag_id,
        case.id,
        data.client_id,
        data.raised_at,
        review.id,
    )
    await _flag_entry(connection, case, data, event)
    await uow.flush()


async def _flag_entry(
    connection: asyncpg.Connection, case: Case, data: ProtectedFlagRaised, event: Event
) -> None:
    """A crisis as kind `crisis`, another protected flag as `flag.raised`: severity only,
    never the type."""
    await record_timeline(
        connection,
        case_id=case.id,
        client_id=data.client_id,
        kind="crisis" if data.crisis else "flag.raised",
        occurred_at=data.raised_at,
        subject_type="flag",
        subject_id=data.flag_id,
        codes={"severity": data.severity.value, "crisis": "true" if data.crisis else "false"},
        source="intake",
        event_id=UUID(event.id),
    )
