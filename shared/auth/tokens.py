"""Bearer token verification: HS256 with a shared secret in development, RS256/ES256 against the
issuer's JWKS in production. Algorithms are fixed per mode, so `alg: none` and algorithm
confusion (an HS256 token signed with a public key) are refused."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import jwt

from shared.auth.principal import Principal, Role
from shared.settings import Settings
from shared.text import refusal

ASYMMETRIC_ALGORITHMS = ["RS256", "ES256"]
_CACHE_SIZE = 10_000
_MAX_ROLES = 20
_MAX_CLAIM_LENGTH = 200


class InvalidToken(Exception):
    """The token is missing, malformed, expired, wrongly signed or for someone else."""


class TokenVerifier:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._jwks: jwt.PyJWKClient | None = None
        if settings.auth_mode == "jwks":
            if not settings.jwks_url:
                raise ValueError("CASEWORK_JWKS_URL is required when CASEWORK_AUTH_MODE=jwks")
            self._jwks = jwt.PyJWKClient(settings.jwks_url, cache_keys=True, lifespan=600)
        # Verifying a signature costs more than the rest of a request's authentication; a token
        # seen before is trusted until its own expiry (bounded memory: cleared when full).
        self._verified: dict[str, tuple[Principal, float]] = {}

    async def verify(self, token: str) -> Principal:
        cached = self._verified.get(token)
        if cached is not None and cached[1] > time.time():
            return cached[0]
        principal, expires_at = await self._verify_signature(token)
        if len(self._verified) >= _CACHE_SIZE:
            self._verified.clear()
        self._verified[token] = (principal, expires_at)
        return principal

    async def _verify_signature(self, token: str) -> tuple[Principal, float]:
        try:
            if self._jwks is not None:
                # PyJWKClient fetches (and caches) keys with blocking I/O: keep it off the loop.
                signing_key = await asyncio.to_thread(self._jwks.get_signing_key_from_jwt, token)
                key: Any = signing_key.key
                algorithms = ASYMMETRIC_ALGORITHMS
            else:
                key, algorithms = self.settings.jwt_secret, ["HS256"]
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=self.settings.jwt_audience,
                issuer=self.settings.jwt_issuer,
                leeway=self.settings.jwt_leeway_seconds,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except (jwt.PyJWTError, ValueError) as error:
            raise InvalidToken(str(error)) from error
        principal = principal_from_claims(
            claims, max_lifetime_seconds=self.settings.jwt_max_lifetime_seconds
        )
        return principal, float(claims["exp"])


def principal_from_claims(
    claims: dict[str, Any], *, max_lifetime_seconds: float | None = None
) -> Principal:
    """The principal a verified token names. Claims of the wrong shape (a nested list of roles,
    an empty or multi-line subject) make the token invalid (401), never a 500 later on; a
    lifetime over the maximum too: a stolen long-lived token would stay valid for years."""
    if max_lifetime_seconds is not None:
        _check_lifetime(claims, max_lifetime_seconds)
    roles = claims.get("roles")
    if not isinstance(roles, list) or not roles:
        raise InvalidToken("the token carries no roles")
    if len(roles) > _MAX_ROLES or not all(isinstance(role, str) for role in roles):
        raise InvalidToken("roles must be a list of strings")
    known = {role.value for role in Role}
    team = claims.get("team_id")
    token_id = claims.get("jti")
    return Principal(
        subject=_claim_text(claims.get("sub"), "sub"),
        roles=frozenset(Role(role) for role in roles if role in known),
        organization_id=_claim_text(claims.get("org_id"), "org_id"),
        team_id=None if team is None or team == "" else _claim_text(team, "team_id"),
        token_id=None if token_id is None else _claim_text(token_id, "jti"),
    )


def _claim_text(value: Any, name: str) -> str:
    """A claim that ends up in audit rows and queries: a non-empty single line of text."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidToken(f"the token carries no {name}")
    if len(value) > _MAX_CLAIM_LENGTH or refusal(value) is not None:
        raise InvalidToken(f"the token's {name} is not a valid identifier")
    return value


def _check_lifetime(claims: dict[str, Any], max_lifetime_seconds: float) -> None:
    # exp and iat are numbers here: PyJWT has validated them (and that iat is not in the future).
    expires, issued = float(claims["exp"]), float(claims.get("iat", time.time()))
    lifetime = max(expires - issued, expires - time.time())
    if lifetime > max_lifetime_seconds:
        raise InvalidToken(
            f"the token is valid for {int(lifetime)} s, over the maximum of "
            f"{int(max_lifetime_seconds)} s"
        )


def issue_dev_token(
    settings: Settings,
    *,
    subject: str,
    roles: list[str],
    organization_id: str,
    team_id: str | None = None,
    lifetime_seconds: int = 8 * 3600,
) -> str:
    """A token signed with the development secret (auth_mode hs256 only)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": subject,
        "roles": roles,
        "org_id": organization_id,
        "iat": now,
        "exp": now + lifetime_seconds,
        "jti": str(uuid.uuid4()),
    }
    if team_id:
        claims["team_id"] = team_id
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")
