"""Finding the same person twice: candidates by name (trigram similarity, phonetic codes),
birth date (also with day and month swapped), phone and identifier, each found through an
index, then scored with the reasons for the score.

What a search needs, so that it finds a person rather than lists a population: a name, an
exact phone number or an exact identifier (`Probe.identifies`); a birth date only narrows one
of these (alone it listed everyone born that day). An exact match on the phone, the
identifier, or (for a one-word name) the family name is always shown, whatever its score:
someone who searches by a phone number or a surname alone wants exactly those records. An
identifier adds nothing to the score (see below: the registration check relies on that).

Scoring is deliberately simple and explained: a worker must be able to see why two records
look alike. The weights are below; the score is capped at 1. Namesakes born the same year are
common in a large registry, so the same year alone weighs almost nothing.

Two uses: a search shows a worker every plausible candidate (`find_candidates`); the check
before registering looks only for likely duplicates (`find_likely_duplicates`). By these
weights a likely duplicate always shares the birth date (or its day-and-month swap) or the
phone number (`can_be_likely_duplicate`), so that check needs only those two indexes: a few
dozen rows at a million clients, where a name search reads thousands.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any, Literal
from uuid import UUID

import asyncpg

from shared.auth.facts import ClientFacts

LIKELY_DUPLICATE = 0.65
NAME_THRESHOLD = 0.4

NAME_SIMILARITY_WEIGHT = 0.45  # times the trigram similarity of the whole name, 0 to 1
SOUNDS_ALIKE = 0.15  # given and family name sound alike, or each is a typo away
SAME_BIRTH_DATE = 0.35
SWAPPED_BIRTH_DATE = 0.30
SAME_BIRTH_YEAR = 0.03
SAME_PHONE = 0.30
# With neither a birth date nor a phone to compare, no score reaches LIKELY_DUPLICATE (a name
# scores at most 0.60). The check before registering then asks about near-namesakes instead:
# a score on the name alone of at least NAMESAKE (0.42), that is names at least this similar
# that also sound alike or are a typo apart, or names all but identical (similarity >= 0.94).
NAMESAKE_SIMILARITY = 0.6
NAMESAKE = NAME_SIMILARITY_WEIGHT * NAMESAKE_SIMILARITY + SOUNDS_ALIKE


def can_be_likely_duplicate(*, birth_date_matches: bool, phone_matches: bool) -> bool:
    """Whether a record can score as a likely duplicate at all: the best score it can reach
    given which of birth date (exact or swapped) and phone it shares."""
    best = NAME_SIMILARITY_WEIGHT + SOUNDS_ALIKE
    best += SAME_BIRTH_DATE if birth_date_matches else SAME_BIRTH_YEAR
    best += SAME_PHONE if phone_matches else 0.0
    return best >= LIKELY_DUPLICATE


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


def typo_apart(one: str, other: str) -> bool:
    """At most one typo apart: a letter changed, added or dropped, or two neighbours swapped
    ('jonhson', 'johnson'). Names of one or two letters must be the same."""
    if one == other:
        return True
    if min(len(one), len(other)) < 3 or abs(len(one) - len(other)) > 1:
        return False
    if len(one) == len(other):
        differ = [i for i, (a, b) in enumerate(zip(one, other, strict=True)) if a != b]
        if len(differ) != 2:
            return len(differ) == 1
        first, second = differ
        return second == first + 1 and (one[first], one[second]) == (other[second], other[first])
    shorter, longer = sorted((one, other), key=len)
    prefix = next(
        (i for i, (a, b) in enumerate(zip(shorter, longer, strict=False)) if a != b), len(shorter)
    )
    return shorter[prefix:] == longer[prefix + 1 :]


def spelled_alike(probe: str, given_name: str | None, family_name: str | None) -> bool:
    """The record's given name (first word) and family name (last word) are each a typo away
    from some word of the normalized probe, in any order (transposed names count)."""
    words = probe.split()
    parts = [first_token(given_name), last_token(family_name)]
    return bool(words) and all(
        part is not None and any(typo_apart(part, word) for word in words) for part in parts
    )


def swapped(day: date | None) -> date | None:
    """The date with day and month exchanged, when that is a different valid date."""
    if day is None or day.day > 12 or day.day == day.month:
        return None
    return date(day.year, day.day, day.month)


# Identifier types that single out one person; the last four digits of a national id are
# shared by thousands and do not (they can be recorded, not searched by).
IDENTIFYING_TYPES = frozenset({"health_insurance_id", "agency_case_number"})

# The record fields a candidate can match on, as a worker outside its scope is told them.
MatchedField = Literal["name", "birth_date", "birth_year", "phone", "identifier"]
NAME: MatchedField = "name"
BIRTH_DATE: MatchedField = "birth_date"
BIRTH_YEAR: MatchedField = "birth_year"
PHONE: MatchedField = "phone"
IDENTIFIER: MatchedField = "identifier"


@dataclass(frozen=True)
class IdentifierProbe:
    type: str
    value: str

    def matches(self, identifiers: list[dict[str, str]] | None) -> bool:
        return any(
            (i.get("type"), i.get("value")) == (self.type, self.value) for i in identifiers or []
        )


@dataclass(frozen=True)
class Candidate:
    client_id: UUID
    given_name: str | None
    family_name: str | None
    birth_date: date | None
    score: float
    reasons: list[str]
    matched: list[MatchedField] = field(default_factory=list)
    exact: bool = False  # the phone, the identifier or the one-word family name is the same
    facts: ClientFacts | None = None  # who the record belongs to: decides what may be shown

    @property
    def likely_duplicate(self) -> bool:
        return self.score >= LIKELY_DUPLICATE


# Where a search's candidates come from, each branch through an index. $1 is the normalized
# name, $2 and $3 the birth date and its swap, $4 the phone digits, $5 the birth year, $6 the
# name's phonetic codes. The name branch looks within the birth year when one is given (a
# swapped birth date has the same year), across everyone otherwise.
_BY_NAME_IN_YEAR = "SELECT id FROM clients WHERE $1 <> '' AND birth_year = $5 AND name_key % $1"
_BY_NAME_ANYWHERE = (
    "SELECT id FROM clients WHERE $1 <> '' AND $5::smallint IS NULL AND name_key % $1"
)
# The codes as a value, not computed in the query: the planner then knows how many records
# share them and keeps to the indexes (computed in the query, it guesses thousands and scans).
_BY_SOUND = (
    "SELECT id FROM clients WHERE given_phonetic = ANY($6::text[]) "
    "AND family_phonetic = ANY($6::text[])"
)
_BY_BIRTH_DATE = "SELECT id FROM clients WHERE birth_date = $2 OR birth_date = $3"
_BY_PHONE = "SELECT id FROM clients WHERE phone_digits = $4"
# A one-word name may be a family name alone: the records whose family name sounds like it
# (the family_phonetic index), kept when it is the same (`score`). $7 the identifier probe.
_BY_FAMILY_SOUND = "SELECT id FROM clients WHERE family_phonetic = ANY($6::text[])"
_BY_IDENTIFIER = "SELECT id FROM clients WHERE $7::jsonb IS NOT NULL AND identifiers @> $7::jsonb"

_PHONETIC_CODES = (
    "SELECT coalesce(array_agg(DISTINCT dmetaphone(token)), ARRAY[]::text[]) "
    "FROM unnest(string_to_array($1, ' ')) AS token WHERE token <> ''"
)


def _scored_columns(codes: str) -> str:
    """The columns `score` reads of a candidate row (alias `c`; $1 is the normalized name),
    given the SQL for the probe's phonetic codes."""
    return (
        "c.id, c.given_name, c.family_name, c.birth_date, c.phone_digits, c.identifiers, "
        "a.organization_id, a.team_id, a.registered_by, a.owner_id, "
        "similarity(c.name_key, $1) AS name_similarity, "
        f"coalesce(c.given_phonetic = ANY({codes}) AND c.family_phonetic = ANY({codes}), false) "
        "AS sounds_alike"
    )


