"""The production-like deployment (docker-compose.yml, deploy/nginx.conf, Dockerfile), as data.

No Docker engine is needed: the files are parsed and checked against what the code expects.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.registry import SERVICES
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
NGINX_CONF = ROOT / "deploy" / "nginx.conf"
DOCKERFILE = ROOT / "Dockerfile"

HTTP_PORT_BASE = 8000
WORKER_PORT_BASE = 9000
ONE_SHOTS = {"topics", *(f"migrate-{name}" for name in SERVICES)}
APP_SERVICES = {f"{name}-{role}" for name in SERVICES for role in ("api", "worker")}

_VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?-)(?P<default>[^}]*))?\}")


def interpolate(value: Any, environ: dict[str, str] | None = None) -> str:
    """Compose's `${VAR}`, `${VAR:-default}` and `${VAR-default}`, over `environ` only."""
    environ = environ or {}

    def replace(match: re.Match[str]) -> str:
        name, op, default = match["name"], match["op"], match["default"] or ""
        if name in environ and (environ[name] or op != ":-"):
            return environ[name]
        return default if op else ""

    return _VARIABLE.sub(replace, str(value))


def environment(service: dict[str, Any], environ: dict[str, str] | None = None) -> dict[str, str]:
    raw = service.get("environment") or {}
    assert isinstance(raw, dict), "environment is written as a mapping"
    return {key: interpolate(value, environ) for key, value in raw.items()}


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
    assert re.fullmatch(r"nginx:1\.\d+(\.\d+)?-alpine", services["gateway"]["image"])
    assert "bitnami" not in COMPOSE_FILE.read_text().lower()
    for name, service in services.items():
        image = service.get("image", "")
        assert ":" in image and not image.endswith(":latest"), f"{name}: pin the image tag"


