"""Webhook signing secrets at rest: sealed (AES-256-GCM) under a key notifications holds,
bound to their subscription. Unit tests of sealing, then the table, the idempotent replay and
the re-sealing at the sender's start on the real database. Deliveries signed with the
unsealed secrets are verified end to end in tests/test_webhooks.py."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import secrets
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.notifications.main import SPEC
from services.notifications.webhooks.secrets_at_rest import (
    DEVELOPMENT_KEY,
    DEVELOPMENT_KEY_ID,
    reseal,
    seal,
    unseal,
    webhook_secret_keys,
)
from services.notifications.webhooks.sender import WebhookSender
from services.notifications.webhooks.signing import new_secret
from services.registry import TOPICS
from shared.clock import SYSTEM_CLOCK
from shared.crypto.sealed import SealingKeyError, SealingKeys, UnsealError
from shared.http.app import create_app, service_database
from shared.settings import Settings
from shared.spec import LoopContext
from shared.worker import Worker
from tests.conftest import make_settings
from tests.support import User, bearer, eventually

AGENCY = User("agency-s", ("integration",), "org-s", None)
OLD_KEY = base64.b64encode(secrets.token_bytes(32)).decode()
NEW_KEY = base64.b64encode(secrets.token_bytes(32)).decode()


def ring(current_id: str, key: str, retired: dict[str, str] | None = None) -> SealingKeys:
    return webhook_secret_keys(
        Settings(
            _env_file=None,
            webhook_secrets_key=key,
            webhook_secrets_key_id=current_id,
            webhook_secrets_retired_keys=retired or {},
        )
    )


# --- sealing (no database) ----------------------------------------------------------------


def test_a_sealed_secret_names_its_key_and_hides_the_secret() -> None:
    keys = ring("2026-11", OLD_KEY)
    secret, row = new_secret(), uuid.uuid4()
    stored = seal(keys, secret, subscription_id=row)
    assert stored.startswith("v1:2026-11:")
    assert secret not in stored and secret.removeprefix("whsec_") not in stored
    assert seal(keys, secret, subscription_id=row) != stored  # a fresh nonce each time
    assert unseal(keys, stored, subscription_id=row) == secret


def test_a_tampered_or_moved_ciphertext_does_not_unseal() -> None:
    keys = ring("k1", OLD_KEY)
    row, other = uuid.uuid4(), uuid.uuid4()
    stored = seal(keys, new_secret(), subscription_id=row)
    with pytest.raises(UnsealError, match="another row"):
        unseal(keys, stored, subscription_id=other)
    prefix, encoded = stored.rsplit(":", 1)
    raw = bytearray(base64.b64decode(encoded))
    for position in (0, 12, len(raw) - 1):  # the nonce, the ciphertext, the tag
        flipped = bytearray(raw)
        flipped[position] ^= 0x01
        tampered = f"{prefix}:{base64.b64encode(bytes(flipped)).decode()}"
        with pytest.raises(UnsealError):
            unseal(keys, tampered, subscription_id=row)
    # The key id is bound too: relabelled as another key of the ring, it does not open.
    both = ring("k2", NEW_KEY, {"k1": OLD_KEY})
    relabelled = stored.replace("v1:k1:", "v1:k2:", 1)
    with pytest.raises(UnsealError):
        unseal(both, relabelled, subscription_id=row)
    for broken in ("v1:k1:not base64!", "v1:k1:" + base64.b64encode(b"short").decode(), "v1:k1"):
        with pytest.raises(UnsealError):
            unseal(keys, broken, subscription_id=row)


def test_a_retired_key_still_unseals_and_an_unknown_one_is_named() -> None:
    row, secret = uuid.uuid4(), new_secret()
    stored = seal(ring("k1", OLD_KEY), secret, subscription_id=row)
    rotated = ring("k2", NEW_KEY, {"k1": OLD_KEY})
    assert unseal(rotated, stored, subscription_id=row) == secret
    assert not rotated.is_current(stored)
    assert seal(rotated, secret, subscription_id=row).startswith("v1:k2:")
    with pytest.raises(UnsealError, match="'k1', which is not configured"):
        unseal(ring("k2", NEW_KEY), stored, subscription_id=row)


def test_a_secret_stored_before_sealing_is_read_as_it_is() -> None:
    secret = new_secret()
    assert unseal(ring("k1", OLD_KEY), secret, subscription_id=uuid.uuid4()) == secret


def test_development_mode_has_a_key_and_keys_must_be_32_bytes_of_base64() -> None:
    development = webhook_secret_keys(Settings(_env_file=None))
    assert development.current_id == DEVELOPMENT_KEY_ID
    assert development.keys[DEVELOPMENT_KEY_ID] == DEVELOPMENT_KEY.digest()
    urlsafe = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    assert len(ring("k1", urlsafe).keys["k1"]) == 32
    with pytest.raises(SealingKeyError, match="must be 32 bytes"):
        ring("k1", base64.b64encode(b"sixteen bytes!!!").decode())
    with pytest.raises(SealingKeyError, match="not base64"):
        ring("k1", "not*base64")
    with pytest.raises(SealingKeyError, match="retired key 'k0'"):
        ring("k1", NEW_KEY, {"k0": "short"})
    with pytest.raises(SealingKeyError, match="not a key id"):
        ring("k1", NEW_KEY, {"a:b": OLD_KEY})
    with pytest.raises(SealingKeyError, match="names two different keys"):
        ring("k1", NEW_KEY, {"k1": OLD_KEY})


def test_production_refuses_to_start_notifications_without_a_real_key() -> None:
    pem = (
        Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    production = Settings(
        _env_file=None,
        auth_mode="jwks",
        jwks_url="https://idp.example/.well-known/jwks.json",
        audit_hmac_key=secrets.token_urlsafe(32),
        audit_checkpoint_private_key=pem,
    )
    with pytest.raises(SealingKeyError, match="CASEWORK_WEBHOOK_SECRETS_KEY is required"):
        create_app(SPEC, production, topics=TOPICS)
    with pytest.raises(SealingKeyError, match="CASEWORK_WEBHOOK_SECRETS_KEY is required"):
        Worker(SPEC, production, topics=TOPICS, serve_http=False)
    development_key = base64.b64encode(DEVELOPMENT_KEY.digest()).decode()
    with pytest.raises(SealingKeyError, match="is the development key"):
        webhook_secret_keys(production.model_copy(update={"webhook_secrets_key": development_key}))
    configured = production.model_copy(
        update={"webhook_secrets_key": NEW_KEY, "webhook_secrets_key_id": "2026-11"}
    )
    create_app(SPEC, configured, topics=TOPICS)
    Worker(SPEC, configured, topics=TOPICS, serve_http=False)


# --- on the database ----------------------------------------------------------------------


def keyed(settings: Settings, key_id: str, key: str, retired: dict[str, str]) -> Settings:
    return make_settings(
        settings.database_url,
        settings.kafka_bootstrap,
        audit_checkpoint_file=settings.audit_checkpoint_file,
        webhook_allow_http=True,
        webhook_allow_private_targets=True,
        webhook_poll_seconds=0.05,
        webhook_secrets_key=key,
        webhook_secrets_key_id=key_id,
        webhook_secrets_retired_keys=retired,
    )


@pytest.fixture(scope="module")
def old_settings(settings: Settings) -> Settings:
    return keyed(settings, "old", OLD_KEY, {})


@pytest.fixture(scope="module")
def new_settings(settings: Settings) -> Settings:
    return keyed(settings, "new", NEW_KEY, {"old": OLD_KEY})


@pytest.fixture(scope="module")
async def api(old_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(SPEC, old_settings, topics=TOPICS)
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app),
            base_url="http://notifications.test",
            headers=bearer(old_settings, AGENCY),
        ) as client,
    ):
        yield client


@pytest.fixture(scope="module")
async def admin(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(
        settings.database_url, server_settings={"search_path": "notifications"}
    )
    try:
        yield connection
        # Other modules share this database: nothing subscribed here may go on receiving.
        await connection.execute(
            "UPDATE webhook_subscriptions SET deleted_at = now() WHERE organization_id = $1",
            AGENCY.organization_id,
        )
    finally:
        await connection.close()


async def subscribe(api: httpx.AsyncClient, **headers: str) -> dict[str, Any]:
    response = await api.post(
        "/v1/webhooks",
        json={
            "url": "http://127.0.0.1:9/hooks",
            "event_types": ["org.casework.intake.client.registered.v1"],
        },
        headers=headers,
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def stored(admin: asyncpg.Connection, webhook_id: str) -> asyncpg.Record:
    row = await admin.fetchrow(
        "SELECT secret, previous_secret FROM webhook_subscriptions WHERE id = $1",
        uuid.UUID(webhook_id),
    )
    assert row is not None
    return row


async def test_the_table_holds_only_sealed_secrets(
    api: httpx.AsyncClient, admin: asyncpg.Connection, old_settings: Settings
) -> None:
    keys = webhook_secret_keys(old_settings)
    webhook = await subscribe(api)
    row = await stored(admin, webhook["id"])
    assert row["secret"].startswith("v1:old:") and webhook["secret"] not in row["secret"]
    webhook_id = uuid.UUID(webhook["id"])
    assert unseal(keys, row["secret"], subscription_id=webhook_id) == webhook["secret"]

    rotated = await api.post(f"/v1/webhooks/{webhook['id']}/secret-rotation", json={})
    assert rotated.status_code == 200, rotated.text
    row = await stored(admin, webhook["id"])
    assert all(value.startswith("v1:old:") for value in (row["secret"], row["previous_secret"]))
    dump = row["secret"] + row["previous_secret"]
    assert webhook["secret"] not in dump and rotated.json()["secret"] not in dump
    assert unseal(keys, row["secret"], subscription_id=webhook_id) == rotated.json()["secret"]
    assert unseal(keys, row["previous_secret"], subscription_id=webhook_id) == webhook["secret"]
    # Read back, a subscription never shows its secret.
    read = await api.get(f"/v1/webhooks/{webhook['id']}")
    assert read.status_code == 200 and "secret" not in read.json()


async def test_an_idempotent_replay_shows_the_secret_but_stores_it_sealed(
    api: httpx.AsyncClient, admin: asyncpg.Connection
) -> None:
    key = str(uuid.uuid4())
    first = await subscribe(api, **{"Idempotency-Key": key})
    again = await subscribe(api, **{"Idempotency-Key": key})
    assert again == first
    remembered = await admin.fetchval(
        "SELECT response_body::text FROM idempotency_keys WHERE response_body->>'id' = $1",
        first["id"],
    )
    assert remembered is not None and first["secret"] not in remembered


@contextlib.asynccontextmanager
async def running_sender(settings: Settings) -> AsyncIterator[None]:
    database = service_database(SPEC, settings)
    await database.connect()
    context = LoopContext(
        service=SPEC.name, database=database, settings=settings, clock=SYSTEM_CLOCK
    )
    task = asyncio.create_task(WebhookSender(context).run())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await database.close()


async def test_clear_and_retired_secrets_are_resealed_when_the_sender_starts(
    api: httpx.AsyncClient,
    admin: asyncpg.Connection,
    new_settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    legacy, rotated_legacy, retired = [await subscribe(api) for _ in range(3)]
    # Rows as written before sealing: the secrets in clear.
    clear_previous = new_secret()
    await admin.execute(
        "UPDATE webhook_subscriptions SET secret = $2 WHERE id = $1",
        uuid.UUID(legacy["id"]),
        legacy["secret"],
    )
    await admin.execute(
        "UPDATE webhook_subscriptions SET secret = $2, previous_secret = $3 WHERE id = $1",
        uuid.UUID(rotated_legacy["id"]),
        rotated_legacy["secret"],
        clear_previous,
    )
    keys = webhook_secret_keys(new_settings)
    caplog.set_level("INFO", logger="services.notifications.webhooks.secrets_at_rest")
    async with running_sender(new_settings):

        async def resealed() -> bool | None:
            rows = [await stored(admin, w["id"]) for w in (legacy, rotated_legacy, retired)]
            return all(r["secret"].startswith("v1:new:") for r in rows) or None

        await eventually(resealed, timeout=15)
    expected = {
        legacy["id"]: (legacy["secret"], None),
        rotated_legacy["id"]: (rotated_legacy["secret"], clear_previous),
        retired["id"]: (retired["secret"], None),
    }
    for webhook_id, (secret, previous) in expected.items():
        row = await stored(admin, webhook_id)
        subscription_id = uuid.UUID(webhook_id)
        assert unseal(keys, row["secret"], subscription_id=subscription_id) == secret
        if previous is None:
            assert row["previous_secret"] is None
        else:
            assert row["previous_secret"].startswith("v1:new:")
            assert unseal(keys, row["previous_secret"], subscription_id=subscription_id) == previous
    counts = [r for r in caplog.records if r.getMessage().startswith("webhook secrets re-sealed")]
    assert counts and vars(counts[0])["clear"] >= 3 and vars(counts[0])["retired"] >= 1

    # Nothing left to do: a second pass re-seals nothing.
    again = await reseal(admin, keys)
    assert (again.clear, again.retired) == (0, 0)
