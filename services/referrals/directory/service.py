"""Directory management: who may change which record, and the changes themselves (a
service's need categories, eligibility rules, capacity; an organisation's Casework mapping).

Who: the administrators of the directory operator (`directory_operator_organization_id`)
manage every record; anyone else holding the action manages the records of the directory
organisations mapped to their own Casework organisation. A record outside that is answered
as if it did not exist (404), like a client outside one's scope.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg
from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.referrals.directory.eligibility import RuleError, check
from services.referrals.directory.importer import Importer
from services.referrals.directory.tables import CapacityStatus
from shared.auth.principal import Principal, Role
from shared.events.protection import CLASSIFICATION
from shared.http.problems import ProblemError, not_found
from shared.settings import Settings

NEED_CATEGORIES: tuple[str, ...] = tuple(sorted(CLASSIFICATION.need_categories))
MAX_RULES = 50


def is_operator(principal: Principal, settings: Settings) -> bool:
    operator = settings.directory_operator_organization_id
    return (
        operator is not None and principal.organization_id == operator and principal.has(Role.ADMIN)
    )


def importer_for(principal: Principal, settings: Settings) -> Importer:
    return Importer(
        casework_organization_id=principal.organization_id,
        operator=is_operator(principal, settings),
    )


async def managed_service(
    connection: asyncpg.Connection, principal: Principal, settings: Settings, service_id: str
) -> asyncpg.Record:
    """The service, locked for the change, if the caller manages it; 404 otherwise."""
    row = await connection.fetchrow(
        """
        SELECT s.id, s.name, o.casework_organization_id
        FROM service s JOIN organization o ON o.id = s.organization_id
        WHERE s.id = $1 FOR UPDATE OF s
        """,
        service_id,
    )
    if row is None or not (
        is_operator(principal, settings)
        or row["casework_organization_id"] == principal.organization_id
    ):
        raise not_found("service")
    return row


class NeedCategories(BaseModel):
    model_config = ConfigDict(extra="forbid")

    need_categories: list[str] = Field(
        max_length=len(NEED_CATEGORIES),
        description="Intake's need categories (shared/events/data_classes.json) the service "
        "meets. Replaces the service's list.",
    )

    @field_validator("need_categories")
    @classmethod
    def _known(cls, values: list[str]) -> list[str]:
        unknown = sorted(set(values) - set(NEED_CATEGORIES))
        if unknown:
            raise ValueError(
                f"unknown need categories {', '.join(unknown)}; known: {', '.join(NEED_CATEGORIES)}"
            )
        return sorted(set(values))


class RuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rule_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    description: str = Field(min_length=1, max_length=500, pattern=r"^[^\x00]*$")
    expression: str = Field(
        pattern=r"^[^\x00]*$",
        min_length=1,
        max_length=2000,
        description="A CEL expression over the client facts (see ClientFacts), giving true "
        "when the client is eligible, e.g. `age >= 18 && household_size <= 4`.",
    )


class RulesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: list[RuleIn] = Field(max_length=MAX_RULES, description="Replaces the service's rules.")


class RuleOut(RuleIn):
    compiled_ok: bool


class CapacityIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: CapacityStatus


class CapacityOut(BaseModel):
    service_id: str
    status: CapacityStatus
    last_confirmed_at: datetime


class CaseworkOrganization(BaseModel):
    model_config = ConfigDict(extra="forbid")

    casework_organization_id: str | None = Field(
        max_length=100,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$",
        description="The Casework organisation whose partner staff maintain this directory "
        "organisation and receive its referrals; null: outside the network.",
    )


class ServiceSettings(BaseModel):
    """Casework's own settings of a directory service."""

    service_id: str
    service_name: str
    organization_id: str
    casework_organization_id: str | None
    referral_acceptance_days: int | None
    need_categories: list[str]
    eligibility_rules: list[RuleOut]
    capacity: CapacityOut | None


