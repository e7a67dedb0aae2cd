"""A private Casework stack for one benchmark run, and what the cases need to know about it.

Everything is its own: PostgreSQL, broker and the eight service processes on free ports, data
in a temporary directory that is deleted afterwards, plus the raw-asyncpg baseline app. The
CASEWORK_* environment is set before Settings() is built, so DevStack (in this process) and
every child (which inherit the environment) agree on the ports.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

import asyncpg

from bench.baseline_app import SCHEMA as BASELINE_SCHEMA
from bench.people import ORGANIZATION
from services.devstack import DevStack
from services.registry import SERVICES
from shared.events.contracts import ClientRegistered
from shared.ports import free_port, free_port_base
from shared.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"


def wait_ready(url: str, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not become ready within {timeout}s")


class BenchStack:
    def __init__(self, log_level: str = "WARNING") -> None:
        self.log_level = log_level
        self.temp_dir: Path | None = None
        self.settings: Settings | None = None
        self.devstack: DevStack | None = None
        self.baseline: subprocess.Popen[bytes] | None = None
        self.baseline_port = 0
        self._replaced_environment: dict[str, str | None] = {}

    # -- lifecycle -------------------------------------------------------------------------

    def configure(self) -> Settings:
        """Choose ports and a data directory, and export them as CASEWORK_* variables."""
        self.temp_dir = Path(tempfile.mkdtemp(prefix="casework-bench-"))
        postgres_port, broker_port, self.baseline_port = free_port(), free_port(), free_port()
        http_base = free_port_base(len(SERVICES))
        worker_base = free_port_base(len(SERVICES))
        chosen = {
            # The embedded server takes its superuser password from this URL: a fresh one.
            "CASEWORK_DATABASE_URL": (
                f"postgresql://postgres:{secrets.token_hex(16)}@{HOST}:{postgres_port}/casework"
            ),
            # Empty: each service derives its own DSN from the URL above (a value inherited
            # from the caller's environment would point the services elsewhere).
            "CASEWORK_SERVICE_DATABASE_URL": "",
            "CASEWORK_KAFKA_BOOTSTRAP": f"{HOST}:{broker_port}",
            "CASEWORK_HTTP_HOST": HOST,
            "CASEWORK_HTTP_PORT_BASE": str(http_base),
            "CASEWORK_WORKER_PORT_BASE": str(worker_base),
            "CASEWORK_DATA_DIR": str(self.temp_dir / "data"),
            "CASEWORK_EMBEDDED_POSTGRES": "true",
            "CASEWORK_EMBEDDED_BROKER": "true",
            "CASEWORK_LOG_LEVEL": self.log_level,
            # A load generator is one source and a few principals: measure the service,
            # not the rate limiter's refusals.
            "CASEWORK_RATE_LIMIT_PER_SOURCE": "",
            "CASEWORK_RATE_LIMIT_PER_PRINCIPAL": "",
            "CASEWORK_RATE_LIMIT_UNAUTHENTICATED": "",
            # The bench's organisation runs the directory (bench/directory.py imports it).
            "CASEWORK_DIRECTORY_OPERATOR_ORGANIZATION_ID": ORGANIZATION,
        }
        self._replaced_environment = {name: os.environ.get(name) for name in chosen}
        os.environ.update(chosen)
        self.settings = Settings()
        return self.settings

    def start(self, *, with_baseline: bool = True) -> None:
        settings = self.configure()
        self.devstack = DevStack(settings)
        self.devstack.claim()
        self.devstack.start_infrastructure()
        self.devstack.start_services()
        if not with_baseline:
            return
        self.baseline = subprocess.Popen(
            [sys.executable, "-m", "bench.baseline_app", "--port", str(self.baseline_port)],
            cwd=REPO_ROOT,
            env=os.environ.copy(),
        )
        wait_ready(f"{self.baseline_url}/health/ready", timeout=60, process=self.baseline)

    def stop(self) -> None:
        """Stop whatever was started, in reverse order; safe to call after a partial start."""
        try:
            self.resume_workers()  # a stopped process would not act on SIGTERM
            if self.baseline is not None and self.baseline.poll() is None:
                self.baseline.terminate()
                try:
                    self.baseline.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    self.baseline.kill()
                    self.baseline.wait()
            if self.devstack is not None:
                self.devstack.stop()
        finally:
            if self.temp_dir is not None:
                shutil.rmtree(self.temp_dir, ignore_errors=True)
            self._restore_environment()

    def _restore_environment(self) -> None:
        """Put back the caller's CASEWORK_* values (a test session goes on after the stack)."""
        for name, value in self._replaced_environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._replaced_environment = {}

    def check_alive(self) -> None:
        """Raise if anything the stack started has exited."""
        processes: list[tuple[str, subprocess.Popen[bytes] | None]] = [("baseline", self.baseline)]
        if self.devstack is not None:
            processes += [(child.name, child.process) for child in self.devstack.children]
            for name, embedded in (
                ("postgres", self.devstack.postgres),
                ("broker", self.devstack.broker),
            ):
                if embedded is not None:
                    processes.append((name, embedded.process))
        dead = [
            f"{name} (status {process.returncode})"
            for name, process in processes
            if process is not None and process.poll() is not None
        ]
        if dead:
            raise RuntimeError("exited: " + ", ".join(dead))

    def _workers(self) -> list[subprocess.Popen[bytes]]:
        if self.devstack is None:
            return []
        return [
            child.process
            for child in self.devstack.children
            if child.name.endswith(" worker") and child.process is not None
        ]

    def pause_workers(self) -> None:
        """Freeze every service's worker (relay and consumers); events wait in the outbox."""
        for process in self._workers():
            if process.poll() is None:
                process.send_signal(signal.SIGSTOP)

    def resume_workers(self) -> None:
        for process in self._workers():
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)

    # -- addresses -------------------------------------------------------------------------

    def _settings(self) -> Settings:
        if self.settings is None:
            raise RuntimeError("the stack is not configured")
        return self.settings

    def api_url(self, service: str) -> str:
        return f"http://{HOST}:{SERVICES[service].http_port(self._settings())}"

    @property
    def baseline_url(self) -> str:
        return f"http://{HOST}:{self.baseline_port}"

    @property
    def admin_url(self) -> str:
        return self._settings().database_url

    @property
    def client_ref_services(self) -> list[str]:
        """The services that keep a client reference fed by intake's ClientRegistered."""
        return [
            name for name, spec in SERVICES.items() if ClientRegistered.event_type in spec.handlers
        ]

    # -- event flow ------------------------------------------------------------------------

    async def event_counts(self) -> dict[str, int]:
        """Clients registered at intake through its API (a `ClientRegistered` in its outbox;
        the search cases' population is inserted directly and never travels), and client
        references stored by each consumer."""
        connection: asyncpg.Connection = await asyncpg.connect(self.admin_url)
        try:
            registered = await connection.fetchval(
                "SELECT count(*) FROM intake.outbox WHERE type = $1", ClientRegistered.event_type
            )
            counts = {"intake": registered}
            for service in self.client_ref_services:
                counts[service] = await connection.fetchval(
                    f'SELECT count(*) FROM "{SERVICES[service].schema}".client_refs'
                )
        finally:
            await connection.close()
        return {name: int(count) for name, count in counts.items()}

    async def analyze(self) -> None:
        """Fresh planner statistics on the registries (intake's and the baseline's), so every
        load phase runs on the plans a registry of its size gets in steady state: the tables
        grow by thousands of rows per phase, faster than autovacuum re-analyzes them."""
        connection: asyncpg.Connection = await asyncpg.connect(self.admin_url)
        try:
            await connection.execute(
                "ANALYZE intake.clients, intake.client_access, "
                f"{BASELINE_SCHEMA}.clients, {BASELINE_SCHEMA}.client_access"
            )
        finally:
            await connection.close()

    async def relay_latencies_ms(self, client_ids: list[str]) -> list[float]:
        """Per client: intake's registration time to its outbox row being marked published
        (the relay marks a row once the broker acknowledged it)."""
        connection: asyncpg.Connection = await asyncpg.connect(self.admin_url)
        try:
            rows = await connection.fetch(
                """
                SELECT extract(epoch FROM outbox.published_at - clients.created_at) * 1000
                FROM intake.clients JOIN intake.outbox ON outbox.aggregateid = clients.id::text
                WHERE clients.id = ANY($1::uuid[]) AND outbox.type = $2
                    AND outbox.published_at IS NOT NULL
                """,
                client_ids,
                ClientRegistered.event_type,
            )
        finally:
            await connection.close()
        return [float(row[0]) for row in rows]

    async def wait_caught_up(self, timeout_s: float = 180.0) -> tuple[int, float]:
        """Wait until every consumer stored every registered client: (backlog, seconds waited)."""
        started = time.monotonic()
        self.check_alive()
        counts = await self.event_counts()
        backlog = max(counts["intake"] - counts[service] for service in self.client_ref_services)
        while any(counts[service] < counts["intake"] for service in self.client_ref_services):
            if time.monotonic() - started > timeout_s:
                raise TimeoutError(f"consumers did not catch up within {timeout_s}s: {counts}")
            await asyncio.sleep(0.2)
            self.check_alive()
            counts = await self.event_counts()
        return backlog, time.monotonic() - started

    # -- CPU accounting --------------------------------------------------------------------

    def process_groups(self) -> dict[str, list[int]]:
        """Process ids by role; each counts with all its descendants (PostgreSQL's backends)."""
        groups: dict[str, list[int]] = {
            "intake_api": [],
            "intake_worker": [],
            "consumer_workers": [],
            "other_apis": [],
            "postgres": [],
            "broker": [],
            "baseline": [],
        }
        if self.devstack is not None:
            for child in self.devstack.children:
                if child.process is None:
                    continue
                service, role = child.name.split(" ", 1)
                if service == "intake":
                    groups[f"intake_{role}"].append(child.process.pid)
                elif role == "worker":
                    groups["consumer_workers"].append(child.process.pid)
                else:
                    groups["other_apis"].append(child.process.pid)
            for key, embedded in (
                ("postgres", self.devstack.postgres),
                ("broker", self.devstack.broker),
            ):
                if embedded is not None and embedded.process is not None:
                    groups[key].append(embedded.process.pid)
        if self.baseline is not None:
            groups["baseline"].append(self.baseline.pid)
        return groups


