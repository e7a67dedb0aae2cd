"""Loopback ports for the embedded servers: handing out one that is really free, and probing.

A port is handed out only if a bind *without* SO_REUSEADDR succeeds on it: that fails on a
listener and also on a socket lingering in TIME_WAIT, which the Tansu broker (it binds without
SO_REUSEADDR) cannot start beside. Candidates come from below the kernel's ephemeral range, so
no outgoing connection of any process on the machine can take the port (and leave a TIME_WAIT
on it) between the probe and the child's bind. A handed-out port stays reserved until this
process exits: in this process by a set, across processes (parallel test sessions, a bench
run beside them) by an advisory lock on a file named after it in the temporary directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO

HOST = "127.0.0.1"
# Linux's default ephemeral range is 32768-60999; candidates stay below whatever it is here.
_LOWEST = 20_000
_DEFAULT_EPHEMERAL = (32_768, 60_999)

_reserved: dict[int, IO[bytes]] = {}


class ChildExited(RuntimeError):
    """A server process exited before it listened."""

    def __init__(self, returncode: int) -> None:
        super().__init__(f"process exited with {returncode} before listening")
        self.returncode = returncode


def ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return _DEFAULT_EPHEMERAL


def candidate_range() -> range:
    low, high = ephemeral_range()
    if low - _LOWEST >= 1_000:
        return range(_LOWEST, low)
    return range(max(high + 1, _LOWEST), 65_536)


def is_bindable(port: int, host: str = HOST) -> bool:
    """True if a bind without SO_REUSEADDR succeeds: no listener and no TIME_WAIT socket."""
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def is_listening(port: int, host: str = HOST) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1.0)
        return probe.connect_ex((host, port)) == 0


def _lock_directory() -> Path:
    directory = Path(tempfile.gettempdir()) / "casework-ports"
    if not directory.exists():
        directory.mkdir(exist_ok=True)
        with contextlib.suppress(OSError):
            directory.chmod(0o1777)  # like /tmp: every user's sessions reserve ports here
    return directory


def reserve(port: int) -> bool:
    """Take the machine-wide reservation of `port` for the life of this process."""
    if port in _reserved:
        return False
    try:
        handle = open(_lock_directory() / f"{port}.lock", "ab")  # noqa: SIM115 (held until exit)
    except OSError:  # another user's lock file we may not open: leave that port to them
        return False
    with contextlib.suppress(OSError):
        os.chmod(handle.name, 0o666)  # another user's session may reserve the port later
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return False
    _reserved[port] = handle
    return True


def release(port: int) -> None:
    handle = _reserved.pop(port, None)
    if handle is not None:
        handle.close()


def free_port() -> int:
    """A loopback port nothing listens on, with no TIME_WAIT socket, reserved for this process."""
    candidates = candidate_range()
    for _ in range(1_000):
        port = random.choice(candidates)
        if not reserve(port):
            continue
        if is_bindable(port):
            return port
        release(port)
    raise RuntimeError(f"no free port in {candidates.start}-{candidates.stop - 1}")


def free_port_base(count: int) -> int:
    """A base whose next `count` ports (base+1 .. base+count) are all free, all reserved as
    free_port() reserves one: for the services' APIs and workers, which listen on base + n."""
    candidates = range(candidate_range().start, candidate_range().stop - count - 1)
    for _ in range(1_000):
        base = random.choice(candidates)
        block = range(base + 1, base + count + 1)
        taken: list[int] = []
        for port in block:
            if not reserve(port):
                break
            taken.append(port)
            if not is_bindable(port):
                break
        else:
            return base
        for port in taken:
            release(port)
    raise RuntimeError(f"no block of {count} free ports")


def wait_for_port(
    port: int, timeout: float, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Wait until something listens on `port`; raise ChildExited if `process` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ChildExited(process.returncode)
        try:
            with socket.create_connection((HOST, port), timeout=0.2):
                pass
        except OSError:
            time.sleep(0.05)
            continue
        if process is not None and process.poll() is not None:
            raise ChildExited(process.returncode)  # what answered was not our child
        return
    raise TimeoutError(f"nothing listening on {HOST}:{port} after {timeout}s")
