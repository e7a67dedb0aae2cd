"""Service plans: versions of a case's plan, their drafts, agreement, approval and the life of
their goals, with their events and timeline entries, in the caller's transaction.

A case has at most one version being worked on (a draft, or one awaiting approval) and at most
one approved version in force (partial unique indexes say so too). An approved version's
content is never written again: revising copies it into a new draft (goal and action ids kept,
goals with their current status), and its approval supersedes the previous approved version.
The goals of the version in force change status and gather progress entries; their wording
does not change there.

Locks, always in this order: the case, then the plan (the approval effect runs under the
case's lock, as every other writer here).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from services.planning.cases.lookup import Case
from services.planning.plans import goals as goal_rules
from services.planning.plans.content import (
    Goal,
    InvalidContent,
    PlanContent,
    PlanContentInput,
    build_content,
)
from services.planning.plans.diff import diff
from services.planning.plans.models import (
    AgreementHow,
    AgreementPublic,
    GoalPublic,
    PlanDiff,
    PlanPublic,
    PlanStatus,
    PlanSummary,
    ProgressCreate,
    ProgressPublic,
)
from services.planning.refusals import Refusal
from services.planning.timeline.service import record_timeline
from shared.events.planning import CaseStatus, GoalStatus, GoalStatusChanged, PlanApproved
from shared.messaging.outbox import UnitOfWork

_COLUMNS = (
    "id, case_id, client_id, number, status, based_on, content, content_changed_at, "
    "agreement_how, agreement_at, agreement_recorded_by, agreement_recorded_at, row_version, "
    "created_by, created_at, updated_by, updated_at, approval_id, approved_by, approved_at"
)


@dataclass(frozen=True)
class Plan:
    """One stored version, as read."""

    id: UUID
    case_id: UUID
    client_id: UUID
    number: int
    status: PlanStatus
    based_on: UUID | None
    content: PlanContent
    content_changed_at: datetime
    agreement_how: AgreementHow | None
    agreement_at: datetime | None
    agreement_recorded_by: str | None
    agreement_recorded_at: datetime | None
    row_version: int
    created_by: str
    created_at: datetime
    updated_by: str
    updated_at: datetime
    approval_id: UUID | None
    approved_by: str | None
    approved_at: datetime | None

    @classmethod
    def of(cls, row: asyncpg.Record) -> Plan:
        values = dict(row)
        values["status"] = PlanStatus(values["status"])
        values["content"] = PlanContent.model_validate(values["content"])
        how = values["agreement_how"]
        values["agreement_how"] = AgreementHow(how) if how is not None else None
        return cls(**values)

    def goal(self, goal_id: UUID) -> Goal | None:
        return next((goal for goal in self.content.goals if goal.id == goal_id), None)


def _stored(content: PlanContent) -> dict[str, Any]:
    stored: dict[str, Any] = json.loads(content.model_dump_json())
    return stored


async def get_plan(
    connection: asyncpg.Connection, plan_id: UUID, *, lock: bool = False
) -> Plan | None:
    row = await connection.fetchrow(
        f"SELECT {_COLUMNS} FROM plans WHERE id = $1" + (" FOR UPDATE" if lock else ""), plan_id
    )
    return Plan.of(row) if row else None


async def case_needs(connection: asyncpg.Connection, case_id: UUID) -> frozenset[str]:
    rows = await connection.fetch("SELECT category FROM case_needs WHERE case_id = $1", case_id)
    return frozenset(row["category"] for row in rows)


def _writable_case(case: Case) -> None:
    if case.status == CaseStatus.CLOSED:
        raise Refusal(409, "case-closed", "The case is closed: reopen it to plan again.")


def not_draft(plan: Plan) -> Refusal:
    return Refusal(
        409,
        "plan-not-draft",
        f"This version is {plan.status.value}: only a draft changes. An approved version is "
        "never edited; revise it (`/revision`) to get a new draft.",
    )


def _draft(plan: Plan) -> None:
    if plan.status is not PlanStatus.DRAFT:
        raise not_draft(plan)


def _content(
    data: PlanContentInput, *, previous: PlanContent, needs: frozenset[str], now: datetime
) -> PlanContent:
    try:
        return build_content(data, previous=previous, case_needs=needs, today=now.date())
    except InvalidContent as invalid:
        raise Refusal(
            422,
            "invalid-plan",
            "The plan's content breaks a rule (see errors).",
            errors=[vars(error) for error in invalid.errors],
        ) from invalid


async def create_first_draft(
    uow: UnitOfWork, *, case: Case, data: PlanContentInput, by: str, now: datetime
) -> Plan:
    """Version 1 of the case's plan, as a draft. A case with a plan already revises it."""
    _writable_case(case)
    connection = uow.connection
    existing = await connection.fetchval(
        "SELECT id FROM plans WHERE case_id = $1 ORDER BY number DESC LIMIT 1", case.id
    )
    if existing is not None:
        raise Refusal(
            409,
            "plan-exists",
            "The case has a plan: edit its draft, or revise its approved version.",
            plan_id=str(existing),
        )
    content = _content(
        data, previous=PlanContent(), needs=await case_needs(connection, case.id), now=now
    )
    plan_id = uuid4()
    await connection.execute(
        "INSERT INTO plans (id, case_id, client_id, number, status, content, "
        "content_changed_at, row_version, created_by, created_at, updated_by, updated_at) "
        "VALUES ($1, $2, $3, 1, 'draft', $4, $5, 1, $6, $5, $6, $5)",
        plan_id,
        case.id,
        case.client_id,
        _stored(content),
        now,
        by,
    )
    plan = await get_plan(connection, plan_id)
    assert plan is not None
    return plan


