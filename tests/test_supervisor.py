"""The dev stack's supervisor: what exits is started again after a growing pause, and said so.
A fake clock drives it, so the backoff is checked without waiting."""

from __future__ import annotations

from dataclasses import dataclass, field

from services.supervisor import Backoff, Supervisor


@dataclass
class FakeClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeProcess:
    name: str
    status: int | None = None
    starts: int = 0
    failures_left: int = 0

    def exit_status(self) -> int | None:
        return self.status

    def restart(self) -> None:
        if self.failures_left:
            self.failures_left -= 1
            raise RuntimeError("address in use")
        self.starts += 1
        self.status = None


@dataclass
class Console:
    lines: list[str] = field(default_factory=list)

    def __call__(self, line: str) -> None:
        self.lines.append(line)


def _supervisor(*targets: FakeProcess) -> tuple[Supervisor, FakeClock, Console]:
    clock, console = FakeClock(), Console()
    supervisor = Supervisor(
        say=console, backoff=Backoff(first=1.0, longest=4.0, stable_after=60.0), clock=clock
    )
    for target in targets:
        supervisor.add(target)
    return supervisor, clock, console


def test_an_exited_process_is_restarted_after_the_backoff_and_the_console_says_so() -> None:
    api, worker = FakeProcess("intake api"), FakeProcess("intake worker")
    supervisor, clock, console = _supervisor(api, worker)

    api.status = -9
    supervisor.check()
    assert console.lines == ["intake api exited with status -9; restarting in 1s"]
    clock.now += 0.5
    supervisor.check()
    assert api.starts == 0

    clock.now += 0.5
    supervisor.check()
    assert (api.starts, worker.starts) == (1, 0)
    assert api.exit_status() is None
    assert console.lines[-1] == "intake api restarted (restart #1)"
    assert supervisor.restarts("intake api") == 1


def test_the_pause_doubles_while_it_keeps_crashing_and_resets_once_it_ran_long_enough() -> None:
    api = FakeProcess("intake api")
    supervisor, clock, console = _supervisor(api)
    delays: list[str] = []
    for _ in range(4):
        api.status = 1
        supervisor.check()
        delays.append(console.lines[-1].rsplit(" ", 1)[1])
        clock.now += 10
        supervisor.check()
    assert delays == ["1s", "2s", "4s", "4s"]

    clock.now += 60  # it ran a minute before the next exit
    api.status = 1
    supervisor.check()
    assert console.lines[-1].endswith("restarting in 1s")


def test_a_restart_that_fails_is_reported_and_tried_again() -> None:
    broker = FakeProcess("Kafka broker", status=0, failures_left=1)
    supervisor, clock, console = _supervisor(broker)
    supervisor.check()
    clock.now += 1
    supervisor.check()
    assert console.lines[-1] == "Kafka broker did not start (address in use); trying again in 2s"
    assert broker.starts == 0
    clock.now += 2
    supervisor.check()
    assert broker.starts == 1
    assert console.lines[-1] == "Kafka broker restarted (restart #1)"
