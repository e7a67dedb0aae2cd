"""Finding the same person twice: candidates by name (trigram similarity, phonetic codes),
birth date (also with day and month swapped) and phone, each found through an index, then
scored with the reasons for the score.

Scoring is deliberately simple and explained: a worker must be able to see why two records
look alike. Weights: name similarity up to 0.45, names that sound alike 0.15, the same birth
date 0.35 (day and month swapped 0.30, same year 0.03: namesakes born the same year are
common in a large registry and must not be called duplicates on that alone), the same phone 0.30; capped at 1.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import date
from uuid import UUID

import asyncpg

LIKELY_DUPLICATE = 0.65
FIRST_SCOPE_PARAMETER = 7  # the candidates query binds $1..$6 itself
NAME_THRESHOLD = 0.4


def normalize(text: str | None) -> str:
    """Lower-case, accents removed, punctuation to spaces: 'José-María' -> 'jose maria'."""
    if not text:
        return ""
    decomposed = unicodedata.normalize("NFKD", text)
    letters = "".join(c for c in decomposed if not unicodedata.combining(c))
    cleaned = "".join(c if c.isalnum() else " " for c in letters.lower())
    return " ".join(cleaned.split())


def name_key(given: str | None, family: str | None) -> str:
    return normalize(f"{given or ''} {family or ''}")


def first_token(text: str | None) -> str | None:
    tokens = normalize(text).split()
    return tokens[0] if tokens else None


def last_token(text: str | None) -> str | None:
    tokens = normalize(text).split()
    return tokens[-1] if tokens else None


def swapped(day: date | None) -> date | None:
    """The date with day and month exchanged, when that is a different valid date."""
    if day is None or day.day > 12 or day.day == day.month:
        return None
    return date(day.year, day.day, day.month)


@dataclass(frozen=True)
class Candidate:
    client_id: UUID
    given_name: str | None
    family_name: str | None
    birth_date: date | None
    score: float
    reasons: list[str]

    @property
    def likely_duplicate(self) -> bool:
        return self.score >= LIKELY_DUPLICATE


# The name branch: within the birth year when one is given (the same year, or the year of a
# birth date whose day and month were swapped: the same), across everyone otherwise.
_NAME_IN_YEAR = "SELECT id FROM clients WHERE $1 <> '' AND birth_year = $6 AND name_key % $1"
_NAME_ANYWHERE = "SELECT id FROM clients WHERE $1 <> '' AND $6::smallint IS NULL AND name_key % $1"

_CANDIDATES = """
WITH matches AS (
    {name_branch}
    UNION SELECT id FROM clients
        WHERE cardinality($2::text[]) > 0
          AND given_phonetic = ANY($2::text[]) AND family_phonetic = ANY($2::text[])
    UNION SELECT id FROM clients WHERE birth_date = $3 OR birth_date = $4
    UNION SELECT id FROM clients WHERE phone_digits = $5
)
SELECT c.id, c.given_name, c.family_name, c.birth_date, c.given_phonetic, c.family_phonetic,
       c.phone_digits, similarity(c.name_key, $1) AS name_similarity
FROM matches JOIN clients c USING (id) JOIN client_access a ON a.client_id = c.id
WHERE {visible}
ORDER BY similarity(c.name_key, $1)
    + CASE WHEN c.birth_date = $3 OR c.birth_date = $4 THEN 0.8 ELSE 0 END
    + CASE WHEN c.phone_digits = $5 THEN 0.7 ELSE 0 END DESC
LIMIT 200
"""


async def find_candidates(
    connection: asyncpg.Connection,
    *,
    name: str | None,
    birth_date: date | None,
    phone_digits: str | None,
    visible: tuple[str, list[str]],
    limit: int,
) -> list[Candidate]:
    """`visible`: Policy.list_filter(..., first_parameter=FIRST_SCOPE_PARAMETER)."""
    key = normalize(name)
    phonetic = await connection.fetchval(
        "SELECT coalesce(array_agg(DISTINCT dmetaphone(token)), '{}') "
        "FROM unnest(string_to_array($1, ' ')) AS token WHERE token <> ''",
        key,
    )
    clause, parameters = visible
    # Custom plans: a cached generic plan cannot see which branch ($1 empty, $6 null) applies
    # and would scan; planning this query costs far less than such a scan.
    await connection.execute(
        "SELECT set_config('pg_trgm.similarity_threshold', $1, true), "
        "set_config('plan_cache_mode', 'force_custom_plan', true)",
        str(NAME_THRESHOLD),
    )
    rows = await connection.fetch(
        _CANDIDATES.format(
            name_branch=_NAME_IN_YEAR if birth_date else _NAME_ANYWHERE, visible=clause
        ),
        key,
        phonetic,
        birth_date,
        swapped(birth_date),
        phone_digits,
        birth_date.year if birth_date else None,
        *parameters,
    )
    candidates = [_score(row, key, set(phonetic), birth_date, phone_digits) for row in rows]
    candidates = [candidate for candidate in candidates if candidate.score > 0.3]
    return sorted(candidates, key=lambda c: (-c.score, str(c.client_id)))[:limit]


def _score(
    row: asyncpg.Record,
    key: str,
    phonetic: set[str],
    birth_date: date | None,
    phone_digits: str | None,
) -> Candidate:
    score = 0.0
    reasons: list[str] = []
    if key and row["name_similarity"]:
        similarity = float(row["name_similarity"])
        score += 0.45 * similarity
        reasons.append(f"name similarity {similarity:.2f}")
    if phonetic and row["given_phonetic"] in phonetic and row["family_phonetic"] in phonetic:
        score += 0.15
        reasons.append("names sound alike")
    if birth_date and row["birth_date"]:
        if row["birth_date"] == birth_date:
            score += 0.35
            reasons.append("same birth date")
        elif row["birth_date"] == swapped(birth_date):
            score += 0.30
            reasons.append("birth date with day and month swapped")
        elif row["birth_date"].year == birth_date.year:
            score += 0.03
            reasons.append("same birth year")
    if phone_digits and row["phone_digits"] == phone_digits:
        score += 0.30
        reasons.append("same phone number")
    return Candidate(
        client_id=row["id"],
        given_name=row["given_name"],
        family_name=row["family_name"],
        birth_date=row["birth_date"],
        score=round(min(score, 1.0), 3),
        reasons=reasons,
    )
