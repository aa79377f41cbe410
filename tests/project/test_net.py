"""project.net.client_ip: REMOTE_ADDR unless behind trusted proxies, never a spoofed address."""

from __future__ import annotations

import ipaddress

import pytest
from django.test import RequestFactory, override_settings
from hypothesis import given
from hypothesis import strategies as st

from project.net import client_ip

REMOTE = "10.0.0.9"


def _ip(xff: str | None = None, remote: str = REMOTE) -> str | None:
    headers = {"X-Forwarded-For": xff} if xff is not None else {}
    return client_ip(RequestFactory().get("/", REMOTE_ADDR=remote, headers=headers))


@pytest.fixture
def proxies(settings):
    """Behind `proxies(n)` trusted proxies."""

    def behind(count: int) -> None:
        settings.BEHIND_PROXY = True
        settings.TRUSTED_PROXY_COUNT = count

    return behind


def test_without_a_proxy_the_header_is_ignored(settings):
    settings.BEHIND_PROXY = False
    assert _ip("203.0.113.7") == REMOTE


def test_behind_one_proxy_the_rightmost_entry_is_the_client(proxies):
    proxies(1)
    assert _ip("203.0.113.7") == "203.0.113.7"
    assert _ip("198.51.100.1, 203.0.113.7") == "203.0.113.7"


def test_behind_two_proxies_the_second_from_the_right_is_the_client(proxies):
    proxies(2)
    assert _ip("203.0.113.7, 10.1.1.1") == "203.0.113.7"
    assert _ip("1.2.3.4, 203.0.113.7, 10.1.1.1") == "203.0.113.7"


def test_spoofed_leftmost_entries_are_ignored(proxies):
    proxies(1)
    assert _ip("127.0.0.1, 8.8.8.8, 203.0.113.7") == "203.0.113.7"


@pytest.mark.parametrize("xff", ["", "unknown", "not-an-ip, also bad", ", ,", "300.1.1.1"])
def test_garbage_falls_back_to_remote_addr(proxies, xff):
    proxies(1)
    assert _ip(xff) == REMOTE


def test_fewer_entries_than_proxies_falls_back_to_remote_addr(proxies):
    proxies(2)
    assert _ip("203.0.113.7") == REMOTE
    assert _ip(None) == REMOTE


def test_ipv6_is_normalized(proxies):
    proxies(1)
    assert _ip("2001:DB8:0:0::1") == "2001:db8::1"


_HOP = st.one_of(
    st.ip_addresses().map(str),
    st.text(max_size=20),
    st.sampled_from(["", " ", "unknown", "::1", "1.2.3.4 ", "fe80::1%eth0", "2001:db8::/32"]),
)


def _valid(hop: str) -> str | None:
    """The address a hop names, in the form the database keeps (IPv4 unmapped, no zone)."""
    try:
        address = ipaddress.ip_address(hop.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped:
            return str(address.ipv4_mapped)
        return str(address).split("%", 1)[0]
    return str(address)


@given(
    hops=st.lists(_HOP, max_size=6),
    junk=st.text(max_size=30),
    count=st.integers(min_value=1, max_value=3),
)
def test_client_ip_never_raises_and_never_invents_an_address(hops, junk, count):
    xff = ",".join([junk, *hops]) if junk else ",".join(hops)
    with override_settings(BEHIND_PROXY=True, TRUSTED_PROXY_COUNT=count):
        result = _ip(xff)
    seen = {_valid(part) for part in xff.split(",")} - {None}
    assert result == REMOTE or result in seen
    # Only the entry `count` places from the right (written by a trusted proxy) may be chosen.
    entries = [part for part in xff.split(",") if part.strip()]
    if result != REMOTE:
        assert result == _valid(entries[-count])


def test_a_zoned_ipv6_address_loses_its_zone():
    from django.test import RequestFactory

    from project.net import client_ip

    request = RequestFactory().get("/", REMOTE_ADDR="fe80::1%eth0")
    assert client_ip(request) == "fe80::1"
