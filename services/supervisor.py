"""Keeps the dev stack's processes running: whatever exits is started again, with backoff.

Each supervised thing (an API, a worker, the embedded broker or PostgreSQL) says whether it
has exited and knows how to start again. After an exit the supervisor waits `backoff.first`
seconds, doubling after every exit that follows a short run, up to `backoff.longest`; a
process that ran `backoff.stable_after` seconds before exiting starts over from the first
delay. Everything it does is said on the console. The clock is injectable, so the policy is
tested without waiting. Restarts run one at a time in its loop: while the broker waits out
TIME_WAIT on its port (up to 90 s), nothing else is restarted; the dev stack accepts that for
one loop without threads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol


class Supervised(Protocol):
    name: str

    def exit_status(self) -> int | None:
        """None while running; the exit status once it has exited."""

    def restart(self) -> None: ...


@dataclass(frozen=True)
class Backoff:
    first: float = 1.0
    longest: float = 30.0
    stable_after: float = 60.0


@dataclass
class _Watch:
    target: Supervised
    started_at: float
    delay: float
    restart_at: float | None = None
    restarts: int = 0


@dataclass
class Supervisor:
    say: Callable[[str], None]
    backoff: Backoff = field(default_factory=Backoff)
    clock: Callable[[], float] = time.monotonic
    _watches: list[_Watch] = field(default_factory=list)

    def add(self, target: Supervised) -> None:
        self._watches.append(_Watch(target, started_at=self.clock(), delay=self.backoff.first))

    def restarts(self, name: str) -> int:
        return sum(watch.restarts for watch in self._watches if watch.target.name == name)

    def check(self) -> None:
        """One round: notice exits, restart what is due."""
        now = self.clock()
        for watch in self._watches:
            if watch.restart_at is None:
                status = watch.target.exit_status()
                if status is None:
                    continue
                if now - watch.started_at >= self.backoff.stable_after:
                    watch.delay = self.backoff.first
                watch.restart_at = now + watch.delay
                self.say(
                    f"{watch.target.name} exited with status {status}; "
                    f"restarting in {watch.delay:g}s"
                )
                watch.delay = min(watch.delay * 2, self.backoff.longest)
            elif now >= watch.restart_at:
                self._restart(watch)

    def _restart(self, watch: _Watch) -> None:
        try:
            watch.target.restart()
        except Exception as error:  # reported; tried again after the backoff
            watch.restart_at = self.clock() + watch.delay
            self.say(
                f"{watch.target.name} did not start ({error}); trying again in {watch.delay:g}s"
            )
            watch.delay = min(watch.delay * 2, self.backoff.longest)
            return
        watch.restarts += 1
        watch.started_at = self.clock()
        watch.restart_at = None
        self.say(f"{watch.target.name} restarted (restart #{watch.restarts})")

    def run(self, stop: threading.Event, interval: float = 0.25) -> None:
        """Check every `interval` seconds until `stop` is set."""
        while not stop.wait(interval):
            self.check()