def rule_problems(rules: list[RuleIn]) -> list[dict[str, str]]:
    problems = []
    seen: set[str] = set()
    for index, rule in enumerate(rules):
        if rule.rule_id in seen:
            problems.append({"field": f"body.rules.{index}.rule_id", "code": "duplicate",
                             "message": f"rule {rule.rule_id} appears twice"})  # fmt: skip
        seen.add(rule.rule_id)
        try:
            check(rule.expression)
        except RuleError as error:
            problems.append({"field": f"body.rules.{index}.expression", "code": "cel",
                             "message": f"rule {rule.rule_id}: {error}"})  # fmt: skip
    return problems


async def set_rules(connection: asyncpg.Connection, service_id: str, rules: list[RuleIn]) -> None:
    problems = rule_problems(rules)
    if problems:
        raise ProblemError(
            422,
            "invalid-eligibility-rule",
            "An eligibility rule does not compile",
            detail="; ".join(p["message"] for p in problems) + ". Nothing was saved.",
            errors=problems,
        )
    await connection.execute("DELETE FROM eligibility_rules WHERE service_id = $1", service_id)
    await connection.executemany(
        "INSERT INTO eligibility_rules (service_id, rule_id, description, expression, "
        "compiled_ok, position) VALUES ($1, $2, $3, $4, true, $5)",
        [(service_id, r.rule_id, r.description, r.expression, i) for i, r in enumerate(rules)],
    )


async def set_need_categories(
    connection: asyncpg.Connection, service_id: str, categories: list[str]
) -> None:
    await connection.execute(
        "DELETE FROM service_need_categories WHERE service_id = $1", service_id
    )
    await connection.execute(
        "INSERT INTO service_need_categories (service_id, need_category) "
        "SELECT $1, unnest($2::text[])",
        service_id,
        categories,
    )


async def set_capacity(
    connection: asyncpg.Connection,
    service_id: str,
    status: CapacityStatus,
    *,
    now: datetime,
    subject: str,
) -> CapacityOut:
    await connection.execute(
        """
        INSERT INTO service_capacity_status (service_id, status, last_confirmed_at, confirmed_by)
        VALUES ($1, $2, $3, $4)
        ON CONFLICT (service_id) DO UPDATE SET status = EXCLUDED.status,
            last_confirmed_at = EXCLUDED.last_confirmed_at, confirmed_by = EXCLUDED.confirmed_by
        """,
        service_id,
        status.value,
        now,
        subject,
    )
    return CapacityOut(service_id=service_id, status=status, last_confirmed_at=now)


async def set_casework_organization(
    connection: asyncpg.Connection, organization_id: str, casework_organization_id: str | None
) -> bool:
    updated: str = await connection.execute(
        "UPDATE organization SET casework_organization_id = $2, changed_at = now() WHERE id = $1",
        organization_id,
        casework_organization_id,
    )
    return updated != "UPDATE 0"


async def service_settings(connection: asyncpg.Connection, service_id: str) -> ServiceSettings:
    row = await connection.fetchrow(
        """
        SELECT s.id, s.name, s.organization_id, o.casework_organization_id,
               s.referral_acceptance_days,
               c.status, c.last_confirmed_at
        FROM service s JOIN organization o ON o.id = s.organization_id
        LEFT JOIN service_capacity_status c ON c.service_id = s.id
        WHERE s.id = $1
        """,
        service_id,
    )
    if row is None:
        raise not_found("service")
    categories = await connection.fetch(
        "SELECT need_category FROM service_need_categories WHERE service_id = $1 "
        "ORDER BY need_category",
        service_id,
    )
    rules = await connection.fetch(
        "SELECT rule_id, description, expression, compiled_ok FROM eligibility_rules "
        "WHERE service_id = $1 ORDER BY position, rule_id",
        service_id,
    )
    return ServiceSettings(
        service_id=row["id"],
        service_name=row["name"],
        organization_id=row["organization_id"],
        casework_organization_id=row["casework_organization_id"],
        referral_acceptance_days=row["referral_acceptance_days"],
        need_categories=[r["need_category"] for r in categories],
        eligibility_rules=[RuleOut(**dict(r)) for r in rules],
        capacity=CapacityOut(
            service_id=row["id"], status=row["status"], last_confirmed_at=row["last_confirmed_at"]
        )
        if row["status"]
        else None,
    )
