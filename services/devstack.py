"""`make run`: the whole system on one machine, on the embedded default.

Starts PostgreSQL and the broker (unless settings point at external ones), provisions and
migrates every service, creates the topics, then runs each service's API and worker as child
processes, prints where everything is, and on Ctrl-C stops everything in reverse order.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from services.registry import SERVICES, TOPICS
from shared.auth.tokens import issue_dev_token
from shared.db.migrations import migrate_services
from shared.embedded import EmbeddedBroker, EmbeddedPostgres
from shared.messaging.kafka import create_topics
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


def _wait_ready(url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    return False


class DevStack:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.data_dir = Path(settings.data_dir)
        self.postgres: EmbeddedPostgres | None = None
        self.broker: EmbeddedBroker | None = None
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start_infrastructure(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.settings.embedded_postgres:
            url = urlsplit(self.settings.database_url)
            self.postgres = EmbeddedPostgres(
                self.data_dir / "postgres", url.port or 5432, url.password or "postgres"
            )
            self.postgres.start()
            _say(
                f"PostgreSQL      127.0.0.1:{self.postgres.port} (data in {self.data_dir / 'postgres'})"
            )
        if self.settings.embedded_broker:
            port = int(self.settings.kafka_bootstrap_servers[0].rsplit(":", 1)[1])
            self.broker = EmbeddedBroker(port, log_path=self.data_dir / "broker.log")
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

    def start_services(self) -> None:
        logs = self.data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        for name in SERVICES:
            for role in ("api", "worker"):
                with open(logs / f"{name}-{role}.log", "ab") as log_file:
                    process = subprocess.Popen(
                        [sys.executable, "-m", "services.cli", role, name],
                        env=os.environ.copy(),
                        stdout=log_file,
                        stderr=subprocess.STDOUT,
                    )
                self.children.append((f"{name} {role}", process))
        for name, spec in SERVICES.items():
            for role, port in (
                ("api", spec.http_port(self.settings)),
                ("worker", spec.worker_port(self.settings)),
            ):
                url = f"http://{self.settings.http_host}:{port}/health/ready"
                if not _wait_ready(url, timeout=60):
                    raise RuntimeError(f"{name} {role} did not become ready at {url}")

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
        _say(f"JSON logs in {self.data_dir / 'logs'}. Ctrl-C stops everything.")

    def watch(self) -> int:
        """Block until a signal or until a child dies; return the exit status to use."""
        while True:
            for name, process in self.children:
                if process.poll() is not None:
                    _say(f"{name} exited with status {process.returncode}; stopping")
                    return 1
            time.sleep(0.5)

    def stop(self) -> None:
        for _name, process in self.children:
            if process.poll() is None:
                process.terminate()
        for name, process in self.children:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                _say(f"{name} did not stop in time; killing it")
                process.kill()
        if self.broker is not None:
            self.broker.stop()
        if self.postgres is not None:
            self.postgres.stop()
        _say("stopped.")


def run(settings: Settings) -> int:
    stack = DevStack(settings)

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    try:
        stack.start_infrastructure()
        stack.start_services()
        stack.print_summary()
        return stack.watch()
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stack.stop()
