"""What matching reads of the directory, held in memory per process: everything but capacity
(which changes often and is read per request).

A snapshot is loaded with a few bulk queries in one read-only, repeatable-read transaction,
together with the directory's version (`directory_version`, moved by a statement-level trigger
on each table the snapshot reads, `tables.MATCHING_TABLES`). Each match first reads the version
and reloads only when it moved; one reload at a time (a lock), and no pooled connection is held
while waiting for it (a request holds at most one).
"""

from __future__ import annotations

import asyncio
import math
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import asyncpg

from services.referrals.directory.eligibility import Outcome, Prepared, judge, prepare
from services.referrals.directory.schedules import Weekly, weekly
from shared.db.database import Database

VERSION = "SELECT version FROM directory_version WHERE id = 1"


@dataclass(frozen=True, slots=True)
class AgeBound:
    """An HSDS minimum or maximum age, compared in Python (as its CEL form would answer)."""

    maximum: bool
    bound: float

    def judge(self, context: dict[str, Any]) -> tuple[Outcome, str | None]:
        age = context.get("age")
        if age is None:
            return Outcome.UNKNOWN, "not known about the client: age"
        passed = float(age) <= self.bound if self.maximum else float(age) >= self.bound
        return (Outcome.PASSED if passed else Outcome.FAILED), None


Check = AgeBound | Prepared


@dataclass(frozen=True, slots=True)
class Rule:
    rule_id: str
    description: str
    check: Check


@dataclass(frozen=True, slots=True)
class Entry:
    """A service as matching reads it, parsed once."""

    id: str
    name: str
    organization_id: str
    organization_name: str | None
    needs: frozenset[str]
    rules: tuple[Rule, ...]
    checks: tuple[Check, ...]
    languages: tuple[str, ...]
    # Postal prefixes of its readable (text) service areas; None: none readable.
    prefixes: tuple[str, ...] | None
    area_labels: tuple[str, ...]
    schedules: tuple[Weekly, ...]


@dataclass(frozen=True, slots=True)
class Snapshot:
    version: int | None
    services: dict[str, Entry]
    by_need: dict[str, tuple[str, ...]]


def judge_check(check: Check, context: dict[str, Any]) -> tuple[Outcome, str | None]:
    if isinstance(check, AgeBound):
        return check.judge(context)
    return judge(check, context)


def _age_rule(value: Any, maximum: bool) -> Rule:
    bound = float(value)
    word, field = ("under", "maximum_age") if maximum else ("over", "minimum_age")
    description = f"Aged {bound:g} or {word} (HSDS {field})"
    rule_id = f"hsds-{field.replace('_', '-')}"
    if not math.isfinite(bound):  # not a number CEL can write: its text form answers
        return Rule(
            rule_id, description, prepare(f"double(age) {'<=' if maximum else '>='} {bound!r}")
        )
    return Rule(rule_id, description, AgeBound(maximum, bound))


def _languages(languages: list[asyncpg.Record]) -> tuple[str, ...]:
    return tuple(
        sorted({str(row["code"] or row["name"] or "").lower() for row in languages} - {""})
    )


def _prefixes(areas: list[asyncpg.Record]) -> tuple[str, ...] | None:
    readable = [
        area["extent"]
        for area in areas
        if str(area["extent_type"] or "").lower() == "text" and area["extent"]
    ]
    if not readable:
        return None
    return tuple(
        prefix for extent in readable for prefix in re.split(r"[\s,;]+", extent.upper()) if prefix
    )


async def load(connection: asyncpg.Connection) -> Snapshot:
    grouped: dict[str, dict[str, list[asyncpg.Record]]] = {}
    queries = {
        "needs": "SELECT service_id, need_category FROM service_need_categories",
        "rules": "SELECT service_id, rule_id, description, expression FROM eligibility_rules "
        "ORDER BY service_id, position, rule_id",
        "languages": "SELECT service_id, code, name FROM language WHERE service_id IS NOT NULL",
        "areas": "SELECT service_id, name, extent, extent_type FROM service_area "
        "WHERE service_id IS NOT NULL ORDER BY id",
        "schedules": "SELECT service_id, freq, byday, opens_at, closes_at, timezone, valid_from, "
        "valid_to, dtstart, until FROM schedule WHERE service_id IS NOT NULL ORDER BY id",
    }
    async with connection.transaction(isolation="repeatable_read", readonly=True):
        version = await connection.fetchval(VERSION)
        services = await connection.fetch(
            """
            SELECT s.id, s.name, s.organization_id, s.minimum_age, s.maximum_age,
                   o.name AS organization_name
            FROM service s JOIN organization o ON o.id = s.organization_id
            WHERE coalesce(s.status, 'active') = 'active'
            """
        )
        for key, query in queries.items():
            rows: dict[str, list[asyncpg.Record]] = defaultdict(list)
            for row in await connection.fetch(query):
                rows[row["service_id"]].append(row)
            grouped[key] = rows
    entries: dict[str, Entry] = {}
    by_need: dict[str, list[str]] = defaultdict(list)
    for row in services:
        service_id = row["id"]
        rules = [
            *([_age_rule(row["minimum_age"], False)] if row["minimum_age"] is not None else []),
            *([_age_rule(row["maximum_age"], True)] if row["maximum_age"] is not None else []),
            *(
                Rule(rule["rule_id"], rule["description"], prepare(rule["expression"]))
                for rule in grouped["rules"].get(service_id, ())
            ),
        ]
        areas = grouped["areas"].get(service_id, [])
        needs = frozenset(need["need_category"] for need in grouped["needs"].get(service_id, ()))
        entries[service_id] = Entry(
            id=service_id,
            name=row["name"],
            organization_id=row["organization_id"],
            organization_name=row["organization_name"],
            needs=needs,
            rules=tuple(rules),
            checks=tuple(rule.check for rule in rules),
            languages=_languages(grouped["languages"].get(service_id, [])),
            prefixes=_prefixes(areas),
            area_labels=tuple(str(area["name"] or area["extent"] or "") for area in areas),
            schedules=weekly([dict(s) for s in grouped["schedules"].get(service_id, ())]),
        )
        for need in needs:
            by_need[need].append(service_id)
    return Snapshot(
        version=version,
        services=entries,
        by_need={need: tuple(ids) for need, ids in by_need.items()},
    )


class DirectorySnapshots:
    """The process's snapshot of one database's directory, reloaded when its version moved."""

    def __init__(self) -> None:
        self._snapshot: Snapshot | None = None
        self._lock = asyncio.Lock()

    def _fresh(self, version: int | None) -> Snapshot | None:
        snapshot = self._snapshot
        # No version row (it is never deleted by Casework): reload every time, never stale.
        if snapshot is None or version is None or snapshot.version is None:
            return None
        return snapshot if snapshot.version >= version else None

    async def current(self, database: Database) -> Snapshot:
        async with database.connection() as connection:
            version = await connection.fetchval(VERSION)
        snapshot = self._fresh(version)
        if snapshot is not None:
            return snapshot
        async with self._lock:  # taken with no connection held
            snapshot = self._fresh(version)
            if snapshot is None:
                async with database.connection() as connection:
                    snapshot = self._snapshot = await load(connection)
        return snapshot
