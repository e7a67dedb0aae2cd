"""Matching: the directory's services ranked for a client, each with why.

Candidates are the active services mapped to one of the client's need categories (an index
lookup, `service_need_categories`); only they are read further and have their rules run.

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
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from pydantic import BaseModel, Field

from services.referrals.directory.eligibility import ClientFacts, Outcome, RuleResult, evaluate
from services.referrals.directory.schedules import Opening, opening
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


def _covers(areas: list[dict[str, Any]], postal_area: str | None) -> bool | None:
    readable = [
        area["extent"]
        for area in areas
        if str(area.get("extent_type") or "").lower() == "text" and area.get("extent")
    ]
    if postal_area is None or not readable:
        return None
    client = _norm_postal(postal_area)
    for extent in readable:
        for prefix in re.split(r"[\s,;]+", extent.upper()):
            if prefix and (client.startswith(prefix) or prefix.startswith(client)):
                return True
    return False


def _speaks(languages: list[dict[str, Any]], language: str | None) -> tuple[list[str], bool | None]:
    spoken = sorted(
        {str(row.get("code") or row.get("name") or "").lower() for row in languages} - {""}
    )
    if language is None or not spoken:
        return spoken, None
    wanted = language.lower().split("-")[0]
    return spoken, any(code.split("-")[0] == wanted for code in spoken)


def _capacity(row: asyncpg.Record, now: datetime, stale_after: timedelta) -> CapacityFit:
    status, confirmed = row["capacity_status"], row["capacity_confirmed_at"]
    stale = confirmed is None or now - confirmed > stale_after
    return CapacityFit(
        status=CapacityStatus(status) if status else None,
        last_confirmed_at=confirmed,
        stale=stale,
        effective="unknown" if stale or status is None else status,
    )


def _age_rules(row: asyncpg.Record, context: dict[str, Any]) -> list[RuleResult]:
    rules = []
    if row["minimum_age"] is not None:
        minimum = float(row["minimum_age"])
        rules.append(evaluate("hsds-minimum-age", f"Aged {minimum:g} or over (HSDS minimum_age)",
                              f"double(age) >= {minimum!r}", context))  # fmt: skip
    if row["maximum_age"] is not None:
        maximum = float(row["maximum_age"])
        rules.append(evaluate("hsds-maximum-age", f"Aged {maximum:g} or under (HSDS maximum_age)",
                              f"double(age) <= {maximum!r}", context))  # fmt: skip
    return rules


async def match(
    connection: asyncpg.Connection,
    facts: ClientFacts,
    *,
    now: datetime,
    stale_after: timedelta,
    limit: int,
) -> MatchResult:
    needs = sorted(set(facts.need_categories or []))
    if not needs:
        return MatchResult(facts=facts, candidates=0, services=[])
    candidates = await connection.fetch(
        """
        SELECT s.id, s.name, s.organization_id, s.minimum_age, s.maximum_age,
               o.name AS organization_name, array_agg(n.need_category) AS needs_met,
               c.status AS capacity_status, c.last_confirmed_at AS capacity_confirmed_at
        FROM service_need_categories n
        JOIN service s ON s.id = n.service_id
        JOIN organization o ON o.id = s.organization_id
        LEFT JOIN service_capacity_status c ON c.service_id = s.id
        WHERE n.need_category = ANY($1::text[]) AND coalesce(s.status, 'active') = 'active'
        GROUP BY s.id, o.name, c.status, c.last_confirmed_at
        LIMIT $2
        """,
        needs,
        MAX_CANDIDATES,
    )
    ids = [row["id"] for row in candidates]
    details = await _details(connection, ids)
    context = facts.context()
    severities = facts.need_severities or {}
    scored: list[tuple[bool, int, str, str, Any]] = []
    for row in candidates:
        service_id = row["id"]
        rules = _age_rules(row, context) + [
            evaluate(rule["rule_id"], rule["description"], rule["expression"], context)
            for rule in details["rules"][service_id]
        ]
        spoken_list, spoken = _speaks(details["languages"][service_id], facts.language)
        areas = details["areas"][service_id]
        served = _covers(areas, facts.postal_area)
        capacity = _capacity(row, now, stale_after)
        opens = opening(details["schedules"][service_id], now)
        needs_met = sorted(row["needs_met"])
        failed = any(rule.outcome is Outcome.FAILED for rule in rules)
        score = sum(
            NEED_POINTS.get(severities.get(need, ""), UNKNOWN_SEVERITY_POINTS) for need in needs_met
        )
        score += RULE_PASSED_POINTS * sum(rule.outcome is Outcome.PASSED for rule in rules)
        score += INELIGIBLE_POINTS if failed else 0
        score += LANGUAGE_POINTS.get(spoken, 0) if spoken is not None else 0
        score += POSTAL_POINTS.get(served, 0) if served is not None else 0
        if not capacity.stale and capacity.status is not None:
            score += CAPACITY_POINTS[capacity.status]
        if opens.open_now:
            score += OPEN_NOW_POINTS
        elif opens.next_opens_at is not None and opens.next_opens_at - now <= timedelta(days=1):
            score += OPENS_SOON_POINTS
        unknown = any(rule.outcome is Outcome.UNKNOWN for rule in rules)
        parts = (row, score, failed, unknown, needs_met, rules, spoken_list, spoken, areas,
                 served, capacity, opens)  # fmt: skip
        scored.append((failed, -score, row["name"], service_id, parts))
    scored.sort(key=lambda entry: entry[:4])
    matches = [_service_match(facts, *entry[4]) for entry in scored[:limit]]
    return MatchResult(facts=facts, candidates=len(candidates), services=matches)


def _service_match(
    facts: ClientFacts,
    row: asyncpg.Record,
    score: int,
    failed: bool,
    unknown: bool,
    needs_met: list[str],
    rules: list[RuleResult],
    spoken_list: list[str],
    spoken: bool | None,
    areas: list[dict[str, Any]],
    served: bool | None,
    capacity: CapacityFit,
    opens: Opening,
) -> ServiceMatch:
    """Only the services shown are built into their full explanation."""
    return ServiceMatch(
        service_id=row["id"],
        service_name=row["name"],
        organization_id=row["organization_id"],
        organization_name=row["organization_name"],
        score=score,
        eligible="ineligible" if failed else ("unknown" if unknown else "eligible"),
        explanation=Explanation(
            needs_met=needs_met,
            eligibility=rules,
            language=LanguageFit(
                client_language=facts.language, service_languages=spoken_list, spoken=spoken
            ),
            postal_area=PostalFit(
                client_postal_area=facts.postal_area,
                served=served,
                service_areas=[str(a.get("name") or a.get("extent") or "") for a in areas],
            ),
            capacity=capacity,
            opening=opens,
        ),
    )


async def _details(
    connection: asyncpg.Connection, ids: list[str]
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    details: dict[str, dict[str, list[dict[str, Any]]]] = {
        key: defaultdict(list) for key in ("rules", "languages", "areas", "schedules")
    }
    if not ids:
        return details
    queries = {
        "rules": "SELECT service_id, rule_id, description, expression FROM eligibility_rules "
        "WHERE service_id = ANY($1::text[]) ORDER BY service_id, position, rule_id",
        "languages": "SELECT service_id, code, name FROM language "
        "WHERE service_id = ANY($1::text[])",
        "areas": "SELECT service_id, name, extent, extent_type FROM service_area "
        "WHERE service_id = ANY($1::text[]) ORDER BY id",
        "schedules": "SELECT * FROM schedule WHERE service_id = ANY($1::text[]) ORDER BY id",
    }
    for key, query in queries.items():
        for row in await connection.fetch(query, ids):
            details[key][row["service_id"]].append(dict(row))
    return details


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
