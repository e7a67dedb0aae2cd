"""Schemathesis against each service's OpenAPI: no 5xx, and every response as documented.

Each service's API runs under uvicorn in a thread of its own, with its own event loop (the
asyncpg pool its lifespan opens belongs to that loop), against the session's real database.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import requests
import schemathesis
import uvicorn
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from services.registry import SERVICES
from shared.http.app import create_app
from shared.settings import Settings
from tests.support import User, bearer

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]

CONFIG = schemathesis.Config.from_dict(
    {
        "generation": {
            "mode": "all",
            "max-examples": 25,
            "deterministic": True,
            "database": "none",
        },
        "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large"],
    }
)

# The schemas under test are the ones the apps serve (test_served_schemas_are_the_tested_ones);
# building them needs no I/O, so collection stays cheap.
_OPENAPI = {
    name: create_app(spec, Settings.model_construct()).openapi() for name, spec in SERVICES.items()
}
_SERVICE_BY_TITLE = {document["info"]["title"]: name for name, document in _OPENAPI.items()}
SCHEMAS = {
    name: schemathesis.openapi.from_dict(document, config=CONFIG)
    for name, document in _OPENAPI.items()
}

# Their own organisation, so what they create never shows up in other tests' lists.
USERS = [
    User("fuzz-supervisor", ("supervisor",), organization_id="org-fuzz", team_id="team-fuzz"),
    User("fuzz-caseworker", ("caseworker",), organization_id="org-fuzz", team_id="team-fuzz"),
]


@pytest.fixture(scope="module")
def base_urls(settings: Settings) -> Iterator[dict[str, str]]:
    """Every service's API on a port of its own, until the module is done."""
    servers: dict[str, uvicorn.Server] = {}
    sockets: dict[str, socket.socket] = {}
    for name, spec in SERVICES.items():
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        sockets[name] = listener
        servers[name] = uvicorn.Server(
            uvicorn.Config(
                create_app(spec, settings), lifespan="on", log_config=None, access_log=False
            )
        )

    async def serve_all() -> None:
        await asyncio.gather(
            *(server.serve(sockets=[sockets[name]]) for name, server in servers.items())
        )

    thread = threading.Thread(target=asyncio.run, args=(serve_all(),), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not all(server.started for server in servers.values()):
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the services' APIs did not start")
            time.sleep(0.02)
        yield {
            name: f"http://127.0.0.1:{listener.getsockname()[1]}"
            for name, listener in sockets.items()
        }
    finally:
        for server in servers.values():
            server.should_exit = True
        thread.join(30)
        for listener in sockets.values():
            listener.close()


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def test_served_schemas_are_the_tested_ones(
    base_urls: dict[str, str], http: requests.Session
) -> None:
    for name, url in base_urls.items():
        assert http.get(f"{url}/openapi.json", timeout=10).json() == _OPENAPI[name]


@pytest.mark.parametrize("user", USERS, ids=lambda user: user.roles[0])
@schemathesis.pytest.parametrize(**SCHEMAS)
def test_api_conforms_to_its_schema(
    case: schemathesis.Case,
    user: User,
    settings: Settings,
    base_urls: dict[str, str],
    http: requests.Session,
) -> None:
    service = _SERVICE_BY_TITLE[case.operation.schema.raw_schema["info"]["title"]]
    case.call_and_validate(
        base_url=base_urls[service],
        session=http,
        headers=bearer(settings, user),
        checks=CHECKS,
        timeout=10,
    )
