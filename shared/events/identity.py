"""Identity-link events (intake): two records are (no longer) the same person."""

from __future__ import annotations

from shared.events.contracts import EventData

EVENTS: tuple[type[EventData], ...] = ()
