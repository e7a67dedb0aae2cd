"""`make run` as a newcomer meets it: `casework dev` brings the system up on the embedded
default, a client reaches every service, a crashed process is started again, a second stack
beside it refuses and leaves it alone, and Ctrl-C stops everything cleanly.

Each stack runs on ports and a data directory of its own (CASEWORK_* variables), so these
tests never meet a developer's `make run`. The tests share one stack and run in file order;
the last one stops it with Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from shared.ports import free_port, free_port_base, is_listening
from tests.support import VALID_CLIENT, eventually

pytestmark = pytest.mark.timeout(300)


@dataclass
class DevProcess:
    """A `casework dev` child process and every line it printed so far."""

    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

    @classmethod
    def start(cls, env: dict[str, str]) -> DevProcess:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "dev"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        dev = cls(process)
        dev.reader = threading.Thread(target=dev._read, daemon=True)
        dev.reader.start()
        return dev

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    async def printed(self, text: str, timeout: float = 180.0) -> None:
        async def probe() -> bool | None:
            if text in self.output:
                return True
            assert self.process.poll() is None or text in self.output, self.output
            return None

        await eventually(probe, timeout=timeout, interval=0.1)

    async def exited(self, timeout: float = 60.0) -> int:
        async def probe() -> int | None:
            return self.process.poll()

        status = await eventually(probe, timeout=timeout, interval=0.1)
        assert self.reader is not None
        self.reader.join(timeout=10)  # the last lines it printed
        return status

    def child_pid(self, *arguments: str) -> int:
        """The pid of the child whose command line ends with `arguments` ("api", "intake")."""
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                command = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            parent = int(stat[stat.rindex(")") + 2 :].split()[1])
            if parent == self.process.pid and [part.decode() for part in command if part][
                -len(arguments) :
            ] == list(arguments):
                return int(entry.name)
        raise AssertionError(f"no child {arguments} of {self.process.pid}")


@dataclass(frozen=True)
class Ports:
    http_base: int
    worker_base: int

    def api(self, index: int) -> str:
        return f"http://127.0.0.1:{self.http_base + index}"

    def worker(self, index: int) -> str:
        return f"http://127.0.0.1:{self.worker_base + index}"


def _environment(data_dir: Path, ports: Ports, postgres: int, broker: int) -> dict[str, str]:
    return {
        **os.environ,
        "CASEWORK_DATABASE_URL": f"postgresql://postgres:dev@127.0.0.1:{postgres}/casework",
        "CASEWORK_SERVICE_DATABASE_URL": "",
        "CASEWORK_KAFKA_BOOTSTRAP": f"127.0.0.1:{broker}",
        "CASEWORK_HTTP_PORT_BASE": str(ports.http_base),
        "CASEWORK_WORKER_PORT_BASE": str(ports.worker_base),
        "CASEWORK_DATA_DIR": str(data_dir),
    }


@dataclass
class RunningStack:
    dev: DevProcess
    ports: Ports
    env: dict[str, str]
    http: httpx.AsyncClient


@pytest.fixture(scope="module")
def dev_environment(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], Ports]:
    ports = Ports(free_port_base(4), free_port_base(4))
    data_dir = tmp_path_factory.mktemp("dev") / "data"
    return _environment(data_dir, ports, free_port(), free_port()), ports


@pytest.fixture(scope="module")
def dev(dev_environment: tuple[dict[str, str], Ports]) -> Iterator[DevProcess]:
    dev = DevProcess.start(dev_environment[0])
    try:
        yield dev
    finally:
        if dev.process.poll() is None:
            dev.process.send_signal(signal.SIGINT)
            try:
                dev.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                dev.process.kill()


@pytest.fixture(scope="module")
async def stack(
    dev: DevProcess, dev_environment: tuple[dict[str, str], Ports]
) -> AsyncIterator[RunningStack]:
    env, ports = dev_environment
    await dev.printed("Ctrl-C stops everything")
    token = next(
        line.split()[-1] for line in dev.lines if line.strip().startswith("[casework]   caseworker")
    )
    async with httpx.AsyncClient(timeout=5, headers={"Authorization": f"Bearer {token}"}) as http:
        yield RunningStack(dev, ports, env, http)


async def _reaches_every_service(stack: RunningStack) -> None:
    created = await stack.http.post(f"{stack.ports.api(1)}/v1/clients", json=VALID_CLIENT)
    assert created.status_code == 201, created.text
    client_id = created.json()["id"]
    for index in range(2, 5):
        url = f"{stack.ports.api(index)}/v1/client-refs/{client_id}"

        async def reference(url: str = url) -> httpx.Response | None:
            response = await stack.http.get(url)
            return response if response.status_code == 200 else None

        assert (await eventually(reference)).json()["client_id"] == client_id


async def _every_service_ready(stack: RunningStack) -> None:
    for index in range(1, 5):
        for url in (stack.ports.api(index), stack.ports.worker(index)):
            ready = await stack.http.get(f"{url}/health/ready")
            assert ready.status_code == 200, ready.text
            assert ready.json()["status"] == "ready"


async def test_the_dev_stack_runs_every_service(stack: RunningStack) -> None:
    await _every_service_ready(stack)
    await _reaches_every_service(stack)
    data_dir = Path(stack.env["CASEWORK_DATA_DIR"])
    assert (data_dir / "logs" / "intake-api.log").stat().st_size > 0


async def test_the_printed_supervisor_can_assign_a_case_to_the_printed_caseworker(
    stack: RunningStack,
) -> None:
    supervisor = next(
        line.split()[-1]
        for line in stack.dev.lines
        if line.strip().startswith("[casework]   supervisor")
    )
    created = await stack.http.post(f"{stack.ports.api(1)}/v1/clients", json=VALID_CLIENT)
    client_id = created.json()["id"]

    as_supervisor = {"Authorization": f"Bearer {supervisor}"}

    async def opened() -> httpx.Response | None:
        response = await stack.http.post(
            f"{stack.ports.api(2)}/v1/cases", json={"client_id": client_id}, headers=as_supervisor
        )
        return response if response.status_code != 404 else None  # planning learns the client

    case = await eventually(opened)
    assert case.status_code == 201, case.text
    response = await stack.http.put(
        f"{stack.ports.api(2)}/v1/cases/{case.json()['id']}/assignment",
        json={"worker_id": "alice"},
        headers=as_supervisor,
    )
    assert response.status_code == 200, response.text
    assert response.json()["worker_id"] == "alice"


async def test_a_crashed_api_and_worker_are_started_again_and_the_stack_still_answers(
    stack: RunningStack,
) -> None:
    for arguments in (("api", "intake"), ("worker", "planning")):
        crashed = stack.dev.child_pid(*arguments)
        os.kill(crashed, signal.SIGKILL)
        name = f"{arguments[1]} {arguments[0]}"
        await stack.dev.printed(f"{name} exited with status -9; restarting in")
        await stack.dev.printed(f"{name} restarted (restart #1)")
        assert stack.dev.child_pid(*arguments) != crashed

    async def all_ready() -> bool | None:
        try:
            await _every_service_ready(stack)
        except (AssertionError, httpx.HTTPError):
            return None
        return True

    await eventually(all_ready, timeout=60, interval=0.2)
    await _reaches_every_service(stack)
    assert stack.dev.process.poll() is None


async def test_a_second_stack_beside_a_running_one_refuses_and_leaves_it_alone(
    stack: RunningStack, tmp_path: Path
) -> None:
    same_data = DevProcess.start(stack.env)
    assert await same_data.exited() == 1
    assert "not starting: another stack (pid " in same_data.output
    assert "Traceback" not in same_data.output

    # Another data directory, the same ports: refused before anything starts.
    elsewhere = DevProcess.start({**stack.env, "CASEWORK_DATA_DIR": str(tmp_path / "other")})
    assert await elsewhere.exited() == 1
    assert "not starting: something already answers on 127.0.0.1 port" in elsewhere.output
    assert f"{stack.ports.http_base + 1} (intake API)" in elsewhere.output
    assert not (tmp_path / "other" / "postgres").exists()

    # The first stack's PostgreSQL, broker and services are untouched.
    await _every_service_ready(stack)
    await _reaches_every_service(stack)


async def test_ctrl_c_stops_everything_cleanly(stack: RunningStack) -> None:
    stack.dev.process.send_signal(signal.SIGINT)
    assert await stack.dev.exited() == 0, stack.dev.output
    assert "stopped." in stack.dev.output
    for base in (stack.ports.http_base, stack.ports.worker_base):
        assert not any(is_listening(base + index) for index in range(1, 5))
