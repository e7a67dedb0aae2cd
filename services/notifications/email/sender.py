"""The worker's e-mail sender: claims due messages, renders them in the recipient's language,
sends them with aiosmtplib, marks them sent, retrying (backoff with jitter) or failed.

Claimed in a short transaction (`FOR UPDATE SKIP LOCKED`) whose lease moves next_attempt_at
past the attempt's timeout, so no connection is held while talking to the SMTP server and a
worker that dies mid-send leaves the message due again. A permanent refusal (a 5xx answer) fails
the message at once; anything else is retried up to `email_max_attempts`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any
from uuid import UUID

import aiosmtplib

from services.notifications.email.queue import WAKE_CHANNEL
from services.notifications.email.templates import EmailTemplates, email_templates
from services.notifications.webhooks.backoff import retry_delay
from shared.spec import LoopContext

log = logging.getLogger(__name__)

BATCH = 20
CONCURRENCY = 4
MAX_ERROR_LENGTH = 500

_CLAIM = """
WITH picked AS (
    SELECT id FROM email_deliveries
    WHERE status IN ('queued', 'retrying') AND next_attempt_at <= $1
    ORDER BY next_attempt_at, created_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE email_deliveries e SET next_attempt_at = $3
FROM picked WHERE e.id = picked.id
RETURNING e.id, e.address, e.language, e.template_key, e.parameters, e.attempts
"""

_RECORD = """
UPDATE email_deliveries SET status = $2, attempts = attempts + 1, next_attempt_at = $3,
    last_error = $4, sent_at = $5
WHERE id = $1
"""


@dataclass(frozen=True)
class QueuedEmail:
    id: UUID
    address: str
    language: str
    template_key: str
    parameters: dict[str, Any]
    attempts: int


class EmailSender:
    def __init__(self, context: LoopContext, templates: EmailTemplates | None = None) -> None:
        self.database = context.database
        self.settings = context.settings
        self.clock = context.clock
        self.templates = templates or email_templates()
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(CONCURRENCY)

    async def run(self) -> None:
        listener = await self.database.connect_dedicated()
        await listener.add_listener(WAKE_CHANNEL, lambda *_: self._wake.set())
        try:
            while True:
                claimed = await self.claim()
                if claimed:
                    await asyncio.gather(*(self._send_one(email) for email in claimed))
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.settings.email_poll_seconds)
                self._wake.clear()
        finally:
            with contextlib.suppress(Exception):
                await listener.close(timeout=2)

    async def claim(self) -> list[QueuedEmail]:
        now = self.clock.now()
        lease = now + timedelta(seconds=self.settings.smtp_timeout_seconds * 2 + 60)
        async with self.database.transaction() as connection:
            rows = await connection.fetch(_CLAIM, now, BATCH, lease)
        return [QueuedEmail(**dict(row)) for row in rows]

    def message(self, email: QueuedEmail) -> EmailMessage:
        # The link is built here, from the setting: a queued message follows a changed URL.
        path = str(email.parameters.get("path", "/inbox"))
        parameters = {
            **email.parameters,
            "link": self.settings.frontend_base_url.rstrip("/") + path,
        }
        rendered = self.templates.render(email.template_key, email.language, parameters)
        message = EmailMessage()
        message["From"] = self.settings.smtp_from
        message["To"] = email.address
        message["Subject"] = rendered.subject
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = f"<{email.id}@casework>"
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(rendered.body)
        message["Content-Language"] = rendered.language  # after set_content, which clears Content-*
        return message

    async def _send_one(self, email: QueuedEmail) -> None:
        async with self._slots:
            error: str | None = None
            permanent = False
            try:
                await self.send(self.message(email))
            except aiosmtplib.SMTPRecipientsRefused as refused:  # our one recipient
                answers = refused.recipients
                permanent = bool(answers) and all(500 <= r.code < 600 for r in answers)
                error = "; ".join(f"SMTP {r.code}: {r.message}" for r in answers) or str(refused)
            except aiosmtplib.SMTPResponseException as refused:
                permanent = 500 <= refused.code < 600
                error = f"SMTP {refused.code}: {refused.message}"
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as failure:
                error = f"{type(failure).__name__}: {failure}"
            except Exception as failure:  # a template that cannot render: never sent
                permanent = True
                error = f"{type(failure).__name__}: {failure}"
            await self.record(email, error=error, permanent=permanent, at=self.clock.now())

    async def send(self, message: EmailMessage) -> None:
        settings = self.settings
        await aiosmtplib.send(
            message,
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_user,
            password=settings.smtp_password,
            use_tls=settings.smtp_security == "tls",
            start_tls=settings.smtp_security == "starttls",
            timeout=settings.smtp_timeout_seconds,
        )

    async def record(
        self, email: QueuedEmail, *, error: str | None, permanent: bool, at: datetime
    ) -> None:
        attempts = email.attempts + 1
        next_at: datetime | None = None
        if error is None:
            status = "sent"
        elif permanent or attempts >= self.settings.email_max_attempts:
            status = "failed"
            log.warning("e-mail given up", extra={"email_id": str(email.id), "error": error})
        else:
            status = "retrying"
            next_at = at + retry_delay(
                attempts,
                base_seconds=self.settings.email_retry_base_seconds,
                max_seconds=self.settings.webhook_retry_max_seconds,
            )
        async with self.database.transaction() as connection:
            await connection.execute(
                _RECORD,
                email.id,
                status,
                next_at,
                error[:MAX_ERROR_LENGTH] if error else None,
                at if status == "sent" else None,
            )


async def run_email_sender(context: LoopContext) -> None:
    await EmailSender(context).run()
