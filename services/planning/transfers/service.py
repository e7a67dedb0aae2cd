"""Transfers: asking, accepting, declining and revoking, with the rules in one place.

Who may ask: the case's worker, or a supervisor of the case's team. For whom: an active worker
of the case's organisation in the staff directory, of any team, with a team, who is neither
the asker nor the case's worker. One pending transfer per case. Who answers: the receiving
worker, or a supervisor of the receiving worker's team (their scope for `transfer.answer`);
to anyone else the transfer does not exist (404). Who revokes: the requester or a supervisor
of the case's team, while it is pending. Accepting reassigns the case as an assignment does
(the case, the client's access facts, `CaseAssigned`), in the same transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar
from uuid import UUID, uuid4

import asyncpg

from services.planning.cases.lookup import Case
from services.planning.cases.service import record_case_assignment
from services.planning.refusals import Refusal
from services.planning.timeline.service import record_timeline
from services.planning.transfers.models import (
    TRANSFER_COLUMNS,
    CaseSummary,
    DeclineReason,
    Transfer,
    TransferStatus,
)
from services.planning.workers.models import WorkerPublic
from services.planning.workers.service import get_worker, in_scope
from shared.auth.policy import Scope
from shared.auth.principal import Principal, Role
from shared.events.planning import CaseStatus, TransferAnswered, TransferRequested
from shared.http.problems import ProblemError
from shared.messaging.outbox import UnitOfWork


class TransferRefused(Refusal):
    """The transfer cannot be asked or answered (nothing was written); `status` is the HTTP
    status the refusal answers with, `code` the problem's slug."""

    titles: ClassVar[dict[int, str]] = {
        403: "Not allowed",
        409: "The transfer cannot be changed",
        422: "Not a valid transfer",
    }

    def problem(self) -> ProblemError:
        problem = super().problem()
        if self.status == 422:  # the named worker is what is wrong with the request
            problem.extra["errors"] = [
                {"field": "body.to_worker_id", "message": self.message, "code": self.code}
            ]
        return problem


class TransferRow(Transfer):
    """A transfer with the client it concerns: for audit records, never shown."""

    client_id: UUID

    def public(self) -> Transfer:
        return Transfer.model_validate(self.model_dump(exclude={"client_id"}))


async def load_transfer(
    connection: asyncpg.Connection, transfer_id: UUID, *, lock: bool = False
) -> TransferRow | None:
    row = await connection.fetchrow(
        f"SELECT {TRANSFER_COLUMNS} FROM case_transfers WHERE id = $1"
        + (" FOR UPDATE" if lock else ""),
        transfer_id,
    )
    return TransferRow.model_validate(dict(row)) if row else None


def _supervises(principal: Principal, team_id: str | None) -> bool:
    return principal.has(Role.SUPERVISOR) and team_id is not None and principal.team_id == team_id


def request_refusal(
    case: Case, to_worker_id: str, target: WorkerPublic | None, by: Principal
) -> TransferRefused | None:
    """Why `by` may not ask to transfer `case` to `to_worker_id` (`target`: that worker in the
    case's organisation's directory), or None. `case` is already in `by`'s scope."""
    if case.status == CaseStatus.CLOSED:
        return TransferRefused(409, "case-closed", "A closed case cannot be transferred.")
    if case.worker_id != by.subject and not _supervises(by, case.team_id):
        return TransferRefused(
            403,
            "not-case-owner",
            "Only the case's worker or a supervisor of its team may transfer it.",
        )
    if to_worker_id == by.subject:
        return TransferRefused(422, "transfer-to-self", "You cannot transfer a case to yourself.")
    if to_worker_id == case.worker_id:
        return TransferRefused(422, "transfer-to-owner", "The case already belongs to them.")
    if target is None:
        return TransferRefused(
            422, "unknown-worker", "No worker with this id in your organisation's staff directory."
        )
    if not target.active:
        return TransferRefused(422, "worker-inactive", "This worker is inactive in the directory.")
    if target.team_id is None:
        return TransferRefused(
            422, "worker-without-team", "This worker has no team and cannot take cases."
        )
    return None


