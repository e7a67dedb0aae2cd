"""Where a latency went: per client, the moments each stage ended (wall clock, epoch seconds,
one machine), and their p50/p99 per stage."""

from __future__ import annotations

from collections.abc import Mapping

import asyncpg

from bench.load import percentile, rounded

Moments = dict[str, float]  # client id -> epoch seconds


async def published_at(admin_url: str, event_type: str, clients: list[str]) -> Moments:
    """When intake's relay had each client's first event of `event_type` acknowledged by the
    broker (the outbox row marked published)."""
    connection: asyncpg.Connection = await asyncpg.connect(admin_url)
    try:
        rows = await connection.fetch(
            "SELECT aggregateid, extract(epoch FROM min(published_at)) AS at FROM intake.outbox "
            "WHERE type = $1 AND aggregateid = ANY($2::text[]) AND published_at IS NOT NULL "
            "GROUP BY aggregateid",
            event_type,
            clients,
        )
    finally:
        await connection.close()
    return {row["aggregateid"]: float(row["at"]) for row in rows}


def stage_ms(start: Moments, end: Moments) -> list[float]:
    """Milliseconds from `start` to `end`, for each client in both."""
    return [(end[c] - start[c]) * 1000 for c in start if c in end]


def p50_p99(stages: Mapping[str, list[float]]) -> dict[str, list[float | None]]:
    return {
        name: [rounded(percentile(values, 50)), rounded(percentile(values, 99))]
        for name, values in stages.items()
    }
