"""The rules in force for an organisation: its own, or the shipped ones."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from services.notifications.rules.models import RuleSet, RuleSetPublic, default_rules


async def rules_for(connection: asyncpg.Connection, organization_id: str) -> RuleSet:
    document = await connection.fetchval(
        "SELECT document FROM rule_sets WHERE organization_id = $1", organization_id
    )
    return RuleSet.model_validate(document) if document is not None else default_rules()


async def public_rules(
    connection: asyncpg.Connection, organization_id: str, *, for_update: bool = False
) -> RuleSetPublic:
    row = await connection.fetchrow(
        "SELECT document, version FROM rule_sets WHERE organization_id = $1"
        + (" FOR UPDATE" if for_update else ""),
        organization_id,
    )
    if row is None:
        return RuleSetPublic(
            **default_rules().model_dump(),
            organization_id=organization_id,
            source="default",
            version=0,
        )
    return RuleSetPublic(
        **RuleSet.model_validate(row["document"]).model_dump(),
        organization_id=organization_id,
        source="organisation",
        version=row["version"],
    )


async def save_rules(
    connection: asyncpg.Connection,
    *,
    organization_id: str,
    rule_set: RuleSet,
    version: int,
    updated_by: str,
    now: datetime,
) -> None:
    await connection.execute(
        """
        INSERT INTO rule_sets (organization_id, document, version, updated_by, updated_at)
        VALUES ($1, $2::jsonb, $3, $4, $5)
        ON CONFLICT (organization_id) DO UPDATE SET
            document = EXCLUDED.document, version = EXCLUDED.version,
            updated_by = EXCLUDED.updated_by, updated_at = EXCLUDED.updated_at
        """,
        organization_id,
        rule_set.model_dump(mode="json"),
        version,
        updated_by,
        now,
    )


async def lock_rules(connection: asyncpg.Connection, organization_id: str) -> None:
    await connection.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('rule_sets:' || $1, 0))", organization_id
    )
