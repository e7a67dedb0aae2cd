"""The keys that seal the audit chains: HMAC-SHA256, held by the services, never by the database.

A row's hash is HMAC(key, previous hash || the row's canonical bytes) and the row names the key
(`key_id`). The hash is computed in Python and only its result is sent: passing the key to a SQL
function as a bind parameter would let a superuser read it from the server's statement log.
Whoever can write the table but does not hold the key can delete or edit rows but cannot
re-chain what follows, and `audit-verify` names the stretch.

Rows written before the key existed have no key id and a plain SHA-256 chain (`legacy`); they
still verify, but anyone can recompute them, so a legacy row that comes after a keyed one is
treated as rewritten (see shared/audit/verify.py).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from shared.settings import Settings

DEVELOPMENT_KEY_ID = "dev"
DEVELOPMENT_KEY = b"casework-development-audit-key-not-for-production"
MIN_KEY_BYTES = 32


class AuditKeyError(ValueError):
    """The audit keys are missing or unusable: the process must not start."""


def legacy_hash(previous: str, canonical: bytes) -> str:
    """The chain hash of rows written before keys existed: sha256(previous || canonical)."""
    return hashlib.sha256(previous.encode() + canonical).hexdigest()


@dataclass(frozen=True)
class ChainKeys:
    """The key new rows are sealed with, and every key older rows may name."""

    current_id: str
    keys: Mapping[str, bytes]

    def seal(self, previous: str, canonical: bytes) -> str:
        return _mac(self.keys[self.current_id], previous, canonical)

    def verifies(self, key_id: str | None, previous: str, canonical: bytes, hash: str) -> bool:
        """Whether `hash` is the chain hash of this content after `previous` under `key_id`
        (None: legacy SHA-256). Raises KeyError for a key id this ring does not hold."""
        if key_id is None:
            expected = legacy_hash(previous, canonical)
        else:
            expected = _mac(self.keys[key_id], previous, canonical)
        return hmac.compare_digest(expected, hash)


def _mac(key: bytes, previous: str, canonical: bytes) -> str:
    return hmac.new(key, previous.encode() + canonical, hashlib.sha256).hexdigest()


def chain_keys(settings: Settings) -> ChainKeys:
    """The ring from settings. In hs256 (development) mode an unset key means the development
    key; in jwks (production) mode it is an error, as is the development key itself."""
    retired = {
        key_id: _usable(key_id, key) for key_id, key in settings.audit_hmac_retired_keys.items()
    }
    if settings.audit_hmac_key:
        current_id = settings.audit_hmac_key_id
        current = _usable(current_id, settings.audit_hmac_key)
        if current == DEVELOPMENT_KEY and settings.auth_mode == "jwks":
            raise AuditKeyError("CASEWORK_AUDIT_HMAC_KEY is the development key")
    elif settings.auth_mode == "jwks":
        raise AuditKeyError("CASEWORK_AUDIT_HMAC_KEY is required when CASEWORK_AUTH_MODE=jwks")
    else:
        current_id, current = DEVELOPMENT_KEY_ID, DEVELOPMENT_KEY
    if retired.get(current_id, current) != current:
        raise AuditKeyError(f"audit key id {current_id!r} names two different keys")
    return ChainKeys(current_id=current_id, keys={**retired, current_id: current})


def _usable(key_id: str, key: str) -> bytes:
    raw = key.encode()
    if len(raw) < MIN_KEY_BYTES:
        raise AuditKeyError(f"audit key {key_id!r} is shorter than {MIN_KEY_BYTES} bytes")
    return raw
