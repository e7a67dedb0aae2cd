"""Which peers may say, in X-Forwarded-For and X-Forwarded-Proto, who the client really is.

The audit trail records the request's source address. Believing those headers from any peer
would let a client write whatever address it likes into the trail, so uvicorn believes them
only from the configured proxies (`CASEWORK_TRUSTED_PROXIES`: the gateway), and from nobody
when that is empty.
"""

from __future__ import annotations

from typing import Any

from shared.settings import Settings


def proxy_options(settings: Settings) -> dict[str, Any]:
    """uvicorn.run / uvicorn.Config keyword arguments for forwarded headers."""
    trusted = settings.trusted_proxy_list
    if not trusted:
        # Not even uvicorn's default (127.0.0.1, or $FORWARDED_ALLOW_IPS): nobody.
        return {"proxy_headers": False, "forwarded_allow_ips": []}
    return {"proxy_headers": True, "forwarded_allow_ips": trusted}
