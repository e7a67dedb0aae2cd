"""What a service declares about itself; the same shape in every service."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import APIRouter, FastAPI

from shared.auth.policy import Policy
from shared.clock import Clock
from shared.db.database import Database
from shared.events.registry import EVENT_TYPES
from shared.messaging.consumer import Handler
from shared.settings import Settings
from shared.timers.schedule import TimerHandler


@dataclass(frozen=True)
class LoopContext:
    """What a service's own worker loop is handed: the worker's pool, settings and clock."""

    service: str
    database: Database
    settings: Settings
    clock: Clock


# A loop the worker runs beside its relay and consumer (e.g. a sender of webhooks); it runs
# until cancelled, and is restarted with backoff if it crashes (shared/worker.py supervise).
WorkerLoop = Callable[[LoopContext], Awaitable[None]]


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
    # Timer kind -> handler (shared/timers). Not empty: the worker runs the timer loop.
    timer_handlers: Mapping[str, TimerHandler] = field(default_factory=dict)
    # What the API holds open while it runs (entered after its database pool is connected,
    # exited before it closes), e.g. a LISTEN connection shared by its live streams.
    api_lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None
    # Name -> loop: the service's own background work in its worker.
    loops: Mapping[str, WorkerLoop] = field(default_factory=dict)
    # Paths that take bulk uploads (up to settings.max_bulk_body_bytes, signed-in callers only).
    bulk_upload_paths: Sequence[str] = ()
    # Checks of the settings only this service needs (e.g. a key it holds), run when its API
    # and its worker are created: each raises to refuse to start.
    settings_checks: Sequence[Callable[[Settings], None]] = ()

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
