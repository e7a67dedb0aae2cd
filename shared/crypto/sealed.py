"""Secrets the services must read back (to sign with, say) but the database must not hold in
clear: sealed with AES-256-GCM under a key the services hold and the database never sees.

A sealed value is `v1:<key id>:<base64 of nonce || ciphertext+tag>`. The version, the key id
and the caller's `context` (e.g. the id of the row the value belongs to) are bound as
associated data: a value edited in place, or copied onto another row, does not unseal.

AES-GCM rather than (Multi)Fernet: Fernet takes no associated data, so it could not bind a
value to its row. Nonces are random (96 bits); a key seals far fewer than the 2^32 values
after which random nonces would risk repeating.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

VERSION = "v1"
KEY_BYTES = 32
NONCE_BYTES = 12
KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,32}")


class SealingKeyError(ValueError):
    """The sealing keys are missing or unusable: the process must not start."""


class UnsealError(ValueError):
    """A sealed value that cannot be opened: unknown key id, malformed, tampered with, or
    sealed for another context."""


def is_sealed(stored: str) -> bool:
    return stored.startswith(f"{VERSION}:")


def key_id_of(stored: str) -> str | None:
    """The id of the key a sealed value names; None for a value that is not sealed."""
    if not is_sealed(stored):
        return None
    parts = stored.split(":", 2)
    return parts[1] if len(parts) == 3 else None


def _associated_data(key_id: str, context: str) -> bytes:
    # A key id (KEY_ID) holds no NUL, so the parts cannot run into each other.
    return f"{VERSION}\0{key_id}\0{context}".encode()


@dataclass(frozen=True)
class SealingKeys:
    """The key new values are sealed with, and every key older values may name."""

    current_id: str
    keys: Mapping[str, bytes]

    def seal(self, plain: str, *, context: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(self.keys[self.current_id]).encrypt(
            nonce, plain.encode(), _associated_data(self.current_id, context)
        )
        return f"{VERSION}:{self.current_id}:{base64.b64encode(nonce + sealed).decode()}"

    def unseal(self, stored: str, *, context: str) -> str:
        parts = stored.split(":", 2)
        if len(parts) != 3 or parts[0] != VERSION:
            raise UnsealError("not a sealed value")
        _version, key_id, encoded = parts
        key = self.keys.get(key_id)
        if key is None:
            raise UnsealError(f"sealed under key {key_id!r}, which is not configured")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise UnsealError("a sealed value that is not base64") from None
        if len(raw) <= NONCE_BYTES:
            raise UnsealError("a sealed value too short to hold anything")
        try:
            plain = AESGCM(key).decrypt(
                raw[:NONCE_BYTES], raw[NONCE_BYTES:], _associated_data(key_id, context)
            )
        except InvalidTag:
            raise UnsealError(
                f"a sealed value under key {key_id!r} that does not open here "
                "(tampered with, or sealed for another row)"
            ) from None
        return plain.decode()

    def is_current(self, stored: str) -> bool:
        """Whether the value is sealed under the current key (else: clear, or a retired key)."""
        return key_id_of(stored) == self.current_id


def sealing_keys(
    *,
    setting: str,
    current_id: str,
    current: str | None,
    retired: Mapping[str, str],
    production: bool,
    development_key_id: str,
    development_key: bytes,
) -> SealingKeys:
    """The ring from settings (keys are base64 of 32 bytes; `setting` is the environment
    variable named in errors). Unset current key: the development key, or an error in
    production, where the development key itself is refused too."""
    for key_id in (current_id, *retired):
        if not KEY_ID.fullmatch(key_id):
            raise SealingKeyError(f"{setting}: {key_id!r} is not a key id ({KEY_ID.pattern})")
    keys = {
        key_id: parse_key(f"{setting} retired key {key_id!r}", key)
        for key_id, key in retired.items()
    }
    if current:
        key = parse_key(setting, current)
        if production and key == development_key:
            raise SealingKeyError(f"{setting} is the development key")
    elif production:
        raise SealingKeyError(f"{setting} is required when CASEWORK_AUTH_MODE=jwks")
    else:
        current_id, key = development_key_id, development_key
    if keys.get(current_id, key) != key:
        raise SealingKeyError(f"{setting}: key id {current_id!r} names two different keys")
    return SealingKeys(current_id=current_id, keys={**keys, current_id: key})


def parse_key(name: str, value: str) -> bytes:
    """Standard or URL-safe base64 of exactly 32 bytes (e.g. `openssl rand -base64 32`)."""
    text = value.strip().translate(str.maketrans("-_", "+/"))
    try:
        key = base64.b64decode(text, validate=True)
    except binascii.Error:
        raise SealingKeyError(f"{name} is not base64") from None
    if len(key) != KEY_BYTES:
        raise SealingKeyError(f"{name} must be {KEY_BYTES} bytes (base64), not {len(key)}")
    return key