# At most 200 candidates go on to be scored, ranked first by a rough form of the score.
_CANDIDATES = """
WITH matches AS (
    {branches}
)
SELECT {columns}
FROM matches JOIN clients c USING (id) JOIN client_access a ON a.client_id = c.id
WHERE {visible}
ORDER BY similarity(c.name_key, $1)
    + CASE WHEN c.birth_date = $2 OR c.birth_date = $3 THEN 0.8 ELSE 0 END
    + CASE WHEN c.phone_digits = $4 THEN 0.7 ELSE 0 END
    + CASE WHEN c.birth_year = $5 THEN 0.05 ELSE 0 END DESC
LIMIT 200
"""

# The clients the caller may find: given the number of the first free query parameter, an SQL
# condition over client_access (alias `a`) and its values (e.g. a partial Policy.list_filter).
ScopeFilter = Callable[[int], tuple[str, list[str]]]


def _union(*branches: str) -> str:
    return "\n    UNION ".join(branches)


async def _phonetic_codes(connection: asyncpg.Connection, key: str, threshold: float) -> list[str]:
    """The name's phonetic codes, with this transaction's similarity threshold and custom plans
    set on the way (one round trip)."""
    codes: list[str] = await connection.fetchval(
        f"SELECT set_config('pg_trgm.similarity_threshold', $2, true), "
        f"set_config('plan_cache_mode', 'force_custom_plan', true), ({_PHONETIC_CODES})",
        key,
        str(threshold),
        column=2,
    )
    return codes


