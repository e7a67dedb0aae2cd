"""Hostile input is refused with 4xx problem details, never a 500, and the refusal is audited.

Issue 9, item 7: NUL and control characters, bidirectional overrides and zero-width characters
in names, e-mail and identifiers; CR/LF in identifiers; dates that overflow on conversion or lie
centuries away; `%00` in a path; tokens whose claims have the wrong shape. The property-based
part drives the registration with generated hostile text.
"""

from __future__ import annotations

import json
import unicodedata
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from shared.settings import Settings
from shared.text import clean, refusal
from tests.support import (
    CASEWORKER,
    VALID_CLIENT,
    Stack,
    User,
    audit_rows,
    bearer,
    first_attempts,
    unauthenticated_attempts,
)

HOSTILE = {
    "right-to-left override": "Ana\u202eamiL",
    "isolate": "Ana\u2066x\u2069",
    "zero-width space": "A\u200bna",
    "zero-width joiner": "An\u200da",
    "byte order mark": "\ufeffAna",
    "NUL": "An\x00a",
    "escape": "Ana\x1b[31m",
    "C1 control": "An\x9ba",
    "line separator": "Ana\u2028Lima",
    "CR/LF": "Ana\r\nSet-Cookie: x=1",
}


async def call(
    stack: Stack, settings: Settings, method: str, path: str, user: User | None = CASEWORKER,
    **kwargs: Any,
) -> tuple[httpx.Response, str]:  # fmt: skip
    request_id = str(uuid.uuid4())
    headers = {"X-Request-ID": request_id, **kwargs.pop("headers", {})}
    if user is not None:
        headers.update(bearer(settings, user))
    client = stack.api[kwargs.pop("service", "intake")]
    saved = client.headers.pop("Authorization", None)
    try:
        response = await client.request(method, path, headers=headers, **kwargs)
    finally:
        if saved is not None:
            client.headers["Authorization"] = saved
    return response, request_id


async def assert_refused_and_audited(
    settings: Settings, response: httpx.Response, request_id: str, field: str, status: int = 422
) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert [error["field"] for error in response.json()["errors"]] == [field], response.text
    [row] = await audit_rows(settings, "intake", request_id)
    assert (row["actor_id"], row["outcome"]) == (CASEWORKER.subject, "invalid")
    assert row["action"] == "POST /v1/clients" or "{client_id}" in row["action"]


# --- text ------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", list(HOSTILE))
def test_the_text_type_refuses_each_hostile_character(case: str) -> None:
    assert refusal(HOSTILE[case]) is not None
    with pytest.raises(ValueError):
        clean(HOSTILE[case])


def test_long_text_keeps_line_feeds_and_tabs_and_text_is_normalised() -> None:
    assert clean("first line\n\tsecond", multiline=True) == "first line\n\tsecond"
    assert refusal("first line\r\nsecond", multiline=True) is not None
    decomposed = "Jose\u0301 "
    assert clean(decomposed) == unicodedata.normalize("NFC", "José") == "Jos\u00e9"


@pytest.mark.parametrize("case", list(HOSTILE))
async def test_hostile_names_are_refused_and_audited(
    stack: Stack, settings: Settings, case: str
) -> None:
    response, request_id = await call(
        stack, settings, "POST", "/v1/clients", json={**VALID_CLIENT, "given_name": HOSTILE[case]}
    )
    await assert_refused_and_audited(settings, response, request_id, "body.given_name")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"email": "ana\x00@example.org"}, "body.email"),
        ({"email": "ana\u200b@example.org"}, "body.email"),
        (
            {"identifiers": [{"type": "agency_case_number", "value": "A-1\x00"}]},
            "body.identifiers.0.value",
        ),
        (
            {"identifiers": [{"type": "agency_case_number", "value": "A-1\r\nB"}]},
            "body.identifiers.0.value",
        ),
        ({"other_names": ["Ana\u202e"]}, "body.other_names.0"),
        ({"address": {"city": "Porto\x00"}}, "body.address.city"),
    ],
)
async def test_nul_and_controls_in_email_and_identifiers_are_422_not_500(
    stack: Stack, settings: Settings, fields: dict[str, Any], field: str
) -> None:
    response, request_id = await call(
        stack, settings, "POST", "/v1/clients", json={**VALID_CLIENT, **fields}
    )
    await assert_refused_and_audited(settings, response, request_id, field)


async def test_a_body_that_is_not_json_is_422_and_audited_under_the_caller(
    stack: Stack, settings: Settings
) -> None:
    """FastAPI parses the body before any dependency runs: the token is checked afterwards."""
    response, request_id = await call(
        stack, settings, "POST", "/v1/clients",
        content=b"\x00", headers={"Content-Type": "application/json"},
    )  # fmt: skip
    await assert_refused_and_audited(settings, response, request_id, "body.0")


async def test_names_are_stored_in_composed_form(stack: Stack, settings: Settings) -> None:
    response, _ = await call(
        stack, settings, "POST", "/v1/clients",
        json={**VALID_CLIENT, "given_name": " Jose\u0301 ", "family_name": "Lima"},
    )  # fmt: skip
    assert response.status_code == 201, response.text
    assert response.json()["given_name"] == "Jos\u00e9"


async def test_search_text_with_nul_is_422(stack: Stack, settings: Settings) -> None:
    response, request_id = await call(
        stack, settings, "GET", "/v1/clients/search", params={"name": "An\x00a"}
    )
    assert response.status_code == 422, response.text
    assert [error["field"] for error in response.json()["errors"]] == ["query.name"]
    [row] = await audit_rows(settings, "intake", request_id)
    assert (row["action"], row["outcome"]) == ("GET /v1/clients/search", "invalid")


