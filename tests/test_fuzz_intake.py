"""Schemathesis on intake's operations, for each role (the machinery: tests/fuzzing.py)."""

from __future__ import annotations

from typing import Any

import pytest
import requests
import schemathesis

from tests.fuzzing import (
    SCHEMAS,
    USERS,
    base_urls,
    fuzz,
    headers,
    http,
    served_schemas_are_the_tested_ones,
)
from tests.support import User

__all__ = ["base_urls", "headers", "http"]  # the fixtures this module's tests use

# Schemathesis' own negative-mode strategies touch `random`; Hypothesis reseeds it per example.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies"
    ":hypothesis.errors.HypothesisDeprecationWarning"
)


def test_served_schemas_are_the_tested_ones(
    base_urls: dict[str, str], http: requests.Session
) -> None:
    served_schemas_are_the_tested_ones(base_urls, http)


@pytest.mark.parametrize("user", USERS, ids=lambda user: user.roles[0])
@schemathesis.pytest.parametrize(intake=SCHEMAS["intake"])
def test_intake_conforms_to_its_schema(
    case: schemathesis.Case[Any],
    user: User,
    headers: dict[User, dict[str, str]],
    base_urls: dict[str, str],
    http: requests.Session,
) -> None:
    fuzz("intake", case, user, headers, base_urls, http)
