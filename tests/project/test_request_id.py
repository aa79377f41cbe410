"""X-Request-ID: one id per request, on the response and on every log line written meanwhile."""

from __future__ import annotations

import logging
import re
from http import HTTPStatus

import pytest

pytestmark = pytest.mark.django_db

FRESH_ID = re.compile(r"[0-9a-f]{32}")


def test_a_response_carries_a_fresh_request_id(client):
    response = client.get("/health")
    assert FRESH_ID.fullmatch(response["X-Request-ID"])


def test_two_requests_get_different_ids(client):
    assert client.get("/health")["X-Request-ID"] != client.get("/health")["X-Request-ID"]


@pytest.mark.parametrize("sane", ["abc-123", "req.42:edge_7", "A" * 128])
def test_a_sane_incoming_id_is_echoed(client, sane):
    response = client.get("/health", headers={"X-Request-ID": sane})
    assert response["X-Request-ID"] == sane


@pytest.mark.parametrize(
    "insane",
    ["A" * 129, "has space", "abc\r\nSet-Cookie: x=1", "abc\n", "café", "-leading-dash", "a/b", ""],
)
def test_an_insane_incoming_id_is_replaced(client, insane):
    response = client.get("/health", headers={"X-Request-ID": insane})
    assert FRESH_ID.fullmatch(response["X-Request-ID"])


@pytest.mark.urls("tests.project.urls")
def test_the_id_is_on_the_log_lines_written_during_the_request(client, console_log):
    response = client.get("/test/log/", headers={"X-Request-ID": "trace-me-42"})
    assert response.status_code == HTTPStatus.OK
    lines = [line for line in console_log.getvalue().splitlines() if "view says hello" in line]
    assert len(lines) == 1
    assert "[trace-me-42] tests.project:" in lines[0]


@pytest.mark.urls("tests.project.urls")
def test_the_id_is_on_djangos_own_request_log_lines(client, console_log):
    response = client.get("/test/no-such-page/")
    assert response.status_code == HTTPStatus.NOT_FOUND
    line = f"[{response['X-Request-ID']}] django.request: Not Found: /test/no-such-page/"
    assert line in console_log.getvalue()


def test_outside_a_request_the_id_is_a_dash(console_log):
    logging.getLogger("tests.project").warning("no request here")
    assert "[-] tests.project: no request here" in console_log.getvalue()