def identifies(
    *, name: str | None, phone_digits: str | None, identifier: IdentifierProbe | None
) -> bool:
    """Whether a search names someone (see the module's doc): a name with a letter or digit in
    it, an exact phone number or an exact identifier."""
    return bool(normalize(name)) or bool(phone_digits) or identifier is not None


async def find_candidates(
    connection: asyncpg.Connection,
    *,
    name: str | None,
    birth_date: date | None,
    phone_digits: str | None,
    identifier: IdentifierProbe | None = None,
    visible: ScopeFilter,
    limit: int,
) -> list[Candidate]:
    """Everyone who might be this person, best first; nobody unless the search `identifies`
    someone (a birth date alone would list everyone born that day)."""
    if not identifies(name=name, phone_digits=phone_digits, identifier=identifier):
        return []
    key = normalize(name)
    # Custom plans: a cached generic plan cannot see which branch ($1 empty, $5 null) applies
    # and would scan; planning this query costs far less than such a scan.
    phonetic = await _phonetic_codes(connection, key, NAME_THRESHOLD)
    by_name = _BY_NAME_IN_YEAR if birth_date else _BY_NAME_ANYWHERE
    branches = [by_name, _BY_SOUND, _BY_BIRTH_DATE, _BY_PHONE, _BY_IDENTIFIER]
    if len(key.split()) == 1:
        branches.append(_BY_FAMILY_SOUND)
    clause, scope_values = visible(8)
    query = _CANDIDATES.format(
        columns=_scored_columns("$6::text[]"), branches=_union(*branches), visible=clause
    )
    rows = await connection.fetch(
        query,
        key,
        birth_date,
        swapped(birth_date),
        phone_digits,
        birth_date.year if birth_date else None,
        phonetic,
        [{"type": identifier.type, "value": identifier.value}] if identifier else None,
        *scope_values,
    )
    return _scored(rows, key, birth_date, phone_digits, identifier)[:limit]