async def update_draft(
    uow: UnitOfWork, *, case: Case, plan: Plan, data: PlanContentInput, by: str, now: datetime
) -> Plan:
    """Replace a draft's content; a recorded agreement goes with the content it was given to."""
    _writable_case(case)
    _draft(plan)
    content = _content(
        data, previous=plan.content, needs=await case_needs(uow.connection, case.id), now=now
    )
    changed = content != plan.content
    await uow.connection.execute(
        "UPDATE plans SET content = $2, row_version = row_version + 1, updated_by = $3, "
        "updated_at = $4, content_changed_at = CASE WHEN $5 THEN $4 ELSE content_changed_at END, "
        "agreement_how = CASE WHEN $5 THEN NULL ELSE agreement_how END, "
        "agreement_at = CASE WHEN $5 THEN NULL ELSE agreement_at END, "
        "agreement_recorded_by = CASE WHEN $5 THEN NULL ELSE agreement_recorded_by END, "
        "agreement_recorded_at = CASE WHEN $5 THEN NULL ELSE agreement_recorded_at END "
        "WHERE id = $1",
        plan.id,
        _stored(content),
        by,
        now,
        changed,
    )
    updated = await get_plan(uow.connection, plan.id)
    assert updated is not None
    return updated


async def record_agreement(
    uow: UnitOfWork,
    *,
    case: Case,
    plan: Plan,
    how: AgreementHow,
    at: datetime,
    by: str,
    now: datetime,
) -> Plan:
    _writable_case(case)
    _draft(plan)
    if at > now:
        raise Refusal(422, "agreement-in-future", "The agreement's time is in the future.")
    if at < plan.content_changed_at:
        raise Refusal(
            422,
            "agreement-before-content",
            "The draft changed after this time: the client has to agree to what it says now.",
        )
    await uow.connection.execute(
        "UPDATE plans SET agreement_how = $2, agreement_at = $3, agreement_recorded_by = $4, "
        "agreement_recorded_at = $5, row_version = row_version + 1, updated_by = $4, "
        "updated_at = $5 WHERE id = $1",
        plan.id,
        how.value,
        at,
        by,
        now,
    )
    updated = await get_plan(uow.connection, plan.id)
    assert updated is not None
    return updated


