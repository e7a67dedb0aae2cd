"""Every source of due work `GET /v1/work` asks, in one list: each feature adds its own."""

from __future__ import annotations

from services.planning.notes.work import notes_awaiting_cosignature, unsigned_drafts
from services.planning.plans.work import plans_awaiting_approval
from services.planning.reviews.work import crises, reviews_due
from services.planning.transfers.work import transfers_awaiting_answer
from services.planning.work.models import WorkSource
from services.planning.work.unassigned import unassigned_cases

WORK_SOURCES: list[WorkSource] = [
    crises,
    reviews_due,
    unassigned_cases,
    plans_awaiting_approval,
    unsigned_drafts,
    notes_awaiting_cosignature,
    transfers_awaiting_answer,
]
