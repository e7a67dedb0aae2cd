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

import heapq
import json
import re
from collections.abc import Iterable
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


def _stale(confirmed: datetime | None, now: datetime, stale_after: timedelta) -> bool:
    """Capacity confirmed longer ago than the setting allows, or never: counted as unknown."""
    return confirmed is None or now - confirmed > stale_after


def _capacity(
    status: str | None, confirmed: datetime | None, now: datetime, stale_after: timedelta
) -> CapacityFit:
    stale = _stale(confirmed, now, stale_after)
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


class _Scoring:
    """One request's scoring: each outcome is worked out once per what it depends on (a rule's
    expression, a set of checks, of languages, of postal prefixes, of schedules)."""

    def __init__(
        self,
        facts: ClientFacts,
        needs: list[str],
        capacities: dict[str, asyncpg.Record],
        now: datetime,
        stale_after: timedelta,
    ) -> None:
        self.facts, self.needs, self.capacities = facts, needs, capacities
        self.now, self.stale_after = now, stale_after
        self.context = facts.context()
        severities = facts.need_severities or {}
        self.need_points = {
            need: NEED_POINTS.get(severities.get(need, ""), UNKNOWN_SEVERITY_POINTS)
            for need in needs
        }
        self.judged: dict[Check, tuple[Outcome, str | None]] = {}
        self.summaries: dict[tuple[Check, ...], tuple[int, bool, bool]] = {}
        self.spoken: dict[tuple[str, ...], bool | None] = {}
        self.served: dict[tuple[str, ...] | None, bool | None] = {}
        self.openings: dict[tuple[Weekly, ...], tuple[Opening, int]] = {}

    def summary(self, entry: Entry) -> tuple[int, bool, bool]:
        """Rules passed, any failed, any unknown."""
        summary = self.summaries.get(entry.checks)
        if summary is None:
            outcomes = []
            for check in entry.checks:
                if check not in self.judged:
                    self.judged[check] = judge_check(check, self.context)
                outcomes.append(self.judged[check][0])
            summary = self.summaries[entry.checks] = (
                outcomes.count(Outcome.PASSED),
                Outcome.FAILED in outcomes,
                Outcome.UNKNOWN in outcomes,
            )
        return summary

    def speaks(self, entry: Entry) -> bool | None:
        if entry.languages not in self.spoken:
            self.spoken[entry.languages] = _speaks(entry.languages, self.facts.language)
        return self.spoken[entry.languages]

    def serves(self, entry: Entry) -> bool | None:
        if entry.prefixes not in self.served:
            self.served[entry.prefixes] = _covers(entry.prefixes, self.facts.postal_area)
        return self.served[entry.prefixes]

    def opening(self, entry: Entry) -> tuple[Opening, int]:
        found = self.openings.get(entry.schedules)
        if found is None:
            opens = opening_of(entry.schedules, self.now)
            found = self.openings[entry.schedules] = (opens, _opening_points(opens, self.now))
        return found

    def capacity(self, service_id: str) -> tuple[str | None, datetime | None]:
        row = self.capacities.get(service_id)
        return (None, None) if row is None else (row["status"], row["last_confirmed_at"])

    def ranking(self, entry: Entry) -> tuple[bool, int, str, str]:
        """The sort key: eligible first, then the highest score, the name, the id."""
        passed, failed, _unknown = self.summary(entry)
        spoken, served = self.speaks(entry), self.serves(entry)
        score = sum(points for need, points in self.need_points.items() if need in entry.needs)
        score += RULE_PASSED_POINTS * passed + (INELIGIBLE_POINTS if failed else 0)
        score += LANGUAGE_POINTS[spoken] if spoken is not None else 0
        score += POSTAL_POINTS[served] if served is not None else 0
        status, confirmed = self.capacity(entry.id)
        if status is not None and not _stale(confirmed, self.now, self.stale_after):
            score += CAPACITY_POINTS[CapacityStatus(status)]
        score += self.opening(entry)[1]
        return failed, -score, entry.name, entry.id

    def service_match(self, entry: Entry, score: int) -> ServiceMatch:
        """Only the services shown are built into their full explanation."""
        _passed, failed, unknown = self.summary(entry)
        status, confirmed = self.capacity(entry.id)
        return ServiceMatch(
            service_id=entry.id,
            service_name=entry.name,
            organization_id=entry.organization_id,
            organization_name=entry.organization_name,
            score=score,
            eligible="ineligible" if failed else ("unknown" if unknown else "eligible"),
            explanation=Explanation(
                needs_met=[need for need in self.needs if need in entry.needs],
                eligibility=[
                    RuleResult(
                        rule_id=rule.rule_id,
                        description=rule.description,
                        outcome=self.judged[rule.check][0],
                        detail=self.judged[rule.check][1],
                    )
                    for rule in entry.rules
                ],
                language=LanguageFit(
                    client_language=self.facts.language,
                    service_languages=list(entry.languages),
                    spoken=self.speaks(entry),
                ),
                postal_area=PostalFit(
                    client_postal_area=self.facts.postal_area,
                    served=self.serves(entry),
                    service_areas=list(entry.area_labels),
                ),
                capacity=_capacity(status, confirmed, self.now, self.stale_after),
                opening=self.opening(entry)[0],
            ),
        )


async def match(
    connection: asyncpg.Connection,
    snapshot: Snapshot,
    facts: ClientFacts,
    *,
    now: datetime,
    stale_after: timedelta,
    limit: int,
) -> MatchResult:
    """Ranked on plain tuples, only the `limit` best kept (few objects outlive a candidate: no
    garbage collection of the whole heap every few dozen requests); only those returned are
    built into models."""
    needs = sorted(set(facts.need_categories or []))
    if not needs:
        return MatchResult(facts=facts, candidates=0, services=[])
    ids: set[str] = set().union(*(snapshot.by_need.get(need, ()) for need in needs))
    candidates: Iterable[str] = ids
    if len(ids) > MAX_CANDIDATES:
        candidates = sorted(ids)[:MAX_CANDIDATES]
    capacities = {
        row["service_id"]: row
        for row in await connection.fetch(
            """
            SELECT service_id, status, last_confirmed_at FROM service_capacity_status
            WHERE service_id IN (SELECT service_id FROM service_need_categories
                                 WHERE need_category = ANY($1::text[]))
            """,
            needs,
        )
    }
    scoring = _Scoring(facts, needs, capacities, now, stale_after)
    services = snapshot.services
    best = heapq.nsmallest(limit, (scoring.ranking(services[i]) for i in candidates))
    return MatchResult(
        facts=facts,
        candidates=min(len(ids), MAX_CANDIDATES),
        services=[scoring.service_match(services[i], -negative) for _, negative, _, i in best],
    )


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
