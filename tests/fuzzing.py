"""Schemathesis against each service's OpenAPI: no 5xx, every response as documented, and
every refusal of an authenticated caller audited. Generation mode "all" sends valid requests
and invalid ones (negative mode); strings come from all of Unicode, so NUL, controls, bidi
and zero-width characters are among them: the fuzz test of issue 9, item 7.

The machinery is here; each service's operations are fuzzed by a module of their own
(`tests/test_fuzz_<service>.py`, made by `fuzz_tests`), so the four runs spread over the
suite's parallel workers. Schemathesis' coverage phase (boundary values, missing and
mistyped fields, unexpected methods: some 300 requests for a large body) runs once per
operation, as the supervisor: request validation does not depend on the role. The fuzzing
phase (`max-examples` generated requests) runs for every role.

The four APIs and their workers run in a thread of their own, with its own event loop (asyncpg
pools belong to the loop that opened them), under uvicorn on free ports, against the session's
real database and broker. A few clients are registered first, so generated requests also reach
records that exist (and not only 404s): see `flatmap_path_parameters`.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import asyncpg
import pytest
import requests
import schemathesis
import uvicorn
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from services.registry import SERVICES, TOPICS
from shared.http.app import create_app
from shared.http.problems import PROBLEM_JSON
from shared.settings import Settings
from shared.worker import Worker
from tests.support import VALID_CLIENT, User, bearer

T = TypeVar("T")

# Without a verified caller: counted per source and minute, not audited one by one
# (tests/test_rate_limits.py); or the rate limiter's own answer.
NOT_AFTER_AUTHENTICATION = {401, 429}


class AuditRecords:
    """Counts a request's audit records, on one connection kept open in the services' loop
    (a connection per refusal cost more than the request it checked)."""

    def __init__(self) -> None:
        self.services: ServicesThread | None = None
        self.connection: asyncpg.Connection | None = None

    def open(self, services: ServicesThread) -> None:
        self.services = services
        self.connection = services.run(asyncpg.connect(services.settings.database_url))

    def close(self) -> None:
        if self.services is not None and self.connection is not None:
            self.services.run(self.connection.close())
        self.services = self.connection = None

    def count(self, request_id: str, service: str) -> int:
        assert self.services is not None and self.connection is not None, "no services running"
        count: int = self.services.run(
            self.connection.fetchval(
                f"SELECT count(*) FROM {service}.audit_log WHERE request_id = $1", request_id
            )
        )
        return count


# Opened by the `base_urls` fixture: where `refusals_are_audited` looks for the records.
AUDIT_RECORDS = AuditRecords()


@schemathesis.check
def refusals_are_audited(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> bool | None:
    """Every 4xx answered to an authenticated caller left an audit record (by request id)."""
    if not 400 <= response.status_code < 500 or response.status_code in NOT_AFTER_AUTHENTICATION:
        return None
    if response.headers.get("content-type") == [PROBLEM_JSON] and str(
        response.json().get("type", "")
    ).endswith("/malformed-request"):
        return None  # refused before routing; counted like an unauthenticated attempt
    [request_id] = response.headers["x-request-id"]
    service = _SERVICE_BY_TITLE[case.operation.schema.raw_schema["info"]["title"]]
    if AUDIT_RECORDS.count(request_id, service) == 0:
        raise AssertionError(
            f"{response.status_code} from {case.operation.label} left no audit record"
        )
    return True


CHECKS = [
    not_a_server_error,
    refusals_are_audited,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


def _config(*, coverage: bool) -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "generation": {
                "mode": "all",  # valid requests, and invalid ones to be refused as documented
                # Per operation and role (four roles): 15 keeps the whole run within a few
                # minutes across the suite's workers; the services serve some 150 operations.
                "max-examples": 15,
                "deterministic": True,
                "database": "none",
            },
            "phases": {"coverage": {"enabled": coverage}},
            "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large"],
        }
    )


# Their own organisation, so what they create never shows up in other tests' lists.
SUPERVISOR = User("fuzz-supervisor", ("supervisor",), "org-fuzz", "team-fuzz")
CASEWORKER = User("fuzz-caseworker", ("caseworker",), "org-fuzz", "team-fuzz")
AUDITOR = User("fuzz-auditor", ("auditor",), "org-fuzz", None)
OUTSIDER = User("fuzz-outsider", ("caseworker",), "org-fuzz", "team-other")
# Keeps org-fuzz's staff directory (planning's /v1/workers), which assignments must name.
ADMIN = User("fuzz-admin", ("admin",), "org-fuzz", None)
USERS = [SUPERVISOR, CASEWORKER, AUDITOR, ADMIN]
# The coverage phase's role; the others get the fuzzing phase only.
BOUNDARIES_USER = SUPERVISOR

# Clients registered before the run (in scope for some users, not for others). A generated
# well-formed `client_id` is mostly swapped for one of them (a hook, registered below): random
# UUIDs alone would only ever meet 404s.
KNOWN_CLIENTS: list[str] = []


def flatmap_path_parameters(
    context: schemathesis.HookContext, path_parameters: dict[str, Any]
) -> st.SearchStrategy[dict[str, Any]]:
    client_id = path_parameters.get("client_id") if path_parameters else None
    try:
        uuid.UUID(str(client_id))
    except ValueError:
        return st.just(path_parameters)  # a malformed id on purpose (negative case): keep it
    return st.sampled_from([*KNOWN_CLIENTS, client_id]).map(
        lambda chosen: {**path_parameters, "client_id": chosen}
    )


# The schemas under test are the ones the apps serve (test_served_schemas_are_the_tested_ones);
# building them needs no I/O, so collection stays cheap.
_OPENAPI = {
    name: create_app(spec, Settings.model_construct()).openapi() for name, spec in SERVICES.items()
}
_SERVICE_BY_TITLE = {document["info"]["title"]: name for name, document in _OPENAPI.items()}


def _schemas(*, coverage: bool) -> dict[str, schemathesis.BaseSchema]:
    schemas: dict[str, schemathesis.BaseSchema] = {
        name: schemathesis.openapi.from_dict(document, config=_config(coverage=coverage))
        for name, document in _OPENAPI.items()
    }
    for schema in schemas.values():
        schema.hook(flatmap_path_parameters)
    return schemas


SCHEMAS_WITH_BOUNDARIES = _schemas(coverage=True)
SCHEMAS = _schemas(coverage=False)


class ServicesThread:
    """Each service's API (uvicorn) and worker, in one background thread and event loop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.servers: dict[str, uvicorn.Server] = {}
        self.server_tasks: list[asyncio.Task[None]] = []
        self.worker_tasks: list[asyncio.Task[None]] = []
        self.base_urls: dict[str, str] = {}

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def start(self) -> None:
        self.thread.start()
        self.run(self._start())

    def stop(self) -> None:
        if self.thread.is_alive():
            self.run(self._stop())
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(30)
        self.loop.close()

    async def _start(self) -> None:
        workers = []
        for name, spec in SERVICES.items():
            # IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY only on sockets that say
            # so, and without it every keep-alive response waits ~40 ms for a delayed ACK.
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            listener.bind(("127.0.0.1", 0))
            self.base_urls[name] = f"http://127.0.0.1:{listener.getsockname()[1]}"
            server = uvicorn.Server(
                uvicorn.Config(
                    create_app(spec, self.settings),
                    lifespan="on",
                    log_config=None,
                    access_log=False,
                    # Longer than any pause of the run: uvicorn's 5 s default closed idle
                    # keep-alive connections as the next request went out on them
                    # (ConnectionResetError in CI, on a busy machine).
                    timeout_keep_alive=300,
                )
            )
            self.servers[name] = server
            self.server_tasks.append(asyncio.create_task(server.serve(sockets=[listener])))
            worker = Worker(spec, self.settings, topics=TOPICS, serve_http=False)
            workers.append(worker)
            self.worker_tasks.append(asyncio.create_task(worker.run()))
        deadline = time.monotonic() + 30
        while not all(server.started for server in self.servers.values()):
            if any(task.done() for task in self.server_tasks) or time.monotonic() > deadline:
                raise RuntimeError("the services did not start")
            await asyncio.sleep(0.02)
        for worker in workers:
            if worker.consumer is not None:
                await asyncio.wait_for(worker.consumer.assigned.wait(), 30)

    async def _stop(self) -> None:
        for server in self.servers.values():
            server.should_exit = True
        for task in self.worker_tasks:
            task.cancel()
        await asyncio.gather(*self.server_tasks, *self.worker_tasks, return_exceptions=True)
        # A cancelled worker stops its Kafka clients in a shielded task (leaving the group):
        # let those finish first, or the next module's consumers find a dead member holding
        # partitions. Then whatever is left behind (a Kafka client's background tasks).
        leftovers = asyncio.all_tasks() - {asyncio.current_task()}
        if leftovers:
            await asyncio.wait(leftovers, timeout=10)
        leftovers = asyncio.all_tasks() - {asyncio.current_task()}
        for task in leftovers:
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)