# The check before registering: the records sharing the birth date (or its swap) or the phone,
# through those indexes, kept only if their best possible score reaches the threshold (the
# name bonus assumed: whether names are a typo apart is decided in Python). A few dozen rows
# share a birth date at a million clients; this bound leaves the few worth scoring. The rows
# are chosen first (MATERIALIZED): the similarity is never computed for others, whatever plan
# the statistics of a fast-growing table lead to.
# $1 the normalized name, $2 and $3 the birth date and its swap, $4 the phone digits.
_LIKELY_DUPLICATES = f"""
WITH probe (phonetic) AS ({_PHONETIC_CODES}),
sharing AS MATERIALIZED (
    SELECT id, given_name, family_name, birth_date, phone_digits, identifiers, name_key,
           given_phonetic, family_phonetic
    FROM clients WHERE birth_date = $2 OR birth_date = $3 OR phone_digits = $4
)
SELECT {_scored_columns("probe.phonetic")}
FROM sharing c CROSS JOIN probe JOIN client_access a ON a.client_id = c.id
WHERE {NAME_SIMILARITY_WEIGHT} * coalesce(similarity(c.name_key, $1), 0) + {SOUNDS_ALIKE}
      + CASE WHEN c.birth_date = $2 THEN {SAME_BIRTH_DATE}
             WHEN c.birth_date = $3 THEN {SWAPPED_BIRTH_DATE} ELSE 0 END
      + CASE WHEN c.phone_digits = $4 THEN {SAME_PHONE} ELSE 0 END >= {LIKELY_DUPLICATE}
  AND {{visible}}
LIMIT 200
"""


# Near-namesakes anywhere in the registry, through the trigram index ($1 the normalized name,
# $2 its phonetic codes; the similarity threshold is set to NAMESAKE_SIMILARITY first).
_NAMESAKES = f"""
SELECT {_scored_columns("$2::text[]")}
FROM clients c JOIN client_access a ON a.client_id = c.id
WHERE c.name_key % $1 AND {{visible}}
ORDER BY similarity(c.name_key, $1) DESC
LIMIT 200
"""


async def find_namesakes(
    connection: asyncpg.Connection, *, name: str | None, visible: ScopeFilter, limit: int
) -> list[Candidate]:
    """The records whose name is nearly the same (see NAMESAKE), best first: what the check
    before registering asks about when the new record has neither birth date nor phone."""
    key = normalize(name)
    if not key:
        return []
    phonetic = await _phonetic_codes(connection, key, NAMESAKE_SIMILARITY)
    clause, scope_values = visible(3)
    rows = await connection.fetch(_NAMESAKES.format(visible=clause), key, phonetic, *scope_values)
    candidates = _scored(rows, key, None, None)
    return [candidate for candidate in candidates if candidate.score >= NAMESAKE][:limit]


async def find_likely_duplicates(
    connection: asyncpg.Connection,
    *,
    name: str | None,
    birth_date: date | None,
    phone_digits: str | None,
    visible: ScopeFilter,
    limit: int,
) -> list[Candidate]:
    """The candidates at or above LIKELY_DUPLICATE, best first: exactly those find_candidates
    would flag (see the module's doc), in one round trip."""
    if birth_date is None and not phone_digits:
        return []
    key = normalize(name)
    clause, scope_values = visible(5)
    rows = await connection.fetch(
        _LIKELY_DUPLICATES.format(visible=clause),
        key,
        birth_date,
        swapped(birth_date),
        phone_digits,
        *scope_values,
    )
    candidates = _scored(rows, key, birth_date, phone_digits)
    return [candidate for candidate in candidates if candidate.likely_duplicate][:limit]


def _scored(
    rows: list[asyncpg.Record],
    key: str,
    birth_date: date | None,
    phone_digits: str | None,
    identifier: IdentifierProbe | None = None,
) -> list[Candidate]:
    candidates = [
        replace(score(row, key, birth_date, phone_digits, identifier), facts=_facts(row))
        for row in rows
    ]
    candidates = [c for c in candidates if c.score > 0.3 or c.exact]
    return sorted(candidates, key=lambda c: (-c.score, str(c.client_id)))


