"""Scheduling and completing case reviews.

One review is scheduled per open case at a time: scheduling (on opening, on each new
assessment, after each completed review, on a crisis) supersedes the one before and keeps
`cases.next_review_due_at` in step. Closing a case supersedes its scheduled review.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID, uuid4

import asyncpg

from services.planning.cases.lookup import Case
from services.planning.refusals import Refusal
from services.planning.reviews.cadence import next_review_due
from services.planning.reviews.models import (
    REVIEW_COLUMNS,
    Attendee,
    ReviewPublic,
    ReviewReason,
    ReviewStatus,
)
from services.planning.timeline.service import record_timeline
from shared.events.assessment import RiskLevel
from shared.events.planning import ReviewCompleted, ReviewOutcome, ReviewScheduled
from shared.messaging.outbox import UnitOfWork


class ReviewRefused(Refusal):
    def title(self) -> str:
        return "The review cannot be completed"


def _risk(case: Case) -> RiskLevel | None:
    return RiskLevel(case.risk_level) if case.risk_level else None


async def schedule_review(
    uow: UnitOfWork,
    case: Case,
    *,
    reason: ReviewReason,
    now: datetime,
    due_at: datetime | None = None,
) -> ReviewPublic:
    """Schedule the case's next review (by the cadence of its risk level unless `due_at` is
    given), superseding the one scheduled before; except that a crisis review stays until it
    is held: the scheduled crisis review is returned instead."""
    connection = uow.connection
    if reason != "crisis":
        crisis = await connection.fetchrow(
            f"SELECT {REVIEW_COLUMNS} FROM reviews WHERE case_id = $1 AND status = 'scheduled' "
            "AND reason = 'crisis'",
            case.id,
        )
        if crisis is not None:
            return ReviewPublic.model_validate(dict(crisis))
    risk_level = _risk(case)
    review = ReviewPublic(
        id=uuid4(),
        case_id=case.id,
        due_at=due_at if due_at is not None else next_review_due(risk_level, now),
        reason=reason,
        risk_level=risk_level,
        status=ReviewStatus.SCHEDULED,
        outcome=None,
        attendees=[],
        scheduled_at=now,
        completed_by=None,
        completed_at=None,
    )
    await supersede_scheduled(connection, case.id)
    await connection.execute(
        "INSERT INTO reviews (id, case_id, client_id, due_at, reason, risk_level, status, "
        "scheduled_at) VALUES ($1, $2, $3, $4, $5, $6, 'scheduled', $7)",
        review.id,
        case.id,
        case.client_id,
        review.due_at,
        reason,
        risk_level.value if risk_level else None,
        now,
    )
    await connection.execute(
        "UPDATE cases SET next_review_due_at = $2 WHERE id = $1", case.id, review.due_at
    )
    uow.publish(
        ReviewScheduled(
            case_id=case.id,
            client_id=case.client_id,
            organization_id=case.organization_id,
            review_id=review.id,
            team_id=case.team_id,
            worker_id=case.worker_id,
            due_at=review.due_at,
            risk_level=risk_level,
            reason=reason,
        )
    )
    codes = {"reason": reason, **({"risk_level": risk_level.value} if risk_level else {})}
    await record_timeline(
        connection,
        case_id=case.id,
        client_id=case.client_id,
        kind="review.scheduled",
        occurred_at=now,
        subject_type="review",
        subject_id=review.id,
        codes=codes,
    )
    return review


async def supersede_scheduled(connection: asyncpg.Connection, case_id: UUID) -> None:
    await connection.execute(
        "UPDATE reviews SET status = 'superseded' WHERE case_id = $1 AND status = 'scheduled'",
        case_id,
    )


async def load_review(
    connection: asyncpg.Connection, case_id: UUID, review_id: UUID, *, lock: bool = False
) -> ReviewPublic | None:
    row = await connection.fetchrow(
        f"SELECT {REVIEW_COLUMNS} FROM reviews WHERE id = $1 AND case_id = $2"
        + (" FOR UPDATE" if lock else ""),
        review_id,
        case_id,
    )
    return ReviewPublic.model_validate(dict(row)) if row else None


async def list_reviews(connection: asyncpg.Connection, case_id: UUID) -> list[ReviewPublic]:
    rows = await connection.fetch(
        f"SELECT {REVIEW_COLUMNS} FROM reviews WHERE case_id = $1 ORDER BY scheduled_at, id",
        case_id,
    )
    return [ReviewPublic.model_validate(dict(row)) for row in rows]


async def complete_review(
    uow: UnitOfWork,
    case: Case,
    review: ReviewPublic,
    *,
    outcome: ReviewOutcome,
    attendees: list[Attendee],
    by: str,
    now: datetime,
) -> ReviewPublic:
    """Record the review as held and schedule the next one (raises ReviewRefused when the
    review is not the scheduled one, or the case is closed). `case` was read locked."""
    if case.status == "closed":
        raise ReviewRefused(409, "case-closed", "This case is closed: reopen it first.")
    if review.status is not ReviewStatus.SCHEDULED:
        raise ReviewRefused(
            409, "review-not-scheduled", f"This review is {review.status.value}, not scheduled."
        )
    completed = review.model_copy(
        update={
            "status": ReviewStatus.COMPLETED,
            "outcome": outcome,
            "attendees": attendees,
            "completed_by": by,
            "completed_at": now,
        }
    )
    await uow.connection.execute(
        "UPDATE reviews SET status = 'completed', outcome = $2, attendees = $3, "
        "completed_by = $4, completed_at = $5 WHERE id = $1",
        review.id,
        outcome.value,
        [a.model_dump(mode="json") for a in attendees],
        by,
        now,
    )
    uow.publish(
        ReviewCompleted(
            case_id=case.id,
            client_id=case.client_id,
            organization_id=case.organization_id,
            review_id=review.id,
            outcome=outcome,
            completed_by=by,
            completed_at=now,
        )
    )
    await record_timeline(
        uow.connection,
        case_id=case.id,
        client_id=case.client_id,
        kind="review.completed",
        occurred_at=now,
        subject_type="review",
        subject_id=review.id,
        codes={"outcome": outcome.value},
    )
    await schedule_review(uow, case, reason="cadence", now=now)
    return completed