async def request_transfer(
    uow: UnitOfWork, case: Case, *, to_worker_id: str, by: Principal, now: datetime
) -> Transfer:
    """Raises TransferRefused (see `request_refusal`; 409 `transfer-pending` when the case
    already has one). `case` was read with its row locked."""
    connection = uow.connection
    target = await get_worker(
        connection, organization_id=case.organization_id, worker_id=to_worker_id, lock="share"
    )
    refused = request_refusal(case, to_worker_id, target, by)
    if refused is not None:
        raise refused
    assert target is not None
    pending = await connection.fetchval(
        "SELECT id FROM case_transfers WHERE case_id = $1 AND status = 'pending'", case.id
    )
    if pending is not None:
        raise TransferRefused(
            409,
            "transfer-pending",
            f"This case already has a pending transfer ({pending}): revoke it first.",
        )
    transfer = TransferRow(
        id=uuid4(),
        case_id=case.id,
        client_id=case.client_id,
        organization_id=case.organization_id,
        from_worker_id=case.worker_id,
        from_team_id=case.team_id,
        to_worker_id=target.worker_id,
        to_team_id=target.team_id,
        status=TransferStatus.PENDING,
        requested_by=by.subject,
        requested_at=now,
        answered_by=None,
        answered_at=None,
        decline_reason=None,
    )
    await connection.execute(
        f"INSERT INTO case_transfers ({TRANSFER_COLUMNS}) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        *(getattr(transfer, column) for column in TRANSFER_COLUMNS.split(", ")),
    )
    await record_timeline(
        connection,
        case_id=case.id,
        client_id=case.client_id,
        kind="transfer.requested",
        occurred_at=now,
        subject_type="transfer",
        subject_id=transfer.id,
        codes={"to_worker_id": target.worker_id, "to_team_id": target.team_id or ""},
    )
    uow.publish(
        TransferRequested(
            case_id=case.id,
            client_id=case.client_id,
            organization_id=case.organization_id,
            transfer_id=transfer.id,
            from_worker_id=case.worker_id,
            to_worker_id=target.worker_id,
            to_team_id=target.team_id,
            requested_by=by.subject,
            requested_at=now,
        )
    )
    return transfer.public()


def receiving_side(scopes: set[Scope], principal: Principal, transfer: Transfer) -> bool:
    """Whether the caller answers for the receiving worker: that worker (scope `caseload`), a
    supervisor of their team (`team`), within the transfer's organisation."""
    return transfer.organization_id == principal.organization_id and in_scope(
        scopes, principal, worker_id=transfer.to_worker_id, team_id=transfer.to_team_id
    )


def sending_side(
    scopes: set[Scope], principal: Principal, transfer: Transfer, *, requester_only: bool = False
) -> bool:
    """Whether the caller stands for the case's side: the requester or (unless
    `requester_only`) the worker the case belonged to (`caseload`), a supervisor of the case's
    team when it was asked (`team`), within the transfer's organisation."""
    if transfer.organization_id != principal.organization_id:
        return False
    workers = {transfer.requested_by}
    if not requester_only and transfer.from_worker_id is not None:
        workers.add(transfer.from_worker_id)
    return any(
        in_scope(scopes, principal, worker_id=worker_id, team_id=transfer.from_team_id)
        for worker_id in workers
    )


def _pending(transfer: Transfer) -> TransferRefused | None:
    if transfer.status != TransferStatus.PENDING:
        return TransferRefused(
            409, "transfer-not-pending", f"This transfer is already {transfer.status}."
        )
    return None


async def accept(
    uow: UnitOfWork, transfer: TransferRow, case: Case, *, by: Principal, now: datetime
) -> Transfer:
    """The receiving side accepts: the case becomes the receiving worker's (as the directory
    has them now). `case` and `transfer` were read with their rows locked, in that order."""
    refused = _pending(transfer)
    if refused is not None:
        raise refused
    if case.status == CaseStatus.CLOSED:
        raise TransferRefused(409, "case-closed", "The case was closed since the request.")
    if case.worker_id != transfer.from_worker_id:
        raise TransferRefused(
            409,
            "case-reassigned",
            "The case changed hands since the request: ask for a new transfer.",
        )
    worker = await get_worker(
        uow.connection,
        organization_id=transfer.organization_id,
        worker_id=transfer.to_worker_id,
        lock="share",
    )
    if worker is None or not worker.active or worker.team_id is None:
        raise TransferRefused(
            409,
            "worker-inactive",
            "The receiving worker is no longer an active worker with a team in the directory.",
        )
    await record_case_assignment(uow, case, worker=worker, assigned_by=by.subject, now=now)
    return await _answer(uow, transfer, TransferStatus.ACCEPTED, by=by, now=now)


async def decline(
    uow: UnitOfWork, transfer: TransferRow, *, reason: DeclineReason, by: Principal, now: datetime
) -> Transfer:
    refused = _pending(transfer)
    if refused is not None:
        raise refused
    return await _answer(uow, transfer, TransferStatus.DECLINED, by=by, now=now, reason=reason)


