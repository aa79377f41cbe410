"""The client's address, as DESIGN.md's proxy settings say to find it."""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def _valid_ip(value: str) -> str | None:
    """The address in one normal form (IPv4-mapped unpacked, no zone), as the database stores it."""
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped:
            return str(address.ipv4_mapped)
        if address.scope_id:  # fe80::1%eth0: the zone means nothing off this host
            return str(ipaddress.IPv6Address(str(address).split("%", 1)[0]))
    return str(address)


def client_ip(request: HttpRequest) -> str | None:
    """REMOTE_ADDR, or behind trusted proxies the address the outermost trusted one saw.

    Each proxy appends the address it received the request from, so with N trusted proxies the
    client is the N-th entry from the right; anything left of it is client-supplied and ignored.
    """
    remote = _valid_ip(request.META.get("REMOTE_ADDR", ""))
    if not settings.BEHIND_PROXY:
        return remote
    hops = [hop for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    if len(hops) < settings.TRUSTED_PROXY_COUNT:
        return remote
    return _valid_ip(hops[-settings.TRUSTED_PROXY_COUNT]) or remote