async def current_statuses(connection: asyncpg.Connection, plan: Plan) -> dict[UUID, GoalStatus]:
    """Each goal's status on this version: its latest change here, else what the version says."""
    statuses = {goal.id: goal.status for goal in plan.content.goals}
    if plan.status in (PlanStatus.APPROVED, PlanStatus.SUPERSEDED):
        rows = await connection.fetch(
            "SELECT DISTINCT ON (goal_id) goal_id, to_status FROM goal_status_changes "
            "WHERE plan_id = $1 ORDER BY goal_id, seq DESC",
            plan.id,
        )
        statuses.update({row["goal_id"]: GoalStatus(row["to_status"]) for row in rows})
    return statuses


async def revise(uow: UnitOfWork, *, case: Case, plan: Plan, by: str, now: datetime) -> Plan:
    """A new draft from the approved version in force: same goals and actions (same ids),
    goals with their current status, same safety plan; no agreement yet."""
    _writable_case(case)
    if plan.status is not PlanStatus.APPROVED:
        raise Refusal(409, "plan-not-approved", "Only the approved version in force is revised.")
    connection = uow.connection
    working = await connection.fetchval(
        "SELECT id FROM plans WHERE case_id = $1 AND status IN ('draft', 'awaiting_approval')",
        case.id,
    )
    if working is not None:
        raise Refusal(
            409,
            "draft-exists",
            "The case's plan already has a version being worked on.",
            plan_id=str(working),
        )
    content = PlanContent(
        goals=await live_goals(connection, plan), safety_plan=plan.content.safety_plan
    )
    number = await connection.fetchval(
        "SELECT max(number) + 1 FROM plans WHERE case_id = $1", case.id
    )
    draft_id = uuid4()
    await connection.execute(
        "INSERT INTO plans (id, case_id, client_id, number, status, based_on, content, "
        "content_changed_at, row_version, created_by, created_at, updated_by, updated_at) "
        "VALUES ($1, $2, $3, $4, 'draft', $5, $6, $7, 1, $8, $7, $8, $7)",
        draft_id,
        case.id,
        case.client_id,
        number,
        plan.id,
        _stored(content),
        now,
        by,
    )
    draft = await get_plan(connection, draft_id)
    assert draft is not None
    return draft


def approval_refusal(case: Case, plan: Plan) -> Refusal | None:
    """Why this version cannot go to a supervisor yet, or None."""
    if case.status == CaseStatus.CLOSED:
        return Refusal(409, "case-closed", "The case is closed.")
    if plan.status is not PlanStatus.DRAFT:
        return Refusal(409, "plan-not-draft", f"This version is {plan.status.value}.")
    if not plan.content.goals:
        return Refusal(422, "plan-without-goals", "A plan to approve has at least one goal.")
    if plan.agreement_how is None:
        return Refusal(
            422,
            "agreement-missing",
            "Record the client's agreement (signed, verbal or declined) first.",
        )
    return None


async def mark_awaiting(
    uow: UnitOfWork, *, plan: Plan, approval_id: UUID, by: str, now: datetime
) -> None:
    await uow.connection.execute(
        "UPDATE plans SET status = 'awaiting_approval', approval_id = $2, "
        "row_version = row_version + 1, updated_by = $3, updated_at = $4 WHERE id = $1",
        plan.id,
        approval_id,
        by,
        now,
    )


