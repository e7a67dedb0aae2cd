"""Consent ledger events (intake): who may receive which classes of a client's data."""

from __future__ import annotations

from shared.events.contracts import EventData

EVENTS: tuple[type[EventData], ...] = ()
