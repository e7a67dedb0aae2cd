"""One handler per event type from several tables: a service whose parts each react to the same
event (its projections, then what acts on them) runs them in order, in one transaction."""

from __future__ import annotations

from collections.abc import Mapping

import asyncpg

from shared.events.envelope import Event
from shared.messaging.consumer import Handler


def _chain(handlers: tuple[Handler, ...]) -> Handler:
    async def handle(connection: asyncpg.Connection, event: Event) -> None:
        for handler in handlers:
            await handler(connection, event)

    return handle


def combine_handlers(*tables: Mapping[str, Handler]) -> dict[str, Handler]:
    """Event type -> a handler running every table's handler for it, in the tables' order (so
    projections listed first are current when later handlers read them)."""
    collected: dict[str, list[Handler]] = {}
    for table in tables:
        for event_type, handler in table.items():
            collected.setdefault(event_type, []).append(handler)
    return {
        event_type: handlers[0] if len(handlers) == 1 else _chain(tuple(handlers))
        for event_type, handlers in collected.items()
    }
