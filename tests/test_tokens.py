"""Token verification against a real JWKS endpoint (as an OpenID Connect provider serves it),
and the forgeries that must fail in each mode."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from shared.auth.principal import Role
from shared.auth.tokens import InvalidToken, TokenVerifier
from shared.settings import Settings

pytestmark = pytest.mark.asyncio

ISSUER = "https://id.agency.example/realms/casework"
AUDIENCE = "casework-api"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
INTRUDER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _jwk(key: Any, kid: str, algorithm: type[jwt.algorithms.Algorithm], alg: str) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(algorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "use": "sig", "alg": alg}


JWKS = {
    "keys": [
        _jwk(RSA_KEY, "rsa-1", jwt.algorithms.RSAAlgorithm, "RS256"),
        _jwk(EC_KEY, "ec-1", jwt.algorithms.ECAlgorithm, "ES256"),
    ]
}


@pytest.fixture(scope="module")
def jwks_url() -> Iterator[str]:
    body = json.dumps(JWKS).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/protocol/openid-connect/certs"
    finally:
        server.shutdown()


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": ISSUER, "aud": AUDIENCE, "sub": "f3c1-sam", "roles": ["supervisor", "unknown-role"],
        "org_id": "org-1", "team_id": "team-1", "iat": now, "exp": now + 300, **changes,
    }  # fmt: skip


def jwks_settings(url: str) -> Settings:
    return Settings(
        _env_file=None,
        auth_mode="jwks",
        jwks_url=url,
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
    )


@pytest.mark.parametrize(
    ("key", "algorithm", "kid"), [(RSA_KEY, "RS256", "rsa-1"), (EC_KEY, "ES256", "ec-1")]
)
async def test_provider_tokens_are_verified_against_its_jwks(
    jwks_url: str, key: Any, algorithm: str, kid: str
) -> None:
    token = jwt.encode(claims(), key, algorithm=algorithm, headers={"kid": kid})

    principal = await TokenVerifier(jwks_settings(jwks_url)).verify(token)

    assert principal.subject == "f3c1-sam"
    assert principal.roles == frozenset({Role.SUPERVISOR})  # unknown roles grant nothing
    assert (principal.organization_id, principal.team_id) == ("org-1", "team-1")


def _public_pem() -> bytes:
    return RSA_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def jwks_forgeries() -> dict[str, str]:
    hmac_with_public_key = jwt.api_jws.PyJWS()
    hmac_with_public_key._algorithms["HS256"].prepare_key = lambda key: key  # type: ignore[method-assign]
    return {
        "signed by another key under the provider's kid": jwt.encode(
            claims(), INTRUDER_KEY, algorithm="RS256", headers={"kid": "rsa-1"}
        ),
        "unknown kid": jwt.encode(claims(), INTRUDER_KEY, algorithm="RS256", headers={"kid": "x"}),
        "HS256 keyed with the provider's public key": hmac_with_public_key.encode(
            json.dumps(claims()).encode(), _public_pem(), algorithm="HS256",
            headers={"kid": "rsa-1"},
        ),
        "alg none": jwt.encode(claims(), None, algorithm="none", headers={"kid": "rsa-1"}),  # type: ignore[arg-type]
        "expired": jwt.encode(
            claims(iat=int(time.time()) - 7200, exp=int(time.time()) - 3600),
            RSA_KEY, algorithm="RS256", headers={"kid": "rsa-1"},
        ),
        "other audience": jwt.encode(
            claims(aud="another-api"), RSA_KEY, algorithm="RS256", headers={"kid": "rsa-1"}
        ),
        "other issuer": jwt.encode(
            claims(iss="https://evil.example"), RSA_KEY, algorithm="RS256", headers={"kid": "rsa-1"}
        ),
    }  # fmt: skip


@pytest.mark.parametrize("case", list(jwks_forgeries()))
async def test_forgeries_fail_against_the_jwks(jwks_url: str, case: str) -> None:
    token = jwks_forgeries()[case]
    with pytest.raises(InvalidToken):
        await TokenVerifier(jwks_settings(jwks_url)).verify(token)


async def test_development_mode_refuses_provider_algorithms() -> None:
    settings = Settings(_env_file=None)
    token = jwt.encode(
        claims(iss=settings.jwt_issuer, aud=settings.jwt_audience), RSA_KEY, algorithm="RS256"
    )
    with pytest.raises(InvalidToken):
        await TokenVerifier(settings).verify(token)


async def test_jwks_mode_without_a_url_refuses_to_start() -> None:
    with pytest.raises(ValueError, match="CASEWORK_JWKS_URL"):
        TokenVerifier(Settings(_env_file=None, auth_mode="jwks"))


def dev_token(settings: Settings, **changes: Any) -> str:
    return jwt.encode(
        claims(iss=settings.jwt_issuer, aud=settings.jwt_audience, **changes),
        settings.jwt_secret,
        algorithm="HS256",
    )


@pytest.mark.parametrize(
    ("lifetime_hours", "accepted"), [(11, True), (13, False), (100 * 365 * 24, False)]
)
async def test_tokens_valid_for_longer_than_the_maximum_lifetime_are_refused(
    lifetime_hours: int, accepted: bool
) -> None:
    settings = Settings(_env_file=None)  # jwt_max_lifetime_seconds: 12 h by default
    now = int(time.time())
    token = dev_token(settings, iat=now, exp=now + lifetime_hours * 3600)
    if accepted:
        assert (await TokenVerifier(settings).verify(token)).subject == "f3c1-sam"
    else:
        with pytest.raises(InvalidToken, match="over the maximum"):
            await TokenVerifier(settings).verify(token)


async def test_a_backdated_issue_time_does_not_stretch_the_lifetime() -> None:
    settings = Settings(_env_file=None, jwt_max_lifetime_seconds=3600)
    now = int(time.time())
    with pytest.raises(InvalidToken, match="over the maximum"):
        await TokenVerifier(settings).verify(dev_token(settings, iat=now - 60, exp=now + 7200))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"roles": [["supervisor"]]}, "list of strings"),
        ({"roles": ["supervisor", 1]}, "list of strings"),
        ({"roles": {"supervisor": True}}, "no roles"),
        ({"sub": ""}, "no sub"),
        ({"sub": "  "}, "no sub"),
        ({"sub": 42}, "(?i)subject must be a string"),
        ({"sub": "sam\r\nadmin"}, "sub is not a valid identifier"),
        ({"org_id": ["org-1"]}, "no org_id"),
        ({"team_id": {"id": "t"}}, "no team_id"),
        ({"jti": ["x"]}, "JWT ID must be a string"),
    ],
)
async def test_claims_of_the_wrong_shape_make_the_token_invalid(
    changes: dict[str, Any], message: str
) -> None:
    settings = Settings(_env_file=None)
    with pytest.raises(InvalidToken, match=message):
        await TokenVerifier(settings).verify(dev_token(settings, **changes))
