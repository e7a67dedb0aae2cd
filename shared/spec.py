"""What a service declares about itself; the same shape in every service."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import APIRouter

from shared.auth.policy import Policy
from shared.events.registry import EVENT_TYPES
from shared.messaging.consumer import Handler
from shared.settings import Settings


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    title: str
    description: str
    # Position in the port layout: the API listens on http_port_base + port_index.
    port_index: int
    # The service's Alembic folder (`services/<name>/migrations`).
    migrations: Path
    # Who may do what: role -> action -> scope (services/<name>/access.py).
    policy: Policy = field(default_factory=lambda: Policy(permissions={}, kinds={}))
    routers: Sequence[APIRouter] = ()
    # Event type -> handler. The worker subscribes to the topics these types travel on.
    handlers: Mapping[str, Handler] = field(default_factory=dict)
    # Paths that take bulk uploads (up to settings.max_bulk_body_bytes, signed-in callers only).
    bulk_upload_paths: Sequence[str] = ()

    @property
    def schema(self) -> str:
        return self.name

    @property
    def topics(self) -> list[str]:
        return sorted({EVENT_TYPES[event_type].topic for event_type in self.handlers})

    def http_port(self, settings: Settings) -> int:
        return settings.http_port_base + self.port_index

    def worker_port(self, settings: Settings) -> int:
        return settings.worker_port_base + self.port_index
