"""Assessment and safety-flag events (intake)."""

from __future__ import annotations

from shared.events.contracts import EventData

EVENTS: tuple[type[EventData], ...] = ()