class CpuMeter:
    """CPU seconds (user + system) each process group used between start() and stop().

    Reads /proc, so it measures nothing (figures are None) where there is no /proc.
    """

    def __init__(self, groups: Mapping[str, Sequence[int]]) -> None:
        self.groups = groups
        self._before: dict[str, int] | None = None
        self._own_before = 0.0
        self.seconds: dict[str, float] | None = None

    def start(self) -> None:
        self._before = _ticks_by_group(self.groups)
        self._own_before = time.process_time()

    def stop(self) -> None:
        after = _ticks_by_group(self.groups)
        own = time.process_time() - self._own_before
        if self._before is None or after is None:
            return
        per_second = os.sysconf("SC_CLK_TCK")
        self.seconds = {
            name: round((after[name] - self._before.get(name, 0)) / per_second, 2) for name in after
        }
        self.seconds["bench_harness"] = round(own, 2)


def _process_table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, CPU ticks: own user + system, plus reaped children's)."""
    table: dict[int, tuple[int, int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path("/proc", entry, "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        fields = text[text.rindex(")") + 2 :].split()
        # After the command: state ppid ... utime(11) stime(12) cutime(13) cstime(14).
        table[int(entry)] = (int(fields[1]), sum(int(value) for value in fields[11:15]))
    return table


def _ticks_by_group(groups: Mapping[str, Sequence[int]]) -> dict[str, int] | None:
    if not Path("/proc/self/stat").exists():
        return None
    table = _process_table()
    children: dict[int, list[int]] = {}
    for pid, (parent, _ticks) in table.items():
        children.setdefault(parent, []).append(pid)
    totals: dict[str, int] = {}
    for name, roots in groups.items():
        total = 0
        pending = [pid for pid in roots if pid in table]
        while pending:
            pid = pending.pop()
            total += table[pid][1]
            pending.extend(children.get(pid, ()))
        totals[name] = total
    return totals
