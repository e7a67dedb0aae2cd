"""The load generator: a lean HTTP/1.1 keep-alive client on asyncio streams, and percentiles.

Why not httpx: measured on the 2-core machine against the baseline app (32 connections),
httpx.AsyncClient used about 2.5 ms of CPU per request and capped the run at 280-370 req/s,
while this client uses about 0.06 ms and lets the same server reach 1200-1600 req/s. It writes
one pre-built request per round trip and parses only the status line and Content-Length,
which is all a benchmark needs.

It runs as its own process (`python -m bench.load URL ...`) so its CPU is accounted for apart
from everything else. It prints JSON lines: {"phase": "measuring"} once the warm-up requests
are done, then {"phase": "done", ...} with the figures. `run_load_process` is the parent side.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parents[1]

# What a failed round trip can raise: the connection is dropped and the request counted as an error.
REQUEST_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    EOFError,  # asyncio.IncompleteReadError
    asyncio.LimitOverrunError,
    ValueError,
)

DUPLICATE_REFUSED = 409


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def rounded(value: float, digits: int = 2) -> float | None:
    """A figure for JSON output: NaN (no samples) becomes null."""
    return None if math.isnan(value) else round(value, digits)


def build_request(
    method: str,
    url: str,
    body: bytes | None = None,
    *,
    headers: Sequence[tuple[str, str]] = (),
    content_type: str = "application/json",
) -> bytes:
    """One HTTP/1.1 request as bytes, ready to write on a keep-alive connection."""
    parts = urlsplit(url)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}"]
    lines += [f"{name}: {value}" for name, value in headers]
    if body is not None:
        lines += [f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


def parse_header(text: str) -> tuple[str, str]:
    """'Name: value' (as curl -H takes it) -> (name, value)."""
    name, separator, value = text.partition(":")
    if not separator or not name.strip():
        raise ValueError(f"not a header: {text!r}")
    return name.strip(), value.strip()


class ProtocolError(ValueError):
    """A response this client does not handle (it expects Content-Length framing)."""


class HttpConnection:
    """One keep-alive connection; (re)connects on first use and after any failure."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    @classmethod
    def for_url(cls, url: str) -> HttpConnection:
        parts = urlsplit(url)
        return cls(parts.hostname or "127.0.0.1", parts.port or 80)

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        """Send a pre-built request; return the status and the body."""
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._reader, self._writer
        writer.write(raw)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        close = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection":
                close = value.strip().lower() == b"close"
            elif name == b"transfer-encoding":
                raise ProtocolError("chunked responses are not supported")
        body = await reader.readexactly(length) if length else b""
        if close:
            await self.close()
        return status, body

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


@dataclass
class LoadResult:
    """The measured phase only (warm-up excluded). Latencies are per successful request."""

    requests: int
    ok: int
    errors: int
    elapsed_s: float
    throughput_rps: float | None
    p50_ms: float | None
    p99_ms: float | None
    mean_ms: float | None
    max_ms: float | None
    # CPU seconds the generator itself used while measuring (user + system).
    cpu_s: float
    # 409 answers: synthetic people are drawn from common names, and now and then one matches
    # a registered person closely enough for the duplicate check. A correct answer, not an
    # error; not counted in the throughput either.
    duplicates_refused: int = 0
    error_samples: list[str] = field(default_factory=list)


