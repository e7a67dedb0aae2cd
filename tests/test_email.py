"""E-mail: templates and catalogues checked at load, messages in the recipient's language
delivered to a real local SMTP server (aiosmtpd), retried after a temporary refusal on the
worker's (frozen, moved) clock, given up at once after a permanent one."""

from __future__ import annotations

import email
import email.policy
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from services.mailcatcher import MailCatcher
from services.notifications.email.digest import next_digest_at, schedule_digest
from services.notifications.email.queue import enqueue_email
from services.notifications.email.templates import (
    LOCALES_DIR,
    TEMPLATES_DIR,
    CatalogueError,
    EmailTemplates,
    email_templates,
)
from services.notifications.inbox.models import Draft, Recipient, Urgency
from services.notifications.inbox.service import deliver
from shared.clock import FrozenClock
from shared.ports import free_port
from shared.settings import Settings
from tests.conftest import make_settings
from tests.support import Stack, admin_fetchval, eventually, running_stack

# --- templates and catalogues ------------------------------------------------------------------


def test_every_shipped_template_renders_in_every_language_without_client_data() -> None:
    templates = email_templates()
    assert {"en", "es", "fr"} <= set(templates.languages)
    subjects = set()
    for key in templates.keys:
        for language in templates.languages:
            rendered = templates.render(
                key, language, {"link": "https://casework.example/inbox", "unread": 2}
            )
            assert rendered.language == language
            assert "https://casework.example/inbox" in rendered.body
            assert rendered.subject and "{" not in rendered.subject + rendered.body
            subjects.add(rendered.subject)
    # Each language says it its own way.
    assert len(subjects) == len(templates.keys) * len(templates.languages)


def test_a_language_without_a_catalogue_gets_english_and_a_regional_one_its_language() -> None:
    templates = email_templates()
    assert templates.render("crisis", "de", {"link": "L"}).language == "en"
    assert templates.render("crisis", "es-MX", {"link": "L"}).subject.startswith(
        "Casework: urgente"
    )
    # A key without its own template gets the general one.
    assert "nuevo elemento" in templates.render("review.overdue", "es", {"link": "L"}).subject


