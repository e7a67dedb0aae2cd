"""Keeping the directory current from events, and finding who a rule's recipients are."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg

from shared.auth.facts import load_facts
from shared.events.contracts import CaseAssigned
from shared.events.planning import CaseClosed, CaseOpened, ReviewScheduled, WorkerUpdated
from shared.events.referrals import ReferralMade


async def apply_worker(connection: asyncpg.Connection, data: WorkerUpdated) -> None:
    """Only a newer version replaces what is known (events may be redelivered)."""
    await connection.execute(
        """
        INSERT INTO staff (organization_id, worker_id, team_id, role, active, languages, version)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        ON CONFLICT (organization_id, worker_id) DO UPDATE SET
            team_id = EXCLUDED.team_id, role = EXCLUDED.role, active = EXCLUDED.active,
            languages = EXCLUDED.languages, version = EXCLUDED.version
        WHERE staff.version < EXCLUDED.version
        """,
        data.organization_id,
        data.worker_id,
        data.team_id,
        data.role,
        data.active,
        data.languages,
        data.version,
    )


async def apply_case_opened(connection: asyncpg.Connection, data: CaseOpened) -> None:
    await connection.execute(
        """
        INSERT INTO cases (case_id, client_id, organization_id, team_id, worker_id, status,
                           updated_at)
        VALUES ($1, $2, $3, $4, $5, 'open', $6)
        ON CONFLICT (case_id) DO NOTHING
        """,
        data.case_id,
        data.client_id,
        data.organization_id,
        data.team_id,
        data.worker_id,
        data.opened_at,
    )


async def apply_case_assigned(connection: asyncpg.Connection, data: CaseAssigned) -> None:
    if data.case_id is None or data.organization_id is None:
        return  # the client's access facts (shared) keep the assignment
    await connection.execute(
        """
        INSERT INTO cases (case_id, client_id, organization_id, team_id, worker_id, status,
                           updated_at)
        VALUES ($1, $2, $3, $4, $5, 'open', $6)
        ON CONFLICT (case_id) DO UPDATE SET
            team_id = EXCLUDED.team_id, worker_id = EXCLUDED.worker_id,
            updated_at = EXCLUDED.updated_at
        WHERE cases.updated_at <= EXCLUDED.updated_at
        """,
        data.case_id,
        data.client_id,
        data.organization_id,
        data.team_id,
        data.worker_id,
        data.assigned_at,
    )


async def apply_case_closed(connection: asyncpg.Connection, data: CaseClosed) -> None:
    await connection.execute("UPDATE cases SET status = 'closed' WHERE case_id = $1", data.case_id)


async def apply_referral(connection: asyncpg.Connection, data: ReferralMade) -> None:
    await connection.execute(
        """
        INSERT INTO referral_refs (referral_id, client_id, sending_organization_id,
                                   receiving_organization_id, made_by)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (referral_id) DO NOTHING
        """,
        data.referral_id,
        data.client_id,
        data.sending_organization_id,
        data.receiving_organization_id,
        data.made_by,
    )


async def referral_made_by(connection: asyncpg.Connection, referral_id: UUID) -> str | None:
    made_by: str | None = await connection.fetchval(
        "SELECT made_by FROM referral_refs WHERE referral_id = $1", referral_id
    )
    return made_by


async def apply_review(connection: asyncpg.Connection, data: ReviewScheduled) -> None:
    await connection.execute(
        """
        INSERT INTO reviews (review_id, case_id, client_id, organization_id, team_id, worker_id,
                             due_at, completed_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)
        ON CONFLICT (review_id) DO UPDATE SET
            team_id = EXCLUDED.team_id, worker_id = EXCLUDED.worker_id, due_at = EXCLUDED.due_at
        """,
        data.review_id,
        data.case_id,
        data.client_id,
        data.organization_id,
        data.team_id,
        data.worker_id,
        data.due_at,
    )


async def complete_review(
    connection: asyncpg.Connection, review_id: UUID, completed_at: datetime
) -> None:
    await connection.execute(
        "UPDATE reviews SET completed_at = $2 WHERE review_id = $1", review_id, completed_at
    )


async def review_is_open(connection: asyncpg.Connection, review_id: UUID) -> bool:
    return bool(
        await connection.fetchval(
            "SELECT completed_at IS NULL FROM reviews WHERE review_id = $1", review_id
        )
    )


async def team_supervisors(
    connection: asyncpg.Connection, organization_id: str, team_id: str | None
) -> list[str]:
    if team_id is None:
        return []
    rows = await connection.fetch(
        "SELECT worker_id FROM staff WHERE organization_id = $1 AND team_id = $2 "
        "AND role = 'supervisor' AND active ORDER BY worker_id",
        organization_id,
        team_id,
    )
    return [row["worker_id"] for row in rows]


async def on_call(connection: asyncpg.Connection, organization_id: str) -> list[str]:
    rows = await connection.fetch(
        "SELECT user_id FROM on_call WHERE organization_id = $1 ORDER BY position",
        organization_id,
    )
    return [row["user_id"] for row in rows]


async def on_call_version(connection: asyncpg.Connection, organization_id: str) -> int:
    version = await connection.fetchval(
        "SELECT version FROM on_call_versions WHERE organization_id = $1", organization_id
    )
    return int(version or 0)


async def replace_on_call(
    connection: asyncpg.Connection,
    *,
    organization_id: str,
    user_ids: list[str],
    updated_by: str,
    now: datetime,
) -> int:
    """Replace the organisation's on-call list (duplicates dropped, order kept); the new
    version."""
    await connection.execute("DELETE FROM on_call WHERE organization_id = $1", organization_id)
    unique = list(dict.fromkeys(user_ids))
    await connection.executemany(
        "INSERT INTO on_call (organization_id, position, user_id) VALUES ($1, $2, $3)",
        [(organization_id, position, user) for position, user in enumerate(unique)],
    )
    version: int = await connection.fetchval(
        """
        INSERT INTO on_call_versions AS v (organization_id, version, updated_by, updated_at)
        VALUES ($1, 1, $2, $3)
        ON CONFLICT (organization_id) DO UPDATE SET
            version = v.version + 1, updated_by = EXCLUDED.updated_by,
            updated_at = EXCLUDED.updated_at
        RETURNING version
        """,
        organization_id,
        updated_by,
        now,
    )
    return version


async def lock_on_call(connection: asyncpg.Connection, organization_id: str) -> None:
    """Serialise changes of one organisation's list (the version check then holds)."""
    await connection.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('on_call:' || $1, 0))", organization_id
    )


async def client_owner(
    connection: asyncpg.Connection, client_id: UUID
) -> tuple[str | None, str | None, str | None]:
    """(organisation, team, assigned worker) of a client, from its access facts."""
    facts = await load_facts(connection, client_id)
    if facts is None:
        return None, None, None
    return facts.organization_id, facts.team_id, facts.owner_id
