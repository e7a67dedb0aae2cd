"""`make run`: the whole system on one machine, on the embedded default.

Starts PostgreSQL and the broker (unless settings point at external ones), provisions and
migrates every service, creates the topics, then runs each service's API and worker as child
processes and prints where everything is. From then on it supervises: an API, a worker, the
broker or PostgreSQL that exits is started again with backoff (services/supervisor.py), and
said so on the console; a restarted broker is empty, so the topics are created again. Only
Ctrl-C (SIGINT) or SIGTERM stops the stack, everything in reverse order.

One stack per data directory and per set of ports: before touching anything it takes an
exclusive lock on a file in the data directory (held for the life of the stack, released by
the kernel even if the process is killed) and checks that none of its ports answers. A second
`make run` beside a running one refuses with a message and leaves the first alone (before
this, it stopped the first stack's PostgreSQL, then took the first stack's APIs answering
its probes for its own and printed "ready").
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

from services.mailcatcher import MailCatcher
from services.registry import SERVICES, TOPICS
from services.supervisor import Supervisor
from shared.auth.tokens import issue_dev_token
from shared.db.migrations import migrate_services
from shared.embedded import EmbeddedBroker, EmbeddedPostgres
from shared.messaging.kafka import create_topics
from shared.ports import is_listening
from shared.settings import Settings

DEV_USERS = (
    ("caseworker", "alice"),
    ("supervisor", "sam"),
    ("partner", "pat"),
    ("admin", "ada"),
    ("auditor", "audrey"),
    ("integration", "agency-sync"),
)


def _say(message: str) -> None:
    print(f"[casework] {message}", flush=True)


LOCK_FILE = "casework-dev.lock"


class StackRefused(RuntimeError):
    """Another stack holds this one's data directory or ports; nothing was touched."""


