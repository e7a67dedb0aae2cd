"""What a duplicate candidate shows, to whom: the search and the 409 of a registration show the
same two shapes.

A candidate in the caller's `client.read` scope shows what tells the worker whether it is the
same person: names, birth date, score and the reasons for it. A candidate outside it (another
team's or worker's client of the organisation) shows only what a worker needs to decide that
it may be the same person and ask whoever holds the case: names, birth year and which fields
matched, as field names, never values (no birth date, no "same phone number", no score). The
full record needs access to it. Each candidate shown, of either shape, is audited.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, Field

from services.intake.clients.search import Candidate, MatchedField


class CandidatePublic(BaseModel):
    """A candidate you may read: what tells you whether it is the same person; nothing more."""

    access: Literal["full"] = Field(
        default="full", description="`full`: the record is in your scope."
    )
    client_id: UUID
    given_name: str | None
    family_name: str | None
    birth_date: date | None
    score: float = Field(description="0 to 1; at or above 0.65 a likely duplicate.")
    reasons: list[str] = Field(examples=[["name similarity 0.83", "same birth date"]])
    matched: list[MatchedField] = Field(description="The fields that matched your search.")
    likely_duplicate: bool


class CandidateSummary(BaseModel):
    """A candidate outside your scope: enough to see that it may be the same person and to ask
    whoever holds the case; reading the record needs access to it."""

    access: Literal["limited"] = Field(
        default="limited", description="`limited`: the record is outside your scope."
    )
    client_id: UUID
    given_name: str | None
    family_name: str | None
    birth_year: int | None
    matched: list[MatchedField] = Field(
        description="The fields that matched your search, by name only.",
        examples=[["name", "birth_date"]],
    )


CandidateShown = Annotated[CandidatePublic | CandidateSummary, Field(discriminator="access")]


def shown(candidate: Candidate, *, readable: bool) -> CandidatePublic | CandidateSummary:
    """The candidate as the caller may see it (`readable`: in their client.read scope)."""
    if readable:
        return CandidatePublic(
            client_id=candidate.client_id,
            given_name=candidate.given_name,
            family_name=candidate.family_name,
            birth_date=candidate.birth_date,
            score=candidate.score,
            reasons=candidate.reasons,
            matched=candidate.matched,
            likely_duplicate=candidate.likely_duplicate,
        )
    return CandidateSummary(
        client_id=candidate.client_id,
        given_name=candidate.given_name,
        family_name=candidate.family_name,
        birth_year=candidate.birth_date.year if candidate.birth_date else None,
        matched=candidate.matched,
    )
