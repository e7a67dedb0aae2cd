"""Settings for every process, read from CASEWORK_* environment variables and a `.env` file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from pydantic import Field, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

ENV_PREFIX = "CASEWORK_"

# Settings that hold a secret (or a URL that may carry one). Each may instead be read from a
# file named by CASEWORK_<NAME>_FILE (Docker and Kubernetes secrets), never both.
SECRET_SETTINGS = (
    "database_url",
    "database_password",
    "service_database_url",
    "service_db_password",
    "jwt_secret",
    "kafka_sasl_password",
    "audit_hmac_key",
    "audit_checkpoint_private_key",
    "webhook_secrets_key",
    "smtp_password",
)


class SecretSettingError(ValueError):
    """A secret setting was given twice, or its file cannot be read."""


class SecretFilesSource(PydanticBaseSettingsSource):
    """CASEWORK_<NAME>_FILE for every secret setting: the file's content, without the trailing
    newline. Setting both CASEWORK_<NAME> and CASEWORK_<NAME>_FILE in the environment is an error.
    """

    def __init__(
        self, settings_cls: type[BaseSettings], environ: dict[str, str] | None = None
    ) -> None:
        super().__init__(settings_cls)
        source = os.environ if environ is None else environ
        self.environ = {key.upper(): value for key, value in source.items()}

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self().get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name in SECRET_SETTINGS:
            variable = f"{ENV_PREFIX}{name.upper()}"
            path = self.environ.get(f"{variable}_FILE")
            if not path:
                continue
            if variable in self.environ:
                raise SecretSettingError(f"set {variable} or {variable}_FILE, not both")
            values[name] = read_secret_file(path, f"{variable}_FILE")
        return values


def read_secret_file(path: str, variable: str) -> str:
    try:
        content = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise SecretSettingError(f"{variable}: cannot read {path}: {error.strerror}") from None
    # Editors and `echo` end the file with a newline; the secret does not.
    value = content.removesuffix("\n").removesuffix("\r")
    if not value:
        raise SecretSettingError(f"{variable}: {path} is empty")
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=".env", extra="ignore")

    # Administrative connection: used only to provision schemas and roles and to run migrations.
    database_url: str = "postgresql://postgres:casework-dev@127.0.0.1:55432/casework"
    # Set: the password of database_url's user, replacing any in the URL (so the URL itself need
    # not be secret and the password can come from a file: CASEWORK_DATABASE_PASSWORD_FILE).
    database_password: str | None = None
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
    # Authentication to the broker. PLAINTEXT for the embedded broker (it has no SASL); the
    # compose stack gives each service its own SCRAM-SHA-512 principal (docs/operations.md).
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = None
    # SASL_SSL: the CA bundle that signed the broker's certificate (unset: the system's).
    kafka_ssl_cafile: str | None = None

    http_host: str = "127.0.0.1"
    # Service n (intake 1, planning 2, referrals 3, notifications 4) serves its API on
    # http_port_base + n and its worker's health and metrics on worker_port_base + n.
    http_port_base: int = Field(default=8000, ge=0, le=65000)
    worker_port_base: int = Field(default=9000, ge=0, le=65000)
    max_request_body_bytes: int = Field(default=64 * 1024, ge=1024)
    # Bulk uploads (a service's `bulk_upload_paths`, e.g. a directory import), from callers
    # with a bearer token only.
    max_bulk_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    # The path prefix a reverse proxy serves this API under (compose: /intake, ...), so /docs
    # and the OpenAPI servers point at the right place. Empty when served at the root.
    http_root_path: str = Field(default="", pattern=r"^(/[A-Za-z0-9._~-]+)*$")
    # Browser origins allowed to call the APIs (CORS), e.g. ["http://localhost:5173"]; as an
    # environment variable a JSON list. Empty: no cross-origin access.
    cors_allowed_origins: list[str] = Field(default_factory=list)

    # How long an Idempotency-Key (and the response it replays) is kept.
    idempotency_ttl_hours: float = Field(default=24.0, gt=0, le=24 * 30)
    # Peers whose X-Forwarded-For / X-Forwarded-Proto the API believes (the gateway): comma-
    # separated addresses or networks (CIDR). Empty: nobody's; the audit trail then records
    # the connecting peer's address, which a client cannot forge.
    trusted_proxies: str = ""

    outbox_poll_seconds: float = Field(default=2.0, gt=0)
    outbox_batch_size: int = Field(default=500, ge=1)
    outbox_retention_hours: float = Field(default=72.0, gt=0)
    consumer_max_attempts: int = Field(default=5, ge=1)
    consumer_retry_base_seconds: float = Field(default=0.2, gt=0)
    # How long one message may be retried in place for transient errors (database or network
    # away) before it is dead-lettered with the error: a stall is bounded, and visible
    # meanwhile as casework_consumer_stalled_seconds.
    consumer_max_transient_seconds: float = Field(default=300.0, gt=0)

    # Durable timers (shared/timers): the worker looks for due timers at least this often (and
    # at once when a schedule commits); claims at most timer_batch_size per transaction; after
    # a handler fails it retries at base * 2^(attempts - 1) seconds (at most an hour), parking
    # the timer after timer_max_attempts; fired timers are kept timer_retention_hours.
    timer_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    timer_batch_size: int = Field(default=500, ge=1, le=10_000)
    timer_max_attempts: int = Field(default=8, ge=1)
    timer_retry_base_seconds: float = Field(default=5.0, gt=0)
    timer_retention_hours: float = Field(default=168.0, gt=0)

    # Relay leadership. The leader's session sends TCP keepalives, so PostgreSQL releases the
    # advisory lock of a leader whose host vanished after idle + interval * count seconds; and
    # before each batch the leader checks it still holds the lock, giving up when the check
    # fails or takes longer than relay_lock_check_seconds (a stale leader stops publishing).
    relay_keepalive_idle_seconds: int = Field(default=10, ge=1)
    relay_keepalive_interval_seconds: int = Field(default=5, ge=1)
    relay_keepalive_count: int = Field(default=3, ge=1)
    relay_lock_check_seconds: float = Field(default=2.0, gt=0)
    # How often the relay checks that the declared topics exist and the broker epoch is the
    # one it published under (a broker that lost its log is healed by replaying the outbox);
    # consumers check the epoch as often, and rewind their partitions when it changed.
    relay_broker_check_seconds: float = Field(default=5.0, gt=0)

    # /health/ready answers within this many seconds whatever its dependencies do.
    readiness_timeout_seconds: float = Field(default=0.8, gt=0, le=10)

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

    # The audit trail. Each row's chain hash is an HMAC-SHA256 under audit_hmac_key, computed
    # in the service, so a database superuser (who never sees the key) cannot re-chain rows
    # after deleting or editing some. Rows record the id of the key that sealed them; after a
    # rotation, keep the old keys (id -> key, a JSON object in the environment) so
    # `casework audit-verify` can still check the rows they sealed. Unset in hs256 mode: a
    # development key; jwks (production) mode refuses to start without a real one.
    audit_hmac_key: str | None = None
    audit_hmac_key_id: str = Field(default="k1", pattern=r"^[A-Za-z0-9._-]{1,32}$")
    audit_hmac_retired_keys: dict[str, str] = Field(default_factory=dict)
    # Signed checkpoints of every chain head: the worker signs them with this Ed25519 private
    # key (PEM), publishes them on the audit topic and appends them to audit_checkpoint_file
    # (JSON lines; unset: <data_dir>/audit-checkpoints.jsonl). Verifiers hold only the public
    # key (PEM; unset: derived from the private key). Unset private key in hs256 mode: a
    # development key; jwks mode refuses to start the worker without a real one.
    audit_checkpoint_private_key: str | None = None
    audit_checkpoint_public_key: str | None = None
    audit_checkpoint_file: str | None = None
    audit_checkpoint_seconds: float = Field(default=60.0, gt=0)

    # Webhooks for agency systems (notifications). Targets must be https and resolve to public
    # addresses; development may allow http, and tests (a receiver on this machine) private
    # addresses. Checked when subscribing and again at every delivery (DNS rebinding).
    webhook_allow_http: bool = False
    webhook_allow_private_targets: bool = False
    # One attempt (name resolution, connection, request, status line) may take this long.
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    # Requests in flight per worker, and per subscription (a slow subscriber holds only its own).
    webhook_concurrency: int = Field(default=64, ge=1, le=1000)
    webhook_per_subscription_concurrency: int = Field(default=8, ge=1, le=1000)
    # Failed attempts are retried with exponential backoff (first pause this long, doubling, at
    # most webhook_retry_max_seconds, with jitter) for this long after the first attempt; then
    # the delivery fails, the subscription is disabled and its creator told.
    webhook_retry_base_seconds: float = Field(default=5.0, gt=0)
    webhook_retry_max_seconds: float = Field(default=3600.0, gt=0)
    webhook_retry_window_hours: float = Field(default=24.0, gt=0, le=24 * 7)
    # How often the sender looks for due deliveries when nothing woke it (NOTIFY wakes it early).
    webhook_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    # Webhook signing secrets are stored sealed (AES-256-GCM) under webhook_secrets_key: 32
    # random bytes, base64 (`openssl rand -base64 32`), held by notifications, never by the
    # database. After a rotation keep the old keys (id -> key, a JSON object in the
    # environment) until the worker has re-sealed every secret under the new one. Unset in
    # hs256 mode: a development key; jwks (production) mode refuses to start without a real one.
    webhook_secrets_key: str | None = None
    webhook_secrets_key_id: str = Field(default="k1", pattern=r"^[A-Za-z0-9._-]{1,32}$")
    webhook_secrets_retired_keys: dict[str, str] = Field(default_factory=dict)

    # E-mail (notifications): an SMTP server, and the frontend a message links to (messages
    # carry no client data, only a link to the record there).
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=1025, ge=1, le=65535)
    # "starttls": upgrade after connecting (port 587); "tls": TLS from the start (465); "none":
    # plain (a local catcher only).
    smtp_security: Literal["none", "starttls", "tls"] = "none"
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_from: str = "Casework <casework@localhost>"
    smtp_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    email_retry_base_seconds: float = Field(default=30.0, gt=0)
    email_max_attempts: int = Field(default=8, ge=1, le=50)
    email_poll_seconds: float = Field(default=2.0, gt=0, le=60)
    frontend_base_url: str = "http://localhost:5173"
    # Closed-loop referrals: days a sent referral has to be accepted before it expires, when
    # the directory's service sets no deadline of its own; days after completion to follow up
    # with the client.
    referral_default_acceptance_days: int = Field(default=14, ge=1, le=365)
    referral_follow_up_days: int = Field(default=30, ge=1, le=365)
    # Planning: `GET /v1/work` shows what is overdue and what falls due within this many days.
    planning_due_soon_days: float = Field(default=7.0, gt=0, le=365)
    # Planning: the organisations whose case closures need a supervisor's approval (a closure
    # there is requested, and the case closes when a supervisor of its team approves). As an
    # environment variable a JSON list, e.g. ["org-a"].
    planning_closure_approval_organizations: list[str] = Field(default_factory=list)
    # The referrals directory. The Casework organisation that runs the network's directory:
    # its administrators manage every record (unset: nobody's do; each organisation's staff
    # manage their own records). Capacity confirmed longer ago than capacity_stale_days
    # counts as unknown.
    directory_operator_organization_id: str | None = None
    directory_capacity_stale_days: int = Field(default=14, ge=1, le=365)

    log_level: str = "INFO"
    # `make run`: start the embedded PostgreSQL / broker on the ports of the URLs above, with
    # data under data_dir. Set false to use an external server at those URLs instead.
    embedded_postgres: bool = True
    embedded_broker: bool = True
    data_dir: str = ".casework"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            SecretFilesSource(settings_cls),
            env_settings,
            dotenv_settings,
            file_secret_settings,
        )

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.database_password is not None:
            user = unquote(urlsplit(self.database_url).username or "postgres")
            self.database_url = with_credentials(self.database_url, user, self.database_password)
        if self.kafka_security_protocol.startswith("SASL_") and not (
            self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ValueError(
                f"CASEWORK_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                "CASEWORK_KAFKA_SASL_USERNAME and CASEWORK_KAFKA_SASL_PASSWORD "
                "(or CASEWORK_KAFKA_SASL_PASSWORD_FILE)"
            )
        return self

    @property
    def trusted_proxy_list(self) -> list[str]:
        return [entry.strip() for entry in self.trusted_proxies.split(",") if entry.strip()]

    @property
    def kafka_bootstrap_servers(self) -> list[str]:
        return [server.strip() for server in self.kafka_bootstrap.split(",") if server.strip()]

    @property
    def audit_checkpoint_path(self) -> Path:
        return Path(self.audit_checkpoint_file or Path(self.data_dir) / "audit-checkpoints.jsonl")

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