def test_casework_processes_share_the_image_built_here(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in APP_SERVICES | ONE_SHOTS:
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
    expected = APP_SERVICES | ONE_SHOTS | {"postgres", "kafka", "gateway"}
    assert set(services) == expected


def test_apis_and_workers_wait_for_infrastructure_topics_and_their_migration(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in SERVICES:
        for role in ("api", "worker"):
            assert depends_on(services[f"{name}-{role}"]) == {
                "postgres": "service_healthy",
                "kafka": "service_healthy",
                "topics": "service_completed_successfully",
                f"migrate-{name}": "service_completed_successfully",
            }, f"{name}-{role}"


def test_one_shots_wait_for_their_dependency_and_never_restart(
    services: dict[str, dict[str, Any]],
) -> None:
    assert depends_on(services["topics"]) == {"kafka": "service_healthy"}
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
    assert long_running == APP_SERVICES | {"postgres", "kafka", "gateway"}
    for name in long_running:
        service = services[name]
        assert service.get("restart") in {"unless-stopped", "always"}, name
        test = service["healthcheck"]["test"]
        assert isinstance(test, list) and test[0] in {"CMD", "CMD-SHELL"} and len(test) > 1, name


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
    assert any(
        "kafka-broker-api-versions" in part for part in services["kafka"]["healthcheck"]["test"]
    )


def test_every_casework_variable_is_a_real_setting(services: dict[str, dict[str, Any]]) -> None:
    fields = set(Settings.model_fields)
    for name in APP_SERVICES | ONE_SHOTS:
        for key in environment(services[name]):
            if key.startswith("CASEWORK_"):
                assert key.removeprefix("CASEWORK_").lower() in fields, f"{name}: {key}"


@pytest.mark.parametrize(
    "environ", [{}, {"PLANNING_DB_PASSWORD": "s3cret"}], ids=["defaults", "set"]
)
def test_services_resolve_to_their_ports_their_own_role_and_the_broker(
    services: dict[str, dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    environ: dict[str, str],
) -> None:
    for name, spec in SERVICES.items():
        migration_password = environment(services[f"migrate-{name}"], environ)[
            "CASEWORK_SERVICE_DB_PASSWORD"
        ]
        assert migration_password
        for role in ("api", "worker"):
            with monkeypatch.context() as patch:
                for key in [key for key in os.environ if key.startswith("CASEWORK_")]:
                    patch.delenv(key)
                for key, value in environment(services[f"{name}-{role}"], environ).items():
                    patch.setenv(key, value)
                settings = Settings(_env_file=None)
            assert settings.http_host == "0.0.0.0"
            assert spec.http_port(settings) == HTTP_PORT_BASE + spec.port_index
            assert spec.worker_port(settings) == WORKER_PORT_BASE + spec.port_index
            assert settings.kafka_bootstrap_servers == ["kafka:9092"]
            assert settings.kafka_idempotent_producer is True
            # The password the migration gives `<service>_svc` is the one the service logs in with.
            assert settings.database_url_for(name) == (
                f"postgresql://{name}_svc:{migration_password}@postgres:5432/casework"
            )
    if "PLANNING_DB_PASSWORD" in environ:
        planning = environment(services["planning-api"], environ)
        assert "s3cret" in planning["CASEWORK_SERVICE_DATABASE_URL"]


def test_only_postgres_and_the_migrations_see_the_admin_password(
    services: dict[str, dict[str, Any]],
) -> None:
    admin_password = "adm1n-unique-marker"
    environ = {"POSTGRES_PASSWORD": admin_password}
    seen_by = {
        name
        for name, service in services.items()
        if any(admin_password in value for value in environment(service, environ).values())
        or any(
            admin_password in interpolate(part, environ)
            for part in service.get("command", []) + service.get("healthcheck", {}).get("test", [])
        )
    }
    assert seen_by == {"postgres", *(f"migrate-{name}" for name in SERVICES)}
    for name in SERVICES:
        admin_url = environment(services[f"migrate-{name}"], environ)["CASEWORK_DATABASE_URL"]
        assert admin_url == f"postgresql://postgres:{admin_password}@postgres:5432/casework"


def test_migrations_set_distinct_passwords_per_service(services: dict[str, dict[str, Any]]) -> None:
    passwords = {
        name: environment(services[f"migrate-{name}"])["CASEWORK_SERVICE_DB_PASSWORD"]
        for name in SERVICES
    }
    assert len(set(passwords.values())) == len(SERVICES)
    admin = environment(services["postgres"])["POSTGRES_PASSWORD"]
    assert admin not in passwords.values()


def test_topics_are_created_with_explicit_partitions(services: dict[str, dict[str, Any]]) -> None:
    env = environment(services["topics"])
    assert env["CASEWORK_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert int(env["CASEWORK_KAFKA_TOPIC_PARTITIONS"]) >= 1
    assert int(env["CASEWORK_KAFKA_REPLICATION_FACTOR"]) == 1
    assert (
        environment(services["topics"], {"KAFKA_TOPIC_PARTITIONS": "12"})[
            "CASEWORK_KAFKA_TOPIC_PARTITIONS"
        ]
        == "12"
    )


def test_kafka_is_a_single_kraft_node_without_topic_auto_creation(
    services: dict[str, dict[str, Any]],
) -> None:
    env = environment(services["kafka"])
    assert env["KAFKA_NODE_ID"] == "1"
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_LISTENERS"] == "PLAINTEXT://:9092,CONTROLLER://:9093"
    assert env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://kafka:9092"
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


def test_data_lives_on_named_volumes(compose: dict[str, Any]) -> None:
    services = compose["services"]
    declared = set(compose["volumes"])
    # PostgreSQL 18+ images refuse a volume at /var/lib/postgresql/data.
    assert services["postgres"]["volumes"] == ["postgres-data:/var/lib/postgresql"]
    log_dir = environment(services["kafka"])["KAFKA_LOG_DIRS"]
    assert services["kafka"]["volumes"] == [f"kafka-data:{log_dir}"]
    assert {"postgres-data", "kafka-data"} <= declared


def test_only_the_gateway_publishes_a_port(
    services: dict[str, dict[str, Any]], nginx_conf: str
) -> None:
    publishing = {name for name, service in services.items() if service.get("ports")}
    assert publishing == {"gateway"}
    (mapping,) = services["gateway"]["ports"]
    host_port, container_port = interpolate(mapping).rsplit(":", 1)
    assert host_port == "8080"
    assert interpolate(mapping, {"GATEWAY_PORT": "9999"}).startswith("9999:")
    assert re.search(rf"\blisten\s+{container_port}\s*;", nginx_conf)


def test_gateway_mounts_its_config_and_waits_for_every_api(
    services: dict[str, dict[str, Any]],
) -> None:
    gateway = services["gateway"]
    assert "./deploy/nginx.conf:/etc/nginx/nginx.conf:ro" in gateway["volumes"]
    assert depends_on(gateway) == {f"{name}-api": "service_healthy" for name in SERVICES}


def test_gateway_routes_each_prefix_to_its_api_with_the_prefix_stripped(nginx_conf: str) -> None:
    upstreams = {
        match["name"]: re.findall(r"\bserver\s+([\w.-]+:\d+)", match["body"])
        for match in re.finditer(r"\bupstream\s+(?P<name>\w+)\s*\{(?P<body>[^}]*)\}", nginx_conf)
    }
    locations = {
        match["path"]: match["body"]
        for match in re.finditer(r"\blocation\s+(?P<path>/\w+/)\s*\{(?P<body>[^}]*)\}", nginx_conf)
    }
    assert set(locations) == {f"/{name}/" for name in SERVICES}
    for name, spec in SERVICES.items():
        proxy_pass = re.search(r"\bproxy_pass\s+http://(\w+)(/?)\s*;", locations[f"/{name}/"])
        assert proxy_pass, name
        upstream, trailing_slash = proxy_pass.groups()
        # proxy_pass with a URI ("/") replaces the location prefix: /intake/v1/x -> /v1/x.
        assert trailing_slash == "/", name
        assert upstreams[upstream] == [f"{name}-api:{HTTP_PORT_BASE + spec.port_index}"], name


def test_gateway_passes_tracing_and_auth_headers_and_limits_bodies(nginx_conf: str) -> None:
    headers = {
        name.lower(): value
        for name, value in re.findall(r"\bproxy_set_header\s+([\w-]+)\s+([^;]+);", nginx_conf)
    }
    assert headers["traceparent"] == "$http_traceparent"
    assert headers["authorization"] == "$http_authorization"
    assert headers["x-forwarded-proto"] == "$scheme"
    # Overwritten, not appended: the APIs trust X-Forwarded-For from any peer on the network.
    assert headers["x-forwarded-for"] == "$remote_addr"
    request_id = headers["x-request-id"]
    assert re.search(rf"map\s+\$http_x_request_id\s+{re.escape(request_id)}\s*\{{", nginx_conf)

    limit = re.search(r"\bclient_max_body_size\s+(\d+)k\s*;", nginx_conf)
    assert limit
    assert int(limit.group(1)) * 1024 == Settings.model_fields["max_request_body_bytes"].default

    health = re.search(r"location\s+=\s+/health\s*\{(?P<body>[^}]*)\}", nginx_conf)
    assert health and re.search(r"\breturn\s+200\b", health["body"])
    # Docker's DNS, so recreated or scaled API containers are found again.
    assert re.search(r"\bresolver\s+127\.0\.0\.11\b", nginx_conf)


def test_gateway_does_not_expose_metrics(nginx_conf: str) -> None:
    blocked = re.search(r"location\s+~\s+(\S+)\s*\{\s*return\s+404\s*;", nginx_conf)
    assert blocked
    pattern = re.compile(blocked.group(1))
    for name in SERVICES:
        assert pattern.search(f"/{name}/metrics")
        assert not pattern.search(f"/{name}/v1/metrics-report")


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