async def approve(
    uow: UnitOfWork, *, case: Case, plan_id: UUID, approved_by: str, now: datetime
) -> None:
    """The approval effect: this version in force, the previous one superseded, the case
    active if it was open, `PlanApproved` and a timeline entry."""
    connection = uow.connection
    plan = await get_plan(connection, plan_id, lock=True)
    if plan is None or plan.status is not PlanStatus.AWAITING_APPROVAL:
        return  # withdrawn or decided already: nothing to do
    await connection.execute(
        "UPDATE plans SET status = 'superseded', superseded_at = $2, "
        "row_version = row_version + 1 WHERE case_id = $1 AND status = 'approved'",
        case.id,
        now,
    )
    await connection.execute(
        "UPDATE plans SET status = 'approved', approved_by = $2, approved_at = $3, "
        "row_version = row_version + 1, updated_by = $2, updated_at = $3 WHERE id = $1",
        plan.id,
        approved_by,
        now,
    )
    await connection.execute(
        "UPDATE cases SET status = 'active', version = version + 1, updated_at = $2 "
        "WHERE id = $1 AND status = 'open'",
        case.id,
        now,
    )
    uow.publish(
        PlanApproved(
            case_id=case.id,
            client_id=case.client_id,
            organization_id=case.organization_id,
            plan_id=plan.id,
            version=plan.number,
            approved_by=approved_by,
            approved_at=now,
        )
    )
    await record_timeline(
        connection,
        case_id=case.id,
        client_id=case.client_id,
        kind="plan.approved",
        occurred_at=now,
        subject_type="plan",
        subject_id=plan.id,
        codes={"version": str(plan.number)},
    )


async def back_to_draft(uow: UnitOfWork, *, plan_id: UUID, by: str, now: datetime) -> None:
    """The rejection (or withdrawal) effect: the version is a draft again, to be reworked."""
    await uow.connection.execute(
        "UPDATE plans SET status = 'draft', approval_id = NULL, row_version = row_version + 1, "
        "updated_by = $2, updated_at = $3 WHERE id = $1 AND status = 'awaiting_approval'",
        plan_id,
        by,
        now,
    )


def _in_force(plan: Plan) -> None:
    if plan.status is not PlanStatus.APPROVED:
        raise Refusal(
            409,
            "plan-not-in-force",
            "Goals change status and record progress on the approved version in force only.",
        )


def _goal(plan: Plan, goal_id: UUID) -> Goal:
    goal = plan.goal(goal_id)
    if goal is None:
        raise Refusal(404, "not-found", "No goal with this id in this version.")
    return goal


async def change_goal_status(
    uow: UnitOfWork,
    *,
    case: Case,
    plan: Plan,
    goal_id: UUID,
    to: GoalStatus,
    by: str,
    now: datetime,
) -> GoalStatus:
    """The goal's new status on the version in force; `GoalStatusChanged` and a timeline
    entry. Returns the status it had."""
    _writable_case(case)
    _in_force(plan)
    _goal(plan, goal_id)
    current = (await current_statuses(uow.connection, plan))[goal_id]
    if not goal_rules.may_change(current, to):
        raise Refusal(
            409,
            "goal-status-transition",
            f"A goal that is {current.value} cannot become {to.value} on this version.",
        )
    await uow.connection.execute(
        "INSERT INTO goal_status_changes (id, case_id, plan_id, goal_id, from_status, "
        "to_status, changed_by, changed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        uuid4(),
        case.id,
        plan.id,
        goal_id,
        current.value,
        to.value,
        by,
        now,
    )
    uow.publish(
        GoalStatusChanged(
            case_id=case.id,
            client_id=case.client_id,
            organization_id=case.organization_id,
            plan_id=plan.id,
            goal_id=goal_id,
            from_status=current,
            to_status=to,
            changed_by=by,
            changed_at=now,
        )
    )
    await record_timeline(
        uow.connection,
        case_id=case.id,
        client_id=case.client_id,
        kind="goal.status_changed",
        occurred_at=now,
        subject_type="goal",
        subject_id=goal_id,
        codes={"from_status": current.value, "to_status": to.value, "plan_id": str(plan.id)},
    )
    return current


async def record_progress(
    uow: UnitOfWork,
    *,
    case: Case,
    plan: Plan,
    goal_id: UUID,
    data: ProgressCreate,
    by: str,
    now: datetime,
) -> ProgressPublic:
    _writable_case(case)
    _in_force(plan)
    _goal(plan, goal_id)
    recorded_at = data.recorded_at or now
    if recorded_at > now:
        raise Refusal(422, "progress-in-future", "A measurement is recorded once it is taken.")
    progress = ProgressPublic(
        id=uuid4(),
        plan_id=plan.id,
        goal_id=goal_id,
        value=data.value,
        note=data.note,
        recorded_at=recorded_at,
        recorded_by=by,
    )
    await uow.connection.execute(
        "INSERT INTO goal_progress (id, case_id, plan_id, goal_id, value, note, recorded_at, "
        "recorded_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        progress.id,
        case.id,
        plan.id,
        goal_id,
        progress.value,
        progress.note,
        progress.recorded_at,
        by,
        now,
    )
    return progress


