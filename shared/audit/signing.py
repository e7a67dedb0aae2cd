"""Ed25519 signatures on audit checkpoints: the worker signs with the private key; a SIEM or
`casework audit-verify` checks with the public key alone, so holding what verifies does not
let anyone forge.

What is signed: the checkpoint's JSON (the event data on the audit topic, or a line of the
checkpoint file) without its `signature` member, with keys sorted and no whitespace (for the
values a checkpoint holds, the same bytes as RFC 8785 canonical JSON). A verifier works on the
JSON it received, so members added in a later minor version stay covered.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from shared.audit.keys import AuditKeyError
from shared.settings import Settings

_DEVELOPMENT_SEED = hashlib.sha256(b"casework-development-checkpoint-key-not-for-production")


def checkpoint_private_key(settings: Settings) -> Ed25519PrivateKey:
    """The signing key. Unset: the development key in hs256 mode, an error in jwks mode."""
    development = Ed25519PrivateKey.from_private_bytes(_DEVELOPMENT_SEED.digest())
    if not settings.audit_checkpoint_private_key:
        if settings.auth_mode == "jwks":
            raise AuditKeyError(
                "CASEWORK_AUDIT_CHECKPOINT_PRIVATE_KEY is required when CASEWORK_AUTH_MODE=jwks"
            )
        return development
    try:
        key = serialization.load_pem_private_key(
            settings.audit_checkpoint_private_key.encode(), password=None
        )
    except ValueError as error:
        raise AuditKeyError(f"CASEWORK_AUDIT_CHECKPOINT_PRIVATE_KEY: {error}") from error
    if not isinstance(key, Ed25519PrivateKey):
        raise AuditKeyError("CASEWORK_AUDIT_CHECKPOINT_PRIVATE_KEY is not an Ed25519 key")
    if settings.auth_mode == "jwks" and fingerprint(key.public_key()) == fingerprint(
        development.public_key()
    ):
        raise AuditKeyError("CASEWORK_AUDIT_CHECKPOINT_PRIVATE_KEY is the development key")
    return key


def checkpoint_public_key(settings: Settings) -> Ed25519PublicKey:
    """The verifying key: the configured one, else the private key's own."""
    if not settings.audit_checkpoint_public_key:
        return checkpoint_private_key(settings).public_key()
    try:
        key = serialization.load_pem_public_key(settings.audit_checkpoint_public_key.encode())
    except ValueError as error:
        raise AuditKeyError(f"CASEWORK_AUDIT_CHECKPOINT_PUBLIC_KEY: {error}") from error
    if not isinstance(key, Ed25519PublicKey):
        raise AuditKeyError("CASEWORK_AUDIT_CHECKPOINT_PUBLIC_KEY is not an Ed25519 key")
    return key


def fingerprint(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def signed_bytes(document: Mapping[str, Any]) -> bytes:
    unsigned = {name: value for name, value in document.items() if name != "signature"}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign(key: Ed25519PrivateKey, document: Mapping[str, Any]) -> str:
    return base64.b64encode(key.sign(signed_bytes(document))).decode()


def verifies(key: Ed25519PublicKey, document: Mapping[str, Any]) -> bool:
    """The document names this key and its signature is this key's over its content."""
    if document.get("signing_key") != fingerprint(key):
        return False
    try:
        signature = base64.b64decode(str(document.get("signature", "")), validate=True)
        key.verify(signature, signed_bytes(document))
    except (InvalidSignature, binascii.Error):
        return False
    return True