def _wait_ready(url: str, timeout: float, process: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    return False


@dataclass
class Child:
    """An API or worker process, started again the same way after it exits."""

    name: str
    command: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log_file:
            self.process = subprocess.Popen(
                self.command, env=os.environ.copy(), stdout=log_file, stderr=subprocess.STDOUT
            )

    def exit_status(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def restart(self) -> None:
        self.start()


@dataclass
class _Broker:
    broker: EmbeddedBroker
    settings: Settings
    name: str = "Kafka broker"

    def exit_status(self) -> int | None:
        process = self.broker.process
        return None if process is None else process.poll()

    def restart(self) -> None:
        self.broker.restart()
        # It restarted empty: declare the topics again (producers never auto-create them).
        asyncio.run(create_topics(self.settings, TOPICS))


@dataclass
class _Postgres:
    postgres: EmbeddedPostgres
    name: str = "PostgreSQL"

    def exit_status(self) -> int | None:
        process = self.postgres.process
        return None if process is None else process.poll()

    def restart(self) -> None:
        self.postgres.start()


class DevStack:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.data_dir = Path(settings.data_dir)
        self.postgres: EmbeddedPostgres | None = None
        self.broker: EmbeddedBroker | None = None
        self.children: list[Child] = []
        self.mail: MailCatcher | None = None
        self._lock: IO[str] | None = None

    # -- one stack at a time ---------------------------------------------------------------

    def claim(self) -> None:
        """Take the data directory's lock and make sure no port of this stack answers."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        lock = open(self.data_dir / LOCK_FILE, "a+")  # noqa: SIM115 (held for the stack's life)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            owner = lock.read().strip() or "unknown"
            lock.close()
            raise StackRefused(
                f"another stack (pid {owner}) is running with its data in {self.data_dir}. "
                "Stop it first (Ctrl-C where it runs), or give this one its own "
                "CASEWORK_DATA_DIR and ports."
            ) from None
        self._lock = lock
        taken = [f"{port} ({what})" for port, what in self._ports() if is_listening(port)]
        if taken:
            self.release()
            raise StackRefused(
                "something already answers on 127.0.0.1 port " + ", ".join(taken) + ": "
                "another stack, or another program. Stop it, or move this stack with "
                "CASEWORK_HTTP_PORT_BASE, CASEWORK_WORKER_PORT_BASE, CASEWORK_DATABASE_URL "
                "and CASEWORK_KAFKA_BOOTSTRAP."
            )
        lock.truncate(0)
        lock.write(f"{os.getpid()}\n")
        lock.flush()

    def _ports(self) -> list[tuple[int, str]]:
        ports: list[tuple[int, str]] = []
        if self.settings.embedded_postgres:
            ports.append((urlsplit(self.settings.database_url).port or 5432, "PostgreSQL"))
        if self.settings.embedded_broker:
            for server in self.settings.kafka_bootstrap_servers:
                ports.append((int(server.rsplit(":", 1)[1]), "Kafka broker"))
        for name, spec in SERVICES.items():
            ports.append((spec.http_port(self.settings), f"{name} API"))
            ports.append((spec.worker_port(self.settings), f"{name} worker"))
        return ports

    def release(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the file releases the lock
            self._lock = None

    # -- start -----------------------------------------------------------------------------

    def start_infrastructure(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.settings.embedded_postgres:
            url = urlsplit(self.settings.database_url)
            self.postgres = EmbeddedPostgres(
                self.data_dir / "postgres",
                url.port or 5432,
                url.password or "postgres",
                notify=_say,
            )
            self.postgres.start()
            _say(
                f"PostgreSQL      127.0.0.1:{self.postgres.port} (data in {self.data_dir / 'postgres'})"
            )
        if self.settings.embedded_broker:
            port = int(self.settings.kafka_bootstrap_servers[0].rsplit(":", 1)[1])
            self.broker = EmbeddedBroker(port, log_path=self.data_dir / "broker.log", notify=_say)
            self.broker.start()
            _say(f"Kafka broker    127.0.0.1:{port} (Tansu, in memory)")
        asyncio.run(
            migrate_services(
                self.settings.database_url,
                list(SERVICES.values()),
                self.settings.service_db_password,
            )
        )
        _say("migrations applied: " + ", ".join(SERVICES))
        asyncio.run(create_topics(self.settings, TOPICS))

    def start_mail_catcher(self) -> None:
        """Outgoing e-mail goes to a local catcher that keeps each message as a file, unless the
        settings name another SMTP server (then that one is used, as configured)."""
        if self.settings.smtp_host not in ("127.0.0.1", "localhost"):
            _say(f"e-mail          via {self.settings.smtp_host}:{self.settings.smtp_port}")
            return
        catcher = MailCatcher(
            self.data_dir / "mail", host="127.0.0.1", port=self.settings.smtp_port
        )
        try:
            catcher.start()
        except OSError as error:
            _say(
                f"mail catcher could not listen on 127.0.0.1:{self.settings.smtp_port} ({error}); "
                "e-mails stay queued and are retried"
            )
            return
        self.mail = catcher
        # The services (child processes) send there, in plain SMTP on this machine.
        os.environ["CASEWORK_SMTP_HOST"] = "127.0.0.1"
        os.environ["CASEWORK_SMTP_PORT"] = str(self.settings.smtp_port)
        os.environ["CASEWORK_SMTP_SECURITY"] = "none"
        _say(
            f"mail catcher    smtp://127.0.0.1:{self.settings.smtp_port} "
            f"(every e-mail kept as a file in {self.data_dir / 'mail'})"
        )

    def start_services(self) -> None:
        logs = self.data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        for name in SERVICES:
            for role in ("api", "worker"):
                child = Child(
                    f"{name} {role}",
                    [sys.executable, "-m", "services.cli", role, name],
                    logs / f"{name}-{role}.log",
                )
                child.start()
                self.children.append(child)
        for child in self.children:
            name, role = child.name.split(" ", 1)
            spec = SERVICES[name]
            port = (
                spec.http_port(self.settings) if role == "api" else spec.worker_port(self.settings)
            )
            url = f"http://{self.settings.http_host}:{port}/health/ready"
            assert child.process is not None
            if not _wait_ready(url, timeout=60, process=child.process):
                raise RuntimeError(
                    f"{child.name} did not become ready at {url} (its log: {child.log_path})"
                )

    def enrol_dev_staff(self) -> None:
        """Put the development caseworker and supervisor in planning's staff directory, as
        their organisation's admin would, so a case can be assigned right away."""
        admin = issue_dev_token(
            self.settings, subject="ada", roles=["admin"], organization_id="org-dev", team_id=None
        )
        base = f"http://{self.settings.http_host}:{SERVICES['planning'].http_port(self.settings)}"
        staff = [
            {"worker_id": subject, "team_id": "team-dev", "display_name": subject.title(),
             "languages": ["en"], "capacity_points": 60}
            for role, subject in DEV_USERS
            if role in ("caseworker", "supervisor")
        ]  # fmt: skip
        request = urllib.request.Request(
            f"{base}/v1/workers/sync",
            data=json.dumps({"workers": staff}).encode(),
            headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            if response.status != 200:
                raise RuntimeError(f"could not enrol the development staff: {response.status}")

    def print_summary(self) -> None:
        _say("ready. Services (API docs at /docs, readiness at /health/ready):")
        for name, spec in SERVICES.items():
            host = self.settings.http_host
            _say(
                f"  {name:<14} http://{host}:{spec.http_port(self.settings)}   "
                f"worker http://{host}:{spec.worker_port(self.settings)}/metrics"
            )
        _say("Development tokens (Authorization: Bearer <token>), 8 hours, org-dev/team-dev:")
        for role, subject in DEV_USERS:
            token = issue_dev_token(
                self.settings,
                subject=subject,
                roles=[role],
                organization_id="org-dev",
                team_id="team-dev",
            )
            _say(f"  {role:<12} {subject:<8} {token}")
        _say("More with: make token ROLE=caseworker SUB=alice [ORG=org-dev] [TEAM=team-dev]")
        if self.mail is not None:
            _say(f"Outgoing e-mail is caught: each message is a .eml file in {self.mail.folder}")
        _say(
            f"JSON logs in {self.data_dir / 'logs'}. Whatever exits is started again; "
            "Ctrl-C stops everything."
        )

    def supervisor(self) -> Supervisor:
        supervisor = Supervisor(say=_say)
        if self.postgres is not None:
            supervisor.add(_Postgres(self.postgres))
        if self.broker is not None:
            supervisor.add(_Broker(self.broker, self.settings))
        for child in self.children:
            supervisor.add(child)
        return supervisor

    def watch(self, stop: threading.Event | None = None) -> None:
        """Keep everything running until `stop` is set (or, without one, until interrupted)."""
        self.supervisor().run(stop or threading.Event())

    def stop(self) -> None:
        started = (
            bool(self.children)
            or self.broker is not None
            or self.postgres is not None
            or self.mail is not None
        )
        for child in self.children:
            if child.process is not None and child.process.poll() is None:
                child.process.terminate()
        for child in self.children:
            if child.process is None:
                continue
            try:
                child.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                _say(f"{child.name} did not stop in time; killing it")
                child.process.kill()
                child.process.wait()
        if self.mail is not None:
            self.mail.stop()
            self.mail = None
        if self.broker is not None:
            self.broker.stop()
        if self.postgres is not None:
            self.postgres.stop()
        self.release()
        if started:
            _say("stopped.")


def run(settings: Settings) -> int:
    stack = DevStack(settings)

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    try:
        stack.claim()
    except StackRefused as refused:
        _say(f"not starting: {refused}")
        return 1
    try:
        stack.start_infrastructure()
        stack.start_mail_catcher()
        stack.start_services()
        stack.enrol_dev_staff()
        stack.print_summary()
        stack.watch()
        return 0
    except KeyboardInterrupt:
        return 0
    except (RuntimeError, TimeoutError) as error:
        _say(f"could not start: {error}")
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stack.stop()