async def _progress(
    connection: asyncpg.Connection, case_id: UUID, goal_ids: Sequence[UUID]
) -> dict[UUID, list[ProgressPublic]]:
    rows = await connection.fetch(
        "SELECT id, plan_id, goal_id, value, note, recorded_at, recorded_by FROM goal_progress "
        "WHERE case_id = $1 AND goal_id = ANY($2::uuid[]) ORDER BY recorded_at, id",
        case_id,
        list(goal_ids),
    )
    found: dict[UUID, list[ProgressPublic]] = {goal_id: [] for goal_id in goal_ids}
    for row in rows:
        found[row["goal_id"]].append(ProgressPublic(**dict(row)))
    return found


async def live_goals(connection: asyncpg.Connection, plan: Plan) -> list[Goal]:
    """The version's goals with their current status."""
    statuses = await current_statuses(connection, plan)
    return [goal.model_copy(update={"status": statuses[goal.id]}) for goal in plan.content.goals]


async def shown_goals(connection: asyncpg.Connection, plan: Plan) -> list[GoalPublic]:
    goals = await live_goals(connection, plan)
    progress = await _progress(connection, plan.case_id, [goal.id for goal in goals])
    return [GoalPublic(**goal.model_dump(), progress=progress[goal.id]) for goal in goals]


def summary(plan: Plan) -> PlanSummary:
    return PlanSummary(
        id=plan.id,
        case_id=plan.case_id,
        version=plan.number,
        status=plan.status,
        based_on=plan.based_on,
        created_by=plan.created_by,
        created_at=plan.created_at,
        approved_by=plan.approved_by,
        approved_at=plan.approved_at,
    )


async def public(connection: asyncpg.Connection, plan: Plan) -> PlanPublic:
    agreement = (
        AgreementPublic(
            how=plan.agreement_how,
            at=plan.agreement_at,
            recorded_by=plan.agreement_recorded_by,
            recorded_at=plan.agreement_recorded_at,
        )
        if plan.agreement_how is not None
        and plan.agreement_at is not None
        and plan.agreement_recorded_by is not None
        and plan.agreement_recorded_at is not None
        else None
    )
    return PlanPublic(
        **summary(plan).model_dump(),
        client_id=plan.client_id,
        goals=await shown_goals(connection, plan),
        safety_plan=plan.content.safety_plan,
        client_agreement=agreement,
        approval_id=plan.approval_id,
        row_version=plan.row_version,
        updated_by=plan.updated_by,
        updated_at=plan.updated_at,
    )


async def list_versions(
    connection: asyncpg.Connection, *, case_id: UUID, after: int | None, limit: int
) -> list[PlanSummary]:
    """The case's versions, newest first (keyset on the version number)."""
    rows = await connection.fetch(
        f"SELECT {_COLUMNS} FROM plans WHERE case_id = $1 AND ($2::int IS NULL OR number < $2) "
        "ORDER BY number DESC LIMIT $3",
        case_id,
        after,
        limit,
    )
    return [summary(Plan.of(row)) for row in rows]


async def compare(connection: asyncpg.Connection, *, plan: Plan, against: Plan) -> PlanDiff:
    """What changed from `against` to `plan` (two versions of the same case), goals as each
    version shows them."""
    changes = diff(
        await live_goals(connection, against),
        against.content.safety_plan,
        await live_goals(connection, plan),
        plan.content.safety_plan,
    )
    return PlanDiff(
        **changes.model_dump(),
        plan_id=plan.id,
        version=plan.number,
        against=against.id,
        against_version=against.number,
    )
