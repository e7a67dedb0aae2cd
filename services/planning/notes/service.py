"""Progress notes: drafts, signing, addenda and co-signatures, with `NoteSigned` and the
case's timeline, in the caller's transaction.

A signed note never changes (its row is locked for writing by status: every update here is
`WHERE status = 'draft'`); a correction is an addendum, a note of its own pointing at the one
it corrects, signed on its own. Which kinds need a supervisor's co-signature is data
(cosignature.json); an addendum needs one when the note it corrects does. A signed contact
note moves the case's `last_contact_at` to when the contact happened.

Restricted notes never reach the case's timeline: the timeline is read by everyone who reads
the case, and a restricted note's existence is for its author and the team's supervisor only.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from services.planning.cases.lookup import Case
from services.planning.notes import rules
from services.planning.notes.models import (
    AddendumCreate,
    NoteCreate,
    NoteDetails,
    NotePublic,
    NoteStatus,
    NoteUpdate,
    Visibility,
)
from services.planning.refusals import Refusal
from services.planning.timeline.service import record_timeline
from shared.auth.principal import Principal
from shared.events.planning import CaseStatus, NoteKind, NoteSigned
from shared.messaging.outbox import UnitOfWork

_COLUMNS = (
    "id, case_id, client_id, kind, details, text, visibility, goal_ids, occurred_at, status, "
    "addendum_to, author_id, created_at, updated_at, row_version, signed_by, signed_at, "
    "needs_cosignature, cosigned_by, cosigned_at"
)


def _public(row: asyncpg.Record) -> NotePublic:
    return NotePublic.model_validate(dict(row))


def _details(details: NoteDetails) -> dict[str, Any]:
    stored: dict[str, Any] = json.loads(details.model_dump_json())
    return stored


async def get_note(
    connection: asyncpg.Connection, note_id: UUID, *, lock: bool = False
) -> NotePublic | None:
    row = await connection.fetchrow(
        f"SELECT {_COLUMNS} FROM notes WHERE id = $1" + (" FOR UPDATE" if lock else ""), note_id
    )
    return _public(row) if row else None


def visible(note: NotePublic, principal: Principal, case: Case) -> bool:
    return rules.may_see(
        restricted=note.visibility is Visibility.RESTRICTED,
        author_id=note.author_id,
        principal=principal,
        case=case,
    )


async def _check_goals(connection: asyncpg.Connection, case_id: UUID, goal_ids: list[UUID]) -> None:
    if not goal_ids:
        return
    known = await connection.fetch(
        "SELECT DISTINCT (goal ->> 'id')::uuid AS id FROM plans p, "
        "jsonb_array_elements(p.content -> 'goals') goal WHERE p.case_id = $1",
        case_id,
    )
    unknown = set(goal_ids) - {row["id"] for row in known}
    if unknown:
        raise Refusal(
            422,
            "unknown-goal",
            "A note points only at goals of its case's plan.",
            errors=[
                {"field": "body.goal_ids", "message": f"no goal {goal_id}", "code": "unknown-goal"}
                for goal_id in sorted(unknown)
            ],
        )


def _not_future(occurred_at: datetime, now: datetime) -> None:
    if occurred_at > now:
        raise Refusal(422, "occurred-in-future", "A note records what happened, not yet.")


def _own_draft(note: NotePublic, by: str) -> None:
    if note.status is NoteStatus.SIGNED:
        raise Refusal(
            409, "note-signed", "A signed note never changes: add an addendum to correct it."
        )
    if note.author_id != by:
        raise Refusal(403, "not-author", "Only the note's author changes or signs its draft.")


async def create_note(
    uow: UnitOfWork, *, case: Case, data: NoteCreate, by: str, now: datetime
) -> NotePublic:
    if case.status == CaseStatus.CLOSED:
        raise Refusal(409, "case-closed", "The case is closed: reopen it to add notes.")
    occurred_at = data.occurred_at or now
    _not_future(occurred_at, now)
    await _check_goals(uow.connection, case.id, data.goal_ids)
    return await _insert(
        uow.connection,
        case=case,
        details=data.details,
        text=data.text,
        visibility=data.visibility,
        goal_ids=data.goal_ids,
        occurred_at=occurred_at,
        addendum_to=None,
        by=by,
        now=now,
    )


async def _insert(
    connection: asyncpg.Connection,
    *,
    case: Case,
    details: NoteDetails,
    text: str,
    visibility: Visibility,
    goal_ids: list[UUID],
    occurred_at: datetime,
    addendum_to: UUID | None,
    by: str,
    now: datetime,
) -> NotePublic:
    row = await connection.fetchrow(
        "INSERT INTO notes (id, case_id, client_id, kind, details, text, visibility, goal_ids, "
        "occurred_at, status, addendum_to, author_id, created_at, updated_at, row_version, "
        "needs_cosignature) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'draft', $10, $11, $12, "
        f"$12, 1, $13) RETURNING {_COLUMNS}",
        uuid4(),
        case.id,
        case.client_id,
        details.kind,
        _details(details),
        text,
        visibility.value,
        goal_ids,
        occurred_at,
        addendum_to,
        by,
        now,
        rules.needs_cosignature(NoteKind(details.kind)),
    )
    return _public(row)


async def add_addendum(
    uow: UnitOfWork,
    *,
    case: Case,
    original: NotePublic,
    data: AddendumCreate,
    by: str,
    now: datetime,
) -> NotePublic:
    """A draft addendum to a signed note: the original's kind, fields and visibility, its own
    text; signed on its own. Corrections stay possible on a closed case (the record must be
    right), new notes do not."""
    if original.status is not NoteStatus.SIGNED:
        raise Refusal(
            409,
            "note-not-signed",
            "A draft is corrected by editing it; addenda are for signed notes.",
        )
    if original.addendum_to is not None:
        raise Refusal(
            409, "addendum-of-addendum", "Add another addendum to the original note instead."
        )
    return await _insert(
        uow.connection,
        case=case,
        details=original.details,
        text=data.text,
        visibility=original.visibility,
        goal_ids=original.goal_ids,
        occurred_at=now,
        addendum_to=original.id,
        by=by,
        now=now,
    )


async def update_note(
    uow: UnitOfWork, *, case: Case, note: NotePublic, data: NoteUpdate, by: str, now: datetime
) -> NotePublic:
    _own_draft(note, by)
    details = data.details or note.details
    if note.addendum_to is not None and details.kind != note.kind:
        raise Refusal(422, "addendum-kind", "An addendum keeps the kind of the note it corrects.")
    occurred_at = data.occurred_at or note.occurred_at
    _not_future(occurred_at, now)
    goal_ids = data.goal_ids if data.goal_ids is not None else note.goal_ids
    await _check_goals(uow.connection, case.id, goal_ids)
    row = await uow.connection.fetchrow(
        "UPDATE notes SET kind = $2, details = $3, text = $4, visibility = $5, goal_ids = $6, "
        "occurred_at = $7, needs_cosignature = $8, updated_at = $9, "
        f"row_version = row_version + 1 WHERE id = $1 AND status = 'draft' RETURNING {_COLUMNS}",
        note.id,
        details.kind,
        _details(details),
        data.text if data.text is not None else note.text,
        (data.visibility or note.visibility).value,
        goal_ids,
        occurred_at,
        rules.needs_cosignature(NoteKind(details.kind)),
        now,
    )
    assert row is not None  # locked and checked a draft above
    return _public(row)


async def sign(
    uow: UnitOfWork, *, case: Case, note: NotePublic, by: str, now: datetime
) -> NotePublic:
    """Sign the author's draft: from now on it never changes. `NoteSigned` (ids and kind)."""
    if note.status is NoteStatus.SIGNED:
        raise Refusal(409, "note-already-signed", "This note was signed already.")
    _own_draft(note, by)
    connection = uow.connection
    row = await connection.fetchrow(
        "UPDATE notes SET status = 'signed', signed_by = $2, signed_at = $3, updated_at = $3, "
        f"row_version = row_version + 1 WHERE id = $1 AND status = 'draft' RETURNING {_COLUMNS}",
        note.id,
        by,
        now,
    )
    assert row is not None
    signed = _public(row)
    if signed.kind is NoteKind.CONTACT:
        await connection.execute(
            # The case's representation changes with it, so does its version (its ETag).
            "UPDATE cases SET last_contact_at = $2, version = version + 1, updated_at = $3 "
            "WHERE id = $1 AND (last_contact_at IS NULL OR last_contact_at < $2)",
            case.id,
            signed.occurred_at,
            now,
        )
    uow.publish(
        NoteSigned(
            case_id=case.id,
            client_id=case.client_id,
            organization_id=case.organization_id,
            note_id=signed.id,
            kind=signed.kind,
            addendum_to=signed.addendum_to,
            signed_by=by,
            signed_at=now,
            needs_cosignature=signed.needs_cosignature,
        )
    )
    if signed.visibility is Visibility.STANDARD:
        await record_timeline(
            connection,
            case_id=case.id,
            client_id=case.client_id,
            kind="note.addendum_signed" if signed.addendum_to else "note.signed",
            occurred_at=now,
            subject_type="note",
            subject_id=signed.id,
            codes={"kind": signed.kind.value},
        )
    return signed


