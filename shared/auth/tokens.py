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

ASYMMETRIC_ALGORITHMS = ["RS256", "ES256"]
_CACHE_SIZE = 10_000


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
        return principal_from_claims(claims), float(claims["exp"])


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    roles = claims.get("roles")
    if not isinstance(roles, list) or not roles:
        raise InvalidToken("the token carries no roles")
    known = {role.value for role in Role}
    org = claims.get("org_id")
    if not isinstance(org, str) or not org:
        raise InvalidToken("the token carries no org_id")
    team = claims.get("team_id")
    return Principal(
        subject=str(claims["sub"]),
        roles=frozenset(Role(role) for role in roles if role in known),
        organization_id=org,
        team_id=team if isinstance(team, str) and team else None,
        token_id=claims.get("jti"),
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