def _wait_for(
    http: requests.Session, url: str, headers: dict[str, str], timeout: float = 30
) -> None:
    deadline = time.monotonic() + timeout
    while http.get(url, headers=headers, timeout=10).status_code != 200:
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not become available within {timeout}s")
        time.sleep(0.05)


def fuzz(
    service: str,
    case: schemathesis.Case[Any],
    user: User,
    headers: dict[User, dict[str, str]],
    base_urls: dict[str, str],
    http: requests.Session,
) -> None:
    assert _SERVICE_BY_TITLE[case.operation.schema.raw_schema["info"]["title"]] == service
    case.call_and_validate(
        base_url=base_urls[service],
        session=http,
        headers=headers[user],
        checks=CHECKS,
        timeout=10,
    )


def served_schemas_are_the_tested_ones(base_urls: dict[str, str], http: requests.Session) -> None:
    for name, url in base_urls.items():
        assert http.get(f"{url}/openapi.json", timeout=10).json() == _OPENAPI[name]


FuzzTest = Callable[..., None]


def fuzz_tests(service: str) -> tuple[FuzzTest, FuzzTest, FuzzTest]:
    """A service's three fuzz tests, for its module to bind to test_* names: the served schema
    is the tested one; every operation's boundaries (coverage and fuzzing phases) as
    BOUNDARIES_USER; every operation fuzzed as each other role."""

    def served_schema(base_urls: dict[str, str], http: requests.Session) -> None:
        served_schemas_are_the_tested_ones(base_urls, http)

    # A parameter of one value: without a pytest parametrization, Schemathesis gives every
    # operation's item the same node id.
    @pytest.mark.parametrize("user", [BOUNDARIES_USER], ids=lambda user: user.roles[0])
    @schemathesis.pytest.parametrize(**{service: SCHEMAS_WITH_BOUNDARIES[service]})
    def boundaries(
        case: schemathesis.Case[Any],
        user: User,
        headers: dict[User, dict[str, str]],
        base_urls: dict[str, str],
        http: requests.Session,
    ) -> None:
        fuzz(service, case, user, headers, base_urls, http)

    @pytest.mark.parametrize(
        "user", [u for u in USERS if u != BOUNDARIES_USER], ids=lambda user: user.roles[0]
    )
    @schemathesis.pytest.parametrize(**{service: SCHEMAS[service]})
    def every_role(
        case: schemathesis.Case[Any],
        user: User,
        headers: dict[User, dict[str, str]],
        base_urls: dict[str, str],
        http: requests.Session,
    ) -> None:
        fuzz(service, case, user, headers, base_urls, http)

    # Schemathesis names each operation's test item after the function: the module's names.
    for test, name in (
        (served_schema, "test_served_schemas_are_the_tested_ones"),
        (boundaries, f"test_{service}_boundaries"),
        (every_role, f"test_{service}_fuzzed_as_every_other_role"),
    ):
        test.__name__ = test.__qualname__ = name
    return served_schema, boundaries, every_role


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


