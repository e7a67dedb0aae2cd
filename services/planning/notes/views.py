"""HTTP for progress notes: thin; rules in service.py and rules.py, permissions in access.py.

A restricted note the caller may not see is answered exactly like a note that does not exist
(404, left out of lists); the refusal is audited like any other."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path, Response
from fastapi.responses import JSONResponse

from services.planning.cases.lookup import Case, authorize_case
from services.planning.notes import service
from services.planning.notes.models import (
    AddendumCreate,
    NoteCreate,
    NotePublic,
    NoteStatus,
    NoteUpdate,
)
from services.planning.refusals import Refusal, audited, refusals_audited
from shared.audit.log import Outcome
from shared.auth.guard import Grant, Guard, GuardDep
from shared.http import idempotency
from shared.http.app import ClockDep, DatabaseDep
from shared.http.pagination import Cursor, Limit, Page, decode_keyset, keyset_page
from shared.http.preconditions import IfMatch, matches, precondition_required, stale
from shared.http.problems import not_found, problem_responses
from shared.messaging.outbox import UnitOfWork, unit_of_work

router = APIRouter(tags=["notes"])

CaseId = Annotated[UUID, Path(description="The case's id.")]
NoteId = Annotated[UUID, Path(description="The note's id.")]


def etag(note: NotePublic) -> str:
    return f'"{note.id}.{note.row_version}"'


def _location(note: NotePublic) -> str:
    return f"/v1/notes/{note.id}"


def _headers(note: NotePublic) -> dict[str, str]:
    return {"Location": _location(note), "ETag": etag(note)}


async def _note(
    guard: Guard,
    uow: UnitOfWork,
    action: str,
    note_id: UUID,
    *,
    lock_case: bool = False,
    lock: bool = False,
) -> tuple[Grant, Case, NotePublic]:
    """The note if it exists, the caller may act on its case and may see it (404 otherwise,
    audited); locks taken case first, then note."""
    connection = uow.connection
    note = await service.get_note(connection, note_id)
    if note is None:
        grant = await guard.require(action, resource_type="note", resource_id=str(note_id))
        raise await guard.refuse(grant, not_found("note"), Outcome.NOT_FOUND)
    grant, case = await authorize_case(guard, connection, action, note.case_id, lock=lock_case)
    grant = replace(grant, resource_type="note", resource_id=str(note_id))
    if not service.visible(note, guard.principal, case):
        raise await guard.refuse(grant, not_found("note"))
    if lock or lock_case:
        locked = await service.get_note(connection, note_id, lock=True)
        assert locked is not None  # notes are never deleted
        note = locked
    return grant, case, note


async def _as_read(guard: Guard, grant: Grant, if_match: str | None, note: NotePublic) -> None:
    """428 without If-Match; 409 on a signed note whatever the ETag; 412 when stale."""
    if if_match is None:
        raise await guard.refuse(grant, precondition_required("note"), Outcome.PRECONDITION_FAILED)
    if note.status is NoteStatus.SIGNED:
        raise await audited(
            guard,
            grant,
            Refusal(409, "note-already-signed", "A signed note never changes; add an addendum."),
        )
    if not matches(if_match, etag(note)):
        raise await guard.refuse(grant, stale("note"), Outcome.PRECONDITION_FAILED)


@router.post(
    "/v1/cases/{case_id}/notes",
    status_code=201,
    response_model=NotePublic,
    responses=problem_responses(400, 401, 403, 404, 409, 413, 422),
    summary="Write a progress note on a case, as a draft",
    description="`details.kind` is the note's kind, with its own fields (contact: `mode`; "
    "service_provided: `minutes` or `units`; advocacy: with whom and on what; consultation: "
    "`participants` by role and organisation). `restricted` notes are seen by their author "
    "and the case's team supervisor only. `goal_ids` name goals of the case's plan.",
)
async def create_note(
    case_id: CaseId,
    body: NoteCreate,
    guard: GuardDep,
    database: DatabaseDep,
    clock: ClockDep,
    response: Response,
    idempotency_key: idempotency.IdempotencyKey = None,
) -> NotePublic | JSONResponse:
    idempotent = idempotency.IdempotentCreate(
        idempotency_key, "create_note", guard.principal, body, target=case_id
    )
    async with unit_of_work(database) as uow:
        grant, case = await authorize_case(guard, uow.connection, "note.write", case_id)
        stored = await idempotent.previous(uow.connection)
        if stored is not None:
            replayed = NotePublic.model_validate(stored.body)
            await guard.audit(
                uow, replace(grant, resource_type="note", resource_id=str(replayed.id))
            )
            return stored.replay(_headers(replayed))
        async with refusals_audited(guard, grant):
            note = await service.create_note(
                uow, case=case, data=body, by=guard.principal.subject, now=clock.now()
            )
        await idempotent.remember(uow.connection, note)
        await guard.audit(uow, replace(grant, resource_type="note", resource_id=str(note.id)))
    response.headers.update(_headers(note))
    return note


@router.get(
    "/v1/cases/{case_id}/notes",
    response_model=Page[NotePublic],
    responses=problem_responses(400, 401, 403, 404, 422),
    summary="A case's notes the caller may see, newest first",
)
async def list_notes(
    case_id: CaseId,
    guard: GuardDep,
    database: DatabaseDep,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[NotePublic]:
    after = decode_keyset(cursor) if cursor else None
    async with unit_of_work(database) as uow:
        grant, case = await authorize_case(guard, uow.connection, "note.read", case_id)
        found = await service.list_notes(
            uow.connection, case=case, principal=guard.principal, after=after, limit=limit + 1
        )
        page = keyset_page(found, limit, lambda note: (note.created_at, note.id))
        shown = [replace(grant, resource_type="note", resource_id=str(n.id)) for n in page.items]
        await guard.audit(uow, *(shown or [grant]))
    return page


@router.get(
    "/v1/notes/{note_id}",
    response_model=NotePublic,
    responses=problem_responses(401, 403, 404, 422),
    summary="Read a progress note",
)
async def get_note(
    note_id: NoteId, guard: GuardDep, database: DatabaseDep, response: Response
) -> NotePublic:
    async with unit_of_work(database) as uow:
        grant, _case, note = await _note(guard, uow, "note.read", note_id)
        await guard.audit(uow, grant)
    response.headers["ETag"] = etag(note)
    return note


@router.patch(
    "/v1/notes/{note_id}",
    response_model=NotePublic,
    responses=problem_responses(400, 401, 403, 404, 409, 412, 413, 422, 428),
    summary="Change your draft note (If-Match required)",
    description="Fields present replace the draft's. Only the author changes a draft; a signed "
    "note never changes (409): correct it with an addendum.",
)
async def update_note(
    note_id: NoteId,
    body: NoteUpdate,
    guard: GuardDep,
    database: DatabaseDep,
    clock: ClockDep,
    response: Response,
    if_match: IfMatch = None,
) -> NotePublic:
    async with unit_of_work(database) as uow:
        grant, case, note = await _note(guard, uow, "note.write", note_id, lock=True)
        await _as_read(guard, grant, if_match, note)
        async with refusals_audited(guard, grant):
            updated = await service.update_note(
                uow, case=case, note=note, data=body, by=guard.principal.subject, now=clock.now()
            )
        await guard.audit(uow, grant)
    response.headers["ETag"] = etag(updated)
    return updated


@router.post(
    "/v1/notes/{note_id}/signature",
    response_model=NotePublic,
    responses=problem_responses(401, 403, 404, 409, 412, 422, 428),
    summary="Sign your draft note (If-Match required): from now on it never changes",
    description="Publishes `NoteSigned` (ids and kind, never text). A signed contact note "
    "moves the case's last contact to when it happened. Kinds listed as needing it await a "
    "supervisor's co-signature. Signing twice is 409, and changes nothing.",
)
async def sign_note(
    note_id: NoteId,
    guard: GuardDep,
    database: DatabaseDep,
    clock: ClockDep,
    response: Response,
    if_match: IfMatch = None,
) -> NotePublic:
    async with unit_of_work(database) as uow:
        grant, case, note = await _note(guard, uow, "note.write", note_id, lock_case=True)
        await _as_read(guard, grant, if_match, note)
        async with refusals_audited(guard, grant):
            signed = await service.sign(
                uow, case=case, note=note, by=guard.principal.subject, now=clock.now()
            )
        await guard.audit(uow, grant)
    response.headers["ETag"] = etag(signed)
    return signed


@router.post(
    "/v1/notes/{note_id}/addenda",
    status_code=201,
    response_model=NotePublic,
    responses=problem_responses(400, 401, 403, 404, 409, 413, 422),
    summary="Correct a signed note: a draft addendum pointing at it, signed on its own",
)
async def add_addendum(
    note_id: NoteId,
    body: AddendumCreate,
    guard: GuardDep,
    database: DatabaseDep,
    clock: ClockDep,
    response: Response,
    idempotency_key: idempotency.IdempotencyKey = None,
) -> NotePublic | JSONResponse:
    idempotent = idempotency.IdempotentCreate(
        idempotency_key, "add_addendum", guard.principal, body, target=note_id
    )
    async with unit_of_work(database) as uow:
        grant, case, original = await _note(guard, uow, "note.write", note_id)
        stored = await idempotent.previous(uow.connection)
        if stored is not None:
            replayed = NotePublic.model_validate(stored.body)
            await guard.audit(uow, grant, replace(grant, resource_id=str(replayed.id)))
            return stored.replay(_headers(replayed))
        async with refusals_audited(guard, grant):
            addendum = await service.add_addendum(
                uow,
                case=case,
                original=original,
                data=body,
                by=guard.principal.subject,
                now=clock.now(),
            )
        await idempotent.remember(uow.connection, addendum)
        await guard.audit(uow, grant, replace(grant, resource_id=str(addendum.id)))
    response.headers.update(_headers(addendum))
    return addendum


@router.post(
    "/v1/notes/{note_id}/cosignature",
    response_model=NotePublic,
    responses=problem_responses(401, 403, 404, 409, 422),
    summary="Co-sign a signed note of a kind that needs it (a supervisor of the case's team)",
    description="Never the note's author (403 `self-cosignature`); only a supervisor of the "
    "case's own team (403 `not-case-supervisor`); once (409).",
)
async def cosign_note(
    note_id: NoteId,
    guard: GuardDep,
    database: DatabaseDep,
    clock: ClockDep,
    response: Response,
) -> NotePublic:
    async with unit_of_work(database) as uow:
        grant, case, note = await _note(guard, uow, "note.cosign", note_id, lock=True)
        async with refusals_audited(guard, grant):
            cosigned = await service.cosign(
                uow, case=case, note=note, principal=guard.principal, now=clock.now()
            )
        await guard.audit(uow, grant)
    response.headers["ETag"] = etag(cosigned)
    return cosigned
