"""Reading cases as the API shows them: the row, its needs (protected ones only to the case's
own worker and its team's supervisors), and lists within the caller's scope."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg

from services.planning.cases.lookup import CASE_COLUMNS, Case
from services.planning.cases.models import CaseNeed, CasePublic
from shared.auth.principal import Principal, Role
from shared.events.planning import CaseStatus


def sees_protected_needs(principal: Principal, case: Case, *, break_glass: bool) -> bool:
    """The case's own worker, or a supervisor of its team (never through break-glass)."""
    if break_glass or principal.organization_id != case.organization_id:
        return False
    if case.worker_id is not None and principal.subject == case.worker_id:
        return True
    return (
        principal.has(Role.SUPERVISOR)
        and principal.team_id is not None
        and principal.team_id == case.team_id
    )


async def needs_of(
    connection: asyncpg.Connection, case_ids: list[UUID]
) -> dict[UUID, list[CaseNeed]]:
    rows = await connection.fetch(
        "SELECT case_id, category, severity, data_class, assessment_id FROM case_needs "
        "WHERE case_id = ANY($1::uuid[]) ORDER BY case_id, category",
        case_ids,
    )
    found: dict[UUID, list[CaseNeed]] = {case_id: [] for case_id in case_ids}
    for row in rows:
        found[row["case_id"]].append(
            CaseNeed(
                category=row["category"],
                severity=row["severity"],
                data_class=row["data_class"],
                assessment_id=row["assessment_id"],
            )
        )
    return found


def public(case: Case, needs: list[CaseNeed], *, protected_visible: bool) -> CasePublic:
    fields = {name: getattr(case, name) for name in CasePublic.model_fields if name != "needs"}
    shown = [need for need in needs if protected_visible or need.data_class is None]
    return CasePublic(**fields, needs=shown)


async def case_public(
    connection: asyncpg.Connection, case: Case, principal: Principal, *, break_glass: bool
) -> CasePublic:
    needs = (await needs_of(connection, [case.id]))[case.id]
    visible = sees_protected_needs(principal, case, break_glass=break_glass)
    return public(case, needs, protected_visible=visible)


async def list_cases(
    connection: asyncpg.Connection,
    principal: Principal,
    *,
    visible: tuple[str, list[str]],
    client_id: UUID | None,
    status: CaseStatus | None,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> list[CasePublic]:
    """Cases whose client is in the caller's scope (`visible`, a condition over client_access
    `a` from the policy, parameters from $1), of the caller's organisation, oldest first."""
    condition, parameters = visible
    values: list[object] = [*parameters, principal.organization_id]
    clauses = [condition, f"c.organization_id = ${len(values)}"]
    if client_id is not None:
        values.append(client_id)
        clauses.append(f"c.client_id = ${len(values)}")
    if status is not None:
        values.append(status.value)
        clauses.append(f"c.status = ${len(values)}")
    if after is not None:
        values += [after[0], after[1]]
        clauses.append(f"(c.opened_at, c.id) > (${len(values) - 1}, ${len(values)})")
    values.append(limit)
    columns = ", ".join(f"c.{name.strip()}" for name in CASE_COLUMNS.split(","))
    rows = await connection.fetch(
        f"SELECT {columns} FROM cases c JOIN client_access a ON a.client_id = c.client_id "
        f"WHERE {' AND '.join(clauses)} ORDER BY c.opened_at, c.id LIMIT ${len(values)}",
        *values,
    )
    cases = [Case.of(row) for row in rows]
    needs = await needs_of(connection, [case.id for case in cases])
    return [
        public(
            case,
            needs[case.id],
            protected_visible=sees_protected_needs(principal, case, break_glass=False),
        )
        for case in cases
    ]
