"""Settings for every process, read from CASEWORK_* environment variables and a `.env` file."""

from __future__ import annotations

from typing import Literal
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CASEWORK_", env_file=".env", extra="ignore")

    # Administrative connection: used only to provision schemas and roles and to run migrations.
    database_url: str = "postgresql://postgres:casework-dev@127.0.0.1:55432/casework"
    # The connection a service runs with. Unset: derived from database_url with the service's
    # own role (`<service>_svc`) and service_db_password. Production sets it per service.
    service_database_url: str | None = None
    # Development default only; compose and production give each service its own secret.
    service_db_password: str = "casework-dev"
    database_pool_size: int = Field(default=10, ge=1, le=200)
    # How long a request waits for a pooled connection before it is answered 503 with
    # Retry-After; and how long every wait must have failed before liveness fails.
    database_acquire_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    liveness_starved_seconds: float = Field(default=30.0, gt=0)

    kafka_bootstrap: str = "127.0.0.1:59092"
    # Real Kafka supports the idempotent producer; the embedded Tansu broker does not.
    kafka_idempotent_producer: bool = False
    # How long the broker may hold a consumer's fetch when there is nothing new. Real Kafka
    # answers as soon as data arrives, so 500 is right there; the embedded Tansu waits the
    # whole time, so it needs a short wait to keep event latency in milliseconds.
    kafka_fetch_max_wait_ms: int = Field(default=20, ge=1, le=10_000)
    kafka_topic_partitions: int = Field(default=3, ge=1)
    kafka_replication_factor: int = Field(default=1, ge=1)

    http_host: str = "127.0.0.1"
    # Service n (intake 1, planning 2, referrals 3, notifications 4) serves its API on
    # http_port_base + n and its worker's health and metrics on worker_port_base + n.
    http_port_base: int = Field(default=8000, ge=0, le=65000)
    worker_port_base: int = Field(default=9000, ge=0, le=65000)
    max_request_body_bytes: int = Field(default=64 * 1024, ge=1024)

    outbox_poll_seconds: float = Field(default=2.0, gt=0)
    outbox_batch_size: int = Field(default=500, ge=1)
    outbox_retention_hours: float = Field(default=72.0, gt=0)
    consumer_max_attempts: int = Field(default=5, ge=1)
    consumer_retry_base_seconds: float = Field(default=0.2, gt=0)

    # Authentication. "hs256": tokens signed with jwt_secret (development, `make token`).
    # "jwks": RS256/ES256 tokens verified against the issuer's keys at jwks_url (OpenID Connect).
    auth_mode: Literal["hs256", "jwks"] = "hs256"
    jwt_secret: str = "casework-development-secret-not-for-production"
    jwt_issuer: str = "casework-dev"
    jwt_audience: str = "casework"
    jwks_url: str | None = None
    jwt_leeway_seconds: int = Field(default=30, ge=0, le=300)
    # Tokens valid for longer (exp - iat, or exp - now) are refused: a leaked token must not
    # outlive a working day. Identity providers issue short access tokens and refresh them.
    jwt_max_lifetime_seconds: int = Field(default=12 * 3600, ge=60)

    # Rate limits (the `limits` notation: "50/second;1000/minute"; empty: no limit), counted in
    # each API process's memory, so per instance: n replicas admit n times the rate. Per source
    # address for every request (before any routing), per principal (subject and organisation)
    # once its token is verified, and a tighter one per source for attempts without a valid
    # token, checked before any database work. Behind a proxy the source is the address the
    # proxy forwards (uvicorn --proxy-headers with --forwarded-allow-ips of the proxy only).
    rate_limit_per_source: str = "200/second;3000/minute"
    rate_limit_per_principal: str = "50/second;1500/minute"
    rate_limit_unauthenticated: str = "10/second;60/minute"

    log_level: str = "INFO"
    # `make run`: start the embedded PostgreSQL / broker on the ports of the URLs above, with
    # data under data_dir. Set false to use an external server at those URLs instead.
    embedded_postgres: bool = True
    embedded_broker: bool = True
    data_dir: str = ".casework"

    @property
    def kafka_bootstrap_servers(self) -> list[str]:
        return [server.strip() for server in self.kafka_bootstrap.split(",") if server.strip()]

    def database_url_for(self, service: str) -> str:
        """The DSN a service's API and worker connect with."""
        if self.service_database_url:
            return self.service_database_url
        return with_credentials(self.database_url, service_role(service), self.service_db_password)


def service_role(service: str) -> str:
    """The login role a service runs as; it owns nothing and may only touch its own schema."""
    return f"{service}_svc"


def owner_role(service: str) -> str:
    """The role that owns a service's schema and its tables (migrations run as it)."""
    return f"{service}_owner"


def with_credentials(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}" + (
        f":{parts.port}" if parts.port else ""
    )
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/") or "postgres"
