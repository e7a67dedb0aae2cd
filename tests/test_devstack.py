"""`make run` as a newcomer meets it: `casework dev` brings the system up on the embedded
default, a client reaches every service, and Ctrl-C stops everything cleanly."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from shared.embedded import free_port
from tests.support import VALID_CLIENT


def _free_block() -> int:
    """A base port whose next four ports are free (base+1 .. base+4)."""
    for _ in range(50):
        base = random.randrange(20_000, 40_000, 10)
        try:
            for offset in range(1, 5):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", base + offset))
        except OSError:
            continue
        return base
    raise RuntimeError("no free block of ports")


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_the_dev_stack_runs_every_service_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    http_base, worker_base = _free_block(), _free_block()
    env = {
        **os.environ,
        "CASEWORK_DATABASE_URL": f"postgresql://postgres:dev@127.0.0.1:{free_port()}/casework",
        "CASEWORK_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
        "CASEWORK_HTTP_PORT_BASE": str(http_base),
        "CASEWORK_WORKER_PORT_BASE": str(worker_base),
        "CASEWORK_DATA_DIR": str(tmp_path / "data"),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "dev"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            if "Ctrl-C stops everything" in line:
                break
        assert process.poll() is None, "".join(output)

        token = next(
            line.split()[-1]
            for line in output
            if line.strip().startswith("[casework]   caseworker")
        )
        with httpx.Client(timeout=5, headers={"Authorization": f"Bearer {token}"}) as http:
            for index in range(1, 5):
                ready = http.get(f"http://127.0.0.1:{http_base + index}/health/ready")
                assert ready.status_code == 200
                assert ready.json()["status"] == "ready"
                worker = http.get(f"http://127.0.0.1:{worker_base + index}/health/ready")
                assert worker.json()["status"] == "ready"
            client = http.post(f"http://127.0.0.1:{http_base + 1}/v1/clients", json=VALID_CLIENT)
            assert client.status_code == 201
            client_id = client.json()["id"]
            for index in range(2, 5):
                url = f"http://127.0.0.1:{http_base + index}/v1/client-refs/{client_id}"
                deadline = time.monotonic() + 10
                while (reference := http.get(url)).status_code == 404:
                    assert time.monotonic() < deadline, f"{url} never appeared"
                    time.sleep(0.02)
                assert reference.json()["client_id"] == client_id
        assert (tmp_path / "data" / "logs" / "intake-api.log").stat().st_size > 0
    finally:
        process.send_signal(signal.SIGINT)
        remaining, _ = process.communicate(timeout=60)
        output.append(remaining or "")

    assert process.returncode == 0, "".join(output)
    assert "stopped." in "".join(output)
    for base in (http_base, worker_base):
        assert not any(_listening(base + index) for index in range(1, 5))
