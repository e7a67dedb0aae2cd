"""Caseloads: reading a worker's open cases and a team's load (one query each), and ranking
who could take a case. The weights per risk level are data (weights.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from functools import cache

import asyncpg
import pycountry

from services.planning.caseloads.models import (
    CaseloadEntry,
    Load,
    Reason,
    Suggestion,
    WorkerLoad,
)
from services.planning.caseloads.weights import RISK_ORDER, UNKNOWN

_RANK = {level: rank for rank, level in enumerate(RISK_ORDER)}

_LOAD = """
SELECT w.worker_id, w.display_name, w.role, w.languages, w.capacity_points,
       count(c.id) AS open_cases,
       coalesce(sum(coalesce(($4::jsonb ->> c.risk_level)::numeric, $5::numeric))
                FILTER (WHERE c.id IS NOT NULL), 0) AS weighted_caseload,
       count(c.id) FILTER (WHERE c.next_review_due_at < $3) AS overdue_reviews
FROM workers w
LEFT JOIN cases c
       ON c.organization_id = w.organization_id AND c.worker_id = w.worker_id
      AND c.status <> 'closed'
WHERE w.organization_id = $1 AND {which}
GROUP BY w.worker_id, w.display_name, w.role, w.languages, w.capacity_points
ORDER BY w.worker_id
"""
TEAM_LOAD_QUERY = _LOAD.format(which="w.team_id = $2 AND w.active")
_WORKER_LOAD = _LOAD.format(which="w.worker_id = $2")


def weights_parameter(weights: Mapping[str, Decimal]) -> dict[str, str]:
    return {level: str(weight) for level, weight in weights.items()}


def load_of(
    *, open_cases: int, weighted: Decimal, capacity_points: int, overdue_reviews: int
) -> Load:
    remaining = Decimal(capacity_points) - weighted
    return Load(
        open_cases=open_cases,
        weighted_caseload=float(weighted),
        capacity_points=capacity_points,
        remaining_capacity=float(remaining),
        over_capacity=remaining < 0,
        overdue_reviews=overdue_reviews,
    )


async def team_load(
    connection: asyncpg.Connection,
    *,
    organization_id: str,
    team_id: str,
    now: datetime,
    weights: Mapping[str, Decimal],
) -> list[WorkerLoad]:
    """Each active worker of the team with their open cases (of any team: capacity is the
    person's), weighted, against their capacity; one query whatever the team's size."""
    rows = await connection.fetch(
        TEAM_LOAD_QUERY, organization_id, team_id, now, weights_parameter(weights), weights[UNKNOWN]
    )
    return [_worker_load(row) for row in rows]


async def worker_load(
    connection: asyncpg.Connection,
    *,
    organization_id: str,
    worker_id: str,
    now: datetime,
    weights: Mapping[str, Decimal],
) -> WorkerLoad | None:
    """One worker's load (active or not), as the team view counts it."""
    row = await connection.fetchrow(
        _WORKER_LOAD, organization_id, worker_id, now, weights_parameter(weights), weights[UNKNOWN]
    )
    return _worker_load(row) if row else None


def _worker_load(row: asyncpg.Record) -> WorkerLoad:
    return WorkerLoad(
        worker_id=row["worker_id"],
        display_name=row["display_name"],
        role=row["role"],
        languages=row["languages"],
        **load_of(
            open_cases=row["open_cases"],
            weighted=row["weighted_caseload"],
            capacity_points=row["capacity_points"],
            overdue_reviews=row["overdue_reviews"],
        ).model_dump(),
    )


async def worker_cases(
    connection: asyncpg.Connection,
    *,
    organization_id: str,
    worker_id: str,
    visible: tuple[str, Sequence[object]],
    now: datetime,
) -> list[CaseloadEntry]:
    """The worker's open cases the caller may see (`visible`: a client-access filter over
    `client_access a`, parameters from $3 on), highest risk first, then by review due."""
    clause, parameters = visible
    rows = await connection.fetch(
        "SELECT c.id, c.client_id, c.status, c.risk_level, c.next_review_due_at, "
        "c.last_contact_at, c.opened_at FROM cases c "
        "JOIN client_access a ON a.client_id = c.client_id "
        f"WHERE c.organization_id = $1 AND c.worker_id = $2 AND c.status <> 'closed' AND {clause}",
        organization_id,
        worker_id,
        *parameters,
    )
    entries = [
        CaseloadEntry(
            case_id=row["id"],
            client_id=row["client_id"],
            status=row["status"],
            risk_level=row["risk_level"],
            next_review_due_at=row["next_review_due_at"],
            review_overdue=row["next_review_due_at"] is not None
            and row["next_review_due_at"] < now,
            last_contact_at=row["last_contact_at"],
            days_since_last_contact=days_since(row["last_contact_at"], now),
            opened_at=row["opened_at"],
        )
        for row in rows
    ]
    return sorted(entries, key=_caseload_order)


def days_since(moment: datetime | None, now: datetime) -> int | None:
    if moment is None:
        return None
    return max((now - moment) // timedelta(days=1), 0)


def _caseload_order(entry: CaseloadEntry) -> tuple[int, bool, datetime, datetime, str]:
    due = entry.next_review_due_at
    return (
        _RANK.get(entry.risk_level or UNKNOWN, len(RISK_ORDER)),
        due is None,  # a case without a review due comes after those with one
        due or entry.opened_at,
        entry.opened_at,
        str(entry.case_id),
    )


@cache
def language_key(code: str) -> str:
    """One key per language whether written in ISO 639-1 or 639-3 (`pt` and `por` match)."""
    code = code.strip().lower()
    found = (
        pycountry.languages.get(alpha_2=code)
        if len(code) == 2
        else pycountry.languages.get(alpha_3=code)
    )
    return str(found.alpha_3) if found is not None else code


def _figure(value: float) -> str:
    return f"{value:g}"


def suggest(
    loads: Sequence[WorkerLoad], *, language: str | None, exclude: str | None
) -> list[Suggestion]:
    """Rank who could take a case: those who speak the client's language first, then the most
    remaining capacity, then by worker id; each with the reasons for its place."""
    wanted = language_key(language) if language else None
    ranked: list[tuple[tuple[bool, float, str], WorkerLoad, bool | None]] = []
    for worker in loads:
        if worker.worker_id == exclude:
            continue
        speaks = None if wanted is None else wanted in {language_key(x) for x in worker.languages}
        ranked.append(((not speaks, -worker.remaining_capacity, worker.worker_id), worker, speaks))
    ranked.sort(key=lambda item: item[0])
    suggestions: list[Suggestion] = []
    for rank, (_key, worker, speaks) in enumerate(ranked, start=1):
        reasons: list[Reason] = []
        if speaks:
            reasons.append(
                Reason(code="speaks_client_language", message="speaks the client's language")
            )
        elif speaks is False:
            reasons.append(
                Reason(
                    code="does_not_speak_client_language",
                    message="does not speak the client's language",
                )
            )
        capacity = _figure(worker.capacity_points)
        if worker.over_capacity:
            reasons.append(
                Reason(
                    code="over_capacity",
                    message=f"over capacity: {_figure(worker.weighted_caseload)} of {capacity}",
                )
            )
        else:
            reasons.append(
                Reason(
                    code="remaining_capacity",
                    message=f"remaining capacity {_figure(worker.remaining_capacity)} of {capacity}",
                )
            )
        suggestions.append(
            Suggestion(
                rank=rank,
                worker_id=worker.worker_id,
                display_name=worker.display_name,
                role=worker.role,
                speaks_client_language=speaks,
                load=Load.model_validate(worker.model_dump(include=set(Load.model_fields))),
                reasons=reasons,
            )
        )
    return suggestions
