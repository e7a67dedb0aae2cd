"""The rules of notes that need no database: who sees a restricted note, which kinds need a
supervisor's co-signature (data: cosignature.json), who may sign and co-sign."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

from services.planning.refusals import Refusal
from shared.auth.principal import Principal, Role
from shared.events.planning import NoteKind

_DATA = json.loads((Path(__file__).parent / "cosignature.json").read_text(encoding="utf-8"))
COSIGNED_KINDS: frozenset[NoteKind] = frozenset(NoteKind(kind) for kind in _DATA["kinds"])


class CaseTeam(Protocol):
    @property
    def organization_id(self) -> str: ...
    @property
    def team_id(self) -> str | None: ...


def needs_cosignature(kind: NoteKind) -> bool:
    return kind in COSIGNED_KINDS


def supervises(principal: Principal, case: CaseTeam) -> bool:
    """A supervisor of the case's own team, in the case's organisation."""
    return (
        principal.has(Role.SUPERVISOR)
        and principal.organization_id == case.organization_id
        and case.team_id is not None
        and principal.team_id == case.team_id
    )


def may_see(*, restricted: bool, author_id: str, principal: Principal, case: CaseTeam) -> bool:
    """A standard note: whoever may read the case's notes. A restricted one: its author and
    the case's team supervisor only (break-glass does not open it: auditors and everyone else
    see that it was read or written in the audit trail, never its content)."""
    if not restricted:
        return True
    return principal.subject == author_id or supervises(principal, case)


def cosign_refusal(
    *,
    signed: bool,
    needs: bool,
    cosigned: bool,
    author_id: str,
    principal: Principal,
    case: CaseTeam,
) -> Refusal | None:
    if not supervises(principal, case):
        return Refusal(403, "not-case-supervisor", "Only a supervisor of the case's team co-signs.")
    if principal.subject == author_id:
        return Refusal(403, "self-cosignature", "The author of a note cannot co-sign it.")
    if not signed:
        return Refusal(409, "note-not-signed", "The author signs the note before it is co-signed.")
    if not needs:
        return Refusal(409, "cosignature-not-needed", "This note's kind needs no co-signature.")
    if cosigned:
        return Refusal(409, "note-already-cosigned", "This note was co-signed already.")
    return None
