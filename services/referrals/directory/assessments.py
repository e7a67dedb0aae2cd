"""The latest assessment of each client, as referrals learns it from intake's `ClientAssessed`:
what matching needs (general need categories and their severity, risk level, priority,
preferred language, postal area), never answers or protected needs.

Intake publishes a client's events in order on the client's partition, and publishes an
assessment again when its risk level is overridden (a new event id, the same assessment id):
the row keeps the newest by event time, so a repeat or a late older event changes nothing.
"""

from __future__ import annotations

import asyncpg
from sqlalchemy import Column, DateTime, Integer, MetaData, Table, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import UUID as PgUUID

from shared.events.assessment import ClientAssessed
from shared.events.envelope import Event


def client_assessments_table(metadata: MetaData) -> Table:
    return Table(
        "client_assessments",
        metadata,
        Column("client_id", PgUUID(as_uuid=True), primary_key=True),
        Column("assessment_id", PgUUID(as_uuid=True), nullable=False),
        Column("risk_level", Text, nullable=False),
        Column("priority", Integer, nullable=False),
        Column("needs", JSONB, nullable=False, comment="need category -> severity (general)"),
        Column("preferred_language", Text, nullable=False),
        Column("postal_area", Text),
        Column("assessed_at", DateTime(timezone=True), nullable=False, comment="event time"),
        Column("source_event_id", Text, nullable=False),
        Column(
            "received_at", DateTime(timezone=True), nullable=False, server_default=text("now()")
        ),
    )


async def on_client_assessed(connection: asyncpg.Connection, event: Event) -> None:
    data = event.data
    assert isinstance(data, ClientAssessed)
    needs = {need.category: need.severity.value for need in data.needs}
    await connection.execute(
        """
        INSERT INTO client_assessments AS c (client_id, assessment_id, risk_level, priority,
            needs, preferred_language, postal_area, assessed_at, source_event_id)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
        ON CONFLICT (client_id) DO UPDATE SET
            assessment_id = EXCLUDED.assessment_id, risk_level = EXCLUDED.risk_level,
            priority = EXCLUDED.priority, needs = EXCLUDED.needs,
            preferred_language = EXCLUDED.preferred_language,
            postal_area = EXCLUDED.postal_area, assessed_at = EXCLUDED.assessed_at,
            source_event_id = EXCLUDED.source_event_id, received_at = now()
        WHERE c.assessed_at <= EXCLUDED.assessed_at
        """,
        data.client_id,
        data.assessment_id,
        data.risk_level.value,
        data.priority,
        needs,
        data.preferred_language,
        data.postal_area,
        event.time,
        event.id,
    )