async def cosign(
    uow: UnitOfWork, *, case: Case, note: NotePublic, principal: Principal, now: datetime
) -> NotePublic:
    refused = rules.cosign_refusal(
        signed=note.status is NoteStatus.SIGNED,
        needs=note.needs_cosignature,
        cosigned=note.cosigned_by is not None,
        author_id=note.author_id,
        principal=principal,
        case=case,
    )
    if refused is not None:
        raise refused
    row = await uow.connection.fetchrow(
        "UPDATE notes SET cosigned_by = $2, cosigned_at = $3, row_version = row_version + 1 "
        f"WHERE id = $1 AND cosigned_by IS NULL RETURNING {_COLUMNS}",
        note.id,
        principal.subject,
        now,
    )
    assert row is not None
    cosigned = _public(row)
    if cosigned.visibility is Visibility.STANDARD:
        await record_timeline(
            uow.connection,
            case_id=case.id,
            client_id=case.client_id,
            kind="note.cosigned",
            occurred_at=now,
            subject_type="note",
            subject_id=cosigned.id,
            codes={"kind": cosigned.kind.value},
        )
    return cosigned


async def list_notes(
    connection: asyncpg.Connection,
    *,
    case: Case,
    principal: Principal,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> list[NotePublic]:
    """The case's notes the caller may see, newest first (keyset on (created_at, id)).
    Restricted notes of others are left out, as if they did not exist."""
    supervises = rules.supervises(principal, case)
    rows = await connection.fetch(
        f"SELECT {_COLUMNS} FROM notes WHERE case_id = $1 "
        "AND (visibility = 'standard' OR author_id = $2 OR $3) "
        "AND ($4::timestamptz IS NULL OR (created_at, id) < ($4, $5)) "
        "ORDER BY created_at DESC, id DESC LIMIT $6",
        case.id,
        principal.subject,
        supervises,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
    return [_public(row) for row in rows]
