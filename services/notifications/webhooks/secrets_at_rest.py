"""Webhook signing secrets at rest: sealed (shared/crypto/sealed.py) under
webhook_secrets_key, bound to their subscription's id, so a database dump neither shows a
secret nor lets one be moved onto another subscription.

Rows written before secrets were sealed hold them in clear (`whsec_...`): they are read as
they are, and the worker re-seals them when it starts (`reseal`), together with any secret
sealed under a retired key, so that key can then be dropped.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from shared.crypto.sealed import SealingKeys, UnsealError, is_sealed, sealing_keys
from shared.settings import Settings

log = logging.getLogger(__name__)

DEVELOPMENT_KEY_ID = "dev"
DEVELOPMENT_KEY = hashlib.sha256(b"casework-development-webhook-secrets-key-not-for-production")


def webhook_secret_keys(settings: Settings) -> SealingKeys:
    """The ring from settings. In hs256 (development) mode an unset key means the development
    key; in jwks (production) mode it is an error (shared.crypto.sealed.SealingKeyError), as
    is the development key itself."""
    return sealing_keys(
        setting="CASEWORK_WEBHOOK_SECRETS_KEY",
        current_id=settings.webhook_secrets_key_id,
        current=settings.webhook_secrets_key,
        retired=settings.webhook_secrets_retired_keys,
        production=settings.auth_mode == "jwks",
        development_key_id=DEVELOPMENT_KEY_ID,
        development_key=DEVELOPMENT_KEY.digest(),
    )


def check_settings(settings: Settings) -> None:
    """Refuse to start a notifications process whose sealing keys are missing or unusable."""
    webhook_secret_keys(settings)


def _context(subscription_id: UUID) -> str:
    return f"webhook_subscriptions:{subscription_id}"


def seal(keys: SealingKeys, secret: str, *, subscription_id: UUID) -> str:
    return keys.seal(secret, context=_context(subscription_id))


def unseal(keys: SealingKeys, stored: str, *, subscription_id: UUID) -> str:
    """The secret of a stored value; a clear one (written before sealing) as it is. Raises
    UnsealError for a sealed value that does not open."""
    if not is_sealed(stored):
        return stored
    return keys.unseal(stored, context=_context(subscription_id))


@dataclass(frozen=True)
class Resealed:
    clear: int  # clear secrets now sealed
    retired: int  # secrets moved from a retired key to the current one
    unopenable: int  # sealed under a key not configured, or not opening: left as they are


_STALE = """
SELECT id, secret, previous_secret FROM webhook_subscriptions
WHERE NOT (secret LIKE $1 AND coalesce(previous_secret LIKE $1, true))
ORDER BY id
FOR UPDATE
"""


async def reseal(connection: asyncpg.Connection, keys: SealingKeys) -> Resealed:
    """Seal, under the current key, every secret held in clear or under a retired key: one
    UPDATE per row, in one transaction (two workers starting at once take turns on the rows).
    Deleted subscriptions too: a dump would show their secrets just the same."""
    current = f"v1:{keys.current_id}:%"
    clear = retired = unopenable = 0
    async with connection.transaction():
        for row in await connection.fetch(_STALE, current):
            subscription_id: UUID = row["id"]
            values: list[str | None] = []
            found = {"clear": 0, "retired": 0}
            try:
                for stored in (row["secret"], row["previous_secret"]):
                    if stored is None or keys.is_current(stored):
                        values.append(stored)
                        continue
                    found["retired" if is_sealed(stored) else "clear"] += 1
                    secret = unseal(keys, stored, subscription_id=subscription_id)
                    values.append(seal(keys, secret, subscription_id=subscription_id))
            except UnsealError as error:
                unopenable += 1
                log.error(
                    "a webhook secret does not unseal; left as it is",
                    extra={"subscription_id": str(subscription_id), "error": str(error)},
                )
                continue
            clear += found["clear"]
            retired += found["retired"]
            await connection.execute(
                "UPDATE webhook_subscriptions SET secret = $2, previous_secret = $3 WHERE id = $1",
                subscription_id,
                values[0],
                values[1],
            )
    result = Resealed(clear=clear, retired=retired, unopenable=unopenable)
    if clear or retired or unopenable:
        log.info(
            "webhook secrets re-sealed under the current key",
            extra={
                "key_id": keys.current_id,
                "clear": clear,
                "retired": retired,
                "unopenable": unopenable,
            },
        )
    return result
