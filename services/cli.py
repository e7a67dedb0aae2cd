"""The `casework` command: one entry point for every process the system runs."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path

from shared.logs import configure_logging
from shared.settings import Settings


def _api(settings: Settings, service: str) -> int:
    import uvicorn

    from services.registry import SERVICES, TOPICS
    from shared.http.app import create_app
    from shared.http.proxies import proxy_options

    spec = SERVICES[service]
    configure_logging(service, settings.log_level)
    uvicorn.run(
        create_app(spec, settings, topics=TOPICS),
        host=settings.http_host,
        port=spec.http_port(settings),
        log_config=None,
        access_log=False,
        loop="uvloop",
        http="httptools",
        **proxy_options(settings),
        root_path=settings.http_root_path,
    )
    return 0


def _worker(settings: Settings, service: str) -> int:
    import uvloop

    from services.registry import SERVICES, TOPICS
    from shared.worker import Worker

    configure_logging(f"{service}-worker", settings.log_level)
    worker = Worker(SERVICES[service], settings, topics=TOPICS)

    async def main() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await worker.run()

    uvloop.run(main())
    return 0


def _migrate(settings: Settings, services: list[str]) -> int:
    from services.registry import SERVICES
    from shared.db.migrations import migrate_services

    configure_logging("migrate", settings.log_level)
    specs = [SERVICES[name] for name in services or SERVICES]
    asyncio.run(migrate_services(settings.database_url, specs, settings.service_db_password))
    return 0


def _topics(settings: Settings) -> int:
    from services.registry import TOPICS
    from shared.messaging.kafka import TopicCreationFailed, create_topics

    configure_logging("topics", settings.log_level)
    try:
        report = asyncio.run(create_topics(settings, TOPICS))
    except TopicCreationFailed as error:
        print(f"the broker refused to create declared topics: {error}", file=sys.stderr)
        return 1
    print(f"created {len(report.created)} of {len(TOPICS)} declared topics")
    for topic, partitions in sorted(report.mismatched.items()):
        print(
            f"{topic} has {partitions} partitions, declared {settings.kafka_topic_partitions}; "
            "left as it is (repartitioning moves keys)",
            file=sys.stderr,
        )
    return 0


def _dev(settings: Settings) -> int:
    from services import devstack

    configure_logging("devstack", "WARNING")
    return devstack.run(settings)


def _contracts(check: bool) -> int:
    from services.registry import SERVICES
    from shared.events.docs import write_or_check

    problems = write_or_check(list(SERVICES.values()), check=check)
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


def _kafka_acls(check: bool) -> int:
    from services.registry import CONSUMED
    from shared.messaging.acls import write_or_check

    problems = write_or_check(CONSUMED, check=check)
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


def _token(settings: Settings, args: argparse.Namespace) -> int:
    from shared.auth.tokens import issue_dev_token

    if settings.auth_mode != "hs256":
        print(
            "casework token signs development tokens; CASEWORK_AUTH_MODE is jwks", file=sys.stderr
        )
        return 2
    print(
        issue_dev_token(
            settings,
            subject=args.sub,
            roles=[role.strip() for role in args.role.split(",") if role.strip()],
            organization_id=args.org,
            team_id=args.team or None,
            lifetime_seconds=args.hours * 3600,
        )
    )
    return 0


def _audit_verify(settings: Settings, services: list[str], checkpoint_files: list[str]) -> int:
    import asyncpg

    from services.registry import SERVICES
    from shared.audit.checkpoints import CheckpointFile, load_checkpoints
    from shared.audit.keys import AuditKeyError, chain_keys
    from shared.audit.signing import checkpoint_public_key
    from shared.audit.verify import verify_chains

    try:
        keys = chain_keys(settings)
        checkpoints = CheckpointFile(heads={}, problems=[])
        if checkpoint_files:
            checkpoints = load_checkpoints(
                [Path(name) for name in checkpoint_files], checkpoint_public_key(settings)
            )
    except (AuditKeyError, OSError) as error:
        print(f"audit-verify: {error}", file=sys.stderr)
        return 2
    for problem in checkpoints.problems:
        print(f"checkpoint {problem}")

    async def verify() -> int:
        failures = len(checkpoints.problems)
        connection = await asyncpg.connect(settings.database_url)
        try:
            for service in services or list(SERVICES):
                await connection.execute(f'SET search_path = "{service}"')
                heads = checkpoints.for_service(service)
                breaks = await verify_chains(connection, keys, heads)
                for found in breaks:
                    print(f"{service}: chain {found.chain}: {found.describe()}")
                if not breaks:
                    against = f", and agrees with {len(heads)} checkpointed heads" if heads else ""
                    print(f"{service}: audit trail intact{against}")
                failures += len(breaks)
        finally:
            await connection.close()
        return 1 if failures else 0

    return asyncio.run(verify())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="casework", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    services = ("intake", "planning", "referrals", "notifications")
    commands.add_parser("api", help="serve a service's HTTP API").add_argument(
        "service", choices=services
    )
    commands.add_parser("worker", help="run a service's outbox relay and consumers").add_argument(
        "service", choices=services
    )
    commands.add_parser(
        "migrate", help="provision schemas and roles, apply migrations (all services if none named)"
    ).add_argument("services", nargs="*", metavar="service")
    commands.add_parser("topics", help="create every Kafka topic")
    token = commands.add_parser("token", help="print a signed development token")
    token.add_argument("--role", required=True, help="one role, or several separated by commas")
    token.add_argument("--sub", required=True, help="user id")
    token.add_argument("--org", default="org-dev", help="organisation id")
    token.add_argument("--team", default="team-dev", help="team id ('' for none)")
    token.add_argument("--hours", type=int, default=8, help="lifetime in hours")
    audit_verify = commands.add_parser(
        "audit-verify",
        help="check every service's audit chains (exit 1 if rows were rewritten or deleted)",
    )
    audit_verify.add_argument("services", nargs="*", metavar="service")
    audit_verify.add_argument(
        "--checkpoints",
        action="append",
        default=[],
        metavar="FILE",
        help="signed checkpoints (JSON lines) to check the chain heads against; repeatable",
    )
    commands.add_parser("dev", help="the whole system on the embedded default (make run)")
    contracts = commands.add_parser("contracts", help="write the event JSON Schemas and AsyncAPI")
    contracts.add_argument("--check", action="store_true", help="fail if they are out of date")
    kafka_acls = commands.add_parser(
        "kafka-acls", help="write deploy/kafka/acls.sh (principals and ACLs) from the registry"
    )
    kafka_acls.add_argument("--check", action="store_true", help="fail if it is out of date")
    args = parser.parse_args(argv)
    if args.command == "contracts":
        return _contracts(args.check)
    if args.command == "kafka-acls":
        return _kafka_acls(args.check)
    settings = Settings()
    if args.command == "api":
        return _api(settings, args.service)
    if args.command == "worker":
        return _worker(settings, args.service)
    if args.command == "migrate":
        unknown = set(args.services) - set(services)
        if unknown:
            parser.error(f"unknown services: {', '.join(sorted(unknown))}")
        return _migrate(settings, args.services)
    if args.command == "topics":
        return _topics(settings)
    if args.command == "token":
        return _token(settings, args)
    if args.command == "audit-verify":
        return _audit_verify(settings, args.services, args.checkpoints)
    return _dev(settings)


if __name__ == "__main__":
    sys.exit(main())