async def revoke(
    uow: UnitOfWork, transfer: TransferRow, *, by: Principal, now: datetime
) -> Transfer:
    refused = _pending(transfer)
    if refused is not None:
        raise refused
    return await _answer(uow, transfer, TransferStatus.REVOKED, by=by, now=now)


async def _answer(
    uow: UnitOfWork,
    transfer: TransferRow,
    status: TransferStatus,
    *,
    by: Principal,
    now: datetime,
    reason: DeclineReason | None = None,
) -> Transfer:
    row = await uow.connection.fetchrow(
        "UPDATE case_transfers SET status = $2, answered_by = $3, answered_at = $4, "
        f"decline_reason = $5 WHERE id = $1 AND status = 'pending' RETURNING {TRANSFER_COLUMNS}",
        transfer.id,
        status.value,
        by.subject,
        now,
        reason.value if reason else None,
    )
    assert row is not None, "the caller holds the pending transfer's row lock"
    answered = TransferRow.model_validate(dict(row))
    await record_timeline(
        uow.connection,
        case_id=transfer.case_id,
        client_id=transfer.client_id,
        kind=f"transfer.{status.value}",
        occurred_at=now,
        subject_type="transfer",
        subject_id=transfer.id,
        codes={"reason": reason.value} if reason else {},
    )
    uow.publish(
        TransferAnswered(
            case_id=transfer.case_id,
            client_id=transfer.client_id,
            organization_id=transfer.organization_id,
            transfer_id=transfer.id,
            answer=status.value,
            answered_by=by.subject,
            answered_at=now,
        )
    )
    return answered.public()


async def case_summary(connection: asyncpg.Connection, case: Case) -> CaseSummary:
    """What the receiving side sees before accepting: risk, status, language, due review and the
    general needs' categories (a protected need's category is withheld: it names its class)."""
    categories = await connection.fetch(
        "SELECT category FROM case_needs WHERE case_id = $1 AND data_class IS NULL "
        "ORDER BY category",
        case.id,
    )
    return CaseSummary(
        case_id=case.id,
        status=case.status,
        risk_level=case.risk_level,
        preferred_language=case.preferred_language,
        need_categories=[row["category"] for row in categories],
        next_review_due_at=case.next_review_due_at,
    )


async def list_transfers(
    connection: asyncpg.Connection,
    *,
    visible: tuple[str, list[object]],
    status: TransferStatus | None,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> list[TransferRow]:
    clause, parameters = visible
    parameters = list(parameters)
    conditions = [clause]
    if status is not None:
        parameters.append(status.value)
        conditions.append(f"t.status = ${len(parameters)}")
    if after is not None:
        parameters += [after[0], after[1]]
        conditions.append(f"(t.requested_at, t.id) > (${len(parameters) - 1}, ${len(parameters)})")
    parameters.append(limit)
    rows = await connection.fetch(
        f"SELECT {', '.join('t.' + c for c in TRANSFER_COLUMNS.split(', '))} "
        f"FROM case_transfers t WHERE {' AND '.join(conditions)} "
        f"ORDER BY t.requested_at, t.id LIMIT ${len(parameters)}",
        *parameters,
    )
    return [TransferRow.model_validate(dict(row)) for row in rows]


def side_clause(
    scopes: set[Scope], principal: Principal, *, incoming: bool
) -> tuple[str, list[object]]:
    """`receiving_side` (incoming) or `sending_side` (outgoing) as SQL over case_transfers `t`,
    parameters from $1 on."""
    parameters: list[object] = [principal.organization_id]
    clauses: list[str] = []
    worker_columns = ("t.to_worker_id",) if incoming else ("t.requested_by", "t.from_worker_id")
    team_column = "t.to_team_id" if incoming else "t.from_team_id"
    if Scope.ALL in scopes or Scope.ORGANISATION in scopes:
        clauses.append("TRUE")
    if Scope.TEAM in scopes and principal.team_id is not None:
        parameters.append(principal.team_id)
        clauses.append(f"{team_column} = ${len(parameters)}")
    if Scope.CASELOAD in scopes:
        parameters.append(principal.subject)
        clauses += [f"{column} = ${len(parameters)}" for column in worker_columns]
    either = " OR ".join(clauses) or "FALSE"
    return f"t.organization_id = $1 AND ({either})", parameters


async def transfers_of_case(connection: asyncpg.Connection, case_id: UUID) -> list[Transfer]:
    rows = await connection.fetch(
        f"SELECT {TRANSFER_COLUMNS} FROM case_transfers WHERE case_id = $1 "
        "ORDER BY requested_at, id",
        case_id,
    )
    return [TransferRow.model_validate(dict(row)).public() for row in rows]