# --- dates -----------------------------------------------------------------------------------


async def registered(stack: Stack, settings: Settings) -> str:
    response, _ = await call(stack, settings, "POST", "/v1/clients", json=VALID_CLIENT)
    assert response.status_code == 201, response.text
    client_id: str = response.json()["id"]
    return client_id


@pytest.mark.parametrize(
    "expires_at", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "2999-01-01T00:00Z"]
)
async def test_flag_expiry_out_of_range_is_422_not_500(
    stack: Stack, settings: Settings, expires_at: str
) -> None:
    client_id = await registered(stack, settings)
    response, request_id = await call(
        stack, settings, "POST", f"/v1/clients/{client_id}/flags",
        json={"flag_type": "safety", "severity": "high", "expires_at": expires_at},
    )  # fmt: skip
    await assert_refused_and_audited(settings, response, request_id, "body.expires_at")


@pytest.mark.parametrize(
    ("dates", "field"),
    [
        ({"starts_on": "0001-01-01", "expires_on": "2030-01-01"}, "body.starts_on"),
        ({"expires_on": "9999-12-31"}, "body.expires_on"),
    ],
)
async def test_consents_starting_in_year_1_or_ending_in_9999_are_refused(
    stack: Stack, settings: Settings, dates: dict[str, str], field: str
) -> None:
    client_id = await registered(stack, settings)
    consent = {
        "given_by": "client",
        "recipients": ["org-food-bank"],
        "purposes": ["referral"],
        "data_classes": ["general"],
        **dates,
    }
    response, request_id = await call(
        stack, settings, "POST", f"/v1/clients/{client_id}/consents", json=consent
    )
    await assert_refused_and_audited(settings, response, request_id, field)


# --- paths and tokens ------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/clients/%00", "/v1/clients/%ff%fe", "/v1/clients/a%0d%0ab"])
@pytest.mark.parametrize("with_token", [True, False], ids=["token", "anonymous"])
async def test_undecodable_or_control_paths_are_400_and_counted_without_the_path(
    stack: Stack, settings: Settings, path: str, with_token: bool
) -> None:
    started = datetime.now(UTC)
    before = await unauthenticated_attempts(settings, "planning")
    response, _ = await call(
        stack, settings, "GET", path, CASEWORKER if with_token else None, service="planning"
    )
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("/malformed-request")
    assert await unauthenticated_attempts(settings, "planning") == before + 1
    for first_request_id in await first_attempts(settings, "planning", started):
        [row] = await audit_rows(settings, "planning", first_request_id)
        assert row["outcome"] == "unauthenticated"
        assert "%" not in row["action"] and "\x00" not in row["action"]


def shaped_token(settings: Settings, **changes: Any) -> str:
    now = int(datetime.now(UTC).timestamp())
    claims = {
        "iss": settings.jwt_issuer, "aud": settings.jwt_audience, "sub": "mallory",
        "roles": ["caseworker"], "org_id": "org-a", "iat": now, "exp": now + 600, **changes,
    }  # fmt: skip
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")


@pytest.mark.parametrize(
    "changes",
    [
        {"roles": [["caseworker"]]},
        {"roles": [{"role": "caseworker"}]},
        {"roles": "caseworker"},
        {"sub": ""},
        {"sub": "mal\x00lory"},
        {"org_id": ["org-a"]},
        {"team_id": 7},
        {"exp": int(datetime.now(UTC).timestamp()) + 100 * 365 * 86400},
    ],
    ids=["nested roles", "object roles", "string roles", "empty sub", "NUL sub", "list org",
         "number team", "100 years"],
)  # fmt: skip
async def test_tokens_of_the_wrong_shape_are_401_not_500(
    stack: Stack, settings: Settings, changes: dict[str, Any]
) -> None:
    token = shaped_token(settings, **changes)
    response, _ = await call(
        stack, settings, "GET", "/v1/clients", None, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith('Bearer realm="casework"')


# --- generated hostile text ------------------------------------------------------------------

# Text with the characters that have broken things: controls, format characters (bidi,
# zero-width), separators, surrogates, and ordinary letters around them.
hostile_text = st.text(
    alphabet=st.one_of(
        st.characters(categories=["Cc", "Cf", "Zl", "Zp", "Cs"]),
        st.characters(categories=["L", "M", "N", "Zs"]),
    ),
    max_size=30,
)
FIELDS = ["given_name", "family_name", "email", "phone", "other_names", "identifiers", "address"]


def payload(field: str, value: str) -> dict[str, Any]:
    shaped: dict[str, Any] = {
        "other_names": [value],
        "identifiers": [{"type": "agency_case_number", "value": value}],
        "address": {"line1": value},
    }
    return {**VALID_CLIENT, field: shaped.get(field, value)}


@hypothesis_settings(max_examples=60, deadline=None)
@given(field=st.sampled_from(FIELDS), value=hostile_text)
async def test_generated_hostile_text_never_gets_a_5xx_and_every_refusal_is_audited(
    stack: Stack, settings: Settings, field: str, value: str
) -> None:
    # json.dumps escapes what httpx would refuse to encode (a lone surrogate becomes \ud800).
    response, request_id = await call(
        stack, settings, "POST", "/v1/clients",
        content=json.dumps(payload(field, value)),
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json"
        rows = await audit_rows(settings, "intake", request_id)
        assert rows, f"{response.status_code} without an audit record"