@pytest.fixture
def copied(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    templates, locales = tmp_path / "templates", tmp_path / "locales"
    shutil.copytree(TEMPLATES_DIR, templates)
    shutil.copytree(LOCALES_DIR, locales)
    yield templates, locales


def test_a_template_missing_a_language_is_an_error_at_load(copied: tuple[Path, Path]) -> None:
    templates, locales = copied
    EmailTemplates(templates, locales)  # as shipped: fine
    (templates / "review.j2").write_text(
        "{% block subject %}{% trans %}A review is overdue{% endtrans %}{% endblock %}"
        "{% block body %}{{ link }}{% endblock %}"
    )
    with pytest.raises(CatalogueError) as raised:
        EmailTemplates(templates, locales)
    message = str(raised.value)
    assert "review.j2:1: not translated into 'es': 'A review is overdue'" in message
    assert "not translated into 'fr'" in message


def test_a_fuzzy_or_empty_translation_counts_as_missing(copied: tuple[Path, Path]) -> None:
    templates, locales = copied
    po = locales / "es" / "LC_MESSAGES" / "messages.po"
    text = po.read_text()
    po.write_text(text.replace('msgstr "Hola:"', 'msgstr ""'))
    with pytest.raises(CatalogueError, match="'Hello,'"):
        EmailTemplates(templates, locales)
    po.write_text(text.replace('msgid "Hello,"', '#, fuzzy\nmsgid "Hello,"'))
    with pytest.raises(CatalogueError, match="'Hello,'"):
        EmailTemplates(templates, locales)


def test_a_template_that_does_not_compile_is_an_error_at_load(copied: tuple[Path, Path]) -> None:
    templates, locales = copied
    (templates / "broken.j2").write_text("{% block subject %}{% if %}{% endblock %}")
    with pytest.raises(CatalogueError, match=r"broken\.j2: does not compile"):
        EmailTemplates(templates, locales)


# --- a real SMTP server --------------------------------------------------------------------------


class Mailbox:
    """What the local SMTP server accepted; recipients whose local part says so are refused
    (`temporary-...`: 451 while `refuse_temporarily` holds; `refused-...`: 550)."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.refuse_temporarily = True

    async def handle_RCPT(  # noqa: N802 (aiosmtpd's hook name)
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address.startswith("refused-"):
            return "550 5.1.1 no such mailbox"
        if address.startswith("temporary-") and self.refuse_temporarily:
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        raw = envelope.original_content or b""
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 Message accepted"

    def to(self, address: str) -> EmailMessage | None:
        return next((m for m in self.messages if m["To"] == address), None)


@pytest.fixture(scope="module")
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture(scope="module")
async def mail_settings(settings: Settings, mailbox: tuple[Mailbox, int]) -> Settings:
    return make_settings(
        settings.database_url,
        settings.kafka_bootstrap,
        audit_checkpoint_file=settings.audit_checkpoint_file,
        smtp_host="127.0.0.1",
        smtp_port=mailbox[1],
        smtp_from="Casework <casework@agency.test>",
        email_poll_seconds=0.05,
        frontend_base_url="https://casework.agency.test",
    )


@pytest.fixture(scope="module")
async def mstack(mail_settings: Settings, clock: FrozenClock) -> AsyncIterator[Stack]:
    async with running_stack(mail_settings, clock=clock) as stack:
        yield stack


async def queue(stack: Stack, clock: FrozenClock, **fields: Any) -> uuid.UUID:
    database = stack.workers["notifications"].database
    async with database.transaction() as connection:
        return await enqueue_email(
            connection,
            recipient_id=fields.get("recipient_id", "alice"),
            organization_id="org-a",
            address=fields["address"],
            language=fields.get("language", "es"),
            template_key=fields.get("template_key", "crisis"),
            parameters={"path": "/inbox/42"},
            now=clock.now(),
        )


async def status(settings: Settings, email_id: uuid.UUID) -> str:
    found: str = await admin_fetchval(
        settings, "SELECT status FROM notifications.email_deliveries WHERE id = $1", email_id
    )
    return found


async def status_becomes(settings: Settings, email_id: uuid.UUID, wanted: str) -> None:
    async def probe() -> bool | None:
        return True if await status(settings, email_id) == wanted else None

    await eventually(probe, timeout=15)


async def test_an_email_reaches_a_real_smtp_server_in_the_recipient_s_language(
    mstack: Stack, mail_settings: Settings, mailbox: tuple[Mailbox, int], clock: FrozenClock
) -> None:
    box, _ = mailbox
    address = f"ana.{uuid.uuid4().hex[:8]}@agency.test"
    email_id = await queue(mstack, clock, address=address, language="es")

    message = await eventually(lambda: _async(box.to(address)), timeout=15)
    assert message["Subject"] == "Casework: urgente, una crisis requiere su atención"
    assert message["Content-Language"] == "es"
    assert message["From"] == "Casework <casework@agency.test>"
    assert message["Message-ID"] == f"<{email_id}@casework>"
    body = message.get_content()
    assert "Actúe ahora" in body
    assert "https://casework.agency.test/inbox/42" in body
    await status_becomes(mail_settings, email_id, "sent")

    french = f"luc.{uuid.uuid4().hex[:8]}@agency.test"
    await queue(mstack, clock, address=french, language="fr", template_key="notification")
    got = await eventually(lambda: _async(box.to(french)), timeout=15)
    assert got["Subject"] == "Casework : un nouvel élément dans votre boîte de réception"


async def _async(value: EmailMessage | None) -> EmailMessage | None:
    return value


async def test_a_temporary_refusal_is_retried_and_a_permanent_one_fails_at_once(
    mstack: Stack, mail_settings: Settings, mailbox: tuple[Mailbox, int], clock: FrozenClock
) -> None:
    box, _ = mailbox
    box.refuse_temporarily = True
    later = f"temporary-{uuid.uuid4().hex[:8]}@agency.test"
    never = f"refused-{uuid.uuid4().hex[:8]}@agency.test"
    later_id = await queue(mstack, clock, address=later, language="en")
    never_id = await queue(mstack, clock, address=never, language="en")

    await status_becomes(mail_settings, later_id, "retrying")
    await status_becomes(mail_settings, never_id, "failed")
    error = await admin_fetchval(
        mail_settings,
        "SELECT last_error FROM notifications.email_deliveries WHERE id = $1",
        never_id,
    )
    assert error.startswith("SMTP 550")
    assert box.to(later) is None

    box.refuse_temporarily = False
    clock.advance(timedelta(seconds=mail_settings.email_retry_base_seconds))
    await status_becomes(mail_settings, later_id, "sent")
    delivered = box.to(later)
    assert delivered is not None and delivered["Subject"].startswith("Casework: urgent")
    attempts = await admin_fetchval(
        mail_settings, "SELECT attempts FROM notifications.email_deliveries WHERE id = $1", later_id
    )
    assert attempts == 2


# --- the channel and the digest ----------------------------------------------------------------


def draft(urgency: Urgency, *, key: str = "case.assigned", source: str | None = None) -> Draft:
    return Draft(
        kind="case_assigned",
        subject_type="case",
        subject_id=str(uuid.uuid4()),
        client_id=uuid.uuid4(),
        urgency=urgency,
        message_key=key,
        parameters={},
        rule_id="test",
        source_event_id=source or str(uuid.uuid4()),
        channels=("inbox", "email"),
    )


async def test_a_notification_on_the_email_channel_is_mailed_with_a_link_and_no_client_data(
    mstack: Stack, mail_settings: Settings, mailbox: tuple[Mailbox, int], clock: FrozenClock
) -> None:
    box, _ = mailbox
    address = f"marta.{uuid.uuid4().hex[:8]}@agency.test"
    recipient = Recipient(user_id="marta", organization_id="org-a", language="es", email=address)
    crisis = draft(Urgency.CRISIS)
    async with mstack.workers["notifications"].database.transaction() as connection:
        notification = await deliver(connection, recipient=recipient, draft=crisis, now=clock.now())
    assert notification is not None

    message = await eventually(lambda: _async(box.to(address)), timeout=15)
    assert message["Subject"] == "Casework: urgente, una crisis requiere su atención"
    body = message.get_content()
    assert f"https://casework.agency.test/inbox/{notification.id}" in body
    assert str(crisis.client_id) not in body and crisis.subject_id not in body

    # Without an address in the preferences: the inbox only, nothing queued.
    quiet = Recipient(user_id="noah", organization_id="org-a", language="en", email=None)
    async with mstack.workers["notifications"].database.transaction() as connection:
        stored = await deliver(
            connection, recipient=quiet, draft=draft(Urgency.NORMAL), now=clock.now()
        )
    assert stored is not None
    queued = await admin_fetchval(
        mail_settings,
        "SELECT count(*) FROM notifications.email_deliveries WHERE notification_id = $1",
        str(stored.id),
    )
    assert queued == 0


def test_the_next_digest_is_the_chosen_hour_in_the_user_s_time_zone() -> None:
    after = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
    # 08:00 in Madrid on the 29th, the day summer time starts there: 06:00 UTC.
    assert next_digest_at(after, hour=8, timezone="Europe/Madrid") == datetime(
        2026, 3, 29, 6, 0, tzinfo=UTC
    )
    assert next_digest_at(after, hour=13, timezone="UTC") == datetime(2026, 3, 28, 13, tzinfo=UTC)
    assert next_digest_at(after, hour=12, timezone="UTC") == datetime(2026, 3, 29, 12, tzinfo=UTC)


async def test_the_daily_digest_counts_unread_items_since_the_last_one(
    mstack: Stack, mail_settings: Settings, mailbox: tuple[Mailbox, int], clock: FrozenClock
) -> None:
    box, _ = mailbox
    user = f"dana-{uuid.uuid4().hex[:6]}"
    address = f"{user}@agency.test"
    recipient = Recipient(user_id=user, organization_id="org-a", language="fr", email=None)
    database = mstack.workers["notifications"].database
    async with database.transaction() as connection:
        due = await schedule_digest(
            connection, organization_id="org-a", user_id=user, email=address, language="fr",
            hour=(clock.now().hour + 1) % 24, timezone="UTC", now=clock.now(),
        )  # fmt: skip
    clock.advance(timedelta(seconds=1))  # what arrives from now on is "since the last digest"
    async with database.transaction() as connection:
        for _ in range(3):
            await deliver(
                connection, recipient=recipient, draft=draft(Urgency.NORMAL), now=clock.now()
            )
        await connection.execute(
            "UPDATE notifications SET read_at = $2 WHERE recipient_id = $1 AND id = "
            "(SELECT id FROM notifications WHERE recipient_id = $1 LIMIT 1)",
            user,
            clock.now(),
        )
    assert box.to(address) is None
    clock.set(due + timedelta(seconds=1))

    message = await eventually(lambda: _async(box.to(address)), timeout=15)
    assert message["Subject"] == "Casework : 2 éléments non lus"
    assert "https://casework.agency.test/inbox" in message.get_content()
    tomorrow = await admin_fetchval(
        mail_settings,
        "SELECT due_at FROM notifications.timers WHERE kind = 'email.digest' "
        "AND key LIKE $1 AND fired_at IS NULL",
        f"org-a:{user}:%",
    )
    assert tomorrow == due + timedelta(days=1)


async def test_make_run_s_mail_catcher_keeps_each_message_as_a_file(tmp_path: Path) -> None:
    catcher = MailCatcher(tmp_path / "mail", host="127.0.0.1", port=free_port())
    catcher.start()
    try:
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = "a@x.test", "b@x.test", "Hola"
        message.set_content("Abra su bandeja de entrada")
        await aiosmtplib.send(message, hostname="127.0.0.1", port=catcher.port, timeout=5)
    finally:
        catcher.stop()
    (kept,) = list((tmp_path / "mail").glob("*.eml"))
    parsed = email.message_from_bytes(kept.read_bytes(), policy=email.policy.default)
    assert parsed["Subject"] == "Hola"
