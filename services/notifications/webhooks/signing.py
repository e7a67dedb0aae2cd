"""Standard Webhooks signing: secrets in the `whsec_` format, and the three headers of a
delivery, computed with the maintained `standardwebhooks` library.

During a rotation a delivery carries a signature under each valid secret (space-separated in
`webhook-signature`, as the specification allows), so receivers can switch secrets without
losing a delivery.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from datetime import datetime

from standardwebhooks.webhooks import Webhook

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def signature_headers(
    *, message_id: str, timestamp: datetime, body: str, secrets_in_use: Sequence[str]
) -> dict[str, str]:
    """`webhook-id`, `webhook-timestamp` (seconds) and `webhook-signature` of one attempt."""
    signatures = [Webhook(secret).sign(message_id, timestamp, body) for secret in secrets_in_use]
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": " ".join(signatures),
    }