@dataclass
class _Tally:
    expect_status: int
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    duplicates_refused: int = 0
    error_samples: list[str] = field(default_factory=list)

    def error(self, description: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5 and description not in self.error_samples:
            self.error_samples.append(description)


async def _drive(
    connections: Sequence[HttpConnection],
    raws: Sequence[bytes],
    count: int,
    tally: _Tally,
    first: int = 0,
) -> None:
    """Send `count` requests, one in flight per connection at a time, taking the requests in
    turn from `raws` starting at index `first`."""
    remaining = count
    sent = first

    async def client(connection: HttpConnection) -> None:
        nonlocal remaining, sent
        while remaining > 0:
            remaining -= 1
            raw = raws[sent % len(raws)]
            sent += 1
            started = time.perf_counter()
            try:
                status, body = await connection.request(raw)
            except REQUEST_ERRORS as error:
                tally.error(repr(error))
                await connection.close()
                continue
            if status == tally.expect_status:
                tally.latencies.append(time.perf_counter() - started)
            elif status == DUPLICATE_REFUSED:
                tally.duplicates_refused += 1
            else:
                tally.error(f"HTTP {status}: {body[:200].decode('utf-8', 'replace')}")

    await asyncio.gather(*(client(connection) for connection in connections))


async def run_load(
    url: str,
    *,
    bodies: Sequence[bytes],
    concurrency: int,
    requests: int,
    warmup: int,
    expect_status: int = 201,
    headers: Sequence[tuple[str, str]] = (),
    on_measuring: Callable[[], None] | None = None,
) -> LoadResult:
    """POST `bodies` in turn to `url` from `concurrency` keep-alive connections: warm-up,
    then measured. Distinct bodies let an endpoint with a duplicate check accept them all."""
    raws = [build_request("POST", url, body, headers=headers) for body in bodies]
    connections = [HttpConnection.for_url(url) for _ in range(concurrency)]
    try:
        await _drive(connections, raws, warmup, _Tally(expect_status))
        if on_measuring is not None:
            on_measuring()
        tally = _Tally(expect_status)
        cpu_started = time.process_time()
        started = time.perf_counter()
        await _drive(connections, raws, requests, tally, first=warmup)
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
    finally:
        await asyncio.gather(*(connection.close() for connection in connections))
    latencies_ms = [latency * 1000 for latency in tally.latencies]
    return LoadResult(
        requests=requests,
        ok=len(latencies_ms),
        errors=tally.errors,
        elapsed_s=round(elapsed, 3),
        throughput_rps=rounded(len(latencies_ms) / elapsed, 1) if elapsed > 0 else None,
        p50_ms=rounded(percentile(latencies_ms, 50)),
        p99_ms=rounded(percentile(latencies_ms, 99)),
        mean_ms=rounded(sum(latencies_ms) / len(latencies_ms)) if latencies_ms else None,
        max_ms=rounded(max(latencies_ms)) if latencies_ms else None,
        cpu_s=round(cpu, 3),
        duplicates_refused=tally.duplicates_refused,
        error_samples=tally.error_samples,
    )


async def run_load_process(
    url: str,
    *,
    bodies: Sequence[bytes],
    concurrency: int,
    requests: int,
    warmup: int,
    expect_status: int = 201,
    headers: Sequence[tuple[str, str]] = (),
    on_measuring: Callable[[], None] | None = None,
    on_done: Callable[[], None] | None = None,
    timeout_s: float = 600.0,
) -> LoadResult:
    """run_load in a child process; the callbacks fire as its measured phase starts and ends."""
    with tempfile.NamedTemporaryFile("wb", suffix=".jsonl", delete=False) as bodies_file:
        bodies_file.write(b"\n".join(bodies) + b"\n")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.load",
        url,
        "--bodies-file",
        bodies_file.name,
        "--concurrency",
        str(concurrency),
        "--requests",
        str(requests),
        "--warmup",
        str(warmup),
        "--expect-status",
        str(expect_status),
        *[argument for name, value in headers for argument in ("--header", f"{name}: {value}")],
        stdout=asyncio.subprocess.PIPE,
        cwd=REPO_ROOT,
    )
    result: LoadResult | None = None
    try:
        async with asyncio.timeout(timeout_s):
            assert process.stdout is not None
            async for line in process.stdout:
                message = json.loads(line)
                if message.pop("phase") == "measuring":
                    if on_measuring is not None:
                        on_measuring()
                else:
                    if on_done is not None:
                        on_done()
                    result = LoadResult(**message)
            await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        os.unlink(bodies_file.name)
    if result is None:
        raise RuntimeError(f"the load generator exited with {process.returncode} and no result")
    return result


def _emit(message: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__)
    parser.add_argument("url")
    parser.add_argument(
        "--bodies-file", required=True, help="JSON bodies to POST in turn, one per line"
    )
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--expect-status", type=int, default=201)
    parser.add_argument(
        "--header", action="append", default=[], type=parse_header, metavar="'NAME: VALUE'"
    )
    args = parser.parse_args(argv)

    import uvloop

    try:
        result = uvloop.run(
            run_load(
                args.url,
                bodies=[
                    line.encode()
                    for line in Path(args.bodies_file).read_text().splitlines()
                    if line.strip()
                ],
                concurrency=args.concurrency,
                requests=args.requests,
                warmup=args.warmup,
                expect_status=args.expect_status,
                headers=args.header,
                on_measuring=lambda: _emit({"phase": "measuring"}),
            )
        )
    except KeyboardInterrupt:  # a terminal Ctrl-C reaches the whole group; the harness reports it
        return 130
    _emit({"phase": "done", **asdict(result)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