@pytest.fixture(scope="module")
def headers(settings: Settings) -> dict[User, dict[str, str]]:
    return {user: bearer(settings, user) for user in (*USERS, OUTSIDER)}


@pytest.fixture(scope="module")
def base_urls(
    settings: Settings, http: requests.Session, headers: dict[User, dict[str, str]]
) -> Iterator[dict[str, str]]:
    """The running services, with a client registered by each of SUPERVISOR, CASEWORKER and
    OUTSIDER (another team), the supervisor's assigned to the caseworker, known everywhere."""
    services = ServicesThread(settings)
    try:
        services.start()
        AUDIT_RECORDS.open(services)
        urls = services.base_urls
        registered: list[tuple[str, User]] = []
        for user in (SUPERVISOR, CASEWORKER, OUTSIDER):
            response = http.post(
                f"{urls['intake']}/v1/clients",
                json=VALID_CLIENT,
                headers=headers[user],
                timeout=10,
            )
            assert response.status_code == 201, response.text
            registered.append((response.json()["id"], user))
        for client_id, user in registered:
            for name in ("planning", "referrals", "notifications"):
                _wait_for(http, f"{urls[name]}/v1/client-refs/{client_id}", headers[user])
        assigned = registered[0][0]
        response = http.put(
            f"{urls['planning']}/v1/workers/{CASEWORKER.subject}",
            json={"team_id": CASEWORKER.team_id, "display_name": "Fuzz Caseworker"},
            headers=headers[ADMIN],
            timeout=10,
        )
        assert response.status_code in (200, 201), response.text
        opened = http.post(
            f"{urls['planning']}/v1/cases",
            json={"client_id": assigned},
            headers=headers[SUPERVISOR],
            timeout=10,
        )
        assert opened.status_code == 201, opened.text
        response = http.put(
            f"{urls['planning']}/v1/cases/{opened.json()['id']}/assignment",
            json={"worker_id": CASEWORKER.subject},
            headers=headers[SUPERVISOR],
            timeout=10,
        )
        assert response.status_code == 200, response.text
        for name in ("referrals", "notifications"):
            _wait_for(http, f"{urls[name]}/v1/client-refs/{assigned}", headers[CASEWORKER])
        _wait_for(http, f"{urls['intake']}/v1/clients/{assigned}", headers[CASEWORKER])
        KNOWN_CLIENTS[:] = [client_id for client_id, _user in registered]
        yield urls
    finally:
        KNOWN_CLIENTS.clear()
        AUDIT_RECORDS.close()
        services.stop()
