"""Where a webhook may point: https (http only where a setting allows it), no credentials in
the URL, and a host that resolves to public addresses only, never private, loopback,
link-local, multicast or reserved ones (unless a setting allows them: tests, a development
receiver on the same machine). Checked at subscription and again before every attempt, whose
connection then goes to the address that was checked (a name that re-resolves elsewhere
between check and connection, DNS rebinding, gains nothing).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from shared.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class TargetRefused(Exception):
    """The URL may not receive webhooks; `code` names the rule, the message says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # as written (a name or an address literal), without brackets
    port: int
    path: str  # path and query, as written


def parse_target(url: str, *, allow_http: bool) -> Target:
    """The URL's parts, or TargetRefused for a URL that can never be a target."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise TargetRefused("invalid-url", f"not a valid URL: {error}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise TargetRefused("invalid-url", "the URL must start with https://")
    if scheme == "http" and not allow_http:
        raise TargetRefused(
            "https-required", "webhooks are delivered over https only (http is for development)"
        )
    if parts.username is not None or parts.password is not None:
        raise TargetRefused(
            "credentials-in-url", "the URL must not carry a user or password (it is logged)"
        )
    if parts.fragment:
        raise TargetRefused("invalid-url", "the URL must not have a fragment")
    host = (parts.hostname or "").rstrip(".")
    if not host or any(c.isspace() or ord(c) < 33 for c in url):
        raise TargetRefused("invalid-url", "the URL needs a host, and no spaces")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(scheme=scheme, host=host, port=port or (443 if scheme == "https" else 80),
                  path=path)  # fmt: skip


def _unwrapped(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_public(address: IPAddress) -> bool:
    """Globally routable unicast: not private, loopback, link-local, multicast, reserved,
    shared (carrier-grade NAT), documentation or unspecified."""
    address = _unwrapped(address)
    return address.is_global and not address.is_multicast and not address.is_reserved


async def resolve(target: Target, *, timeout: float) -> list[IPAddress]:
    try:
        literal = ipaddress.ip_address(target.host)
    except ValueError:
        pass
    else:
        return [literal]
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            infos = await loop.getaddrinfo(
                target.host, target.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
            )
    except (OSError, TimeoutError, UnicodeError) as error:
        raise TargetRefused(
            "target-unresolvable", f"{target.host} does not resolve ({error or 'timeout'})"
        ) from None
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise TargetRefused("target-unresolvable", f"{target.host} has no address")
    return addresses


async def checked_address(target: Target, settings: Settings) -> IPAddress:
    """The address to connect to: every address the host resolves to must be public (one
    private answer among public ones is refused too: a resolver can rotate them)."""
    addresses = await resolve(target, timeout=min(settings.webhook_timeout_seconds, 5.0))
    if not settings.webhook_allow_private_targets:
        refused = [str(a) for a in addresses if not is_public(a)]
        if refused:
            raise TargetRefused(
                "target-not-public",
                f"{target.host} resolves to an address that is not public "
                f"({', '.join(refused)}): private, loopback, link-local, multicast and reserved "
                "addresses never receive webhooks",
            )
    return addresses[0]


async def check_url(url: str, settings: Settings) -> Target:
    """The whole check of a subscription's URL (TargetRefused otherwise)."""
    target = parse_target(url, allow_http=settings.webhook_allow_http)
    await checked_address(target, settings)
    return target
