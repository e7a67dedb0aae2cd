"""`make run`'s mail catcher: a local SMTP server (aiosmtpd) that keeps every message it is sent
as an `.eml` file in a folder, so a developer sees what Casework would have mailed (any mail
program opens them; `cat` shows the text). Nothing leaves the machine. Development only:
aiosmtpd is a development dependency, imported when the catcher starts."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4


class _KeepAsFiles:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        content: bytes = envelope.original_content or envelope.content or b""
        name = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid4().hex[:8]}.eml"
        (self.folder / name).write_bytes(content)
        return "250 Message kept"


class MailCatcher:
    def __init__(self, folder: Path, *, host: str, port: int) -> None:
        self.folder = folder
        self.host = host
        self.port = port
        self._controller: Any = None

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        self.folder.mkdir(parents=True, exist_ok=True)
        controller = Controller(_KeepAsFiles(self.folder), hostname=self.host, port=self.port)
        controller.start()
        self._controller = controller

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
