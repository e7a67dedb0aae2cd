"""A real HTTP server on this machine that receives webhooks, for tests and the bench.

Paths choose the answer: `/ok/...` 204; `/status/<code>/...` that status, or what
`answers[path]` says when set; `/held/...` waits until `release` is set (a slow subscriber).
`GarbageServer` answers every connection with bytes that are not HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from shared.ports import free_port


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    port: int = 0
    received: list[Received] = field(default_factory=list)
    answers: dict[str, int] = field(default_factory=dict)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    count_only: bool = False
    count: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path: str = scope["path"]
        self.count += 1
        if not self.count_only:
            headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
            self.received.append(Received(path, headers, body))
        self.arrived.set()
        status = 204
        if path.startswith("/held/"):
            await self.release.wait()
        elif path in self.answers:
            status = self.answers[path]
        elif path.startswith("/status/"):
            status = int(path.split("/")[2])
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})


class _Quiet(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[no-untyped-def]
        yield


@contextlib.asynccontextmanager
async def running_receiver(*, count_only: bool = False) -> AsyncIterator[Receiver]:
    receiver = Receiver(port=free_port(), count_only=count_only)
    server = _Quiet(
        uvicorn.Config(
            receiver, host="127.0.0.1", port=receiver.port, log_config=None, access_log=False,
            lifespan="off", backlog=4096,
        )
    )  # fmt: skip
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn sets a flag, not an event)
        await asyncio.sleep(0.01)
    try:
        yield receiver
    finally:
        receiver.release.set()
        server.should_exit = True
        await asyncio.wait_for(task, 10)


@contextlib.asynccontextmanager
async def garbage_server() -> AsyncIterator[int]:
    """A port whose server answers anything with bytes that are not HTTP, then hangs up."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            await reader.read(1024)
            writer.write(b"\x00\xffthis is not HTTP at all\r\n\r\n")
            await writer.drain()
        writer.close()

    port = free_port()
    server = await asyncio.start_server(answer, "127.0.0.1", port)
    try:
        yield port
    finally:
        server.close()
        await server.wait_closed()
