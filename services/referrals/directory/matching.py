"""Matching: the directory's services ranked for a client, each with why.

Candidates are the active services mapped to one of the client's need categories. What is known
of them but capacity comes from the process's snapshot of the directory (`snapshot.py`,
reloaded when the directory changed); capacity, which changes often, is read per request.

The score (higher is better), per service:
- needs met: +40 for each of the client's needs of high severity the service meets, +30
  moderate (or severity not known), +20 low;
- eligibility: +5 per rule passed (its HSDS minimum and maximum age count as rules); a rule
  failed makes the service ineligible: -100, and ineligible services come after all others;
  unknown rules (a fact the client has not given) add nothing and take nothing away;
- language: +10 when the service lists the client's language, -5 when it lists languages
  without it, 0 when it lists none;
- postal area: +15 when one of its service areas covers the client's postal area, -25 when it
  has readable service areas and none does, 0 when that cannot be told;
- capacity, when confirmed within `directory_capacity_stale_days`: capacity +15, waitlist +5,
  additional assessment required +5, no capacity -15; older or never confirmed: 0 (unknown);
- opening: +3 open now, +1 opening within a day.
Ties: the service's name, then id.

A service area covers a postal area when its `extent_type` is `text` and its `extent` lists
postal code prefixes (separated by commas, semicolons or spaces) one of which starts the
client's postal area or is started by it (HSDS leaves the text form free; geometry extents
are not read).
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from pydantic import BaseModel, Field

from services.referrals.directory.eligibility import ClientFacts, Outcome, RuleResult
from services.referrals.directory.schedules import Opening, Weekly, opening_of
from services.referrals.directory.snapshot import Check, Entry, Snapshot, judge_check
from services.referrals.directory.tables import CapacityStatus

NEED_POINTS = {"high": 40, "moderate": 30, "low": 20}
UNKNOWN_SEVERITY_POINTS = 30
RULE_PASSED_POINTS = 5
INELIGIBLE_POINTS = -100
LANGUAGE_POINTS = {True: 10, False: -5}
POSTAL_POINTS = {True: 15, False: -25}
CAPACITY_POINTS = {
    CapacityStatus.CAPACITY: 15,
    CapacityStatus.WAITLIST: 5,
    CapacityStatus.ADDITIONAL_ASSESSMENT_REQUIRED: 5,
    CapacityStatus.NO_CAPACITY: -15,
}
OPEN_NOW_POINTS, OPENS_SOON_POINTS = 3, 1
MAX_CANDIDATES = 5000


class LanguageFit(BaseModel):
    client_language: str | None
    service_languages: list[str]
    spoken: bool | None = Field(description="Null: the client's or the service's not known.")


class PostalFit(BaseModel):
    client_postal_area: str | None
    served: bool | None = Field(description="Null: cannot be told from the service areas.")
    service_areas: list[str] = Field(description="The service areas' names or extents.")


class CapacityFit(BaseModel):
    status: CapacityStatus | None = Field(description="As last confirmed; null: never.")
    last_confirmed_at: datetime | None
    stale: bool = Field(description="Confirmed longer ago than the setting allows (or never).")
    effective: str = Field(description="The status counted: `unknown` when stale.")


class Explanation(BaseModel):
    needs_met: list[str]
    eligibility: list[RuleResult]
    language: LanguageFit
    postal_area: PostalFit
    capacity: CapacityFit
    opening: Opening


class ServiceMatch(BaseModel):
    service_id: str
    service_name: str
    organization_id: str
    organization_name: str | None
    score: int
    eligible: str = Field(description="`eligible`, `ineligible` (a rule failed) or `unknown`.")
    explanation: Explanation


class MatchResult(BaseModel):
    facts: ClientFacts = Field(description="The facts the services were matched on.")
    candidates: int = Field(description="Services meeting at least one of the needs.")
    services: list[ServiceMatch]


def _norm_postal(value: str) -> str:
    return re.sub(r"\s+", "", value).upper()


def _covers(prefixes: tuple[str, ...] | None, postal_area: str | None) -> bool | None:
    if postal_area is None or prefixes is None:
        return None
    client = _norm_postal(postal_area)
    return any(client.startswith(prefix) or prefix.startswith(client) for prefix in prefixes)


def _speaks(spoken: tuple[str, ...], language: str | None) -> bool | None:
    if language is None or not spoken:
        return None
    wanted = language.lower().split("-")[0]
    return any(code.split("-")[0] == wanted for code in spoken)


def _capacity(
    status: str | None, confirmed: datetime | None, now: datetime, stale_after: timedelta
) -> CapacityFit:
    stale = confirmed is None or now - confirmed > stale_after
    return CapacityFit(
        status=CapacityStatus(status) if status else None,
        last_confirmed_at=confirmed,
        stale=stale,
        effective="unknown" if stale or status is None else status,
    )


def _opening_points(opens: Opening, now: datetime) -> int:
    if opens.open_now:
        return OPEN_NOW_POINTS
    if opens.next_opens_at is not None and opens.next_opens_at - now <= timedelta(days=1):
        return OPENS_SOON_POINTS
    return 0


async def match(
    connection: asyncpg.Connection,
    snapshot: Snapshot,
    facts: ClientFacts,
    *,
    now: datetime,
    stale_after: timedelta,
    limit: int,
) -> MatchResult:
    """Ranks on plain values, memoised per request on what the outcome depends on (a rule's
    expression, a schedule set, a language or prefix set): only the `limit` services returned
    are built into models."""
    needs = sorted(set(facts.need_categories or []))
    if not needs:
        return MatchResult(facts=facts, candidates=0, services=[])
    met: dict[str, list[str]] = {}
    for need in needs:
        for service_id in snapshot.by_need.get(need, ()):
            met.setdefault(service_id, []).append(need)
    if len(met) > MAX_CANDIDATES:
        met = {service_id: met[service_id] for service_id in sorted(met)[:MAX_CANDIDATES]}
    capacities = {
        row["service_id"]: (row["status"], row["last_confirmed_at"])
        for row in await connection.fetch(
            """
            SELECT service_id, status, last_confirmed_at FROM service_capacity_status
            WHERE service_id IN (SELECT service_id FROM service_need_categories
                                 WHERE need_category = ANY($1::text[]))
            """,
            needs,
        )
    }
    context = facts.context()
    severities = facts.need_severities or {}
    need_points = {
        need: NEED_POINTS.get(severities.get(need, ""), UNKNOWN_SEVERITY_POINTS) for need in needs
    }
    judged: dict[Check, tuple[Outcome, str | None]] = {}
    summaries: dict[tuple[Check, ...], tuple[int, bool, bool]] = {}
    spoken_of: dict[tuple[str, ...], bool | None] = {}
    served_of: dict[tuple[str, ...] | None, bool | None] = {}
    openings: dict[tuple[Weekly, ...], tuple[Opening, int]] = {}
    no_capacity: tuple[str | None, datetime | None] = (None, None)
    scored: list[tuple[bool, int, str, str, Entry]] = []
    for service_id, needs_met in met.items():
        entry = snapshot.services[service_id]
        summary = summaries.get(entry.checks)
        if summary is None:
            outcomes = []
            for check in entry.checks:
                if check not in judged:
                    judged[check] = judge_check(check, context)
                outcomes.append(judged[check][0])
            summary = summaries[entry.checks] = (
                outcomes.count(Outcome.PASSED),
                Outcome.FAILED in outcomes,
                Outcome.UNKNOWN in outcomes,
            )
        passed, failed, _unknown = summary
        if entry.languages not in spoken_of:
            spoken_of[entry.languages] = _speaks(entry.languages, facts.language)
        spoken = spoken_of[entry.languages]
        if entry.prefixes not in served_of:
            served_of[entry.prefixes] = _covers(entry.prefixes, facts.postal_area)
        served = served_of[entry.prefixes]
        if entry.schedules not in openings:
            opens = opening_of(entry.schedules, now)
            openings[entry.schedules] = (opens, _opening_points(opens, now))
        score = sum(need_points[need] for need in needs_met)
        score += RULE_PASSED_POINTS * passed + (INELIGIBLE_POINTS if failed else 0)
        score += LANGUAGE_POINTS[spoken] if spoken is not None else 0
        score += POSTAL_POINTS[served] if served is not None else 0
        status, confirmed = capacities.get(service_id, no_capacity)
        if status is not None and confirmed is not None and now - confirmed <= stale_after:
            score += CAPACITY_POINTS[CapacityStatus(status)]
        score += openings[entry.schedules][1]
        scored.append((failed, -score, entry.name, service_id, entry))
    scored.sort(key=lambda item: item[:4])
    matches = []
    for failed, negative, _name, service_id, entry in scored[:limit]:
        status, confirmed = capacities.get(service_id, no_capacity)
        rules = [
            RuleResult(rule_id=rule.rule_id, description=rule.description,
                       outcome=judged[rule.check][0], detail=judged[rule.check][1])
            for rule in entry.rules
        ]  # fmt: skip
        unknown = summaries[entry.checks][2]
        matches.append(
            ServiceMatch(
                service_id=service_id,
                service_name=entry.name,
                organization_id=entry.organization_id,
                organization_name=entry.organization_name,
                score=-negative,
                eligible="ineligible" if failed else ("unknown" if unknown else "eligible"),
                explanation=Explanation(
                    needs_met=met[service_id],
                    eligibility=rules,
                    language=LanguageFit(
                        client_language=facts.language,
                        service_languages=list(entry.languages),
                        spoken=spoken_of[entry.languages],
                    ),
                    postal_area=PostalFit(
                        client_postal_area=facts.postal_area,
                        served=served_of[entry.prefixes],
                        service_areas=list(entry.area_labels),
                    ),
                    capacity=_capacity(status, confirmed, now, stale_after),
                    opening=openings[entry.schedules][0],
                ),
            )
        )
    return MatchResult(facts=facts, candidates=len(met), services=matches)


async def client_facts(connection: asyncpg.Connection, client_id: Any) -> ClientFacts:
    """What referrals knows of a client: its reference and its latest assessment."""
    row = await connection.fetchrow(
        """
        SELECT r.preferred_language AS registered_language, a.preferred_language, a.needs,
               a.risk_level, a.priority, a.postal_area
        FROM client_refs r LEFT JOIN client_assessments a ON a.client_id = r.client_id
        WHERE r.client_id = $1
        """,
        client_id,
    )
    if row is None:
        return ClientFacts()
    needs = row["needs"]
    if isinstance(needs, str):  # a connection without the pool's JSON codec
        needs = json.loads(needs)
    return ClientFacts(
        language=row["preferred_language"] or row["registered_language"],
        need_categories=sorted(needs) if needs is not None else None,
        need_severities=needs,
        risk_level=row["risk_level"],
        priority=row["priority"],
        postal_area=row["postal_area"],
    )