def _facts(row: asyncpg.Record) -> ClientFacts:
    return ClientFacts(
        client_id=row["id"],
        organization_id=row["organization_id"],
        team_id=row["team_id"],
        registered_by=row["registered_by"],
        owner_id=row["owner_id"],
    )


def score(
    row: Mapping[str, Any],
    key: str,
    birth_date: date | None,
    phone_digits: str | None,
    identifier: IdentifierProbe | None = None,
) -> Candidate:
    """Score one candidate row of the candidates query against the probe, with the reasons
    and the fields that matched."""
    total = 0.0
    reasons: list[str] = []
    matched: list[MatchedField] = []
    similarity = float(row["name_similarity"] or 0) if key else 0.0
    if similarity:
        total += NAME_SIMILARITY_WEIGHT * similarity
        reasons.append(f"name similarity {similarity:.2f}")
    alike = True
    if row["sounds_alike"]:
        total += SOUNDS_ALIKE
        reasons.append("names sound alike")
    elif spelled_alike(key, row["given_name"], row["family_name"]):
        total += SOUNDS_ALIKE
        reasons.append("names a typo apart")
    else:
        alike = False
    same_family_name = len(key.split()) == 1 and last_token(row["family_name"]) == key
    if same_family_name:
        reasons.append("same family name")
    if alike or same_family_name or similarity >= NAME_THRESHOLD:
        matched.append(NAME)
    if birth_date and row["birth_date"]:
        if row["birth_date"] == birth_date:
            total += SAME_BIRTH_DATE
            reasons.append("same birth date")
            matched.append(BIRTH_DATE)
        elif row["birth_date"] == swapped(birth_date):
            total += SWAPPED_BIRTH_DATE
            reasons.append("birth date with day and month swapped")
            matched.append(BIRTH_DATE)
        elif row["birth_date"].year == birth_date.year:
            total += SAME_BIRTH_YEAR
            reasons.append("same birth year")
            matched.append(BIRTH_YEAR)
    same_phone = bool(phone_digits) and row["phone_digits"] == phone_digits
    if same_phone:
        total += SAME_PHONE
        reasons.append("same phone number")
        matched.append(PHONE)
    # Found, not scored: the check before registering never looks at identifiers, and by the
    # weights above it must not miss anything a search would flag.
    same_identifier = identifier is not None and identifier.matches(row.get("identifiers"))
    if same_identifier:
        reasons.append("same identifier")
        matched.append(IDENTIFIER)
    return Candidate(
        client_id=row["id"],
        given_name=row["given_name"],
        family_name=row["family_name"],
        birth_date=row["birth_date"],
        score=round(min(total, 1.0), 3),
        reasons=reasons,
        matched=matched,
        exact=same_phone or same_identifier or same_family_name,
    )


@dataclass(frozen=True)
class DuplicateCheck:
    """What a registration was checked against, and the records it may duplicate."""

    candidates: list[Candidate]
    compared: list[Literal["name", "birth_date", "phone"]]


async def check_before_registering(
    connection: asyncpg.Connection,
    *,
    name: str,
    birth_date: date | None,
    phone_digits: str | None,
    visible: ScopeFilter,
    limit: int = 5,
) -> DuplicateCheck:
    """The check a registration must pass. With a birth date or a phone, the likely duplicates
    (exactly what a search would flag); with neither, a name alone can never reach "likely"
    (it tops out at 0.60), so records with nearly the same name are what must be looked at."""
    if birth_date is None and not phone_digits:
        namesakes = await find_namesakes(connection, name=name, visible=visible, limit=limit)
        return DuplicateCheck(namesakes, ["name"])
    likely = await find_likely_duplicates(
        connection,
        name=name,
        birth_date=birth_date,
        phone_digits=phone_digits,
        visible=visible,
        limit=limit,
    )
    return DuplicateCheck(likely, ["name", "birth_date", "phone"])
